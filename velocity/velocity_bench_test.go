package velocity

import (
	"math/rand"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// benchSet is 10,000 accounts (a tenth with a subaccount) under an operator
// default with four velocity rules — every measure, a prefix rule and a
// time-window rule — and a daily spend limit, CPS caps, the shipped
// high-risk list and a rate deck.
func benchSet(b *testing.B, n int) *policy.Set {
	hr, err := matcher.DefaultHighRisk()
	if err != nil {
		b.Fatal(err)
	}
	def := policy.Policy{
		TimeZone:           ptr("Europe/London"),
		MaxDestinationRate: ptr(2.0),
		Velocity: &policy.Velocity{
			DailySpend: &policy.SpendLimit{Warning: 500, Limit: 1000},
			Rules: []policy.VelocityRule{
				{Name: "all", CallsPerMinute: th(600, 1200), CallsPerWindow: th(20000, 40000), SequentialCalls: th(500, 1000),
					BlockedAttempts: th(500, 1000), ConcurrentCalls: th(500, 1000), CallDuration: th(7200, 14400)},
				{Name: "satellite", Prefix: "+881", CallsPerMinute: th(1, 2), ConcurrentCalls: th(1, 2)},
				{Name: "caribbean", Prefix: "+1876", CallsPerWindow: th(50, 100)},
				{Name: "nights", Hours: "22:00-06:00", CallsPerMinute: th(100, 200)},
			},
		},
	}
	set := &policy.Set{Operator: policy.Operator{Default: def}, HighRisk: hr, Accounts: make(map[string]policy.Account, n)}
	set.Rates = &policy.RateDeck{Currency: "USD"}
	for cc := 1; cc <= 999; cc++ {
		set.Rates.Entries = append(set.Rates.Entries, policy.RateEntry{Prefix: "+" + strconv.Itoa(cc), Micro: int64(cc) * 1000})
	}
	homes := []string{"US", "GB", "DE", "FR", "AU", "CA", "NL", "ES"}
	for i := 0; i < n; i++ {
		home := homes[i%len(homes)]
		a := policy.Account{Policy: policy.Policy{HomeCountry: &home, MaxCPS: ptr(100), MaxChannels: ptr(500)}}
		if i%10 == 0 {
			a.Subaccounts = map[string]policy.Policy{"s": {Velocity: &policy.Velocity{Rules: []policy.VelocityRule{{CallsPerMinute: th(100, 200)}}}}}
		}
		set.Accounts["acct-"+strconv.Itoa(i)] = a
	}
	return set
}

var benchCodes = []string{"1212", "1416", "4420", "4930", "3314", "3491", "3120", "6128", "8613", "9122", "5511", "2711", "8190", "6565", "971", "234"}

func benchQueries(n, accounts int) []matcher.Query {
	r := rand.New(rand.NewSource(7))
	qs := make([]matcher.Query, n)
	for i := range qs {
		cc := benchCodes[r.Intn(len(benchCodes))]
		num := []byte("+" + cc)
		for len(num) < 12 {
			num = append(num, byte('2'+r.Intn(8)))
		}
		a := r.Intn(accounts)
		q := matcher.Query{To: string(num), Account: "acct-" + strconv.Itoa(a)}
		if a%10 == 0 && r.Intn(2) == 0 {
			q.Subaccount = "s"
		}
		qs[i] = q
	}
	return qs
}

func benchMatcher(b *testing.B, set *policy.Set, withVelocity bool) (*matcher.Matcher, *Engine) {
	var e *Engine
	var opt matcher.Options
	if withVelocity {
		e = New(Options{})
		opt.Velocity = e
	}
	snap, err := matcher.Compile(set, plan)
	if err != nil {
		b.Fatal(err)
	}
	m := matcher.New(plan, opt)
	m.Swap(snap)
	if e != nil {
		if err := e.Sync(set); err != nil {
			b.Fatal(err)
		}
	}
	return m, e
}

// withPatterns makes benchSet's first rule ("all", which watches every
// older measure) watch every pattern measure too (distinct destinations
// and countries, sequential range calls, short calls, invalid numbers,
// locked attempts) and turns on the operator's range velocity, with levels
// the benchmark's traffic does not reach (so no account locks and every
// decision does the full work). The rules stay four, so the comparison
// with BenchmarkDecideVelocityOn is the cost of the measures.
func withPatterns(set *policy.Set) *policy.Set {
	v := *set.Operator.Default.Velocity
	v.Rules = append([]policy.VelocityRule(nil), v.Rules...)
	r := &v.Rules[0]
	r.DistinctDestinations, r.DistinctCountries, r.SequentialRangeCalls = th(500, 1000), th(500, 1000), th(500, 1000)
	r.ShortCalls, r.InvalidNumbers, r.LockedAttempts = th(90, 100), th(500, 1000), th(500, 1000)
	set.Operator.Default.Velocity = &v
	set.Operator.RangeVelocity = &policy.RangeVelocity{Accounts: policy.Threshold{Warning: 99, Critical: 100}}
	return set
}

func benchDecide(b *testing.B, withVelocity, patterns bool) {
	set := benchSet(b, 10_000)
	if patterns {
		set = withPatterns(set)
	}
	m, e := benchMatcher(b, set, withVelocity)
	qs := benchQueries(1<<16, 10_000)
	var buf [256]byte
	for i := range qs {
		m.Decide(&qs[i]) // steady state: each scope's counters exist
	}
	if e != nil {
		e.Evaluate()
	}
	// cpu-ns/op is the loop's thread CPU time: on a shared machine the
	// wall clock (ns/op) also counts the time other processes held the
	// core
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := threadCPU()
	for i := 0; i < b.N; i++ {
		v := m.Decide(&qs[i&(len(qs)-1)])
		_ = v.AppendRule(buf[:0])
		if e != nil && i&(1<<14-1) == 1<<14-1 {
			// the evaluator drains the journal as Run would every 250 ms,
			// so the decisions keep writing into it rather than finding
			// it full (16,384 decisions are 2-3 ms of this loop)
			b.StopTimer()
			cpu += threadCPU() - start
			e.Evaluate()
			start = threadCPU()
			b.StartTimer()
		}
	}
	cpu += threadCPU() - start
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if e != nil {
		e.Evaluate() // keep the evaluator's view honest: nothing left over
		b.ReportMetric(float64(e.Stats().JournalDropped), "journal-drops")
	}
}

// BenchmarkDecideVelocityOff is the decision for 10,000 accounts with the
// velocity engine not consulted (the baseline).
func BenchmarkDecideVelocityOff(b *testing.B) { benchDecide(b, false, false) }

// BenchmarkDecideVelocityOn is the same decision with the engine behind it:
// four rules per account (every measure, a prefix rule, a time window) plus
// a subaccount rule for a tenth of them, CPS caps and a spend limit. Every
// account has called once before the timer starts: a rule's counters are
// allocated by the first call it counts (BenchmarkDecideVelocityFirstCall).
func BenchmarkDecideVelocityOn(b *testing.B) { benchDecide(b, true, false) }

// BenchmarkDecideVelocityPatterns is BenchmarkDecideVelocityOn with the
// pattern measures on as well (withPatterns): the six new measures in the
// rule that watches every measure, and the operator's range velocity.
func BenchmarkDecideVelocityPatterns(b *testing.B) { benchDecide(b, true, true) }

// BenchmarkDecideVelocityFirstCall is the first counted call of a scope:
// its rules' counters are allocated then (once per account and rule).
func BenchmarkDecideVelocityFirstCall(b *testing.B) {
	set := benchSet(b, 10_000)
	m, e := benchMatcher(b, set, true)
	qs := benchQueries(1<<16, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(1<<16) == 0 && i > 0 {
			b.StopTimer()
			if err := e.Sync(&policy.Set{Operator: set.Operator, Accounts: map[string]policy.Account{}}); err != nil {
				b.Fatal(err)
			}
			if err := e.Sync(set); err != nil { // new scopes: no counters
				b.Fatal(err)
			}
			b.StartTimer()
		}
		m.Decide(&qs[i&(len(qs)-1)])
	}
}

// BenchmarkDecideVelocityOnParallel is the same on every core, the way the
// transports call it.
func BenchmarkDecideVelocityOnParallel(b *testing.B) {
	set := benchSet(b, 10_000)
	m, _ := benchMatcher(b, set, true)
	qs := benchQueries(1<<16, 10_000)
	for i := range qs {
		m.Decide(&qs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.Int()
		for pb.Next() {
			m.Decide(&qs[i&(len(qs)-1)])
			i++
		}
	})
}

// BenchmarkEvaluate10k is one evaluation pass after every one of the
// 10,000 accounts (and their subaccounts) has had calls.
func BenchmarkEvaluate10k(b *testing.B) {
	set := benchSet(b, 10_000)
	m, e := benchMatcher(b, set, true)
	qs := benchQueries(1<<15, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range qs {
			m.Decide(&qs[j])
		}
		b.StartTimer()
		e.Evaluate()
	}
}

// BenchmarkApplyEvents is an answered and an ended event for one call.
func BenchmarkApplyEvents(b *testing.B) {
	set := benchSet(b, 10_000)
	m, e := benchMatcher(b, set, true)
	e.opt.Resolve = func(account, sub, to string) string {
		e164, _ := m.Destination(&matcher.Query{To: to, Account: account, Subaccount: sub})
		return e164
	}
	e.opt.Price = func(e164 string) (int64, bool) { return m.Snapshot().Rate(e164) }
	qs := benchQueries(1<<12, 10_000)
	ids := make([]string, len(qs))
	for i := range ids {
		ids[i] = "call-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		q := &qs[i&(len(qs)-1)]
		id := ids[i&(len(ids)-1)] + "-" + strconv.Itoa(i)
		e.Apply(Event{Kind: Answered, CallID: id, Account: q.Account, Subaccount: q.Subaccount, To: q.To})
		e.Apply(Event{Kind: Ended, CallID: id, Account: q.Account, Subaccount: q.Subaccount, To: q.To, Duration: time.Minute})
	}
}

// BenchmarkSyncOneAccount is the engine's share of an admin change with
// 100,000 accounts loaded: one account replaced, the rest shared (as the
// service hands them over), so only it is recompiled.
func BenchmarkSyncOneAccount(b *testing.B) {
	set := benchSet(b, 100_000)
	if _, err := matcher.Compile(set, plan); err != nil {
		b.Fatal(err)
	}
	e := New(Options{})
	if err := e.Sync(set); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := &policy.Set{Operator: set.Operator, Accounts: make(map[string]policy.Account, len(set.Accounts))}
		for k, v := range set.Accounts {
			next.Accounts[k] = v
		}
		home := "DE"
		next.Accounts["acct-7"] = policy.Account{Policy: policy.Policy{HomeCountry: &home}}
		if err := e.Sync(next); err != nil {
			b.Fatal(err)
		}
		set = next
	}
}

