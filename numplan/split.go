package numplan

import (
	"encoding/binary"
	"math/bits"

	"github.com/nyaruka/phonenumbers"
)

// This file builds, for a calling code shared by several regions, a digit
// trie over national-number prefixes that reproduces
// phonenumbers.GetRegionCodeForNumber for every valid number. That function
// walks the code's regions in order: a region with leading_digits claims a
// number whose national number starts with a match of that pattern; a region
// without it claims a number only if the number is valid there. The walk is
// simulated exactly on the product of per-region automata.

// noneBit marks "no region claimed the number" in a walk mask.
const noneBit = uint32(1) << 31

// regionAuto is the automaton of one region inside a shared code: its
// leading-digits prefix matcher (if any) and its validity test (general desc
// plus the union of the number-type descs, with their possible lengths).
type regionAuto struct {
	idx    uint16 // index into Plan.names
	hasLD  bool
	ld     *dfa
	gd     *dfa
	gdLens uint32
	types  []*dfa
	tLens  []uint32 // 0: no length constraint of its own

	states []rstate
	index  map[string]int32
}

// rstate is a region's state after a prefix. State 0 is "out": the region
// can no longer claim any number beneath the prefix.
type rstate struct {
	ld      int32
	matched bool
	gd      int32
	ts      []int32
	next    [10]int32
}

func lenMask(ls []int32) uint32 {
	var m uint32
	for _, l := range ls {
		if l >= 0 && l <= maxNSN {
			m |= 1 << uint(l)
		}
	}
	return m
}

// usableLens reports whether a desc with these possible lengths can match
// anything: libphonenumber marks absent number types with length -1.
func usableLens(ls []int32) bool {
	for _, l := range ls {
		if l == -1 {
			return false
		}
	}
	return true
}

func newRegionAuto(idx uint16, md *phonenumbers.PhoneMetadata) (*regionAuto, error) {
	ra := &regionAuto{idx: idx, index: map[string]int32{}}
	var err error
	if ld := md.GetLeadingDigits(); ld != "" {
		ra.hasLD = true
		if ra.ld, err = compileDFA(ld); err != nil {
			return nil, err
		}
	}
	gd := md.GetGeneralDesc()
	if ra.gd, err = compileDFA(gd.GetNationalNumberPattern()); err != nil {
		return nil, err
	}
	ra.gdLens = lenMask(gd.GetPossibleLength())
	if len(gd.GetPossibleLength()) == 0 {
		ra.gdLens = ^uint32(0)
	}
	descs := []*phonenumbers.PhoneNumberDesc{
		md.GetPremiumRate(), md.GetTollFree(), md.GetSharedCost(), md.GetVoip(),
		md.GetPersonalNumber(), md.GetPager(), md.GetUan(), md.GetVoicemail(),
		md.GetFixedLine(),
	}
	// getNumberTypeHelper only tests the mobile desc when it differs from
	// the fixed-line one.
	if !md.GetSameMobileAndFixedLinePattern() {
		descs = append(descs, md.GetMobile())
	}
	for _, d := range descs {
		if d == nil || d.GetNationalNumberPattern() == "" || !usableLens(d.GetPossibleLength()) {
			continue
		}
		a, err := compileDFA(d.GetNationalNumberPattern())
		if err != nil {
			return nil, err
		}
		ra.types = append(ra.types, a)
		ra.tLens = append(ra.tLens, lenMask(d.GetPossibleLength()))
	}
	// State 0: out.
	ra.states = append(ra.states, rstate{ts: make([]int32, len(ra.types))})
	for i := range ra.states[0].next {
		ra.states[0].next[i] = 0
	}
	return ra, nil
}

func (ra *regionAuto) initial() int32 {
	st := rstate{gd: ra.gd.start, ts: make([]int32, len(ra.types))}
	if ra.hasLD {
		st.ld = ra.ld.start
		st.matched = ra.ld.accepts(st.ld)
	}
	for i, t := range ra.types {
		st.ts[i] = t.start
	}
	return ra.intern(st)
}

// intern canonicalises st (so equivalent states share an id) and returns its id.
func (ra *regionAuto) intern(st rstate) int32 {
	vDead := st.gd == 0
	if !vDead {
		vDead = true
		for _, t := range st.ts {
			if t != 0 {
				vDead = false
				break
			}
		}
	}
	if vDead {
		st.gd = 0
		for i := range st.ts {
			st.ts[i] = 0
		}
	}
	if ra.hasLD {
		if st.matched {
			st.ld = 0
		} else if st.ld == 0 {
			return 0 // can never claim
		}
	} else if vDead {
		return 0
	}
	buf := make([]byte, 0, 4*(len(st.ts)+3))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(st.ld))
	if st.matched {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	buf = binary.LittleEndian.AppendUint32(buf, uint32(st.gd))
	for _, t := range st.ts {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
	}
	key := string(buf)
	if id, ok := ra.index[key]; ok {
		return id
	}
	for i := range st.next {
		st.next[i] = -1
	}
	id := int32(len(ra.states))
	ra.states = append(ra.states, st)
	ra.index[key] = id
	return id
}

