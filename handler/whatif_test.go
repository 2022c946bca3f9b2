package handler

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/whatif"
)

func withRecent(size int) envOpt {
	return func(_ *service.Options, o *Options) { o.Recent = recent.New(size, 24*time.Hour) }
}

type whatIfAnswer struct {
	RingSize int `json:"ring_size"`
	whatif.Report
}

func (e *env) whatIf(body string) whatIfAnswer {
	e.t.Helper()
	r := e.mustA("POST", "/v1/what-if", body)
	var w whatIfAnswer
	if err := json.Unmarshal(r.body, &w); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// TestWhatIfDenyCountry: disabling a country reports exactly the calls to
// it, and changes nothing in force.
func TestWhatIfDenyCountry(t *testing.T) {
	e := newEnv(t, withRecent(1000))
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","countries":{"default":"allow"},"high_risk":"allow"}`)
	e.mustA("PUT", "/v1/accounts/beta", `{"home_country":"US","countries":{"default":"allow"},"high_risk":"allow"}`)
	calls := []struct{ account, to string }{
		{"acme", "+33142685300"}, {"acme", "+4930123456"}, {"beta", "+33142685301"}, {"beta", "+12025550100"},
		{"acme", "+442079460000"}, {"beta", "0033142685302"}, {"acme", "+33 1 42 68 53 03"}, {"nobody", "+33142685304"},
	}
	wantFR := map[string]int{} // French calls the policy in force allowed, by account
	nFR := 0
	for _, c := range calls {
		st, reason := e.verdict("account=" + c.account + "&to=" + strings.ReplaceAll(strings.ReplaceAll(c.to, "+", "%2B"), " ", "%20"))
		french := strings.Contains(strings.ReplaceAll(c.to, " ", ""), "33142685")
		if french && st == 200 {
			wantFR[c.account]++
			nFR++
		}
		if !french && st != 200 {
			t.Fatalf("%v: %d %s", c, st, reason)
		}
	}
	if wantFR["acme"] != 2 || wantFR["beta"] != 2 {
		t.Fatalf("French calls allowed in force: %v", wantFR)
	}
	w := e.whatIf(`{"edits":[{"method":"PUT","path":"/v1/operator/countries/FR","body":{"reason":"IRSF wave"}}],"examples":100}`)
	if w.Calls != len(calls) || w.Replayed != len(calls) || w.Changed != nFR {
		t.Fatalf("calls %d replayed %d changed %d; want %d, %d, %d", w.Calls, w.Replayed, w.Changed, len(calls), len(calls), nFR)
	}
	if len(w.ByCountry) != 1 || w.ByCountry[0].Key != "FR" || w.ByCountry[0].Calls != nFR {
		t.Errorf("by country %+v", w.ByCountry)
	}
	if len(w.Transitions) != 1 || w.Transitions[0].From != "allow/ok" || w.Transitions[0].To != "reject/country_disabled" {
		t.Errorf("transitions %+v", w.Transitions)
	}
	if len(w.ByReason) != 1 || w.ByReason[0].Key != "country_disabled" {
		t.Errorf("by reason %+v", w.ByReason)
	}
	for _, c := range w.ByAccount {
		if wantFR[c.Key] != c.Calls {
			t.Errorf("by account %+v, want %v", w.ByAccount, wantFR)
		}
	}
	if len(w.ByAccount) != len(wantFR) || len(w.Examples) != nFR {
		t.Fatalf("%d examples", len(w.Examples))
	}
	for _, x := range w.Examples {
		if !strings.HasPrefix(x.To, "+33") || x.Country != "FR" || x.After.Reason != "country_disabled" || x.Before.Verdict != "allow" {
			t.Errorf("example %+v", x)
		}
	}
	// nothing in force changed
	if st, reason := e.verdict("account=acme&to=%2B33142685300"); st != 200 {
		t.Errorf("after the what-if a French call is %d %s", st, reason)
	}
}

// TestWhatIfVelocityInOrder: a tightened velocity rule is replayed in time
// order with counters of its own: the calls it changes are the latest ones.
func TestWhatIfVelocityInOrder(t *testing.T) {
	e := newEnv(t, withRecent(1000))
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","countries":{"default":"allow"},"high_risk":"allow",`+
		`"velocity":{"action":"alert","rules":[{"name":"burst","calls_per_minute":{"critical":1000}}]}}`)
	var times []time.Time
	for i := 0; i < 10; i++ {
		times = append(times, e.clk.Now())
		if st, reason := e.verdict(fmt.Sprintf("account=acme&to=%%2B3314268530%d", i)); st != 200 {
			t.Fatalf("call %d: %d %s", i, st, reason)
		}
		e.clk.Add(time.Second)
	}
	w := e.whatIf(`{"edits":[{"method":"PATCH","path":"/v1/accounts/acme","body":` +
		`{"velocity":{"action":"lockdown","rules":[{"name":"burst","calls_per_minute":{"critical":3}}]}}}],"examples":100}`)
	if w.Changed < 1 || w.Changed > 8 {
		t.Fatalf("changed %d of 10", w.Changed)
	}
	if len(w.Examples) != w.Changed {
		t.Fatalf("%d examples for %d changes", len(w.Examples), w.Changed)
	}
	for i, x := range w.Examples {
		if want := times[10-w.Changed+i]; !x.Time.Equal(want) || x.After.Reason != "international_locked" {
			t.Errorf("change %d: %v %s, want the call of %v locked", i, x.Time, x.After.Reason, want)
		}
	}
	// the live engine's counters were not touched by the replay
	r := e.mustA("GET", "/v1/accounts/acme/velocity", "")
	if !strings.Contains(string(r.body), `"calls_per_minute":{"value":`) || strings.Contains(string(r.body), `"locked":true`) {
		t.Errorf("live velocity state after the replay: %s", r.body)
	}
}

