package velocity

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

func TestRing(t *testing.T) {
	var r ring
	for i := 0; i < 5; i++ {
		r.add(100)
	}
	r.add(101)
	r.add(159)
	if n := r.sum(100, 159); n != 7 {
		t.Fatalf("sum %d", n)
	}
	// tag 160 reuses tag 100's bucket: the old count is dropped, not added
	r.add(160)
	if n, c := r.sum(101, 160), r.count(100); n != 3 || c != 0 {
		t.Fatalf("after roll-over: sum %d, count(100) %d", n, c)
	}
	if r.count(160) != 1 || r.sum(200, 300) != 0 {
		t.Fatal("count")
	}
	r.reset()
	if r.sum(0, ^uint32(0)) != 0 {
		t.Fatal("reset")
	}
}

func TestWindowSpans(t *testing.T) {
	for _, c := range []struct {
		minutes             int
		width, buckets      uint32
		minute, from, to    uint32
		coveredMinutesAtMin int
	}{
		{60, 1, 60, 1000, 941, 1000, 60},
		{1, 1, 1, 1000, 1000, 1000, 1},
		{90, 2, 45, 1000, 456, 500, 90},
		{1440, 24, 60, 2400, 41, 100, 1440},
	} {
		w := newWindow(c.minutes)
		if w.width != c.width || w.buckets != c.buckets || w.buckets > ringSize {
			t.Errorf("window %d: width %d buckets %d", c.minutes, w.width, w.buckets)
		}
		if from, to := w.span(c.minute); from != c.from || to != c.to {
			t.Errorf("window %d at %d: span %d-%d, want %d-%d", c.minutes, c.minute, from, to, c.from, c.to)
		}
	}
}

func TestSequentialWord(t *testing.T) {
	var w atomic.Uint64
	a, _ := matcher.PackNumber(numFR)
	b, _ := matcher.PackNumber(numDE)
	for i := 0; i < 3; i++ {
		seqRecord(&w, a, 100, 10)
	}
	if v := seqValue(w.Load(), 100, 10); v != 3 {
		t.Fatalf("run %d", v)
	}
	seqRecord(&w, a, 109, 10) // 9 minutes later: still the run
	if v := seqValue(w.Load(), 109, 10); v != 4 {
		t.Fatalf("run %d", v)
	}
	if v := seqValue(w.Load(), 119, 10); v != 0 {
		t.Fatalf("stale run reads %d", v)
	}
	seqRecord(&w, a, 120, 10) // 11 minutes after the last: a new run
	if v := seqValue(w.Load(), 120, 10); v != 1 {
		t.Fatalf("run after a gap %d", v)
	}
	seqRecord(&w, b, 120, 10)
	if v := seqValue(w.Load(), 120, 10); v != 1 {
		t.Fatalf("another number %d", v)
	}
	for i := 0; i < 5000; i++ {
		seqRecord(&w, b, 120, 10)
	}
	if v := seqValue(w.Load(), 120, 10); v != seqMaxCount {
		t.Fatalf("saturation %d", v)
	}
	// the minute wraps at 2^20 without breaking a run
	var z atomic.Uint64
	seqRecord(&z, a, seqMinMask, 10)
	seqRecord(&z, a, seqMinMask+2, 10)
	if v := seqValue(z.Load(), seqMinMask+2, 10); v != 2 {
		t.Fatalf("across the wrap %d", v)
	}
}

func TestRuleActive(t *testing.T) {
	mk := func(hours string, days ...string) *rule {
		vr := policy.VelocityRule{Hours: hours, Days: days, CallsPerMinute: th(1, 2)}
		if err := vr.Validate(""); err != nil {
			t.Fatal(err)
		}
		cfg, err := compileConfig(policy.Effective{Velocity: &policy.Velocity{Rules: []policy.VelocityRule{vr}}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &cfg.rules[0]
	}
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 3, day, hh, mm, 0, 0, time.UTC) } // 2 Mar = Monday
	office := mk("08:00-18:00", "mon", "tue", "wed", "thu", "fri")
	night := mk("22:00-06:00", "fri")
	always := mk("")
	weekend := mk("", "sat", "sun")
	for _, c := range []struct {
		r    *rule
		t    time.Time
		want bool
	}{
		{office, at(2, 8, 0), true},
		{office, at(2, 7, 59), false},
		{office, at(2, 17, 59), true},
		{office, at(2, 18, 0), false},
		{office, at(7, 10, 0), false}, // Saturday
		{night, at(6, 22, 0), true},   // Friday night
		{night, at(7, 5, 59), true},   // Saturday morning: Friday's window
		{night, at(7, 6, 0), false},
		{night, at(7, 23, 0), false}, // Saturday night: not Friday's
		{night, at(6, 3, 0), false},  // Friday morning belongs to Thursday
		{always, at(4, 3, 0), true},
		{weekend, at(8, 12, 0), true},
		{weekend, at(9, 0, 0), false},
	} {
		if got := c.r.active(c.t); got != c.want {
			t.Errorf("rule %d-%d days %b at %s: %v, want %v", c.r.from, c.r.to, c.r.days, c.t.Format("Mon 15:04"), got, c.want)
		}
	}
}

