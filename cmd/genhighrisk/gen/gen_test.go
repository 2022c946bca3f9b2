package gen

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"2026.11.22-1":  true,
		"2026.11.22-12": true,
		"2026.02.30-1":  false, // no such date
		"2026.11.22":    false,
		"2026.11.22-0":  false,
		"2026-11-22-1":  false,
		"26.11.22-1":    false,
		"":              false,
	} {
		if err := CheckVersion(v); (err == nil) != ok {
			t.Errorf("CheckVersion(%q) = %v", v, err)
		}
	}
}

func e(p, cc, cat, src string) policy.HighRiskEntry {
	return policy.HighRiskEntry{Prefix: p, Country: cc, Category: cat, Source: src}
}

func TestDropCovered(t *testing.T) {
	in := []policy.HighRiskEntry{
		e("+4490", "GB", "premium_rate", "a"),
		e("+44900", "GB", "premium_rate", "b"),   // same category under +4490: dropped
		e("+449006", "JE", "irsf", "c"),          // different category: kept
		e("+4490061", "JE", "premium_rate", "d"), // nearest ancestor is irsf: kept
		e("+4491", "GB", "shared_cost", "e"),
	}
	got, n := dropCovered(append([]policy.HighRiskEntry(nil), in...))
	want := []policy.HighRiskEntry{in[0], in[2], in[3], in[4]}
	if n != 1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("dropped %d, got %v", n, got)
	}
}

func TestMergeSiblings(t *testing.T) {
	var in []policy.HighRiskEntry
	for d := '0'; d <= '9'; d++ {
		in = append(in, e("+24090"+string(d), "GQ", "premium_rate", "s"))
	}
	in = append(in, e("+2409110", "GQ", "premium_rate", "s"))
	got, n := mergeSiblings(in)
	if n != 1 || len(got) != 2 || got[0].Prefix != "+24090" || got[1].Prefix != "+2409110" {
		t.Fatalf("merged %d: %v", n, got)
	}
	// A different source, category or country in one sibling stops the merge.
	in[3].Source = "other"
	if _, n := mergeSiblings(in); n != 0 {
		t.Errorf("merged siblings with different sources")
	}
	// Never into less than a calling code.
	var codes []policy.HighRiskEntry
	for d := '0'; d <= '9'; d++ {
		codes = append(codes, e("+88"+string(d), "001", "satellite", "s"))
	}
	if got, n := mergeSiblings(codes); n != 0 || len(got) != 10 {
		t.Errorf("merged calling codes into +88: %v", got)
	}
}

func TestGenerateCurated(t *testing.T) {
	curated := []policy.HighRiskEntry{
		e("+4490", "GB", "irsf", "dup of a libphonenumber premium range"),
		e("+4470", "GB", "irsf", "named range"),
		e("+44700", "GB", "irsf", "inside +4470, same category"),
	}
	es, rep, err := Generate(curated)
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]policy.HighRiskEntry{}
	for i, x := range es {
		idx[x.Prefix] = x
		if i > 0 && es[i-1].Prefix >= x.Prefix {
			t.Fatalf("not sorted at %d: %s %s", i, es[i-1].Prefix, x.Prefix)
		}
	}
	if got := idx["+4490"]; got.Category != policy.CategoryPremiumRate || !strings.HasPrefix(got.Source, "libphonenumber "+LibphonenumberVersion) {
		t.Errorf("+4490 = %+v, want libphonenumber's premium_rate", got)
	}
	if len(rep.CuratedDropped) != 1 || !strings.HasPrefix(rep.CuratedDropped[0], "+4490 (irsf)") {
		t.Errorf("CuratedDropped = %q", rep.CuratedDropped)
	}
	if _, ok := idx["+44700"]; ok || idx["+4470"].Source != "named range" {
		t.Errorf("+4470/+44700: %+v %+v", idx["+4470"], idx["+44700"])
	}
	// Shared ranges name every claimant, main country first.
	if got := idx["+19002"]; got.Country != "US" || !strings.Contains(got.Source, "same range in AG ") {
		t.Errorf("+19002 = %+v", got)
	}
	for _, ng := range NonGeoCodes {
		if got := idx["+"+strconv.Itoa(ng.Code)]; got.Category != ng.Category || got.Country != policy.NonGeographic {
			t.Errorf("+%d = %+v", ng.Code, got)
		}
	}
	for _, p := range []string{"+800", "+808", "+878", "+888"} {
		for _, x := range es {
			if strings.HasPrefix(x.Prefix, p) {
				t.Errorf("%s is listed (%+v) but documented as left off", p, x)
			}
		}
	}
	// Same inputs, same output.
	again, _, err := Generate(curated)
	if err != nil || !reflect.DeepEqual(es, again) {
		t.Error("Generate is not deterministic")
	}
}
