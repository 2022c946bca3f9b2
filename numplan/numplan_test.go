package numplan

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

var allTypes = []phonenumbers.PhoneNumberType{
	phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
	phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP,
	phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN,
	phonenumbers.VOICEMAIL,
}

// libRegion is the reference: libphonenumber's region for the E.164 digits,
// and whether the number is valid and round-trips to exactly these digits
// (so Parse did not reinterpret them, e.g. by stripping a trunk prefix).
func libRegion(digits string) (string, bool) {
	num, err := phonenumbers.Parse("+"+digits, "ZZ")
	if err != nil {
		return "", false
	}
	if phonenumbers.Format(num, phonenumbers.E164) != "+"+digits {
		return "", false
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return phonenumbers.GetRegionCodeForNumber(num), true
}

// fastRegion is what a caller does: Resolve, then SlowRegion if Ambiguous.
func fastRegion(p *Plan, digits string) (string, Resolution) {
	r := p.Resolve([]byte(digits))
	if r.Status == Ambiguous {
		return SlowRegion([]byte(digits)), r
	}
	return r.Region, r
}

func TestBuildStats(t *testing.T) {
	p := Default()
	st := p.Stats()
	t.Logf("stats: %+v", st)
	if st.AmbiguousLeaves != 0 || st.FallbackAmbig != 0 {
		t.Errorf("ambiguous leaves: %d (plus %d entries ambiguous only for invalid numbers); want 0", st.AmbiguousLeaves, st.FallbackAmbig)
	}
	if want := len(phonenumbers.GetSupportedCallingCodes()); st.Codes != want {
		t.Errorf("codes = %d, want %d", st.Codes, want)
	}
	if st.SharedCodes < 10 {
		t.Errorf("shared codes = %d, want at least 10", st.SharedCodes)
	}
}

func TestGoldenExampleNumbers(t *testing.T) {
	p := Default()
	n := 0
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range allTypes {
			num := phonenumbers.GetExampleNumberForType(region, typ)
			if num == nil {
				continue
			}
			e164 := phonenumbers.Format(num, phonenumbers.E164)[1:]
			want := phonenumbers.GetRegionCodeForNumber(num)
			got, res := fastRegion(p, e164)
			n++
			if got != want {
				t.Errorf("%s type %v: +%s resolved to %q (%v), libphonenumber says %q", region, typ, e164, got, res, want)
			}
			if want != "" && res.Status != OK && res.Status != Ambiguous {
				t.Errorf("%s type %v: +%s status %v", region, typ, e164, res.Status)
			}
			if cc := strconv.Itoa(int(num.GetCountryCode())); int(res.CCLen) != len(cc) {
				t.Errorf("+%s: CCLen %d, want %d", e164, res.CCLen, len(cc))
			}
		}
	}
	for code := range phonenumbers.GetSupportedGlobalNetworkCallingCodes() {
		num := phonenumbers.GetExampleNumberForNonGeoEntity(code)
		if num == nil {
			t.Errorf("no example for +%d", code)
			continue
		}
		e164 := phonenumbers.Format(num, phonenumbers.E164)[1:]
		got, res := fastRegion(p, e164)
		n++
		if want := phonenumbers.GetRegionCodeForNumber(num); got != want || want != "001" {
			t.Errorf("non-geo +%s resolved to %q (%v), libphonenumber says %q", e164, got, res, want)
		}
	}
	if n < 1000 {
		t.Errorf("only %d example numbers checked", n)
	}
	t.Logf("%d example numbers agree", n)
}

