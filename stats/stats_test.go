package stats

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
)

var plan = numplan.Default()

// decide runs a real decision, so the verdicts carry real reasons,
// countries and numbers.
func decide(t testing.TB, m *matcher.Matcher, account, to string) matcher.Verdict {
	t.Helper()
	q := matcher.Query{Account: account, To: to}
	return m.Decide(&q)
}

func TestReport(t *testing.T) {
	m := testMatcher(t)
	t0 := time.Date(2026, 12, 5, 10, 0, 30, 0, time.UTC)
	s := New(t0)
	rec := func(n int, account, to string) {
		v := decide(t, m, account, to)
		for i := 0; i < n; i++ {
			s.Record(account, &v)
		}
	}
	rec(5, "acme", "+14155550123")   // allowed
	rec(7, "acme", "+5355512345")    // CU: rejected
	rec(3, "globex", "+5355512399")  // CU again, another account
	rec(2, "globex", "+85021234567") // KP
	s.Tick(t0.Add(90 * time.Second)) // the next minute
	rec(4, "initech", "+5355512345")

	r, ok := s.Report("1h")
	if !ok {
		t.Fatal("1h refused")
	}
	if r.Total != 21 || r.Verdicts["allow"] != 5 || r.Verdicts["reject"] != 16 {
		t.Errorf("verdicts %v total %d", r.Verdicts, r.Total)
	}
	if got := fmt.Sprint(r.TopCountries); got != "[CU=14 KP=2]" {
		t.Errorf("countries %s", got)
	}
	if got := fmt.Sprint(r.TopAccounts); got != "[acme=7 initech=4 globex=5]" && got != "[acme=7 globex=5 initech=4]" {
		t.Errorf("accounts %s", got)
	}
	if got := fmt.Sprint(r.TopPrefixes); got != "[+53555=14 +85021=2]" {
		t.Errorf("prefixes %s", got)
	}
	if r.Reasons["ok"] != 5 {
		t.Errorf("reasons %v", r.Reasons)
	}
	d, _ := s.Report("24h")
	if d.Total != 21 {
		t.Errorf("24h total %d", d.Total)
	}
	if _, ok := s.Report("7d"); ok {
		t.Error("7d accepted")
	}

	// An hour later the first minutes have left the 1h window, not the 24h.
	s.Tick(t0.Add(61 * time.Minute))
	r, _ = s.Report("1h")
	d, _ = s.Report("24h")
	if r.Total != 4 || d.Total != 21 {
		t.Errorf("after an hour: 1h %d (want 4), 24h %d (want 21)", r.Total, d.Total)
	}
	s.Tick(t0.Add(25 * time.Hour))
	if d, _ = s.Report("24h"); d.Total != 0 {
		t.Errorf("after a day: 24h %d", d.Total)
	}
	// A clock step back does not reuse an old bucket.
	s.Tick(t0)
	rec(1, "acme", "+5355512345")
	if d, _ = s.Report("24h"); d.Total != 1 {
		t.Errorf("after a step back: %d", d.Total)
	}
}

// TestBounded: a flood of distinct account names keeps at most topSlots
// per bucket and counts the rest as other, nothing lost.
func TestBounded(t *testing.T) {
	m := testMatcher(t)
	s := New(time.Unix(0, 0))
	v := decide(t, m, "x", "+5355512345")
	for i := 0; i < 5000; i++ {
		s.Record(fmt.Sprintf("a%05d", i), &v)
	}
	r, _ := s.Report("1h")
	kept := uint64(0)
	for j := range s.minutes.buckets {
		b := &s.minutes.buckets[j]
		for i := range b.accounts {
			kept += b.accounts[i].n.Load()
		}
	}
	if kept > topSlots || kept+r.OtherAccounts != 5000 || len(r.TopAccounts) != TopN {
		t.Errorf("kept %d other %d top %d", kept, r.OtherAccounts, len(r.TopAccounts))
	}
}

func TestConcurrent(t *testing.T) {
	m := testMatcher(t)
	s := New(time.Now())
	v := decide(t, m, "acme", "+5355512345")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Record(fmt.Sprintf("a%d", i%300), &v)
			}
		}()
	}
	wg.Wait()
	r, _ := s.Report("1h")
	if r.Total != 4000 || r.Verdicts["reject"] != 4000 {
		t.Errorf("total %d %v", r.Total, r.Verdicts)
	}
	var sum uint64
	for _, a := range r.TopAccounts {
		sum += a.Count
	}
	if sum == 0 {
		t.Error("no accounts")
	}
}

func TestKeys(t *testing.T) {
	for _, cc := range []string{"001", "AA", "CU", "ZZ"} {
		if got := countryName(countryIndex(cc)); got != cc {
			t.Errorf("%s -> %s", cc, got)
		}
	}
	for _, cc := range []string{"", "cu", "C", "ABC"} {
		if countryIndex(cc) != -1 {
			t.Errorf("%q has an index", cc)
		}
	}
}
