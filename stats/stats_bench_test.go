package stats

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

func testMatcher(t testing.TB) *matcher.Matcher {
	t.Helper()
	m := matcher.New(plan, matcher.Options{})
	set := &policy.Set{Accounts: map[string]policy.Account{}}
	set.Operator.DisabledCountries = map[string]policy.DisabledCountry{"CU": {Reason: "test"}, "KP": {Reason: "test"}}
	snap, err := matcher.Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	m.Swap(snap)
	return m
}

// BenchmarkRecord is the query path's cost of the statistics: an allowed
// and a rejected decision of a known account. 0 allocs/op.
func BenchmarkRecord(b *testing.B) {
	m := testMatcher(b)
	s := New(time.Now())
	ok := decide(b, m, "acme", "+14155550123")
	rej := decide(b, m, "acme", "+5355512345")
	s.Record("acme", &rej) // claims the account's slot
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Record("acme", &ok)
		s.Record("acme", &rej)
	}
}

// BenchmarkRecordParallel: both cores recording at once (shared counters).
func BenchmarkRecordParallel(b *testing.B) {
	m := testMatcher(b)
	s := New(time.Now())
	rej := decide(b, m, "acme", "+5355512345")
	s.Record("acme", &rej)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Record("acme", &rej)
		}
	})
}
