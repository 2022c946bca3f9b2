package handler

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/velocity"
)

func TestLockEndpoints(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","subaccounts":{"sales":{}}}`)
	if r := e.mustA("GET", "/v1/accounts/acme/lock", ""); string(r.body) != `{"account":"acme","locked":false,"lock":null}`+"\n" {
		t.Fatalf("GET unlocked: %s", r.body)
	}
	r := e.mustA("PUT", "/v1/accounts/acme/lock", `{"reason":"card testing from 198.51.100.7"}`)
	var got struct {
		Locked bool
		Lock   *velocity.Lock
	}
	json.Unmarshal(r.body, &got)
	if !got.Locked || got.Lock == nil || got.Lock.By != "ops" || got.Lock.Reason != "card testing from 198.51.100.7" || got.Lock.Automatic {
		t.Fatalf("PUT lock: %s", r.body)
	}
	if _, reason := e.verdict("to=%2B33142685300&account=acme"); reason != "international_locked" {
		t.Fatalf("locked: %s", reason)
	}
	if _, reason := e.verdict("to=%2B441614960000&account=acme&subaccount=sales"); reason != "ok" {
		t.Fatalf("domestic: %s", reason)
	}
	// a subaccount lock, listed with the account's
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/sales/lock", "")
	r = e.mustA("GET", "/v1/locks", "")
	if !strings.Contains(string(r.body), `"account":"acme","time"`) || !strings.Contains(string(r.body), `"account":"acme","subaccount":"sales"`) {
		t.Fatalf("locks: %s", r.body)
	}
	// errors
	for _, c := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"PUT", "/v1/accounts/nobody/subaccounts/x/lock", "", 404, ""}, // an unknown account's own name can be locked (issue 11 item 8), not a subaccount
		{"PUT", "/v1/accounts/acme/subaccounts/nope/lock", "", 404, ""},
		{"GET", "/v1/accounts/acme/subaccounts/nope/lock", "", 404, ""},
		{"PUT", "/v1/accounts/acme/lock", `{"reason":1}`, 400, "reason"},
		{"PUT", "/v1/accounts/acme/lock", `{"why":"x"}`, 400, "why"},
		{"PUT", "/v1/accounts/acme/lock", `{"reason":"` + strings.Repeat("x", 300) + `"}`, 400, "reason"},
		{"POST", "/v1/accounts/acme/lock", "", 405, ""},
		{"DELETE", "/v1/accounts/other/lock", "", 404, ""},
		{"DELETE", "/v1/accounts/acme/lock", `{"until":"soon"}`, 400, "until"},
		{"DELETE", "/v1/accounts/acme/lock", `{"until":"2001-01-01T00:00:00Z"}`, 400, "until"},
		{"DELETE", "/v1/accounts/acme/lock", `{"until":5}`, 400, "until"},
		{"PUT", "/v1/accounts/acme/lock", `{"until":"midnight"}`, 400, "until"},
	} {
		r := e.a(c.method, c.path, c.body)
		if r.status != c.status || (c.field != "" && !strings.Contains(string(r.body), `"field":"`+c.field+`"`)) {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, r.status, r.body)
		}
	}
	r = e.mustA("DELETE", "/v1/accounts/acme/lock", `{"reason":"customer confirmed"}`)
	if !strings.Contains(string(r.body), `"deleted":{"account":"acme"`) {
		t.Fatalf("DELETE lock: %s", r.body)
	}
	if r := e.a("DELETE", "/v1/accounts/acme/lock", ""); r.status != 404 {
		t.Errorf("second unlock: %d", r.status)
	}
	if _, reason := e.verdict("to=%2B33142685300&account=acme"); reason != "ok" {
		t.Fatalf("after unlock: %s", reason)
	}
	if _, reason := e.verdict("to=%2B33142685300&account=acme&subaccount=sales"); reason != "international_locked" {
		t.Fatalf("subaccount lock stays: %s", reason)
	}
	audit := e.mustA("GET", "/v1/audit?limit=3", "")
	for _, want := range []string{`"action":"unlock","object":"accounts/acme/lock"`, `"customer confirmed"`,
		`"action":"lock","object":"accounts/acme/subaccounts/sales/lock"`, `"who":"ops"`} {
		contains(t, "audit", audit.body, want)
	}
	// alerts for both
	r = e.mustA("GET", "/v1/alerts?limit=2", "")
	contains(t, "alerts", r.body, `"type":"unlock"`, `"reason":"customer confirmed"`, `"type":"lockdown"`)
	if r := e.a("GET", "/v1/alerts?limit=x", ""); r.status != 400 {
		t.Errorf("bad limit: %d", r.status)
	}
}

