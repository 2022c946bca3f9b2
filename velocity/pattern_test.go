package velocity

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// tn is the n-th number of one Tunis range (+216 71 234 5xx): a range of
// ordinary-looking landlines such as IRSF test-number lists publish.
func tn(n int) string { return fmt.Sprintf("+21671234%03d", 500+n) }

// shortCall places an allowed call and reports it answered and ended after
// dur, as the proxy's call events would.
func (f *fixture) shortCall(id, account, sub, to string, dur time.Duration) {
	f.t.Helper()
	if v := f.call(account, sub, to); v.Reason != matcher.ReasonOK {
		f.t.Fatalf("%s to %s: %s %s", account, to, v.Reason, v.RuleString())
	}
	f.event(Answered, id, account, sub, to, -1)
	f.clk.Add(dur)
	f.event(Ended, id, account, sub, to, dur)
}

func (f *fixture) levels(account, sub string, rule int) string {
	f.t.Helper()
	st, err := f.e.State(account)
	if err != nil {
		f.t.Fatal(err)
	}
	sc := st.ScopeState
	for _, s := range st.Subaccounts {
		if s.Subaccount == sub {
			sc = s
		}
	}
	var out []string
	for _, m := range policy.MeasureNames {
		if ms, ok := sc.Rules[rule].Measures[m]; ok {
			out = append(out, fmt.Sprintf("%s=%d/%s", m, ms.Value, ms.Level))
		}
	}
	return strings.Join(out, " ")
}

// Issue 13: "15 short calls to 15 numbers of one +216 range raised
// nothing". The account's rule watched what tollgate watched before —
// sequential calls to one number, calls per window — and those stay
// silent over the same traffic; sequential_range_calls sees the walk
// through the range and locks the account.
func TestIssue13FifteenCallsOneRange(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "fraud",
		SequentialCalls: th(5, 10), CallsPerWindow: th(50, 100),
		SequentialRangeCalls: th(5, 10)}}}
	f := newFixture(t, setWith(v))
	for i := 0; i < 15; i++ {
		f.shortCall(fmt.Sprintf("c%d", i), "acme", "", tn(i), 4*time.Second)
		f.clk.Add(20 * time.Second)
	}
	got := f.eval()
	if want := "threshold/critical/sequential_range_calls lockdown/critical/lockdown"; strings.Join(got, " ") != want {
		t.Fatalf("alerts %v, want %s", got, want)
	}
	if got, want := f.levels("acme", "", 0), "calls_per_window=15/ok sequential_calls=1/ok sequential_range_calls=15/critical"; got != want {
		t.Errorf("measures %s, want %s", got, want)
	}
	if l, ok := f.e.LockOf("acme", ""); !ok || l.Kind != "sequential_range_calls" || l.Rule != "fraud" {
		t.Errorf("lock %+v %v", l, ok)
	}
}

// The range is the number without its last range_digits digits: a call
// into another range starts a new run, a wider range_digits joins them, and
// repeats of one number count as calls into its range.
func TestSequentialRangeCallsDefinition(t *testing.T) {
	if got := mustPack(t, "+21671234567").Truncate(3).String(); got != "+21671234" {
		t.Errorf("range of +21671234567: %s", got)
	}
	if got := mustPack(t, "+44").Truncate(3).String(); got != "+4" {
		t.Errorf("a range keeps one digit: %s", got)
	}
	for _, c := range []struct {
		name   string
		digits int
		to     func(i int) string
		want   int
	}{
		{"one range", 0, tn, 12},
		{"one number", 0, func(int) string { return tn(7) }, 12},
		// adjacent ranges, alternating: every call starts a new run
		{"alternating adjacent ranges", 0, func(i int) string { return fmt.Sprintf("+2167123%d%03d", 4+i%2, i) }, 1},
		{"alternating, range_digits 4", 4, func(i int) string { return fmt.Sprintf("+2167123%d%03d", 4+i%2, i) }, 12},
		// walking across the boundary of a 1,000 block starts over
		{"across a boundary", 0, func(i int) string { return fmt.Sprintf("+2167123%04d", 4994+i) }, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{SequentialRangeCalls: th(100, 200), RangeDigits: c.digits}}}
			f := newFixture(t, setWith(v))
			for i := 0; i < 12; i++ {
				f.calls(1, "acme", "", c.to(i))
			}
			if got := f.measure("acme", "", 0, "sequential_range_calls"); got != c.want {
				t.Errorf("run %d, want %d", got, c.want)
			}
		})
	}
}

