package velocity

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// unknownSet serves unknown accounts with an operator default that has a
// blocked-attempts rule locking at 3.
func unknownSet() *policy.Set {
	set := setWith(nil)
	set.Operator.Default = policy.Policy{HomeCountry: ptr("GB"),
		Countries: &policy.CountryRule{Default: policy.Allow, Except: []string{"CU"}},
		Velocity:  &policy.Velocity{Rules: []policy.VelocityRule{{Name: "probe", WindowMinutes: 10, BlockedAttempts: th(2, 3)}}}}
	return set
}

// Unknown accounts the operator serves are counted under a scope of their
// own name and locked like accounts (issue 11 item 8); another unknown
// name is not touched, and refusing unknown accounts stops the counting.
func TestUnknownAccountsCountedAndLocked(t *testing.T) {
	f := newFixture(t, unknownSet())
	for i := 0; i < 3; i++ {
		if v := f.call("stranger", "", "+5371234567"); v.Reason != matcher.ReasonCountryBarred {
			t.Fatalf("setup: %s", v.Reason)
		}
	}
	f.expectAlerts("threshold/critical/blocked_attempts", "lockdown/critical/lockdown")
	if v := f.call("stranger", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("stranger after the lockdown: %s %s", v.Reason, v.RuleString())
	}
	if v := f.call("stranger", "", numGB); v.Reason != matcher.ReasonOK {
		t.Fatalf("stranger domestic: %s", v.Reason)
	}
	if v := f.call("stranger2", "", numFR); v.Reason != matcher.ReasonOK {
		t.Fatalf("another unknown name: %s", v.Reason)
	}
	if len(f.locks) != 1 || f.locks[0].Account != "stranger" || !f.locks[0].Automatic {
		t.Fatalf("stored locks %+v", f.locks)
	}
	// an operator unlocks it, and locks another unknown name it never saw
	if _, ok := f.e.Unlock("stranger", "", "ops", "checked"); !ok {
		t.Fatal("unlock")
	}
	if v := f.call("stranger", "", numFR); v.Reason != matcher.ReasonOK {
		t.Fatalf("after unlock: %s", v.Reason)
	}
	if err := f.e.Lock(Lock{Account: "never-called", By: "ops", Reason: "typo squatting"}); err != nil {
		t.Fatal(err)
	}
	if v := f.call("never-called", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("pre-locked unknown name: %s", v.Reason)
	}
	// the lock survives the name's scope being dropped when idle
	f.clk.Add(2 * time.Hour)
	f.e.Evaluate()
	if f.e.unknown.find("stranger2") != nil {
		t.Error("an idle unknown scope was kept")
	}
	if v := f.call("never-called", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("locked unknown name after idling: %s", v.Reason)
	}
	// and carries over when the name becomes an account
	set := unknownSet()
	set.Accounts["never-called"] = policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}}
	f.load(set)
	if v := f.call("never-called", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("locked name made an account: %s", v.Reason)
	}
	// with unknown accounts refused, nothing is counted
	set = unknownSet()
	set.Operator.UnknownAccounts = policy.UnknownReject
	f.load(set)
	if sc := f.e.Scope("newcomer", ""); sc != nil {
		t.Errorf("a scope for an unknown account that is refused")
	}
}

// Names beyond the table share the overflow scope: flooding the table with
// invented names does not make the next name uncounted.
func TestUnknownOverflow(t *testing.T) {
	f := newFixture(t, unknownSet())
	for i := 0; i < unknownSlots+2000; i++ {
		f.e.Scope(fmt.Sprintf("x%d", i), "")
	}
	of := f.e.unknown.overflow.Load()
	if of == nil {
		t.Fatal("no overflow scope after more names than slots")
	}
	n := 0
	for i := 0; i < unknownSlots+2000; i++ {
		if f.e.Scope(fmt.Sprintf("x%d", i), "").(*Scope) == of {
			n++
		}
	}
	if n < 2000 {
		t.Errorf("%d names in the overflow scope, want at least 2000", n)
	}
	if got := f.e.Stats().UnknownScopes; got > unknownSlots || got < unknownSlots/2 {
		t.Errorf("%d unknown scopes", got)
	}
}

// The first call of an unknown name allocates its scope; every later one
// allocates nothing.
func TestUnknownDecideAllocs(t *testing.T) {
	f := newFixture(t, unknownSet())
	q := matcher.Query{To: "+5371234567", Account: "stranger"}
	f.m.Decide(&q)
	if n := testing.AllocsPerRun(200, func() { f.m.Decide(&q) }); n != 0 {
		t.Fatalf("%v allocations per decision of an unknown account", n)
	}
}

// fresh copies every field of a rule but its counters.
func TestFreshCopiesRules(t *testing.T) {
	eff := policy.Merge(policy.BuiltinDefault(), policy.Policy{TimeZone: ptr("Europe/Paris"), MaxCPS: ptr(7),
		Velocity: &policy.Velocity{DailySpend: &policy.SpendLimit{Warning: 1, Limit: 2}, Rules: []policy.VelocityRule{{Name: "r", Prefix: "+53",
			Hours: "22:00-06:00", Days: []string{"sat"}, WindowMinutes: 30, BlockedAttempts: th(1, 2), DistinctCountries: th(3, 5), Action: policy.ActionAlert}}}})
	tmpl, err := compileConfig(eff, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.rules[0].counters()
	c := tmpl.fresh()
	if fmt.Sprint(*c) == "" || c.loc != tmpl.loc || c.maxCPS != 7 || c.spendLimit != tmpl.spendLimit || c.spendAction != tmpl.spendAction || c.timed != tmpl.timed || c.relockMargin != tmpl.relockMargin || c.relockMargin == 0 {
		t.Errorf("config fields not copied: %+v", c)
	}
	rt := reflect.TypeOf(rule{})
	for i := 0; i < rt.NumField(); i++ {
		name := rt.Field(i).Name
		a, b := reflect.ValueOf(&tmpl.rules[0]).Elem().Field(i), reflect.ValueOf(&c.rules[0]).Elem().Field(i)
		if name == "ctr" {
			if c.rules[0].ctr.Load() != nil {
				t.Error("counters copied")
			}
			continue
		}
		if fmt.Sprint(a) != fmt.Sprint(b) || a.IsZero() {
			t.Errorf("rule.%s not copied by fresh (or zero in the test's rule)", name)
		}
	}
}
