package query

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/valyala/fasthttp"
)

var fuzzHandler = New(matcher.New(plan, matcher.Options{}), Options{Logger: zerolog.Nop()})

// FuzzDecodeArgs: any query string either decodes to a query whose fields
// respect the limits, or to an error; never a panic.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{"to=%2B14155550123&account=acme", "to=", "account=x", "to=1&to=2", "to=%zz", "to=+1+2&&&=&call_id=%00", "to=1&account=a+b", "to=1&subaccount=..", "to=1&format=compact", "format=json&to=1&format=json", "to=1&format=%63ompact"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, qs string) {
		var a fasthttp.Args
		a.Parse(qs)
		var q matcher.Query
		var vf verdictFormat
		e := decodeArgs(&a, &q, &vf)
		if !e.ok() {
			appendErrorBody(nil, e)
			return
		}
		if q.To == "" {
			t.Fatal("accepted a query without to")
		}
		if e := checkNames(q.Account, q.Subaccount); !e.ok() {
			t.Fatalf("accepted account %q, subaccount %q", q.Account, q.Subaccount)
		}
		for i := 0; i < numFields; i++ {
			if len(*fieldPtr(&q, i)) > MaxFieldLen {
				t.Fatalf("field %s over the limit", fieldNames[i])
			}
		}
		fuzzHandler.m.Decide(&q)
	})
}

// FuzzDecodeObject checks the hand-written JSON decoder against
// encoding/json: it never accepts what is not JSON, and the strings it
// decodes are the ones encoding/json decodes.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"to":"+14155550123","account":"acme"}`, `{"to":"\u002b1","account":"\ud83d\ude00\ud800x"}`,
		`{"to":1e5,"from":null,"x":[{"y":true}]}`, `{"to":"1",}`, `[]`, ``, `{"to":"1"} `, `{"\u0074o":"\"\\\/\b\f\n\r\t"}`,
		`{"to":"1","src_ip":"[2001:db8::1]:5060"}`, `{"to":"1","src_ip":"abc",}`, `{"to":"1","src_ip":7}`, `{"to":"1","src_ip":null}`,
		`{"to":"1","format":"compact"}`, `{"format":"\u0063ompact","to":"1"}`, `{"to":"1","format":[1]}`, `{"to":"1","format":null,"format":"json"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var q matcher.Query
		var sc scratch
		defer sc.release()
		var vf verdictFormat
		e := decodeObject(b, &q, &vf, &sc)
		if !e.ok() {
			appendErrorBody(nil, e)
			if e.kind == errMissingTo || e.kind == errTooLong || e.kind == errFieldType || e.kind == errSrcIP || e.kind == errBadName {
				if !json.Valid(b) {
					t.Fatalf("reported a field error for invalid JSON %q", b)
				}
			}
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if e := checkNames(q.Account, q.Subaccount); !e.ok() {
			t.Fatalf("accepted account %q, subaccount %q", q.Account, q.Subaccount)
		}
		if !utf8.Valid(b) {
			return // encoding/json rewrites invalid UTF-8; we pass it through
		}
		var ref map[string]any
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", b, err)
		}
		for i := 0; i < numFields; i++ {
			got := *fieldPtr(&q, i)
			switch v := ref[fieldNames[i]].(type) {
			case string:
				if got != v && !duplicateKeys(b) {
					t.Fatalf("%s: got %q, encoding/json %q (input %q)", fieldNames[i], got, v, b)
				}
			case nil:
				if got != "" && !duplicateKeys(b) && !caseFolded(ref, fieldNames[i]) {
					t.Fatalf("%s: got %q for null/absent", fieldNames[i], got)
				}
			}
		}
	})
}

// duplicateKeys reports whether a top-level key repeats (both decoders take
// the last, but encoding/json also matches keys case-insensitively, so the
// comparison is skipped rather than re-implemented).
func duplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token()
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return true
		}
		ks := string(bytes.ToLower([]byte(k.(string))))
		if seen[ks] {
			return true
		}
		seen[ks] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return true
		}
	}
	return false
}

func caseFolded(ref map[string]any, name string) bool {
	_, exact := ref[name]
	return !exact
}

// FuzzRPC: any payload gets either no reply (notifications) or a reply that
// is valid JSON-RPC 2.0.
func FuzzRPC(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`,
		`[{"jsonrpc":"2.0","method":"check","params":{"to":"1"},"id":"a"},{"jsonrpc":"2.0","method":"x"},1]`,
		`{"jsonrpc":"2.0","method":"che\u0063k","params":{"to":"1"},"id":null}`, `[]`, `{`, `"x"`, ``,
		`{"jsonrpc":"2.0","method":"check","params":[1],"id":{}}`,
		`{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","format":"compact"},"id":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var sc scratch
		defer sc.release()
		out, replied := fuzzHandler.rpc(nil, b, tHTTPRPC, &sc)
		if !replied {
			if len(out) != 0 {
				t.Fatalf("no reply but output %q", out)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("reply is not JSON: %q (input %q)", out, b)
		}
		check := func(m map[string]json.RawMessage) {
			if string(m["jsonrpc"]) != `"2.0"` || (m["result"] == nil) == (m["error"] == nil) || m["id"] == nil {
				t.Fatalf("not a JSON-RPC 2.0 response: %q", out)
			}
		}
		if out[0] == '[' {
			var list []map[string]json.RawMessage
			if err := json.Unmarshal(out, &list); err != nil || len(list) == 0 {
				t.Fatalf("batch reply %q: %v", out, err)
			}
			for _, m := range list {
				check(m)
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("reply %q: %v", out, err)
		}
		check(m)
	})
}

// FuzzNetstring: the frame reader never panics, never returns more than the
// declared length, and a frame it writes is a frame it reads.
func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"2:{},", "0:,", "5:hello,3:abc,", "12x:", "999999999:", "3:abc;", "", ":", "01:a,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for i := 0; i < 10; i++ {
			p, err := ReadNetstring(br, &buf)
			if err != nil {
				var fe framingError
				if !errors.As(err, &fe) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(p) > MaxRPCBody {
				t.Fatal("frame over the limit")
			}
			again := []byte(strconv.Itoa(len(p)) + ":" + string(p) + ",")
			var buf2 []byte
			q, err := ReadNetstring(bufio.NewReader(bytes.NewReader(again)), &buf2)
			if err != nil || !bytes.Equal(p, q) {
				t.Fatalf("round trip of %q: %q %v", p, q, err)
			}
		}
	})
}

// FuzzAppendJSONString: the encoder always produces valid JSON, which reads
// back as the input wherever the input was valid UTF-8.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"acme", "a\"b\\c", "\x00\x1f\x7f", "\xff\xfe", "héllo ☎", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %q: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	})
}

// FuzzUnwrapEvents: the token wrapper's reader never panics, returns events
// only without an error, and a payload it does not take as a wrapper comes
// back as it was.
func FuzzUnwrapEvents(f *testing.F) {
	for _, s := range []string{`{"token":"t","events":[{"event":"answered"}]}`, `{"token":null,"events":{}}`, `{"events":1,"events":2}`,
		`{"token":1,"events":[]}`, `[{"event":"ended"}]`, `{"event":"ended"}`, `{"t\u006fken":"x","events":[]}`, ``, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, tok, has, err := unwrapEvents(b)
		if err != nil && (evs != nil || has) {
			t.Fatalf("%q: error %v with events %q", b, err, evs)
		}
		if !has && tok != "" {
			t.Fatalf("%q: token %q without hasToken", b, tok)
		}
		if err == nil && evs == nil {
			t.Fatalf("%q: no events and no error", b)
		}
	})
}