// calls_per_minute: warning, critical, automatic lockdown of international
// calls (domestic and emergency still pass), the window rolling over.
func TestCallsPerMinuteLockdown(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "burst", CallsPerMinute: th(5, 10)}}}
	f := newFixture(t, setWith(v))
	f.calls(4, "acme", "", numFR)
	f.expectAlerts()
	f.calls(1, "acme", "", numFR)
	f.expectAlerts("threshold/warning/calls_per_minute")
	f.calls(4, "acme", "", numFR)
	f.expectAlerts()
	f.calls(1, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute", "lockdown/critical/lockdown")
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 10 {
		t.Errorf("calls_per_minute %d", got)
	}
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("after lockdown: %s", v.Reason)
	}
	if v := f.call("acme", "", numGB); v.Reason != matcher.ReasonOK {
		t.Errorf("domestic after lockdown: %s", v.Reason)
	}
	if v := f.call("acme", "", "999"); v.Reason != matcher.ReasonEmergency {
		t.Errorf("emergency after lockdown: %s", v.Reason)
	}
	if v := f.call("acme", "sales", numFR); v.Reason != matcher.ReasonInternationalLocked || v.Layer != matcher.LayerAccount {
		t.Errorf("subaccount of a locked account: %s", v.Reason)
	}
	if v := f.call("other", "", numFR); v.Reason != matcher.ReasonOK {
		t.Errorf("another account: %s", v.Reason)
	}
	f.mu.Lock()
	if len(f.locks) != 1 || !f.locks[0].Automatic || f.locks[0].Rule != "burst" || f.locks[0].Kind != "calls_per_minute" || f.locks[0].By != AutomaticBy {
		t.Errorf("OnLock got %+v", f.locks)
	}
	f.mu.Unlock()
	l, ok := f.e.LockOf("acme", "")
	if !ok || !strings.Contains(l.Reason, "calls_per_minute 10 reached the critical level 10 (burst)") {
		t.Errorf("lock %+v", l)
	}
	// more calls: no second lockdown, no repeated alert while above
	f.calls(3, "acme", "", numGB)
	f.expectAlerts()

	// the minute rolls over: back under warning, re-armed
	f.clk.Add(61 * time.Second)
	f.expectAlerts()
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 0 {
		t.Errorf("after a minute: %d", got)
	}
	// still locked until an operator unlocks
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("lock lifted by itself: %s", v.Reason)
	}
	if _, ok := f.e.Unlock("acme", "", "ops", "customer confirmed"); !ok {
		t.Fatal("unlock")
	}
	if got := f.col.take(); strings.Join(got, " ") != "unlock/info/unlock" {
		t.Errorf("unlock alerts %v", got)
	}
	f.calls(5, "acme", "", numFR) // the 5th attempt after unlocking was recorded before: 1 + 5
	f.expectAlerts("threshold/warning/calls_per_minute")
	st := f.e.Stats()
	if st.LockdownsAuto != 1 || st.Unlocks != 1 || st.Locked != 0 {
		t.Errorf("stats %+v", st)
	}
}

// A burst that passes both levels between two evaluations raises the
// critical alert alone: the warning would arrive after the lockdown it warns
// of. The end-to-end tests on a loaded machine meet this case.
func TestCallsPerMinuteJumpsPastWarning(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "burst", CallsPerMinute: th(5, 10)}}}
	f := newFixture(t, setWith(v))
	f.calls(12, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute", "lockdown/critical/lockdown")
	f.calls(1, "acme", "", numGB)
	f.expectAlerts() // no late warning either
}

// The exact edge of the one-second ring: a call 59 s after the first is in
// the same minute, one 60 s after is not.
func TestCallsPerMinuteEdge(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 3)}}}
	f := newFixture(t, setWith(v))
	f.calls(2, "acme", "", numFR)
	f.clk.Add(59 * time.Second)
	f.calls(1, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute") // action alert: no lockdown
	if _, locked := f.e.LockOf("acme", ""); locked {
		t.Fatal("alert action locked")
	}
	f.clk.Add(time.Second) // the first two are 60 s old now
	f.expectAlerts()
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 1 {
		t.Errorf("at +60 s: %d", got)
	}
	f.calls(2, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute")
}

func TestCallsPerWindowAndRollOver(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{WindowMinutes: 10, CallsPerWindow: th(4, 6)}}}
	f := newFixture(t, setWith(v))
	for i := 0; i < 5; i++ { // one call a minute
		f.calls(1, "acme", "", numN(i))
		f.clk.Add(time.Minute)
	}
	f.expectAlerts("threshold/warning/calls_per_window")
	if got := f.measure("acme", "", 0, "calls_per_window"); got != 5 {
		t.Fatalf("window %d", got)
	}
	f.clk.Add(5 * time.Minute) // 10 minutes after the first call: it has left the window
	if got := f.measure("acme", "", 0, "calls_per_window"); got != 4 {
		t.Fatalf("after 10 minutes: %d", got)
	}
	f.clk.Add(10 * time.Minute)
	f.expectAlerts()
	if got := f.measure("acme", "", 0, "calls_per_window"); got != 0 {
		t.Fatalf("after 20 minutes: %d", got)
	}
	f.calls(6, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_window") // re-armed: straight to critical
}