func mustPack(t *testing.T, s string) matcher.Number {
	n, ok := matcher.PackNumber(s)
	if !ok {
		t.Fatalf("pack %s", s)
	}
	return n
}

// A fraudster who alternates adjacent ranges (to break the range run) or
// spreads the calls over subaccounts still fans out: distinct_destinations
// counts the account's different numbers, its subaccounts' included, and
// a subaccount's own rule sees only its share.
func TestDistinctDestinationsFanOut(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "fan-out", WindowMinutes: 30,
		DistinctDestinations: th(10, 20), SequentialRangeCalls: th(10, 20)}}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	own := &policy.Velocity{Rules: []policy.VelocityRule{{DistinctDestinations: th(10, 20)}}}
	acme.Subaccounts = map[string]policy.Policy{"a": {Velocity: own}, "b": {Velocity: own}, "c": {Velocity: own}}
	set.Accounts["acme"] = acme
	f := newFixture(t, set)
	subs := []string{"a", "b", "c"}
	// 19 numbers in two alternating adjacent ranges, over three
	// subaccounts; two of them called twice: just under the critical level
	for i := 0; i < 21; i++ {
		n := i
		if i >= 19 {
			n = i - 19 // repeats are not new destinations
		}
		f.calls(1, "acme", subs[i%3], fmt.Sprintf("+2167123%d%03d", 4+n%2, n))
		f.clk.Add(30 * time.Second)
	}
	f.expectAlerts("threshold/warning/distinct_destinations")
	if got := f.measure("acme", "", 0, "distinct_destinations"); got != 19 {
		t.Errorf("account: %d distinct, want 19", got)
	}
	if got := f.measure("acme", "", 0, "sequential_range_calls"); got != 1 {
		t.Errorf("alternating ranges: run %d", got)
	}
	if got := f.measure("acme", "a", 0, "distinct_destinations"); got != 7 {
		t.Errorf("subaccount a: %d distinct, want 7", got)
	}
	f.calls(1, "acme", "b", tn(300))
	f.expectAlerts("threshold/critical/distinct_destinations", "lockdown/critical/lockdown")
	if _, ok := f.e.LockOf("acme", ""); !ok {
		t.Error("the account is not locked")
	}
	// the set stops at the critical level: memory bounded by the level
	for i := 0; i < 50; i++ {
		f.call("acme", "", numN(i)) // locked: refused, not counted
	}
	if got := f.measure("acme", "", 0, "distinct_destinations"); got != 20 {
		t.Errorf("after the lock: %d", got)
	}
	// the window slides: 30 minutes after the last call nothing counts
	f.clk.Add(31 * time.Minute)
	if got := f.measure("acme", "", 0, "distinct_destinations"); got != 0 {
		t.Errorf("after the window: %d", got)
	}
}

// The set is exact up to its level and never grows past it.
func TestDistinctSetBounded(t *testing.T) {
	var d distinctSet
	d.m = map[uint64]uint32{}
	for i := uint64(1); i <= 500; i++ {
		d.add(i, 100, 60, 25)
	}
	if len(d.m) != 25 || d.count(100, 60) != 25 {
		t.Errorf("set holds %d", len(d.m))
	}
	d.add(3, 130, 60, 25) // refreshed
	if d.count(160, 60) != 1 {
		t.Errorf("after 60 minutes: %d, want the one refreshed", d.count(160, 60))
	}
	d.add(999, 161, 60, 25)
	if d.count(161, 60) != 2 {
		t.Errorf("room again: %d", d.count(161, 60))
	}
	// members added out of order (as a restore does) still leave in time
	r := newDistinct(10)
	for _, m := range []uint32{200, 150, 190} {
		r.add(uint64(m), m, 60, 10)
	}
	if n := r.count(220, 60); n != 2 {
		t.Errorf("out of order: %d at 220, want 2", n)
	}
	if n := r.count(260, 60); n != 0 {
		t.Errorf("out of order: %d at 260, want 0", n)
	}
}

