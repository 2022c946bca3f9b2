package handler

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, header string
		status       int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"basic auth", "Basic b3BzOnMzY3JldA==", 401},
		{"token prefix only", "Bearer " + testToken[:5], 401},
		{"right token", "Bearer " + testToken, 200},
		{"scheme case-insensitive", "bearer " + testToken, 200},
		{"second token", "Bearer another-token-0123456789", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, e.admin, "GET", "/v1/accounts", "", nil)
			if tc.header != "" {
				r = doHeader(t, e, "GET", "/v1/accounts", tc.header)
			}
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 401 {
				if r.hdr["Www-Authenticate"] != `Bearer realm="tollgate"` {
					t.Errorf("WWW-Authenticate %q", r.hdr["Www-Authenticate"])
				}
				contains(t, "401 body", r.body, `{"error":"missing or wrong bearer token`)
			}
		})
	}
	// Every admin endpoint is behind the token, the admin listener's
	// GET /v1/check (the console's "try a call") too.
	for _, p := range []string{"/v1/accounts/acme", "/v1/operator", "/v1/high-risk", "/v1/countries", "/v1/audit", "/v1/check?to=1"} {
		if r := do(t, e.admin, "GET", p, "", nil); r.status != 401 {
			t.Errorf("GET %s without token: %d", p, r.status)
		}
	}
	met := e.q("GET", "/metrics", "")
	contains(t, "metrics", met.body, "tollgate_admin_auth_failures_total ")
}

func doHeader(t *testing.T, e *env, method, uri, auth string) resp {
	t.Helper()
	return doRawAuth(t, e, method, uri, auth)
}

func TestAccounts(t *testing.T) {
	e := newEnv(t)
	// Not found before creation.
	if r := e.a("GET", "/v1/accounts/acme", ""); r.status != 404 || !strings.Contains(string(r.body), `account \"acme\" not found`) {
		t.Fatalf("GET missing: %d %s", r.status, r.body)
	}
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 200 || reason != "ok" {
		t.Fatalf("before: %d %s", s, reason)
	}
	r := e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"us","countries":{"default":"deny","except":["us","CA","US"]},"max_channels":160}`)
	want := `{"name":"acme","home_country":"US","countries":{"default":"deny","except":["CA","US"]},"max_channels":160}` + "\n"
	if string(r.body) != want {
		t.Fatalf("PUT answer (canonical):\n got %s\nwant %s", r.body, want)
	}
	// In force for the next query.
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 403 || reason != "country_barred" {
		t.Fatalf("after PUT: %d %s", s, reason)
	}
	if r := e.mustA("GET", "/v1/accounts/acme", ""); string(r.body) != want {
		t.Fatalf("GET: %s", r.body)
	}

	// Subaccounts.
	if r := e.a("PUT", "/v1/accounts/nope/subaccounts/sales", `{}`); r.status != 404 {
		t.Fatalf("sub of missing account: %d %s", r.status, r.body)
	}
	r = e.mustA("PUT", "/v1/accounts/acme/subaccounts/sales", `{"countries":{"default":"allow","except":[]},"max_cps":5}`)
	contains(t, "sub PUT", r.body, `{"account":"acme","subaccount":"sales","countries":{"default":"allow","except":[]},"max_cps":5}`)
	if s, reason := e.verdict("to=%2B5355512345&account=acme&subaccount=sales"); s != 200 || reason != "ok" {
		t.Fatalf("subaccount override: %d %s", s, reason)
	}
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=acme&subaccount=sales", "")
	if m := r.json(t); m["max_channels"] != 160.0 || m["max_cps"] != 5.0 {
		t.Fatalf("inherited caps: %s", r.body)
	}
	e.mustA("GET", "/v1/accounts/acme/subaccounts/sales", "")
	if r := e.a("GET", "/v1/accounts/acme/subaccounts/other", ""); r.status != 404 {
		t.Fatalf("missing sub: %d", r.status)
	}
	// A PUT of the account without "subaccounts" keeps them.
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US","countries":{"default":"deny","except":["US"]},"max_channels":160}`)
	if r := e.mustA("GET", "/v1/accounts/acme", ""); !strings.Contains(string(r.body), `"subaccounts":{"sales":`) {
		t.Fatalf("subaccounts lost on account PUT: %s", r.body)
	}
	r = e.mustA("DELETE", "/v1/accounts/acme/subaccounts/sales", "")
	contains(t, "sub DELETE", r.body, `{"deleted":{"account":"acme","subaccount":"sales"`)
	if s, _ := e.verdict("to=%2B5355512345&account=acme&subaccount=sales"); s != 403 {
		t.Fatalf("subaccount still in force after DELETE: %d", s)
	}
	if r := e.a("DELETE", "/v1/accounts/acme/subaccounts/sales", ""); r.status != 404 {
		t.Fatalf("second sub DELETE: %d", r.status)
	}

	// Listing and paging.
	for _, n := range []string{"b", "c", "d"} {
		e.mustA("PUT", "/v1/accounts/"+n, `{}`)
	}
	var list struct {
		Accounts []map[string]any
		Total    int
		Next     string
	}
	json.Unmarshal(e.mustA("GET", "/v1/accounts", "").body, &list)
	if list.Total != 4 || len(list.Accounts) != 4 || list.Accounts[0]["name"] != "acme" || list.Next != "" {
		t.Fatalf("list: %+v", list)
	}
	json.Unmarshal(e.mustA("GET", "/v1/accounts?limit=2&after=acme", "").body, &list)
	if len(list.Accounts) != 2 || list.Accounts[0]["name"] != "b" || list.Next != "c" {
		t.Fatalf("page: %+v", list)
	}
	if r := e.a("GET", "/v1/accounts?limit=x", ""); r.status != 400 || r.json(t)["field"] != "limit" {
		t.Fatalf("bad limit: %d %s", r.status, r.body)
	}

	// Delete.
	r = e.mustA("DELETE", "/v1/accounts/acme", "")
	contains(t, "DELETE", r.body, `{"deleted":{"name":"acme"`)
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 200 || reason != "ok" {
		t.Fatalf("after DELETE: %d %s", s, reason)
	}
	if r := e.a("DELETE", "/v1/accounts/acme", ""); r.status != 404 {
		t.Fatalf("second DELETE: %d", r.status)
	}
	if r := e.a("POST", "/v1/accounts/acme", "{}"); r.status != 405 || r.hdr["Allow"] != "GET, PUT, DELETE" {
		t.Fatalf("POST: %d %v", r.status, r.hdr)
	}
}

