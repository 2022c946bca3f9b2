package query

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/valyala/fasthttp"
)

// TestCompactFormat: format=compact (GET, POST, JSON-RPC) answers the
// compact line with the JSON answer's status; format=json and no format
// answer the verdict object; any other format, or one given twice, is a 400
// (JSON-RPC: -32602) naming the field.
func TestCompactFormat(t *testing.T) {
	h := benchHandler(&testing.B{})
	const allowLine = "allow|ok|1000|200|OK|+14155550123|160|0|0|0"
	const formatErr = `{"error":"field \"format\" must be given once, as \"json\" or \"compact\""}`
	for _, tc := range []struct {
		name, method, uri, body string
		status                  int
		ctype, want             string // want: the whole body, or its prefix when it ends in "…"
	}{
		{"GET compact", "GET", "/v1/check?to=%2B14155550123&account=acme&format=compact", "", 200, "text/plain; charset=utf-8", allowLine},
		{"GET compact reject", "GET", "/v1/check?format=compact&to=%2B5355512345&account=acme", "", 403, "text/plain; charset=utf-8", "reject|country_barred|2030|403|Barred Country|+5355512345|160|0|0|0"},
		{"GET compact invalid number", "GET", "/v1/check?to=abc&account=acme&format=compact", "", 403, "text/plain; charset=utf-8", "reject|invalid_number|2010|484|Address Incomplete||160|0|0|0"},
		{"GET json", "GET", "/v1/check?to=%2B14155550123&account=acme&format=json", "", 200, "application/json", `{"verdict":"allow","reason":"ok",…`},
		{"GET default", "GET", "/v1/check?to=%2B14155550123&account=acme", "", 200, "application/json", `{"verdict":"allow","reason":"ok",…`},
		{"GET unknown format", "GET", "/v1/check?to=%2B14155550123&format=xml", "", 400, "application/json", formatErr},
		{"GET empty format", "GET", "/v1/check?to=%2B14155550123&format=", "", 400, "application/json", formatErr},
		{"GET format twice", "GET", "/v1/check?to=%2B14155550123&format=compact&format=compact", "", 400, "application/json", formatErr},
		{"POST compact", "POST", "/v1/check", `{"to":"+14155550123","account":"acme","format":"compact"}`, 200, "text/plain; charset=utf-8", allowLine},
		{"POST escaped compact", "POST", "/v1/check", `{"to":"+14155550123","account":"acme","\u0066ormat":"comp\u0061ct"}`, 200, "text/plain; charset=utf-8", allowLine},
		{"POST null format", "POST", "/v1/check", `{"to":"+14155550123","format":null}`, 200, "application/json", `{"verdict":"allow",…`},
		{"POST number format", "POST", "/v1/check", `{"to":"+14155550123","format":1}`, 400, "application/json", formatErr},
		{"POST format twice", "POST", "/v1/check", `{"to":"+14155550123","format":"json","format":"json"}`, 400, "application/json", formatErr},
		{"POST broken after format", "POST", "/v1/check", `{"to":"+14155550123","format":"json",`, 400, "application/json", `{"error":"malformed JSON at byte 37"}`},
		{"POST bad format, then broken", "POST", "/v1/check", `{"to":"1","format":"x"`, 400, "application/json", `{"error":"malformed JSON at byte 22"}`},
		{"POST bad field, then broken", "POST", "/v1/check", `{"to":[]`, 400, "application/json", `{"error":"malformed JSON at byte 8"}`},
		{"RPC compact", "POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","account":"acme","format":"compact"},"id":7}`, 200, "application/json",
			`{"jsonrpc":"2.0","result":"` + allowLine + `","id":7}`},
		{"RPC bad format", "POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","format":"line"},"id":8}`, 200, "application/json",
			`{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid params: field \"format\" must be given once, as \"json\" or \"compact\""},"id":8}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &fasthttp.RequestCtx{}
			ctx.Request.Header.SetMethod(tc.method)
			ctx.Request.SetRequestURI(tc.uri)
			if tc.body != "" {
				ctx.Request.SetBodyString(tc.body)
			}
			h.query(ctx)
			body := strings.TrimSuffix(string(ctx.Response.Body()), "\n")
			if got := ctx.Response.StatusCode(); got != tc.status {
				t.Errorf("status %d, want %d (%s)", got, tc.status, body)
			}
			if got := string(ctx.Response.Header.ContentType()); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if p, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(body, p) {
					t.Errorf("body %s, want it to start %s", body, p)
				}
			} else if body != tc.want {
				t.Errorf("body\n%s\nwant\n%s", body, tc.want)
			}
		})
	}
}

// compactOf splits a compact line, failing unless it has CompactFields.
func compactOf(t *testing.T, line []byte) []string {
	t.Helper()
	f := strings.Split(string(line), "|")
	if len(f) != CompactFields {
		t.Fatalf("%q has %d fields, want %d", line, len(f), CompactFields)
	}
	return f
}

// sameAsJSON fails unless the compact line says what the verdict object
// says, field by field.
func sameAsJSON(t *testing.T, v *matcher.Verdict) {
	t.Helper()
	var obj struct {
		Verdict, Reason, SIPReason, E164   string
		Code, SIPCode, MaxChannels, MaxCPS int
		AccountMaxChannels, AccountMaxCPS  int
	}
	raw := AppendVerdict(nil, v)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("verdict object %s: %v", raw, err)
	}
	num := func(k string) int {
		if f, ok := m[k].(float64); ok {
			return int(f)
		}
		return 0 // account-wide caps left out: none
	}
	obj.Verdict, obj.Reason, obj.SIPReason, obj.E164 = m["verdict"].(string), m["reason"].(string), m["sip_reason"].(string), m["e164"].(string)
	obj.Code, obj.SIPCode, obj.MaxChannels, obj.MaxCPS = num("code"), num("sip_code"), num("max_channels"), num("max_cps")
	obj.AccountMaxChannels, obj.AccountMaxCPS = num("account_max_channels"), num("account_max_cps")
	f := compactOf(t, AppendVerdictCompact(nil, v))
	want := []string{obj.Verdict, obj.Reason, strconv.Itoa(obj.Code), strconv.Itoa(obj.SIPCode),
		string(appendCompactText(nil, obj.SIPReason)), string(appendCompactText(nil, obj.E164)),
		strconv.Itoa(obj.MaxChannels), strconv.Itoa(obj.MaxCPS), strconv.Itoa(obj.AccountMaxChannels), strconv.Itoa(obj.AccountMaxCPS)}
	for i := range want {
		if f[i] != want[i] {
			t.Fatalf("compact field %d is %q, the verdict object says %q (%s)", i, f[i], want[i], raw)
		}
	}
}

// TestCompactMatchesJSON: every reason of matcher.Reasons, with caps and
// account-wide caps, reads the same in both formats.
func TestCompactMatchesJSON(t *testing.T) {
	for r := range matcher.Reasons {
		for i, caps := range [][4]int{{0, 0, 0, 0}, {160, 20, 0, 0}, {10, 2, 300, 50}, {0, 0, 0, 7}} {
			v := matcher.Verdict{Action: []matcher.Action{matcher.Allow, matcher.Reject, matcher.Screen}[i%3], Reason: matcher.Reason(r),
				MaxChannels: caps[0], MaxCPS: caps[1], AccountMaxChannels: caps[2], AccountMaxCPS: caps[3]}
			sameAsJSON(t, &v)
		}
	}
	if got := string(appendCompactText(nil, "a|b\"c\\d\x00\x7f\xc3\xa9 e")); got != "a_b_c_d____ e" {
		t.Errorf("appendCompactText: %q", got)
	}
}

// FuzzAppendVerdictCompact: whatever a check was asked, its compact answer
// has CompactFields fields, is a JSON string's content as it is (the
// JSON-RPC result), and says what the verdict object says.
func FuzzAppendVerdictCompact(f *testing.F) {
	for _, s := range [][2]string{{"+14155550123", "acme"}, {"0800-CALL-NOW", "acme"}, {"+5355512345;rn=+14155550123", ""}, {"112", "x"}, {"sip:+44|20\"7946\\0123@h", "a"}, {"\xff911", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, to, account string) {
		q := matcher.Query{To: to, Account: account}
		v := fuzzHandler.m.Decide(&q)
		line := AppendVerdictCompact(nil, &v)
		compactOf(t, line)
		var back string
		if err := json.Unmarshal([]byte(`"`+string(line)+`"`), &back); err != nil || back != string(line) {
			t.Fatalf("%q is not a JSON string's content as it is (%q, %v)", line, back, err)
		}
		sameAsJSON(t, &v)
	})
}