func TestSequentialCalls(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{WindowMinutes: 5, SequentialCalls: th(3, 5)}}}
	f := newFixture(t, setWith(v))
	f.calls(2, "acme", "", numFR)
	f.calls(1, "acme", "", numDE) // breaks the run
	f.calls(2, "acme", "", numFR)
	f.expectAlerts()
	f.calls(1, "acme", "", numFR)
	f.expectAlerts("threshold/warning/sequential_calls")
	f.clk.Add(4 * time.Minute)
	f.calls(2, "acme", "", numFR) // within 5 minutes of the last: the run goes on
	f.expectAlerts("threshold/critical/sequential_calls", "lockdown/critical/lockdown")
}

func TestSequentialRunExpires(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{WindowMinutes: 5, SequentialCalls: th(0, 3)}}}
	f := newFixture(t, setWith(v))
	f.calls(2, "acme", "", numFR)
	f.clk.Add(5 * time.Minute) // a daily call to mother is not a run
	f.calls(1, "acme", "", numFR)
	f.expectAlerts()
	if got := f.measure("acme", "", 0, "sequential_calls"); got != 1 {
		t.Errorf("run %d", got)
	}
}

// Blocked attempts: many rejected attempts to barred destinations trip it;
// one misdialled call does not; allowed calls do not count.
func TestBlockedAttempts(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{WindowMinutes: 10, BlockedAttempts: th(3, 6)}}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"SO", "CU"}}
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	if v := f.call("acme", "", "+252612345678"); v.Reason != matcher.ReasonCountryBarred {
		t.Fatalf("setup: %s", v.Reason)
	}
	f.calls(20, "acme", "", numFR)
	f.call("acme", "", "+5371234567")
	f.expectAlerts()
	f.call("acme", "", "abc") // an invalid number is a probe too (issue 11 item 12)
	f.expectAlerts("threshold/warning/blocked_attempts")
	for i := 0; i < 3; i++ {
		f.call("acme", "sales", "+252612345678") // a subaccount's attempts count for the account
	}
	f.expectAlerts("threshold/critical/blocked_attempts", "lockdown/critical/lockdown")
	if got := f.measure("acme", "", 0, "blocked_attempts"); got != 6 {
		t.Errorf("blocked %d", got)
	}
	f.clk.Add(11 * time.Minute)
	if got := f.measure("acme", "", 0, "blocked_attempts"); got != 0 {
		t.Errorf("after the window: %d", got)
	}
}

