package matcher

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

var numberTypes = []phonenumbers.PhoneNumberType{
	phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE, phonenumbers.PREMIUM_RATE,
	phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER,
	phonenumbers.UAN, phonenumbers.VOICEMAIL,
}

// Every example number of every region, dialled in E.164, with 00, and in
// national format from its own country, resolves to the E.164 number and
// the region libphonenumber gives.
func TestGoldenExampleNumbers(t *testing.T) {
	set := &policy.Set{Accounts: map[string]policy.Account{}}
	regions := make([]string, 0, 256)
	for r := range phonenumbers.GetSupportedRegions() {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	for _, r := range regions {
		home := r
		set.Accounts["home-"+r] = policy.Account{Policy: policy.Policy{HomeCountry: &home, HighRisk: sp(policy.HighRiskAllow)}}
	}
	m := newTestMatcher(t, set)
	checked, national := 0, 0
	for _, r := range regions {
		for _, typ := range numberTypes {
			pn := phonenumbers.GetExampleNumberForType(r, typ)
			if pn == nil {
				continue
			}
			want := phonenumbers.GetRegionCodeForNumber(pn)
			e164 := phonenumbers.Format(pn, phonenumbers.E164)
			for _, to := range []string{e164, "00" + e164[1:], phonenumbers.Format(pn, phonenumbers.INTERNATIONAL)} {
				v := m.Decide(&Query{To: to, Account: "home-US"})
				if v.Country != want || v.E164() != e164 {
					t.Errorf("%s %v %q: got %s %q (%s), want %s %q", r, typ, to, v.Country, v.E164(), v.RuleString(), want, e164)
				}
				checked++
			}
			// National format from the number's own region, as a customer
			// there would dial it. Some regions' numbers have no national
			// dialling form distinct from the international one; skip those
			// phonenumbers itself cannot round-trip.
			nat := phonenumbers.Format(pn, phonenumbers.NATIONAL)
			if back, err := phonenumbers.Parse(nat, r); err != nil || phonenumbers.Format(back, phonenumbers.E164) != e164 {
				continue
			}
			v := m.Decide(&Query{To: nat, Account: "home-" + r})
			if v.Reason == ReasonEmergency {
				continue // a short national number that is also an emergency number
			}
			if v.Country != want || v.E164() != e164 {
				t.Errorf("%s %v national %q: got %s %q (%s), want %s %q", r, typ, nat, v.Country, v.E164(), v.RuleString(), want, e164)
			}
			national++
		}
	}
	for _, cc := range []int{800, 808, 870, 878, 881, 882, 883, 888, 979} {
		pn := phonenumbers.GetExampleNumberForNonGeoEntity(cc)
		if pn == nil {
			t.Errorf("no example for +%d", cc)
			continue
		}
		e164 := phonenumbers.Format(pn, phonenumbers.E164)
		if v := m.Decide(&Query{To: e164}); v.Country != "001" || v.E164() != e164 {
			t.Errorf("non-geographic %s: got %q %q (%s)", e164, v.Country, v.E164(), v.RuleString())
		}
		checked++
	}
	t.Logf("%d international and %d national example numbers agree with libphonenumber", checked, national)
	if checked < 1500 || national < 800 {
		t.Errorf("too few examples checked: %d/%d", checked, national)
	}
}

// Emergency numbers of every region pass from an account homed there.
func TestGoldenEmergency(t *testing.T) {
	set := &policy.Set{
		Accounts: map[string]policy.Account{},
		Operator: policy.Operator{Default: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny}}},
	}
	plan := numplan.Default()
	n := 0
	for r := range phonenumbers.GetSupportedRegions() {
		home := r
		set.Accounts["home-"+r] = policy.Account{Policy: policy.Policy{HomeCountry: &home}}
	}
	m := newTestMatcher(t, set)
	for r := range phonenumbers.GetSupportedRegions() {
		info := plan.Region(r)
		if info == nil {
			continue
		}
		for _, e := range info.Emergency {
			if !phonenumbers.IsEmergencyNumber(e, r) {
				t.Errorf("%s: %s is not an emergency number per phonenumbers", r, e)
			}
			v := m.Decide(&Query{To: e, Account: "home-" + r})
			if v.Reason != ReasonEmergency || v.E164() != e {
				t.Errorf("%s emergency %s: %s %s %q", r, e, v.Action, v.Reason, v.E164())
			}
			n++
		}
	}
	if n < 300 {
		t.Errorf("only %d emergency numbers checked", n)
	}
}

