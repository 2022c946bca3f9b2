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
	entries, rep, err := gen.Generate(curated)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.CuratedDropped {
		t.Errorf("curated entry adds nothing, remove it: %s", d)
	}
	var buf bytes.Buffer
	meta := policy.HighRiskMeta{Version: matcher.DefaultHighRiskVersion(), Generated: gen.Generated}
	if err := policy.WriteHighRiskList(&buf, policy.HighRiskList{Meta: meta, Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), matcher.DefaultHighRiskCSV()) {
		got, want := strings.Split(buf.String(), "\n"), strings.Split(string(matcher.DefaultHighRiskCSV()), "\n")
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Fatalf("matcher/data/highrisk.csv is stale (line %d: generated %q, committed %q): run go run ./cmd/genhighrisk -version <new version>", i+1, got[i], want[i])
			}
		}
		t.Fatalf("matcher/data/highrisk.csv is stale (%d generated lines, %d committed): run go run ./cmd/genhighrisk -version <new version>", len(got), len(want))
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
