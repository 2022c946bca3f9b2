// Package gen builds tollgate's default high-risk prefix list from public
// data. It is a library rather than part of the genhighrisk command so that
// the matcher's tests can regenerate the list in memory and fail when the
// committed matcher/data/highrisk.csv no longer matches its inputs.
//
// docs/highrisk.md describes the sources and every rule applied here.
package gen

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// LibphonenumberVersion is the phonenumbers module the list is generated
// from, written into every libphonenumber-derived source column. A test
// compares it with go.mod, so upgrading the module without regenerating (and
// renaming the sources) fails CI instead of shipping sources that lie.
const LibphonenumberVersion = "v1.8.1"

// Paths relative to the repository root, where go run ./cmd/genhighrisk is
// meant to be run from.
const (
	OutPath     = "matcher/data/highrisk.csv"
	CuratedPath = "matcher/data/irsf_curated.csv"
)

// Generated is the "# generated:" line of the shipped list: what made it,
// from which inputs, so a reader of an exported copy can reproduce it.
const Generated = "by go run ./cmd/genhighrisk from libphonenumber " + LibphonenumberVersion + " and " + CuratedPath

// NonGeo is a non-geographic (+8xx/+9xx, region "001") calling code that goes
// on the list whole. The whole code, not libphonenumber's currently assigned
// ranges within it, because every number under it is the same kind of
// service by ITU-T definition, and an unassigned range that a carrier still
// routes is no cheaper.
type NonGeo struct {
	Code     int
	Category string
	Service  string // what the ITU assigned the code to, for the source column
}

// NonGeoCodes are the non-geographic codes on the list. Left out on purpose:
// +800 (UIFN international freephone) and +808 (ISCS international shared
// cost), because the called party pays all or part of the call and numbers
// are registered to identified businesses through the ITU, so they carry no
// revenue for a fraudster to share; +878 (Universal Personal
// Telecommunications) and +888 (OCHA humanitarian telecoms), because no
// public fraud guidance we found names them and blocking disaster-relief
// numbers by default does harm. Operators can add any of them.
var NonGeoCodes = []NonGeo{
	{870, policy.CategorySatellite, "Inmarsat"},
	{881, policy.CategorySatellite, "Global Mobile Satellite System (GMSS)"},
	{882, policy.CategoryInternationalNetwork, "International Networks"},
	{883, policy.CategoryInternationalNetwork, "International Networks"},
	{979, policy.CategoryInternationalPremium, "International Premium Rate Service (IPRS)"},
}

// precedence decides which category an exact duplicate prefix keeps: the
// national regulator's classification (through libphonenumber) and the ITU's
// code assignment come before curated guidance, which names places rather
// than services.
var precedence = map[string]int{
	policy.CategoryInternationalPremium: 0,
	policy.CategoryPremiumRate:          1,
	policy.CategorySatellite:            2,
	policy.CategoryInternationalNetwork: 3,
	policy.CategorySharedCost:           4,
	policy.CategoryIRSF:                 5,
}

// Report counts what each rule did, for the command's log and the docs.
type Report struct {
	PatternRegions  map[string]int // regions with a premium_rate / shared_cost pattern
	Candidates      int            // prefixes produced by every source before any rule
	LibPrefixes     int            // of which from libphonenumber patterns (after merging regions)
	SharedRanges    int            // libphonenumber prefixes claimed by more than one region
	DupDropped      int            // exact duplicates across sources/categories dropped
	CoveredDropped  int            // dropped because a shorter prefix of the same category covers them
	SiblingsMerged  int            // groups of ten sibling prefixes replaced by their parent
	CuratedDropped  []string       // curated rows that added nothing, with why
	ByCategory      map[string]int
	ByCategoryCount []string // "category=n", sorted, for logs
}

var versionRE = regexp.MustCompile(`^(\d{4}\.\d{2}\.\d{2})-([1-9]\d{0,3})$`)

// CheckVersion accepts the shipped list's version format, YYYY.MM.DD-n: the
// date the list was regenerated and a counter for several regenerations in
// one day. Dates sort, so "is this list newer" is a string comparison.
func CheckVersion(v string) error {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("version %q is not YYYY.MM.DD-n", v)
	}
	if _, err := time.Parse("2006.01.02", m[1]); err != nil {
		return fmt.Errorf("version %q: %q is not a date", v, m[1])
	}
	return nil
}

// ReadCurated parses the curated IRSF file with the same parser operators'
// uploads go through, so a bad curated row fails generation.
func ReadCurated(r io.Reader) ([]policy.HighRiskEntry, error) {
	l, err := policy.ParseHighRiskList(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CuratedPath, err)
	}
	return l.Entries, nil
}

type claim struct {
	prefix   string
	category string
	region   string
	source   string // set for non-libphonenumber claims
	lib      bool
}

