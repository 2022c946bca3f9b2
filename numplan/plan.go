// Package numplan derives everything tollgate needs from libphonenumber's
// metadata once, at start-up, so that the per-call decision runs on flat
// tables: no regex, no phonenumbers.Parse and no allocation per INVITE.
package numplan

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// Status says how far Resolve got, so the caller can tell "this is country
// X" from the different reasons it cannot say so, each of which a policy may
// treat differently (an unknown code is never dialable; an ambiguous one
// just needs the slow path).
type Status uint8

const (
	// OK means Region and CCLen are set.
	OK Status = iota
	// Ambiguous means CCLen is set but the prefix tables could not decide
	// between regions sharing the code: call SlowRegion (rare).
	Ambiguous
	// UnknownCode means no assigned country calling code starts the number.
	UnknownCode
	// NoRegion means the code is assigned but no region owns this range
	// (e.g. +1 0xx, or a +1 area code nobody has).
	NoRegion
	// BadLength means the national number is too short or too long for
	// every region that could own it (general-desc possible lengths).
	BadLength
)

var statusNames = [...]string{"OK", "Ambiguous", "UnknownCode", "NoRegion", "BadLength"}

// String names the status for logs and test failures.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Resolution is Resolve's answer. It is a small value type so returning it
// never allocates; Region points into the Plan's interned names.
type Resolution struct {
	Region string // ISO 3166 alpha-2, or "001" for non-geographic codes; "" unless Status is OK
	CCLen  uint8  // digits in the country calling code whenever the code is assigned
	Status Status
}

// RegionInfo holds the dialling facts of a home country that the matcher
// needs to turn what a subscriber dialled into E.164 without libphonenumber
// on the hot path. Shared by all callers: treat it as read-only.
type RegionInfo struct {
	Code        string
	CallingCode int
	// IDD lists the literal international dialling prefixes, the preferred
	// one first; empty when the region's pattern is too large or infinite
	// and it has no preferred prefix.
	IDD []string
	// NationalPrefix is the trunk prefix ("0" GB, "1" US), "" if none.
	NationalPrefix string
	// Emergency lists every emergency number of the region, exactly.
	Emergency []string
	// MinLen and MaxLen bound national significant numbers (general desc).
	MinLen, MaxLen int
}

// trieNode is an internal node of the resolution trie: child refs per digit
// (>= 0 another node, < 0 the complement of a leaf index) and the answer
// for a number that ends exactly here.
type trieNode struct {
	child [10]int32
	end   uint16
}

// leafTable answers every national-number length beneath a decided prefix.
type leafTable [maxNSN + 1]uint16

func pack(st Status, region uint16) uint16 { return uint16(st)<<12 | region&0x0fff }

type codeInfo struct {
	ccLen uint8
	root  int32 // trie ref, see trieNode
}

// Stats describes a built Plan, for logs and tests.
type Stats struct {
	Codes           int           // assigned calling codes
	SharedCodes     int           // codes owned by more than one region
	Nodes           int           // internal trie nodes
	Leaves          int           // distinct leaf tables
	AmbiguousLeaves int           // leaves left undecided at the depth limit
	FallbackAmbig   int           // leaf entries ambiguous only for invalid numbers
	MaxDepth        int           // deepest trie level reached (national digits)
	BuildTime       time.Duration // wall time of Build
}

// Plan is the immutable, precomputed numbering plan. All methods are safe
// for concurrent use.
type Plan struct {
	names   []string // region index -> code, sorted, includes "001"
	nameIdx map[string]uint16
	infos   map[string]*RegionInfo
	cc      [3][]int16 // by code length-1: code value -> index+1 into codes
	codes   []codeInfo
	nodes   []trieNode
	leaves  []leafTable
	stats   Stats
}

var (
	defaultOnce sync.Once
	defaultPlan *Plan
)

// Default returns the process-wide plan, built on first use. The metadata is
// compiled into the binary, so a Build failure is a programming error and
// panics rather than forcing every caller to handle an impossible error.
func Default() *Plan {
	defaultOnce.Do(func() {
		p, err := Build()
		if err != nil {
			panic("numplan: building the numbering plan from libphonenumber metadata failed: " + err.Error())
		}
		defaultPlan = p
	})
	return defaultPlan
}