// distinct_countries counts the destination countries, as the matcher
// resolved them (+1876 is Jamaica, not the United States).
func TestDistinctCountries(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{DistinctCountries: th(3, 5)}}}
	f := newFixture(t, setWith(v))
	for _, to := range []string{numGB, numFR, numFR2, numDE, numUS} {
		f.calls(1, "acme", "", to)
	}
	f.expectAlerts("threshold/warning/distinct_countries")
	if got := f.measure("acme", "", 0, "distinct_countries"); got != 4 {
		t.Errorf("distinct countries %d, want 4 (GB FR DE US)", got)
	}
	f.calls(1, "acme", "sales", "+18765550123")
	f.expectAlerts("threshold/critical/distinct_countries", "lockdown/critical/lockdown")
}

// short_calls is the share of ended calls under short_call_seconds, once
// min_answered_calls have ended in the window: traffic pumping's many
// short answered calls.
func TestShortCallsShare(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "pumping", ShortCalls: th(50, 80), ShortCallSeconds: 6, MinAnsweredCalls: 10}}}
	f := newFixture(t, setWith(v))
	for i := 0; i < 9; i++ {
		f.shortCall(fmt.Sprintf("s%d", i), "acme", "sales", tn(i), 3*time.Second)
	}
	f.expectAlerts() // 9 ended calls: fewer than min_answered_calls
	if got := f.measure("acme", "", 0, "short_calls"); got != 0 {
		t.Errorf("below the minimum: %d", got)
	}
	f.shortCall("long", "acme", "", numFR, 6*time.Second) // 6 s is not under 6 s
	f.expectAlerts("threshold/critical/short_calls", "lockdown/critical/lockdown")
	if got := f.measure("acme", "", 0, "short_calls"); got != 90 {
		t.Errorf("share %d%%, want 90", got)
	}
	// long calls bring the share down (the lock does not end calls that
	// the events report, so they still count)
	for i := 0; i < 10; i++ {
		f.shortCall(fmt.Sprintf("l%d", i), "acme", "", numGB, 5*time.Minute)
	}
	if got := f.measure("acme", "", 0, "short_calls"); got != 45 {
		t.Errorf("share %d%%, want 45", got)
	}
}

// Probing: a burst of invalid numbers, and international calls tried on
// after a subaccount's lock, which the account's rule counts and answers
// by locking the whole account.
func TestProbingMeasures(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{Name: "probe", WindowMinutes: 10, InvalidNumbers: th(3, 6), LockedAttempts: th(3, 5)}}}
	f := newFixture(t, setWith(v))
	for _, to := range []string{"abc", "+999", "0800-CALL-NOW"} {
		if v := f.call("acme", "sales", to); v.Reason != matcher.ReasonInvalidNumber {
			t.Fatalf("%s: %s", to, v.Reason)
		}
	}
	f.expectAlerts("threshold/warning/invalid_numbers")
	if err := f.e.Lock(Lock{Account: "acme", Subaccount: "sales", By: "admin", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	f.col.take()
	for i := 0; i < 4; i++ {
		if v := f.call("acme", "sales", numN(i)); v.Reason != matcher.ReasonInternationalLocked {
			t.Fatalf("locked: %s", v.Reason)
		}
	}
	f.calls(3, "acme", "sales", numGB) // domestic calls pass and are no probes
	f.expectAlerts("threshold/warning/locked_attempts")
	if got := f.measure("acme", "", 0, "locked_attempts"); got != 4 {
		t.Errorf("locked attempts %d", got)
	}
	f.call("acme", "sales", numDE)
	f.expectAlerts("threshold/critical/locked_attempts", "lockdown/critical/lockdown")
	if l, ok := f.e.LockOf("acme", ""); !ok || l.Kind != "locked_attempts" {
		t.Errorf("account lock %+v %v", l, ok)
	}
	f.clk.Add(11 * time.Minute)
	if got := f.measure("acme", "", 0, "invalid_numbers"); got != 0 {
		t.Errorf("after the window: %d", got)
	}
}

// rangeSet is n accounts (home GB) without velocity rules of their own but
// a per-account rule that watched what tollgate watched before, and the
// operator's range velocity.
func rangeSet(n int, rv *policy.RangeVelocity) *policy.Set {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{SequentialCalls: th(5, 10), CallsPerWindow: th(50, 100), BlockedAttempts: th(5, 10)}}}
	set := &policy.Set{Operator: policy.Operator{RangeVelocity: rv, Default: policy.Policy{Velocity: v}}, Accounts: map[string]policy.Account{}}
	for i := 0; i < n; i++ {
		set.Accounts[fmt.Sprintf("a%02d", i)] = policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")},
			Subaccounts: map[string]policy.Policy{"s1": {}, "s2": {}}}
	}
	return set
}

