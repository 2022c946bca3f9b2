package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeVerdict is the test servers' stand-in policy.
func fakeVerdict(to string) (status int, verdict, reason string) {
	switch {
	case strings.HasPrefix(to, "+53"), strings.HasPrefix(to, "+252"):
		return 403, "reject", "country_barred"
	case strings.HasPrefix(to, "+881"), strings.HasPrefix(to, "+882"), strings.HasPrefix(to, "+4490"):
		return 202, "screen", "number_barred"
	case len(to) < 8:
		return 403, "reject", "invalid_number"
	}
	return 200, "allow", "ok"
}

func checkBody(params map[string]string) map[string]any {
	_, v, r := fakeVerdict(params["to"])
	return map[string]any{"verdict": v, "reason": r, "e164": params["to"], "account": params["account"], "max_channels": 10}
}

type rpcRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	Method  string            `json:"method"`
	Params  map[string]string `json:"params"`
	ID      json.RawMessage   `json:"id"`
}

func rpcReply(req rpcRequest) []byte {
	out := map[string]any{"jsonrpc": "2.0", "id": req.ID}
	if req.Method != "check" || req.Params["to"] == "" {
		out["error"] = map[string]any{"code": -32602, "message": "invalid params"}
	} else {
		out["result"] = checkBody(req.Params)
	}
	b, _ := json.Marshal(out)
	return b
}

var testCall = call{to: "+12125550123", account: "acct-000001", from: "+16465550100", srcIP: "10.0.0.1"}

// startTCP runs handle for every connection accepted on a loopback port.
func startTCP(t *testing.T, handle func(net.Conn)) (addr string, accepts *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts = new(atomic.Int64)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), accepts
}

// netstringServer answers netstring-framed JSON-RPC, many per connection.
func netstringServer(c net.Conn) {
	br := bufio.NewReader(c)
	var buf []byte
	for {
		var err error
		buf, err = readNetstring(br, buf)
		if err != nil {
			return
		}
		var req rpcRequest
		if json.Unmarshal(buf, &req) != nil {
			return
		}
		if _, err := c.Write(appendNetstring(nil, rpcReply(req))); err != nil {
			return
		}
	}
}

// plainServer reads one JSON object, answers it and closes, as OpenSIPS
// expects.
func plainServer(c net.Conn) {
	var req rpcRequest
	if json.NewDecoder(c).Decode(&req) != nil {
		return
	}
	c.Write(rpcReply(req))
}

func TestNetstringFraming(t *testing.T) {
	framed := appendNetstring(nil, []byte(`{"a":1}`))
	if string(framed) != `7:{"a":1},` {
		t.Fatalf("framed %q", framed)
	}
	stream := string(framed) + "0:," + "3:abc,"
	br := bufio.NewReader(strings.NewReader(stream))
	for _, want := range []string{`{"a":1}`, "", "abc"} {
		got, err := readNetstring(br, nil)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readNetstring(br, nil); err != io.EOF {
		t.Fatalf("at end: %v, want EOF", err)
	}
	for _, bad := range []string{"x:abc,", ":abc,", "3:abc;", "99999999:", "2000000:"} {
		_, err := readNetstring(bufio.NewReader(strings.NewReader(bad)), nil)
		if !errors.Is(err, errNetstring) {
			t.Errorf("%q: %v, want framing error", bad, err)
		}
	}
	if _, err := readNetstring(bufio.NewReader(strings.NewReader("5:ab")), nil); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v", err)
	}
}

