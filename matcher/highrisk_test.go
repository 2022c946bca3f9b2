package matcher_test

import (
	"bytes"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/cmd/genhighrisk/gen"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

func TestDefaultHighRiskParses(t *testing.T) {
	es, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 1000 {
		t.Fatalf("only %d entries", len(es))
	}
	v := matcher.DefaultHighRiskVersion()
	if err := gen.CheckVersion(v); err != nil {
		t.Errorf("shipped version: %v", err)
	}
	l, err := policy.ParseHighRiskList(bytes.NewReader(matcher.DefaultHighRiskCSV()))
	if err != nil || l.Meta.Generated != gen.Generated || l.Meta.Version != v {
		t.Errorf("provenance %+v, %v", l.Meta, err)
	}
	by := map[string]int{}
	for _, e := range es {
		by[e.Category]++
	}
	var counts []string
	for _, c := range policy.HighRiskCategories() {
		counts = append(counts, c+"="+strconv.Itoa(by[c]))
		if by[c] == 0 {
			t.Errorf("no %s entries", c)
		}
	}
	t.Logf("version %s: %d entries: %s", v, len(es), strings.Join(counts, " "))

	// Callers get their own copy.
	es[0].Prefix = "+0"
	if again, _ := matcher.DefaultHighRisk(); again[0].Prefix == "+0" {
		t.Error("DefaultHighRisk shares its slice")
	}
}

// The committed list must be exactly what the generator makes from its
// inputs, so a stale or hand-edited file fails CI.
func TestDefaultHighRiskUpToDate(t *testing.T) {
	f, err := os.Open("data/irsf_curated.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	curated, err := gen.ReadCurated(f)
	if err != nil {
		t.Fatal(err)
	}
	ranges, denies, err := gen.Split(curated)
	if err != nil {
		t.Fatal(err)
	}
	entries, rep, err := gen.Generate(ranges)
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "matcher/data/recommended_denies.csv", matcher.DefaultRecommendedDeniesCSV(), denies, gen.DeniesGenerated)
	for _, d := range rep.CuratedDropped {
		t.Errorf("curated entry adds nothing, remove it: %s", d)
	}
	checkGenerated(t, "matcher/data/highrisk.csv", matcher.DefaultHighRiskCSV(), entries, gen.Generated)
}

// checkGenerated fails unless committed is exactly what the generator
// writes for entries, under the committed file's own version.
func checkGenerated(t *testing.T, name string, committed []byte, entries []policy.HighRiskEntry, generated string) {
	t.Helper()
	var buf bytes.Buffer
	meta := policy.HighRiskMeta{Version: policy.HighRiskVersion(bytes.NewReader(committed)), Generated: generated}
	if err := gen.CheckVersion(meta.Version); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	if err := policy.WriteHighRiskList(&buf, policy.HighRiskList{Meta: meta, Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), committed) {
		got, want := strings.Split(buf.String(), "\n"), strings.Split(string(committed), "\n")
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Fatalf("%s is stale (line %d: generated %q, committed %q): run go run ./cmd/genhighrisk -version <new version>", name, i+1, got[i], want[i])
			}
		}
		t.Fatalf("%s is stale (%d generated lines, %d committed): run go run ./cmd/genhighrisk -version <new version>", name, len(got), len(want))
	}
}

func TestGenVersionMatchesGoMod(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "github.com/nyaruka/phonenumbers "+gen.LibphonenumberVersion+"\n") {
		t.Errorf("go.mod does not require phonenumbers %s: update gen.LibphonenumberVersion and regenerate", gen.LibphonenumberVersion)
	}
}

// covers reports the longest entry whose prefix starts e164 ("+digits").
func covers(es []policy.HighRiskEntry, e164 string) (policy.HighRiskEntry, bool) {
	var best policy.HighRiskEntry
	for _, e := range es {
		if strings.HasPrefix(e164, e.Prefix) && len(e.Prefix) > len(best.Prefix) {
			best = e
		}
	}
	return best, best.Prefix != ""
}

