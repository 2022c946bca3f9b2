package numplan

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func strp(s string) *string { return &s }

func desc(pattern string, lens ...int32) *phonenumbers.PhoneNumberDesc {
	return &phonenumbers.PhoneNumberDesc{NationalNumberPattern: strp(pattern), PossibleLength: lens}
}

type synthRegion struct {
	id, ld          string
	gd              *phonenumbers.PhoneNumberDesc
	fixed, mobile   *phonenumbers.PhoneNumberDesc
	sameFixedMobile bool
}

func (r synthRegion) metadata() *phonenumbers.PhoneMetadata {
	md := &phonenumbers.PhoneMetadata{Id: strp(r.id), GeneralDesc: r.gd, FixedLine: r.fixed, Mobile: r.mobile}
	if r.ld != "" {
		md.LeadingDigits = strp(r.ld)
	}
	if r.sameFixedMobile {
		t := true
		md.SameMobileAndFixedLinePattern = &t
	}
	return md
}

// synthPlan builds a Plan whose only calling code, 9, is shared by regs.
func synthPlan(t *testing.T, regs []synthRegion, depthLimit int) *Plan {
	t.Helper()
	p := &Plan{nameIdx: map[string]uint16{}}
	for i := range p.cc {
		p.cc[i] = make([]int16, []int{10, 100, 1000}[i])
	}
	var autos []*regionAuto
	for i, r := range regs {
		p.names = append(p.names, r.id)
		p.nameIdx[r.id] = uint16(i)
		ra, err := newRegionAuto(uint16(i), r.metadata())
		if err != nil {
			t.Fatal(err)
		}
		autos = append(autos, ra)
	}
	tb := newTrieBuilder()
	tb.depthLimit = depthLimit
	p.codes = []codeInfo{{ccLen: 1, root: tb.buildShared(newSplitter(autos))}}
	p.cc[0][9] = 1
	p.nodes, p.leaves = tb.nodes, tb.leaves
	p.stats.AmbiguousLeaves = tb.ambiguousLeaves
	return p
}

var reCache = map[string]*regexp.Regexp{}

func cachedRE(s string) *regexp.Regexp {
	re, ok := reCache[s]
	if !ok {
		re = regexp.MustCompile(s)
		reCache[s] = re
	}
	return re
}

// refMatches mirrors libphonenumber's isNumberMatchingDesc.
func refMatches(nsn string, d *phonenumbers.PhoneNumberDesc) bool {
	if d == nil {
		return false
	}
	if len(d.PossibleLength) > 0 {
		ok := false
		for _, l := range d.PossibleLength {
			ok = ok || int(l) == len(nsn)
		}
		if !ok {
			return false
		}
	}
	return cachedRE("^(?:" + d.GetNationalNumberPattern() + ")$").MatchString(nsn)
}

// refWalk mirrors getRegionCodeForNumberFromRegionList and validity.
func refWalk(regs []synthRegion, nsn string) (string, bool) {
	valid := func(r synthRegion) bool {
		if !refMatches(nsn, r.gd) {
			return false
		}
		if refMatches(nsn, r.fixed) {
			return true
		}
		return !r.sameFixedMobile && refMatches(nsn, r.mobile)
	}
	for _, r := range regs {
		if r.ld != "" {
			if cachedRE("^(?:" + r.ld + ")").MatchString(nsn) {
				return r.id, valid(r)
			}
		} else if valid(r) {
			return r.id, true
		}
	}
	return "", false
}