// Probing counts as blocked attempts (issue 11 item 12): numbers that are
// not numbers, and international calls an operator's lock refuses; a
// domestic call of a locked account is allowed and is not one.
func TestProbesCountAsBlocked(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{WindowMinutes: 10, BlockedAttempts: th(3, 100)}}}
	f := newFixture(t, setWith(v))
	for _, to := range []string{"abc", "+999", "0800-CALL-NOW"} {
		if v := f.call("acme", "", to); v.Reason != matcher.ReasonInvalidNumber {
			t.Fatalf("%s: %s", to, v.Reason)
		}
	}
	if got := f.measure("acme", "", 0, "blocked_attempts"); got != 3 {
		t.Errorf("invalid numbers: blocked %d, want 3", got)
	}
	if err := f.e.Lock(Lock{Account: "acme", By: "admin", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	f.col.take()
	for i := 0; i < 4; i++ {
		if v := f.call("acme", "sales", numFR); v.Reason != matcher.ReasonInternationalLocked {
			t.Fatalf("locked: %s", v.Reason)
		}
	}
	f.calls(2, "acme", "", numGB)
	if got := f.measure("acme", "", 0, "blocked_attempts"); got != 7 {
		t.Errorf("after locked attempts: blocked %d, want 7", got)
	}
}

// A rule with a prefix counts only calls under it; a rule with hours counts
// only calls made while it is active, in the account's time zone.
func TestPrefixAndTimeWindow(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{
		{Name: "france", Prefix: "+33", CallsPerMinute: th(0, 3)},
		{Name: "tokyo office hours", Hours: "09:00-18:00", Days: []string{"mon", "tue", "wed", "thu", "fri"}, CallsPerMinute: th(0, 3)},
	}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.TimeZone = ptr("Asia/Tokyo")
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	// Monday 10:00 UTC is 19:00 in Tokyo: outside office hours
	f.calls(2, "acme", "", numDE)
	f.calls(2, "acme", "", numFR)
	if a, b := f.measure("acme", "", 0, "calls_per_minute"), f.measure("acme", "", 1, "calls_per_minute"); a != 2 || b != 0 {
		t.Fatalf("france %d, office %d; want 2 and 0", a, b)
	}
	f.expectAlerts()
	// Tuesday 00:30 UTC is 09:30 in Tokyo
	f.clk.Set(time.Date(2026, 3, 3, 0, 30, 0, 0, time.UTC))
	f.calls(3, "acme", "", numDE)
	f.e.Evaluate()
	if got := f.col.all(); len(got) != 1 || got[0].Rule != "tokyo office hours" || got[0].Level != alert.LevelCritical || got[0].Action != policy.ActionAlert {
		t.Fatalf("alerts %+v", got)
	}
	st, _ := f.e.State("acme")
	if !st.Rules[1].Active || st.Rules[0].Active != true || st.TimeZone != "Asia/Tokyo" {
		t.Errorf("state %+v", st.Rules)
	}
	if st.Rules[1].Measures["calls_per_minute"].Level != "critical" || st.Rules[1].Hours != "09:00-18:00" || len(st.Rules[1].Days) != 5 {
		t.Errorf("rule state %+v", st.Rules[1])
	}
}

func TestConcurrentCallsAndEvents(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{ConcurrentCalls: th(2, 3)}}}
	f := newFixture(t, setWith(v))
	if r := f.event(Answered, "c1", "acme", "", numFR, -1); r != Accepted {
		t.Fatal(r)
	}
	f.event(Answered, "c2", "acme", "sales", numFR, -1)
	f.expectAlerts("threshold/warning/concurrent_calls")
	// duplicates change nothing
	if r := f.event(Answered, "c2", "acme", "sales", numFR, -1); r != Duplicate {
		t.Fatalf("duplicate answer: %v", r)
	}
	if got := f.measure("acme", "", 0, "concurrent_calls"); got != 2 {
		t.Fatalf("live %d", got)
	}
	f.event(Answered, "c3", "acme", "", numDE, -1)
	f.expectAlerts("threshold/critical/concurrent_calls", "lockdown/critical/lockdown")
	// ends are idempotent
	if r := f.event(Ended, "c3", "acme", "", numDE, 30*time.Second); r != Accepted {
		t.Fatal(r)
	}
	if r := f.event(Ended, "c3", "acme", "", numDE, 30*time.Second); r != Duplicate {
		t.Fatalf("duplicate end: %v", r)
	}
	f.event(Ended, "c2", "acme", "sales", numFR, time.Second)
	f.event(Ended, "c1", "acme", "", numFR, time.Second)
	f.expectAlerts()
	st, _ := f.e.State("acme")
	if st.LiveCalls != 0 || st.PeakToday != 3 || st.Subaccounts[0].LiveCalls != 0 || st.Subaccounts[0].PeakToday != 1 {
		t.Errorf("live %d peak %d; sales %+v", st.LiveCalls, st.PeakToday, st.Subaccounts[0])
	}
	// an answer after its end (reordered events) is a duplicate
	if r := f.event(Answered, "c1", "acme", "", numFR, -1); r != Duplicate {
		t.Errorf("answer after end: %v", r)
	}
	// unknown accounts and missing call ids are ignored
	if r := f.event(Answered, "x", "stranger", "", numFR, -1); r != Ignored {
		t.Errorf("unknown account: %v", r)
	}
	if r := f.event(Answered, "", "acme", "", numFR, -1); r != Ignored {
		t.Errorf("no call id: %v", r)
	}
	es := f.e.Stats()
	if es.Events[Answered][Accepted] != 3 || es.Events[Answered][Duplicate] != 2 || es.Events[Ended][Duplicate] != 1 ||
		es.Events[Answered][Ignored] != 2 || es.LiveCalls != 0 {
		t.Errorf("event stats %+v", es)
	}
}

// Lost ends: a call that never ends is taken as ended after the maximum
// duration, booked as lasting exactly that long.
func TestCallExpiry(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 1000}, Rules: []policy.VelocityRule{{ConcurrentCalls: th(0, 5)}}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "EUR", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 600_000}}} // 0.6/min
	f := newFixture(t, set)
	f.e.opt.MaxCallDuration = time.Hour
	f.event(Answered, "lost", "acme", "", numFR, -1)
	f.clk.Add(59 * time.Minute)
	f.eval()
	if st := f.e.Stats(); st.LiveCalls != 1 || st.Expired != 0 {
		t.Fatalf("before expiry %+v", st)
	}
	f.clk.Add(2 * time.Minute)
	f.eval()
	st := f.e.Stats()
	if st.LiveCalls != 0 || st.Expired != 1 {
		t.Fatalf("after expiry %+v", st)
	}
	as, _ := f.e.State("acme")
	// unconfirmed: booked from its answer to when it was last heard of (its
	// answer), not for the hour (36 EUR) it may or may not have lasted
	if as.LiveCalls != 0 || as.Spend.Spent != "0" || as.Spend.Currency != "EUR" || as.UnconfirmedCalls != 1 {
		t.Errorf("spend after expiry %+v", as.Spend)
	}
	// a late end of the expired call is a duplicate, not a second booking
	if r := f.event(Ended, "lost", "acme", "", numFR, 3*time.Hour); r != Duplicate {
		t.Errorf("late end: %v", r)
	}
	// tombstones go after another max duration
	f.clk.Add(2 * time.Hour)
	f.eval()
	if r := f.event(Ended, "lost", "acme", "", numFR, time.Minute); r != Accepted {
		t.Errorf("end long after the tombstone expired: %v", r)
	}
}