func sortedRegions() []string {
	var rs []string
	for r := range phonenumbers.GetSupportedRegions() {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return rs
}

// Every premium-rate and shared-cost example number libphonenumber ships is
// blocked, with the right category; so are the non-geographic examples of
// the codes on the list.
func TestDefaultHighRiskCoversExamples(t *testing.T) {
	es, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range sortedRegions() {
		for _, k := range []struct {
			typ phonenumbers.PhoneNumberType
			cat string
		}{{phonenumbers.PREMIUM_RATE, policy.CategoryPremiumRate}, {phonenumbers.SHARED_COST, policy.CategorySharedCost}} {
			num := phonenumbers.GetExampleNumberForType(r, k.typ)
			if num == nil {
				continue
			}
			n[k.cat]++
			e164 := phonenumbers.Format(num, phonenumbers.E164)
			e, ok := covers(es, e164)
			switch {
			case !ok:
				t.Errorf("%s %s example %s is not covered", r, k.cat, e164)
			case e.Category != k.cat:
				// A premium example inside a range with a more specific curated
				// category would be fine; a shared-cost one reported as premium
				// is not.
				t.Errorf("%s %s example %s matched %+v", r, k.cat, e164, e)
			}
		}
	}
	for _, ng := range gen.NonGeoCodes {
		num := phonenumbers.GetExampleNumberForNonGeoEntity(ng.Code)
		if num == nil {
			t.Errorf("no example for +%d", ng.Code)
			continue
		}
		n[ng.Category]++
		e164 := phonenumbers.Format(num, phonenumbers.E164)
		if e, ok := covers(es, e164); !ok || e.Category != ng.Category {
			t.Errorf("+%d example %s: %+v %v", ng.Code, e164, e, ok)
		}
	}
	for _, cc := range []int{800, 808} {
		num := phonenumbers.GetExampleNumberForNonGeoEntity(cc)
		if e, ok := covers(es, phonenumbers.Format(num, phonenumbers.E164)); ok {
			t.Errorf("+%d is on the list (%+v) but is documented as left off", cc, e)
		}
	}
	t.Logf("example numbers covered: %v", n)
}

// resolveCountries says which regions numplan resolves numbers under prefix
// to: the prefix is padded with each digit to every length up to 15, so both
// the shortest and the longest numbers of the range are tried.
func resolveCountries(plan *numplan.Plan, prefix string) map[string]bool {
	out := map[string]bool{}
	d := prefix[1:]
	for l := len(d); l <= policy.MaxPrefixLen; l++ {
		for pad := byte('0'); pad <= '9'; pad++ {
			b := []byte(d + strings.Repeat(string(pad), l-len(d)))
			res := plan.Resolve(b)
			switch res.Status {
			case numplan.OK:
				out[res.Region] = true
			case numplan.Ambiguous:
				if r := numplan.SlowRegion(b); r != "" {
					out[r] = true
				}
			}
		}
	}
	return out
}

// Every entry's country is where numplan sends every number under its
// prefix, and nowhere else: the country column is what the operator reads in
// a rejection's detail, so it must be the destination the matcher reports.
// There are no exceptions; docs/highrisk.md says how shared ranges get their
// country.
func TestDefaultHighRiskCountries(t *testing.T) {
	es, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	plan := numplan.Default()
	for _, e := range es {
		got := resolveCountries(plan, e.Prefix)
		if len(got) == 1 && got[e.Country] {
			continue
		}
		var rs []string
		for r := range got {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		t.Errorf("%s listed as %s (%s) resolves to %v", e.Prefix, e.Country, e.Source, rs)
	}
}

// The shipped list compiles into a snapshot and blocks through Decide: an
// account that does not opt in is refused premium-rate numbers with the
// list's category and source in the detail, and ordinary numbers pass.
func TestDefaultHighRiskDecide(t *testing.T) {
	es, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	plan := numplan.Default()
	snap, err := matcher.Compile(&policy.Set{HighRisk: es}, plan)
	if err != nil {
		t.Fatal(err)
	}
	m := matcher.New(plan, matcher.Options{})
	m.Swap(snap)
	for _, r := range sortedRegions() {
		num := phonenumbers.GetExampleNumberForType(r, phonenumbers.PREMIUM_RATE)
		if num == nil {
			continue
		}
		to := phonenumbers.Format(num, phonenumbers.E164)
		v := m.Decide(&matcher.Query{To: to, Account: "acme"})
		if v.Action != matcher.Reject || v.Reason != matcher.ReasonNumberBarred || !strings.HasPrefix(v.Detail, "premium_rate; ") {
			t.Errorf("%s premium example %s: %s %s %q", r, to, v.Action, v.Reason, v.Detail)
		}
	}
	for _, to := range []string{"+12015550123", "+442079460000", "+4930123456"} {
		if v := m.Decide(&matcher.Query{To: to, Account: "acme"}); v.Action != matcher.Allow {
			t.Errorf("%s: %s %s %q", to, v.Action, v.Reason, v.Detail)
		}
	}
}

// exampleShare decides every region's fixed-line and mobile example number
// (libphonenumber's metadata) for an account that allows every country and
// keeps high_risk at block, and returns how many were allowed and the
// refusals by reason and country.
func exampleShare(t *testing.T, m *matcher.Matcher) (allowed, total int, refused map[string][]string) {
	t.Helper()
	refused = map[string][]string{}
	for _, r := range sortedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE} {
			num := phonenumbers.GetExampleNumberForType(r, typ)
			if num == nil {
				continue
			}
			total++
			to := phonenumbers.Format(num, phonenumbers.E164)
			v := m.Decide(&matcher.Query{To: to, Account: "all"})
			if v.Action == matcher.Allow {
				allowed++
				continue
			}
			k := v.Reason.String()
			refused[k] = append(refused[k], r+" "+to)
		}
	}
	return allowed, total, refused
}