// goldenQueries are decided against testSet and compared with
// testdata/decisions.golden, so any change in a decision shows in review.
var goldenQueries = []Query{
	{To: "+442031234567", Account: "acme"},
	{To: "011 44 20 3123 4567", Account: "acme"},
	{To: "+44 207 946 0958", Account: "acme"},
	{To: "(212) 555-0100", Account: "acme"},
	{To: "+1 876 555 0123", Account: "acme", Subaccount: "sales"},
	{To: "+49 30 1234567", Account: "acme", Subaccount: "sales"},
	{To: "+53 7 1234567", Account: "acme"},
	{To: "+850 2 123 4567", Account: "acme"},
	{To: "+44 7000 123456", Account: "acme"},
	{To: "+881 6 12345678", Account: "acme"},
	{To: "+881 6 12345678", Account: "acme", Subaccount: "ships"},
	{To: "+88216 1234567", Account: "acme"},
	{To: "911", Account: "acme"},
	{To: "07700 900123", Account: "uk"},
	{To: "118 118", Account: "uk"},
	{To: "999", Account: "uk"},
	{To: "0011 61 2 9374 4000", Account: "aus"},
	{To: "+1 876 555 0123", Account: "nanp-only"},
	{To: "+52 55 1234 5678", Account: "nanp-only"},
	{To: "+7 727 258 0000", Account: "stranger"},
	{To: "sip:%2B441481256789@gw.example;user=phone", Account: "stranger"},
	{To: "tel:+1-212-555-0100", Account: "none"},
	{To: "112", Account: "none"},
	{To: "abc", Account: "acme"},
	{To: "+999 1234 5678", Account: "acme"},
}

// shippedQueries are decided with the shipped high-risk list for an account
// that allows every country and keeps high_risk=block ("all"), first as
// shipped, then with the recommended country denies applied: what the
// defaults block is reviewed here line by line.
var shippedQueries = []Query{
	{To: "+1 876 523 0123", Account: "all"},  // JM fixed line
	{To: "+1 658 295 1234", Account: "all"},  // JM overlay
	{To: "1 809 234 5678", Account: "all"},   // DO, dialled nationally from the US
	{To: "+1 284 229 1234", Account: "all"},  // VG
	{To: "+1 800 234 5678", Account: "all"},  // US toll free
	{To: "+1 900 234 5678", Account: "all"},  // NANP premium rate
	{To: "+966 11 234 5678", Account: "all"}, // SA fixed line
	{To: "+966 92 5012345", Account: "all"},  // SA premium rate
	{To: "00222 35 12 34 56", Account: "all"},
	{To: "+243 99 123 4567", Account: "all"},
	{To: "+44 70 1234 5678", Account: "all"}, // GB personal numbers (curated IRSF range)
	{To: "+44 909 876 5432", Account: "all"}, // GB premium rate
	{To: "+56 600 123 456", Account: "all"},  // CL fixed-line example inside CL's shared-cost 600
	{To: "+881 6 12345678", Account: "all"},
}

func goldenLine(b *strings.Builder, prefix string, m *Matcher, q Query) {
	v := m.Decide(&q)
	who := q.Account
	if q.Subaccount != "" {
		who += "/" + q.Subaccount
	}
	fmt.Fprintf(b, "%s%s | %s => %s %s %d %s %s %d/%d | %s\n", prefix, who, q.To, v.Action, v.Reason, v.Reason.Info().Code,
		orDash(v.Country), orDash(v.E164()), v.MaxChannels, v.MaxCPS, v.RuleString())
}

func TestGoldenDecisions(t *testing.T) {
	const path = "testdata/decisions.golden"
	m := newTestMatcher(t, testSet())
	var b strings.Builder
	b.WriteString("# account[/sub] | dialled => verdict reason code country e164 caps | rule\n")
	for _, q := range goldenQueries {
		goldenLine(&b, "", m, q)
	}
	hr, err := DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	denies, err := DefaultRecommendedDenies()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]policy.Account{"all": {Policy: policy.Policy{HomeCountry: sp("US"),
		Countries: &policy.CountryRule{Default: policy.Allow}, HighRisk: sp(policy.HighRiskBlock)}}}
	applied := policy.Operator{DisabledCountries: map[string]policy.DisabledCountry{}}
	for _, e := range denies.Entries {
		applied.DisabledCountries[e.Country] = policy.DisabledCountry{Reason: "recommended deny " + denies.Meta.Version}
	}
	for _, c := range []struct {
		name string
		op   policy.Operator
	}{{"shipped list", policy.Operator{}}, {"shipped list + recommended denies", applied}} {
		m := newTestMatcher(t, &policy.Set{Operator: c.op, HighRisk: hr, Accounts: all})
		fmt.Fprintf(&b, "# %s\n", c.name)
		for _, q := range shippedQueries {
			goldenLine(&b, "", m, q)
		}
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./matcher -run TestGoldenDecisions -update)", err)
	}
	if string(want) != got {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := 0; i < len(wl) && i < len(gl); i++ {
			if wl[i] != gl[i] {
				t.Errorf("line %d:\n got  %s\n want %s", i+1, gl[i], wl[i])
			}
		}
		if len(wl) != len(gl) {
			t.Errorf("got %d lines, want %d", len(gl), len(wl))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