func TestCallDuration(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Prefix: "+33", CallDuration: th(60, 120)}}}
	f := newFixture(t, setWith(v))
	f.event(Answered, "long", "acme", "", numFR, -1)
	f.event(Answered, "de", "acme", "", numDE, -1) // not under the prefix
	f.clk.Add(59 * time.Second)
	f.expectAlerts()
	f.clk.Add(time.Second)
	f.expectAlerts("threshold/warning/call_duration")
	f.clk.Add(30 * time.Second)
	f.expectAlerts() // once per call and level
	f.clk.Add(30 * time.Second)
	f.expectAlerts("threshold/critical/call_duration", "lockdown/critical/lockdown")
	if a := f.col.all(); len(a) != 0 {
		t.Fatal(a)
	}
	// its end does not alert again
	f.event(Ended, "long", "acme", "", numFR, 130*time.Second)
	f.expectAlerts()
	// an end whose answer was lost still checks the duration
	f.e.Unlock("acme", "", "ops", "test")
	f.col.take()
	f.event(Ended, "orphan", "acme", "", numFR, 90*time.Second)
	got := f.col.all()
	if len(got) != 1 || got[0].Kind != "call_duration" || got[0].Level != alert.LevelWarning || got[0].CallID != "orphan" || got[0].Value != 90 {
		t.Errorf("orphan end alerts %+v", got)
	}
}

// Daily spend: answered calls' cost plus the running cost of calls in
// progress, reset at midnight in the account's time zone.
func TestDailySpendAndMidnight(t *testing.T) {
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Warning: 5, Limit: 10}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.TimeZone = ptr("America/New_York")
	set.Accounts["acme"] = acme
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}, {Prefix: "+49", Micro: 500_000}}}
	f := newFixture(t, set)
	// 2026-03-02 23:00 in New York is 04:00 UTC on the 3rd
	f.clk.Set(time.Date(2026, 3, 3, 4, 0, 0, 0, time.UTC))
	f.event(Answered, "a", "acme", "", numFR, -1) // 1.00/min
	f.clk.Add(4 * time.Minute)
	f.expectAlerts()
	f.clk.Add(time.Minute) // 5.00 running
	f.expectAlerts("threshold/warning/daily_spend")
	as, _ := f.e.State("acme")
	if as.Spend.Running != "5" || as.Spend.Booked != "0" || as.Spend.Day != "2026-03-02" || as.Spend.Level != "warning" {
		t.Errorf("spend %+v", as.Spend)
	}
	f.event(Ended, "a", "acme", "", numFR, 5*time.Minute)
	f.event(Ended, "b", "acme", "", numDE, 4*time.Minute) // an end without answer: 2.00
	as, _ = f.e.State("acme")
	if as.Spend.Booked != "7" || as.Spend.Running != "0" {
		t.Errorf("booked %+v", as.Spend)
	}
	// a call across midnight: only today's part counts after it, and the
	// levels are re-armed
	f.clk.Set(time.Date(2026, 3, 3, 4, 50, 0, 0, time.UTC)) // 23:50
	f.event(Answered, "c", "acme", "", numFR, -1)
	f.clk.Add(15 * time.Minute) // 00:05 on the 3rd in New York
	f.expectAlerts("threshold/warning/daily_spend")
	as, _ = f.e.State("acme")
	if as.Spend.Day != "2026-03-03" || as.Spend.Spent != "5" || as.Spend.Booked != "0" {
		t.Errorf("after midnight %+v", as.Spend)
	}
	f.clk.Add(5 * time.Minute)
	f.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
	if l, locked := f.e.LockOf("acme", ""); !locked || l.Kind != "daily_spend" || !strings.Contains(l.Reason, "daily spend 10 USD reached the critical level 10") {
		t.Errorf("spend limit lock %+v", l)
	}
}

