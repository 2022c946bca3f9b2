package velocity

import (
	"maps"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// TestSyncAccounts checks that syncing only the changed accounts leaves the
// engine as a full Sync would (the same scopes, the same rules), keeps the
// scopes and configs of untouched accounts, marks a deleted account's and a
// dropped subaccount's scopes gone, and leaves the previous table as it was.
func TestSyncAccounts(t *testing.T) {
	rules := func(n int) *policy.Velocity {
		return &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, n)}}}
	}
	set := &policy.Set{Accounts: map[string]policy.Account{
		"keep":   {Policy: policy.Policy{Velocity: rules(5)}},
		"change": {Policy: policy.Policy{Velocity: rules(5)}, Subaccounts: map[string]policy.Policy{"a": {}, "b": {}}},
		"delete": {Subaccounts: map[string]policy.Policy{"x": {}}},
	}}
	e := New(Options{})
	if err := e.Sync(set); err != nil {
		t.Fatal(err)
	}
	before := e.table.Load()
	keep, changeB, del, delX := e.exact("keep", ""), e.exact("change", "b"), e.exact("delete", ""), e.exact("delete", "x")
	keepCfg, changeCfg := keep.cfg.Load(), e.exact("change", "").cfg.Load()

	next := &policy.Set{Accounts: maps.Clone(set.Accounts)}
	next.Accounts["change"] = policy.Account{Policy: policy.Policy{Velocity: rules(9)}, Subaccounts: map[string]policy.Policy{"a": {}}}
	delete(next.Accounts, "delete")
	next.Accounts["new"] = policy.Account{Subaccounts: map[string]policy.Policy{"s": {}}}
	if err := e.SyncAccounts(next, []string{"change", "delete", "new", "new"}); err != nil {
		t.Fatal(err)
	}

	full := New(Options{})
	if err := full.Sync(next); err != nil {
		t.Fatal(err)
	}
	if got, want := e.Stats().Scopes, full.Stats().Scopes; got != want || got != 5 {
		t.Errorf("scopes %d, full sync %d, want 5", got, want)
	}
	for name, acc := range next.Accounts {
		for _, sub := range append([]string{""}, keys(acc.Subaccounts)...) {
			s, f := e.exact(name, sub), full.exact(name, sub)
			if s == nil || f == nil || s.gone.Load() {
				t.Fatalf("%s/%s: scope %v, full sync %v", name, sub, s, f)
			}
			if got, want := s.cfg.Load().rules, f.cfg.Load().rules; len(got) != len(want) || (len(got) > 0 && got[0].th != want[0].th) {
				t.Errorf("%s/%s: rules differ from a full sync", name, sub)
			}
		}
	}
	if e.exact("keep", "") != keep || keep.cfg.Load() != keepCfg {
		t.Error("the untouched account's scope or config was rebuilt")
	}
	if e.exact("change", "").cfg.Load() == changeCfg {
		t.Error("the changed account kept its old rules")
	}
	if !del.gone.Load() || !delX.gone.Load() || !changeB.gone.Load() || e.exact("delete", "") != nil {
		t.Error("a deleted account's or dropped subaccount's scope is not gone")
	}
	if en, ok := before.accounts.Get("delete"); !ok || en.made() != del || before.accounts.Len() != 3 {
		t.Error("the previous table changed")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestScopeOnFirstUse checks that an account without velocity rules,
// subaccounts or a lock gets no scope at sync, that its first use makes
// one with the synced config and that later uses find the same one, that a
// sync after the first use updates that scope, and that accounts with
// rules, subaccounts or a lock have theirs from the start.
func TestScopeOnFirstUse(t *testing.T) {
	rules := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 5)}}}
	set := &policy.Set{Accounts: map[string]policy.Account{
		"plain":  {Policy: policy.Policy{MaxCPS: iptr(3)}},
		"rules":  {Policy: policy.Policy{Velocity: rules}},
		"subs":   {Subaccounts: map[string]policy.Policy{"a": {}}},
		"locked": {},
	}}
	e := New(Options{})
	e.RestoreLocks([]Lock{{Account: "locked"}})
	if err := e.Sync(set); err != nil {
		t.Fatal(err)
	}
	made := func(name string) *Scope {
		en, ok := e.table.Load().accounts.Get(name)
		if !ok {
			t.Fatalf("%s: not in the table", name)
		}
		return en.made()
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{"plain", false}, {"rules", true}, {"subs", true}, {"locked", true}} {
		if got := made(tc.name) != nil; got != tc.want {
			t.Errorf("%s: scope made at sync %v, want %v", tc.name, got, tc.want)
		}
	}
	if s := made("locked"); s == nil || !s.locked.Load() {
		t.Error("the locked account's scope is not locked")
	}
	s := e.exact("plain", "")
	if s == nil || made("plain") != s || e.exact("plain", "") != s {
		t.Fatal("first use did not make one scope that later uses find")
	}
	if c := s.cfg.Load(); c == nil || c.maxCPS != 3 {
		t.Fatalf("first use: config %+v, want the synced one (max CPS 3)", c)
	}
	next := &policy.Set{Accounts: maps.Clone(set.Accounts)}
	next.Accounts["plain"] = policy.Account{Policy: policy.Policy{MaxCPS: iptr(7)}}
	if err := e.SyncAccounts(next, []string{"plain"}); err != nil {
		t.Fatal(err)
	}
	if e.exact("plain", "") != s || s.cfg.Load().maxCPS != 7 {
		t.Errorf("after a sync: scope kept %v, max CPS %d, want the same scope with 7", e.exact("plain", "") == s, s.cfg.Load().maxCPS)
	}
	if e.Stats().Scopes != 5 {
		t.Errorf("scopes %d, want 5 (accounts and subaccounts, made or not)", e.Stats().Scopes)
	}
}