// Build computes a fresh plan from the compiled-in libphonenumber metadata.
// Most callers want Default; Build exists for tests and benchmarks.
func Build() (*Plan, error) {
	start := time.Now()
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return nil, fmt.Errorf("numplan: metadata: %w", err)
	}
	short, err := phonenumbers.ShortNumberMetadataCollection()
	if err != nil {
		return nil, fmt.Errorf("numplan: short-number metadata: %w", err)
	}
	geo := map[string]*phonenumbers.PhoneMetadata{}
	nonGeo := map[int]*phonenumbers.PhoneMetadata{}
	for _, m := range coll.GetMetadata() {
		if m.GetId() == "001" {
			nonGeo[int(m.GetCountryCode())] = m
		} else {
			geo[m.GetId()] = m
		}
	}
	shortBy := map[string]*phonenumbers.PhoneMetadata{}
	for _, m := range short.GetMetadata() {
		shortBy[m.GetId()] = m
	}

	p := &Plan{nameIdx: map[string]uint16{}, infos: map[string]*RegionInfo{}}
	for r := range phonenumbers.GetSupportedRegions() {
		p.names = append(p.names, r)
	}
	p.names = append(p.names, "001")
	sort.Strings(p.names)
	if len(p.names) > 0x0fff {
		return nil, errors.New("numplan: too many regions to pack")
	}
	for i, n := range p.names {
		p.nameIdx[n] = uint16(i)
	}
	for i := range p.cc {
		size := 10
		for j := 0; j < i; j++ {
			size *= 10
		}
		p.cc[i] = make([]int16, size)
	}

	tb := newTrieBuilder()
	var codes []int
	for c := range phonenumbers.GetSupportedCallingCodes() {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		regions := phonenumbers.GetRegionCodesForCountryCode(c)
		if len(regions) == 0 {
			continue
		}
		s := strconv.Itoa(c)
		if len(s) > 3 {
			return nil, fmt.Errorf("numplan: calling code %d longer than 3 digits", c)
		}
		ci := codeInfo{ccLen: uint8(len(s))}
		if len(regions) == 1 {
			r := regions[0]
			var md *phonenumbers.PhoneMetadata
			if r == "001" {
				md = nonGeo[c]
			} else {
				md = geo[r]
			}
			idx, ok := p.nameIdx[r]
			if md == nil || !ok {
				return nil, fmt.Errorf("numplan: no metadata for region %s of +%d", r, c)
			}
			lens := lenMask(md.GetGeneralDesc().GetPossibleLength())
			if len(md.GetGeneralDesc().GetPossibleLength()) == 0 {
				lens = ^uint32(0)
			}
			var t leafTable
			for l := range t {
				if l >= 1 && lens&(1<<uint(l)) != 0 {
					t[l] = pack(OK, idx)
				} else {
					t[l] = pack(BadLength, 0)
				}
			}
			ci.root = tb.leaf(t)
		} else {
			p.stats.SharedCodes++
			var regs []*regionAuto
			for _, r := range regions {
				md := geo[r]
				idx, ok := p.nameIdx[r]
				if md == nil || !ok {
					return nil, fmt.Errorf("numplan: no metadata for region %s of +%d", r, c)
				}
				ra, err := newRegionAuto(idx, md)
				if err != nil {
					return nil, fmt.Errorf("numplan: region %s: %w", r, err)
				}
				regs = append(regs, ra)
			}
			if len(regs) > 31 {
				return nil, fmt.Errorf("numplan: +%d has too many regions", c)
			}
			ci.root = tb.buildShared(newSplitter(regs))
		}
		// No calling code may be a prefix of another: Resolve takes the
		// first one it finds.
		for l := 1; l < len(s); l++ {
			v, _ := strconv.Atoi(s[:l])
			if p.cc[l-1][v] != 0 {
				return nil, fmt.Errorf("numplan: calling code %s is a prefix of %d", s[:l], c)
			}
		}
		p.codes = append(p.codes, ci)
		p.cc[len(s)-1][c] = int16(len(p.codes))
		p.stats.Codes++
	}
	p.nodes = tb.nodes
	p.leaves = tb.leaves
	p.stats.Nodes = len(tb.nodes)
	p.stats.Leaves = len(tb.leaves)
	p.stats.AmbiguousLeaves = tb.ambiguousLeaves
	p.stats.FallbackAmbig = tb.fallbackAmbig
	p.stats.MaxDepth = tb.maxDepth

	for _, r := range p.names {
		if r == "001" {
			continue
		}
		md := geo[r]
		if md == nil {
			return nil, fmt.Errorf("numplan: no metadata for region %s", r)
		}
		info, err := regionInfo(md, shortBy[r])
		if err != nil {
			return nil, fmt.Errorf("numplan: region %s: %w", r, err)
		}
		p.infos[r] = info
	}
	p.stats.BuildTime = time.Since(start)
	return p, nil
}

