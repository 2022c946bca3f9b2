package velocity

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// memBackend is a fraudstate.Backend in memory.
type memBackend struct {
	mu sync.Mutex
	m  [fraudstate.NumKinds]map[string][]byte
}

func (b *memBackend) WriteState(batch *fraudstate.Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := fraudstate.Kind(0); k < fraudstate.NumKinds; k++ {
		if b.m[k] == nil {
			b.m[k] = map[string][]byte{}
		}
		batch.Each(k, func(key string, val []byte) error {
			if val == nil {
				delete(b.m[k], key)
			} else {
				b.m[k][key] = append([]byte(nil), val...)
			}
			return nil
		})
	}
	return nil
}

func (b *memBackend) LoadState(k fraudstate.Kind, fn func(string, []byte) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, v := range b.m[k] {
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the fixture's engine state to be.
func (f *fixture) flush(be *memBackend) {
	f.t.Helper()
	w := fraudstate.NewWriter(be, fraudstate.Options{})
	w.AddSource(f.e)
	if err := w.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

// restart is a new engine on the same policy and clock, restored from be,
// as the daemon restores at start (locks from the store first).
func (f *fixture) restart(set *policy.Set, be *memBackend) *fixture {
	f.t.Helper()
	g := newFixture(f.t, set)
	g.clk.Set(f.clk.Now())
	g.e.RestoreLocks(f.e.Locks())
	r, err := fraudstate.Restore(be, nil, [fraudstate.NumKinds]fraudstate.Loader{
		fraudstate.Scopes: g.e.RestoreScope, fraudstate.Calls: g.e.RestoreCall})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(r.Errors) > 0 {
		f.t.Logf("refused: %v", r.Errors)
	}
	return g
}

func stateJSON(t *testing.T, e *Engine, account string) string {
	t.Helper()
	st, err := e.State(account)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// Nothing of an account's fraud state is lost to a restart: counters,
// today's spend, live calls, the ended calls' dedupe set, the raised
// levels. The same `ended` sent again after the restart is a duplicate.
func TestStateSurvivesRestart(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Warning: 2, Limit: 5},
		Rules: []policy.VelocityRule{
			{Name: "burst", CallsPerMinute: th(0, 100), CallsPerWindow: th(3, 100), SequentialCalls: th(0, 100), BlockedAttempts: th(0, 100)},
			{Name: "live", ConcurrentCalls: th(0, 10), CallDuration: th(60, 0)},
		}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"SO"}}
	set.Accounts["acme"] = acme
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_100_000}}}
	f := newFixture(t, set)
	f.calls(4, "acme", "", numFR)
	f.call("acme", "", "+252612345678") // barred: a blocked attempt
	f.event(Answered, "live", "acme", "sales", numFR, -1)
	f.event(Ended, "done", "acme", "", numFR, 5*time.Minute) // 5.50 USD
	f.clk.Add(90 * time.Second)
	if got := strings.Join(f.eval(), " "); !strings.Contains(got, "threshold/critical/daily_spend") || !strings.Contains(got, "threshold/warning/calls_per_window") {
		t.Fatalf("alerts before the restart: %s", got)
	}
	before := stateJSON(t, f.e, "acme")
	if !strings.Contains(before, `"booked":5.5`) || !strings.Contains(before, `"live_calls":1`) {
		t.Fatalf("before: %s", before)
	}
	be := &memBackend{}
	f.flush(be)

	g := f.restart(set, be)
	if after := stateJSON(t, g.e, "acme"); after != before {
		t.Fatalf("after restart\n%s\nbefore\n%s", after, before)
	}
	if st := g.e.Stats(); st.LiveCalls != 1 {
		t.Errorf("live calls %d", st.LiveCalls)
	}
	// nothing is raised again: the levels were restored with the counts
	g.expectAlerts()
	if r := g.event(Ended, "done", "acme", "", numFR, 5*time.Minute); r != Duplicate {
		t.Errorf("an end counted before the restart, sent again: %v", r)
	}
	if r := g.event(Answered, "live", "acme", "sales", numFR, -1); r != Duplicate {
		t.Errorf("the answer of a live call, sent again: %v", r)
	}
	if r := g.event(Ended, "live", "acme", "sales", numFR, -1); r != Accepted {
		t.Errorf("the end of a call live before the restart: %v", r)
	}
	st, _ := g.e.State("acme")
	if st.LiveCalls != 0 || st.Spend.Booked != "7.15" { // 5.50 + 90 s at 1.10
		t.Errorf("after the end: %+v", st.Spend)
	}
	g.call("acme", "", numFR)
	if n := g.measure("acme", "", 0, "calls_per_window"); n != 5 {
		t.Errorf("window after restart and one more call: %d", n)
	}
}

