package handler

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/handler/admin"
	"github.com/valyala/fasthttp"
)

// consoleReq sends an admin request with the headers given (cookie, CSRF,
// Origin, Authorization) and a body.
func consoleReq(t *testing.T, e *env, method, uri string, hdr map[string]string, body string) resp {
	t.Helper()
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://tollgate" + uri)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.SetBodyString(body)
	}
	if err := e.admin.DoTimeout(req, res, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	r := resp{status: res.StatusCode(), body: append([]byte(nil), res.Body()...), hdr: map[string]string{}}
	for k, v := range res.Header.All() {
		r.hdr[string(k)] = string(v)
	}
	return r
}

// signIn signs in over the API as the console page does and returns the
// session cookie's value and the CSRF token.
func signIn(t *testing.T, e *env) (cookie, csrf string, setCookie string) {
	t.Helper()
	r := consoleReq(t, e, "POST", "/console/session", map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://tollgate"}, "")
	if r.status != 200 {
		t.Fatalf("sign-in: %d %s", r.status, r.body)
	}
	var s struct {
		Name    string    `json:"name"`
		CSRF    string    `json:"csrf"`
		Expires time.Time `json:"expires"`
	}
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "ops" || len(s.CSRF) < 40 || time.Until(s.Expires) < 29*time.Minute {
		t.Fatalf("session %+v", s)
	}
	setCookie = r.hdr["Set-Cookie"]
	v, _, _ := strings.Cut(strings.TrimPrefix(setCookie, admin.ConsoleCookie+"="), ";")
	if len(v) < 40 {
		t.Fatalf("Set-Cookie %q", setCookie)
	}
	return v, s.CSRF, setCookie
}

func TestConsoleSessionAndCSRF(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US"}`)
	failures := func() uint64 { return e.h.a.AuthFailures() }

	// The pages need no credentials and come with a strict policy.
	r := consoleReq(t, e, "GET", "/console/", nil, "")
	if r.status != 200 || !strings.Contains(string(r.body), `<script src="app.js"`) || !strings.Contains(r.hdr["Content-Security-Policy"], "script-src 'self'") {
		t.Fatalf("GET /console/: %d %v", r.status, r.hdr)
	}
	for _, p := range []string{"/console/app.js", "/console/app.css"} {
		if r := consoleReq(t, e, "GET", p, nil, ""); r.status != 200 || len(r.body) < 1000 {
			t.Errorf("GET %s: %d, %d bytes", p, r.status, len(r.body))
		}
	}
	if r := consoleReq(t, e, "GET", "/console/nope.js", nil, ""); r.status != 404 {
		t.Errorf("missing file: %d", r.status)
	}
	for _, p := range []string{"/console/../../etc/passwd", "/console/..%2f..%2fconsole.go", "/console/%2e%2e/console.go"} {
		if r := consoleReq(t, e, "GET", p, nil, ""); r.status == 200 {
			t.Errorf("GET %s: %d %.80s", p, r.status, r.body)
		}
	}

	// A wrong token is refused and counted.
	before := failures()
	r = consoleReq(t, e, "POST", "/console/session", map[string]string{"Authorization": "Bearer wrong-token-0123456789"}, "")
	if r.status != 401 || r.hdr["Set-Cookie"] != "" || failures() != before+1 {
		t.Fatalf("wrong token: %d %s, cookie %q, failures %d→%d", r.status, r.body, r.hdr["Set-Cookie"], before, failures())
	}
	// Sign-in from another site's page is refused.
	r = consoleReq(t, e, "POST", "/console/session", map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}, "")
	if r.status != 403 || r.hdr["Set-Cookie"] != "" {
		t.Fatalf("foreign origin sign-in: %d %s", r.status, r.body)
	}

	cookie, csrf, set := signIn(t, e)
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("Set-Cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "secure") || strings.Contains(set, "expires") {
		t.Errorf("Set-Cookie %q over plain HTTP: no Secure, no expiry", set)
	}
	r = consoleReq(t, e, "POST", "/console/session", map[string]string{"Authorization": "Bearer " + testToken, "X-Forwarded-Proto": "https"}, "")
	if r.status != 200 || !strings.Contains(r.hdr["Set-Cookie"], "; secure") {
		t.Fatalf("sign-in behind a TLS proxy: %d %q", r.status, r.hdr["Set-Cookie"])
	}
	ck := admin.ConsoleCookie + "=" + cookie
	if r := consoleReq(t, e, "GET", "/console/session", map[string]string{"Cookie": ck}, ""); r.status != 200 || !strings.Contains(string(r.body), csrf) {
		t.Fatalf("GET session: %d %s", r.status, r.body)
	}
	if r := consoleReq(t, e, "GET", "/console/session", map[string]string{"Cookie": ck, "Sec-Fetch-Site": "same-site"}, ""); r.status != 403 || strings.Contains(string(r.body), csrf) {
		t.Fatalf("GET session from another port of the host: %d %s", r.status, r.body)
	}
	// Reads need the cookie only, from the console's own origin.
	for _, tc := range []struct {
		site   string
		status int
	}{{"", 200}, {"same-origin", 200}, {"none", 200}, {"same-site", 403}, {"cross-site", 403}} {
		h := map[string]string{"Cookie": ck}
		if tc.site != "" {
			h["Sec-Fetch-Site"] = tc.site
		}
		if r := consoleReq(t, e, "GET", "/v1/accounts/acme", h, ""); r.status != tc.status {
			t.Fatalf("GET with cookie, Sec-Fetch-Site %q: %d %s", tc.site, r.status, r.body)
		}
	}

	lock := "/v1/accounts/acme/lock"
	good := map[string]string{"Cookie": ck, admin.ConsoleCSRFHeader: csrf, "Origin": "http://tollgate"}
	for _, tc := range []struct {
		name   string
		drop   string
		set    map[string]string
		status int
		msg    string
	}{
		{"no CSRF header", admin.ConsoleCSRFHeader, nil, 403, "missing or wrong CSRF token"},
		{"wrong CSRF token", "", map[string]string{admin.ConsoleCSRFHeader: csrf[:len(csrf)-1] + "x"}, 403, "missing or wrong CSRF token"},
		{"no Origin", "Origin", nil, 403, "Origin header"},
		{"foreign Origin", "", map[string]string{"Origin": "http://evil.example"}, 403, "Origin header"},
		{"Origin on another port", "", map[string]string{"Origin": "http://tollgate:8081"}, 403, "Origin header"},
		{"unknown session", "", map[string]string{"Cookie": admin.ConsoleCookie + "=" + strings.Repeat("A", 43)}, 401, "missing or wrong bearer token"},
		{"from another port of the host", "", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, "Sec-Fetch-Site: same-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			for k, v := range good {
				if k != tc.drop {
					h[k] = v
				}
			}
			for k, v := range tc.set {
				h[k] = v
			}
			before := failures()
			// With a body too: a body without valid credentials is never read.
			for _, body := range []string{"", `{"reason":"csrf"}`} {
				r := consoleReq(t, e, "PUT", lock, h, body)
				if r.status != tc.status || !strings.Contains(string(r.body), tc.msg) {
					t.Fatalf("body %q: %d %s, want %d %q", body, r.status, r.body, tc.status, tc.msg)
				}
			}
			if failures() != before+2 {
				t.Errorf("auth failures %d→%d, want +2", before, failures())
			}
			if r := e.mustA("GET", lock, ""); strings.Contains(string(r.body), `"locked":true`) {
				t.Fatalf("refused write locked the account: %s", r.body)
			}
		})
	}

	// With the cookie, the token and the Origin a write goes through the
	// admin API under the token's name.
	r = consoleReq(t, e, "PUT", lock, good, `{"reason":"from the console"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"by":"ops"`) {
		t.Fatalf("console lock: %d %s", r.status, r.body)
	}
	a := e.mustA("GET", "/v1/audit?limit=1", "").json(t)["entries"].([]any)[0].(map[string]any)
	if a["who"] != "ops" || a["action"] != "lock" {
		t.Fatalf("audit entry %v", a)
	}

	// The admin listener's GET /v1/check is the query API's, behind the
	// credentials.
	if r := consoleReq(t, e, "GET", "/v1/check?to=%2B442071234567&account=acme", nil, ""); r.status != 401 {
		t.Fatalf("check without credentials: %d", r.status)
	}
	// With a session it needs the CSRF token too: it counts in the velocity
	// counters, so a page elsewhere must not be able to make it.
	if r := consoleReq(t, e, "GET", "/v1/check?to=%2B442071234567&account=acme", map[string]string{"Cookie": ck}, ""); r.status != 403 {
		t.Fatalf("check with the cookie alone: %d %s", r.status, r.body)
	}
	r = consoleReq(t, e, "GET", "/v1/check?to=%2B442071234567&account=acme", map[string]string{"Cookie": ck, admin.ConsoleCSRFHeader: csrf}, "")
	q := e.q("GET", "/v1/check?to=%2B442071234567&account=acme", "")
	if r.status != q.status || string(r.body) != string(q.body) || r.status != 403 {
		t.Fatalf("admin check %d %s, query check %d %s", r.status, r.body, q.status, q.body)
	}

	// Sign-out needs the CSRF token too, and ends the session.
	if r := consoleReq(t, e, "DELETE", "/console/session", map[string]string{"Cookie": ck}, ""); r.status != 403 {
		t.Fatalf("sign-out without CSRF: %d %s", r.status, r.body)
	}
	if r := consoleReq(t, e, "DELETE", "/console/session", good, ""); r.status != 200 || !strings.Contains(r.hdr["Set-Cookie"], "expires=") {
		t.Fatalf("sign-out: %d %s %q", r.status, r.body, r.hdr["Set-Cookie"])
	}
	if r := consoleReq(t, e, "GET", "/v1/accounts/acme", map[string]string{"Cookie": ck}, ""); r.status != 401 {
		t.Fatalf("after sign-out: %d", r.status)
	}
}
