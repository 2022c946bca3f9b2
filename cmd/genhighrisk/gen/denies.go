package gen

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// DeniesOutPath is the recommended country denies, written beside the
// high-risk list: the curated rows that name whole countries. They are not
// blocked by default (a whole country is too broad a default: issue 11
// item 14); an operator opts into them with one call.
const DeniesOutPath = "matcher/data/recommended_denies.csv"

// DeniesGenerated is the "# generated:" line of the recommended denies.
const DeniesGenerated = "by go run ./cmd/genhighrisk from " + CuratedPath + " (rows naming whole countries, checked against libphonenumber " + LibphonenumberVersion + ")"

// Split separates curated rows that name a whole country from rows that
// name a number range. A row names a whole country when its prefix is the
// calling code of a country that has the code to itself (+222 Mauritania),
// or when the country shares its calling code and its rows list exactly all
// the leading digits libphonenumber gives it (+1876 and +1658 Jamaica, +77
// Kazakhstan). Such rows go to the recommended country denies; every other
// row is a range and stays on the high-risk list (+4470 UK personal numbers,
// or +447624, one of the Isle of Man's four ranges).
//
// Refused: a row that covers several countries (a shared calling code
// whole, +1 or +7, or a prefix covering all of one country's leading digits
// and more, +18), and a NANP country named by some of its area codes but
// not all: an area code there is a numbering area of its own, so such rows
// are meant as the country, and the exported set must say honestly which
// prefixes the country has.
func Split(curated []policy.HighRiskEntry) (ranges, countries []policy.HighRiskEntry, err error) {
	type group struct {
		rows   []policy.HighRiskEntry
		listed map[string]bool
	}
	groups := map[string]*group{} // country -> rows equal to one of its leading digits
	for _, e := range curated {
		kind, national, err := classify(e)
		if err != nil {
			return nil, nil, err
		}
		switch kind {
		case kindRange:
			ranges = append(ranges, e)
		case kindCallingCode:
			countries = append(countries, e)
		case kindLeadingDigits:
			g := groups[e.Country]
			if g == nil {
				g = &group{listed: map[string]bool{}}
				groups[e.Country] = g
			}
			g.rows = append(g.rows, e)
			g.listed[national] = true
		}
	}
	for cc, g := range groups {
		lds, err := leadingDigits(cc)
		if err != nil {
			return nil, nil, err
		}
		var missing []string
		for _, ld := range lds {
			if !g.listed[ld] {
				missing = append(missing, fmt.Sprintf("+%d%s", regionCode(cc), ld))
			}
		}
		switch {
		case len(missing) == 0:
			countries = append(countries, g.rows...)
		case regionCode(cc) == 1:
			return nil, nil, fmt.Errorf("%s: %s is named by some of its NANP area codes, but %s is missing: list all of them", CuratedPath, cc, strings.Join(missing, " "))
		default:
			ranges = append(ranges, g.rows...)
		}
	}
	sortEntries(ranges)
	sortEntries(countries)
	return ranges, countries, nil
}

const (
	kindRange = iota
	kindCallingCode
	kindLeadingDigits
)

// classify says whether a curated row is the whole calling code of its
// country, exactly one of its country's leading digits (national is then
// those digits), or a range.
func classify(e policy.HighRiskEntry) (kind int, national string, err error) {
	cc := callingCode(e.Prefix)
	if cc == 0 {
		return 0, "", fmt.Errorf("%s: %s is under no calling code", CuratedPath, e.Prefix)
	}
	ccs := strconv.Itoa(cc)
	national = e.Prefix[1+len(ccs):]
	regions := phonenumbers.GetRegionCodesForCountryCode(cc)
	if national == "" {
		if len(regions) != 1 {
			return 0, "", fmt.Errorf("%s: %s is the calling code of %s, several countries: name ranges or countries instead", CuratedPath, e.Prefix, strings.Join(regions, " "))
		}
		if regions[0] != e.Country {
			return 0, "", fmt.Errorf("%s: %s is %s, listed as %s", CuratedPath, e.Prefix, regions[0], e.Country)
		}
		return kindCallingCode, "", nil
	}
	if len(regions) < 2 {
		return kindRange, "", nil
	}
	for _, r := range regions {
		lds, err := leadingDigits(r)
		if err != nil {
			return 0, "", err
		}
		all := len(lds) > 0
		for _, ld := range lds {
			if ld == national {
				if r != e.Country {
					return 0, "", fmt.Errorf("%s: %s is %s's, listed as %s", CuratedPath, e.Prefix, r, e.Country)
				}
				return kindLeadingDigits, national, nil
			}
			all = all && strings.HasPrefix(ld, national)
		}
		if all {
			return 0, "", fmt.Errorf("%s: %s covers all of %s and more: name the countries instead", CuratedPath, e.Prefix, r)
		}
	}
	return kindRange, "", nil
}

func regionCode(region string) int {
	return phonenumbers.GetCountryCodeForRegion(region)
}

// leadingDigits expands a region's libphonenumber leading digits into the
// national prefixes they denote, nil if the region has none.
func leadingDigits(region string) ([]string, error) {
	mc, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, err
	}
	var md *phonenumbers.PhoneMetadata
	for _, m := range mc.GetMetadata() {
		if m.GetId() == region {
			md = m
			break
		}
	}
	if md == nil {
		return nil, fmt.Errorf("libphonenumber has no region %s", region)
	}
	if md.GetLeadingDigits() == "" {
		return nil, nil
	}
	return numplan.ExpandPrefixes(md.GetLeadingDigits(), policy.MaxPrefixLen)
}

// Countries lists the distinct countries of the recommended denies, sorted.
func Countries(denies []policy.HighRiskEntry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range denies {
		if !seen[e.Country] {
			seen[e.Country] = true
			out = append(out, e.Country)
		}
	}
	sort.Strings(out)
	return out
}