// Each bad body is refused with 400 naming the field, and nothing changes:
// not the stored account, not the decision, not the audit log.
func TestAccountValidation(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	before := e.mustA("GET", "/v1/accounts/acme", "").body
	auditBefore := e.mustA("GET", "/v1/audit", "").body
	cases := []struct {
		name, uri, body, field, msg string
	}{
		{"unknown country", "/v1/accounts/acme", `{"countries":{"default":"deny","except":["US","XX"]}}`, "countries.except[1]", "XX"},
		{"bad default", "/v1/accounts/acme", `{"countries":{"default":"maybe"}}`, "countries.default", "maybe"},
		{"missing default", "/v1/accounts/acme", `{"countries":{"except":["US"]}}`, "countries.default", "required"},
		{"bad home country", "/v1/accounts/acme", `{"home_country":"ZZ"}`, "home_country", "ZZ"},
		{"malformed prefix", "/v1/accounts/acme", `{"allow_prefixes":["+44a0"]}`, "allow_prefixes[0]", "not a digit"},
		{"prefix starting 0", "/v1/accounts/acme", `{"block_prefixes":["+1","+0"]}`, "block_prefixes[1]", ""},
		{"bad high_risk", "/v1/accounts/acme", `{"high_risk":"sometimes"}`, "high_risk", "sometimes"},
		{"negative cap", "/v1/accounts/acme", `{"max_channels":-1}`, "max_channels", "outside"},
		{"cap wrong type", "/v1/accounts/acme", `{"max_cps":"20"}`, "max_cps", "expected int"},
		{"except wrong type", "/v1/accounts/acme", `{"countries":{"default":"deny","except":"US"}}`, "countries.except", "expected []string"},
		{"unknown field", "/v1/accounts/acme", `{"home_country":"US","colour":"red"}`, "colour", "unknown field"},
		{"bad JSON", "/v1/accounts/acme", `{"home_country":"US",}`, "body", "malformed JSON"},
		{"truncated JSON", "/v1/accounts/acme", `{"home_country":"US"`, "body", "truncated"},
		{"two objects", "/v1/accounts/acme", `{} {}`, "body", "unexpected data"},
		{"empty body", "/v1/accounts/acme", ``, "body", "empty"},
		{"array body", "/v1/accounts/acme", `[]`, "body", "expected"},
		{"bad account name", "/v1/accounts/bad%20name", `{}`, "account", "not allowed"},
		{"bad subaccount name", "/v1/accounts/acme/subaccounts/bad%21", `{}`, "subaccount", "not allowed"},
		{"bad subaccount field", "/v1/accounts/acme/subaccounts/s", `{"countries":{"default":"deny","except":["region:atlantis"]}}`, "countries.except[0]", "atlantis"},
		{"bad nested subaccount", "/v1/accounts/acme", `{"subaccounts":{"s":{"max_cps":-5}}}`, "subaccounts.s.max_cps", ""},
		// encoding/json let the last duplicate win and folded keys' case.
		{"countries twice", "/v1/accounts/acme", `{"countries":{"default":"deny","except":["US"]},"countries":{"default":"allow","except":[]}}`, "countries", "given twice"},
		{"nested key twice", "/v1/accounts/acme", `{"subaccounts":{"s":{"max_cps":1,"max_cps":500}}}`, "subaccounts.s.max_cps", "given twice"},
		{"key case", "/v1/accounts/acme", `{"Max_Channels":5}`, "Max_Channels", `did you mean "max_channels"`},
		{"operator key twice", "/v1/operator", `{"unknown_accounts":"reject","unknown_accounts":"default","default":{}}`, "unknown_accounts", "given twice"},
		{"non-ASCII account name", "/v1/accounts/caf%C3%A9", `{}`, "account", `'é'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.a("PUT", tc.uri, tc.body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := r.json(t)
			if m["field"] != tc.field || !strings.Contains(m["error"].(string), tc.msg) {
				t.Fatalf("got %s, want field %q and %q in the message", r.body, tc.field, tc.msg)
			}
		})
	}
	if after := e.mustA("GET", "/v1/accounts/acme", "").body; string(after) != string(before) {
		t.Fatalf("account changed by refused writes:\n%s\n%s", before, after)
	}
	if a := e.mustA("GET", "/v1/audit", "").body; string(a) != string(auditBefore) {
		t.Fatal("refused writes reached the audit log")
	}
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 403 || reason != "country_barred" {
		t.Fatalf("decision changed: %d %s", s, reason)
	}
}

func TestOperator(t *testing.T) {
	e := newEnv(t)
	r := e.mustA("GET", "/v1/operator", "")
	if string(r.body) != `{"default":{}}`+"\n" {
		t.Fatalf("initial operator: %s", r.body)
	}
	// Disable a country, then lift it.
	r = e.mustA("PUT", "/v1/operator/countries/cu", `{"reason":"fraud wave"}`)
	if string(r.body) != `{"country":"CU","name":"Cuba","disabled":true,"reason":"fraud wave"}`+"\n" {
		t.Fatalf("disable: %s", r.body)
	}
	e.mustA("PUT", "/v1/accounts/acme", `{"countries":{"default":"allow","except":[]}}`)
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 403 || reason != "country_disabled" {
		t.Fatalf("disabled country: %d %s", s, reason)
	}
	r = e.q("GET", "/v1/check?to=%2B5355512345&account=acme", "")
	contains(t, "rule", r.body, "fraud wave")
	var cl struct{ Countries []map[string]any }
	json.Unmarshal(e.mustA("GET", "/v1/countries", "").body, &cl)
	found := false
	for _, c := range cl.Countries {
		if c["code"] == "CU" {
			found = c["status"] == "disabled" && c["reason"] == "fraud wave" && c["calling_code"] == 53.0 && c["name"] == "Cuba"
		}
	}
	if !found || len(cl.Countries) < 240 {
		t.Fatalf("countries listing: %d entries, CU right: %v", len(cl.Countries), found)
	}
	e.mustA("DELETE", "/v1/operator/countries/CU", "")
	if s, _ := e.verdict("to=%2B5355512345&account=acme"); s != 200 {
		t.Fatalf("enabled again: %d", s)
	}
	for _, tc := range []struct {
		method, uri, body string
		status            int
		field             string
	}{
		{"PUT", "/v1/operator/countries/XX", `{}`, 400, "country"},
		{"PUT", "/v1/operator/countries/CU", `{"reason":"` + strings.Repeat("r", 300) + `"}`, 400, "reason"},
		{"PUT", "/v1/operator/countries/CU", `{"why":"x"}`, 400, "why"},
		{"DELETE", "/v1/operator/countries/CU", ``, 404, ""},
		{"GET", "/v1/operator/countries/CU", ``, 405, ""},
		{"PUT", "/v1/operator/prefixes/+44a", `{}`, 400, "prefix"},
		{"DELETE", "/v1/operator/prefixes/+4420", ``, 404, ""},
		{"PUT", "/v1/operator", `{"unknown_accounts":"maybe"}`, 400, "unknown_accounts"},
		{"PUT", "/v1/operator", `{"blocked_prefixes":[{"prefix":"+1"},{"prefix":"001"}]}`, 400, "blocked_prefixes[1].prefix"},
		{"PUT", "/v1/operator", `{"default":{"countries":{"default":"nah"}}}`, 400, "default.countries.default"},
		{"PUT", "/v1/operator", `{"range_velocity":{"accounts":{"warning":10},"action":"block"}}`, 400, "range_velocity.action"},
		{"PUT", "/v1/operator", `{"range_velocity":{"accounts":{"critical":500}}}`, 400, "range_velocity.accounts.critical"},
		{"PUT", "/v1/operator", `{"default":{"velocity":{"rules":[{"distinct_countries":{"critical":3},"range_digits":4}]}}}`, 400, "default.velocity.rules[0].range_digits"},
		{"PUT", "/v1/accounts/acme", `{"velocity":{"rules":[{"short_calls":{"critical":150}}]}}`, 400, "velocity.rules[0].short_calls.critical"},
	} {
		t.Run(tc.method+" "+tc.uri, func(t *testing.T) {
			r := e.a(tc.method, tc.uri, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.field != "" && r.json(t)["field"] != tc.field {
				t.Fatalf("field: %s, want %s", r.body, tc.field)
			}
		})
	}

	// Operator-blocked prefixes, in path form (+ and %2B) and body-less.
	if s, _ := e.verdict("to=%2B442071234567&account=acme"); s != 200 {
		t.Fatalf("before the block: %d", s)
	}
	r = e.mustA("PUT", "/v1/operator/prefixes/%2B4420", `{"reason":"fraud range"}`)
	if string(r.body) != `{"prefix":"+4420","reason":"fraud range"}`+"\n" {
		t.Fatalf("block: %s", r.body)
	}
	e.mustA("PUT", "/v1/operator/prefixes/0044 21", "")
	r = e.q("GET", "/v1/check?to=%2B442071234567&account=acme", "")
	if m := r.json(t); r.status != 403 || m["reason"] != "number_barred" || !strings.Contains(m["rule"].(string), "operator: prefix +4420 blocked") {
		t.Fatalf("blocked prefix: %d %s", r.status, r.body)
	}
	op := e.mustA("GET", "/v1/operator", "").body
	contains(t, "operator", op, `"blocked_prefixes":[{"prefix":"+4420","reason":"fraud range"},{"prefix":"+4421","reason":""}]`)
	e.mustA("DELETE", "/v1/operator/prefixes/+4420", "")
	if s, _ := e.verdict("to=%2B442071234567&account=acme"); s != 200 {
		t.Fatalf("unblocked: %d", s)
	}

	// The whole operator document.
	e.mustA("PUT", "/v1/operator", `{"unknown_accounts":"reject","default":{"max_channels":10}}`)
	if s, reason := e.verdict("to=%2B14155550123&account=stranger"); s != 403 || reason != "not_permitted" {
		t.Fatalf("unknown account rejected: %d %s", s, reason)
	}
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=acme", "")
	if m := r.json(t); m["max_channels"] != 10.0 {
		t.Fatalf("operator default inherited: %s", r.body)
	}
}

const hrCSV = "# version: test-1\nprefix,country,category,source\n+4420,GB,irsf,test list\n+53,CU,irsf,\"a, quoted source\"\n"

func TestHighRisk(t *testing.T) {
	e := newEnv(t)
	r := e.mustA("GET", "/v1/high-risk", "")
	if r.hdr["X-Tollgate-High-Risk-Origin"] != "builtin" || !strings.HasPrefix(r.hdr["Content-Type"], "text/csv") {
		t.Fatalf("builtin export headers: %v", r.hdr)
	}
	contains(t, "builtin export", r.body, "prefix,country,category,source\n", "# version: ")

	if s, reason := e.verdict("to=%2B442071234567"); s != 200 || reason != "ok" {
		t.Fatalf("before: %d %s", s, reason)
	}
	r = e.mustA("PUT", "/v1/high-risk", hrCSV)
	hr := r.json(t)["high_risk"].(map[string]any)
	if hr["origin"] != "stored" || hr["version"] != "test-1" || hr["entries"] != 2.0 || hr["source"] != "api:ops" {
		t.Fatalf("PUT answer: %s", r.body)
	}
	if s, reason := e.verdict("to=%2B442071234567"); s != 403 || reason != "number_barred" {
		t.Fatalf("stored list not in force: %d %s", s, reason)
	}
	r = e.mustA("GET", "/v1/high-risk", "")
	contains(t, "export", r.body, "# version: test-1\n", "prefix,country,category,source\n+4420,GB,irsf,test list\n+53,CU,irsf,\"a, quoted source\"\n")
	if r.hdr["X-Tollgate-High-Risk-Entries"] != "2" {
		t.Fatalf("export headers %v", r.hdr)
	}

	// A bad upload is refused with its line, and the list stays.
	for _, tc := range []struct{ name, body, field, msg string }{
		{"bad country", "prefix,country,category,source\n+4420,GB,irsf,x\n+99,XX,irsf,y\n", "line 3", "XX"},
		{"no header", "+4420,GB,irsf,x\n", "line 1", "header"},
		{"bad category", "prefix,country,category,source\n+4420,GB,cheap,x\n", "line 2", "cheap"},
		{"duplicate", "prefix,country,category,source\n+4420,GB,irsf,x\n+44 20,GB,irsf,x\n", "line 3", "already listed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.a("PUT", "/v1/high-risk", tc.body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if m := r.json(t); m["field"] != tc.field || !strings.Contains(m["error"].(string), tc.msg) {
				t.Fatalf("got %s, want %s / %s", r.body, tc.field, tc.msg)
			}
		})
	}
	if s, _ := e.verdict("to=%2B442071234567"); s != 403 {
		t.Fatal("refused upload changed the list")
	}

	// DELETE goes back to the shipped list.
	r = e.mustA("DELETE", "/v1/high-risk", "")
	if r.json(t)["high_risk"].(map[string]any)["origin"] != "builtin" {
		t.Fatalf("DELETE: %s", r.body)
	}
	if s, _ := e.verdict("to=%2B442071234567"); s != 200 {
		t.Fatal("stored list still in force after DELETE")
	}
	if r := e.a("DELETE", "/v1/high-risk", ""); r.status != 404 {
		t.Fatalf("second DELETE: %d", r.status)
	}
}

func TestHighRiskFileAndReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "hr.csv", hrCSV)
	e := newEnv(t, withHighRiskFile(path))
	if s, reason := e.verdict("to=%2B442071234567"); s != 403 || reason != "number_barred" {
		t.Fatalf("file list not in force: %d %s", s, reason)
	}
	r := e.a("PUT", "/v1/high-risk", hrCSV)
	if r.status != 409 || !strings.Contains(string(r.body), "-high-risk-file") {
		t.Fatalf("PUT with a file: %d %s", r.status, r.body)
	}
	if r := e.a("DELETE", "/v1/high-risk", ""); r.status != 409 {
		t.Fatalf("DELETE with a file: %d", r.status)
	}

	// A good edit, reloaded.
	writeFile(t, dir, "hr.csv", "# version: test-2\nprefix,country,category,source\n+4471,GB,irsf,edited\n")
	r = e.mustA("POST", "/v1/reload", "")
	if hr := r.json(t)["high_risk"].(map[string]any); hr["version"] != "test-2" || hr["origin"] != "file" {
		t.Fatalf("reload answer %s", r.body)
	}
	if s, _ := e.verdict("to=%2B442071234567"); s != 200 {
		t.Fatal("old list still in force")
	}
	if s, _ := e.verdict("to=%2B447112345678"); s != 403 {
		t.Fatal("new list not in force")
	}

	// A broken edit: refused with its line, the old snapshot keeps serving.
	writeFile(t, dir, "hr.csv", "prefix,country,category,source\n+4472,GB,irsf,ok\n+4473,GB,nonsense,bad\n")
	r = e.a("POST", "/v1/reload", "")
	if r.status != 422 || r.json(t)["field"] != "line 3" || !strings.Contains(string(r.body), "nonsense") {
		t.Fatalf("bad reload: %d %s", r.status, r.body)
	}
	if s, _ := e.verdict("to=%2B447112345678"); s != 403 {
		t.Fatal("a refused reload changed the snapshot")
	}
	met := e.q("GET", "/metrics", "").body
	contains(t, "metrics", met, "tollgate_reload_success 0", `tollgate_reloads_total{result="failure"} 1`, `tollgate_reloads_total{result="success"} 2`)

	os.Remove(path)
	if r := e.a("POST", "/v1/reload", ""); r.status != 422 {
		t.Fatalf("missing file reload: %d", r.status)
	}
	writeFile(t, dir, "hr.csv", hrCSV)
	e.mustA("POST", "/v1/reload", "")
	contains(t, "metrics", e.q("GET", "/metrics", "").body, "tollgate_reload_success 1")
	if r := e.a("GET", "/v1/reload", ""); r.status != 405 {
		t.Fatalf("GET reload: %d", r.status)
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"max_cps":1}`)
	e.mustA("PUT", "/v1/accounts/acme", `{"max_cps":2}`)
	doRawAuth(t, e, "PUT", "/v1/operator/countries/CU", "Bearer another-token-0123456789")
	e.mustA("DELETE", "/v1/accounts/acme", "")
	var out struct {
		Entries []struct {
			ID     uint64
			Who    string
			Remote string
			Action string
			Object string
			Before json.RawMessage
			After  json.RawMessage
			Time   string
		}
		Next uint64
	}
	json.Unmarshal(e.mustA("GET", "/v1/audit", "").body, &out)
	if len(out.Entries) != 4 {
		t.Fatalf("entries: %+v", out.Entries)
	}
	got := ""
	for _, en := range out.Entries {
		got += fmt.Sprintf("%d %s %s %s %s>%s|", en.ID, en.Who, en.Action, en.Object, en.Before, en.After)
	}
	want := `4 ops account.delete accounts/acme {"max_cps":2}>null|` +
		`3 ci country.disable operator/countries/CU null>{"reason":""}|` +
		`2 ops account.put accounts/acme {"max_cps":1}>{"max_cps":2}|` +
		`1 ops account.put accounts/acme null>{"max_cps":1}|`
	if got != want {
		t.Fatalf("audit:\n got %s\nwant %s", got, want)
	}
	if out.Entries[0].Time == "" || out.Entries[0].Remote == "" {
		t.Fatalf("audit entry lacks time or remote: %+v", out.Entries[0])
	}
	json.Unmarshal(e.mustA("GET", "/v1/audit?limit=2&before=4", "").body, &out)
	if len(out.Entries) != 2 || out.Entries[0].ID != 3 || out.Next != 2 {
		t.Fatalf("audit page: %+v", out)
	}
	// One log line per admin change.
	if n := strings.Count(e.logText(), `"message":"admin change"`); n != 4 {
		t.Fatalf("%d admin change log lines, want 4", n)
	}
}

// A write the store refuses answers 500 and changes nothing in force.
func TestStoreErrorChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	e.st.Close() // every write now fails
	r := e.a("PUT", "/v1/accounts/acme", `{}`)
	if r.status != 500 || !strings.Contains(string(r.body), "nothing was changed") {
		t.Fatalf("store failure: %d %s", r.status, r.body)
	}
	if s, reason := e.verdict("to=%2B5355512345&account=acme"); s != 403 || reason != "country_barred" {
		t.Fatalf("a failed write was swapped in: %d %s", s, reason)
	}
	contains(t, "metrics", e.q("GET", "/metrics", "").body, "tollgate_store_errors_total 1")
}

func TestAdminNotFound(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/v1", "/v2/accounts", "/v1/nothing", "/v1/accounts/a/b", "/v1/operator/x/y"} {
		if r := e.a("GET", p, ""); r.status != 404 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
}
