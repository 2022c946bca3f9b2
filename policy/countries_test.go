package policy

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// iso3166 is every officially assigned ISO 3166-1 alpha-2 code (249), kept
// here independently of data/countries.csv so a dropped or mistyped row fails.
var iso3166 = strings.Fields(strings.Join([]string{
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE",
	"BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD",
	"CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM",
	"DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF",
	"GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU",
	"ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN",
	"KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME",
	"MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA",
	"NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM",
	"PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI",
	"SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK",
	"TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI",
	"VN VU WF WS YE YT ZA ZM ZW",
}, " "))

// extraCodes are the rows that are not ISO 3166-1 assignments: the regions
// libphonenumber supports outside ISO (Kosovo, Ascension, Tristan da Cunha)
// and the non-geographic networks.
var extraCodes = []string{NonGeographic, "AC", "TA", "XK"}

func TestEmbeddedCountriesParse(t *testing.T) {
	if _, err := parseCountries(countriesCSV); err != nil {
		t.Fatalf("shipped data/countries.csv does not parse: %v", err)
	}
}

func TestCountryTableIsExactlyISOPlusExtras(t *testing.T) {
	if len(iso3166) != 249 {
		t.Fatalf("test list has %d ISO codes, want 249", len(iso3166))
	}
	want := append(slices.Clone(iso3166), extraCodes...)
	sort.Strings(want)
	var got []string
	for _, c := range Countries() {
		got = append(got, c.Code)
	}
	if !slices.Equal(got, want) {
		for _, c := range want {
			if !slices.Contains(got, c) {
				t.Errorf("missing row %s", c)
			}
		}
		for _, c := range got {
			if !slices.Contains(want, c) {
				t.Errorf("unexpected row %s", c)
			}
		}
		t.Fatalf("got %d rows, want %d (249 ISO + %v)", len(got), len(want), extraCodes)
	}
}

func TestCountriesSortedAndCopied(t *testing.T) {
	a := Countries()
	if !sort.SliceIsSorted(a, func(i, j int) bool { return a[i].Code < a[j].Code }) {
		t.Error("Countries() not sorted by code")
	}
	a[0].Name = "changed"
	if Countries()[0].Name == "changed" {
		t.Error("Countries() returned the table itself, not a copy")
	}
}

func TestEveryLibphonenumberRegionIsACountry(t *testing.T) {
	for region := range phonenumbers.GetSupportedRegions() {
		c, ok := LookupCountry(region)
		if !ok {
			t.Errorf("libphonenumber region %s has no row", region)
			continue
		}
		if want := phonenumbers.GetCountryCodeForRegion(region); c.CallingCode != want {
			t.Errorf("%s calling_code = %d, libphonenumber says %d", region, c.CallingCode, want)
		}
	}
}

func TestCallingCodesAgreeWithLibphonenumber(t *testing.T) {
	// Rows libphonenumber does not know (AQ, BV, ... and 001) must say 0.
	for _, c := range Countries() {
		if want := phonenumbers.GetCountryCodeForRegion(c.Code); c.CallingCode != want {
			t.Errorf("%s calling_code = %d, libphonenumber says %d", c.Code, c.CallingCode, want)
		}
	}
}

func TestEveryRowValid(t *testing.T) {
	conts := Continents()
	regs := Regions()
	for _, c := range Countries() {
		if c.Name == "" {
			t.Errorf("%s: empty name", c.Code)
		}
		if c.Code == NonGeographic {
			if c.Continent != "" || c.Region != "international-networks" || c.CallingCode != 0 {
				t.Errorf("001 row = %+v", c)
			}
			continue
		}
		if !slices.Contains(conts, c.Continent) {
			t.Errorf("%s: continent %q not in %v", c.Code, c.Continent, conts)
		}
		if !slices.Contains(regs, c.Region) {
			t.Errorf("%s: region %q not in %v", c.Code, c.Region, regs)
		}
	}
}

func TestContinentsAndRegions(t *testing.T) {
	if got, want := strings.Join(Continents(), " "), "AF AN AS EU NA OC SA"; got != want {
		t.Errorf("Continents() = %s, want %s", got, want)
	}
	for _, c := range Continents() {
		if ContinentName(c) == "" {
			t.Errorf("continent %s has no name", c)
		}
	}
	if ContinentName("XX") != "" {
		t.Error("ContinentName(XX) not empty")
	}
	want := strings.Fields(`antarctica australia-and-new-zealand caribbean central-america
		central-asia eastern-africa eastern-asia eastern-europe melanesia micronesia
		middle-africa northern-africa northern-america northern-europe polynesia
		south-america south-eastern-asia southern-africa southern-asia southern-europe
		western-africa western-asia western-europe`)
	if got := Regions(); !slices.Equal(got, want) {
		t.Errorf("Regions() = %v, want %v", got, want)
	}
}