// BenchmarkScopeHeap100k reports the heap the engine holds per account for
// 100,000 accounts without velocity rules (a tenth with a subaccount) —
// what every deployment pays, rules or not.
func BenchmarkScopeHeap100k(b *testing.B) {
	set := &policy.Set{Accounts: make(map[string]policy.Account, 100_000)}
	homes := []string{"US", "GB", "DE", "FR"}
	for i := 0; i < 100_000; i++ {
		a := policy.Account{Policy: policy.Policy{HomeCountry: &homes[i%len(homes)], MaxCPS: ptr(10 + i%5)}}
		if i%10 == 0 {
			a.Subaccounts = map[string]policy.Policy{"s": {}}
		}
		set.Accounts["acct-"+strconv.Itoa(i)] = a
	}
	if _, err := matcher.Compile(set, plan); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var per float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e := New(Options{})
		if err := e.Sync(set); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / 100_000
		runtime.KeepAlive(e)
	}
	b.ReportMetric(per, "heap-B/account")
}

// BenchmarkCollect10k is one collection of the fraud state after every one
// of the 10,000 accounts (and their subaccounts) has had calls and one call
// event each: what the writer encodes once a second at that activity.
func BenchmarkCollect10k(b *testing.B) {
	set := benchSet(b, 10_000)
	m, e := benchMatcher(b, set, true)
	e.opt.KeepState = true
	qs := benchQueries(1<<15, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	records := 0
	var locked time.Duration // in collect: call events and the evaluator wait that long
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range qs {
			m.Decide(&qs[j])
		}
		for j := 0; j < 10_000; j++ {
			e.Apply(Event{Kind: Answered, CallID: "c-" + strconv.Itoa(i) + "-" + strconv.Itoa(j), Account: "acct-" + strconv.Itoa(j), To: "+442079460123"})
		}
		var batch fraudstate.Batch
		b.StartTimer()
		t0 := time.Now()
		scopes, calls, deletes := e.collect()
		locked += time.Since(t0)
		for i := range scopes {
			scopes[i].rec.fillCounters(scopes[i].ctrs)
		}
		encode(&batch, scopes, calls, deletes)
		records = batch.Len()
	}
	b.ReportMetric(float64(records), "records")
	b.ReportMetric(float64(locked.Microseconds())/1000/float64(b.N), "locked-ms/op")
}

// BenchmarkSyncUnchanged100k is the engine's share of an operator change
// that keeps the default policy, as the service makes it: every account
// synced against the very ones of the last sync, all kept.
func BenchmarkSyncUnchanged100k(b *testing.B) {
	set := benchSet(b, 100_000)
	if _, err := matcher.Compile(set, plan); err != nil {
		b.Fatal(err)
	}
	e := New(Options{})
	if err := e.SyncAgainst(set, nil); err != nil {
		b.Fatal(err)
	}
	was := func(n string) (policy.Account, bool) { a, ok := set.Accounts[n]; return a, ok }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := *set
		if err := e.SyncAgainst(&next, was); err != nil {
			b.Fatal(err)
		}
	}
}
