package service

import (
	"runtime"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// benchTemplate is the template every account of BenchmarkPutTemplate100k
// is on: countries, caps and a velocity rule, so a change reaches the
// matcher and the velocity engine.
func benchTemplate(maxCPS int) policy.Template {
	return policy.Template{Policy: policy.Policy{
		Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU", "nanp"}},
		MaxCPS:    ptr(maxCPS),
		Velocity:  &policy.Velocity{Rules: []policy.VelocityRule{{Name: "burst", CallsPerMinute: &policy.Threshold{Warning: 30, Critical: 60}}}},
	}}
}

// BenchmarkPutTemplate100k is one PUT /v1/templates/{name} of a template
// all of largeSet's 100,000 accounts are on, start to finish: validate,
// rebase every account on it into one snapshot (WithTemplate), commit one
// record and one audit entry, swap, and re-sync those accounts' velocity
// scopes. The high-risk list is short: a template change reuses it
// whatever its size. cpu-ms/op is the process's CPU time per change
// (getrusage), garbage collection included.
func BenchmarkPutTemplate100k(b *testing.B) {
	set := largeSet(100_000, 1_000)
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	t0 := benchTemplate(1)
	ch := &store.Change{Audit: store.AuditEntry{Action: "import", Object: "accounts"}, Accounts: make(map[string]*policy.Account, len(set.Accounts)),
		HighRisk: &store.HighRiskList{Entries: set.HighRisk, Version: "bench", Source: "bench"}, Templates: map[string]*policy.Template{"retail": &t0}}
	for n, a := range set.Accounts {
		a.Template = "retail"
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
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		nt, err := svc.PutTemplate(admin, "retail", benchTemplate(2+i%50))
		if err != nil || nt.Accounts != 100_000 {
			b.Fatalf("%+v %v", nt.Accounts, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	for n, a := range set.Accounts {
		if a.MaxCPS == nil {
			if v := m.Decide(&matcher.Query{To: "+14155550123", Account: n}); v.MaxCPS != 2+(b.N-1)%50 {
				b.Fatalf("%s: max_cps %d, the last change is not in force", n, v.MaxCPS)
			}
			break
		}
	}
}