// Windows are restored relative to now: what fell out of a window while
// the daemon was down is dropped, and yesterday's spend is not today's.
func TestRestoreDropsExpired(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 5},
		Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 100), CallsPerWindow: th(0, 100), WindowMinutes: 60}}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.calls(3, "acme", "", numFR)
	f.clk.Add(30 * time.Minute)
	f.calls(2, "acme", "", numFR)
	f.event(Ended, "x", "acme", "", numFR, 2*time.Minute)
	f.eval()
	be := &memBackend{}
	f.flush(be)
	for _, c := range []struct {
		down         time.Duration
		cpm, window  int
		booked, tomb string
	}{
		{10 * time.Second, 2, 5, "2", "dup"},
		{2 * time.Minute, 0, 5, "2", "dup"},
		{45 * time.Minute, 0, 2, "2", "dup"},
		{3 * time.Hour, 0, 0, "2", "dup"},
		{5 * time.Hour, 0, 0, "2", "new"},  // the tombstone outlived -max-call-duration
		{14 * time.Hour, 0, 0, "0", "new"}, // the next day (UTC)
	} {
		f.clk.Set(monday10.Add(30 * time.Minute).Add(c.down))
		g := f.restart(set, be)
		if cpm, win := g.measure("acme", "", 0, "calls_per_minute"), g.measure("acme", "", 0, "calls_per_window"); cpm != c.cpm || win != c.window {
			t.Errorf("down %v: cpm %d window %d, want %d %d", c.down, cpm, win, c.cpm, c.window)
		}
		st, _ := g.e.State("acme")
		if string(st.Spend.Booked) != c.booked {
			t.Errorf("down %v: booked %s, want %s", c.down, st.Spend.Booked, c.booked)
		}
		r := g.event(Ended, "x", "acme", "", numFR, 2*time.Minute)
		if (r == Duplicate) != (c.tomb == "dup") {
			t.Errorf("down %v: the end again: %v", c.down, r)
		}
	}
}

// A scope the policy dropped is dropped from the stored state; a record
// that does not decode is refused, not fatal.
func TestRestoreRefusesGoneAndDamaged(t *testing.T) {
	v := &policy.Velocity{Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 100)}}}
	f := newFixture(t, setWith(v))
	f.calls(2, "acme", "sales", numFR)
	f.event(Answered, "c1", "acme", "sales", numFR, -1)
	be := &memBackend{}
	f.flush(be)
	be.m[fraudstate.Scopes]["other"] = []byte("{not json")
	next := setWith(v)
	delete(next.Accounts["acme"].Subaccounts, "sales")
	g := newFixture(t, next)
	w := fraudstate.NewWriter(be, fraudstate.Options{})
	r, err := fraudstate.Restore(be, w, [fraudstate.NumKinds]fraudstate.Loader{fraudstate.Scopes: g.e.RestoreScope, fraudstate.Calls: g.e.RestoreCall})
	if err != nil {
		t.Fatal(err)
	}
	if r.Loaded[fraudstate.Scopes] != 1 || r.Refused[fraudstate.Scopes] != 2 || r.Refused[fraudstate.Calls] != 1 {
		t.Fatalf("restored %+v", r)
	}
	w.Flush()
	if _, ok := be.m[fraudstate.Scopes]["acme/sales"]; ok || len(be.m[fraudstate.Calls]) != 0 {
		t.Errorf("refused records kept: %v %v", be.m[fraudstate.Scopes], be.m[fraudstate.Calls])
	}
	if n := g.measure("acme", "", 0, "calls_per_minute"); n != 2 {
		t.Errorf("the account's counts: %d", n)
	}
}

