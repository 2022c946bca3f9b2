package handler

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

const retailEUJSON = `{"description":"EU retail","home_country":"DE","countries":{"default":"deny","except":["continent:EU"]},"max_channels":10,"max_cps":2,"account_max_channels":20}`

// The templates API end to end: accounts inherit from the template, a
// template change changes every account on it at once (one audit entry),
// the verdict names the template, the operator still wins, and a template
// in use cannot be deleted.
func TestTemplatesAPI(t *testing.T) {
	e := newEnv(t)
	r := e.mustA("PUT", "/v1/templates/retail-eu", retailEUJSON)
	contains(t, "PUT", r.body, `{"name":"retail-eu","accounts":0,"description":"EU retail","home_country":"DE","countries":{"default":"deny","except":["continent:EU"]},"max_channels":10,"max_cps":2,"account_max_channels":20}`)

	// an account naming an unknown template is refused, naming the field
	r = e.a("PUT", "/v1/accounts/shop", `{"template":"retail-us"}`)
	if r.status != 400 {
		t.Fatalf("unknown template: %d %s", r.status, r.body)
	}
	contains(t, "unknown template", r.body, `"field":"template"`, `no template \"retail-us\"`)
	if r := e.a("GET", "/v1/accounts/shop", ""); r.status != 404 {
		t.Fatalf("a refused account was stored: %d %s", r.status, r.body)
	}

	for i := 0; i < 3; i++ {
		e.mustA("PUT", fmt.Sprintf("/v1/accounts/shop%d", i), `{"template":"retail-eu"}`)
	}
	e.mustA("PUT", "/v1/accounts/shop-us", `{"template":"retail-eu","countries":{"default":"deny","except":["US"]},"max_channels":50}`)
	e.mustA("PUT", "/v1/accounts/other", `{"home_country":"DE"}`)

	r = e.q("GET", "/v1/check?to=%2B12125550100&account=shop0", "")
	if r.status != 403 {
		t.Fatalf("US from a template account: %d %s", r.status, r.body)
	}
	contains(t, "template verdict", r.body, `"reason":"country_barred"`,
		`"rule":"account shop0 via template:retail-eu: countries deny-all-except; US not listed"`,
		`"max_channels":10,"max_cps":2,"account_max_channels":20,"account_max_cps":0,"template":"retail-eu"}`)
	r = e.q("GET", "/v1/check?to=%2B12125550100&account=shop-us", "")
	contains(t, "own countries", r.body, `"reason":"ok"`, `"rule":"account shop-us: countries deny-all-except; US listed"`, `"max_channels":50,"max_cps":2`)
	if strings.Contains(string(r.body), `"template"`) {
		t.Errorf("an account's own rule carries a template: %s", r.body)
	}

	// the list and one template say how many accounts use each
	r = e.mustA("GET", "/v1/templates", "")
	contains(t, "list", r.body, `{"templates":[{"name":"retail-eu","accounts":4,`, `"total":1}`)
	contains(t, "GET", e.mustA("GET", "/v1/templates/retail-eu", "").body, `{"name":"retail-eu","accounts":4,`)

	// one PUT of the template changes all its accounts in one audit entry
	before := auditCount(t, e)
	r = e.mustA("PUT", "/v1/templates/retail-eu", `{"home_country":"DE","countries":{"default":"deny","except":["continent:EU","US"]},"max_cps":3}`)
	contains(t, "PUT again", r.body, `"accounts":4`)
	if n := auditCount(t, e); n != before+1 {
		t.Fatalf("a template change wrote %d audit entries, want 1", n-before)
	}
	for i := 0; i < 3; i++ {
		r = e.q("GET", fmt.Sprintf("/v1/check?to=%%2B12125550100&account=shop%d", i), "")
		contains(t, "after the change", r.body, `"reason":"ok"`, `"max_channels":0,"max_cps":3`, `via template:retail-eu: countries deny-all-except; US listed`)
	}
	r = e.q("GET", "/v1/check?to=%2B12125550100&account=shop-us", "")
	contains(t, "own setting after the change", r.body, `"max_channels":50,"max_cps":3`)

	// the operator's disabled countries beat any template
	e.mustA("PUT", "/v1/operator/countries/US", `{"reason":"test"}`)
	r = e.q("GET", "/v1/check?to=%2B12125550100&account=shop0", "")
	contains(t, "operator wins", r.body, `"reason":"country_disabled"`, `"rule":"operator: calls to US disabled: test"`)
	e.mustA("DELETE", "/v1/operator/countries/US", "")

	// a template in use is not deleted; a free one is
	r = e.a("DELETE", "/v1/templates/retail-eu", "")
	if r.status != 409 {
		t.Fatalf("DELETE in use: %d %s", r.status, r.body)
	}
	contains(t, "in use", r.body, `template \"retail-eu\" is in use by 4 account(s) (shop-us, shop0, shop1, …)`)
	// every account on it can be found, a page at a time
	contains(t, "accounts page 1", e.mustA("GET", "/v1/templates/retail-eu/accounts?limit=3", "").body,
		`{"template":"retail-eu","accounts":["shop-us","shop0","shop1"],"total":4,"next":"shop1"}`)
	contains(t, "accounts page 2", e.mustA("GET", "/v1/templates/retail-eu/accounts?limit=3&after=shop1", "").body,
		`{"template":"retail-eu","accounts":["shop2"],"total":4}`)
	if r := e.a("GET", "/v1/templates/nope/accounts", ""); r.status != 404 {
		t.Errorf("accounts of an unknown template: %d %s", r.status, r.body)
	}
	if r := e.a("GET", "/v1/templates/retail-eu/accounts?limit=x", ""); r.status != 400 {
		t.Errorf("bad limit: %d %s", r.status, r.body)
	}
	for i := 0; i < 3; i++ {
		e.mustA("DELETE", fmt.Sprintf("/v1/accounts/shop%d", i), "")
	}
	e.mustA("PUT", "/v1/accounts/shop-us", `{"countries":{"default":"deny","except":["US"]}}`)
	r = e.mustA("DELETE", "/v1/templates/retail-eu", "")
	contains(t, "deleted", r.body, `{"deleted":{"name":"retail-eu","accounts":0,`)
	if r := e.a("GET", "/v1/templates/retail-eu", ""); r.status != 404 {
		t.Fatalf("GET after delete: %d", r.status)
	}
	contains(t, "empty list", e.mustA("GET", "/v1/templates", "").body, `{"templates":[],"total":0}`)

	// the audit log says what changed
	r = e.mustA("GET", "/v1/audit?limit=50", "")
	contains(t, "audit", r.body, `"action":"template.put","object":"templates/retail-eu"`, `"action":"template.delete","object":"templates/retail-eu"`)
}