// Generate builds the list from libphonenumber's metadata, NonGeoCodes and
// the curated ranges (the ranges Split returns; a row naming a whole country
// is refused), applying the documented rules:
//
//  1. Every region's premium-rate and shared-cost national-number pattern is
//     expanded into digit prefixes (numplan.ExpandPrefixes, exact) and
//     prefixed with the region's calling code.
//  2. A prefix several regions claim (shared calling codes: +1, +7, +39,
//     +44, +47, +61, +212, +358, +590...) becomes one entry whose country is
//     the first claimant in libphonenumber's region order for the code, the
//     region phonenumbers.GetRegionCodeForNumber returns for it; the source
//     names every claimant.
//  3. An exact duplicate across categories keeps the category first in
//     precedence (libphonenumber's and the ITU's classification before
//     curated guidance).
//  4. A prefix whose nearest shorter prefix on the list has the same
//     category is dropped: it adds nothing, the verdict and category are the
//     same. One with a different category stays, so the longest match
//     reports the more specific reason.
//  5. Ten sibling prefixes with the same category, country and source are
//     replaced by their parent, which covers exactly the same numbers.
//
// The result is sorted by prefix and does not depend on map order, so the
// output is byte-for-byte reproducible.
func Generate(curated []policy.HighRiskEntry) ([]policy.HighRiskEntry, Report, error) {
	rep := Report{ByCategory: map[string]int{}, PatternRegions: map[string]int{}}
	if _, countries, err := Split(curated); err != nil {
		return nil, rep, err
	} else if len(countries) > 0 {
		return nil, rep, fmt.Errorf("%s (%s) names a whole country: it belongs in the recommended country denies (Split), not on the high-risk list", countries[0].Prefix, countries[0].Country)
	}
	mc, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, rep, err
	}
	var claims []claim
	nongeo := map[int]bool{}
	for _, md := range mc.GetMetadata() {
		region := md.GetId()
		cc := int(md.GetCountryCode())
		if region == policy.NonGeographic {
			nongeo[cc] = true
			continue
		}
		for _, d := range []struct {
			desc     *phonenumbers.PhoneNumberDesc
			category string
		}{
			{md.GetPremiumRate(), policy.CategoryPremiumRate},
			{md.GetSharedCost(), policy.CategorySharedCost},
		} {
			pat := d.desc.GetNationalNumberPattern()
			if pat == "" || pat == "NA" {
				continue
			}
			rep.PatternRegions[d.category]++
			ccs := strconv.Itoa(cc)
			ps, err := numplan.ExpandPrefixes(pat, policy.MaxPrefixLen-len(ccs))
			if err != nil {
				return nil, rep, fmt.Errorf("%s %s pattern %q: %w", region, d.category, pat, err)
			}
			for _, p := range ps {
				if p == "" {
					return nil, rep, fmt.Errorf("%s %s pattern %q covers the whole calling code", region, d.category, pat)
				}
				claims = append(claims, claim{prefix: "+" + ccs + p, category: d.category, region: region, lib: true})
			}
		}
	}
	for _, ng := range NonGeoCodes {
		if !nongeo[ng.Code] {
			return nil, rep, fmt.Errorf("libphonenumber %s has no non-geographic entity +%d", LibphonenumberVersion, ng.Code)
		}
		claims = append(claims, claim{
			prefix:   "+" + strconv.Itoa(ng.Code),
			category: ng.Category,
			region:   policy.NonGeographic,
			source:   fmt.Sprintf("ITU-T E.164 +%d %s; non-geographic entity in libphonenumber %s", ng.Code, ng.Service, LibphonenumberVersion),
		})
	}
	for _, e := range curated {
		claims = append(claims, claim{prefix: e.Prefix, category: e.Category, region: e.Country, source: e.Source})
	}
	rep.Candidates = len(claims)

	// Rules 2 and 3: one entry per prefix.
	type group struct {
		category string
		regions  []string
		claim    claim
	}
	byPrefix := map[string]*group{}
	for _, c := range claims {
		g := byPrefix[c.prefix]
		switch {
		case g == nil:
			byPrefix[c.prefix] = &group{category: c.category, regions: []string{c.region}, claim: c}
		case g.category == c.category && g.claim.lib && c.lib:
			g.regions = append(g.regions, c.region)
		case precedence[c.category] < precedence[g.category] || (precedence[c.category] == precedence[g.category] && c.lib && !g.claim.lib):
			rep.DupDropped++
			if !g.claim.lib {
				rep.CuratedDropped = append(rep.CuratedDropped, fmt.Sprintf("%s (%s): same prefix is %s in libphonenumber", g.claim.prefix, g.category, c.category))
			}
			byPrefix[c.prefix] = &group{category: c.category, regions: []string{c.region}, claim: c}
		default:
			rep.DupDropped++
			if !c.lib {
				rep.CuratedDropped = append(rep.CuratedDropped, fmt.Sprintf("%s (%s): same prefix is already %s", c.prefix, c.category, g.category))
			}
		}
	}
	var entries []policy.HighRiskEntry
	for p, g := range byPrefix {
		e := policy.HighRiskEntry{Prefix: p, Category: g.category}
		if g.claim.lib {
			rep.LibPrefixes++
			regs := orderRegions(p, g.regions)
			if len(regs) > 1 {
				rep.SharedRanges++
			}
			e.Country = regs[0]
			e.Source = fmt.Sprintf("libphonenumber %s %s %s", LibphonenumberVersion, g.category, regs[0])
			if len(regs) > 1 {
				e.Source += "; same range in " + strings.Join(regs[1:], " ")
			}
		} else {
			e.Country, e.Source = g.claim.region, g.claim.source
		}
		entries = append(entries, e)
	}
	sortEntries(entries)

	// Rule 4, then rule 5, repeated until nothing changes: a merge can make
	// a parent that is itself covered, or complete a set of siblings.
	for {
		var dropped, merged int
		entries, dropped = dropCovered(entries)
		entries, merged = mergeSiblings(entries)
		rep.CoveredDropped += dropped
		rep.SiblingsMerged += merged
		if dropped == 0 && merged == 0 {
			break
		}
	}
	for _, e := range entries {
		rep.ByCategory[e.Category]++
	}
	for _, c := range policy.HighRiskCategories() {
		rep.ByCategoryCount = append(rep.ByCategoryCount, fmt.Sprintf("%s=%d", c, rep.ByCategory[c]))
	}
	sort.Strings(rep.CuratedDropped)
	return entries, rep, nil
}