// After an operator unlock, a level crossed again by a further margin (by
// default another limit's worth) raises a new critical and locks again:
// unlocked at 5.5 USD of a 5 USD limit, a new critical at 10.5 USD.
func TestUnlockRelocksAfterMargin(t *testing.T) {
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Limit: 5},
		Rules: []policy.VelocityRule{{Name: "hourly", CallsPerWindow: th(0, 4)}}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.event(Ended, "a", "acme", "", numFR, 330*time.Second) // 5.50
	f.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
	if _, ok := f.e.Unlock("acme", "", "ops", "customer confirmed"); !ok {
		t.Fatal("not locked")
	}
	f.expectAlerts("unlock/info/unlock")
	st, _ := f.e.State("acme")
	if st.Unlock == nil || st.Unlock.Relock["daily_spend"] != "10.5" {
		t.Fatalf("unlock state %+v", st.Unlock)
	}
	f.event(Ended, "b", "acme", "", numFR, 296*time.Second) // 10.4333
	f.expectAlerts()
	if v := f.call("acme", "", numFR); v.Reason != matcher.ReasonOK {
		t.Fatalf("locked below the margin: %s", v.Reason)
	}
	f.event(Ended, "c", "acme", "", numFR, 5*time.Second) // 10.5167
	f.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
	l, locked := f.e.LockOf("acme", "")
	if !locked || !strings.Contains(l.Reason, "crossed again after the unlock by ops (re-lock level 10.5)") {
		t.Fatalf("re-lock %v %+v", locked, l)
	}

	// a rule's measure: 5 calls of a critical 4, unlocked; another 3 calls
	// (8) raise nothing, the fourth (9 = 5 + 4) does
	f.e.Unlock("acme", "", "ops", "again")
	f.col.take()
	f.e.Reset("acme", "")
	f.calls(5, "acme", "", numGB)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
	f.e.Unlock("acme", "", "ops", "ok")
	f.expectAlerts("unlock/info/unlock")
	f.calls(3, "acme", "", numGB)
	f.expectAlerts()
	f.calls(1, "acme", "", numGB)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")

	// relock_margin 0.5: half a limit's worth
	half := *v
	half.RelockMargin = 0.5
	acme := set.Accounts["acme"]
	acme.Velocity = &half
	set.Accounts["acme"] = acme
	f.load(set)
	f.e.Unlock("acme", "", "ops", "ok")
	f.col.take()
	f.e.Reset("acme", "")
	f.calls(4, "acme", "", numGB)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
	f.e.Unlock("acme", "", "ops", "ok")
	f.expectAlerts("unlock/info/unlock")
	f.calls(1, "acme", "", numGB)
	f.expectAlerts()
	f.calls(1, "acme", "", numGB) // 6 = 4 + 2
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
}

