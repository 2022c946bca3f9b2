package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
)

// openOrigin opens a service with an origin checker (no Geo-IP database:
// address rules and screening state only) on the data dir.
func openOrigin(t *testing.T, dir string) *fixture {
	t.Helper()
	return openOriginAt(t, dir, nil, &vclock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)})
}

func TestOriginScreeningDurableAndAudited(t *testing.T) {
	dir := t.TempDir()
	f := openOrigin(t, dir)
	acc := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB"), Origin: &policy.Origin{
		LocationChangeMinutes: ptr(30), LocationChangeBy: ptr("ip"), MaxFailedScreenings: ptr(2),
	}}}
	if _, err := f.svc.PutAccount(admin, "acme", acc); err != nil {
		t.Fatal(err)
	}
	decide := func(ip string) matcher.Verdict {
		return f.m.Decide(&matcher.Query{To: "+33142685300", Account: "acme", SrcIP: ip})
	}
	if v := decide("192.0.2.1"); v.Action != matcher.Allow {
		t.Fatal(v.RuleString())
	}
	if v := decide("192.0.2.2"); v.Reason != matcher.ReasonOriginScreen {
		t.Fatal(v.RuleString())
	}
	var inv *InvalidError
	if _, err := f.svc.ReportScreening(admin, "acme", "", "maybe"); !errors.As(err, &inv) || inv.Field() != "result" {
		t.Fatalf("bad result: %v", err)
	}
	var nf *NotFoundError
	if _, err := f.svc.ReportScreening(admin, "nobody", "", "passed"); !errors.As(err, &nf) {
		t.Fatalf("unknown account: %v", err)
	}
	st, err := f.svc.ReportScreening(admin, "acme", "", "passed")
	if err != nil || st.PassUntil.IsZero() {
		t.Fatalf("%+v %v", st, err)
	}
	if v := decide("192.0.2.3"); v.Action != matcher.Allow {
		t.Fatalf("after pass: %s", v.RuleString())
	}
	f.svc.ReportScreening(admin, "acme", "", "failed")
	if st, _ := f.svc.ReportScreening(admin, "acme", "", "failed"); !st.Quarantined {
		t.Fatalf("not quarantined: %+v", st)
	}
	if v := decide("192.0.2.3"); v.Reason != matcher.ReasonQuarantined {
		t.Fatalf("quarantined: %s %s", v.Reason, v.RuleString())
	}
	if _, err := f.svc.SetUnblockCode(admin, "acme", "", "12ab"); !errors.As(err, &inv) || inv.Field() != "code" {
		t.Fatalf("bad code: %v", err)
	}
	if _, err := f.svc.SetUnblockCode(admin, "acme", "", "918273"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetHomeOrigin(admin, "acme", "", "QQ"); !errors.As(err, &inv) {
		t.Fatalf("bad home: %v", err)
	}
	if _, err := f.svc.SetHomeOrigin(admin, "acme", "", "gb"); err != nil {
		t.Fatal(err)
	}
	audit, _ := f.svc.Audit(10, 0)
	if audit[0].Action != "home_set" || audit[1].Action != "unblock_code_set" || audit[2].Action != "screening_failed" ||
		audit[0].Object != "accounts/acme/origin" || strings.Contains(string(audit[1].After), "pbkdf2") {
		t.Fatalf("audit %+v", audit[:3])
	}
	f.st.Close()

	// A new process: quarantine, code and home still hold.
	g := openOrigin(t, dir)
	st, err = g.svc.OriginStatus("acme", "")
	if err != nil || !st.Quarantined || !st.HasUnblockCode || st.Home != "GB" {
		t.Fatalf("after restart %+v %v", st, err)
	}
	if _, err := g.svc.VerifyUnblockCode(admin, "acme", "", "000000"); !errors.Is(err, origin.ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	if st, err := g.svc.VerifyUnblockCode(admin, "acme", "", "918273"); err != nil || st.Quarantined {
		t.Fatalf("right code: %+v %v", st, err)
	}
	audit, _ = g.svc.Audit(2, 0)
	if audit[0].Action != "unblock_code_verify" || !strings.Contains(string(audit[0].After), `"result":"verified"`) ||
		!strings.Contains(string(audit[1].After), `"result":"wrong_code"`) || strings.Contains(string(audit[0].After), "918273") {
		t.Fatalf("audit %s %s", audit[0].After, audit[1].After)
	}
	g.st.Close()
	h := openOrigin(t, dir)
	if st, _ := h.svc.OriginStatus("acme", ""); st.Quarantined || !st.HasUnblockCode {
		t.Fatalf("verification not durable: %+v", st)
	}
}

func TestOriginNotEnabled(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	var cf *ConflictError
	if _, err := f.svc.ReportScreening(admin, "acme", "", "passed"); !errors.As(err, &cf) {
		t.Fatalf("%v", err)
	}
}

// TestUnblockCodeGuessesSurviveRestart: 4 wrong codes, a restart, and the
// 5th locks verification out (a restart used to hand out 5 fresh tries).
func TestUnblockCodeGuessesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	f := openOrigin(t, dir)
	if _, err := f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetUnblockCode(admin, "acme", "", "918273"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := f.svc.VerifyUnblockCode(admin, "acme", "", "000000"); !errors.Is(err, origin.ErrWrongCode) {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	f.st.Close()
	g := openOrigin(t, dir)
	if _, err := g.svc.VerifyUnblockCode(admin, "acme", "", "000000"); !errors.Is(err, origin.ErrCodeLocked) {
		t.Fatalf("5th wrong code after a restart: %v, want a lock-out", err)
	}
	if _, err := g.svc.VerifyUnblockCode(admin, "acme", "", "918273"); !errors.Is(err, origin.ErrCodeLocked) {
		t.Fatalf("right code during the lock-out: %v", err)
	}
}

// TestHomeOriginInForce: while the policy sets home_origin, PUT
// home-origin is refused (409) rather than answering with a home that is
// not in force; every answer gives the home in force and its source.
func TestHomeOriginInForce(t *testing.T) {
	f := openOrigin(t, t.TempDir())
	acc := policy.Account{Policy: policy.Policy{HomeCountry: ptr("US"), Origin: &policy.Origin{HomeOrigin: ptr("US"), Mobility: ptr("stationary")}},
		Subaccounts: map[string]policy.Policy{"free": {Origin: &policy.Origin{HomeOrigin: ptr("")}}}}
	if _, err := f.svc.PutAccount(admin, "acme", acc); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	st, err := f.svc.SetHomeOrigin(admin, "acme", "", "GB")
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "home_origin US is in force") {
		t.Fatalf("PUT home-origin under a policy home: %+v %v", st, err)
	}
	if st.Home != "US" || st.HomeSource != origin.HomeFromPolicy {
		t.Fatalf("answer %+v", st)
	}
	if st, _ := f.svc.OriginStatus("acme", ""); st.Home != "US" || st.HomeSource != "policy" {
		t.Fatalf("status %+v", st)
	}
	if d := f.svc.Origin().State().Durable("acme"); d.Home != "" {
		t.Fatalf("refused home stored: %+v", d)
	}
	// The subaccount clears the policy's home: its own state takes one.
	st, err = f.svc.SetHomeOrigin(admin, "acme", "free", "GB")
	if err != nil || st.Home != "GB" || st.HomeSource != origin.HomeFromAPI {
		t.Fatalf("subaccount without a policy home: %+v %v", st, err)
	}
	if v := f.m.Decide(&matcher.Query{To: "+33142685300", Account: "acme", Subaccount: "free", SrcIP: "192.0.2.1"}); v.Origin.Home != "GB" {
		t.Fatalf("home in force for the subaccount %q", v.Origin.Home)
	}
	audit, _ := f.svc.Audit(1, 0)
	if audit[0].Object != "accounts/acme/subaccounts/free/origin" {
		t.Fatalf("audit object %q", audit[0].Object)
	}
	if _, err := f.svc.SetHomeOrigin(admin, "acme", "nobody", "GB"); err == nil {
		t.Fatal("unknown subaccount accepted")
	}
	// The subaccount's own state is durable under its own key.
	f.st.Close()
	g := openOrigin(t, f.dir)
	if st, err := g.svc.OriginStatus("acme", "free"); err != nil || st.Home != "GB" {
		t.Fatalf("after restart: %+v %v", st, err)
	}
	if st, _ := g.svc.OriginStatus("acme", ""); st.StateHome != "" || st.Home != "US" {
		t.Fatalf("account after restart: %+v", st)
	}
}