// TestSplitterSynthetic checks the product construction against a direct
// transcription of libphonenumber's walk on every national number of up to
// five digits, with cases real metadata does not exercise today: answers
// that depend on the length only, shadowing by an earlier validity region,
// the same-mobile-and-fixed flag, and undecidable leaves at the depth limit.
func TestSplitterSynthetic(t *testing.T) {
	cases := []struct {
		name       string
		regs       []synthRegion
		depthLimit int
		wantAmbig  bool
		noRegion   []string
	}{
		{name: "length split", depthLimit: splitDepthLimit, noRegion: []string{"0123", "01234"}, regs: []synthRegion{
			{id: "AA", gd: desc(`\d{4,5}`, 4, 5), fixed: desc(`1\d{3}`, 4)},
			{id: "BB", ld: "1", gd: desc(`\d{4,5}`, 4, 5), fixed: desc(`1\d{4}`, 5)},
			{id: "CC", gd: desc(`[2-9]\d{3,4}`, 4, 5), fixed: desc(`[23]\d{3}`), mobile: desc(`[2-4]\d{4}`, 5)},
		}},
		{name: "possible lengths narrow patterns", depthLimit: splitDepthLimit, regs: []synthRegion{
			{id: "AA", gd: desc(`\d{4,5}`, 4, 5), fixed: desc(`1\d{3,4}`, 4)},
			{id: "BB", gd: desc(`\d{4,5}`, 4, 5), fixed: desc(`1\d{4}`)},
			{id: "CC", gd: desc(`[2-9]\d{3,4}`, 4), fixed: desc(`[2-9]\d{3,4}`)},
			{id: "DD", gd: desc(`[2-9]\d{4}`, 5), fixed: desc(`[2-9]\d{4}`)},
		}},
		{name: "shadowing", depthLimit: splitDepthLimit, regs: []synthRegion{
			{id: "AA", gd: desc(`\d{4}`, 4), fixed: desc(`12\d{2}`)},
			{id: "BB", ld: "1", gd: desc(`\d{4}`, 4), fixed: desc(`1\d{3}`)},
			{id: "CC", ld: "[2-5]", gd: desc(`\d{4}`, 4), fixed: desc(`[2-4]\d{3}`)},
		}},
		{name: "same fixed and mobile", depthLimit: splitDepthLimit, regs: []synthRegion{
			{id: "AA", gd: desc(`5\d{3,4}`, 4, 5), fixed: desc(`5\d{3}`, 4), mobile: desc(`5\d{3,4}`, 4, 5), sameFixedMobile: true},
			{id: "BB", gd: desc(`5\d{4}`, 5), fixed: desc(`5\d{4}`)},
		}},
		{name: "ambiguous at limit", depthLimit: 1, wantAmbig: true, regs: []synthRegion{
			{id: "AA", gd: desc(`1\d{3}`, 4), fixed: desc(`1[0-4]\d{2}`)},
			{id: "BB", gd: desc(`1\d{3}`, 4), fixed: desc(`1\d{3}`)},
		}},
		{name: "ambiguous resolved deeper", depthLimit: splitDepthLimit, regs: []synthRegion{
			{id: "AA", gd: desc(`1\d{3}`, 4), fixed: desc(`1[0-4]\d{2}`)},
			{id: "BB", gd: desc(`1\d{3}`, 4), fixed: desc(`1\d{3}`)},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := synthPlan(t, c.regs, c.depthLimit)
			if got := p.stats.AmbiguousLeaves > 0; got != c.wantAmbig {
				t.Errorf("ambiguous leaves = %d", p.stats.AmbiguousLeaves)
			}
			checked, ambig := 0, 0
			for l := 1; l <= 5; l++ {
				lim := []int{0, 10, 100, 1000, 10000, 100000}[l]
				for v := 0; v < lim; v++ {
					nsn := strconv.Itoa(v)
					for len(nsn) < l {
						nsn = "0" + nsn
					}
					res := p.Resolve([]byte("9" + nsn))
					if res.CCLen != 1 {
						t.Fatalf("%s: %+v", nsn, res)
					}
					want, valid := refWalk(c.regs, nsn)
					if !valid {
						continue
					}
					checked++
					if res.Status == Ambiguous && c.wantAmbig {
						ambig++
						continue
					}
					if res.Status != OK || res.Region != want {
						t.Fatalf("%s: %+v, want %s", nsn, res, want)
					}
				}
			}
			if checked == 0 || (c.wantAmbig && ambig == 0) {
				t.Errorf("checked %d valid numbers, %d ambiguous", checked, ambig)
			}
			for _, nsn := range c.noRegion {
				if res := p.Resolve([]byte("9" + nsn)); res.Status != NoRegion {
					t.Errorf("%s: %+v, want NoRegion", nsn, res)
				}
			}
		})
	}
}