func (ra *regionAuto) step(s int32, dg int) int32 {
	if s == 0 {
		return 0
	}
	if n := ra.states[s].next[dg]; n >= 0 {
		return n
	}
	cur := ra.states[s]
	nx := rstate{matched: cur.matched, ts: make([]int32, len(cur.ts))}
	if ra.hasLD && !cur.matched {
		nx.ld = ra.ld.step(cur.ld, dg)
		nx.matched = ra.ld.accepts(nx.ld)
	}
	nx.gd = ra.gd.step(cur.gd, dg)
	for i, t := range cur.ts {
		nx.ts[i] = ra.types[i].step(t, dg)
	}
	n := ra.intern(nx)
	ra.states[s].next[dg] = n
	return n
}

// valid mirrors getNumberTypeHelper(...) != UNKNOWN for a national number
// of length l that led to state s.
func (ra *regionAuto) valid(s int32, l int) bool {
	if s == 0 || l < 1 || l > maxNSN {
		return false
	}
	st := &ra.states[s]
	if !ra.gd.accepts(st.gd) || ra.gdLens&(1<<uint(l)) == 0 {
		return false
	}
	for i, t := range st.ts {
		if ra.types[i].accepts(t) && (ra.tLens[i] == 0 || ra.tLens[i]&(1<<uint(l)) != 0) {
			return true
		}
	}
	return false
}

func (ra *regionAuto) claims(s int32, l int) bool {
	if s == 0 {
		return false
	}
	if ra.hasLD {
		return ra.states[s].matched
	}
	return ra.valid(s, l)
}

// resSet summarises every completion of a prefix: per national-number
// length, the set of regions GetRegionCodeForNumber returns for the valid
// completions (valid) and for all completions (walk, noneBit for "").
type resSet struct {
	valid [maxNSN + 1]uint32
	walk  [maxNSN + 1]uint32
}

// anyValid reports whether any valid number of length >= d is summarised.
func (r *resSet) anyValid(d int) bool {
	for l := d; l <= maxNSN; l++ {
		if r.valid[l] != 0 {
			return true
		}
	}
	return false
}

// splitter explores the product of a shared code's region automata.
type splitter struct {
	regs    []*regionAuto
	pstates [][]int32
	pnext   [][10]int32
	pindex  map[string]int32
	memo    map[int64]*resSet
}

func newSplitter(regs []*regionAuto) *splitter {
	return &splitter{regs: regs, pindex: map[string]int32{}, memo: map[int64]*resSet{}}
}

