package numplan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp/syntax"
	"sort"
	"strings"
)

// maxNSN is the longest national significant number libphonenumber allows
// (MAX_LENGTH_FOR_NSN); every length-indexed table in this package has
// maxNSN+1 entries so a length can index it directly.
const maxNSN = 17

// dfa is a lazily determinised automaton for one libphonenumber pattern over
// the alphabet '0'..'9'. libphonenumber patterns are RE2-compatible regexes
// over digits; compiling them with regexp/syntax and running the subset
// construction only on the ten digits gives an exact automaton for the
// language the library's own anchored regexes test against, without ever
// matching a regex at run time.
//
// State 0 is always the dead state (empty NFA set). Not safe for concurrent
// use: it grows as it is explored.
type dfa struct {
	prog   *syntax.Prog
	states []dstate
	index  map[string]int32
	start  int32
	// scratch for closures
	mark  []uint32
	epoch uint32
	stack []uint32

	freeMemo map[int32]bool
	nonEmpty map[int32]bool
}

type dstate struct {
	pcs    []uint32
	next   [10]int32 // -1: not computed yet
	accept bool
}

// compileDFA parses pattern as libphonenumber does (Perl syntax, anchored by
// the caller's use: full match or prefix match) and returns its automaton.
func compileDFA(pattern string) (*dfa, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("numplan: pattern %q: %w", pattern, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("numplan: pattern %q: %w", pattern, err)
	}
	for _, in := range prog.Inst {
		if in.Op == syntax.InstEmptyWidth {
			return nil, fmt.Errorf("numplan: pattern %q: anchors and word boundaries are not supported", pattern)
		}
	}
	d := &dfa{
		prog:     prog,
		index:    map[string]int32{},
		mark:     make([]uint32, len(prog.Inst)),
		freeMemo: map[int32]bool{},
		nonEmpty: map[int32]bool{},
	}
	d.intern(nil) // dead state = 0
	d.start = d.intern(d.closure([]uint32{uint32(prog.Start)}))
	return d, nil
}

