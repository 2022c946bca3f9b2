package origin

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"
)

// TestAcctLineAligned: every account state starts on a cache line, so the
// fields a check reads through a Ref (hotState, 64 bytes, first) are one
// line. It fails when acct grows into a size class that is not a multiple
// of 64 bytes, or hotState past one line.
func TestAcctLineAligned(t *testing.T) {
	if n := unsafe.Sizeof(hotState{}); n != 64 {
		t.Errorf("hotState is %d bytes, want one 64-byte line", n)
	}
	if off := unsafe.Offsetof(acct{}.hot); off != 0 {
		t.Errorf("hotState at offset %d, want 0", off)
	}
	st := NewState(StateOptions{})
	for i := 0; i < 200; i++ {
		a := st.getOrCreate(fmt.Sprintf("acct-%d", i), true)
		if p := uintptr(unsafe.Pointer(a)); p%64 != 0 {
			t.Fatalf("acct of %d bytes at %#x: not on a cache line", unsafe.Sizeof(*a), p)
		}
	}
}

// TestRefPrunedAndForeign: a Ref that points at a pruned account, or at
// another State's, is not used: the check looks the key up again (a pruned
// account's history is gone; another State's history is not this one's)
// and the Ref then points at the live account.
func TestRefPrunedAndForeign(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", ChangeMinutes: 30})
	var ref Ref
	call := func(c *Checker, ip string) Outcome {
		return c.Check(Input{Account: "a", SrcIP: ip, Rules: r, DestCountry: "GB", Ref: &ref})
	}
	if o := call(f.c, ipDE); o.Action != Allow {
		t.Fatal(text(o))
	}
	first := ref.load()
	if first == nil || first != f.st.get("a") {
		t.Fatal("the Ref was not filled with the account's state")
	}
	// Within the change period another country screens, through the Ref.
	f.clk.Add(time.Minute)
	if o := call(f.c, ipFR); o.Rule != RuleLocationChange {
		t.Fatalf("through the Ref: %s", text(o))
	}
	// Pruned: the history is gone, so the same call passes, and the Ref
	// points at the new account.
	f.clk.Add(2 * time.Hour)
	call(f.c, ipDE)
	f.clk.Add(2 * time.Hour)
	if n := f.st.Prune(time.Hour); n != 1 {
		t.Fatalf("pruned %d", n)
	}
	if o := call(f.c, ipDE); o.Action != Allow {
		t.Fatal(text(o))
	}
	if got := ref.load(); got == first || got != f.st.get("a") {
		t.Fatalf("after prune the Ref points at %p, the state is %p (pruned %p)", got, f.st.get("a"), first)
	}
	// A State of its own: the first State's history (DE a minute ago)
	// must not screen this call from FR.
	f.clk.Add(time.Minute)
	other := NewChecker(f.geo, NewState(StateOptions{Now: f.clk.Now}))
	if o := call(other, ipFR); o.Rule == RuleLocationChange {
		t.Fatalf("another State's history used: %s", text(o))
	}
	if ref.load() != other.State().get("a") {
		t.Fatal("the Ref does not point at the other State's account")
	}
	// An operator's change made after a prune, on a new account, is
	// seen through a stale Ref.
	f.clk.Add(2 * time.Hour)
	ref.store(f.st.get("a")) // to be stale
	if ref.load() == nil || f.st.Prune(time.Hour) != 1 {
		t.Fatal("not pruned")
	}
	f.st.SetHome("a", "FR")
	rs := f.rules(AccountSpec{Mobility: "stationary"})
	if o := f.c.Check(Input{Account: "a", SrcIP: ipFR, Rules: rs, Ref: &ref}); o.Rule != RuleHome {
		t.Fatalf("home set after the prune not seen: %s", text(o))
	}
}

