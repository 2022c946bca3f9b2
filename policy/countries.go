package policy

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// NonGeographic is the code for destinations that belong to no country:
// international networks, satellite services, UIFN and the other global
// calling codes (+800, +808, +870, +878, +881, +882, +883, +888, +979).
// libphonenumber files them under the region "001", and they are a classic
// toll-fraud target, so an operator must be able to name them like a country.
const NonGeographic = "001"

// Country is one destination an operator can permit, bar or disable.
//
// The table behind it (data/countries.csv) holds every ISO 3166-1 alpha-2
// code, the three regions libphonenumber supports outside ISO 3166-1 (XK
// Kosovo, AC Ascension Island and TA Tristan da Cunha, so that every region a
// dialled number can resolve to is a country here) and NonGeographic.
//
// Continent follows the seven-continent model (AF AN AS EU NA OC SA) derived
// from the UN M49 sub-region rather than chosen per country, so the grouping
// is predictable and documented elsewhere: the Caribbean and Central America
// are NA; Russia is EU (M49 Eastern Europe); Turkey, Cyprus and the Caucasus
// are AS (M49 Western Asia); Greenland and Saint Pierre and Miquelon are NA;
// Bouvet Island and South Georgia are SA, the British Indian Ocean Territory
// and the French Southern Territories AF, as M49 places them. Kosovo (not in
// M49) is Southern Europe like its neighbours; Taiwan is Eastern Asia.
// NonGeographic has no continent.
//
// Region is the M49 sub-region as a lowercase slug, using the intermediate
// regions where M49 has them (caribbean, central-america, south-america and
// the four sub-Saharan African regions), plus "antarctica".
//
// CallingCode is the country calling code libphonenumber gives the region,
// 0 where it has none (Antarctica, Bouvet Island, Pitcairn, NonGeographic...).
type Country struct {
	Code, Name, Continent, Region string
	CallingCode                   int
}

// Selector prefixes of countries.except entries.
const (
	continentSel = "continent:"
	regionSel    = "region:"
)

// NANP is the selector for every region sharing calling code +1, because
// fraud and pricing treat the North American Numbering Plan as one block
// while it spans a dozen sovereign countries and many territories.
const NANP = "nanp"

var continentNames = map[string]string{
	"AF": "Africa",
	"AN": "Antarctica",
	"AS": "Asia",
	"EU": "Europe",
	"NA": "North America",
	"OC": "Oceania",
	"SA": "South America",
}

// regionContinent lists the valid region slugs and the continent each lies
// in; the loader checks every row against it.
var regionContinent = map[string]string{
	"northern-africa":           "AF",
	"eastern-africa":            "AF",
	"middle-africa":             "AF",
	"southern-africa":           "AF",
	"western-africa":            "AF",
	"caribbean":                 "NA",
	"central-america":           "NA",
	"south-america":             "SA",
	"northern-america":          "NA",
	"central-asia":              "AS",
	"eastern-asia":              "AS",
	"south-eastern-asia":        "AS",
	"southern-asia":             "AS",
	"western-asia":              "AS",
	"eastern-europe":            "EU",
	"northern-europe":           "EU",
	"southern-europe":           "EU",
	"western-europe":            "EU",
	"australia-and-new-zealand": "OC",
	"melanesia":                 "OC",
	"micronesia":                "OC",
	"polynesia":                 "OC",
	"antarctica":                "AN",
}

// nonGeoRegion is the region column of the NonGeographic row. It is not a
// selector: "001" already names it.
const nonGeoRegion = "international-networks"

// codeHints explain country codes people write that ISO 3166-1 does not
// assign (or that name a continent, not a country).
var codeHints = map[string]string{
	"UK": `the United Kingdom is "GB"`,
	"EL": `Greece is "GR"`,
	"AN": `the Netherlands Antilles were split into "BQ", "CW" and "SX"; Antarctica the continent is "continent:AN", the territory "AQ"`,
	"EU": `continents are written "continent:EU"`,
	"OC": `continents are written "continent:OC"`,
}

//go:embed data/countries.csv
var countriesCSV []byte

// table is the parsed embedded CSV; built once at init and never modified.
type table struct {
	rows        []Country // sorted by code
	byCode      map[string]int
	byContinent map[string][]string
	byRegion    map[string][]string
	nanp        []string
}

