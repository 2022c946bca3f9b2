package matcher

import (
	"math/rand"
	"runtime"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// benchQueries returns n queries for random numbers in the given form
// ("+" E.164, "00" or "011" international prefix) from random accounts.
func benchQueries(n, accounts int, form string) []Query {
	r := rand.New(rand.NewSource(2))
	qs := make([]Query, n)
	for i := range qs {
		num := synthNumber(r)
		acct := r.Intn(accounts)
		if form == "011" {
			acct = acct - acct%8 // homes cycle by 8: acct%8 == 0 is US
		}
		qs[i] = Query{To: form + num, Account: "acct-" + strconv.Itoa(acct)}
	}
	return qs
}

func benchDecide(b *testing.B, form string) {
	m := newTestMatcher(b, synthSet(10_000, 100_000, 1))
	qs := benchQueries(1<<16, 10_000, form)
	var buf [256]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := m.Decide(&qs[i&(len(qs)-1)])
		_ = v.AppendRule(buf[:0])
	}
}

// BenchmarkDecideE164 is the target of the decision core: a random E.164
// number against 100,000 high-risk prefixes and 10,000 accounts.
func BenchmarkDecideE164(b *testing.B) { benchDecide(b, "+") }

// BenchmarkDecide00 is the same with a 00 international prefix.
func BenchmarkDecide00(b *testing.B) { benchDecide(b, "00") }

// BenchmarkDecide011 is the same with NANP's 011 from US accounts.
func BenchmarkDecide011(b *testing.B) { benchDecide(b, "011") }

// BenchmarkDecideNationalCached is national format answered from the cache.
func BenchmarkDecideNationalCached(b *testing.B) {
	m := newTestMatcher(b, synthSet(10_000, 100_000, 1))
	qs := make([]Query, 1024)
	r := rand.New(rand.NewSource(3))
	for i := range qs {
		qs[i] = Query{To: "07" + strconv.Itoa(700000000 + r.Intn(99999999))[:9], Account: "acct-1"} // acct-1 is GB
		m.Decide(&qs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Decide(&qs[i&(len(qs)-1)])
	}
}

// BenchmarkDecideNationalUncached is the libphonenumber slow path: every
// number is new to the cache.
func BenchmarkDecideNationalUncached(b *testing.B) {
	m := newTestMatcher(b, synthSet(100, 1000, 1))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Decide(&Query{To: "07" + strconv.Itoa(100000000+i%900000000), Account: "acct-1"})
	}
}

// BenchmarkCompileLarge builds a snapshot with 1,000,000 high-risk prefixes
// and 100,000 accounts, and reports the heap it holds.
func BenchmarkCompileLarge(b *testing.B) {
	set := synthSet(100_000, 1_000_000, 1)
	plan := numplan.Default()
	b.ReportAllocs()
	b.ResetTimer()
	var snap *Snapshot
	for i := 0; i < b.N; i++ {
		var err error
		if snap, err = Compile(set, plan); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	set = nil
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(snap)
}

// BenchmarkRecompileOneAccount is an admin change of one account with
// 100,000 accounts and 1,000,000 high-risk prefixes loaded, as the service
// makes it: WithAccounts compiles that account and copies its shard,
// sharing everything else.
func BenchmarkRecompileOneAccount(b *testing.B) {
	set := synthSet(100_000, 1_000_000, 1)
	plan := numplan.Default()
	prev, err := Compile(set, plan)
	if err != nil {
		b.Fatal(err)
	}
	home := "DE"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := &policy.Account{Policy: policy.Policy{HomeCountry: &home, MaxChannels: ip(i % 100)}}
		if prev, err = prev.WithAccounts(map[string]*policy.Account{"acct-" + strconv.Itoa(i%100_000): a}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecompileOperator is a change of the operator settings that
// leaves the default policy alone (a disabled country, a blocked prefix) at
// that size: CompileFrom walks every account to find none changed and
// reuses them all.
func BenchmarkRecompileOperator(b *testing.B) {
	benchRecompileOperator(b, func(prev *Snapshot, _ map[string]policy.Account, set *policy.Set, plan *numplan.Plan) (*Snapshot, error) {
		if prev == nil {
			return Compile(set, plan)
		}
		return CompileFrom(prev, set, plan)
	})
}

// benchRecompileOperator changes the operator settings of a 100,000-account
// set b.N times, compiling each with compile (given the accounts prev was
// compiled from).
func benchRecompileOperator(b *testing.B, compile func(prev *Snapshot, was map[string]policy.Account, set *policy.Set, plan *numplan.Plan) (*Snapshot, error)) {
	set := synthSet(100_000, 1_000_000, 1)
	plan := numplan.Default()
	prev, err := compile(nil, nil, set, plan)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next := *set
		next.Operator.DisabledCountries = map[string]policy.DisabledCountry{"KP": {Reason: strconv.Itoa(i)}}
		if prev, err = compile(prev, set.Accounts, &next, plan); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideRN is a number carrying a routing number (rn=): decided
// on both numbers.
func BenchmarkDecideRN(b *testing.B) {
	m := newTestMatcher(b, synthSet(10_000, 100_000, 1))
	qs := benchQueries(1<<16, 10_000, "+")
	for i := range qs {
		qs[i].To += ";npdi;rn=" + qs[(i+1)&(len(qs)-1)].To
	}
	var buf [256]byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := m.Decide(&qs[i&(len(qs)-1)])
		_ = v.AppendRule(buf[:0])
	}
}

// BenchmarkRecompileOperatorAgainst is BenchmarkRecompileOperator as the
// service makes it since the compiled accounts keep no copy of their
// sources: CompileAgainst compares every account with the one the service
// holds for it.
func BenchmarkRecompileOperatorAgainst(b *testing.B) {
	benchRecompileOperator(b, func(prev *Snapshot, was map[string]policy.Account, set *policy.Set, plan *numplan.Plan) (*Snapshot, error) {
		return CompileAgainst(prev, was, set, plan, false)
	})
}
