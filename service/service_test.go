package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

var plan = numplan.Default()

func ptr[T any](v T) *T { return &v }

type fixture struct {
	dir string
	st  *store.Store
	m   *matcher.Matcher
	svc *Service
}

func open(t testing.TB, dir string, opt Options) *fixture {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := matcher.New(plan, matcher.Options{})
	opt.Logger = zerolog.Nop()
	svc := New(m, plan, st, opt)
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, st: st, m: m, svc: svc}
}

func (f *fixture) reason(to, account string) string {
	q := matcher.Query{To: to, Account: account}
	v := f.m.Decide(&q)
	return v.Reason.String()
}

var admin = Actor{Name: "admin", Remote: "127.0.0.1"}

func denyAllBut(cc ...string) policy.Account {
	return policy.Account{Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: cc}}}
}

func TestLoadPersistRestart(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir, Options{})
	if !f.svc.Ready() {
		t.Fatal("not ready after Load")
	}
	if _, err := f.svc.PutAccount(admin, "acme", denyAllBut("US")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutSubaccount(admin, "acme", "eu", policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.DisableCountry(admin, "kp", "sanctions"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.BlockPrefix(admin, "+4420 7", "fraud"); err != nil {
		t.Fatal(err)
	}
	if got := f.reason("+5355512345", "acme"); got != "country_barred" {
		t.Fatalf("in force: %s", got)
	}
	f.st.Close()

	// A new process on the same data dir decides the same.
	g := open(t, dir, Options{})
	for _, tc := range []struct{ to, account, want string }{
		{"+5355512345", "acme", "country_barred"},
		{"+14155550123", "acme", "ok"},
		{"+85021234567", "", "country_disabled"},
		{"+442071234567", "", "number_barred"},
	} {
		if got := g.reason(tc.to, tc.account); got != tc.want {
			t.Errorf("after restart %s/%s: %s, want %s", tc.to, tc.account, got, tc.want)
		}
	}
	q := matcher.Query{To: "+33612345678", Account: "acme", Subaccount: "eu"}
	if v := g.m.Decide(&q); v.Reason != matcher.ReasonOK {
		t.Errorf("subaccount after restart: %s", v.Reason)
	}
	audit, _ := g.svc.Audit(0, 0)
	if len(audit) != 4 || audit[0].Action != "prefix.block" || audit[3].Action != "account.put" {
		t.Fatalf("audit after restart: %+v", audit)
	}
}

func TestInvalidChangesNothing(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	f.svc.PutAccount(admin, "acme", denyAllBut("US"))
	snap := f.m.Snapshot()
	cases := []struct {
		name  string
		do    func() error
		field string
	}{
		{"bad country", func() error { _, err := f.svc.PutAccount(admin, "acme", denyAllBut("XX")); return err }, "countries.except[0]"},
		{"bad name", func() error { _, err := f.svc.PutAccount(admin, "a b", policy.Account{}); return err }, "account"},
		{"bad sub", func() error {
			_, err := f.svc.PutSubaccount(admin, "acme", "s", policy.Policy{MaxCPS: ptr(-1)})
			return err
		}, "max_cps"},
		{"bad operator", func() error { _, err := f.svc.PutOperator(admin, policy.Operator{UnknownAccounts: "x"}); return err }, "unknown_accounts"},
		{"bad disable", func() error { _, _, err := f.svc.DisableCountry(admin, "ZZ", ""); return err }, "country"},
		{"bad prefix", func() error { _, err := f.svc.BlockPrefix(admin, "12a", ""); return err }, "prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field() != tc.field {
				t.Fatalf("got %v, want an InvalidError on %s", err, tc.field)
			}
			if f.m.Snapshot() != snap {
				t.Fatal("a refused change swapped the snapshot")
			}
		})
	}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"delete missing", func() error { _, err := f.svc.DeleteAccount(admin, "zzz"); return err }},
		{"sub of missing", func() error { _, err := f.svc.PutSubaccount(admin, "zzz", "s", policy.Policy{}); return err }},
		{"enable not disabled", func() error { _, _, err := f.svc.EnableCountry(admin, "FR"); return err }},
		{"unblock not blocked", func() error { _, err := f.svc.UnblockPrefix(admin, "+1"); return err }},
		{"drop no stored list", func() error { _, err := f.svc.DeleteHighRisk(admin); return err }},
	} {
		var nf *NotFoundError
		if err := tc.do(); !errors.As(err, &nf) {
			t.Errorf("%s: %v, want NotFoundError", tc.name, err)
		}
	}
	audit, _ := f.svc.Audit(0, 0)
	if len(audit) != 1 {
		t.Fatalf("refused changes were audited: %d entries", len(audit))
	}
}

