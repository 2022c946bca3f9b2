package matcher

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// fakeVelocity records what Decide tells it; scopes are locked by name.
type fakeVelocity struct {
	scopes map[string]*fakeScope
}

type fakeScope struct {
	parent  *fakeScope
	locked  bool
	mu      sync.Mutex
	records []string
}

func newFakeVelocity() *fakeVelocity { return &fakeVelocity{scopes: map[string]*fakeScope{}} }

func (f *fakeVelocity) add(account, sub string) *fakeScope {
	sc := &fakeScope{}
	if sub != "" {
		sc.parent = f.scopes[account]
		account += "/" + sub
	}
	f.scopes[account] = sc
	return sc
}

func (f *fakeVelocity) Scope(account, sub string) VelocityScope {
	key := account
	if sub != "" {
		key += "/" + sub
	}
	if sc, ok := f.scopes[key]; ok {
		return sc
	}
	return nil
}

func (s *fakeScope) IntlLocked() Layer {
	switch {
	case s.parent != nil && s.parent.locked:
		return LayerAccount
	case s.locked && s.parent != nil:
		return LayerSubaccount
	case s.locked:
		return LayerAccount
	}
	return LayerNone
}

func (s *fakeScope) Record(dest Number, cc Country, o Outcome) {
	s.mu.Lock()
	s.records = append(s.records, fmt.Sprintf("%s %s %d", dest, cc, o))
	s.mu.Unlock()
}

// velSet is testSet with prices and a rate cap.
func velSet() *policy.Set {
	set := testSet()
	acme := set.Accounts["acme"]
	acme.MaxDestinationRate = ptrF(0.5)
	set.Accounts["acme"] = acme
	set.Accounts["nohome"] = policy.Account{Policy: policy.Policy{}}
	set.Rates = &policy.RateDeck{Currency: "GBP", Entries: []policy.RateEntry{
		{Prefix: "+44", Micro: 10_000}, {Prefix: "+4420", Micro: 500_000}, {Prefix: "+88216", Micro: 1_200_000},
		{Prefix: "+1", Micro: 5_000}, {Prefix: "+1876", Micro: 600_000},
	}}
	return set
}

func ptrF(f float64) *float64 { return &f }

func newVelMatcher(t testing.TB, set *policy.Set, vel Velocity) *Matcher {
	t.Helper()
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	m := New(numplan.Default(), Options{Velocity: vel})
	m.Swap(snap)
	return m
}

func TestLockdownGate(t *testing.T) {
	fv := newFakeVelocity()
	acme := fv.add("acme", "")
	sales := fv.add("acme", "sales")
	uk := fv.add("uk", "")
	nohome := fv.add("nohome", "")
	set := velSet()
	acmeP := set.Accounts["acme"]
	acmeP.MaxDestinationRate = nil // prices are TestRateGate's
	set.Accounts["acme"] = acmeP
	m := newVelMatcher(t, set, fv)
	check := func(account, sub, to string, reason Reason, rule string) {
		t.Helper()
		v := m.Decide(&Query{To: to, Account: account, Subaccount: sub})
		if v.Reason != reason || (rule != "" && !strings.Contains(v.RuleString(), rule)) {
			t.Errorf("%s/%s %s: %s %q, want %s %q", account, sub, to, v.Reason, v.RuleString(), reason, rule)
		}
	}
	// nothing locked: as before
	check("acme", "", "+14155550123", ReasonOK, "")
	check("uk", "", "+33142685300", ReasonOK, "")

	uk.locked = true
	check("uk", "", "+33142685300", ReasonInternationalLocked, "account uk: international calls locked (lockdown); FR is not the home country GB")
	check("uk", "", "0161 496 0000", ReasonOK, "")                // domestic, national format
	check("uk", "", "+441614960000", ReasonOK, "")                // domestic in E.164
	check("uk", "", "999", ReasonEmergency, "")                   // emergency
	check("uk", "", "118 118", ReasonOK, "")                      // short number: domestic
	check("uk", "", "+850 2 123 4567", ReasonCountryDisabled, "") // a refusal keeps its own reason
	check("uk", "", "+881612345678", ReasonNumberBarred, "")

	// a locked account locks its subaccounts, at the account layer
	acme.locked = true
	check("acme", "sales", "+18765550123", ReasonInternationalLocked, "account acme: international calls locked")
	check("acme", "", "+12125550100", ReasonOK, "") // US is acme's home
	check("acme", "", "+442031234567", ReasonInternationalLocked, "")
	check("acme", "", "911", ReasonEmergency, "")
	acme.locked = false
	// a locked subaccount locks only itself
	sales.locked = true
	check("acme", "sales", "+18765550123", ReasonInternationalLocked, "subaccount acme/sales: international calls locked (lockdown); JM is not the home country US")
	check("acme", "", "+18765550123", ReasonOK, "")
	check("acme", "ships", "+18765550123", ReasonOK, "") // no scope of its own in the fake: not locked
	sales.locked = false

	// no home country: every destination is international
	nohome.locked = true
	check("nohome", "", "+441614960000", ReasonInternationalLocked, "no home country, so every destination is international")
	check("nohome", "", "112", ReasonEmergency, "")
}