// TestRefSameOutcomes runs one random sequence of checks, screening
// reports, operator changes, prunes and clock moves on two States, one
// checked through Refs and one without, and wants the same outcome and
// status every time.
func TestRefSameOutcomes(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fa, fb := newFixture(t, true), newFixture(t, true)
		specs := []AccountSpec{
			{Profile: "std", Mobility: "stationary", Home: "DE", ChangeMinutes: 30},
			{Profile: "std", ChangeMinutes: 5, ChangeBy: "ip"},
			{Profile: "std", AssignHome: true, ChangeMinutes: 10},
			{Profile: "strict", AssignHome: true},
			{TrustedSources: []string{"10.0.0.0/8"}},
			{Profile: "lax"},
		}
		var ra, rb []*Rules
		for _, s := range specs {
			ra, rb = append(ra, fa.rules(s)), append(rb, fb.rules(s))
		}
		accounts := []string{"a", "b", "c", "team/x"}
		refs := make([]Ref, len(accounts))
		ips := []string{ipDE, ipDE2, ipFR, ipGB, ipCN, ipNG, ipNone, "", "garbage", ipUS6, ipSEBlock}
		rnd := rand.New(rand.NewPCG(seed, 7))
		for step := 0; step < 400; step++ {
			ai := rnd.IntN(len(accounts))
			acc := accounts[ai]
			ri := rnd.IntN(len(specs))
			switch op := rnd.IntN(20); {
			case op < 14:
				in := Input{Account: acc, SrcIP: ips[rnd.IntN(len(ips))], DestCountry: []string{"", "DE", "GB", "FR"}[rnd.IntN(4)], HomeCountry: "DE"}
				if acc == "team/x" {
					in.Parent = "team"
				}
				ia, ib := in, in
				ia.Rules, ib.Rules, ib.Ref = ra[ri], rb[ri], &refs[ai]
				oa, ob := fa.c.Check(ia), fb.c.Check(ib)
				if oa != ob {
					t.Fatalf("seed %d step %d %+v: without a Ref %+v, with %+v", seed, step, in, oa, ob)
				}
			case op == 14:
				fa.st.ScreeningPassed(acc, ra[ri])
				fb.st.ScreeningPassed(acc, rb[ri])
			case op == 15:
				fa.st.ScreeningFailed(acc, ra[ri])
				fb.st.ScreeningFailed(acc, rb[ri])
			case op == 16:
				fa.st.SetHome(acc, "GB")
				fb.st.SetHome(acc, "GB")
			case op == 17:
				if na, nb := fa.st.Prune(20*time.Minute), fb.st.Prune(20*time.Minute); na != nb {
					t.Fatalf("seed %d step %d: pruned %d and %d", seed, step, na, nb)
				}
			case op == 18:
				fa.st.Release(acc)
				fb.st.Release(acc)
			default:
				d := time.Duration(rnd.IntN(3)) * []time.Duration{time.Second, time.Minute, time.Hour}[rnd.IntN(3)]
				fa.clk.Add(d)
				fb.clk.Add(d)
			}
			if sa, sb := fa.st.Status(acc), fb.st.Status(acc); sa != sb {
				t.Fatalf("seed %d step %d: status %+v and %+v", seed, step, sa, sb)
			}
		}
	}
}

// TestInputNow: a check takes the caller's reading of the clock
// (Input.Now) when the State keeps the real clock, and ignores it when the
// State has a clock of its own; without one it reads the State's.
func TestInputNow(t *testing.T) {
	op, _ := CompileOperator(OperatorSpec{})
	r, _ := op.Account(AccountSpec{ChangeMinutes: 5, ChangeBy: "ip"})
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	real := NewChecker(nil, NewState(StateOptions{}))
	real.Check(Input{Account: "a", SrcIP: ipDE, Rules: r, Now: at.UnixNano()})
	if got := real.State().Status("a").LastCallAt; !got.Equal(at) {
		t.Errorf("real clock, Input.Now %v: last call at %v", at, got)
	}
	before := time.Now()
	real.Check(Input{Account: "b", SrcIP: ipDE, Rules: r})
	if got := real.State().Status("b").LastCallAt; got.Before(before) || got.After(time.Now()) {
		t.Errorf("real clock, no Input.Now: last call at %v, not now", got)
	}

	clk := newClock()
	clk.Add(time.Hour)
	own := NewChecker(nil, NewState(StateOptions{Now: clk.Now}))
	own.Check(Input{Account: "a", SrcIP: ipDE, Rules: r, Now: at.UnixNano()})
	if got := own.State().Status("a").LastCallAt; !got.Equal(clk.Now()) {
		t.Errorf("own clock %v, Input.Now %v: last call at %v", clk.Now(), at, got)
	}
}