func TestLookupCountry(t *testing.T) {
	f := func(code, wantName, wantCont, wantRegion string, wantCC int) {
		t.Helper()
		c, ok := LookupCountry(code)
		if wantName == "" {
			if ok {
				t.Errorf("LookupCountry(%q) = %+v, want not found", code, c)
			}
			return
		}
		if !ok {
			t.Errorf("LookupCountry(%q) not found", code)
			return
		}
		if c.Code != code || c.Name != wantName || c.Continent != wantCont || c.Region != wantRegion || c.CallingCode != wantCC {
			t.Errorf("LookupCountry(%q) = %+v, want %s %s %s %d", code, c, wantName, wantCont, wantRegion, wantCC)
		}
	}
	f("US", "United States", "NA", "northern-america", 1)
	f("GB", "United Kingdom", "EU", "northern-europe", 44)
	f("JM", "Jamaica", "NA", "caribbean", 1)
	f("MX", "Mexico", "NA", "central-america", 52)
	f("PA", "Panama", "NA", "central-america", 507)
	f("BR", "Brazil", "SA", "south-america", 55)
	f("RU", "Russia", "EU", "eastern-europe", 7)
	f("KZ", "Kazakhstan", "AS", "central-asia", 7)
	f("TR", "Türkiye", "AS", "western-asia", 90)
	f("CY", "Cyprus", "AS", "western-asia", 357)
	f("GL", "Greenland", "NA", "northern-america", 299)
	f("EG", "Egypt", "AF", "northern-africa", 20)
	f("CI", "Côte d'Ivoire", "AF", "western-africa", 225)
	f("AU", "Australia", "OC", "australia-and-new-zealand", 61)
	f("AQ", "Antarctica", "AN", "antarctica", 0)
	f("XK", "Kosovo", "EU", "southern-europe", 383)
	f("AC", "Ascension Island", "AF", "western-africa", 247)
	f("TA", "Tristan da Cunha", "AF", "western-africa", 290)
	f("001", "International networks (non-geographic)", "", "international-networks", 0)
	f("us", "", "", "", 0) // exact, upper-case only
	f("UK", "", "", "", 0)
	f("", "", "", "", 0)
}

func TestCanonicalSelector(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := CanonicalSelector(in)
		if err != nil || got != want {
			t.Errorf("CanonicalSelector(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("US", "US")
	f("us", "US")
	f(" gb ", "GB")
	f("xk", "XK")
	f("NA", "NA") // Namibia: a bare code is always a country
	f("001", "001")
	f("continent:NA", "continent:NA")
	f("continent:na", "continent:NA")
	f("Continent: eu", "continent:EU")
	f("CONTINENT:an", "continent:AN")
	f("region:caribbean", "region:caribbean")
	f("REGION:Caribbean", "region:caribbean")
	f("region:South-Eastern-Asia", "region:south-eastern-asia")
	f("nanp", "nanp")
	f("NANP", "nanp")
}

func TestCanonicalSelectorErrors(t *testing.T) {
	f := func(in string, wantParts ...string) {
		t.Helper()
		got, err := CanonicalSelector(in)
		if err == nil {
			t.Errorf("CanonicalSelector(%q) = %q, want error", in, got)
			return
		}
		for _, p := range wantParts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("CanonicalSelector(%q) error %q does not mention %q", in, err, p)
			}
		}
	}
	f("XX", `unknown country code "XX"`)
	f("zz", `unknown country code "zz"`)
	f("EU", `unknown country code "EU"`, "continent:EU")
	f("oc", `unknown country code "oc"`, "continent:OC")
	f("AN", `unknown country code "AN"`, "continent:AN")
	f("UK", `unknown country code "UK"`, `"GB"`)
	f("USA", `unknown country code "USA"`, "two-letter")
	f("+1", "calling code", "nanp")
	f("44", "calling code")
	f("", "empty")
	f("   ", "empty")
	f("continent:XX", `unknown continent "XX"`, "AF, AN, AS, EU, NA, OC, SA")
	f("continent:north-america", `unknown continent "north-america"`)
	f("continent:", `unknown continent ""`)
	f("region:carribean", `unknown region "carribean"`, "caribbean", "western-europe")
	f("region:international-networks", `unknown region`, `"001"`)
	f("region:", `unknown region ""`)
	f("country:US", `unknown selector "country"`)
	f("nanpa", `unknown country code "nanpa"`)
}

