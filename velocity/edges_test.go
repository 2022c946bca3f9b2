package velocity

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// An operator's unlock holds while the counts that caused the lockdown are
// still above the critical level: a policy change that leaves the rule's
// thresholds alone (another field of the account, the operator default)
// must not raise the same alerts again and lock the account a second time.
// A change of the threshold itself is a new level and is judged afresh.
func TestUnlockHoldsAcrossPolicyChange(t *testing.T) {
	rules := func(critical int) *policy.Velocity {
		return &policy.Velocity{
			DailySpend: &policy.SpendLimit{Limit: 1},
			Rules: []policy.VelocityRule{
				{Name: "hourly", CallsPerWindow: th(2, 3)},
				{Name: "live", ConcurrentCalls: th(0, critical)},
			},
		}
	}
	set := setWith(rules(1))
	set.Rates = &policy.RateDeck{Currency: "EUR", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.calls(3, "acme", "", numFR)
	f.event(Answered, "up", "acme", "", numFR, -1)
	f.clk.Add(time.Minute) // 1 EUR running: the spend limit too
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown",
		"threshold/critical/concurrent_calls", "threshold/critical/daily_spend")
	if _, ok := f.e.Unlock("acme", "", "ops", "customer confirmed"); !ok {
		t.Fatal("not locked")
	}
	f.col.take()
	f.expectAlerts()

	// another field of the account changes: the same rules, recompiled
	changed := setWith(rules(1))
	changed.Rates = set.Rates
	acme := changed.Accounts["acme"]
	acme.MaxChannels = ptr(50)
	changed.Accounts["acme"] = acme
	f.load(changed)
	f.expectAlerts()
	// the operator default changes: every account is recompiled
	changed.Operator.Default.MaxCPS = ptr(1000)
	f.load(changed)
	f.expectAlerts()
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonOK {
		t.Fatalf("unlocked account locked again by a policy change: %s", v.Reason)
	}

	// a new critical level for concurrent calls is judged afresh: still
	// reached, so it alerts (and locks) again
	next := setWith(rules(2))
	next.Rates = set.Rates
	f.event(Answered, "up2", "acme", "", numFR, -1)
	f.load(next)
	f.expectAlerts("threshold/critical/concurrent_calls", "lockdown/critical/lockdown")
}

// Rules with hours and days follow the account's time zone through its
// daylight saving changes: the spring day loses the hour 02:00-03:00, the
// autumn day has 01:00-02:00 twice, a window spanning midnight belongs to
// the local day it starts on, and the day of the week is the local one.
func TestRuleWindowsAcrossDST(t *testing.T) {
	counting := th(0, 1_000_000)
	v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{
		{Name: "sunday small hours", Hours: "01:00-03:00", Days: []string{"sun"}, WindowMinutes: 1440, CallsPerWindow: counting},
		{Name: "saturday night", Hours: "22:00-06:00", Days: []string{"sat"}, WindowMinutes: 1440, CallsPerWindow: counting},
		{Name: "sunday", Days: []string{"sun"}, WindowMinutes: 1440, CallsPerWindow: counting},
	}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.TimeZone = ptr("America/New_York")
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	utc := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		at    time.Time
		local string // what the account's clock says, checked too
		want  [3]bool
	}{
		// Monday 03:00 UTC is still Sunday evening in New York
		{utc(3, 2, 3, 0), "Sun 22:00 EST", [3]bool{false, false, true}},
		// 8 March: 01:59 EST, then 03:00 EDT one minute later
		{utc(3, 8, 6, 59), "Sun 01:59 EST", [3]bool{true, true, true}},
		{utc(3, 8, 7, 0), "Sun 03:00 EDT", [3]bool{false, true, true}},
		{utc(3, 8, 9, 59), "Sun 05:59 EDT", [3]bool{false, true, true}},
		{utc(3, 8, 10, 0), "Sun 06:00 EDT", [3]bool{false, false, true}},
		{utc(3, 9, 3, 59), "Sun 23:59 EDT", [3]bool{false, false, true}},
		{utc(3, 9, 4, 0), "Mon 00:00 EDT", [3]bool{false, false, false}},
		// 1 November: 01:30 EDT, and an hour later 01:30 EST again
		{utc(11, 1, 5, 30), "Sun 01:30 EDT", [3]bool{true, true, true}},
		{utc(11, 1, 6, 30), "Sun 01:30 EST", [3]bool{true, true, true}},
		{utc(11, 1, 7, 59), "Sun 02:59 EST", [3]bool{true, true, true}},
		{utc(11, 1, 8, 0), "Sun 03:00 EST", [3]bool{false, true, true}},
		{utc(11, 1, 10, 59), "Sun 05:59 EST", [3]bool{false, true, true}},
		{utc(11, 1, 11, 0), "Sun 06:00 EST", [3]bool{false, false, true}},
	} {
		f.clk.Set(c.at)
		st, _ := f.e.State("acme")
		loc, _ := time.LoadLocation(st.TimeZone)
		if got := c.at.In(loc).Format("Mon 15:04 MST"); got != c.local {
			t.Fatalf("%s is %s in New York, not %s", c.at, got, c.local)
		}
		var before [3]int
		for i := range before {
			before[i] = f.measure("acme", "", i, "calls_per_window")
			if st.Rules[i].Active != c.want[i] {
				t.Errorf("%s: rule %q active %v, want %v", c.local, st.Rules[i].Name, st.Rules[i].Active, c.want[i])
			}
		}
		f.calls(1, "acme", "", numFR)
		for i := range before {
			counted := f.measure("acme", "", i, "calls_per_window") - before[i]
			if counted != map[bool]int{true: 1, false: 0}[c.want[i]] {
				t.Errorf("%s (%s UTC): rule %q counted %d", c.local, c.at.Format("Jan 2 15:04"), st.Rules[i].Name, counted)
			}
		}
	}
	f.expectAlerts()
}

// A live call's call_duration levels follow its rules through a policy
// change: removing one rule does not hand its raised level to the rule
// that takes its place, and an unchanged rule does not alert twice.
func TestCallDurationLevelsAcrossPolicyChange(t *testing.T) {
	short := policy.VelocityRule{Name: "short", CallDuration: th(60, 120)}
	long := policy.VelocityRule{Name: "long", CallDuration: th(300, 600)}
	f := newFixture(t, setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{short, long}}))
	f.event(Answered, "c", "acme", "", numFR, -1)
	f.clk.Add(121 * time.Second)
	f.expectAlerts("threshold/critical/call_duration")
	// "short" goes: "long" is now the first rule, its levels still unraised
	f.load(setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{long}}))
	f.expectAlerts()
	f.clk.Add(180 * time.Second) // 301 s
	f.expectAlerts("threshold/warning/call_duration")
	// "short" comes back after "long": "long" keeps its warning
	f.load(setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{long, short}}))
	f.expectAlerts("threshold/critical/call_duration") // short, judged afresh
	f.clk.Add(300 * time.Second)                       // 601 s
	f.e.Evaluate()
	got := f.col.all()
	if len(got) != 1 || got[0].Rule != "long" || got[0].Level != "critical" {
		t.Fatalf("alerts at 601 s: %+v", got)
	}
}