func auditCount(t *testing.T, e *env) int {
	t.Helper()
	var out struct {
		Entries []store.AuditEntry `json:"entries"`
	}
	if err := json.Unmarshal(e.mustA("GET", "/v1/audit", "").body, &out); err != nil {
		t.Fatal(err)
	}
	return len(out.Entries)
}

// Bad template documents are refused with the field at fault and change
// nothing.
func TestTemplatesBadInput(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/templates/retail-eu", retailEUJSON)
	for _, c := range []struct {
		path, body string
		status     int
		field      string
		msg        string
	}{
		{"/v1/templates/retail-eu", `{"countries":{"default":"deny","except":["XX"]}}`, 400, "countries.except[0]", `unknown country code`},
		{"/v1/templates/retail-eu", `{"max_cps":"lots"}`, 400, "max_cps", "expected int"},
		{"/v1/templates/retail-eu", `{"colour":"red"}`, 400, "colour", "unknown field"},
		{"/v1/templates/retail-eu", `{"subaccounts":{"a":{}}}`, 400, "subaccounts", "unknown field"},
		{"/v1/templates/retail-eu", `{"template":"other"}`, 400, "template", "unknown field"},
		{"/v1/templates/retail-eu", `{"max_cps":1,"max_cps":2}`, 400, "max_cps", "given twice"},
		{"/v1/templates/retail-eu", `{"unknown_subaccounts":"drop"}`, 400, "unknown_subaccounts", `\"drop\" is not`},
		{"/v1/templates/retail-eu", `{"account_max_cps":-1}`, 400, "account_max_cps", "outside"},
		{"/v1/templates/retail-eu", `{"description":"` + strings.Repeat("x", 257) + `"}`, 400, "description", "longer than 256"},
		{"/v1/templates/retail-eu", `{"origin":{"geo_profile":"nope"}}`, 400, "origin.geo_profile", `no geo profile \"nope\"`},
		{"/v1/templates/retail-eu", ``, 400, "body", "empty"},
		{"/v1/templates/caf%C3%A9", `{}`, 400, "template", "not allowed"},
		{"/v1/templates/nope", ``, 404, "", `template \"nope\" not found`},
		{"/v1/accounts/shop", `{"template":"a b"}`, 400, "template", "bad template name"},
	} {
		method := "PUT"
		if c.status == 404 {
			method = "DELETE"
		}
		r := e.a(method, c.path, c.body)
		if r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.path, c.body, r.status, r.body, c.status)
			continue
		}
		contains(t, c.body, r.body, c.msg)
		if c.field != "" {
			contains(t, c.body, r.body, `"field":"`+c.field+`"`)
		}
	}
	if r := e.a("POST", "/v1/templates", ""); r.status != 405 || r.hdr["Allow"] != "GET" {
		t.Errorf("POST /v1/templates: %d %v", r.status, r.hdr)
	}
	if r := e.a("POST", "/v1/templates/x", ""); r.status != 405 || r.hdr["Allow"] != "GET, PUT, DELETE" {
		t.Errorf("POST /v1/templates/x: %d %v", r.status, r.hdr)
	}
	if r := e.a("GET", "/v1/templates/x/y", ""); r.status != 404 {
		t.Errorf("GET /v1/templates/x/y: %d", r.status)
	}
	// the last good template stays in force
	contains(t, "unchanged", e.mustA("GET", "/v1/templates/retail-eu", "").body, retailEUJSON[1:])
}

