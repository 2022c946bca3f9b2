package whatif

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/recent"
)

func benchSets(b *testing.B) (base, next *policy.Set, bs, ns *matcher.Snapshot, m *matcher.Matcher) {
	plan := numplan.Default()
	mk := func(deny string) *policy.Set {
		s := &policy.Set{Accounts: map[string]policy.Account{}}
		for i := 0; i < 1000; i++ {
			var a policy.Account
			doc := `{"home_country":"GB","countries":{"default":"allow","except":[` + deny + `]},"velocity":{"action":"lockdown","rules":[{"name":"burst","calls_per_minute":{"critical":500}}]}}`
			if err := policy.DecodeStrict([]byte(doc), &a); err != nil {
				b.Fatal(err)
			}
			s.Accounts[fmt.Sprintf("acct-%04d", i)] = a
		}
		hr, err := matcher.DefaultHighRisk()
		if err != nil {
			b.Fatal(err)
		}
		s.HighRisk = hr
		return s
	}
	base, next = mk(`"CU"`), mk(`"CU","FR"`)
	var err error
	if bs, err = matcher.Compile(base, plan); err != nil {
		b.Fatal(err)
	}
	if ns, err = matcher.Compile(next, plan); err != nil {
		b.Fatal(err)
	}
	m = matcher.New(plan, matcher.Options{})
	m.Swap(bs)
	return
}

var benchNumbers = []string{"+442079460000", "+33142685300", "+4930123456", "+12025550100", "+5372345678", "02079460002"}

// BenchmarkShadow compares a decision alone with a decision and a shadow
// policy's beside it: the issue asks for 0 allocs and under 2x.
func BenchmarkShadow(b *testing.B) {
	base, _, bs, ns, m := benchSets(b)
	for _, c := range []struct {
		name string
		snap *matcher.Snapshot
	}{{"operator-change", ns}, {"10-accounts-change", tenAccounts(b, base, bs)}} {
		b.Run(c.name, func(b *testing.B) { benchShadow(b, m, bs, c.snap) })
	}
}

// tenAccounts is bs with 10 of its 1000 accounts denying FR too.
func tenAccounts(b *testing.B, base *policy.Set, bs *matcher.Snapshot) *matcher.Snapshot {
	ch := map[string]*policy.Account{}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("acct-%04d", i*7)
		a := base.Accounts[name]
		a.Countries.Except = append([]string{"FR"}, a.Countries.Except...)
		ch[name] = &a
	}
	s, err := bs.WithAccounts(ch)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchShadow(b *testing.B, m *matcher.Matcher, bs, ns *matcher.Snapshot) {
	sh := NewShadow(ns, bs, zerolog.New(io.Discard), "bench", nil)
	qs := make([]matcher.Query, 64)
	for i := range qs {
		qs[i] = matcher.Query{Account: fmt.Sprintf("acct-%04d", i*7%1000), To: benchNumbers[i%len(benchNumbers)], SrcIP: "192.0.2.1"}
	}
	b.Run("live", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			v := m.Decide(&qs[i%len(qs)])
			_ = v
		}
	})
	b.Run("live+shadow", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			q := &qs[i%len(qs)]
			v := m.Decide(q)
			sh.Observe(m, nil, q, &v)
		}
	})
}

// BenchmarkWhatIf2M replays a full default ring (2M queries over a day)
// against a change denying a country: run with -benchtime 1x; ns/op is
// the whole replay.
func BenchmarkWhatIf2M(b *testing.B) {
	base, next, bs, ns, m := benchSets(b)
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	ring := recent.New(n, 24*time.Hour)
	t0 := time.Now().Add(-23 * time.Hour)
	for i := 0; i < n; i++ {
		to := benchNumbers[i%len(benchNumbers)]
		ring.Add(t0.Add(time.Duration(i)*40*time.Millisecond), fmt.Sprintf("acct-%04d", i%1000), "", to, []byte(to), "192.0.2.1", 0, 0, "")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rp, err := New(m, Side{Snap: bs, Set: base}, &Side{Snap: ns, Set: next}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		rep := rp.Ring(ring, time.Now())
		if rep.Replayed != n || rep.Changed == 0 {
			b.Fatalf("replayed %d changed %d", rep.Replayed, rep.Changed)
		}
	}
}