// The spend resets at the local midnight of a DST change day: the day has
// 23 hours in New York on 8 March 2026.
func TestSpendOnDSTDay(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 1000}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.TimeZone = ptr("America/New_York")
	set.Accounts["acme"] = acme
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 60_000_000}}} // 1/s
	f := newFixture(t, set)
	ny, _ := time.LoadLocation("America/New_York")
	f.clk.Set(time.Date(2026, 3, 8, 0, 30, 0, 0, ny)) // EST
	f.event(Ended, "a", "acme", "", numFR, 10*time.Second)
	f.clk.Set(time.Date(2026, 3, 8, 23, 59, 0, 0, ny)) // EDT, same local day, 22.5 h later
	f.event(Ended, "b", "acme", "", numFR, 10*time.Second)
	as, _ := f.e.State("acme")
	if as.Spend.Day != "2026-03-08" || as.Spend.Booked != "20" {
		t.Errorf("DST day %+v", as.Spend)
	}
	f.clk.Set(time.Date(2026, 3, 9, 0, 0, 1, 0, ny))
	as, _ = f.e.State("acme")
	if as.Spend.Day != "2026-03-09" || as.Spend.Booked != "0" {
		t.Errorf("after midnight %+v", as.Spend)
	}
	// and the autumn day has 25 hours
	f.clk.Set(time.Date(2026, 11, 1, 0, 30, 0, 0, ny))
	f.event(Ended, "c", "acme", "", numFR, 10*time.Second)
	f.clk.Set(time.Date(2026, 11, 1, 23, 30, 0, 0, ny))
	f.event(Ended, "d", "acme", "", numFR, 10*time.Second)
	if as, _ = f.e.State("acme"); as.Spend.Booked != "20" || as.Spend.Day != "2026-11-01" {
		t.Errorf("25-hour day %+v", as.Spend)
	}
}

func TestSubaccountScope(t *testing.T) {
	set := setWith(&policy.Velocity{Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 100)}}})
	acme := set.Accounts["acme"]
	acme.Subaccounts = map[string]policy.Policy{
		"sales": {Velocity: &policy.Velocity{Rules: []policy.VelocityRule{{Name: "sales burst", CallsPerMinute: th(0, 3)}}}},
		"ops":   {},
	}
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	f.calls(3, "acme", "sales", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute", "lockdown/critical/lockdown")
	if l, ok := f.e.LockOf("acme", "sales"); !ok || l.Rule != "sales burst" {
		t.Fatalf("sales lock %+v", l)
	}
	if _, ok := f.e.LockOf("acme", ""); ok {
		t.Fatal("the account was locked by a subaccount's rule")
	}
	if v := f.call("acme", "sales", numFR); v.Reason != matcher.ReasonInternationalLocked || v.Layer != matcher.LayerSubaccount {
		t.Errorf("sales: %s %s", v.Reason, v.RuleString())
	}
	f.calls(1, "acme", "ops", numFR)
	f.calls(1, "acme", "", numFR)
	// the account counted every call of its subaccounts
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 5 {
		t.Errorf("account counted %d", got)
	}
	if got := f.measure("acme", "sales", 0, "calls_per_minute"); got != 3 {
		t.Errorf("sales counted %d", got)
	}
	// an unknown subaccount is the account
	if v := f.call("acme", "nobody", numFR); v.Reason != matcher.ReasonOK {
		t.Errorf("unknown subaccount: %s", v.Reason)
	}
}

func TestLocksAcrossSync(t *testing.T) {
	f := newFixture(t, setWith(nil))
	if err := f.e.Lock(Lock{Account: "acme", By: "ops", Reason: "ticket 7"}); err != nil {
		t.Fatal(err)
	}
	// an unknown account served by the default policy can be locked
	// (issue 11 item 8); its subaccounts cannot
	if err := f.e.Lock(Lock{Account: "nobody", Subaccount: "x", By: "ops"}); err == nil {
		t.Error("locked a subaccount of an unknown account")
	}
	if err := f.e.Lock(Lock{Account: "acme", Subaccount: "nope", By: "ops"}); err == nil {
		t.Error("locked an unknown subaccount")
	}
	f.col.take()
	// a policy change keeps the lock
	set := setWith(&policy.Velocity{Action: policy.ActionAlert})
	f.load(set)
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("after sync: %s", v.Reason)
	}
	// deleting and re-creating the account keeps it too
	del := &policy.Set{Accounts: map[string]policy.Account{"other": set.Accounts["other"]}}
	f.load(del)
	// unknown now: the default policy, and still locked (its name is
	// counted and locked as an unknown account's)
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonInternationalLocked || v.Layer != matcher.LayerAccount {
		t.Fatalf("deleted account: %s", v.Reason)
	}
	f.load(setWith(nil))
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonInternationalLocked {
		t.Fatalf("re-created account: %s", v.Reason)
	}
	if ls := f.e.Locks(); len(ls) != 1 || ls[0].By != "ops" || ls[0].Reason != "ticket 7" || ls[0].Automatic {
		t.Errorf("locks %+v", ls)
	}
	// restore (from storage) applies without alerts
	e2 := New(Options{Now: f.clk.Now, Notifier: f.col})
	e2.Sync(setWith(nil))
	e2.RestoreLocks([]Lock{{Account: "acme", Subaccount: "sales", By: "ops"}, {Account: "gone", By: "ops"}})
	if e2.Scope("acme", "sales").IntlLocked() != matcher.LayerSubaccount || e2.Scope("acme", "").IntlLocked() != matcher.LayerNone {
		t.Error("restored lock not applied")
	}
	if got := f.col.take(); len(got) != 0 {
		t.Errorf("restore alerted: %v", got)
	}
	if len(e2.Locks()) != 2 || e2.Stats().LockdownsOp != 0 {
		t.Errorf("restored locks %+v", e2.Locks())
	}
	if _, ok := e2.Unlock("acme", "", "ops", ""); ok {
		t.Error("unlocked a scope that was not locked")
	}
}