func TestWhatIfRefused(t *testing.T) {
	e := newEnv(t, withRecent(10))
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB"}`)
	tests := []struct {
		body   string
		status int
		want   string
	}{
		{`{"edits":[]}`, 400, `"field":"edits"`},
		{`{}`, 400, `"field":"edits"`},
		{`{"edits":[{"method":"PUT","path":"/v1/accounts/acme","body":{"countries":{"default":"maybe"}}}]}`, 400, `"field":"edits[0].body.countries.default"`},
		{`{"edits":[{"method":"PATCH","path":"/v1/accounts/ghost","body":{}}]}`, 404, `account \"ghost\"`},
		{`{"edits":[{"method":"POST","path":"/v1/accounts/acme","body":{}}]}`, 400, `"field":"edits[0].method"`},
		{`{"edits":[{"method":"PUT","path":"/v1/high-risk","body":{}}]}`, 400, `"field":"edits[0].path"`},
		{`{"edits":[{"method":"PUT","path":"/v1/operator/countries/XX"}]}`, 400, `"field":"edits[0].country"`},
		{`{"edits":[{"method":"DELETE","path":"/v1/accounts/acme"},{"method":"PATCH","path":"/v1/accounts/acme","body":{}}]}`, 404, `edits[1]`},
	}
	for _, tc := range tests {
		r := e.a("POST", "/v1/what-if", tc.body)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s; want %d with %s", tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if r := e.a("GET", "/v1/what-if", ""); r.status != 405 {
		t.Errorf("GET /v1/what-if: %d", r.status)
	}
	// no ring: 409
	e2 := newEnv(t)
	if r := e2.a("POST", "/v1/what-if", `{"edits":[{"method":"PUT","path":"/v1/operator/countries/FR"}]}`); r.status != 409 {
		t.Errorf("without a ring: %d %s", r.status, r.body)
	}
}

