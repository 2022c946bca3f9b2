package service

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/origin/geotest"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// geoDB builds a small GeoLite2-Country-shaped database (nothing is
// downloaded): 81.2.69.0/24 in GB, 197.210.0.0/16 in NG.
func geoDB(t *testing.T) *origin.GeoIP {
	t.Helper()
	path := filepath.Join(t.TempDir(), "country.mmdb")
	if err := geotest.Write(path, geotest.Net{CIDR: "81.2.69.0/24", Country: "GB"}, geotest.Net{CIDR: "197.210.0.0/16", Country: "NG"}); err != nil {
		t.Fatal(err)
	}
	g, err := origin.OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// openOriginAt is openOrigin with a Geo-IP database and the caller's clock,
// so a test can restart the service at a later time.
func openOriginAt(t *testing.T, dir string, geo *origin.GeoIP, clk *vclock) *fixture {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	chk := origin.NewChecker(geo, origin.NewState(origin.StateOptions{Now: clk.Now, CodeIterations: 1000}))
	m := matcher.New(plan, matcher.Options{Origin: chk})
	svc := New(m, plan, st, Options{Logger: zerolog.Nop(), Now: clk.Now, Origin: chk})
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, st: st, m: m, svc: svc}
}

// TestOriginHomeAssignedDurableAndAudited: a stationary account's home
// country assigned at its first call from an allowed country is stored
// (it holds after a restart) and audited as tollgate's change, with the
// state before and after.
func TestOriginHomeAssignedDurableAndAudited(t *testing.T) {
	dir := t.TempDir()
	geo := geoDB(t)
	clk := &vclock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	f := openOriginAt(t, dir, geo, clk)
	op, err := f.svc.Operator()
	if err != nil {
		t.Fatal(err)
	}
	op.GeoProfiles = map[string]policy.GeoProfile{"std": {Zones: []policy.GeoZone{{Name: "watch", Action: "screen", Countries: []string{"NG"}}}}}
	if _, err := f.svc.PutOperator(admin, op); err != nil {
		t.Fatal(err)
	}
	acc := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB"), Origin: &policy.Origin{
		GeoProfile: ptr("std"), Mobility: ptr("stationary"), AssignHomeOrigin: ptr(true),
	}}}
	if _, err := f.svc.PutAccount(admin, "acme", acc); err != nil {
		t.Fatal(err)
	}
	decide := func(f *fixture, ip string) matcher.Verdict {
		return f.m.Decide(&matcher.Query{To: "+33142685300", Account: "acme", SrcIP: ip})
	}
	if v := decide(f, "197.210.1.1"); v.Reason != matcher.ReasonOriginScreen {
		t.Fatalf("first call from a screened zone: %s %s", v.Reason, v.RuleString())
	}
	if v := decide(f, "81.2.69.7"); v.Action != matcher.Allow || v.Origin.Rule != origin.RuleHomeAssigned {
		t.Fatalf("first call from GB: %s %s", v.Action, v.RuleString())
	}
	f.svc.Flush()
	audit, err := f.svc.Audit(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a := audit[0]; a.Action != "home_assigned" || a.Who != "tollgate" || a.Object != "accounts/acme/origin" ||
		strings.Contains(string(a.Before), `"home"`) || !strings.Contains(string(a.Before), `"quarantined":false`) || !strings.Contains(string(a.After), `"home":"GB"`) {
		t.Fatalf("audit: %s by %s on %s: %s -> %s", a.Action, a.Who, a.Object, a.Before, a.After)
	}
	f.st.Close()

	g := openOriginAt(t, dir, geo, clk)
	if st, err := g.svc.OriginStatus("acme", ""); err != nil || st.Home != "GB" || !st.HomeAssigned {
		t.Fatalf("after restart: %+v %v", st, err)
	}
	if v := decide(g, "197.210.1.1"); v.Reason != matcher.ReasonOriginScreen || v.Origin.Rule != origin.RuleStationary {
		t.Fatalf("stationary away from its assigned home after restart: %s %s", v.Reason, v.RuleString())
	}
}