// sharedCodes returns every calling code owned by several regions.
func sharedCodes() []int {
	var out []int
	for c := range phonenumbers.GetSupportedCallingCodes() {
		if len(phonenumbers.GetRegionCodesForCountryCode(c)) > 1 {
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

func metadataFor(region string) *phonenumbers.PhoneMetadata {
	coll, _ := phonenumbers.MetadataCollection()
	for _, m := range coll.GetMetadata() {
		if m.GetId() == region {
			return m
		}
	}
	return nil
}

// sampler draws random strings of an exact length from a pattern's language.
type sampler struct {
	d    *dfa
	memo map[[2]int32]bool
}

func (s *sampler) canExact(st int32, r int) bool {
	if st == 0 {
		return false
	}
	if r == 0 {
		return s.d.accepts(st)
	}
	k := [2]int32{st, int32(r)}
	if v, ok := s.memo[k]; ok {
		return v
	}
	v := false
	for dg := 0; dg < 10 && !v; dg++ {
		v = s.canExact(s.d.step(st, dg), r-1)
	}
	s.memo[k] = v
	return v
}

func (s *sampler) sample(rng *rand.Rand, l int) (string, bool) {
	if !s.canExact(s.d.start, l) {
		return "", false
	}
	st := s.d.start
	buf := make([]byte, 0, l)
	for i := 0; i < l; i++ {
		var opts []int
		for dg := 0; dg < 10; dg++ {
			if s.canExact(s.d.step(st, dg), l-i-1) {
				opts = append(opts, dg)
			}
		}
		dg := opts[rng.IntN(len(opts))]
		buf = append(buf, byte('0'+dg))
		st = s.d.step(st, dg)
	}
	return string(buf), true
}

// TestRandomSharedCodes draws numbers under every shared code, both
// uniformly and from each region's own number-type patterns, and checks
// every one libphonenumber calls valid.
func TestRandomSharedCodes(t *testing.T) {
	p := Default()
	rng := rand.New(rand.NewPCG(1, 2))
	total := 0
	for _, code := range sharedCodes() {
		cc := strconv.Itoa(code)
		var lens []int
		var samplers []*sampler
		var sampleLens [][]int
		for _, r := range phonenumbers.GetRegionCodesForCountryCode(code) {
			md := metadataFor(r)
			for _, l := range md.GetGeneralDesc().GetPossibleLength() {
				lens = append(lens, int(l))
			}
			for _, d := range []*phonenumbers.PhoneNumberDesc{md.GetFixedLine(), md.GetMobile(), md.GetTollFree(),
				md.GetPremiumRate(), md.GetSharedCost(), md.GetVoip(), md.GetPersonalNumber(), md.GetPager(),
				md.GetUan(), md.GetVoicemail()} {
				if d == nil || d.GetNationalNumberPattern() == "" {
					continue
				}
				a, err := compileDFA(d.GetNationalNumberPattern())
				if err != nil {
					t.Fatal(err)
				}
				ls := []int{}
				for _, l := range d.GetPossibleLength() {
					if l > 0 {
						ls = append(ls, int(l))
					}
				}
				if len(d.GetPossibleLength()) == 0 {
					for _, l := range md.GetGeneralDesc().GetPossibleLength() {
						ls = append(ls, int(l))
					}
				}
				if len(ls) == 0 {
					continue
				}
				samplers = append(samplers, &sampler{d: a, memo: map[[2]int32]bool{}})
				sampleLens = append(sampleLens, ls)
			}
		}
		valid := 0
		check := func(digits string) {
			want, ok := libRegion(digits)
			if !ok {
				// Invalid numbers need no particular region, but must not
				// break anything.
				p.Resolve([]byte(digits))
				return
			}
			valid++
			got, res := fastRegion(p, digits)
			if got != want {
				t.Errorf("+%s resolved to %q (%v), libphonenumber says %q", digits, got, res, want)
			}
		}
		for i := 0; i < 3000; i++ {
			l := lens[rng.IntN(len(lens))]
			b := []byte(cc)
			for j := 0; j < l; j++ {
				b = append(b, byte('0'+rng.IntN(10)))
			}
			check(string(b))
		}
		for i := 0; i < 3000; i++ {
			k := rng.IntN(len(samplers))
			ls := sampleLens[k]
			if s, ok := samplers[k].sample(rng, ls[rng.IntN(len(ls))]); ok {
				check(cc + s)
			}
		}
		if valid < 300 {
			t.Errorf("+%d: only %d valid numbers drawn", code, valid)
		}
		total += valid
	}
	t.Logf("%d random valid numbers under shared codes agree", total)
}

func TestTraps(t *testing.T) {
	p := Default()
	cases := []struct {
		digits string
		region string
		ccLen  uint8
	}{
		{"18765230123", "JM", 1},
		{"18092345678", "DO", 1},
		{"18292345678", "DO", 1},
		{"18492345678", "DO", 1},
		{"12842291234", "VG", 1},
		{"14732691234", "GD", 1},
		{"16497121234", "TC", 1},
		{"17872345678", "PR", 1},
		{"19392345678", "PR", 1},
		{"13406421234", "VI", 1},
		{"16713001234", "GU", 1},
		{"16702345678", "MP", 1},
		{"16846221234", "AS", 1},
		{"12125550100", "US", 1},
		{"12015550123", "US", 1},
		{"14165550100", "CA", 1},
		{"15062345678", "CA", 1},
		{"77123456789", "KZ", 1},
		{"77710009998", "KZ", 1},
		{"74951234567", "RU", 1},
		{"79123456789", "RU", 1},
		{"441481256789", "GG", 2},
		{"441534456789", "JE", 2},
		{"441624756789", "IM", 2},
		{"442079460958", "GB", 2},
		{"441212345678", "GB", 2},
		{"4779123456", "SJ", 2},
		{"4721234567", "NO", 2},
		{"590590201234", "GP", 3},
		{"590590271234", "BL", 3},
		{"262262161234", "RE", 3},
		{"262269601234", "YT", 3},
		{"59994351234", "CW", 3},
		{"5997151234", "BQ", 3},
		{"29022158", "SH", 3},
		{"2908999", "TA", 3},
		{"358181234567", "AX", 3},
		{"358131234567", "FI", 3},
		{"390669812345", "VA", 2},
		{"390212345678", "IT", 2},
		{"61891621234", "CC", 2},
		{"61212345678", "AU", 2},
		{"80012345678", "001", 3},
		{"881612345678", "001", 3},
		{"8823421234", "001", 3},
		{"979123456789", "001", 3},
	}
	for _, c := range cases {
		got := p.Resolve([]byte(c.digits))
		if got.Status != OK || got.Region != c.region || got.CCLen != c.ccLen {
			t.Errorf("Resolve(%s) = %+v, want %s/%d OK", c.digits, got, c.region, c.ccLen)
		}
		if want, ok := libRegion(c.digits); !ok || want != c.region {
			t.Errorf("test case +%s: libphonenumber says %q valid=%v; fix the case", c.digits, want, ok)
		}
	}
	statusCases := []struct {
		digits string
		want   Resolution
	}{
		{"1", Resolution{CCLen: 1, Status: BadLength}},
		{"12", Resolution{CCLen: 1, Status: BadLength}},
		{"1212555010", Resolution{CCLen: 1, Status: BadLength}},   // 9 national digits
		{"121255501000", Resolution{CCLen: 1, Status: BadLength}}, // 11
		{"10125550100", Resolution{CCLen: 1, Status: NoRegion}},   // +1 0xx
		{"15555550100", Resolution{CCLen: 1, Status: NoRegion}},   // +1 555
		{"13702345678", Resolution{CCLen: 1, Status: NoRegion}},   // +1 370
		{"12121234567", Resolution{CCLen: 1, Status: NoRegion}},   // exchange 1xx
		{"447700900123", Resolution{CCLen: 2, Status: NoRegion}},  // Ofcom drama range
		{"4420794609", Resolution{CCLen: 2, Status: BadLength}},   // GB 8 digits
		{"99912345", Resolution{Status: UnknownCode}},
		{"28012345", Resolution{Status: UnknownCode}},
		{"0", Resolution{Status: UnknownCode}},
		{"", Resolution{Status: UnknownCode}},
		{"4", Resolution{Status: UnknownCode}},
		{"33", Resolution{CCLen: 2, Status: BadLength}},
		{"33123456789", Resolution{Region: "FR", CCLen: 2, Status: OK}},
		{"3312345678", Resolution{CCLen: 2, Status: BadLength}},
		{"800123456789012345678", Resolution{CCLen: 3, Status: BadLength}},
		{"1212x550100", Resolution{CCLen: 1, Status: BadLength}},
		{"4a", Resolution{Status: UnknownCode}},
	}
	for _, c := range statusCases {
		if got := p.Resolve([]byte(c.digits)); got != c.want {
			t.Errorf("Resolve(%q) = %+v, want %+v", c.digits, got, c.want)
		}
	}
}

func TestResolveZeroAlloc(t *testing.T) {
	p := Default()
	nums := [][]byte{[]byte("18765230123"), []byte("441481256789"), []byte("80012345678"), []byte("99912345"), []byte("1")}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, n := range nums {
			_ = p.Resolve(n)
		}
	})
	if allocs != 0 {
		t.Errorf("Resolve allocates %v times per run", allocs)
	}
	e := []byte("911")
	idd := []byte("01144")
	allocs = testing.AllocsPerRun(1000, func() {
		_ = p.IsEmergency("US", e)
		_ = p.MatchIDD("US", idd)
	})
	if allocs != 0 {
		t.Errorf("IsEmergency/MatchIDD allocate %v times per run", allocs)
	}
}

func TestIDD(t *testing.T) {
	p := Default()
	cases := []struct {
		region, digits string
		want           int
	}{
		{"US", "011442079460958", 3},
		{"US", "00442079460958", 0},
		{"CA", "0114420", 3},
		{"AU", "0011442079460958", 4},
		{"AU", "0014442079", 4},
		{"AU", "001", 0},
		{"GB", "0012125550100", 2},
		{"GB", "0112125550100", 0},
		{"JP", "0101212", 3},
		{"RU", "81044", 3},
		{"DE", "0044", 2},
		{"BR", "0021441234", 4},
		{"KR", "0070044", 5},
		{"SG", "0011", 3},
		{"XX", "0044", 0},
		{"GB", "0", 0},
	}
	for _, c := range cases {
		if got := p.MatchIDD(c.region, []byte(c.digits)); got != c.want {
			t.Errorf("MatchIDD(%s, %s) = %d, want %d", c.region, c.digits, got, c.want)
		}
	}
	wantIDD := map[string][]string{
		"US": {"011"},
		"GB": {"00"},
		"JP": {"010"},
		"RU": {"810"}, // preferred "8~10" with the wait mark stripped
		"UA": {"00"},
		"AU": {"0011", "0014", "0015", "0016", "0018", "0019"},
	}
	for r, want := range wantIDD {
		got := p.Region(r).IDD
		if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
			t.Errorf("%s IDD = %v, want prefix %v", r, got, want)
		}
	}
	// Every expanded prefix must be accepted by the region's own pattern.
	for _, r := range p.Regions() {
		info := p.Region(r)
		if info == nil {
			continue
		}
		d, err := compileDFA(metadataFor(r).GetInternationalPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, idd := range info.IDD {
			if !d.accepts(d.run(idd)) {
				t.Errorf("%s: IDD %q not matched by %q", r, idd, metadataFor(r).GetInternationalPrefix())
			}
		}
	}
}

func TestEmergency(t *testing.T) {
	p := Default()
	yes := map[string][]string{
		"US": {"911", "112"},
		"GB": {"999", "112"},
		"AU": {"000", "112"},
		"DE": {"112", "110"},
		"FR": {"112", "15", "17", "18"},
		"JP": {"110", "119"},
	}
	for r, nums := range yes {
		for _, n := range nums {
			if !p.IsEmergency(r, []byte(n)) {
				t.Errorf("IsEmergency(%s, %s) = false", r, n)
			}
		}
	}
	no := [][2]string{{"US", "9110"}, {"US", "91"}, {"US", "999"}, {"GB", "911"}, {"AU", "0000"}, {"XX", "112"}, {"US", ""}}
	for _, c := range no {
		if p.IsEmergency(c[0], []byte(c[1])) {
			t.Errorf("IsEmergency(%s, %s) = true", c[0], c[1])
		}
	}
	// Agreement with libphonenumber on every listed number and on every
	// short string of up to 3 digits.
	for _, r := range p.Regions() {
		info := p.Region(r)
		if info == nil {
			continue
		}
		for _, e := range info.Emergency {
			if !phonenumbers.IsEmergencyNumber(e, r) {
				t.Errorf("%s: %s listed but libphonenumber disagrees", r, e)
			}
		}
		for l := 1; l <= 3; l++ {
			lim := 1
			for i := 0; i < l; i++ {
				lim *= 10
			}
			for v := 0; v < lim; v++ {
				s := strconv.Itoa(v)
				for len(s) < l {
					s = "0" + s
				}
				if got, want := p.IsEmergency(r, []byte(s)), phonenumbers.IsEmergencyNumber(s, r); got != want {
					t.Errorf("IsEmergency(%s, %s) = %v, libphonenumber %v", r, s, got, want)
				}
			}
		}
	}
}

func TestExpandPrefixes(t *testing.T) {
	cases := []struct {
		pattern string
		depth   int
		want    []string
	}{
		{`(?:8(?:4[2-5]|7[0-3])|9(?:[01]\d|8[2-49]))\d{6}`, 8,
			[]string{"842", "843", "844", "845", "870", "871", "872", "873", "90", "91", "982", "983", "984", "989"}},
		{`\d{6}`, 5, []string{""}},
		{`\d{6,8}`, 5, []string{""}},
		{`1[2-4]\d{2}`, 5, []string{"12", "13", "14"}},
		{`(?:12|34)5\d`, 1, []string{"1", "3"}},
		{`(?:12|34)5\d`, 8, []string{"125", "345"}},
		{`80(?:0\d{6}|8\d{7})`, 8, []string{"800", "808"}},
		// depends on length: 1 then 7 digits, or 2 then 8 digits
		{`1\d{7}|2\d{8}`, 8, []string{"1", "2"}},
		// the second digit is free but the third is not
		{`1\d5`, 8, []string{"105", "115", "125", "135", "145", "155", "165", "175", "185", "195"}},
		{`(?:)`, 3, []string{""}},
		{`9\d*`, 3, []string{"9"}},
	}
	for _, c := range cases {
		got, err := ExpandPrefixes(c.pattern, c.depth)
		if err != nil {
			t.Errorf("ExpandPrefixes(%q): %v", c.pattern, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ExpandPrefixes(%q, %d) = %v, want %v", c.pattern, c.depth, got, c.want)
		}
	}
	if _, err := ExpandPrefixes(`1(2`, 3); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := ExpandPrefixes(`^12`, 3); err == nil {
		t.Error("anchored pattern accepted")
	}
	// On real metadata: every example number of every premium/toll-free desc
	// starts with one of its prefixes.
	coll, _ := phonenumbers.MetadataCollection()
	for _, md := range coll.GetMetadata() {
		for _, d := range []*phonenumbers.PhoneNumberDesc{md.GetPremiumRate(), md.GetTollFree(), md.GetMobile()} {
			if d == nil || d.GetNationalNumberPattern() == "" || d.GetExampleNumber() == "" {
				continue
			}
			ps, err := ExpandPrefixes(d.GetNationalNumberPattern(), 6)
			if err != nil {
				t.Fatalf("%s: %v", md.GetId(), err)
			}
			ex := d.GetExampleNumber()
			found := false
			for _, p := range ps {
				if len(p) <= len(ex) && ex[:len(p)] == p {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: example %s matches none of %v", md.GetId(), ex, ps)
			}
		}
	}
}

func TestWords(t *testing.T) {
	cases := []struct {
		pattern       string
		maxLen, limit int
		want          []string
	}{
		{`1(?:12|5)|999`, 8, 10, []string{"112", "15", "999"}},
		{`11[02]`, 8, 10, []string{"110", "112"}},
		{`00(?:1[245]|2[1-35])`, 8, 100, []string{"0012", "0014", "0015", "0021", "0022", "0023", "0025"}},
		{`9\d*`, 2, 100, []string{"9", "90", "91", "92", "93", "94", "95", "96", "97", "98", "99"}},
		{`12|1234`, 3, 10, []string{"12"}},
		{`(?:)`, 3, 10, []string{""}},
	}
	for _, c := range cases {
		got, err := Words(c.pattern, c.maxLen, c.limit)
		if err != nil {
			t.Errorf("Words(%q): %v", c.pattern, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Words(%q) = %v, want %v", c.pattern, got, c.want)
		}
	}
	if _, err := Words(`\d{3}`, 3, 999); !errors.Is(err, ErrTooManyWords) {
		t.Errorf("1000 words under a limit of 999: err = %v", err)
	}
	if ws, err := Words(`\d{3}`, 3, 1000); err != nil || len(ws) != 1000 {
		t.Errorf("1000 words under a limit of 1000: %d, %v", len(ws), err)
	}
	// A long language with no short words must not be walked exhaustively.
	if ws, err := Words(`\d{30}`, 25, 10); err != nil || len(ws) != 0 {
		t.Errorf(`Words(\d{30}, 25) = %v, %v`, ws, err)
	}
}

func TestNationalToE164(t *testing.T) {
	ok := []struct{ national, region, want string }{
		{"07700900123", "GB", "447700900123"},
		{"02079460958", "GB", "442079460958"},
		{"2125550100", "US", "12125550100"},
		{"12125550100", "US", "12125550100"},
		{"0612345678", "NL", "31612345678"},
		{"0212345678", "IT", "390212345678"},
		{"89123456789", "RU", "79123456789"},
	}
	for _, c := range ok {
		got, err := NationalToE164(c.national, c.region)
		if err != nil || got != c.want {
			t.Errorf("NationalToE164(%s, %s) = %q, %v; want %q", c.national, c.region, got, err, c.want)
		}
	}
	bad := [][2]string{{"12", "US"}, {"", "GB"}, {"abc", "GB"}, {"2125550100", "XX"}, {"0770090012345678", "GB"}}
	for _, c := range bad {
		if got, err := NationalToE164(c[0], c[1]); err == nil {
			t.Errorf("NationalToE164(%q, %s) = %q, want error", c[0], c[1], got)
		}
	}
}

func TestRegionFacts(t *testing.T) {
	p := Default()
	regs := p.Regions()
	if !sort.StringsAreSorted(regs) {
		t.Error("Regions not sorted")
	}
	if len(regs) != len(phonenumbers.GetSupportedRegions())+1 {
		t.Errorf("%d regions, want %d", len(regs), len(phonenumbers.GetSupportedRegions())+1)
	}
	if i := sort.SearchStrings(regs, "001"); i >= len(regs) || regs[i] != "001" {
		t.Error(`"001" missing`)
	}
	regs[0] = "mutated"
	if p.Regions()[0] == "mutated" {
		t.Error("Regions exposes internal state")
	}
	for r := range phonenumbers.GetSupportedRegions() {
		info := p.Region(r)
		if info == nil {
			t.Errorf("Region(%s) = nil", r)
			continue
		}
		if info.Code != r || info.CallingCode != phonenumbers.GetCountryCodeForRegion(r) || p.CallingCode(r) != info.CallingCode {
			t.Errorf("%s: %+v", r, info)
		}
		if info.MinLen < 1 || info.MaxLen < info.MinLen || info.MaxLen > maxNSN {
			t.Errorf("%s: lengths %d..%d", r, info.MinLen, info.MaxLen)
		}
		if info.NationalPrefix != phonenumbers.GetNddPrefixForRegion(r, false) {
			t.Errorf("%s: national prefix %q, libphonenumber %q", r, info.NationalPrefix, phonenumbers.GetNddPrefixForRegion(r, false))
		}
	}
	for _, c := range []struct {
		r        string
		cc       int
		np       string
		min, max int
	}{{"US", 1, "1", 10, 10}, {"GB", 44, "0", 7, 10}, {"DE", 49, "0", 4, 15}, {"IT", 39, "", 6, 12}} {
		info := p.Region(c.r)
		if info.CallingCode != c.cc || info.NationalPrefix != c.np || info.MinLen != c.min || info.MaxLen != c.max {
			t.Errorf("Region(%s) = %+v", c.r, info)
		}
	}
	if p.Region("001") != nil || p.Region("XX") != nil || p.Region("") != nil {
		t.Error("Region of unknown/non-geographic code not nil")
	}
	if p.CallingCode("001") != 0 || p.CallingCode("XX") != 0 {
		t.Error("CallingCode of unknown/non-geographic code not 0")
	}
}

func TestSlowRegion(t *testing.T) {
	cases := map[string]string{"18765230123": "JM", "441481256789": "GG", "80012345678": "001", "": "", "999": ""}
	for d, want := range cases {
		if got := SlowRegion([]byte(d)); got != want {
			t.Errorf("SlowRegion(%q) = %q, want %q", d, got, want)
		}
	}
}

func TestStatusString(t *testing.T) {
	if OK.String() != "OK" || BadLength.String() != "BadLength" || Status(9).String() != "Status(9)" {
		t.Error("Status.String")
	}
}

// FuzzResolve maps arbitrary bytes to digits: Resolve must never panic,
// and whenever it answers OK for a number libphonenumber calls valid, the
// regions must agree.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"18765230123", "441481256789", "77123456789", "4779123456", "590590271234", "1", "", "80012345678"} {
		f.Add([]byte(s))
	}
	p := Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 24 {
			data = data[:24]
		}
		digits := make([]byte, len(data))
		for i, b := range data {
			digits[i] = '0' + b%10
		}
		res := p.Resolve(digits)
		if res.Status != OK && res.Region != "" {
			t.Fatalf("%s: region %q with status %v", digits, res.Region, res.Status)
		}
		if res.Status == OK {
			if want, ok := libRegion(string(digits)); ok && want != res.Region {
				t.Fatalf("+%s resolved to %s, libphonenumber says %s", digits, res.Region, want)
			}
		}
		if want, ok := libRegion(string(digits)); ok && res.Status != OK && res.Status != Ambiguous {
			t.Fatalf("+%s valid in %s but status %v", digits, want, res.Status)
		}
	})
}