func allowAllMatcher(t *testing.T, hr []policy.HighRiskEntry, op policy.Operator) *matcher.Matcher {
	t.Helper()
	plan := numplan.Default()
	set := &policy.Set{Operator: op, HighRisk: hr, Accounts: map[string]policy.Account{
		"all": {Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Allow}, HighRisk: ptr(policy.HighRiskBlock)}},
	}}
	snap, err := matcher.Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	m := matcher.New(plan, matcher.Options{})
	m.Swap(snap)
	return m
}

func ptr[T any](v T) *T { return &v }

// Issue 11 item 14: the shipped list blocks premium and shared-cost ranges
// and named IRSF ranges, not whole countries. At least 99% of
// libphonenumber's fixed-line and mobile example numbers are allowed for an
// account that allows every country with high_risk=block, while every
// premium-rate example stays refused as number_barred.
func TestDefaultHighRiskSparesOrdinaryNumbers(t *testing.T) {
	es, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	m := allowAllMatcher(t, es, policy.Operator{})
	allowed, total, refused := exampleShare(t, m)
	share := float64(allowed) / float64(total)
	t.Logf("fixed-line and mobile examples allowed: %d of %d (%.2f%%)", allowed, total, 100*share)
	for reason, nums := range refused {
		t.Logf("refused %s: %d: %s", reason, len(nums), strings.Join(nums, ", "))
	}
	if share < 0.99 {
		t.Errorf("only %.2f%% of ordinary example numbers allowed with the shipped list, want at least 99%%", 100*share)
	}
	for _, r := range sortedRegions() {
		num := phonenumbers.GetExampleNumberForType(r, phonenumbers.PREMIUM_RATE)
		if num == nil {
			continue
		}
		to := phonenumbers.Format(num, phonenumbers.E164)
		if v := m.Decide(&matcher.Query{To: to, Account: "all"}); v.Reason != matcher.ReasonNumberBarred {
			t.Errorf("%s premium example %s: %s %s", r, to, v.Action, v.Reason)
		}
	}
}

// The recommended country denies: every row's prefix reaches its country
// and no other, every example number libphonenumber has for the country is
// under one of its rows (so the exported prefixes say what disabling the
// country covers), and once an operator disables the countries every such
// example is refused country_disabled, whatever the account allows.
func TestRecommendedDenies(t *testing.T) {
	l, err := matcher.DefaultRecommendedDenies()
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.CheckVersion(l.Meta.Version); err != nil || l.Meta.Generated != gen.DeniesGenerated {
		t.Errorf("provenance %+v: %v", l.Meta, err)
	}
	plan := numplan.Default()
	op := policy.Operator{DisabledCountries: map[string]policy.DisabledCountry{}}
	for _, e := range l.Entries {
		if got := resolveCountries(plan, e.Prefix); len(got) != 1 || !got[e.Country] {
			t.Errorf("%s listed as %s resolves to %v", e.Prefix, e.Country, got)
		}
		op.DisabledCountries[e.Country] = policy.DisabledCountry{Reason: "recommended deny"}
	}
	hr, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	m := allowAllMatcher(t, hr, op)
	n := 0
	for cc := range op.DisabledCountries {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
			phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
			phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL} {
			num := phonenumbers.GetExampleNumberForType(cc, typ)
			if num == nil || phonenumbers.GetRegionCodeForNumber(num) != cc {
				continue // e.g. +1 800 toll free, shared by every NANP country
			}
			to := phonenumbers.Format(num, phonenumbers.E164)
			if _, ok := covers(l.Entries, to); !ok {
				t.Errorf("%s example %s is under none of %s's rows", cc, to, cc)
			}
			if v := m.Decide(&matcher.Query{To: to, Account: "all"}); v.Reason != matcher.ReasonCountryDisabled {
				t.Errorf("%s example %s with the denies applied: %s %s", cc, to, v.Action, v.Reason)
			}
			n++
		}
	}
	t.Logf("%s: %d rows, %d countries, %d example numbers refused once applied", l.Meta.Version, len(l.Entries), len(op.DisabledCountries), n)
}
