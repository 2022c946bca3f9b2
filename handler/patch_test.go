package handler

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// doHdr sends an admin request with extra headers.
func (e *env) doHdr(method, uri, body string, hdr map[string]string) resp {
	e.t.Helper()
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://tollgate" + uri)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBodyString(body)
	if err := e.admin.DoTimeout(req, res, 10*time.Second); err != nil {
		e.t.Fatalf("%s %s: %v", method, uri, err)
	}
	r := resp{status: res.StatusCode(), body: append([]byte(nil), res.Body()...), hdr: map[string]string{}}
	for k, v := range res.Header.All() {
		r.hdr[string(k)] = string(v)
	}
	return r
}

const patchAcme = `{"home_country":"US","countries":{"default":"deny","except":["US","CA"]},"high_risk":"allow",` +
	`"max_destination_rate":1,"block_prefixes":["+4470"],"velocity":{"rules":[{"name":"long","call_duration":{"critical":86400}}]}}`

// TestPatchKeepsWhatItDoesNotName is the case that hurt: adding origin
// settings with PUT wiped velocity and max_destination_rate; PATCH keeps
// them.
func TestPatchKeepsWhatItDoesNotName(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", patchAcme)
	r := e.mustA("PATCH", "/v1/accounts/acme", `{"origin":{"mobility":"roaming"},"countries":{"except":["US","CA","DE"]},"block_prefixes":null}`)
	contains(t, "patched", r.body, `"max_destination_rate":1`, `"velocity":{"rules":[{"name":"long"`, `"mobility":"roaming"`, `"except":["CA","DE","US"]`, `"default":"deny"`)
	if strings.Contains(string(r.body), "block_prefixes") {
		t.Errorf("null did not remove block_prefixes: %s", r.body)
	}
	if s, reason := e.verdict("to=%2B4930123456&account=acme"); s != 200 || reason != "ok" {
		t.Errorf("DE after the patch: %d %s", s, reason)
	}
	a := e.mustA("GET", "/v1/audit?limit=1", "")
	contains(t, "audit", a.body, `"action":"account.patch"`, `"object":"accounts/acme"`, `"before":{`, `"max_destination_rate":1`)

	// The same intent with PUT replaces: what it leaves out is gone.
	r = e.mustA("PUT", "/v1/accounts/acme", `{"origin":{"mobility":"roaming"}}`)
	if strings.Contains(string(r.body), "max_destination_rate") || strings.Contains(string(r.body), "velocity") {
		t.Errorf("PUT kept fields it did not name: %s", r.body)
	}
}

func TestPatchRefusals(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", patchAcme)
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/s1", `{"max_cps":3}`)
	before := e.mustA("GET", "/v1/accounts/acme", "").body
	for _, tc := range []struct {
		name, method, path, body, ct string
		status                       int
		field                        string
	}{
		{"invalid result", "PATCH", "/v1/accounts/acme", `{"max_cps":-1}`, "", 400, "max_cps"},
		{"invalid nested", "PATCH", "/v1/accounts/acme", `{"countries":{"default":"maybe"}}`, "", 400, "countries.default"},
		{"unknown field", "PATCH", "/v1/accounts/acme", `{"max_cpss":3}`, "", 400, "max_cpss"},
		{"repeated key", "PATCH", "/v1/accounts/acme", `{"max_cps":3,"max_cps":4}`, "", 400, "max_cps"},
		{"not an object", "PATCH", "/v1/accounts/acme", `[{"op":"add"}]`, "", 400, "body"},
		{"empty", "PATCH", "/v1/accounts/acme", ``, "", 400, "body"},
		{"malformed", "PATCH", "/v1/accounts/acme", `{"max_cps":`, "", 400, "max_cps"},
		{"malformed top", "PATCH", "/v1/accounts/acme", `{"max_cps":1`, "", 400, "body"},
		{"json patch", "PATCH", "/v1/accounts/acme", `[{"op":"add","path":"/max_cps","value":3}]`, "application/json-patch+json", 415, "Content-Type"},
		{"no account", "PATCH", "/v1/accounts/nobody", `{"max_cps":3}`, "", 404, ""},
		{"no subaccount", "PATCH", "/v1/accounts/acme/subaccounts/s9", `{"max_cps":3}`, "", 404, ""},
		{"invalid sub", "PATCH", "/v1/accounts/acme/subaccounts/s1", `{"high_risk":"sometimes"}`, "", 400, "high_risk"},
		{"invalid operator", "PATCH", "/v1/operator", `{"unknown_accounts":"maybe"}`, "", 400, "unknown_accounts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.ct != "" {
				hdr["Content-Type"] = tc.ct
			}
			r := e.doHdr(tc.method, tc.path, tc.body, hdr)
			if r.status != tc.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.field != "" {
				if f, _ := r.json(t)["field"].(string); f != tc.field {
					t.Errorf("field %q, want %q: %s", f, tc.field, r.body)
				}
			}
		})
	}
	if after := e.mustA("GET", "/v1/accounts/acme", "").body; string(after) != string(before) {
		t.Errorf("a refused patch changed the account:\n%s\n%s", before, after)
	}
}