func TestRateGate(t *testing.T) {
	m := newVelMatcher(t, velSet(), nil)
	check := func(account, to string, reason Reason, rule string) {
		t.Helper()
		v := m.Decide(&Query{To: to, Account: account})
		if v.Reason != reason || (rule != "" && v.RuleString() != rule) {
			t.Errorf("%s %s: %s %q, want %s %q", account, to, v.Reason, v.RuleString(), reason, rule)
		}
	}
	check("acme", "+447911123456", ReasonOK, "")                                 // 0.01 <= 0.5
	check("acme", "+442031234567", ReasonOK, "account acme: allow prefix +4420") // exactly 0.5 passes
	check("acme", "+12125550100", ReasonOK, "")                                  // 0.005
	check("acme", "+18765550123", ReasonRateExceeded, "account acme: max_destination_rate 0.5 GBP/min; prefix +1876 costs 0.6 GBP/min")
	check("acme", "+882161234567", ReasonRateExceeded, "account acme: max_destination_rate 0.5 GBP/min; prefix +88216 costs 1.2 GBP/min") // an allow prefix does not lift the price cap
	check("acme", "+33142685300", ReasonOK, "")                                                                                           // not in the deck: passes
	check("acme", "+5371234567", ReasonCountryBarred, "")                                                                                 // barred keeps its reason
	check("uk", "+18765550123", ReasonOK, "")                                                                                             // no cap
	// a subaccount inherits the cap, and may lift it
	v := m.Decide(&Query{To: "+18765550123", Account: "acme", Subaccount: "sales"})
	if v.Reason != ReasonRateExceeded || v.Layer != LayerAccount {
		t.Errorf("sales inherits: %s %s", v.Reason, v.RuleString())
	}
	set := velSet()
	acme := set.Accounts["acme"]
	acme.Subaccounts = map[string]policy.Policy{"vip": {MaxDestinationRate: ptrF(2)}, "tight": {MaxDestinationRate: ptrF(0)}}
	set.Accounts["acme"] = acme
	m = newVelMatcher(t, set, nil)
	if v := m.Decide(&Query{To: "+18765550123", Account: "acme", Subaccount: "vip"}); v.Reason != ReasonOK {
		t.Errorf("vip: %s", v.Reason)
	}
	if v := m.Decide(&Query{To: "+12125550100", Account: "acme", Subaccount: "tight"}); v.Reason != ReasonRateExceeded || v.Layer != LayerSubaccount ||
		!strings.Contains(v.RuleString(), "subaccount acme/tight: max_destination_rate 0 GBP/min; prefix +1 costs 0.005 GBP/min") {
		t.Errorf("tight: %s %s", v.Reason, v.RuleString())
	}
}