// TestShadowPolicy: a shadow disagrees where the candidate differs, only
// there, enforces nothing, and promotes cleanly through the audited path.
func TestShadowPolicy(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","countries":{"default":"allow"},"high_risk":"allow"}`)
	if r := e.a("GET", "/v1/shadow", ""); r.status != 404 {
		t.Fatalf("GET before PUT: %d", r.status)
	}
	e.mustA("PUT", "/v1/shadow", `{"edits":[{"method":"PATCH","path":"/v1/accounts/acme","body":{"countries":{"default":"allow","except":["FR"]}}}]}`)
	for i := 0; i < 3; i++ {
		if st, reason := e.verdict("account=acme&to=%2B33142685300"); st != 200 {
			t.Fatalf("the shadow was enforced: %d %s", st, reason)
		}
	}
	e.verdict("account=acme&to=%2B4930123456")
	e.verdict("account=acme&to=%2B442079460000")
	var sh struct {
		Decisions, Disagreements uint64
		Turned                   map[string]uint64
		ByReason                 []whatif.ShadowCount `json:"by_reason_country"`
	}
	json.Unmarshal(e.mustA("GET", "/v1/shadow", "").body, &sh)
	if sh.Decisions != 5 || sh.Disagreements != 3 || sh.Turned["allow->reject"] != 3 {
		t.Errorf("shadow counters %+v", sh)
	}
	if fmt.Sprint(sh.ByReason) != "[{country_barred FR 3}]" {
		t.Errorf("by reason and country %+v", sh.ByReason)
	}
	m := string(e.a("GET", "/metrics", "").body)
	for _, want := range []string{"tollgate_shadow_active 1", "tollgate_shadow_decisions_total 5",
		`tollgate_shadow_disagreements_total{reason="country_barred",country="FR"} 3`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(e.logText(), "shadow policy disagrees") {
		t.Error("no sampled disagreement in the log")
	}
	// a live change meanwhile: the shadow is compiled again over it
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/sales", `{}`)
	e.verdict("account=acme&to=%2B33142685300")
	deadline := time.Now().Add(10 * time.Second)
	for e.h.q.Shadow.Load().Base() != e.m.Snapshot() && time.Now().Before(deadline) {
		e.verdict("account=acme&to=%2B4930123456")
		time.Sleep(10 * time.Millisecond)
	}
	if e.h.q.Shadow.Load().Base() != e.m.Snapshot() {
		t.Fatal("the shadow was not rebased on the live change")
	}

	r := e.mustA("POST", "/v1/shadow/promote", "")
	if !strings.Contains(string(r.body), `"promoted":true`) {
		t.Errorf("promote: %s", r.body)
	}
	if st, reason := e.verdict("account=acme&to=%2B33142685300"); st != 403 || reason != "country_barred" {
		t.Errorf("after promotion: %d %s", st, reason)
	}
	if r := e.a("GET", "/v1/shadow", ""); r.status != 404 {
		t.Errorf("shadow still installed after promotion: %d", r.status)
	}
	if a := string(e.mustA("GET", "/v1/audit?limit=1", "").body); !strings.Contains(a, `"shadow.promote"`) || !strings.Contains(a, `"who":"ops"`) {
		t.Errorf("audit: %s", a)
	}
	// the subaccount written meanwhile survived the promotion
	e.mustA("GET", "/v1/accounts/acme/subaccounts/sales", "")
	if r := e.a("POST", "/v1/shadow/promote", ""); r.status != 404 {
		t.Errorf("promote without a shadow: %d", r.status)
	}
	e.mustA("PUT", "/v1/shadow", `{"edits":[{"method":"PUT","path":"/v1/operator/countries/DE"}]}`)
	e.mustA("DELETE", "/v1/shadow", "")
	if st, _ := e.verdict("account=acme&to=%2B4930123456"); st != 200 {
		t.Error("a dropped shadow was enforced")
	}
}