func TestPatchIfMatch(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", patchAcme)
	rev := e.mustA("GET", "/v1/accounts/acme", "").hdr["Etag"]
	if rev == "" {
		t.Fatal("GET sends no ETag")
	}
	r := e.doHdr("PATCH", "/v1/accounts/acme", `{"max_cps":5}`, map[string]string{"If-Match": rev, "Content-Type": "application/merge-patch+json"})
	if r.status != 200 || r.hdr["Etag"] == rev || r.hdr["Etag"] == "" {
		t.Fatalf("matching If-Match: %d %v %s", r.status, r.hdr, r.body)
	}
	// A second writer with the old revision is refused, nothing applied.
	r = e.doHdr("PATCH", "/v1/accounts/acme", `{"max_cps":9}`, map[string]string{"If-Match": rev})
	if r.status != 412 || !strings.Contains(string(r.body), "changed") {
		t.Fatalf("stale If-Match: %d %s", r.status, r.body)
	}
	contains(t, "after 412", e.mustA("GET", "/v1/accounts/acme", "").body, `"max_cps":5`)

	orev := e.mustA("GET", "/v1/operator", "").hdr["Etag"]
	if r := e.doHdr("PATCH", "/v1/operator", `{"unknown_accounts":"reject"}`, map[string]string{"If-Match": `"stale"`}); r.status != 412 {
		t.Fatalf("operator stale: %d %s", r.status, r.body)
	}
	if r := e.doHdr("PATCH", "/v1/operator", `{"unknown_accounts":"reject"}`, map[string]string{"If-Match": orev}); r.status != 200 {
		t.Fatalf("operator: %d %s", r.status, r.body)
	}
}

func TestPatchSubaccountAndOperator(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", patchAcme)
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/s1", `{"max_cps":3,"max_channels":4}`)
	r := e.mustA("PATCH", "/v1/accounts/acme/subaccounts/s1", `{"max_channels":null,"high_risk":"block"}`)
	contains(t, "sub", r.body, `"max_cps":3`, `"high_risk":"block"`)
	if strings.Contains(string(r.body), "max_channels") {
		t.Errorf("null kept max_channels: %s", r.body)
	}
	contains(t, "audit", e.mustA("GET", "/v1/audit?limit=1", "").body, `"action":"subaccount.patch"`)

	e.mustA("PUT", "/v1/operator/countries/CU", `{"reason":"fraud"}`)
	r = e.mustA("PATCH", "/v1/operator", `{"default":{"max_cps":50}}`)
	contains(t, "operator", r.body, `"CU":{"reason":"fraud"}`, `"max_cps":50`)
	contains(t, "audit", e.mustA("GET", "/v1/audit?limit=1", "").body, `"action":"operator.patch"`)

	// An account patch merges subaccounts one by one.
	r = e.mustA("PATCH", "/v1/accounts/acme", `{"subaccounts":{"s2":{"max_cps":1}}}`)
	contains(t, "subs", r.body, `"s1":{`, `"s2":{"max_cps":1}`)
}
