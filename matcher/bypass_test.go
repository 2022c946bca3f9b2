package matcher_test

import (
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// variants are the ways a fraudster can dial one E.164 number through a
// proxy: international prefixes, separators, URIs, encodings, national
// formats from the number's own country and, in NANP, from the US.
func variants(num *phonenumbers.PhoneNumber, region string) []struct{ to, home string } {
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	digits := e164[1:]
	intl := phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
	out := []struct{ to, home string }{
		{e164, "US"}, {e164, "GB"}, {"00" + digits, "GB"}, {"011" + digits, "US"}, {"0011" + digits, "AU"},
		{intl, "DE"}, {strings.ReplaceAll(intl, " ", "-"), "DE"}, {strings.ReplaceAll(intl, " ", "."), "FR"},
		{" " + e164 + " ", "US"}, {"tel:" + strings.ReplaceAll(intl, " ", "-"), "US"},
		{"sip:" + e164 + "@gw.example;user=phone", "US"}, {"sip:%2B" + digits + "@gw.example", "US"},
		{"sip:00" + digits + "@gw.example", "GB"}, {"%2B" + digits, "US"},
		{"+" + digits[:1] + " (" + digits[1:4] + ") " + digits[4:], "US"},
	}
	if nat := phonenumbers.Format(num, phonenumbers.NATIONAL); nat != "" {
		out = append(out, struct{ to, home string }{nat, region})
	}
	if strings.HasPrefix(digits, "1") {
		out = append(out, struct{ to, home string }{digits, "US"}, struct{ to, home string }{digits[1:], "US"},
			struct{ to, home string }{"1-" + digits[1:4] + "-" + digits[4:], "CA"})
	}
	return out
}

// homeAccounts are allow-all accounts with high_risk=block, one homed in
// every region, so national dialling of every country is tried.
func homeAccounts() map[string]policy.Account {
	accs := map[string]policy.Account{}
	for _, r := range sortedRegions() {
		accs["home-"+r] = policy.Account{Policy: policy.Policy{HomeCountry: ptr(r),
			Countries: &policy.CountryRule{Default: policy.Allow}, HighRisk: ptr(policy.HighRiskBlock)}}
	}
	return accs
}

// Attack on issue 11 item 14: with the whole countries off the default
// list, no dialling variant of a premium-rate, shared-cost or
// non-geographic high-risk example reaches it; and once the recommended
// denies are applied, no variant of any example number of a denied country
// gets through.
func TestNoDiallingBypass(t *testing.T) {
	hr, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	denies, err := matcher.DefaultRecommendedDenies()
	if err != nil {
		t.Fatal(err)
	}
	applied := policy.Operator{DisabledCountries: map[string]policy.DisabledCountry{}}
	for _, e := range denies.Entries {
		applied.DisabledCountries[e.Country] = policy.DisabledCountry{Reason: "recommended deny"}
	}
	plan := numplan.Default()
	compile := func(op policy.Operator) *matcher.Matcher {
		snap, err := matcher.Compile(&policy.Set{Operator: op, HighRisk: hr, Accounts: homeAccounts()}, plan)
		if err != nil {
			t.Fatal(err)
		}
		m := matcher.New(plan, matcher.Options{})
		m.Swap(snap)
		return m
	}
	tries := 0
	attack := func(m *matcher.Matcher, what string, num *phonenumbers.PhoneNumber, region string) {
		e164 := phonenumbers.Format(num, phonenumbers.E164)
		for _, v := range variants(num, region) {
			tries++
			got := m.Decide(&matcher.Query{To: v.to, Account: "home-" + v.home})
			if got.Action == matcher.Allow && got.E164() == e164 {
				t.Errorf("%s %s: %q from home-%s allowed (%s)", what, e164, v.to, v.home, got.RuleString())
			}
		}
	}

	shipped := compile(policy.Operator{})
	for _, r := range sortedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST} {
			if num := phonenumbers.GetExampleNumberForType(r, typ); num != nil {
				attack(shipped, r+" premium/shared", num, r)
			}
		}
	}
	for _, cc := range []int{870, 881, 882, 883, 979} {
		attack(shipped, "non-geographic", phonenumbers.GetExampleNumberForNonGeoEntity(cc), "001")
	}
	n := tries

	withDenies := compile(applied)
	for cc := range applied.DisabledCountries {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.PREMIUM_RATE,
			phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL} {
			num := phonenumbers.GetExampleNumberForType(cc, typ)
			if num == nil || phonenumbers.GetRegionCodeForNumber(num) != cc {
				continue
			}
			attack(withDenies, cc+" denied", num, cc)
		}
	}
	t.Logf("%d dialling variants of high-risk examples and %d of denied countries' examples: none allowed", n, tries-n)
	if n < 3000 || tries-n < 500 {
		t.Errorf("too few variants tried: %d, %d", n, tries-n)
	}
}