// A policy change that only moves thresholds keeps the counts; one that
// changes what a rule counts starts it over.
func TestSyncKeepsCounters(t *testing.T) {
	f := newFixture(t, setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{Prefix: "+33", CallsPerMinute: th(0, 100)}}}))
	f.calls(5, "acme", "", numFR)
	f.load(setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{Prefix: "+33", CallsPerMinute: th(0, 5)}}}))
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 5 {
		t.Fatalf("threshold change lost the count: %d", got)
	}
	f.expectAlerts("threshold/critical/calls_per_minute") // the new threshold applies at once
	f.load(setWith(&policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{Prefix: "+49", CallsPerMinute: th(0, 5)}}}))
	if got := f.measure("acme", "", 0, "calls_per_minute"); got != 0 {
		t.Fatalf("a new prefix kept the count: %d", got)
	}
	// an unchanged account keeps its very config
	set := setWith(nil)
	f.load(set)
	cfg := f.e.lookup("acme", "").cfg.Load()
	next := &policy.Set{Accounts: map[string]policy.Account{"acme": set.Accounts["acme"], "new": {}}}
	f.load(next)
	if f.e.lookup("acme", "").cfg.Load() != cfg {
		t.Error("unchanged account recompiled")
	}
}

func TestReset(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 100},
		Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 3), SequentialCalls: th(0, 50)}}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "EUR", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.calls(3, "acme", "", numFR)
	f.event(Ended, "x", "acme", "", numFR, time.Minute)
	f.event(Answered, "y", "acme", "", numFR, -1)
	f.expectAlerts("threshold/critical/calls_per_minute")
	if err := f.e.Reset("acme", ""); err != nil {
		t.Fatal(err)
	}
	st, _ := f.e.State("acme")
	if st.Rules[0].Measures["calls_per_minute"].Value != 0 || st.Rules[0].Measures["sequential_calls"].Value != 0 ||
		st.Spend.Booked != "0" || st.LiveCalls != 1 {
		t.Errorf("after reset %+v", st)
	}
	f.calls(3, "acme", "", numFR)
	f.expectAlerts("threshold/critical/calls_per_minute") // re-armed
	if err := f.e.Reset("acme", "nope"); err == nil {
		t.Error("reset of an unknown subaccount")
	}
	if err := f.e.Reset("nope", ""); err == nil {
		t.Error("reset of an unknown account")
	}
	if err := f.e.Reset("acme", "sales"); err != nil {
		t.Error(err)
	}
}