func TestParseAnswers(t *testing.T) {
	v, r, ok := parseCheck([]byte(` {"verdict":"reject","reason":"country_barred","code":"x\\\"y\\\\","max_channels":3,"n":[-0.5e+3,true,null],"nested":{"a":[1,"}"]}} `))
	if !ok || string(v) != "reject" || string(r) != "country_barred" {
		t.Fatalf("parseCheck: %q %q %v", v, r, ok)
	}
	for _, bad := range []string{``, `{`, `{"verdict":"allow"`, `{"verdict":"allow",}`, `[]`, `{"verdict":allow}`, `{"a":1} x`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`} {
		if _, _, ok := parseCheck([]byte(bad)); ok {
			t.Errorf("parseCheck(%q) accepted", bad)
		}
	}
	a, ok := parseRPC([]byte(`{"jsonrpc":"2.0","result":{"verdict":"screen","reason":"ok"},"id":17}`), 17)
	if !ok || a.isError || string(a.verdict) != "screen" {
		t.Fatalf("parseRPC result: %+v %v", a, ok)
	}
	a, ok = parseRPC([]byte(`{"jsonrpc":"2.0","error":{"code":-32602,"message":"bad"},"id":null}`), 17)
	if !ok || !a.isError || a.code != -32602 {
		t.Fatalf("parseRPC error: %+v %v", a, ok)
	}
	for _, bad := range []string{
		`{"jsonrpc":"2.0","result":{"verdict":"allow"},"id":18}`,                // wrong id
		`{"jsonrpc":"1.0","result":{"verdict":"allow"},"id":17}`,                // wrong version
		`{"jsonrpc":"2.0","result":{"reason":"ok"},"id":17}`,                    // no verdict
		`{"jsonrpc":"2.0","id":17}`,                                             // neither
		`{"jsonrpc":"2.0","result":{"verdict":"allow"},"error":{},"id":17}`,     // both
		`{"jsonrpc":"2.0","result":{"verdict":"allow"},"id":17}{"jsonrpc":"2"}`, // trailing
	} {
		if _, ok := parseRPC([]byte(bad), 17); ok {
			t.Errorf("parseRPC(%s) accepted", bad)
		}
	}
	for in, want := range map[string]int{
		`{"a":1}`: 7, ` {"a":"}"} rest`: 10, `{"a":{"b":[1,2]}}`: 17,
		`{"a":`: scanIncomplete, `{"a":"x`: scanIncomplete, ``: scanIncomplete, `{"a":12`: scanIncomplete,
		`x`: scanInvalid, `{"a":1]`: scanInvalid,
	} {
		if got := objectEnd([]byte(in)); got != want {
			t.Errorf("objectEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestEncodersRoundTrip(t *testing.T) {
	c := call{to: "+44 20\"x\\y\n", account: "acct-000001", subaccount: "sub/1", from: "+1", srcIP: "::1"}
	id := callID{"ltabc", 42}
	var m map[string]string
	if err := json.Unmarshal(appendCheckJSON(nil, &c, id), &m); err != nil {
		t.Fatal(err)
	}
	if m["to"] != c.to || m["subaccount"] != "sub/1" || m["call_id"] != "ltabc-42" || m["src_ip"] != "::1" {
		t.Fatalf("JSON round trip: %v", m)
	}
	var req rpcRequest
	if err := json.Unmarshal(appendRPC(nil, &c, id, 9), &req); err != nil {
		t.Fatal(err)
	}
	if req.JSONRPC != "2.0" || req.Method != "check" || string(req.ID) != "9" || req.Params["to"] != c.to {
		t.Fatalf("RPC round trip: %+v", req)
	}
	q := string(appendQuery(nil, &c, id))
	r, _ := http.NewRequest("GET", "http://x/v1/check?"+q, nil)
	v := r.URL.Query()
	if v.Get("to") != c.to || v.Get("account") != c.account || v.Get("src_ip") != "::1" || v.Get("call_id") != "ltabc-42" {
		t.Fatalf("query round trip %q: %v", q, v)
	}
	if !strings.Contains(q, "to=%2B44") {
		t.Fatalf("'+' not escaped in %q", q)
	}
}

func TestNetstringClient(t *testing.T) {
	addr, accepts := startTCP(t, netstringServer)
	tr, _ := newTransport(transportRPCNetstring, addr, 1, time.Second)
	cl := tr.newClient()
	defer cl.close()
	calls := []call{testCall, {to: "+5351234567", account: "a"}, {to: "+8816123", account: "a"}}
	want := []string{"allow", "reject", "screen"}
	for i := range 30 {
		o := cl.do(&calls[i%3], callID{"t", uint64(i)}, time.Now().Add(time.Second))
		if o.kind != errNone || string(o.verdict) != want[i%3] {
			t.Fatalf("request %d: kind %v verdict %q", i, o.kind, o.verdict)
		}
	}
	if n := accepts.Load(); n != 1 {
		t.Fatalf("%d connections for 30 requests, want 1 persistent connection", n)
	}
	o := cl.do(&call{account: "a"}, callID{"t", 99}, time.Now().Add(time.Second))
	if o.kind != errRPC || o.rpcCode != -32602 {
		t.Fatalf("JSON-RPC error answer: kind %v code %d", o.kind, o.rpcCode)
	}
}

func TestNetstringClientFailures(t *testing.T) {
	// A server that answers with the wrong id, then garbage, then nothing.
	var n atomic.Int64
	addr, accepts := startTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			buf, err := readNetstring(br, nil)
			if err != nil {
				return
			}
			var req rpcRequest
			json.Unmarshal(buf, &req)
			switch n.Add(1) {
			case 1:
				req.ID = json.RawMessage("12345")
				c.Write(appendNetstring(nil, rpcReply(req)))
			case 2:
				c.Write([]byte("5:hello,"))
			case 3:
				c.Write([]byte("zz"))
			case 4:
				time.Sleep(300 * time.Millisecond)
			default:
				c.Write(appendNetstring(nil, rpcReply(req)))
			}
		}
	})
	tr, _ := newTransport(transportRPCNetstring, addr, 1, time.Second)
	cl := tr.newClient()
	defer cl.close()
	for i, want := range []errKind{errBadBody, errBadBody, errBadBody, errTimeout, errNone} {
		o := cl.do(&testCall, callID{"t", uint64(i)}, time.Now().Add(100*time.Millisecond))
		if o.kind != want {
			t.Fatalf("request %d: %v, want %v", i, o.kind, want)
		}
	}
	if accepts.Load() < 4 {
		t.Errorf("client kept a desynchronised connection (%d accepts)", accepts.Load())
	}
}

func TestPlainTCPClient(t *testing.T) {
	addr, accepts := startTCP(t, plainServer)
	tr, _ := newTransport(transportRPCTCP, addr, 1, time.Second)
	cl := tr.newClient()
	defer cl.close()
	for i := range 20 {
		o := cl.do(&testCall, callID{"t", uint64(i)}, time.Now().Add(time.Second))
		if o.kind != errNone || string(o.verdict) != "allow" || string(o.reason) != "ok" || o.done.IsZero() {
			t.Fatalf("request %d: %+v", i, o)
		}
	}
	if n := accepts.Load(); n != 20 {
		t.Fatalf("%d connections for 20 requests, want one each", n)
	}
}

func TestPlainTCPClientFailures(t *testing.T) {
	cases := []struct {
		name   string
		handle func(net.Conn)
		want   errKind
	}{
		{"garbage", func(c net.Conn) { json.NewDecoder(c).Decode(new(any)); c.Write([]byte("nope")) }, errBadBody},
		{"truncated", func(c net.Conn) { json.NewDecoder(c).Decode(new(any)); c.Write([]byte(`{"jsonrpc":"2.0","res`)) }, errBadBody},
		{"silent", func(c net.Conn) { time.Sleep(300 * time.Millisecond) }, errTimeout},
		{"closes at once", func(c net.Conn) {}, errIO},
		{"keeps the connection open", func(c net.Conn) {
			var req rpcRequest
			json.NewDecoder(c).Decode(&req)
			c.Write(rpcReply(req))
			time.Sleep(300 * time.Millisecond)
		}, errTimeout},
		{"extra data", func(c net.Conn) {
			var req rpcRequest
			json.NewDecoder(c).Decode(&req)
			c.Write(append(rpcReply(req), rpcReply(req)...))
		}, errBadBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := startTCP(t, tc.handle)
			tr, _ := newTransport(transportRPCTCP, addr, 1, time.Second)
			cl := tr.newClient()
			o := cl.do(&testCall, callID{"t", 1}, time.Now().Add(100*time.Millisecond))
			if o.kind != tc.want {
				t.Fatalf("%v, want %v", o.kind, tc.want)
			}
		})
	}
	// Nothing listening: a connect error.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	for _, name := range []string{transportRPCTCP, transportRPCNetstring, transportHTTPGet} {
		tr, _ := newTransport(name, addr, 1, time.Second)
		if o := tr.newClient().do(&testCall, callID{"t", 1}, time.Now().Add(time.Second)); o.kind != errConnect {
			t.Errorf("%s to a closed port: %v, want connect", name, o.kind)
		}
	}
}