// Templates, and accounts on them, survive a restart: the service loads
// them from the data file and decides as before.
func TestTemplatesSurviveRestart(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/templates/retail-eu", retailEUJSON)
	e.mustA("PUT", "/v1/accounts/shop", `{"template":"retail-eu"}`)
	want := e.q("GET", "/v1/check?to=%2B12125550100&account=shop", "").body
	e.st.Close()
	st, err := store.Open(e.dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := newBareMatcher()
	svc := service.New(m, plan, st, serviceOptions{})
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	tl, err := svc.Templates()
	if err != nil || len(tl) != 1 || tl[0].Accounts != 1 {
		t.Fatalf("templates after restart %+v %v", tl, err)
	}
	h := New(m, svc, Options{})
	ctx := newCtx("GET", "/v1/check?to=%2B12125550100&account=shop", nil)
	h.Query(ctx)
	if got := ctx.Response.Body(); string(got) != string(want) {
		t.Errorf("after restart:\n got %s\nwant %s", got, want)
	}
}

// A template's velocity rules count and lock the accounts on it through
// the service path (velocity SyncAccounts sees the effective settings), and
// a template change changes their thresholds, keeping their counters.
func TestTemplateVelocityThroughAPI(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/templates/retail", `{"home_country":"GB","velocity":{"rules":[{"name":"burst","calls_per_minute":{"critical":3}}]}}`)
	e.mustA("PUT", "/v1/accounts/shop", `{"template":"retail"}`)
	e.mustA("PUT", "/v1/accounts/calm", `{"template":"retail","velocity":{"rules":[{"calls_per_minute":{"critical":100}}]}}`)
	for i := 0; i < 2; i++ {
		e.verdict("to=%2B33142685300&account=shop")
		e.verdict("to=%2B33142685300&account=calm")
	}
	e.vel.Evaluate()
	r := e.mustA("GET", "/v1/accounts/shop/velocity", "")
	contains(t, "template rules", r.body, `"name":"burst"`, `"calls_per_minute":{"value":2,"critical":3,"level":"ok"}`)
	// the template's threshold drops to 2: shop is at critical now, calm
	// (its own rules) is not touched
	e.mustA("PUT", "/v1/templates/retail", `{"home_country":"GB","velocity":{"rules":[{"name":"burst","calls_per_minute":{"critical":2}}]}}`)
	e.vel.Evaluate()
	r = e.mustA("GET", "/v1/accounts/shop/velocity", "")
	contains(t, "changed template rules", r.body, `"calls_per_minute":{"value":2,"critical":2,"level":"critical"}`)
	if st, reason := e.verdict("to=%2B33142685300&account=shop"); st != 403 || reason != "international_locked" {
		t.Fatalf("shop after its template's rule went critical: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=calm"); st != 200 || reason != "ok" {
		t.Fatalf("calm, with rules of its own: %d %s", st, reason)
	}
}