// Values handed out are copies: changing them does not reach the policy in
// force.
func TestReadsAreCopies(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{AllowPrefixes: &[]string{"+1"}}, Subaccounts: map[string]policy.Policy{"s": {}}})
	a, _ := f.svc.Account("acme")
	(*a.AllowPrefixes)[0] = "+9"
	a.Subaccounts["t"] = policy.Policy{}
	b, _ := f.svc.Account("acme")
	if (*b.AllowPrefixes)[0] != "+1" || len(b.Subaccounts) != 1 {
		t.Fatalf("a read aliased the set in force: %+v", b)
	}
}

func writeHR(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestHighRiskSources(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir, Options{})
	_, info, _ := f.svc.HighRisk()
	if info.Origin != OriginBuiltin || info.Version != matcher.DefaultHighRiskVersion() || info.Entries == 0 {
		t.Fatalf("builtin: %+v", info)
	}
	l, err := policy.ParseHighRiskList(strings.NewReader("prefix,country,category,source\n+4420,GB,irsf,ops\n"))
	if err != nil {
		t.Fatal(err)
	}
	info, err = f.svc.PutHighRisk(admin, l, []byte("body"))
	if err != nil || info.Origin != OriginStored || !strings.HasPrefix(info.Version, "sha256:") || info.Source != "api:admin" {
		t.Fatalf("stored: %+v %v", info, err)
	}
	f.st.Close()

	// The stored list survives a restart.
	g := open(t, dir, Options{})
	if _, info, _ := g.svc.HighRisk(); info.Origin != OriginStored || info.Entries != 1 {
		t.Fatalf("after restart: %+v", info)
	}
	g.st.Close()

	// A file beats the stored list, and a bad file refuses to start.
	path := filepath.Join(dir, "hr.csv")
	writeHR(t, path, "# version: f1\nprefix,country,category,source\n+4471,GB,irsf,file\n")
	h := open(t, dir, Options{HighRiskFile: path})
	if _, info, _ := h.svc.HighRisk(); info.Origin != OriginFile || info.Version != "f1" || info.Source != "file:"+path {
		t.Fatalf("file: %+v", info)
	}
	if _, err := h.svc.PutHighRisk(admin, l, nil); err == nil {
		t.Fatal("PUT accepted while a file is authoritative")
	}
	writeHR(t, path, "prefix,country,category,source\n+4471,GB,irsf,file\nbroken\n")
	snap := h.m.Snapshot()
	if _, err := h.svc.Reload(); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("bad reload: %v", err)
	}
	if h.m.Snapshot() != snap {
		t.Fatal("a refused reload swapped the snapshot")
	}
	if st := h.svc.Stats(); st.LastOK || st.Failure != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.st.Close()

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := matcher.New(plan, matcher.Options{})
	if err := New(m, plan, st, Options{HighRiskFile: path}).Load(); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("start with a bad file: %v", err)
	}
	if m.Ready() {
		t.Fatal("a failed Load swapped a snapshot in")
	}
}

// Admin writes and decisions run concurrently: decisions never wait and
// never see half a change (run with -race).
func TestConcurrentWritesAndDecisions(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	f.svc.PutAccount(admin, "acme", denyAllBut("US"))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := matcher.Query{To: "+5355512345", Account: "acme"}
				v := f.m.Decide(&q)
				if v.Reason != matcher.ReasonCountryBarred && v.Reason != matcher.ReasonOK {
					t.Errorf("unexpected %s", v.Reason)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		cc := []string{"US"}
		if i%2 == 1 {
			cc = append(cc, "CU")
		}
		if _, err := f.svc.PutAccount(admin, "acme", denyAllBut(cc...)); err != nil {
			t.Fatal(err)
		}
		f.svc.Account("acme")
		f.svc.Accounts("", 0)
		f.svc.Operator()
	}
	close(stop)
	wg.Wait()
}