// closure follows epsilon edges from roots and returns the sorted set of
// consuming and matching instructions reached.
func (d *dfa) closure(roots []uint32) []uint32 {
	d.epoch++
	if d.epoch == 0 { // wrapped: reset marks
		for i := range d.mark {
			d.mark[i] = 0
		}
		d.epoch = 1
	}
	var out []uint32
	d.stack = append(d.stack[:0], roots...)
	for len(d.stack) > 0 {
		pc := d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-1]
		if d.mark[pc] == d.epoch {
			continue
		}
		d.mark[pc] = d.epoch
		in := &d.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			d.stack = append(d.stack, in.Out, in.Arg)
		case syntax.InstCapture, syntax.InstNop:
			d.stack = append(d.stack, in.Out)
		case syntax.InstFail:
		case syntax.InstMatch, syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			out = append(out, pc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (d *dfa) intern(pcs []uint32) int32 {
	buf := make([]byte, 4*len(pcs))
	for i, pc := range pcs {
		binary.LittleEndian.PutUint32(buf[4*i:], pc)
	}
	key := string(buf)
	if id, ok := d.index[key]; ok {
		return id
	}
	st := dstate{pcs: pcs}
	for i := range st.next {
		st.next[i] = -1
	}
	for _, pc := range pcs {
		if d.prog.Inst[pc].Op == syntax.InstMatch {
			st.accept = true
		}
	}
	id := int32(len(d.states))
	d.states = append(d.states, st)
	d.index[key] = id
	if id == 0 {
		for i := range d.states[0].next {
			d.states[0].next[i] = 0
		}
	}
	return id
}

// step returns the state after reading digit (0..9) in state s.
func (d *dfa) step(s int32, digit int) int32 {
	if n := d.states[s].next[digit]; n >= 0 {
		return n
	}
	r := rune('0' + digit)
	var roots []uint32
	for _, pc := range d.states[s].pcs {
		in := &d.prog.Inst[pc]
		if in.Op != syntax.InstMatch && in.MatchRune(r) {
			roots = append(roots, in.Out)
		}
	}
	n := d.intern(d.closure(roots))
	d.states[s].next[digit] = n
	return n
}

func (d *dfa) accepts(s int32) bool { return d.states[s].accept }

// run feeds a digit string from the start state; digits must be '0'..'9'.
func (d *dfa) run(s string) int32 {
	st := d.start
	for i := 0; i < len(s) && st != 0; i++ {
		st = d.step(st, int(s[i]-'0'))
	}
	return st
}

// layer is a set of DFA states reached by all strings of one length.
func layerKey(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		var x [4]byte
		binary.LittleEndian.PutUint32(x[:], uint32(id))
		b.Write(x[:])
	}
	return b.String()
}

func (d *dfa) nextLayer(layer []int32) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, s := range layer {
		for dg := 0; dg < 10; dg++ {
			n := d.step(s, dg)
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// isNonEmpty reports whether some string (possibly empty) is accepted from s.
func (d *dfa) isNonEmpty(s int32) bool {
	if v, ok := d.nonEmpty[s]; ok {
		return v
	}
	seen := map[int32]bool{s: true}
	queue := []int32{s}
	res := false
	for len(queue) > 0 && !res {
		q := queue[0]
		queue = queue[1:]
		if d.accepts(q) {
			res = true
			break
		}
		for dg := 0; dg < 10; dg++ {
			n := d.step(q, dg)
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	d.nonEmpty[s] = res
	return res
}

// isFree reports whether the language from s depends only on the length of
// the remaining input, i.e. it is {w : |w| in some set}: then a prefix that
// reached s need not be expanded further. It checks that, for every length,
// the states reached by all strings of that length agree on acceptance.
func (d *dfa) isFree(s int32) bool {
	if v, ok := d.freeMemo[s]; ok {
		return v
	}
	layer := []int32{s}
	seen := map[string]bool{}
	free := true
	for {
		k := layerKey(layer)
		if seen[k] {
			break
		}
		seen[k] = true
		acc := d.accepts(layer[0])
		for _, q := range layer[1:] {
			if d.accepts(q) != acc {
				free = false
				break
			}
		}
		if !free {
			break
		}
		layer = d.nextLayer(layer)
	}
	d.freeMemo[s] = free
	return free
}

// canAcceptWithin reports whether some string of length <= r is accepted from s.
func (d *dfa) canAcceptWithin(s int32, r int, memo map[[2]int32]bool) bool {
	if s == 0 {
		return false
	}
	if d.accepts(s) {
		return true
	}
	if r == 0 {
		return false
	}
	key := [2]int32{s, int32(r)}
	if v, ok := memo[key]; ok {
		return v
	}
	res := false
	for dg := 0; dg < 10 && !res; dg++ {
		res = d.canAcceptWithin(d.step(s, dg), r-1, memo)
	}
	memo[key] = res
	return res
}

// hasWordLongerThan reports whether the language has a word longer than n
// (true for every infinite language).
func (d *dfa) hasWordLongerThan(n int) bool {
	layer := []int32{d.start}
	for i := 0; i <= n; i++ {
		layer = d.nextLayer(layer)
	}
	for _, q := range layer {
		if d.isNonEmpty(q) {
			return true
		}
	}
	return false
}

// ExpandPrefixes turns a number-range pattern into the prefix list a digit
// trie needs, so policies can be written with libphonenumber's own ranges
// (premium rate, toll free, ...) and still be checked by byte comparisons.
// The expansion is exact: the pattern is compiled to an automaton and a
// prefix stops being expanded as soon as its remaining language no longer
// depends on which digits follow (only on how many), or at maxDepth digits.
// Prefixes with no completion are dropped. A pattern whose whole language is
// free of digit dependence yields [""]. The result is sorted.
func ExpandPrefixes(pattern string, maxDepth int) ([]string, error) {
	if maxDepth < 0 {
		return nil, errors.New("numplan: negative maxDepth")
	}
	d, err := compileDFA(pattern)
	if err != nil {
		return nil, err
	}
	var out []string
	buf := make([]byte, 0, maxDepth)
	var walk func(s int32)
	walk = func(s int32) {
		if s == 0 || !d.isNonEmpty(s) {
			return
		}
		if d.isFree(s) || len(buf) >= maxDepth {
			out = append(out, string(buf))
			return
		}
		for dg := 0; dg < 10; dg++ {
			buf = append(buf, byte('0'+dg))
			walk(d.step(s, dg))
			buf = buf[:len(buf)-1]
		}
	}
	walk(d.start)
	sort.Strings(out)
	return out, nil
}

// ErrTooManyWords is returned (wrapped) by Words when the language is larger
// than the caller's limit, so callers can fall back instead of failing.
var ErrTooManyWords = errors.New("numplan: pattern has too many words")

// Words lists a small pattern's whole language (emergency numbers, dialling
// prefixes) so the hot path can compare exact strings instead of running a
// regex. Only words of at most maxLen digits are returned, sorted; more than
// limit words is an error wrapping ErrTooManyWords.
func Words(pattern string, maxLen, limit int) ([]string, error) {
	d, err := compileDFA(pattern)
	if err != nil {
		return nil, err
	}
	return d.words(maxLen, limit, pattern)
}

func (d *dfa) words(maxLen, limit int, pattern string) ([]string, error) {
	var out []string
	memo := map[[2]int32]bool{}
	buf := make([]byte, 0, maxLen)
	var walk func(s int32) bool
	walk = func(s int32) bool {
		if !d.canAcceptWithin(s, maxLen-len(buf), memo) {
			return true
		}
		if d.accepts(s) {
			if len(out) >= limit {
				return false
			}
			out = append(out, string(buf))
		}
		if len(buf) >= maxLen {
			return true
		}
		for dg := 0; dg < 10; dg++ {
			buf = append(buf, byte('0'+dg))
			ok := walk(d.step(s, dg))
			buf = buf[:len(buf)-1]
			if !ok {
				return false
			}
		}
		return true
	}
	if !walk(d.start) {
		return nil, fmt.Errorf("%w: %q has more than %d words of up to %d digits", ErrTooManyWords, pattern, limit, maxLen)
	}
	sort.Strings(out)
	return out, nil
}
