package matcher

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// templateSet has two templates and accounts that inherit from them in
// every way the merge allows: all of a template, a field replaced, a
// subaccount over an account over a template, and a template that allows
// what the operator disabled.
func templateSet() *policy.Set {
	return &policy.Set{
		Operator: policy.Operator{
			DisabledCountries: map[string]policy.DisabledCountry{"KP": {Reason: "sanctions"}},
			BlockedPrefixes:   []policy.BlockedPrefix{{Prefix: "+4470", Reason: "personal numbers abused"}},
		},
		Templates: map[string]policy.Template{
			"retail-eu": {
				Description: "EU retail: EU destinations only",
				Policy: policy.Policy{
					HomeCountry:   sp("DE"),
					Countries:     &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}},
					BlockPrefixes: lp("+3367"),
					MaxChannels:   ip(10),
					MaxCPS:        ip(2),
				},
				UnknownSubaccounts: policy.UnknownSubReject,
				AccountMaxChannels: 20,
			},
			"open": {Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Allow}, HighRisk: sp(policy.HighRiskAllow)}},
		},
		Accounts: map[string]policy.Account{
			"shop": {Template: "retail-eu"},
			"shop-us": {Template: "retail-eu", Policy: policy.Policy{
				Countries:   &policy.CountryRule{Default: policy.Deny, Except: []string{"US"}},
				MaxChannels: ip(50),
			}, AccountMaxChannels: 80, UnknownSubaccounts: policy.UnknownSubAccount},
			"shop-subs": {Template: "retail-eu", Subaccounts: map[string]policy.Policy{
				"fr":    {Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"FR"}}},
				"quiet": {MaxCPS: ip(1)},
			}},
			"wide":  {Template: "open"},
			"plain": {Policy: policy.Policy{HomeCountry: sp("DE")}},
		},
		HighRisk: []policy.HighRiskEntry{{Prefix: "+881", Country: "001", Category: "satellite", Source: "test GMSS"}},
	}
}

var templateQueries = []Query{
	{To: "+33 1 23 45 67 89", Account: "shop"},                     // FR: the template's EU list
	{To: "+1 212 555 0100", Account: "shop"},                       // US: not in the template's list
	{To: "030 1234567", Account: "shop"},                           // national DE: the template's home
	{To: "+33 6 71 23 45 67", Account: "shop"},                     // the template's block prefix
	{To: "+44 70 1234 5678", Account: "shop"},                      // the operator's blocked prefix
	{To: "+33 1 23 45 67 89", Account: "shop", Subaccount: "x"},    // unknown_subaccounts=reject from the template
	{To: "+1 212 555 0100", Account: "shop-us"},                    // the account's own countries replace the template's
	{To: "+33 1 23 45 67 89", Account: "shop-us"},                  // ... whole: FR is no longer allowed
	{To: "+33 1 23 45 67 89", Account: "shop-us", Subaccount: "x"}, // unknown_subaccounts=account overrides
	{To: "+33 1 23 45 67 89", Account: "shop-subs", Subaccount: "fr"},
	{To: "+49 30 1234567", Account: "shop-subs", Subaccount: "fr"},
	{To: "+49 30 1234567", Account: "shop-subs", Subaccount: "quiet"}, // countries: template, via the subaccount
	{To: "+33 6 71 23 45 67", Account: "shop-subs", Subaccount: "fr"}, // block prefix: template, under the subaccount's countries
	{To: "+850 2 123 4567", Account: "wide"},                          // KP: the template allows, the operator disabled
	{To: "+881 6 12345678", Account: "wide"},                          // high_risk=allow from the template
	{To: "+881 6 12345678", Account: "plain"},                         // no template: the default blocks it
	{To: "+1 212 555 0100", Account: "plain"},
}

func templateGolden(m *Matcher) string {
	var b strings.Builder
	b.WriteString("# account[/sub] | dialled => verdict reason code country e164 caps account-caps template | rule\n")
	for _, q := range templateQueries {
		v := m.Decide(&q)
		who := q.Account
		if q.Subaccount != "" {
			who += "/" + q.Subaccount
		}
		fmt.Fprintf(&b, "%s | %s => %s %s %d %s %s %d/%d %d/%d %s | %s\n", who, q.To, v.Action, v.Reason, v.Reason.Info().Code,
			orDash(v.Country), orDash(v.E164()), v.MaxChannels, v.MaxCPS, v.AccountMaxChannels, v.AccountMaxCPS, orDash(v.Template), v.RuleString())
	}
	return b.String()
}

