package recent_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/whatif"
)

// TestWhatIfGolden replays the same traffic three ways — from a version 1
// file (the 104-byte records of 6a58673) loaded into the ring, from the
// compact records Add writes, and from the calls themselves — and wants
// the same what-if report from each.
func TestWhatIfGolden(t *testing.T) {
	var qs []recent.Query
	for k, q := range recent.GoldenTraffic() {
		if !recent.V1Fits(q) {
			continue
		}
		for i := 0; i < 20; i++ {
			q := q
			q.Time = q.Time.Add(time.Duration(i) * time.Minute)
			if r := q; i%3 == 1 {
				r.Account = fmt.Sprintf("%s-%d", q.Account, k%4)
				if recent.V1Fits(r) {
					q = r
				}
			}
			qs = append(qs, q)
		}
	}
	// Add's order is the time order the replays use
	for i := 1; i < len(qs); i++ {
		for j := i; j > 0 && qs[j].Time.Before(qs[j-1].Time); j-- {
			qs[j], qs[j-1] = qs[j-1], qs[j]
		}
	}
	now := qs[len(qs)-1].Time.Add(time.Minute)

	plan := numplan.Default()
	mk := func(deny string) (*policy.Set, *matcher.Snapshot) {
		s := &policy.Set{Accounts: map[string]policy.Account{}}
		for _, name := range []string{"acme", "acme-0", "acct-000123", "acct-000123-3", "x", "x-1", "x-2"} {
			var a policy.Account
			doc := `{"home_country":"GB","countries":{"default":"allow","except":[` + deny + `]}}`
			if err := policy.DecodeStrict([]byte(doc), &a); err != nil {
				t.Fatal(err)
			}
			s.Accounts[name] = a
		}
		hr, err := matcher.DefaultHighRisk()
		if err != nil {
			t.Fatal(err)
		}
		s.HighRisk = hr
		snap, err := matcher.Compile(s, plan)
		if err != nil {
			t.Fatal(err)
		}
		return s, snap
	}
	base, bs := mk(`"CU"`)
	next, ns := mk(`"CU","FR","DE","US"`)
	m := matcher.New(plan, matcher.Options{})
	m.Swap(bs)
	report := func(feed func(*whatif.Replayer) *whatif.Report) string {
		rp, err := whatif.New(m, whatif.Side{Snap: bs, Set: base}, &whatif.Side{Snap: ns, Set: next}, whatif.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep := feed(rp)
		rep.TookMS = 0
		b, _ := json.MarshalIndent(rep, "", " ")
		return string(b)
	}

	direct := report(func(rp *whatif.Replayer) *whatif.Report {
		for _, c := range recent.V1Calls(qs) {
			rp.Add(&c)
		}
		return rp.Report()
	})
	compact := recent.New(len(qs), 0)
	for _, q := range qs {
		compact.AddQuery(q)
	}
	fromV1 := recent.New(len(qs), 0)
	path := filepath.Join(t.TempDir(), "v1")
	if err := recent.WriteV1File(path, qs); err != nil {
		t.Fatal(err)
	}
	if n, err := fromV1.Load(path); err != nil || n != len(qs) {
		t.Fatal(n, err)
	}
	var rep whatif.Report
	if err := json.Unmarshal([]byte(direct), &rep); err != nil || rep.Replayed != len(qs) || rep.Changed == 0 {
		t.Fatalf("the golden replay proves little: %s", direct)
	}
	for name, ring := range map[string]*recent.Ring{"compact records": compact, "version 1 file": fromV1} {
		if got := report(func(rp *whatif.Replayer) *whatif.Report { return rp.Ring(ring, now) }); got != direct {
			t.Errorf("%s: report\n%s\nwant\n%s", name, got, direct)
		}
	}
}