// TestRecordMatchesLocked: record, which moves a call's times without the
// account's lock when it comes from the last call's country and address,
// leaves the account as recording every call under the lock does: its
// hot fields, its plain fields and, in fleet mode, what is queued for
// export and when. Each step is a call (time, country, address); the
// steps cover repeats within and past the grain, a country or address
// that moves, an unknown country, an unreadable address, a call older
// than the last and repeats past LocationRefresh.
func TestRecordMatchesLocked(t *testing.T) {
	de, fr := packCC("DE"), packCC("FR")
	ip1, ip2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::2")
	sec := int64(time.Second)
	steps := []struct {
		at int64
		cc cc
		ip netip.Addr
		ok bool
	}{
		{10 * sec, de, ip1, true}, {10*sec + 1, de, ip1, true}, {12 * sec, de, ip1, true}, {20 * sec, fr, ip1, true},
		{25 * sec, fr, ip2, true}, {27 * sec, fr, ip2, true}, {30 * sec, 0, ip2, true}, {33 * sec, de, netip.Addr{}, false},
		{31 * sec, de, ip2, true}, {40 * sec, de, ip2, true}, {80 * sec, de, ip2, true}, {95 * sec, de, ip2, true},
		{96 * sec, de, ip1, true}, {200 * sec, de, ip1, true}, {201 * sec, 0, netip.Addr{}, false},
	}
	for _, fleet := range []bool{false, true} {
		t.Run(fmt.Sprintf("fleet=%v", fleet), func(t *testing.T) {
			got, want := NewChecker(nil, NewState(StateOptions{})), NewChecker(nil, NewState(StateOptions{}))
			if fleet {
				got.st.EnableExport()
				want.st.EnableExport()
			}
			ga, wa := got.st.getOrCreate("a", true), want.st.getOrCreate("a", true)
			exported := func(c *Checker) (ls []Location) {
				c.st.ExportLocations(func(l Location) { ls = append(ls, l) })
				return ls
			}
			for i, st := range steps {
				var s hotView
				q := ga.load(&s)
				got.record(ga, q, &s, st.at, st.cc, st.ip, st.ok)
				wa.load(&s)
				if needRecord(&s, st.at, st.cc, st.ip, st.ok) {
					wa.lock()
					want.setLast(wa, st.at, st.cc, st.ip, st.ok)
					wa.unlock()
				}
				var gv, wv hotView
				ga.load(&gv)
				wa.load(&wv)
				if gv != wv {
					t.Fatalf("step %d: hot %+v, recording under the lock gives %+v", i, gv, wv)
				}
				if ga.lastCC != wa.lastCC || ga.lastIP != wa.lastIP || ga.pubAt.Load() != wa.pubAt.Load() ||
					ga.export.pubCC != wa.export.pubCC || ga.export.pubIP != wa.export.pubIP {
					t.Fatalf("step %d: last %v %v exported %v %v at %d, under the lock %v %v, %v %v at %d", i,
						ga.lastCC, ga.lastIP, ga.export.pubCC, ga.export.pubIP, ga.pubAt.Load(),
						wa.lastCC, wa.lastIP, wa.export.pubCC, wa.export.pubIP, wa.pubAt.Load())
				}
				if g, w := exported(got), exported(want); fmt.Sprint(g) != fmt.Sprint(w) {
					t.Fatalf("step %d: exported %v, under the lock %v", i, g, w)
				}
			}
		})
	}
}

// TestRecordWithoutLock: a call from the last call's country and address
// is recorded while another goroutine holds the account's mutex (it takes
// no lock); one that moves the country waits for the mutex; and a record
// whose view is stale (a writer was in between) changes nothing without
// the lock, so the writer's state is what the locked record then sees.
func TestRecordWithoutLock(t *testing.T) {
	c := NewChecker(nil, NewState(StateOptions{}))
	a := c.st.getOrCreate("a", true)
	de, fr := packCC("DE"), packCC("FR")
	ip := netip.MustParseAddr("192.0.2.1")
	sec := int64(time.Second)
	rec := func(at int64, o cc) <-chan struct{} {
		done := make(chan struct{})
		var s hotView
		q := a.load(&s)
		go func() {
			c.record(a, q, &s, at, o, ip, true)
			close(done)
		}()
		return done
	}
	<-rec(10*sec, de)

	a.mu.Lock() // someone holds the account: a same-origin call still records
	select {
	case <-rec(20*sec, de):
	case <-time.After(10 * time.Second):
		a.mu.Unlock()
		t.Fatal("a call from the last origin waited for the account's mutex")
	}
	if at := a.ccAt(); at != 20*sec {
		t.Fatalf("country time %d, want %d", at, 20*sec)
	}
	moved := rec(30*sec, fr)
	select {
	case <-moved:
		t.Fatal("a call from another country was recorded without the account's mutex")
	case <-time.After(50 * time.Millisecond):
	}
	a.mu.Unlock()
	<-moved
	var v hotView
	a.load(&v)
	if v.lastCC != fr || v.ccAt != 30*sec || v.ipAt != 30*sec {
		t.Fatalf("after the move: %+v", v)
	}

	// A stale view: read, then a writer moves the last call to DE at 50 s.
	var s hotView
	q := a.load(&s)
	a.lock()
	c.setLast(a, 50*sec, de, ip, true)
	a.unlock()
	if a.touch(q, 40*sec, true, true) {
		t.Fatal("touch from a stale sequence succeeded")
	}
	c.record(a, q, &s, 40*sec, fr, ip, true) // FR at 40 s, read before the DE call at 50 s
	a.load(&v)
	if v.lastCC != de || v.ccAt != 50*sec || v.ipAt != 50*sec {
		t.Fatalf("a stale record undid a later call: %+v", v)
	}
}
