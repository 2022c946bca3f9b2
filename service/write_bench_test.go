package service

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// largeSet builds nAccounts accounts shaped like bench/gen.go's (home
// countries, allow-all-except and deny-all-except rules with selectors,
// prefix lists, caps, a tenth with subaccounts, some with velocity rules) and
// nHighRisk unique high-risk prefixes, deterministically.
func largeSet(nAccounts, nHighRisk int) *policy.Set {
	r := rand.New(rand.NewPCG(1, 2))
	homes := []string{"US", "US", "US", "GB", "DE", "FR", "NL", "ES", "AU", "CA", "IN"}
	barred := []string{"CU", "SO", "KP", "IR", "SY", "YE", "region:melanesia", "region:micronesia", "001", "LV", "BY"}
	set := &policy.Set{Accounts: make(map[string]policy.Account, nAccounts)}
	for i := 1; i <= nAccounts; i++ {
		home := homes[r.IntN(len(homes))]
		a := policy.Account{Policy: policy.Policy{HomeCountry: ptr(home)}}
		switch x := r.IntN(100); {
		case x < 60:
			k := 1 + r.IntN(6)
			ex := make([]string, 0, k)
			for _, j := range r.Perm(len(barred))[:k] {
				ex = append(ex, barred[j])
			}
			a.Countries = &policy.CountryRule{Default: policy.Allow, Except: ex}
		case x < 85:
			a.Countries = &policy.CountryRule{Default: policy.Deny, Except: []string{home, "continent:EU", "nanp"}}
		}
		if r.IntN(10) == 0 {
			a.AllowPrefixes = ptr([]string{"+4420", "+3314"})
		}
		if r.IntN(7) == 0 {
			a.BlockPrefixes = ptr([]string{"+4470", "+88216", "+1900"})
		}
		if r.IntN(10) < 7 {
			a.MaxChannels = ptr(10 + r.IntN(300))
		}
		if r.IntN(10) < 6 {
			a.MaxCPS = ptr(1 + r.IntN(50))
		}
		if r.IntN(20) == 0 {
			a.Velocity = &policy.Velocity{Rules: []policy.VelocityRule{{Name: "burst", CallsPerMinute: &policy.Threshold{Warning: 30, Critical: 60}}}}
		}
		if r.IntN(10) == 0 {
			a.Subaccounts = map[string]policy.Policy{}
			for s := 1 + r.IntN(3); s > 0; s-- {
				a.Subaccounts["sub-"+strconv.Itoa(s)] = policy.Policy{MaxChannels: ptr(5 + r.IntN(50))}
			}
		}
		set.Accounts[fmt.Sprintf("acct-%06d", i)] = a
	}
	seen := make(map[string]bool, nHighRisk)
	codes := []string{"53", "252", "850", "881", "882", "371", "675", "677", "678", "679", "880", "960", "234", "225", "243"}
	set.HighRisk = make([]policy.HighRiskEntry, 0, nHighRisk)
	for len(set.HighRisk) < nHighRisk {
		p := "+" + codes[r.IntN(len(codes))] + strconv.Itoa(1000+r.IntN(9_000_000))
		if seen[p] {
			continue
		}
		seen[p] = true
		set.HighRisk = append(set.HighRisk, policy.HighRiskEntry{Prefix: p, Country: "001", Category: policy.CategoryIRSF, Source: "synthetic"})
	}
	return set
}

// largeService is a service over a real store holding largeSet, wired to a
// velocity engine and an origin checker as the daemon is.
func largeService(b *testing.B, nAccounts, nHighRisk int) (*Service, *matcher.Matcher) {
	b.Helper()
	set := largeSet(nAccounts, nHighRisk)
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ch := &store.Change{Audit: store.AuditEntry{Action: "import", Object: "accounts"}, Accounts: make(map[string]*policy.Account, len(set.Accounts)),
		HighRisk: &store.HighRiskList{Entries: set.HighRisk, Version: "bench", Source: "bench"}}
	for n, a := range set.Accounts {
		ch.Accounts[n] = &a
	}
	if _, err := st.Commit(ch); err != nil {
		b.Fatal(err)
	}
	vel := velocity.New(velocity.Options{})
	orig := origin.NewChecker(origin.NewGeoIP(""), origin.NewState(origin.StateOptions{}))
	m := matcher.New(plan, matcher.Options{Velocity: vel, Origin: orig})
	svc := New(m, plan, st, Options{Velocity: vel, Origin: orig, Logger: zerolog.Nop()})
	if err := svc.Load(); err != nil {
		b.Fatal(err)
	}
	return svc, m
}

// BenchmarkPutAccount100k is one admin PUT of an account, start to finish
// (validate, compile, commit to disk with its audit entry, swap, velocity
// sync), with 100,000 accounts and 1,000,000 high-risk prefixes loaded: the
// cost every admin write, and later every fleet change, pays. ns/op
// includes the store's fsyncs, which a shared disk makes vary; cpu-ms/op is
// the process's CPU time per write (getrusage), garbage collection
// included, which is what a write takes from the queries on the same core.
func BenchmarkPutAccount100k(b *testing.B) {
	svc, _ := largeService(b, 100_000, 1_000_000)
	caps := []int{10, 20, 30}
	runtime.GC() // the set-up's garbage is not the writes' to collect
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		a := policy.Account{Policy: policy.Policy{HomeCountry: ptr("DE"), MaxChannels: ptr(caps[i%3]),
			Countries: &policy.CountryRule{Default: policy.Allow, Except: []string{"CU", "KP"}}}}
		if _, err := svc.PutAccount(admin, fmt.Sprintf("acct-%06d", 1+i%100_000), a); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