// TestGoldenTemplates pins what an account inherits from its template and
// how the verdict names the template that decided.
func TestGoldenTemplates(t *testing.T) {
	const path = "testdata/templates.golden"
	got := templateGolden(newTestMatcher(t, templateSet()))
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./matcher -run TestGoldenTemplates -update)", err)
	}
	if string(want) != got {
		t.Errorf("decisions differ from %s (-update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// A template's verdict carries its name, and only when it decided.
func TestTemplateVerdictField(t *testing.T) {
	m := newTestMatcher(t, templateSet())
	for _, c := range []struct {
		q    Query
		tmpl string
		rule string
	}{
		{Query{To: "+1 212 555 0100", Account: "shop"}, "retail-eu", "account shop via template:retail-eu: countries deny-all-except; US not listed"},
		{Query{To: "+49 30 1234567", Account: "shop-subs", Subaccount: "quiet"}, "retail-eu", "subaccount shop-subs/quiet via template:retail-eu: countries deny-all-except; DE listed via continent:EU"},
		{Query{To: "+1 212 555 0100", Account: "shop-us"}, "", "account shop-us: countries deny-all-except; US listed"},
		{Query{To: "+850 2 123 4567", Account: "wide"}, "", "operator: calls to KP disabled: sanctions"},
	} {
		v := m.Decide(&c.q)
		if v.Template != c.tmpl || v.RuleString() != c.rule {
			t.Errorf("%+v: template %q rule %q, want %q %q", c.q, v.Template, v.RuleString(), c.tmpl, c.rule)
		}
	}
}

// Bad templates and accounts naming a missing one are refused, naming
// the template and the field; nothing compiles.
func TestTemplateCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*policy.Set)
		field string
		msg   string
	}{
		{"unknown template", func(s *policy.Set) { s.Accounts["x"] = policy.Account{Template: "nope"} }, "template", `account x: template: no template "nope"`},
		{"bad country", func(s *policy.Set) {
			s.Templates["bad"] = policy.Template{Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"XX"}}}}
		}, "countries.except[0]", "template bad: countries.except[0]: unknown country code"},
		{"bad cap", func(s *policy.Set) { s.Templates["bad"] = policy.Template{AccountMaxCPS: -1} }, "account_max_cps", "template bad: account_max_cps"},
		{"bad unknown_subaccounts", func(s *policy.Set) { s.Templates["bad"] = policy.Template{UnknownSubaccounts: "drop"} }, "unknown_subaccounts", "template bad"},
		{"bad name", func(s *policy.Set) { s.Templates["a b"] = policy.Template{} }, "", `template "a b": bad name`},
		{"long description", func(s *policy.Set) { s.Templates["bad"] = policy.Template{Description: strings.Repeat("x", 257)} }, "description", "longer than 256"},
		{"bad template name in account", func(s *policy.Set) { s.Accounts["x"] = policy.Account{Template: "a/b"} }, "template", "bad template name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := templateSet()
			c.edit(set)
			_, err := Compile(set, numplan.Default())
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want it to contain %q", err, c.msg)
			}
			var fe *policy.FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Fatalf("err = %v: field %v, want %q", err, fe, c.field)
			}
		})
	}
}

// Changing a template through CompileFrom or WithTemplate recompiles the
// accounts on it, reuses every other, and decides as a fresh Compile.
func TestTemplateChange(t *testing.T) {
	plan := numplan.Default()
	set := templateSet()
	prev, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	next := *set
	next.Templates = map[string]policy.Template{"open": set.Templates["open"]}
	rt := set.Templates["retail-eu"]
	rt.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"FR"}}
	next.Templates["retail-eu"] = rt

	fresh, err := Compile(&next, plan)
	if err != nil {
		t.Fatal(err)
	}
	from, err := CompileFrom(prev, &next, plan)
	if err != nil {
		t.Fatal(err)
	}
	on := map[string]policy.Account{}
	for n, a := range set.Accounts {
		if a.Template == "retail-eu" {
			on[n] = a
		}
	}
	with, err := prev.WithTemplate("retail-eu", &rt, maps.All(on))
	if err != nil {
		t.Fatal(err)
	}
	want := templateGolden(matcherWith(fresh))
	for name, s := range map[string]*Snapshot{"CompileFrom": from, "WithTemplate": with} {
		if got := templateGolden(matcherWith(s)); got != want {
			t.Errorf("%s decides differently from Compile:\n%s\nwant\n%s", name, got, want)
		}
		for _, n := range []string{"plain", "wide"} {
			o, _ := prev.accounts.Get(n)
			a, _ := s.accounts.Get(n)
			if o != a {
				t.Errorf("%s recompiled %s, which is not on the changed template", name, n)
			}
		}
		if s.templates["open"] != prev.templates["open"] {
			t.Errorf("%s recompiled the unchanged template", name)
		}
		o, _ := prev.accounts.Get("shop")
		a, _ := s.accounts.Get("shop")
		if o == a {
			t.Errorf("%s kept shop's old compiled policy", name)
		}
	}
	// The old snapshot still decides as before.
	if got, w := templateGolden(matcherWith(prev)), templateGolden(newTestMatcher(t, templateSet())); got != w {
		t.Errorf("the previous snapshot changed")
	}
	v := matcherWith(with).Decide(&Query{To: "+1 212 555 0100", Account: "shop"})
	if v.Reason != ReasonOK || v.Template != "retail-eu" {
		t.Errorf("after the change: %s %q %s", v.Reason, v.Template, v.RuleString())
	}

	if _, err := prev.WithTemplate("retail-eu", &rt, maps.All(map[string]policy.Account{"shop": set.Accounts["shop"]})); err == nil {
		t.Error("WithTemplate left accounts on the template behind")
	}
	if _, err := prev.WithTemplate("retail-eu", nil, maps.All(on)); err == nil {
		t.Error("WithTemplate removed a template accounts still name")
	}
	gone, err := prev.WithTemplate("open", nil, maps.All(map[string]policy.Account{}))
	if err == nil {
		t.Errorf("removed a template that wide names: %v", gone.templates)
	}
	if _, err := prev.WithTemplate("retail-eu", &rt, maps.All(map[string]policy.Account{"plain": set.Accounts["plain"]})); err == nil {
		t.Error("WithTemplate recompiled an account that does not name the template")
	}
}