// An unlock with an expiry lapses then: a level still crossed raises a new
// critical and locks again. "Until midnight" is the account's next local
// midnight, where the spend starts over: the unlock ends quietly.
func TestUnlockUntil(t *testing.T) {
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Limit: 5},
		Rules: []policy.VelocityRule{{Name: "daily", WindowMinutes: 1440, CallsPerWindow: th(0, 3)}}}
	set := setWith(v)
	acme := set.Accounts["acme"]
	acme.TimeZone = ptr("America/New_York")
	set.Accounts["acme"] = acme
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.clk.Set(time.Date(2026, 3, 3, 3, 0, 0, 0, time.UTC)) // 22:00 in New York
	f.event(Ended, "a", "acme", "", numFR, 330*time.Second)
	f.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
	mid, err := f.e.NextMidnight("acme", "", f.clk.Now())
	if err != nil || !mid.Equal(time.Date(2026, 3, 3, 5, 0, 0, 0, time.UTC)) {
		t.Fatalf("next midnight %v %v", mid, err)
	}
	f.e.UnlockUntil("acme", "", "ops", "for tonight", mid)
	f.expectAlerts("unlock/info/unlock")
	f.clk.Set(mid.Add(-time.Second))
	f.expectAlerts()
	f.clk.Set(mid)
	f.expectAlerts() // a new day: 0 spent, nothing crossed
	if _, locked := f.e.LockOf("acme", ""); locked {
		t.Fatal("locked at midnight with nothing spent")
	}
	if st, _ := f.e.State("acme"); st.Unlock != nil {
		t.Fatalf("the unlock outlived its until: %+v", st.Unlock)
	}

	// a measure still critical when an unlock lapses locks again
	f.calls(4, "acme", "", numGB)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
	until := f.clk.Now().Add(time.Hour)
	f.e.UnlockUntil("acme", "", "ops", "one hour", until)
	f.expectAlerts("unlock/info/unlock")
	f.clk.Add(59 * time.Minute)
	f.expectAlerts()
	f.clk.Add(time.Minute)
	f.expectAlerts("threshold/critical/calls_per_window", "lockdown/critical/lockdown")
	if l, _ := f.e.LockOf("acme", ""); !strings.Contains(l.Reason, "still critical when the unlock by ops lapsed") {
		t.Errorf("lapse lock %+v", l)
	}
}

// The unlock's grace survives a restart.
func TestUnlockGraceSurvivesRestart(t *testing.T) {
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Limit: 5}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	f.event(Ended, "a", "acme", "", numFR, 330*time.Second)
	f.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
	f.e.UnlockUntil("acme", "", "ops", "x", f.clk.Now().Add(time.Hour))
	be := &memBackend{}
	f.flush(be)
	g := f.restart(set, be)
	g.expectAlerts()
	g.event(Ended, "b", "acme", "", numFR, 5*time.Minute)
	g.expectAlerts("threshold/critical/daily_spend", "lockdown/critical/lockdown")
}

// An answered call whose end never arrives is booked from its answer to
// when it was last heard of (a repeated answer), or to the unconfirmed cap
// after its answer, not at the maximum duration; it is flagged.
func TestUnconfirmedCall(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 100}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+53", Micro: 1_100_000}}}
	const numCU = "+5355512345"
	for _, c := range []struct {
		name   string
		cap    time.Duration
		heard  time.Duration // a repeated answer after this long; 0 none
		booked string
	}{
		{"answer only", 0, 0, "0"},
		{"heard after 10 min", 0, 10 * time.Minute, "11"},
		{"cap 1 min", time.Minute, 0, "1.1"},
		{"heard after the cap", time.Minute, 10 * time.Minute, "11"},
	} {
		f := newFixture(t, set)
		f.e.opt.UnconfirmedCap = c.cap
		f.event(Answered, "cuba", "acme", "", numCU, -1)
		if c.heard > 0 {
			f.clk.Add(c.heard)
			f.event(Answered, "cuba", "acme", "", numCU, -1)
		}
		f.clk.Set(monday10.Add(4*time.Hour + time.Second))
		f.e.Evaluate()
		var got []alert.Alert
		for _, a := range f.col.all() {
			if a.Kind == alert.KindUnconfirmedCall {
				got = append(got, a)
			}
		}
		st, _ := f.e.State("acme")
		if st.Spend.Booked != json.Number(c.booked) || st.UnconfirmedCalls != 1 || st.LiveCalls != 0 {
			t.Errorf("%s: booked %s unconfirmed %d live %d", c.name, st.Spend.Booked, st.UnconfirmedCalls, st.LiveCalls)
		}
		if len(got) != 1 || !got[0].Unconfirmed || got[0].CallID != "cuba" || got[0].Level != alert.LevelInfo {
			t.Errorf("%s: alerts %+v", c.name, got)
		}
		if r := f.event(Ended, "cuba", "acme", "", numCU, 4*time.Hour); r != Duplicate {
			t.Errorf("%s: a late end: %v", c.name, r)
		}
		calls, err := f.e.Calls("acme")
		if err != nil || len(calls) != 1 || !calls[0].Unconfirmed || calls[0].Live || calls[0].To != numCU {
			t.Errorf("%s: call listing %+v %v", c.name, calls, err)
		}
	}
}