// TestUnblockLockoutDurable: a lock-out of unblock code verification holds
// across a restart (a restart must not give a guesser fresh attempts), and
// the next lock-out lasts twice as long.
func TestUnblockLockoutDurable(t *testing.T) {
	dir := t.TempDir()
	clk := &vclock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	f := openOriginAt(t, dir, nil, clk)
	if _, err := f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetUnblockCode(admin, "acme", "", "918273"); err != nil {
		t.Fatal(err)
	}
	guess := func(f *fixture, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if _, err := f.svc.VerifyUnblockCode(admin, "acme", "", "000000"); !errors.Is(err, origin.ErrWrongCode) && !errors.Is(err, origin.ErrCodeLocked) {
				t.Fatalf("guess %d: %v", i, err)
			}
		}
	}
	guess(f, 5)
	st, err := f.svc.OriginStatus("acme", "")
	if err != nil || !st.CodeLockedUntil.Equal(clk.Now().Add(15*time.Minute)) {
		t.Fatalf("first lock-out: %+v %v", st, err)
	}
	f.st.Close()

	g := openOriginAt(t, dir, nil, clk)
	if _, err := g.svc.VerifyUnblockCode(admin, "acme", "", "918273"); !errors.Is(err, origin.ErrCodeLocked) {
		t.Fatalf("right code during a lock-out, after a restart: %v", err)
	}
	clk.Add(15 * time.Minute)
	guess(g, 5)
	if st, _ := g.svc.OriginStatus("acme", ""); !st.CodeLockedUntil.Equal(clk.Now().Add(30 * time.Minute)) {
		t.Fatalf("second lock-out: %+v", st)
	}
	audit, _ := g.svc.Audit(1, 0)
	if !strings.Contains(string(audit[0].After), `"unblock_code_locked_until"`) {
		t.Fatalf("audit lacks the lock-out: %s", audit[0].After)
	}
	g.st.Close()

	h := openOriginAt(t, dir, nil, clk)
	clk.Add(30 * time.Minute)
	if st, err := h.svc.VerifyUnblockCode(admin, "acme", "", "918273"); err != nil || !st.CodeLockedUntil.IsZero() {
		t.Fatalf("right code after the second lock-out: %+v %v", st, err)
	}
}

// TestOriginSubaccountHomeAssigned: a subaccount with origin settings of
// its own gets its own home at its first call, stored and audited on the
// subaccount's object, durable under its own key; the account's state is
// untouched.
func TestOriginSubaccountHomeAssigned(t *testing.T) {
	dir := t.TempDir()
	geo := geoDB(t)
	clk := &vclock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	f := openOriginAt(t, dir, geo, clk)
	acc := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")},
		Subaccounts: map[string]policy.Policy{"road": {Origin: &policy.Origin{Mobility: ptr("stationary"), AssignHomeOrigin: ptr(true)}}}}
	if _, err := f.svc.PutAccount(admin, "acme", acc); err != nil {
		t.Fatal(err)
	}
	v := f.m.Decide(&matcher.Query{To: "+33142685300", Account: "acme", Subaccount: "road", SrcIP: "81.2.69.7:5060"})
	if v.Action != matcher.Allow || v.Origin.Rule != origin.RuleHomeAssigned {
		t.Fatalf("first call: %s %s", v.Action, v.RuleString())
	}
	f.svc.Flush()
	audit, _ := f.svc.Audit(1, 0)
	if a := audit[0]; a.Action != "home_assigned" || a.Object != "accounts/acme/subaccounts/road/origin" {
		t.Fatalf("audit %s on %s", a.Action, a.Object)
	}
	f.st.Close()
	g := openOriginAt(t, dir, geo, clk)
	if st, err := g.svc.OriginStatus("acme", "road"); err != nil || st.Home != "GB" || st.HomeSource != origin.HomeFromCall {
		t.Fatalf("subaccount after restart: %+v %v", st, err)
	}
	if st, _ := g.svc.OriginStatus("acme", ""); st.Home != "" {
		t.Fatalf("the account got the subaccount's home: %+v", st)
	}
	if v := g.m.Decide(&matcher.Query{To: "+33142685300", Account: "acme", Subaccount: "road", SrcIP: "197.210.1.1"}); v.Reason != matcher.ReasonOriginScreen {
		t.Fatalf("away from its own home: %s %s", v.Reason, v.RuleString())
	}
}