// callingCode returns the calling code a "+digits" prefix starts with, 0 if
// none (no two calling codes are prefixes of each other).
func callingCode(prefix string) int {
	for l := 1; l <= 3 && l < len(prefix); l++ {
		cc, _ := strconv.Atoi(prefix[1 : 1+l])
		if len(phonenumbers.GetRegionCodesForCountryCode(cc)) > 0 {
			return cc
		}
	}
	return 0
}

// orderRegions sorts the regions claiming a prefix in libphonenumber's order
// for the calling code (main country first), which is the order
// GetRegionCodeForNumber tries them in.
func orderRegions(prefix string, regions []string) []string {
	order := map[string]int{}
	for i, r := range phonenumbers.GetRegionCodesForCountryCode(callingCode(prefix)) {
		order[r] = i
	}
	out := append([]string(nil), regions...)
	sort.SliceStable(out, func(i, j int) bool {
		oi, iok := order[out[i]]
		oj, jok := order[out[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return out[i] < out[j]
	})
	// A region claims a prefix once per category; dedupe defensively.
	uniq := out[:0]
	for i, r := range out {
		if i == 0 || r != out[i-1] {
			uniq = append(uniq, r)
		}
	}
	return uniq
}

func sortEntries(es []policy.HighRiskEntry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Prefix < es[j].Prefix })
}

// dropCovered applies rule 4 to a sorted list. A prefix sorts before all its
// extensions, so every entry's ancestors have been decided when it is seen.
func dropCovered(es []policy.HighRiskEntry) ([]policy.HighRiskEntry, int) {
	kept := map[string]string{} // prefix -> category
	out := es[:0]
	dropped := 0
	for _, e := range es {
		cat, covered := nearestAncestor(kept, e.Prefix)
		if covered && cat == e.Category {
			dropped++
			continue
		}
		kept[e.Prefix] = e.Category
		out = append(out, e)
	}
	return out, dropped
}

func nearestAncestor(kept map[string]string, p string) (string, bool) {
	for l := len(p) - 1; l >= 2; l-- {
		if c, ok := kept[p[:l]]; ok {
			return c, true
		}
	}
	return "", false
}

// mergeSiblings applies rule 5, deepest prefixes first so merges cascade. It
// never merges into less than a calling code: "+4" would be several
// countries.
func mergeSiblings(es []policy.HighRiskEntry) ([]policy.HighRiskEntry, int) {
	idx := map[string]policy.HighRiskEntry{}
	maxLen := 0
	for _, e := range es {
		idx[e.Prefix] = e
		if len(e.Prefix) > maxLen {
			maxLen = len(e.Prefix)
		}
	}
	merged := 0
	for l := maxLen; l > 2; l-- {
		parents := map[string]bool{}
		for p := range idx {
			if len(p) == l {
				parents[p[:l-1]] = true
			}
		}
		keys := make([]string, 0, len(parents))
		for p := range parents {
			keys = append(keys, p)
		}
		sort.Strings(keys)
		for _, parent := range keys {
			if _, ok := idx[parent]; ok {
				continue
			}
			if cc := callingCode(parent); cc == 0 || len(strconv.Itoa(cc)) >= len(parent) {
				continue
			}
			first, ok := idx[parent+"0"]
			if !ok {
				continue
			}
			all := true
			for d := byte('1'); d <= '9' && all; d++ {
				c, ok := idx[parent+string(d)]
				all = ok && c.Category == first.Category && c.Country == first.Country && c.Source == first.Source
			}
			if !all {
				continue
			}
			for d := byte('0'); d <= '9'; d++ {
				delete(idx, parent+string(d))
			}
			first.Prefix = parent
			idx[parent] = first
			merged++
		}
	}
	out := make([]policy.HighRiskEntry, 0, len(idx))
	for _, e := range idx {
		out = append(out, e)
	}
	sortEntries(out)
	return out, merged
}