func iptr(n int) *int { return &n }

// TestSyncReusesOnOtherFields checks that a sync keeps an account's scope
// config when only fields no scope config reads changed (countries), and
// compiles a new one when one it reads changed (time zone).
func TestSyncReusesOnOtherFields(t *testing.T) {
	rules := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 5)}}}
	acc := policy.Account{Policy: policy.Policy{Velocity: rules}}
	e := New(Options{})
	if err := e.Sync(&policy.Set{Accounts: map[string]policy.Account{"a": acc}}); err != nil {
		t.Fatal(err)
	}
	cfg := e.exact("a", "").cfg.Load()
	acc.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"GB"}}
	if err := e.SyncAccounts(&policy.Set{Accounts: map[string]policy.Account{"a": acc}}, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if e.exact("a", "").cfg.Load() != cfg {
		t.Error("a countries change rebuilt the scope config")
	}
	zone := "Europe/Paris"
	acc.TimeZone = &zone
	if err := e.SyncAccounts(&policy.Set{Accounts: map[string]policy.Account{"a": acc}}, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if c := e.exact("a", "").cfg.Load(); c == cfg || c.loc.String() != zone {
		t.Errorf("a time zone change: config rebuilt %v, zone %v", c != cfg, c.loc)
	}
}

// SyncAgainst and SyncAccountsAgainst keep what Sync and SyncAccounts keep,
// deciding by what the caller says the last sync was given instead of a
// source the entries record (they record none).
func TestSyncAgainst(t *testing.T) {
	rules := &policy.Velocity{Action: policy.ActionAlert, Rules: []policy.VelocityRule{{CallsPerMinute: th(0, 5)}}}
	acc := policy.Account{Policy: policy.Policy{Velocity: rules}, Subaccounts: map[string]policy.Policy{"s": {}}}
	other := policy.Account{Policy: policy.Policy{MaxCPS: iptr(2)}}
	e := New(Options{})
	set := &policy.Set{Accounts: map[string]policy.Account{"a": acc, "b": other}}
	if err := e.SyncAgainst(set, nil); err != nil {
		t.Fatal(err)
	}
	for n, en := range e.table.Load().accounts.All() {
		if en.src != nil {
			t.Fatalf("entry %s records its source", n)
		}
	}
	cfg, sub := e.exact("a", "").cfg.Load(), e.exact("a", "s")
	entryB, _ := e.table.Load().accounts.Get("b")
	same := func(m map[string]policy.Account) Was {
		return func(n string) (policy.Account, bool) { a, ok := m[n]; return a, ok }
	}
	// nothing changed: every entry kept
	if err := e.SyncAgainst(set, same(set.Accounts)); err != nil {
		t.Fatal(err)
	}
	if en, _ := e.table.Load().accounts.Get("b"); en != entryB || e.exact("a", "").cfg.Load() != cfg {
		t.Error("an unchanged account got a new entry or config")
	}
	// a countries change keeps the config, a time zone change does not
	prior := set.Accounts["a"]
	acc.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"GB"}}
	set.Accounts["a"] = acc
	was := func(n string) (policy.Account, bool) {
		if n == "a" {
			return prior, true
		}
		return same(set.Accounts)(n)
	}
	if err := e.SyncAccountsAgainst(set, []string{"a"}, was); err != nil {
		t.Fatal(err)
	}
	if e.exact("a", "").cfg.Load() != cfg || e.exact("a", "s") != sub {
		t.Error("a countries change rebuilt the scope config or lost the subaccount's scope")
	}
	prior = acc
	zone := "Europe/Paris"
	acc.TimeZone = &zone
	set.Accounts["a"] = acc
	if err := e.SyncAgainst(set, was); err != nil {
		t.Fatal(err)
	}
	if c := e.exact("a", "").cfg.Load(); c == cfg || c.loc.String() != zone {
		t.Errorf("a time zone change kept the config (%v)", c.loc)
	}
	if e.exact("a", "s") != sub {
		t.Error("the subaccount's scope was not kept")
	}
	if en, _ := e.table.Load().accounts.Get("b"); en != entryB {
		t.Error("the unchanged account got a new entry")
	}
	// not known: a new entry, the same scope
	if err := e.SyncAgainst(set, nil); err != nil {
		t.Fatal(err)
	}
	if en, _ := e.table.Load().accounts.Get("b"); en == entryB || e.exact("a", "s") != sub {
		t.Error("nil was kept an entry, or lost a scope")
	}
}
