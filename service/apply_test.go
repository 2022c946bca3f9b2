package service

import (
	"fmt"
	"maps"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// decideAll decides qs against one snapshot, as lines to compare.
func decideAll(snap *matcher.Snapshot, qs []matcher.Query) []string {
	m := matcher.New(plan, matcher.Options{SlowCacheBytes: 1})
	m.Swap(snap)
	out := make([]string, len(qs))
	for i := range qs {
		v := m.Decide(&qs[i])
		out[i] = fmt.Sprintf("%s/%s %s: %s %s ch=%d", qs[i].Account, qs[i].Subaccount, qs[i].To, v.Action, v.RuleString(), v.MaxChannels)
	}
	return out
}

func diff(got, want []string) string {
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("%q, want %q", got[i], want[i])
		}
	}
	return ""
}

// TestWritesShareAndPreserve makes every kind of account write and an
// operator change through the service with 500 accounts loaded, and checks
// after each that the snapshot in force before it still decides exactly as
// it did (the write shared its unchanged shards and wrote into none), that
// the new one decides as a full compile of the service's set does, that the
// velocity engine has a scope for exactly the accounts and subaccounts in
// force, and at the end that a restart on the same data decides the same.
func TestWritesShareAndPreserve(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch := &store.Change{Audit: store.AuditEntry{Action: "import", Object: "accounts"}, Accounts: map[string]*policy.Account{}}
	for i := 0; i < 500; i++ {
		a := denyAllBut("US", "continent:EU")
		if i%3 == 0 {
			a = policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB"), MaxChannels: ptr(i), BlockPrefixes: &[]string{"+4420"}},
				Subaccounts: map[string]policy.Policy{"s": {Countries: &policy.CountryRule{Default: policy.Deny}}}}
		}
		ch.Accounts["a"+strconv.Itoa(i)] = &a
	}
	if _, err := st.Commit(ch); err != nil {
		t.Fatal(err)
	}
	st.Close()

	f := open(t, dir, Options{Velocity: velocity.New(velocity.Options{})})
	var qs []matcher.Query
	for i := 0; i < 520; i += 3 {
		for _, to := range []string{"+442071234567", "+5371234567", "+16175551234"} {
			qs = append(qs, matcher.Query{To: to, Account: "a" + strconv.Itoa(i)}, matcher.Query{To: to, Account: "a" + strconv.Itoa(i), Subaccount: "s"})
		}
	}
	writes := []func() error{
		func() error { _, err := f.svc.PutAccount(admin, "a0", denyAllBut("CU")); return err },
		func() error { _, err := f.svc.DeleteAccount(admin, "a3"); return err },
		func() error { _, err := f.svc.PutAccount(admin, "a501", denyAllBut("GB")); return err },
		func() error {
			_, err := f.svc.PutSubaccount(admin, "a6", "s", policy.Policy{Countries: &policy.CountryRule{Default: policy.Allow}})
			return err
		},
		func() error {
			_, err := f.svc.PutSubaccount(admin, "a21", "s", policy.Policy{MaxChannels: ptr(7)})
			return err
		},
		func() error { _, err := f.svc.DeleteSubaccount(admin, "a9", "s"); return err },
		func() error { _, _, err := f.svc.DisableCountry(admin, "GB", "test"); return err },
		func() error { _, err := f.svc.PutAccount(admin, "a12", policy.Account{}); return err },
		func() error {
			_, err := f.svc.PutOperator(admin, policy.Operator{Default: policy.Policy{MaxChannels: ptr(3)}})
			return err
		},
		func() error { _, err := f.svc.PutAccount(admin, "a15", denyAllBut("continent:AF")); return err },
		// an operator change that keeps the default after account
		// writes: every account is reused but those written since
		func() error { _, _, err := f.svc.DisableCountry(admin, "CU", "test"); return err },
		func() error { _, err := f.svc.PutAccount(admin, "a18", denyAllBut("CU", "US")); return err },
		func() error { _, _, err := f.svc.DisableCountry(admin, "US", "test"); return err },
	}
	for i, w := range writes {
		old := f.m.Snapshot()
		before := decideAll(old, qs)
		if err := w(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if d := diff(decideAll(old, qs), before); d != "" {
			t.Fatalf("write %d changed the snapshot before it: %s", i, d)
		}
		set := *f.svc.set
		set.Accounts = maps.Clone(set.Accounts)
		full, err := matcher.Compile(&set, plan)
		if err != nil {
			t.Fatal(err)
		}
		now := decideAll(f.m.Snapshot(), qs)
		if d := diff(now, decideAll(full, qs)); d != "" {
			t.Fatalf("write %d: incremental and full compile differ: %s", i, d)
		}
		if d := diff(now, before); d == "" {
			t.Fatalf("write %d changed no decision (the test's queries miss it)", i)
		}
		scopes := 0
		for name, a := range f.svc.set.Accounts {
			scopes += 1 + len(a.Subaccounts)
			if _, err := f.svc.vel.State(name); err != nil {
				t.Fatalf("write %d: %s has no velocity scope", i, name)
			}
		}
		if got := f.svc.vel.Stats().Scopes; got != scopes {
			t.Fatalf("write %d: %d velocity scopes, want %d", i, got, scopes)
		}
	}
	if _, err := f.svc.vel.State("a3"); err == nil {
		t.Error("the deleted account kept its velocity scope")
	}

	live := decideAll(f.m.Snapshot(), qs)
	f.st.Close()
	g := open(t, dir, Options{})
	if d := diff(decideAll(g.m.Snapshot(), qs), live); d != "" {
		t.Fatalf("a restart decides differently: %s", d)
	}
}