func TestRecordOutcomes(t *testing.T) {
	fv := newFakeVelocity()
	acme := fv.add("acme", "")
	sales := fv.add("acme", "sales")
	m := newVelMatcher(t, velSet(), fv)
	for _, q := range []Query{
		{To: "+12125550100", Account: "acme"},
		{To: "+5371234567", Account: "acme"},
		{To: "+18765550123", Account: "acme"}, // rate_exceeded counts as barred
		{To: "911", Account: "acme"},          // emergency: not counted
		{To: "abc", Account: "acme"},
		{To: "+4930123456", Account: "acme", Subaccount: "sales"},
		{To: "+12125550100", Account: "stranger"}, // unknown: no scope
	} {
		m.Decide(&q)
	}
	// an invalid number is its own outcome, which blocked attempts count
	// (issue 11 item 12) and invalid_numbers too (issue 13)
	want := []string{"+12125550100 US 0", "+5371234567 CU 1", "+18765550123 JM 1", "  3"}
	if fmt.Sprint(acme.records) != fmt.Sprint(want) {
		t.Errorf("acme records %q, want %q", acme.records, want)
	}
	if fmt.Sprint(sales.records) != fmt.Sprint([]string{"+4930123456 DE 1"}) {
		t.Errorf("sales records %q", sales.records)
	}
}