// Issue 13: "20 accounts each calling one +216 number raised nothing".
// Each account's own rules stay silent; the operator's range velocity
// counts 20 accounts in one range, alerts, and blocks the range through
// OnRangeBlock.
func TestIssue13TwentyAccountsOneRange(t *testing.T) {
	rv := &policy.RangeVelocity{Accounts: policy.Threshold{Warning: 10, Critical: 20}, Action: policy.RangeActionBlock}
	f := newFixture(t, rangeSet(25, rv))
	var blocked []string
	f.e.SetOnRangeBlock(func(prefix, reason string) error {
		blocked = append(blocked, prefix+" "+reason)
		return nil
	})
	for i := 0; i < 19; i++ {
		f.calls(1, fmt.Sprintf("a%02d", i), "", tn(i))
		f.clk.Add(time.Minute)
	}
	f.expectAlerts("threshold/warning/range_accounts")
	// the 20th account's one call reaches the critical level; one
	// account's many subaccounts and domestic calls add nothing
	f.calls(3, "a00", "s1", tn(50))
	f.calls(2, "a01", "s2", tn(51))
	f.calls(4, "a02", "", "+442071234567")
	f.expectAlerts()
	f.calls(1, "a19", "s2", tn(19))
	f.e.Evaluate()
	a := f.col.last()
	if got := f.col.take(); strings.Join(got, " ") != "threshold/critical/range_accounts" {
		t.Fatalf("alerts %v", got)
	}
	if a.Prefix != "+21671234" || a.Value != 20 || a.Account != "" || a.Action != "block" {
		t.Errorf("alert %+v", a)
	}
	if len(blocked) != 1 || !strings.HasPrefix(blocked[0], "+21671234 range +21671234: 20 accounts") {
		t.Errorf("blocks %q", blocked)
	}
	if st := f.e.Stats(); st.RangesTracked != 1 || st.RangeBlocks != 1 {
		t.Errorf("stats: %d ranges, %d blocks", st.RangesTracked, st.RangeBlocks)
	}
	// a later call does not raise it again
	f.calls(1, "a20", "", tn(20))
	f.expectAlerts()
	// per-account rules saw nothing of it
	if locks := f.e.Locks(); len(locks) != 0 {
		t.Errorf("locks %v", locks)
	}
}