// iddWordLimit and iddMaxLen bound the expansion of international_prefix.
const (
	iddWordLimit = 64
	iddMaxLen    = 16
)

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func regionInfo(md, short *phonenumbers.PhoneMetadata) (*RegionInfo, error) {
	info := &RegionInfo{
		Code:           md.GetId(),
		CallingCode:    int(md.GetCountryCode()),
		NationalPrefix: md.GetNationalPrefix(),
	}
	// Preferred prefix may carry '~' (wait for dial tone): strip it.
	if pref := digitsOnly(md.GetPreferredInternationalPrefix()); pref != "" {
		info.IDD = append(info.IDD, pref)
	}
	if ip := md.GetInternationalPrefix(); ip != "" {
		d, err := compileDFA(ip)
		if err != nil {
			return nil, err
		}
		if !d.hasWordLongerThan(iddMaxLen) {
			ws, err := d.words(iddMaxLen, iddWordLimit, ip)
			if err != nil && !errors.Is(err, ErrTooManyWords) {
				return nil, err
			}
			for _, w := range ws {
				if w != "" && (len(info.IDD) == 0 || w != info.IDD[0]) {
					info.IDD = append(info.IDD, w)
				}
			}
		}
	}
	lens := md.GetGeneralDesc().GetPossibleLength()
	for _, l := range lens {
		if l <= 0 {
			continue
		}
		if info.MinLen == 0 || int(l) < info.MinLen {
			info.MinLen = int(l)
		}
		if int(l) > info.MaxLen {
			info.MaxLen = int(l)
		}
	}
	if short != nil {
		if e := short.GetEmergency(); e != nil && e.GetNationalNumberPattern() != "" {
			ws, err := Words(e.GetNationalNumberPattern(), maxNSN, 1000)
			if err != nil {
				return nil, err
			}
			info.Emergency = ws
		}
	}
	return info, nil
}

// Stats reports how big the plan's tables came out and how long Build took.
func (p *Plan) Stats() Stats { return p.stats }

// Resolve finds the destination region of an international number from
// precomputed tables, because it runs on every INVITE: it does not allocate
// or lock. digits are E.164 digits without '+'. For every valid number the
// region equals phonenumbers.GetRegionCodeForNumber; Ambiguous asks the
// caller to use SlowRegion. Bytes outside '0'..'9' yield UnknownCode (in the
// calling code) or BadLength.
func (p *Plan) Resolve(digits []byte) Resolution {
	n := len(digits)
	if n == 0 {
		return Resolution{Status: UnknownCode}
	}
	var ci int16
	v := 0
	ccLen := 0
	for ccLen < 3 && ccLen < n {
		c := digits[ccLen] - '0'
		if c > 9 {
			return Resolution{Status: UnknownCode}
		}
		v = v*10 + int(c)
		ccLen++
		if ci = p.cc[ccLen-1][v]; ci != 0 {
			break
		}
	}
	if ci == 0 {
		return Resolution{Status: UnknownCode}
	}
	code := &p.codes[ci-1]
	res := Resolution{CCLen: code.ccLen}
	ref := code.root
	pos := ccLen
	var packed uint16
	for {
		if ref < 0 {
			l := n - ccLen
			if l > maxNSN {
				res.Status = BadLength
				return res
			}
			packed = p.leaves[^ref][l]
			break
		}
		if pos == n {
			packed = p.nodes[ref].end
			break
		}
		c := digits[pos] - '0'
		if c > 9 {
			res.Status = BadLength
			return res
		}
		ref = p.nodes[ref].child[c]
		pos++
	}
	for i := pos; i < n; i++ {
		if digits[i]-'0' > 9 {
			res.Status = BadLength
			return res
		}
	}
	res.Status = Status(packed >> 12)
	if res.Status == OK {
		res.Region = p.names[packed&0x0fff]
	}
	return res
}