func (s *splitter) internP(t []int32) int32 {
	// Regions after the first one whose leading digits matched are never
	// consulted by the walk.
	for i, r := range s.regs {
		if r.hasLD && t[i] != 0 && r.states[t[i]].matched {
			for j := i + 1; j < len(t); j++ {
				t[j] = 0
			}
			break
		}
	}
	buf := make([]byte, 0, 4*len(t))
	for _, v := range t {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	key := string(buf)
	if id, ok := s.pindex[key]; ok {
		return id
	}
	id := int32(len(s.pstates))
	s.pstates = append(s.pstates, t)
	s.pnext = append(s.pnext, [10]int32{-1, -1, -1, -1, -1, -1, -1, -1, -1, -1})
	s.pindex[key] = id
	return id
}

func (s *splitter) initial() int32 {
	t := make([]int32, len(s.regs))
	for i, r := range s.regs {
		t[i] = r.initial()
	}
	return s.internP(t)
}

func (s *splitter) step(p int32, dg int) int32 {
	if n := s.pnext[p][dg]; n >= 0 {
		return n
	}
	cur := s.pstates[p]
	t := make([]int32, len(cur))
	for i, r := range s.regs {
		t[i] = r.step(cur[i], dg)
	}
	n := s.internP(t)
	s.pnext[p][dg] = n
	return n
}

// walkAt is GetRegionCodeForNumber's loop for a complete national number of
// length l in product state p: the position of the region it returns (-1
// for none) and whether the number is valid there.
func (s *splitter) walkAt(p int32, l int) (int, bool) {
	t := s.pstates[p]
	for i, r := range s.regs {
		if r.claims(t[i], l) {
			return i, r.valid(t[i], l)
		}
	}
	return -1, false
}

func (s *splitter) res(p int32, d int) *resSet {
	key := int64(p)<<8 | int64(d)
	if r, ok := s.memo[key]; ok {
		return r
	}
	r := &resSet{}
	if d >= 1 {
		w, ok := s.walkAt(p, d)
		if w < 0 {
			r.walk[d] = noneBit
		} else {
			r.walk[d] = 1 << uint(w)
			if ok {
				r.valid[d] = 1 << uint(w)
			}
		}
	}
	if d < maxNSN {
		for dg := 0; dg < 10; dg++ {
			c := s.res(s.step(p, dg), d+1)
			for l := d + 1; l <= maxNSN; l++ {
				r.valid[l] |= c.valid[l]
				r.walk[l] |= c.walk[l]
			}
		}
	}
	s.memo[key] = r
	return r
}

// trieBuilder accumulates the flat trie arrays of a Plan.
type trieBuilder struct {
	nodes     []trieNode
	leaves    []leafTable
	leafIndex map[leafTable]int32
	// statistics
	ambiguousLeaves int // leaves where valid numbers of one length belong to several regions
	fallbackAmbig   int // leaf entries ambiguous only for invalid numbers
	maxDepth        int
	depthLimit      int // national digits; see splitDepthLimit
}

func newTrieBuilder() *trieBuilder {
	return &trieBuilder{leafIndex: map[leafTable]int32{}, depthLimit: splitDepthLimit}
}

func (tb *trieBuilder) leaf(t leafTable) int32 {
	if i, ok := tb.leafIndex[t]; ok {
		return ^i
	}
	i := int32(len(tb.leaves))
	tb.leaves = append(tb.leaves, t)
	tb.leafIndex[t] = i
	return ^i
}

// splitDepthLimit bounds the trie depth (national digits); a node still
// undecided there becomes a leaf whose conflicting lengths are Ambiguous.
const splitDepthLimit = 10

// refineDepth bounds the extra splitting that isolates unassigned ranges
// (national digits): 4 covers NANP area codes plus the exchange's first digit.
const refineDepth = 4

func (tb *trieBuilder) buildShared(s *splitter) int32 {
	return tb.build(s, s.initial(), 0)
}

func (tb *trieBuilder) build(s *splitter, p int32, d int) int32 {
	r := s.res(p, d)
	conflict := false
	for l := d; l <= maxNSN; l++ {
		if bits.OnesCount32(r.valid[l]) > 1 {
			conflict = true
			break
		}
	}
	if d > tb.maxDepth {
		tb.maxDepth = d
	}
	refine := false
	if !conflict && d < refineDepth && r.anyValid(d) {
		// Keep splitting a decided range while part of it has no valid
		// number at all, so unassigned ranges (+1 555, +1 212 1xx) answer
		// NoRegion rather than inheriting their neighbour's region.
		for dg := 0; dg < 10; dg++ {
			if !s.res(s.step(p, dg), d+1).anyValid(d + 1) {
				refine = true
				break
			}
		}
	}
	if (!conflict && !refine) || d >= tb.depthLimit {
		var t leafTable
		for l := range t {
			if l < d {
				t[l] = pack(BadLength, 0)
				continue
			}
			t[l] = tb.entry(s, r, d, l)
		}
		if conflict {
			tb.ambiguousLeaves++
		}
		return tb.leaf(t)
	}
	n := int32(len(tb.nodes))
	tb.nodes = append(tb.nodes, trieNode{})
	end := pack(BadLength, 0)
	if d > 0 {
		end = tb.entry(s, r, d, d)
	}
	tb.nodes[n].end = end
	for dg := 0; dg < 10; dg++ {
		c := tb.build(s, s.step(p, dg), d+1)
		tb.nodes[n].child[dg] = c
	}
	return n
}

// entry decides the answer for national numbers of length l beneath a
// prefix of length d whose completions are summarised by r.
func (tb *trieBuilder) entry(s *splitter, r *resSet, d, l int) uint16 {
	m := r.valid[l]
	switch bits.OnesCount32(m) {
	case 1:
		return pack(OK, s.regs[bits.TrailingZeros32(m)].idx)
	case 0:
	default:
		return pack(Ambiguous, 0)
	}
	var all uint32
	for k := d; k <= maxNSN; k++ {
		all |= r.valid[k]
	}
	if all != 0 {
		// The prefix belongs to these regions but no valid number has this
		// length: answer by general-desc lengths.
		var c uint32
		for i, reg := range s.regs {
			if all&(1<<uint(i)) != 0 && reg.gdLens&(1<<uint(l)) != 0 {
				c |= 1 << uint(i)
			}
		}
		switch bits.OnesCount32(c) {
		case 0:
			return pack(BadLength, 0)
		case 1:
			return pack(OK, s.regs[bits.TrailingZeros32(c)].idx)
		default:
			tb.fallbackAmbig++
			return pack(Ambiguous, 0)
		}
	}
	// No valid number beneath the prefix at all. If libphonenumber's walk
	// still names one region for every such number (a leading-digits claim),
	// follow it; otherwise nobody owns the range.
	w := r.walk[l]
	if bits.OnesCount32(w) == 1 && w != noneBit {
		reg := s.regs[bits.TrailingZeros32(w)]
		if reg.gdLens&(1<<uint(l)) != 0 {
			return pack(OK, reg.idx)
		}
		return pack(BadLength, 0)
	}
	for _, reg := range s.regs {
		if reg.gdLens&(1<<uint(l)) != 0 {
			return pack(NoRegion, 0)
		}
	}
	return pack(BadLength, 0)
}
