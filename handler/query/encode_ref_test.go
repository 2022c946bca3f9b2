package query

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/matcher"
)

// appendVerdictRef is AppendVerdict as it was before the verdict heads and
// the in-place rule (issue 17, fifth pass): the reference the encoder must
// still match byte for byte.
func appendVerdictRef(dst []byte, v *matcher.Verdict) []byte {
	info := v.Reason.Info()
	dst = append(dst, `{"verdict":"`...)
	dst = append(dst, v.Action.String()...)
	dst = append(dst, `","reason":"`...)
	dst = append(dst, info.Name...)
	dst = append(dst, `","code":`...)
	dst = strconv.AppendInt(dst, int64(info.Code), 10)
	dst = append(dst, `,"sip_code":`...)
	dst = strconv.AppendInt(dst, int64(info.SIPCode), 10)
	dst = append(dst, `,"sip_reason":`...)
	dst = AppendJSONString(dst, info.SIPReason)
	dst = append(dst, `,"message":`...)
	dst = AppendJSONString(dst, info.Message)
	dst = append(dst, `,"country":`...)
	dst = AppendJSONString(dst, v.Country)
	dst = append(dst, `,"e164":`...)
	dst = AppendJSONString(dst, b2s(v.E164Bytes()))
	dst = append(dst, `,"account":`...)
	dst = AppendJSONString(dst, v.Account)
	dst = append(dst, `,"rule":`...)
	var rb [2048]byte
	dst = AppendJSONString(dst, b2s(v.AppendRule(rb[:0])))
	dst = append(dst, `,"max_channels":`...)
	dst = strconv.AppendInt(dst, int64(v.MaxChannels), 10)
	dst = append(dst, `,"max_cps":`...)
	dst = strconv.AppendInt(dst, int64(v.MaxCPS), 10)
	if v.AccountMaxChannels != 0 || v.AccountMaxCPS != 0 {
		dst = append(dst, `,"account_max_channels":`...)
		dst = strconv.AppendInt(dst, int64(v.AccountMaxChannels), 10)
		dst = append(dst, `,"account_max_cps":`...)
		dst = strconv.AppendInt(dst, int64(v.AccountMaxCPS), 10)
	}
	if v.DecidedBy != matcher.DecidedByNone {
		dst = append(dst, `,"decided_by":"`...)
		dst = append(dst, v.DecidedBy.String()...)
		dst = append(dst, `","rn":`...)
		dst = AppendJSONString(dst, b2s(v.RNBytes()))
	}
	if v.Template != "" {
		dst = append(dst, `,"template":`...)
		dst = AppendJSONString(dst, v.Template)
	}
	return append(dst, '}')
}

// TestAppendVerdictMatchesRef: every action with every reason (and one
// past the table), with plain and escaped text, encodes as before.
func TestAppendVerdictMatchesRef(t *testing.T) {
	texts := []string{"", "GB", "acme", `a"b\c`, "tab\there", "\xff\xfe", "ünï", "x\x01y"}
	for a := matcher.Action(0); a <= 3; a++ {
		for r := matcher.Reason(0); int(r) <= len(matcher.Reasons); r++ {
			for i, s := range texts {
				caps := []int{0, 7, 160, 99999, 100000, -1, 1 << 40, 10}
				v := matcher.Verdict{Action: a, Reason: r, Country: s, Account: s, Template: s,
					MaxChannels: caps[i%len(caps)], MaxCPS: caps[(i+1)%len(caps)], AccountMaxCPS: int(r)}
				got := AppendVerdict([]byte("x"), &v)
				want := appendVerdictRef([]byte("x"), &v)
				if !bytes.Equal(got, want) {
					t.Fatalf("action %d reason %d text %q:\n got %s\nwant %s", a, r, s, got, want)
				}
			}
		}
	}
}

// TestAppendVerdictDecisions: the verdicts of real decisions (allowed,
// refused, a rule naming an operator's text) encode as before.
func TestAppendVerdictDecisions(t *testing.T) {
	h := benchHandler(&testing.B{})
	for _, q := range []matcher.Query{
		{To: "+14155550123", Account: "acme"},
		{To: "+5355512345", Account: "acme"},
		{To: "+447000000000", Account: "acme"},
		{To: "+442000000000", Account: "acme"},
		{To: "911", Account: "acme"},
		{To: "+14155550123;rn=+5355512345", Account: "acme"},
		{To: "nonsense\"\\", Account: "ac\"me\xff"},
	} {
		v := h.m.Decide(&q)
		got := AppendVerdict(nil, &v)
		want := appendVerdictRef(nil, &v)
		if !bytes.Equal(got, want) {
			t.Fatalf("%+v:\n got %s\nwant %s", q, got, want)
		}
	}
}

// FuzzAppendJSONInPlace: escaping in place is AppendJSONString, whatever
// the text and whatever dst held before it.
func FuzzAppendJSONInPlace(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote`, "back\\slash", "\n\r\t\x00", "\xff", "héllo", "ok then \x7f"} {
		f.Add("pre", s, 0)
		f.Add("", s, 64)
	}
	f.Fuzz(func(t *testing.T, pre, s string, spare int) {
		spare &= 255
		dst := make([]byte, len(pre), len(pre)+spare)
		copy(dst, pre)
		got := appendJSONInPlace(dst, func(d []byte) []byte { return append(d, s...) })
		want := AppendJSONString([]byte(pre), s)
		if !bytes.Equal(got, want) {
			t.Fatalf("pre %q s %q: got %q want %q", pre, s, got, want)
		}
	})
}

// appendHeadRef is appendHead as it was before the cached heads.
func appendHeadRef(out []byte, status int, r *httpReq, ct []byte, n int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, fasthttp.StatusMessage(status)...)
	out = append(out, "\r\n"...)
	out = append(out, "Content-Type: "...)
	out = append(out, ct...)
	out = append(out, "\r\n"...)
	if status != fasthttp.StatusNoContent {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(n), 10)
		out = append(out, "\r\n"...)
	}
	switch {
	case r.close:
		out = append(out, "Connection: close\r\n"...)
	case r.http10KeepAlive:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	return append(out, "\r\n"...)
}

// TestAppendHeadMatchesRef: the cached status lines and the small-number
// writer give the bytes the general path gave.
func TestAppendHeadMatchesRef(t *testing.T) {
	for _, st := range []int{200, 202, 204, 400, 403, 404, 413, 500} {
		for _, ct := range [][]byte{ctJSON, ctText, []byte("text/html")} {
			for _, n := range []int{0, 9, 10, 221, 99999, 100000, 1 << 20} {
				for _, r := range []httpReq{{}, {close: true}, {http10KeepAlive: true}} {
					got := appendHead([]byte("x"), st, &r, ct, n)
					want := appendHeadRef([]byte("x"), st, &r, ct, n)
					if !bytes.Equal(got, want) {
						t.Fatalf("%d %s %d %+v:\n got %q\nwant %q", st, ct, n, r, got, want)
					}
				}
			}
		}
	}
	for n := -1000; n < 200000; n++ {
		if got, want := appendInt(nil, n), strconv.AppendInt(nil, int64(n), 10); !bytes.Equal(got, want) {
			t.Fatalf("appendInt(%d) = %q, want %q", n, got, want)
		}
	}
}