// countries panics at init if the embedded CSV is malformed. That cannot reach
// users: the file is compiled in, and TestEmbeddedCountriesParse fails on the
// same input, so a broken file never passes CI.
var countries = mustParse(countriesCSV)

func mustParse(b []byte) *table {
	t, err := parseCountries(b)
	if err != nil {
		panic("policy: embedded data/countries.csv: " + err.Error())
	}
	return t
}

// parseCountries reads and checks the country table: the exact header, five
// fields per row, unique well-formed codes, known continents and regions that
// agree with each other, and a non-negative calling code.
func parseCountries(b []byte) (*table, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 5
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	if strings.Join(header, ",") != "code,name,continent,region,calling_code" {
		return nil, fmt.Errorf("header is %q, want code,name,continent,region,calling_code", strings.Join(header, ","))
	}
	t := &table{
		byCode:      map[string]int{},
		byContinent: map[string][]string{},
		byRegion:    map[string][]string{},
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := r.FieldPos(0)
		c := Country{Code: rec[0], Name: rec[1], Continent: rec[2], Region: rec[3]}
		if c.CallingCode, err = strconv.Atoi(rec[4]); err != nil || c.CallingCode < 0 || c.CallingCode > 999 {
			return nil, fmt.Errorf("line %d: calling_code %q is not a number 0..999", line, rec[4])
		}
		if c.Name == "" {
			return nil, fmt.Errorf("line %d: empty name", line)
		}
		if _, dup := t.byCode[c.Code]; dup {
			return nil, fmt.Errorf("line %d: code %q listed twice", line, c.Code)
		}
		if c.Code == NonGeographic {
			if c.Continent != "" || c.Region != nonGeoRegion {
				return nil, fmt.Errorf("line %d: %s must have no continent and region %s", line, NonGeographic, nonGeoRegion)
			}
		} else {
			if !isUpperAlpha2(c.Code) {
				return nil, fmt.Errorf("line %d: code %q is not two upper-case letters", line, c.Code)
			}
			want, ok := regionContinent[c.Region]
			if !ok {
				return nil, fmt.Errorf("line %d: %s: unknown region %q", line, c.Code, c.Region)
			}
			if c.Continent != want {
				return nil, fmt.Errorf("line %d: %s: continent %q, but region %s is in %s", line, c.Code, c.Continent, c.Region, want)
			}
			t.byContinent[c.Continent] = append(t.byContinent[c.Continent], c.Code)
			t.byRegion[c.Region] = append(t.byRegion[c.Region], c.Code)
			if c.CallingCode == 1 {
				t.nanp = append(t.nanp, c.Code)
			}
		}
		t.byCode[c.Code] = len(t.rows)
		t.rows = append(t.rows, c)
	}
	if len(t.rows) == 0 {
		return nil, errors.New("no rows")
	}
	if _, ok := t.byCode[NonGeographic]; !ok {
		return nil, fmt.Errorf("no %s row", NonGeographic)
	}
	for cont := range continentNames {
		if len(t.byContinent[cont]) == 0 {
			return nil, fmt.Errorf("continent %s has no country", cont)
		}
	}
	for reg := range regionContinent {
		if len(t.byRegion[reg]) == 0 {
			return nil, fmt.Errorf("region %s has no country", reg)
		}
	}
	sort.Slice(t.rows, func(i, j int) bool { return t.rows[i].Code < t.rows[j].Code })
	for i, c := range t.rows {
		t.byCode[c.Code] = i
	}
	for _, l := range t.byContinent {
		sort.Strings(l)
	}
	for _, l := range t.byRegion {
		sort.Strings(l)
	}
	sort.Strings(t.nanp)
	return t, nil
}

func isUpperAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// LookupCountry finds a destination by its exact, upper-case code (callers
// canonicalise first, so a lookup on the hot path costs one map access).
// NonGeographic is found too; callers that need a real country must exclude
// it themselves.
func LookupCountry(code string) (Country, bool) {
	i, ok := countries.byCode[code]
	if !ok {
		return Country{}, false
	}
	return countries.rows[i], true
}

// Countries lists every destination, sorted by code ("001" first), for admin
// listings and for compiling per-country tables. The slice is a copy the
// caller may keep or modify.
func Countries() []Country {
	return append([]Country(nil), countries.rows...)
}