// Just under the level, spread over subaccounts, or in adjacent ranges:
// what the range velocity does and does not count.
func TestRangeVelocityEdges(t *testing.T) {
	rv := &policy.RangeVelocity{Accounts: policy.Threshold{Critical: 5}, WindowMinutes: 10}
	f := newFixture(t, rangeSet(10, rv))
	// 4 accounts, each through two subaccounts: 4, not 8
	for i := 0; i < 4; i++ {
		f.calls(1, fmt.Sprintf("a%02d", i), "s1", tn(i))
		f.calls(1, fmt.Sprintf("a%02d", i), "s2", tn(i+10))
	}
	f.expectAlerts()
	// an adjacent range is another range (range_digits 3)
	f.calls(1, "a04", "", "+21671235000")
	f.expectAlerts()
	// the window slides: the first four age out before the fifth comes
	f.clk.Add(10 * time.Minute)
	f.calls(1, "a05", "", tn(5))
	f.expectAlerts()
	for i := 6; i < 10; i++ {
		f.calls(1, fmt.Sprintf("a%02d", i), "", tn(i))
	}
	f.e.Evaluate()
	if a := f.col.last(); a.Action != "alert" || a.Kind != "range_accounts" || a.Value != 5 {
		t.Errorf("without block: %+v", a)
	}
}

// The table keeps max_ranges ranges and forgets the least recently called.
func TestRangeTableLRU(t *testing.T) {
	rv := &policy.RangeVelocity{Accounts: policy.Threshold{Critical: 3}, MaxRanges: 3}
	f := newFixture(t, rangeSet(5, rv))
	r := func(k int) string { return fmt.Sprintf("+216712%02d000", k) }
	// one call per evaluation: the journal's queues are by account, so
	// the order within one evaluation is only kept per account
	call := func(a string, k int) {
		f.calls(1, a, "", r(k))
		f.eval()
	}
	call("a00", 1)
	call("a01", 1)
	call("a00", 2)
	call("a00", 3)
	call("a02", 2) // 2 is now the most recent; 1 the least
	call("a00", 4) // evicts 1
	if st := f.e.Stats(); st.RangesTracked != 3 || st.RangesEvicted != 1 {
		t.Fatalf("stats %+v", st)
	}
	f.calls(1, "a02", "", r(1)) // range 1 starts over: 1 account, no alert
	f.expectAlerts()
	f.calls(1, "a03", "", r(2)) // range 2 kept its two accounts: 3
	f.expectAlerts("threshold/critical/range_accounts")
}

// A full journal drops (and counts) rather than wait; the evaluator reads
// what was written in order.
func TestJournal(t *testing.T) {
	j := newJournal(8)
	var s Scope
	for i := 0; i < 10; i++ {
		j.push(&s, matcher.Number(i+1), 0, 0, 0, 0, true)
	}
	if j.dropped.Load() != 2 {
		t.Errorf("dropped %d", j.dropped.Load())
	}
	var got []matcher.Number
	j.drain(func(e *journalEntry) { got = append(got, e.dest) })
	if fmt.Sprint(got) != fmt.Sprint([]matcher.Number{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("drained %v", got)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				j.push(&s, 1, 0, 0, 0, 0, true)
			}
		}()
	}
	n := 0
	for done := false; !done; {
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
			done = true
		default:
		}
		j.drain(func(*journalEntry) { n++ })
	}
	if n+int(j.dropped.Load())-2 != 4000 {
		t.Errorf("read %d + dropped %d of 4000", n, j.dropped.Load()-2)
	}
}

// The decision path stays allocation-free with every new measure on and
// the range velocity watching.
func TestPatternsDecideAllocs(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{DistinctDestinations: th(10, 20), DistinctCountries: th(3, 5),
		SequentialRangeCalls: th(5, 10), ShortCalls: th(50, 80), InvalidNumbers: th(5, 10), LockedAttempts: th(5, 10)}}, Action: policy.ActionAlert}
	set := setWith(v)
	set.Operator.RangeVelocity = &policy.RangeVelocity{Accounts: policy.Threshold{Critical: 20}}
	f := newFixture(t, set)
	qs := []matcher.Query{{To: tn(1), Account: "acme"}, {To: tn(2), Account: "acme", Subaccount: "sales"}, {To: "abc", Account: "acme"}}
	for i := range qs {
		f.m.Decide(&qs[i])
	}
	i := 0
	if n := testing.AllocsPerRun(200, func() { f.m.Decide(&qs[i%len(qs)]); i++ }); n != 0 {
		t.Errorf("%v allocations per decision", n)
	}
}