func TestStateJSON(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "r", Prefix: "+33", Hours: "08:00-18:00", Days: []string{"mon"}, CallsPerMinute: th(1, 2)}}}
	f := newFixture(t, setWith(v))
	f.e.Lock(Lock{Account: "acme", By: "ops", Reason: "x"})
	st, err := f.e.State("acme")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	for _, want := range []string{`"account":"acme"`, `"international_locked":true`, `"lock":{"account":"acme"`, `"time_zone":"UTC"`,
		`"rules":[{"name":"r","prefix":"+33","hours":"08:00-18:00","days":["mon"],"window_minutes":60,"active":true,"measures":{"calls_per_minute":{"value":0,"warning":1,"critical":2,"level":"ok"}}}]`,
		`"spend":{"day":"2026-03-02","spent":0,"booked":0,"running":0,"level":"ok"}`, `"subaccounts":[{"account":"acme","subaccount":"sales"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("state JSON lacks %s:\n%s", want, b)
		}
	}
	if _, err := f.e.State("nobody"); err == nil {
		t.Error("state of an unknown account")
	}
}

// CPS above the cap and channels above the typical peak feed two gauges.
func TestCPSAndPeakRatios(t *testing.T) {
	set := setWith(nil)
	acme := set.Accounts["acme"]
	acme.MaxCPS = ptr(4)
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	f.eval() // the policy's arrival queued every scope once
	f.calls(6, "acme", "", numFR)
	// the over-cap second is counted by the query path, and a scope whose
	// only watch is its CPS cap is never queued for the evaluator
	if st := f.e.Stats(); st.CPSOverCap != 1 {
		t.Fatalf("over-cap before any evaluation: %d", st.CPSOverCap)
	}
	if f.e.dirty.Load() != nil {
		t.Fatal("a CPS-only scope was queued for evaluation")
	}
	f.clk.Add(time.Second)
	f.eval()
	st := f.e.Stats()
	if st.CPSCapRatioMax != 1.5 || st.CPSOverCap != 1 {
		t.Fatalf("cps ratio %v over %d", st.CPSCapRatioMax, st.CPSOverCap)
	}
	f.eval() // the same second is not counted twice
	if st := f.e.Stats(); st.CPSOverCap != 1 {
		t.Errorf("over-cap counted twice: %d", st.CPSOverCap)
	}
	f.clk.Add(2 * time.Second)
	f.eval()
	if st := f.e.Stats(); st.CPSCapRatioMax != 0 {
		t.Errorf("ratio after the burst %v", st.CPSCapRatioMax)
	}

	// day 1: a peak of 10 channels; day 2: 12 live is 1.2 × the typical peak
	for i := 0; i < 10; i++ {
		f.event(Answered, "d1-"+numN(i), "acme", "", numFR, -1)
	}
	for i := 0; i < 10; i++ {
		f.event(Ended, "d1-"+numN(i), "acme", "", numFR, time.Minute)
	}
	f.clk.Add(24 * time.Hour)
	for i := 0; i < 12; i++ {
		f.event(Answered, "d2-"+numN(i), "acme", "", numFR, -1)
	}
	f.eval()
	if st := f.e.Stats(); st.PeakRatioMax != 1.2 {
		t.Errorf("peak ratio %v", st.PeakRatioMax)
	}
	as, _ := f.e.State("acme")
	if as.TypicalPeak != 10 || as.PeakToday != 12 {
		t.Errorf("typical %d today %d", as.TypicalPeak, as.PeakToday)
	}
	// a week later the old peak no longer counts
	for i := 0; i < 12; i++ {
		f.event(Ended, "d2-"+numN(i), "acme", "", numFR, time.Minute)
	}
	f.clk.Add(9 * 24 * time.Hour)
	if as, _ = f.e.State("acme"); as.TypicalPeak != 0 {
		t.Errorf("typical peak after 9 days %d", as.TypicalPeak)
	}
}

// Decisions stay lock-free and correct while events, evaluations, policy
// syncs, locks and unlocks run at the same time (run with -race).
func TestConcurrentDecisionsAndEvents(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 1_000_000)}, {ConcurrentCalls: th(0, 1_000_000)}}}
	f := newFixture(t, setWith(v))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var decided atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := f.call("acme", []string{"", "sales"}[i%2], numN(i%100))
				if v.Reason != matcher.ReasonOK && v.Reason != matcher.ReasonInternationalLocked {
					t.Errorf("reason %s", v.Reason)
					return
				}
				decided.Add(1)
			}
		}(g)
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			id := "call-" + numN(i)
			f.event(Answered, id, "acme", "sales", numN(i), -1)
			f.event(Ended, id, "acme", "sales", numN(i), time.Second)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			f.e.Evaluate()
			f.e.State("acme")
			if i%20 == 0 {
				f.load(setWith(v))
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			f.e.Lock(Lock{Account: "acme", By: "ops"})
			f.e.Unlock("acme", "", "ops", "")
			f.e.Reset("acme", "")
		}
	}()
	time.AfterFunc(500*time.Millisecond, func() { close(stop) })
	wg.Wait()
	if decided.Load() == 0 {
		t.Fatal("no decisions")
	}
	f.e.Evaluate()
	if st := f.e.Stats(); st.LiveCalls != 0 {
		t.Errorf("live calls after every end: %d", st.LiveCalls)
	}
}

// With the engine behind it, a decision allocates nothing.
func TestDecideAllocsWithEngine(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{
		{Prefix: "+33", CallsPerMinute: th(0, 1_000_000), SequentialCalls: th(0, 1000)},
		{Hours: "00:00-23:59", Days: []string{"mon"}, CallsPerWindow: th(0, 1_000_000), BlockedAttempts: th(0, 1_000_000)},
	}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.MaxCPS = ptr(1_000_000)
	acme.TimeZone = ptr("Europe/Paris")
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	for _, q := range []matcher.Query{
		{To: numFR, Account: "acme"},
		{To: numDE, Account: "acme", Subaccount: "sales"},
		{To: "+881612345678", Account: "acme"},
		{To: "07700 900123", Account: "acme"},
		{To: numFR, Account: "stranger"},
	} {
		f.m.Decide(&q)
		if n := testing.AllocsPerRun(200, func() { f.m.Decide(&q) }); n != 0 {
			t.Errorf("%+v: %.1f allocs per decision", q, n)
		}
	}
	f.e.Lock(Lock{Account: "acme", By: "t"})
	q := matcher.Query{To: numFR, Account: "acme"}
	if n := testing.AllocsPerRun(200, func() { f.m.Decide(&q) }); n != 0 {
		t.Errorf("locked: %.1f allocs per decision", n)
	}
}
