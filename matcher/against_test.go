package matcher

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// CompileAgainst reuses an account while it is the very one was holds for
// it, rebuilds the others, records no source in any layer, and decides as
// a compile from nothing does.
func TestCompileAgainst(t *testing.T) {
	plan := numplan.Default()
	set := synthSet(2000, 100, 3)
	prev, err := CompileAgainst(nil, nil, set, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	for n, a := range prev.accounts.All() {
		if a.src != nil {
			t.Fatalf("account %s records its source", n)
		}
	}
	was := set.Accounts
	// The admin path: one account replaced, then the operator settings
	// compiled over the accounts as they now are.
	snap, err := prev.WithAccounts(map[string]*policy.Account{"acct-7": {Policy: policy.Policy{HomeCountry: sp("GB"), Countries: &policy.CountryRule{Default: policy.Deny}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a := snap.acct("acct-7"); a == nil || a.src != nil {
		t.Fatal("WithAccounts on a CompileAgainst snapshot: no account, or one that records its source")
	}
	next := &policy.Set{Operator: set.Operator, HighRisk: set.HighRisk, Accounts: map[string]policy.Account{}}
	for k, v := range was {
		next.Accounts[k] = v
	}
	next.Accounts["acct-7"] = policy.Account{Policy: policy.Policy{HomeCountry: sp("GB"), Countries: &policy.CountryRule{Default: policy.Deny}}}
	was = next.Accounts // what snap was compiled from
	top := *next
	top.Operator.DisabledCountries = map[string]policy.DisabledCountry{"KP": {Reason: "t"}}
	got, err := CompileAgainst(snap, was, &top, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	for n := range top.Accounts {
		if got.acct(n) != snap.acct(n) {
			t.Fatalf("unchanged account %s rebuilt", n)
		}
	}
	// An account that differs from was is rebuilt, the others kept.
	changed := *next
	changed.Accounts = map[string]policy.Account{}
	for k, v := range next.Accounts {
		changed.Accounts[k] = v
	}
	changed.Accounts["acct-8"] = policy.Account{Policy: policy.Policy{MaxChannels: ip(3)}}
	got2, err := CompileAgainst(got, was, &changed, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	if got2.acct("acct-8") == got.acct("acct-8") || got2.acct("acct-9") != got.acct("acct-9") {
		t.Error("the changed account was reused, or an unchanged one rebuilt")
	}
	// Without was, or with CompileFrom (no source recorded), nothing is reused.
	for name, f := range map[string]func() (*Snapshot, error){
		"nil was":     func() (*Snapshot, error) { return CompileAgainst(got, nil, &changed, plan, false) },
		"CompileFrom": func() (*Snapshot, error) { return CompileFrom(got, &changed, plan) },
	} {
		s, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if s.acct("acct-9") == got.acct("acct-9") {
			t.Errorf("%s: an account was reused", name)
		}
	}
	// Every account compiles as from nothing.
	fresh, err := Compile(&changed, plan)
	if err != nil {
		t.Fatal(err)
	}
	for n, f := range fresh.accounts.All() {
		a := got2.acct(n)
		if a == nil {
			t.Fatalf("account %s missing", n)
		}
		c, g := *f, *a
		c.src, g.src = nil, nil
		if !reflect.DeepEqual(c, g) {
			t.Fatalf("account %s:\n%+v\nfresh Compile:\n%+v", n, g, c)
		}
	}
	// keepHR keeps the compiled list without the decoded one.
	changed.HighRisk = nil
	kept, err := CompileAgainst(got2, changed.Accounts, &changed, plan, true)
	if err != nil {
		t.Fatal(err)
	}
	if kept.highRisk != got2.highRisk || kept.acct("acct-9") != got2.acct("acct-9") {
		t.Error("keepHR: the high-risk list or an account was rebuilt")
	}
	if _, err := CompileAgainst(nil, nil, &changed, plan, true); err == nil {
		t.Error("keepHR without a previous snapshot accepted")
	}
}

// WithTemplateAgainst rebases the accounts was holds as compiled, and
// compiles those it does not know, as a compile from nothing does.
func TestWithTemplateAgainst(t *testing.T) {
	plan := numplan.Default()
	set := synthSet(1000, 50, 7)
	set.Templates = map[string]policy.Template{"retail": {Policy: policy.Policy{HomeCountry: sp("GB"), MaxChannels: ip(7)}}}
	for n, a := range set.Accounts {
		a.Template = "retail"
		set.Accounts[n] = a
	}
	prev, err := CompileAgainst(nil, nil, set, plan, false)
	if err != nil {
		t.Fatal(err)
	}
	nt := policy.Template{Policy: policy.Policy{HomeCountry: sp("FR"), Countries: &policy.CountryRule{Default: policy.Allow, Except: []string{"CU"}}}}
	next := *set
	next.Templates = map[string]policy.Template{"retail": nt}
	fresh, err := Compile(&next, plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, was := range []map[string]policy.Account{set.Accounts, nil} {
		with, err := prev.WithTemplateAgainst("retail", &nt, set.AccountsOn("retail"), was)
		if err != nil {
			t.Fatal(err)
		}
		for n, f := range fresh.accounts.All() {
			w := with.acct(n)
			c, g := *f, *w
			c.src, g.src = nil, nil
			if !reflect.DeepEqual(c, g) {
				t.Fatalf("was %v: account %s:\n%+v\nfresh Compile:\n%+v", was != nil, n, g, c)
			}
		}
	}
}