// The pattern measures' per-scope state is fraud state like the rest: the
// distinct sets, the range run, the short-call and probing rings survive a
// restart; members that fell out of the window while the daemon was down
// are dropped.
func TestPatternStateSurvivesRestart(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{Name: "patterns", WindowMinutes: 30,
		DistinctDestinations: th(0, 100), DistinctCountries: th(0, 100), SequentialRangeCalls: th(0, 100),
		ShortCalls: th(0, 100), MinAnsweredCalls: 2, InvalidNumbers: th(0, 100), LockedAttempts: th(0, 100)}}}
	set := setWith(v)
	f := newFixture(t, set)
	f.calls(1, "acme", "", numDE)
	f.clk.Add(20 * time.Minute)
	for i := 0; i < 4; i++ {
		f.shortCall(fmt.Sprintf("c%d", i), "acme", "sales", tn(i), 3*time.Second)
	}
	f.shortCall("long", "acme", "", numFR, time.Minute)
	f.call("acme", "", "abc")
	f.eval()
	want := "distinct_destinations=6/ok distinct_countries=3/ok sequential_range_calls=1/ok short_calls=80/ok invalid_numbers=1/ok locked_attempts=0/ok"
	if got := f.levels("acme", "", 0); got != want {
		t.Fatalf("before: %s\nwant    %s", got, want)
	}
	be := &memBackend{}
	f.flush(be)
	g := f.restart(set, be)
	if got := g.levels("acme", "", 0); got != want {
		t.Errorf("after the restart: %s\nwant               %s", got, want)
	}
	// the range run goes on where it was
	g.calls(2, "acme", "", tn(7))
	if got := g.measure("acme", "", 0, "sequential_range_calls"); got != 2 {
		t.Errorf("run %d", got)
	}
	f.calls(3, "acme", "", tn(8))
	f.flush(be)
	h := f.restart(set, be)
	if got := h.measure("acme", "", 0, "sequential_range_calls"); got != 3 {
		t.Errorf("restored run %d, want 3", got)
	}
	// down for 15 minutes: the DE call (35 minutes old) is out of the window
	f.clk.Add(15 * time.Minute)
	k := f.restart(set, be)
	if got := k.measure("acme", "", 0, "distinct_countries"); got != 2 {
		t.Errorf("after 15 minutes down: %d countries, want 2 (TN, FR)", got)
	}
}

// An operator's unlock does not switch a distinct measure off: its set
// keeps members up to the level at which the unlock locks again
// (relock_margin further critical levels), so a fan-out that goes on
// locks again. Without a lockdown action the set stops at the level.
func TestDistinctRelocksAfterUnlock(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{DistinctDestinations: th(0, 5)}}}
	f := newFixture(t, setWith(v))
	for i := 0; i < 5; i++ {
		f.calls(1, "acme", "", numN(i))
	}
	f.expectAlerts("threshold/critical/distinct_destinations", "lockdown/critical/lockdown")
	f.e.Unlock("acme", "", "admin", "checked")
	f.col.take()
	for i := 5; i < 9; i++ {
		f.calls(1, "acme", "", numN(i))
	}
	f.expectAlerts() // 9: under 5 + 5
	f.calls(1, "acme", "", numN(9))
	got := f.eval()
	if len(got) != 2 || got[1] != "lockdown/critical/lockdown" {
		t.Fatalf("alerts %v, want a new critical and a lockdown", got)
	}
	if n := f.measure("acme", "", 0, "distinct_destinations"); n != 10 {
		t.Errorf("value %d", n)
	}
	if c := distinctCap(policy.Threshold{Critical: 5}, policy.ActionAlert, 1); c != 5 {
		t.Errorf("alert-only cap %d", c)
	}
	if c := distinctCap(policy.Threshold{Critical: 1000}, policy.ActionLockdown, 100); c != 2000 {
		t.Errorf("bounded cap %d", c)
	}
}