// fakeSidecarHTTP serves the query API and JSON-RPC over HTTP.
func fakeSidecarHTTP(t *testing.T, override func(w http.ResponseWriter, params map[string]string) bool) string {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, params map[string]string) {
		if override != nil && override(w, params) {
			return
		}
		if params["to"] == "" || params["account"] == "" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"to and account are required"}`)
			return
		}
		status, _, _ := fakeVerdict(params["to"])
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(checkBody(params))
	}
	mux.HandleFunc("GET /v1/check", func(w http.ResponseWriter, r *http.Request) {
		params := map[string]string{}
		for k, v := range r.URL.Query() {
			params[k] = v[0]
		}
		answer(w, params)
	})
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		params := map[string]string{}
		if json.NewDecoder(r.Body).Decode(&params) != nil {
			w.WriteHeader(400)
			return
		}
		answer(w, params)
	})
	mux.HandleFunc("POST /rpc", func(w http.ResponseWriter, r *http.Request) {
		var req rpcRequest
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &req) != nil {
			w.WriteHeader(400)
			return
		}
		w.Write(rpcReply(req))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestHTTPClients(t *testing.T) {
	addr := fakeSidecarHTTP(t, func(w http.ResponseWriter, p map[string]string) bool {
		switch p["to"] {
		case "+15550000001": // verdict contradicts the status
			w.WriteHeader(200)
			fmt.Fprint(w, `{"verdict":"reject"}`)
		case "+15550000002":
			w.WriteHeader(200)
			fmt.Fprint(w, `<html>`)
		case "+15550000003": // status only
			w.WriteHeader(202)
			fmt.Fprint(w, `{}`)
		case "+15550000004":
			w.WriteHeader(503)
		default:
			return false
		}
		return true
	})
	cases := []struct {
		to      string
		kind    errKind
		status  int
		verdict string
	}{
		{"+12125550123", errNone, 200, "allow"},
		{"+25261234567", errNone, 403, "reject"},
		{"+8816123456", errNone, 202, "screen"},
		{"", errHTTPStatus, 400, ""},
		{"+15550000001", errVerdictStatus, 200, "reject"},
		{"+15550000002", errBadBody, 200, ""},
		{"+15550000003", errNone, 202, "screen"},
		{"+15550000004", errHTTPStatus, 503, ""},
	}
	for _, name := range []string{transportHTTPGet, transportHTTPPost, transportRPCHTTP} {
		tr, _ := newTransport(name, addr, 2, time.Second)
		cl := tr.newClient()
		for i, tc := range cases {
			c := testCall
			c.to = tc.to
			o := cl.do(&c, callID{"t", uint64(i)}, time.Now().Add(time.Second))
			if name == transportRPCHTTP {
				if tc.to == "" {
					if o.kind != errRPC || o.rpcCode != -32602 {
						t.Errorf("%s %q: %v code %d, want rpc_error -32602", name, tc.to, o.kind, o.rpcCode)
					}
					continue
				}
				if strings.HasPrefix(tc.to, "+1555") {
					continue // overrides apply to the query API only
				}
			}
			if o.kind != tc.kind || (name != transportRPCHTTP && o.status != tc.status) || string(o.verdict) != tc.verdict {
				t.Errorf("%s %q: kind %v status %d verdict %q; want %v %d %q", name, tc.to, o.kind, o.status, o.verdict, tc.kind, tc.status, tc.verdict)
			}
		}
		cl.close()
		tr.close()
	}
}

func TestHTTPTimeout(t *testing.T) {
	addr := fakeSidecarHTTP(t, func(w http.ResponseWriter, p map[string]string) bool {
		time.Sleep(300 * time.Millisecond)
		return false
	})
	tr, _ := newTransport(transportHTTPPost, addr, 1, time.Second)
	cl := tr.newClient()
	defer cl.close()
	if o := cl.do(&testCall, callID{"t", 1}, time.Now().Add(50*time.Millisecond)); o.kind != errTimeout {
		t.Fatalf("%v, want timeout", o.kind)
	}
}

// Guard against the test servers and the client disagreeing on framing.
func TestFakeServersSpeakTheContract(t *testing.T) {
	b := rpcReply(rpcRequest{Method: "check", Params: map[string]string{"to": "+5350000000"}, ID: json.RawMessage("3")})
	if a, ok := parseRPC(b, 3); !ok || string(a.verdict) != "reject" {
		t.Fatalf("%s", b)
	}
	if !bytes.Contains(b, []byte(`"jsonrpc":"2.0"`)) {
		t.Fatalf("%s", b)
	}
}