func TestExpandSelector(t *testing.T) {
	f := func(sel, code string, want bool) {
		t.Helper()
		if got := slices.Contains(ExpandSelector(sel), code); got != want {
			t.Errorf("%s covers %s = %v, want %v", sel, code, got, want)
		}
	}
	for _, c := range []string{"US", "CA", "MX", "JM", "PA", "GL", "PR", "CU"} {
		f("continent:NA", c, true)
	}
	f("continent:NA", "NA", false) // Namibia
	f("continent:NA", "BR", false)
	f("continent:NA", NonGeographic, false)
	f("continent:SA", "BR", true)
	f("continent:EU", "RU", true)
	f("continent:EU", "TR", false)
	f("continent:AS", "TR", true)
	f("continent:AN", "AQ", true)
	f("region:caribbean", "JM", true)
	f("region:caribbean", "DO", true)
	f("region:caribbean", "CU", true)
	f("region:caribbean", "US", false)
	f("region:caribbean", "MX", false)
	f("region:central-america", "MX", true)
	f("region:western-africa", "AC", true)
	for _, c := range []string{"US", "CA", "JM", "PR", "DO", "BS", "GU", "VI", "SX"} {
		f("nanp", c, true)
	}
	f("nanp", "MX", false)
	f("nanp", "CU", false)
	f("nanp", "HT", false)
	f("US", "US", true)
	f("001", "001", true)
	f("us", "US", true) // non-canonical input is canonicalised first

	for _, bad := range []string{"XX", "continent:XX", "region:nowhere", ""} {
		if got := ExpandSelector(bad); got != nil {
			t.Errorf("ExpandSelector(%q) = %v, want nil", bad, got)
		}
	}
}

func TestExpandSelectorSortedCopies(t *testing.T) {
	sels := []string{NANP}
	for _, c := range Continents() {
		sels = append(sels, "continent:"+c)
	}
	for _, r := range Regions() {
		sels = append(sels, "region:"+r)
	}
	for _, s := range sels {
		got := ExpandSelector(s)
		if len(got) == 0 || !slices.IsSorted(got) {
			t.Errorf("ExpandSelector(%q) = %v, want non-empty and sorted", s, got)
		}
	}
	a := ExpandSelector("continent:NA")
	a[0] = "ZZ"
	if ExpandSelector("continent:NA")[0] == "ZZ" {
		t.Error("ExpandSelector returned shared storage")
	}
}

// TestRegionsPartitionCountries checks each geographic row is covered by
// exactly its own region and continent, so region and continent selectors
// never overlap or miss a country.
func TestRegionsPartitionCountries(t *testing.T) {
	seen := map[string]int{}
	for _, r := range Regions() {
		for _, c := range ExpandSelector("region:" + r) {
			seen[c]++
			if got, _ := LookupCountry(c); got.Region != r {
				t.Errorf("region:%s covers %s whose region is %s", r, c, got.Region)
			}
		}
	}
	total := 0
	for _, c := range Continents() {
		total += len(ExpandSelector("continent:" + c))
	}
	geo := len(Countries()) - 1 // all but 001
	if len(seen) != geo || total != geo {
		t.Errorf("regions cover %d codes, continents %d, want %d", len(seen), total, geo)
	}
	for c, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d regions", c, n)
		}
	}
}

func TestNANPMatchesLibphonenumber(t *testing.T) {
	want := slices.Clone(phonenumbers.GetRegionCodesForCountryCode(1))
	sort.Strings(want)
	if got := ExpandSelector(NANP); !slices.Equal(got, want) {
		t.Errorf("nanp = %v, libphonenumber +1 = %v", got, want)
	}
}

func TestParseCountriesRejectsMalformed(t *testing.T) {
	const hdr = "code,name,continent,region,calling_code\n"
	const nonGeo = "001,Intl,,international-networks,0\n"
	// minimal is the smallest valid table: one country per region.
	var b strings.Builder
	b.WriteString(hdr + nonGeo)
	i := 0
	for _, r := range Regions() {
		code := string(rune('A'+i/26)) + string(rune('A'+i%26))
		b.WriteString(code + ",Somewhere," + regionContinent[r] + "," + r + ",1\n")
		i++
	}
	minimal := b.String()
	if _, err := parseCountries([]byte(minimal)); err != nil {
		t.Fatalf("minimal table: %v", err)
	}
	f := func(name, csv, wantErr string) {
		t.Helper()
		_, err := parseCountries([]byte(csv))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, wantErr)
		}
	}
	f("empty file", "", "header")
	f("wrong header", "code,name\n", "header")
	f("no rows", hdr, "no rows")
	f("short row", minimal+"ZZ,Zed,EU\n", "wrong number of fields")
	f("bad calling code", minimal+"ZZ,Zed,EU,western-europe,x\n", "calling_code")
	f("negative calling code", minimal+"ZZ,Zed,EU,western-europe,-1\n", "calling_code")
	f("lower-case code", minimal+"zz,Zed,EU,western-europe,1\n", "two upper-case letters")
	f("three-letter code", minimal+"ZZZ,Zed,EU,western-europe,1\n", "two upper-case letters")
	f("duplicate", minimal+"AA,Again,EU,western-europe,1\n", "listed twice")
	f("unknown region", minimal+"ZZ,Zed,EU,west-europe,1\n", "unknown region")
	f("continent disagrees", minimal+"ZZ,Zed,AS,western-europe,1\n", "continent")
	f("empty name", minimal+"ZZ,,EU,western-europe,1\n", "empty name")
	f("no 001", strings.Replace(minimal, nonGeo, "", 1), "no 001")
	f("001 with continent", strings.Replace(minimal, nonGeo, "001,Intl,EU,international-networks,0\n", 1), "001")
	f("empty continent and region", strings.Replace(minimal, ",AN,antarctica,", ",OC,polynesia,", 1), "has no country")
}