func TestDestinationAndRate(t *testing.T) {
	fv := newFakeVelocity()
	uk := fv.add("uk", "")
	uk.locked = true
	m := newVelMatcher(t, velSet(), fv)
	for _, c := range []struct{ account, to, e164, country string }{
		{"uk", "07700 900123", "+447700900123", "GB"},
		{"uk", "+33142685300", "+33142685300", "FR"}, // locked, still resolved
		{"acme", "011 44 20 3123 4567", "+442031234567", "GB"},
		{"uk", "999", "", "GB"},
		{"uk", "abc", "", ""},
	} {
		e, c2 := m.Destination(&Query{To: c.to, Account: c.account})
		if e != c.e164 || c2 != c.country {
			t.Errorf("Destination(%s, %s) = %q %q, want %q %q", c.account, c.to, e, c2, c.e164, c.country)
		}
	}
	if len(uk.records) != 0 {
		t.Errorf("Destination counted attempts: %v", uk.records)
	}
	s := m.Snapshot()
	for in, want := range map[string]int64{"+442031234567": 500_000, "+447700900123": 10_000, "+18765550123": 600_000, "+33142685300": -1, "4420": -1, "+44ab": -1} {
		got, ok := s.Rate(in)
		if (want < 0) == ok || (ok && got != want) {
			t.Errorf("Rate(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	if s.Currency() != "GBP" || s.Stats().Rates != 5 {
		t.Errorf("currency %q, rates %d", s.Currency(), s.Stats().Rates)
	}
	var nilSnap *Snapshot
	if _, ok := nilSnap.Rate("+44"); ok || nilSnap.Currency() != "" {
		t.Error("nil snapshot prices")
	}
}

func TestCompileFromReusesRates(t *testing.T) {
	plan := numplan.Default()
	set := velSet()
	prev, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	next := *set
	snap, err := CompileFrom(prev, &next, plan)
	if err != nil || snap.rates != prev.rates {
		t.Fatalf("same deck rebuilt: %v", err)
	}
	next.Rates = &policy.RateDeck{Currency: "EUR", Entries: []policy.RateEntry{{Prefix: "+1", Micro: 9}}}
	snap2, err := CompileFrom(snap, &next, plan)
	if err != nil || snap2.rates == snap.rates || snap2.Currency() != "EUR" {
		t.Fatalf("new deck not compiled: %v", err)
	}
	next.Rates = &policy.RateDeck{Currency: "EUR", Entries: []policy.RateEntry{{Prefix: "44", Micro: 9}}}
	if _, err := CompileFrom(snap2, &next, plan); err == nil {
		t.Error("non-canonical deck prefix accepted")
	}
	// velocity and max rate changes are seen by the reuse check
	acme := next.Accounts["acme"]
	acme.MaxDestinationRate = ptrF(0.01)
	next.Rates = set.Rates
	next.Accounts = map[string]policy.Account{"acme": acme}
	snap3, err := CompileFrom(prev, &next, plan)
	if err != nil || snap3.acct("acme") == prev.acct("acme") || snap3.acct("acme").maxRate != 10_000 {
		t.Errorf("max rate change not compiled: %v", err)
	}
}

func TestNumber(t *testing.T) {
	n, ok := PackNumber("+442079460958")
	p, _ := PackNumber("+4420")
	q, _ := PackNumber("+4421")
	if !ok || !n.HasPrefix(p) || n.HasPrefix(q) || !n.HasPrefix(0) || n.Digits() != 12 || n.String() != "+442079460958" {
		t.Errorf("Number: %v %v %v %d %s", ok, n.HasPrefix(p), n.HasPrefix(q), n.Digits(), n)
	}
	for _, bad := range []string{"", "+", "44", "+44a", "+1234567890123456"} {
		if _, ok := PackNumber(bad); ok {
			t.Errorf("PackNumber(%q) accepted", bad)
		}
	}
	if Number(0).String() != "" {
		t.Error("zero number has a string")
	}
}

// noopVelocity is a velocity whose scope does nothing: the allocation test
// needs an implementation whose methods certainly do not allocate.
type noopVelocity struct{ sc noopScope }
type noopScope struct{ locked bool }

func (n *noopVelocity) Scope(account, sub string) VelocityScope {
	if account == "" {
		return nil
	}
	return &n.sc
}
func (s *noopScope) IntlLocked() Layer {
	if s.locked {
		return LayerAccount
	}
	return LayerNone
}
func (s *noopScope) Record(Number, Country, Outcome) {}

// With a velocity consulted, a decision still allocates nothing.
func TestDecideAllocsWithVelocity(t *testing.T) {
	nv := &noopVelocity{}
	m := newVelMatcher(t, velSet(), nv)
	for _, locked := range []bool{false, true} {
		nv.sc.locked = locked
		for _, q := range []Query{
			{To: "+442031234567", Account: "acme"},
			{To: "+18765550123", Account: "acme"},
			{To: "+5371234567", Account: "acme", Subaccount: "sales"},
			{To: "911", Account: "acme"},
			{To: "07700 900123", Account: "uk"},
		} {
			m.Decide(&q)
			var buf [256]byte
			if n := testing.AllocsPerRun(100, func() {
				v := m.Decide(&q)
				_ = v.AppendRule(buf[:0])
			}); n != 0 {
				t.Errorf("locked=%v %+v: %.1f allocs per decision", locked, q, n)
			}
		}
	}
}

// The probing outcomes: an invalid number and an international call of a
// locked scope each reach the counters as their own outcome.
func TestRecordProbeOutcomes(t *testing.T) {
	fv := newFakeVelocity()
	acme := fv.add("acme", "")
	acme.locked = true
	m := newVelMatcher(t, velSet(), fv)
	for _, q := range []Query{{To: "+4930123456", Account: "acme"}, {To: "+12125550100", Account: "acme"}, {To: "12", Account: "acme"}} {
		m.Decide(&q)
	}
	want := []string{fmt.Sprintf("+4930123456 DE %d", OutcomeLocked), fmt.Sprintf("+12125550100 US %d", OutcomeAllowed), fmt.Sprintf("  %d", OutcomeInvalid)}
	if fmt.Sprint(acme.records) != fmt.Sprint(want) {
		t.Errorf("records %q, want %q", acme.records, want)
	}
}