func TestVelocityEndpoints(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","time_zone":"Europe/London","velocity":{"action":"alert","rules":[
		{"name":"burst","calls_per_minute":{"warning":2,"critical":3}}]},"subaccounts":{"sales":{"velocity":{"rules":[{"calls_per_window":{"critical":100},"window_minutes":30}]}}}}`)
	for i := 0; i < 3; i++ {
		e.verdict("to=%2B33142685300&account=acme&subaccount=sales")
	}
	e.vel.Evaluate()
	r := e.mustA("GET", "/v1/accounts/acme/velocity", "")
	var st struct {
		Account  string `json:"account"`
		TimeZone string `json:"time_zone"`
		Rules    []struct {
			Name     string
			Measures map[string]struct {
				Value int
				Level string
			}
		}
		Subaccounts []json.RawMessage
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Account != "acme" || st.TimeZone != "Europe/London" || st.Rules[0].Name != "burst" ||
		st.Rules[0].Measures["calls_per_minute"].Value != 3 || st.Rules[0].Measures["calls_per_minute"].Level != "critical" || len(st.Subaccounts) != 1 {
		t.Fatalf("velocity: %s", r.body)
	}
	r = e.mustA("GET", "/v1/accounts/acme/subaccounts/sales/velocity", "")
	contains(t, "sub velocity", r.body, `"subaccount":"sales"`, `"calls_per_window":{"value":3,"critical":100,"level":"ok"}`, `"window_minutes":30`)
	// reset the subaccount only
	r = e.mustA("DELETE", "/v1/accounts/acme/subaccounts/sales/velocity", "")
	contains(t, "sub reset", r.body, `"reset":true`, `"calls_per_window":{"value":0`)
	if r := e.mustA("GET", "/v1/accounts/acme/velocity", ""); !strings.Contains(string(r.body), `"calls_per_minute":{"value":3`) {
		t.Errorf("the account was reset with its subaccount: %s", r.body)
	}
	r = e.mustA("DELETE", "/v1/accounts/acme/velocity", "")
	contains(t, "reset", r.body, `"calls_per_minute":{"value":0,"warning":2,"critical":3,"level":"ok"}`)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/accounts/nobody/velocity", 404},
		{"DELETE", "/v1/accounts/nobody/velocity", 404},
		{"GET", "/v1/accounts/acme/subaccounts/nope/velocity", 404},
		{"PUT", "/v1/accounts/acme/velocity", 405},
	} {
		if r := e.a(c.method, c.path, ""); r.status != c.status {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	audit := e.mustA("GET", "/v1/audit?limit=2", "")
	contains(t, "audit", audit.body, `"action":"velocity.reset","object":"accounts/acme/velocity"`,
		`"action":"velocity.reset","object":"accounts/acme/subaccounts/sales/velocity"`)
	// a bad time zone is a 400 naming the field, and changes nothing
	r = e.a("PUT", "/v1/accounts/acme", `{"time_zone":"Mars/Olympus"}`)
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"time_zone"`) {
		t.Errorf("bad zone: %d %s", r.status, r.body)
	}
	r = e.a("PUT", "/v1/accounts/acme", `{"velocity":{"rules":[{"calls_per_minute":{"warning":5,"critical":5}}]}}`)
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"velocity.rules[0].calls_per_minute.warning"`) {
		t.Errorf("bad rule: %d %s", r.status, r.body)
	}
	if r := e.mustA("GET", "/v1/accounts/acme", ""); !strings.Contains(string(r.body), `"time_zone":"Europe/London"`) {
		t.Errorf("refused change applied: %s", r.body)
	}
}

const testDeck = "prefix,rate_per_minute,currency\n+33,0.02,EUR\n+88216,1.5,EUR\n"

func TestRateDeckEndpoints(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"high_risk":"allow","max_destination_rate":1}`)
	r := e.mustA("GET", "/v1/rate-deck", "")
	if string(r.body) != "prefix,rate_per_minute,currency\n" || r.hdr["X-Tollgate-Rate-Deck-Origin"] != "none" {
		t.Fatalf("empty deck: %q %v", r.body, r.hdr)
	}
	r = e.mustA("PUT", "/v1/rate-deck", testDeck)
	contains(t, "put", r.body, `"rate_deck":{"origin":"stored"`, `"currency":"EUR"`, `"entries":2`, `"source":"api:ops"`)
	if st, reason := e.verdict("to=%2B882161234567&account=acme"); reason != "rate_exceeded" || st != 403 {
		t.Fatalf("priced: %s %d", reason, st)
	}
	r = e.q("GET", "/v1/check?to=%2B882161234567&account=acme", "")
	contains(t, "verdict", r.body, `"code":2060`, `"sip_reason":"Destination Rate Exceeded"`,
		`"rule":"account acme: max_destination_rate 1 EUR/min; prefix +88216 costs 1.5 EUR/min"`)
	r = e.mustA("GET", "/v1/rate-deck", "")
	if string(r.body) != testDeck || r.hdr["X-Tollgate-Rate-Deck-Entries"] != "2" || r.hdr["X-Tollgate-Rate-Deck-Currency"] != "EUR" {
		t.Errorf("export: %q %v", r.body, r.hdr)
	}
	// a bad deck: 400 naming the line, the deck in force stays
	r = e.a("PUT", "/v1/rate-deck", "+33,0.02,EUR\n+44,abc,EUR\n")
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"line 2"`) || !strings.Contains(string(r.body), "rate_per_minute") {
		t.Fatalf("bad deck: %d %s", r.status, r.body)
	}
	if _, reason := e.verdict("to=%2B882161234567&account=acme"); reason != "rate_exceeded" {
		t.Fatalf("after a refused upload: %s", reason)
	}
	r = e.mustA("POST", "/v1/reload", "")
	contains(t, "reload", r.body, `"rate_deck":{"origin":"stored"`)
	m := e.q("GET", "/metrics", "")
	contains(t, "metrics", m.body, `tollgate_rate_deck{origin="stored"} 2`)
	r = e.mustA("DELETE", "/v1/rate-deck", "")
	contains(t, "delete", r.body, `"rate_deck":{"origin":"none","entries":0}`)
	if r := e.a("DELETE", "/v1/rate-deck", ""); r.status != 404 {
		t.Errorf("second delete: %d", r.status)
	}
	if _, reason := e.verdict("to=%2B882161234567&account=acme"); reason != "ok" {
		t.Fatalf("no deck: %s", reason)
	}
	audit := e.mustA("GET", "/v1/audit?limit=3", "")
	contains(t, "audit", audit.body, `"action":"rate_deck.delete"`, `"action":"rate_deck.put"`)
}

// The daily spend from call events, read through the admin API.
func TestSpendThroughEvents(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/rate-deck", testDeck)
	e.mustA("PUT", "/v1/accounts/acme", `{"velocity":{"daily_spend":{"warning":0.1,"limit":1}}}`)
	e.q("POST", "/v1/events", `{"event":"answered","call_id":"a","account":"acme","to":"+33142685300"}`)
	e.clk.Add(3 * time.Minute)
	e.vel.Evaluate()
	r := e.mustA("GET", "/v1/accounts/acme/velocity", "")
	contains(t, "spend", r.body, `"spend":{"day":"2026-03-02","spent":0.06,"booked":0,"running":0.06,"currency":"EUR","warning":0.1,"limit":1,"level":"ok"}`)
	e.q("POST", "/v1/events", `{"event":"ended","call_id":"a","account":"acme","duration":300}`)
	e.vel.Evaluate()
	r = e.mustA("GET", "/v1/accounts/acme/velocity", "")
	contains(t, "spend", r.body, `"spent":0.1,"booked":0.1,"running":0`, `"level":"warning"`)
	r = e.mustA("GET", "/v1/alerts", "")
	contains(t, "alerts", r.body, `"kind":"daily_spend"`, `"level":"warning"`, `"unit":"EUR"`)
}

// GET /v1/accounts/{a}/calls lists the account's calls, its subaccounts'
// included, live and ended.
func TestCallListing(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","subaccounts":{"sales":{}}}`)
	e.q("POST", "/v1/events", `[{"event":"answered","call_id":"c1","account":"acme","subaccount":"sales","to":"+33142685300"},{"event":"ended","call_id":"c2","account":"acme","to":"+33142685301","duration":62}]`)
	r := e.mustA("GET", "/v1/accounts/acme/calls", "")
	var got struct {
		Calls []map[string]any `json:"calls"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil || len(got.Calls) != 2 {
		t.Fatalf("calls: %s", r.body)
	}
	byID := map[string]map[string]any{}
	for _, c := range got.Calls {
		byID[c["call_id"].(string)] = c
	}
	if c := byID["c1"]; c["live"] != true || c["subaccount"] != "sales" || c["to"] != "+33142685300" || c["unconfirmed"] != false {
		t.Errorf("live call %v", c)
	}
	if c := byID["c2"]; c["live"] != false || c["seconds"] != 62.0 {
		t.Errorf("ended call %v", c)
	}
	if r := e.a("GET", "/v1/accounts/nobody/calls", ""); r.status != 404 {
		t.Errorf("unknown account: %d", r.status)
	}
	if r := e.a("DELETE", "/v1/accounts/acme/calls", ""); r.status != 405 {
		t.Errorf("DELETE: %d", r.status)
	}
}