// SlowRegion is the exact answer from libphonenumber itself, for the rare
// Ambiguous resolution. It parses "+"+digits (allocates, ~10 µs) and returns
// GetRegionCodeForNumber, "" when the number does not parse or no region
// claims it.
func SlowRegion(digits []byte) string {
	num, err := phonenumbers.Parse("+"+string(digits), "ZZ")
	if err != nil {
		return ""
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}

// Region returns the dialling facts of a home country, or nil when
// libphonenumber does not know it. "001" (non-geographic) is not a home
// country and yields nil.
func (p *Plan) Region(code string) *RegionInfo {
	return p.infos[code]
}

// IsEmergency reports whether digits, a short number as dialled, is exactly
// one of region's emergency numbers, so emergency calls can bypass every
// fraud rule without a regex. It does not allocate.
func (p *Plan) IsEmergency(region string, digits []byte) bool {
	return p.infos[region].IsEmergency(digits)
}

// IsEmergency is Plan.IsEmergency for a region already looked up (nil: no
// region, never an emergency number), so a caller that keeps the
// RegionInfo of a home country saves the lookup per call.
func (info *RegionInfo) IsEmergency(digits []byte) bool {
	if info == nil {
		return false
	}
	for _, e := range info.Emergency {
		if e == string(digits) {
			return true
		}
	}
	return false
}

// MatchIDD returns the length of the longest international dialling prefix
// of region that digits starts with (0 if none), so the matcher can strip it
// and resolve the rest as E.164. It does not allocate.
func (p *Plan) MatchIDD(region string, digits []byte) int {
	return p.infos[region].MatchIDD(digits)
}

// MatchIDD is Plan.MatchIDD for a region already looked up (nil: no region,
// no prefix).
func (info *RegionInfo) MatchIDD(digits []byte) int {
	if info == nil {
		return 0
	}
	best := 0
	for _, idd := range info.IDD {
		if len(idd) > best && len(idd) <= len(digits) && string(digits[:len(idd)]) == idd {
			best = len(idd)
		}
	}
	return best
}

// Regions lists every region libphonenumber supports plus "001", sorted, so
// configuration can be validated against it. The slice is a fresh copy.
func (p *Plan) Regions() []string {
	return append([]string(nil), p.names...)
}

// CallingCode returns the country calling code of a region so policies
// written per country can be mapped onto E.164 prefixes; 0 if unknown and
// for "001", which spans several codes.
func (p *Plan) CallingCode(region string) int {
	if info := p.infos[region]; info != nil {
		return info.CallingCode
	}
	return 0
}

// NationalToE164 turns a number dialled in national format from region
// (digits only, trunk prefix as dialled) into E.164 digits without '+'. It
// uses phonenumbers.Parse (allocates, ~10 µs), which is why the matcher
// caches its results. It fails when the number does not parse or is not a
// possible number.
func NationalToE164(national string, region string) (string, error) {
	num, err := phonenumbers.Parse(national, region)
	if err != nil {
		return "", fmt.Errorf("numplan: %q from %s: %w", national, region, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("numplan: %q from %s is not a possible number", national, region)
	}
	return strings.TrimPrefix(phonenumbers.Format(num, phonenumbers.E164), "+"), nil
}