// Continents lists the continent codes a "continent:" selector accepts, sorted,
// so an admin API or UI can offer exactly what validation will accept.
// ContinentName gives each one's English name.
func Continents() []string {
	out := make([]string, 0, len(continentNames))
	for c := range continentNames {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// ContinentName is the English name of a continent code ("NA" -> "North
// America"), or "" for an unknown code, for listings where a bare "NA" would
// be mistaken for Namibia.
func ContinentName(code string) string {
	return continentNames[code]
}

// Regions lists the region slugs a "region:" selector accepts, sorted, so an
// admin API or UI can offer exactly what validation will accept.
func Regions() []string {
	out := make([]string, 0, len(regionContinent))
	for r := range regionContinent {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// CanonicalSelector validates one countries.except entry and returns its
// canonical spelling, so stored policies compare equal however the operator
// typed them and a typo is refused when saved rather than silently matching
// nothing at call time. Accepted, in any case and with surrounding spaces:
//
//	an ISO 3166-1 alpha-2 code (or XK, AC, TA)  "us"            -> "US"
//	non-geographic networks                     "001"           -> "001"
//	a continent                                 "continent:na"  -> "continent:NA"
//	a UN M49 region                             "region:Caribbean" -> "region:caribbean"
//	the North American Numbering Plan           "NANP"          -> "nanp"
//
// Beware that AF, AS, NA and SA are both continent and country codes; a bare
// "NA" is Namibia, as ISO says.
func CanonicalSelector(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", errors.New("empty entry")
	}
	if kind, val, ok := strings.Cut(in, ":"); ok {
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(kind)) {
		case "continent":
			up := strings.ToUpper(val)
			if _, ok := continentNames[up]; !ok {
				return "", fmt.Errorf("unknown continent %q in %q (valid: %s)", val, s, strings.Join(Continents(), ", "))
			}
			return continentSel + up, nil
		case "region":
			low := strings.ToLower(val)
			if _, ok := regionContinent[low]; ok {
				return regionSel + low, nil
			}
			if low == nonGeoRegion {
				return "", fmt.Errorf("unknown region %q in %q: international networks are written %q", val, s, NonGeographic)
			}
			return "", fmt.Errorf("unknown region %q in %q (valid: %s)", val, s, strings.Join(Regions(), ", "))
		default:
			return "", fmt.Errorf("unknown selector %q in %q: write an ISO country code, %q, continent:<code>, region:<name> or %s", kind, s, NonGeographic, NANP)
		}
	}
	if strings.EqualFold(in, NANP) {
		return NANP, nil
	}
	if in == NonGeographic {
		return NonGeographic, nil
	}
	up := strings.ToUpper(in)
	if isUpperAlpha2(up) {
		if _, ok := countries.byCode[up]; ok {
			return up, nil
		}
		if hint, ok := codeHints[up]; ok {
			return "", fmt.Errorf("unknown country code %q: %s", in, hint)
		}
		return "", fmt.Errorf("unknown country code %q", in)
	}
	if strings.Trim(in, "+0123456789") == "" {
		return "", fmt.Errorf("%q looks like a calling code or number: countries are ISO codes (\"US\", or %s for all of +1); use allow_prefixes/block_prefixes for number ranges", in, NANP)
	}
	return "", fmt.Errorf("unknown country code %q: want a two-letter ISO 3166 code, %q, continent:<code>, region:<name> or %s", in, NonGeographic, NANP)
}

// ExpandSelector resolves a selector into the sorted codes it covers, so the
// matcher can compile an account's rule into a per-country table once instead
// of interpreting selectors per call. A country code or "001" covers itself.
// Non-canonical spellings are accepted; an invalid selector covers nothing
// (nil), which is why policies are validated before they are compiled. The
// slice is a copy the caller may keep or modify.
func ExpandSelector(sel string) []string {
	canon, err := CanonicalSelector(sel)
	if err != nil {
		return nil
	}
	switch {
	case canon == NANP:
		return append([]string(nil), countries.nanp...)
	case strings.HasPrefix(canon, continentSel):
		return append([]string(nil), countries.byContinent[canon[len(continentSel):]]...)
	case strings.HasPrefix(canon, regionSel):
		return append([]string(nil), countries.byRegion[canon[len(regionSel):]]...)
	default:
		return []string{canon}
	}
}