func matcherWith(s *Snapshot) *Matcher {
	m := New(numplan.Default(), Options{})
	m.Swap(s)
	return m
}

// WithTemplate rebases the accounts on a changed template (their own
// layers taken from their compiled form, not compiled again): every
// account must come out exactly as a fresh Compile of the changed set
// compiles it, whatever its own layers and subaccounts set. Accounts with
// origin settings of their own are compiled (their origin merges with the
// template's), and must match too.
func TestTemplateRebaseMatchesCompile(t *testing.T) {
	plan := numplan.Default()
	set := synthSet(3000, 50, 7)
	set.Templates = map[string]policy.Template{"retail": {Policy: policy.Policy{
		HomeCountry: sp("GB"), Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}},
		HighRisk: sp(policy.HighRiskAllow), BlockPrefixes: lp("+3367"), MaxChannels: ip(7), MaxDestinationRate: new(float64),
	}, UnknownSubaccounts: policy.UnknownSubReject, AccountMaxCPS: 9}}
	i := 0
	for n, a := range set.Accounts {
		a.Template = "retail"
		switch i % 7 {
		case 0:
			a.Policy = policy.Policy{} // everything from the template
		case 1:
			a.Subaccounts = map[string]policy.Policy{"a": {MaxCPS: ip(1)}, "b": {Countries: &policy.CountryRule{Default: policy.Allow}}}
		case 2:
			a.Origin = &policy.Origin{TrustedSources: &[]string{"192.0.2.0/24"}}
		case 3:
			a.Subaccounts = map[string]policy.Policy{"o": {Origin: &policy.Origin{TrustedSources: &[]string{"198.51.100.0/24"}}}}
			a.UnknownSubaccounts, a.AccountMaxCPS = policy.UnknownSubAccount, 4
		}
		set.Accounts[n] = a
		i++
	}
	prev, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	nt := policy.Template{Policy: policy.Policy{
		HomeCountry: sp("FR"), Countries: &policy.CountryRule{Default: policy.Allow, Except: []string{"CU"}},
		AllowPrefixes: lp("+881"), MaxCPS: ip(3), Origin: &policy.Origin{TrustedSources: &[]string{"203.0.113.0/24"}},
	}, AccountMaxChannels: 11}
	with, err := prev.WithTemplate("retail", &nt, set.AccountsOn("retail"))
	if err != nil {
		t.Fatal(err)
	}
	next := *set
	next.Templates = map[string]policy.Template{"retail": nt}
	fresh, err := Compile(&next, plan)
	if err != nil {
		t.Fatal(err)
	}
	if with.accounts.Len() != fresh.accounts.Len() {
		t.Fatalf("%d accounts, fresh %d", with.accounts.Len(), fresh.accounts.Len())
	}
	for n, f := range fresh.accounts.All() {
		w, _ := with.accounts.Get(n)
		if !reflect.DeepEqual(w, f) {
			t.Fatalf("account %s after WithTemplate:\n%+v\nfresh Compile:\n%+v", n, w, f)
		}
	}
	if with.stats.Subaccounts != fresh.stats.Subaccounts || with.stats.Prefixes != fresh.stats.Prefixes || with.geoAccounts != fresh.geoAccounts {
		t.Errorf("stats %+v geo %d, fresh %+v geo %d", with.stats, with.geoAccounts, fresh.stats, fresh.geoAccounts)
	}
}

// A decision the template takes allocates nothing, rule text included.
func TestTemplateDecideAllocs(t *testing.T) {
	m := newTestMatcher(t, templateSet())
	buf := make([]byte, 0, 512)
	for _, q := range templateQueries {
		q := q
		if n := testing.AllocsPerRun(100, func() {
			v := m.Decide(&q)
			buf = v.AppendRule(buf[:0])
		}); n != 0 {
			t.Errorf("%+v: %.1f allocations per decision", q, n)
		}
	}
}