// Whatever a damaged record holds, restoring it never panics, and a record
// that is refused leaves the scope as it was.
func FuzzRestoreRecords(f *testing.F) {
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Limit: 5}, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 9), SequentialCalls: th(0, 9)}}}
	set := setWith(v)
	src := newFixture(&testing.T{}, set)
	src.calls(3, "acme", "", numFR)
	src.event(Answered, "c", "acme", "", numFR, -1)
	src.event(Ended, "d", "acme", "", numFR, time.Minute)
	src.eval()
	var b fraudstate.Batch
	src.e.Collect(&b)
	b.Each(fraudstate.Scopes, func(key string, val []byte) error { f.Add(key, val, false); return nil })
	b.Each(fraudstate.Calls, func(key string, val []byte) error { f.Add(key, val, true); return nil })
	f.Add("acme", []byte(`{"rules":[{"counting":"x","cpm":[1,2,3]}],"grace":{"by":"x"}}`), false)
	f.Add("acme/sales", []byte(`{"peak":{"day":1,"today":2,"history":[[1,2],[3,4],[5,6],[7,8],[9,10],[11,12],[13,14],[15,16]]}}`), false)
	f.Fuzz(func(t *testing.T, key string, val []byte, isCall bool) {
		g := newFixture(t, set)
		var err error
		if isCall {
			err = g.e.RestoreCall(key, val)
		} else {
			err = g.e.RestoreScope(key, val)
		}
		g.eval()
		if _, serr := g.e.State("acme"); serr != nil {
			t.Fatal(serr)
		}
		_ = err
	})
}

// Flushes racing call events and decisions (run with -race): every flush
// sees each event whole, and after a last flush the restored engine has
// exactly the spend and the dedupe set of the one that wrote it.
func TestCollectRacesEvents(t *testing.T) {
	v := &policy.Velocity{Action: policy.ActionAlert, DailySpend: &policy.SpendLimit{Limit: 1e6},
		Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 1_000_000), CallsPerWindow: th(0, 1_000_000)}}}
	set := setWith(v)
	set.Rates = &policy.RateDeck{Currency: "USD", Entries: []policy.RateEntry{{Prefix: "+33", Micro: 1_000_000}}}
	f := newFixture(t, set)
	be := &memBackend{}
	w := fraudstate.NewWriter(be, fraudstate.Options{})
	w.AddSource(f.e)
	const n = 400
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("c%d-%d", g, i)
				f.e.Apply(Event{Kind: Answered, CallID: id, Account: "acme", Subaccount: "sales", To: numFR})
				f.e.Apply(Event{Kind: Ended, CallID: id, Account: "acme", Subaccount: "sales", To: numFR, Duration: time.Minute})
				f.call("acme", "", numFR)
			}
		}(g)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				w.Flush()
				f.e.Evaluate()
			}
		}
	}()
	wg.Wait()
	close(done)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	g := f.restart(set, be)
	for _, acc := range []string{"acme"} {
		if a, b := stateJSON(t, f.e, acc), stateJSON(t, g.e, acc); a != b {
			t.Fatalf("restored\n%s\nwritten\n%s", b, a)
		}
	}
	st, _ := g.e.State("acme")
	if st.Spend.Booked != json.Number(fmt.Sprint(2*n)) {
		t.Errorf("booked %s, want %d", st.Spend.Booked, 2*n)
	}
	for i := 0; i < n; i++ {
		if r := g.event(Ended, fmt.Sprintf("c1-%d", i), "acme", "sales", numFR, time.Minute); r != Duplicate {
			t.Fatalf("end %d again after the restart: %v", i, r)
		}
	}
}
