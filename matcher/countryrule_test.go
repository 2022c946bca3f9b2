package matcher

import (
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// TestCountryRulesShared checks that layers with the same countries.except
// list share one compiled rule, that a different list gets its
// own, that a subaccount that sets no countries inherits its account's, and
// that the shared rule still names the matching selector.
func TestCountryRulesShared(t *testing.T) {
	cr := func(ex ...string) *policy.CountryRule { return &policy.CountryRule{Default: policy.Allow, Except: ex} }
	set := &policy.Set{Accounts: map[string]policy.Account{
		"a":     {Policy: policy.Policy{Countries: cr("GB", "continent:AF")}},
		"b":     {Policy: policy.Policy{Countries: cr("GB", "continent:AF")}, Subaccounts: map[string]policy.Policy{"s": {}, "t": {Countries: cr("FR")}}},
		"c":     {Policy: policy.Policy{Countries: cr("GB")}},
		"d":     {Policy: policy.Policy{Countries: cr("FR")}},
		"empty": {Policy: policy.Policy{Countries: cr()}},
	}}
	s, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d := s.acct("a").countries, s.acct("b").countries, s.acct("c").countries, s.acct("d").countries
	for _, tc := range []struct {
		what      string
		got, want bool
	}{
		{"a and b (same list) share", a == b, true},
		{"a and c (other lists) share", a == c, false},
		{"b's subaccount s inherits b's", s.acct("b").subs["s"].countries == b, true},
		{"b's subaccount t shares d's", s.acct("b").subs["t"].countries == d, true},
		{"an empty list is noCountries", s.acct("empty").countries == noCountries, true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	m := New(numplan.Default(), Options{})
	m.Swap(s)
	v := m.Decide(&Query{Account: "b", To: "+442079460000"})
	if v.Action != Reject || v.Selector != "GB" {
		t.Errorf("b to GB: %+v, want a reject naming GB", v)
	}
}
