package matcher

import (
	"math/bits"
	"slices"
)

// A number or prefix of up to 15 digits packed into a uint64, one nibble a
// digit from the top, digit d stored as d+1 and unused nibbles 0. Packed
// values sort exactly like the digit strings do ("12" < "120" < "121" < "13"),
// so a sorted []uint64 is a sorted prefix list that a binary search walks
// without touching strings.
type packed uint64

const maxDigits = 15

// pack packs up to 15 ASCII digits; longer input is truncated (callers
// validate lengths before).
func pack(d []byte) packed {
	var v uint64
	for i := 0; i < len(d) && i < maxDigits; i++ {
		v |= uint64(d[i]-'0'+1) << (60 - 4*uint(i))
	}
	return packed(v)
}

// digits is how many digits p holds.
func (p packed) digits() int {
	if p == 0 {
		return 0
	}
	return 16 - bits.TrailingZeros64(uint64(p))/4
}

// prefixOf reports whether p is a prefix of q.
func (p packed) prefixOf(q packed) bool {
	n := p.digits()
	if n == 0 {
		return true
	}
	mask := ^uint64(0) << (64 - 4*uint(n))
	return uint64(q)&mask == uint64(p)
}

// appendDigits writes p's digits to dst.
func (p packed) appendDigits(dst []byte) []byte {
	for i := 0; i < maxDigits; i++ {
		nib := byte(uint64(p) >> (60 - 4*uint(i)) & 0xf)
		if nib == 0 {
			break
		}
		dst = append(dst, '0'+nib-1)
	}
	return dst
}

// prefixSet answers longest-prefix-match queries over a fixed set of
// prefixes. keys are sorted; parent[i] is the longest other key that is a
// prefix of keys[i] (-1 if none). The longest prefix of q in the set is on the
// parent chain of the greatest key <= q, so a lookup is one binary search plus
// at most 15 steps up the chain. Large sets get a bucket index on the top
// four nibbles so the binary search covers one bucket only.
type prefixSet struct {
	keys   []packed
	parent []int32
	val    []uint32 // payload per key (index into the owner's detail table)
	bucket []uint32 // len 1<<16+1 when indexed: start of each top-16-bit bucket
}

// bucketThreshold is the set size above which the bucket index pays for its
// 256 KiB.
const bucketThreshold = 4096

// newPrefixSet builds a set; keys must be unique (duplicates are dropped,
// keeping the first payload).
func newPrefixSet(keys []packed, vals []uint32) *prefixSet {
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case keys[a] < keys[b]:
			return -1
		case keys[a] > keys[b]:
			return 1
		}
		return 0
	})
	s := &prefixSet{keys: make([]packed, 0, len(keys)), val: make([]uint32, 0, len(keys))}
	for _, i := range idx {
		if n := len(s.keys); n > 0 && s.keys[n-1] == keys[i] {
			continue
		}
		s.keys = append(s.keys, keys[i])
		s.val = append(s.val, vals[i])
	}
	s.parent = make([]int32, len(s.keys))
	stack := make([]int32, 0, maxDigits)
	for i, k := range s.keys {
		for len(stack) > 0 && !s.keys[stack[len(stack)-1]].prefixOf(k) {
			stack = stack[:len(stack)-1]
		}
		s.parent[i] = -1
		if len(stack) > 0 {
			s.parent[i] = stack[len(stack)-1]
		}
		stack = append(stack, int32(i))
	}
	if len(s.keys) > bucketThreshold {
		s.bucket = make([]uint32, 1<<16+1)
		b := 0
		for i, k := range s.keys {
			for top := int(uint64(k) >> 48); b <= top; b++ {
				s.bucket[b] = uint32(i)
			}
		}
		for ; b <= 1<<16; b++ {
			s.bucket[b] = uint32(len(s.keys))
		}
	}
	return s
}

// match returns the index of the longest key that is a prefix of q, or -1.
func (s *prefixSet) match(q packed) int32 {
	if s == nil || len(s.keys) == 0 {
		return -1
	}
	lo, hi := 0, len(s.keys)
	if s.bucket != nil {
		top := uint64(q) >> 48
		lo, hi = int(s.bucket[top]), int(s.bucket[top+1])
	}
	// first index in [lo,hi) with key > q
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.keys[mid] <= q {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for e := int32(lo - 1); e >= 0; e = s.parent[e] {
		if s.keys[e].prefixOf(q) {
			return e
		}
	}
	return -1
}

// len is the number of prefixes in the set.
func (s *prefixSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Number is an E.164 number or prefix packed as the prefix sets pack them
// (one nibble a digit, no '+'), so code beside the matcher (the velocity
// counters) can match destinations against prefixes with integer operations
// and receive a number without a slice that would escape. 0 is no number.
type Number uint64

// PackNumber packs a canonical "+digits" number or prefix (1-15 digits);
// ok is false for anything else.
func PackNumber(e164 string) (Number, bool) {
	p, err := packPrefix(e164)
	if err != nil {
		return 0, false
	}
	return Number(p), true
}

// HasPrefix reports whether prefix is a prefix of n (every number has the
// empty prefix 0).
func (n Number) HasPrefix(prefix Number) bool { return packed(prefix).prefixOf(packed(n)) }

// Digits is how many digits n holds.
func (n Number) Digits() int { return packed(n).digits() }

// Truncate is n without its last drop digits, keeping at least one: the
// number range n belongs to (Truncate(3) of +21671234567 is +21671234).
func (n Number) Truncate(drop int) Number {
	keep := n.Digits() - drop
	if keep < 1 {
		keep = 1
	}
	if n == 0 || keep >= n.Digits() {
		return n
	}
	return Number(uint64(n) & (^uint64(0) << (64 - 4*uint(keep))))
}

// Country is a destination country (an ISO 3166 code, or "001" for
// non-geographic numbers) packed into an integer, so the velocity counters
// get it without a string. 0 is no country.
type Country uint32

// PackCountry packs a country code of up to three bytes (0 for "" or a
// longer one).
func PackCountry(cc string) Country {
	if len(cc) > 3 {
		return 0
	}
	var c Country
	for i := 0; i < len(cc); i++ {
		c = c<<8 | Country(cc[i])
	}
	return c
}

// String is the country code ("" for 0).
func (c Country) String() string {
	var b [3]byte
	n := 0
	for s := 16; s >= 0; s -= 8 {
		if x := byte(c >> uint(s)); x != 0 {
			b[n] = x
			n++
		}
	}
	return string(b[:n])
}

// String is the number as "+digits" ("" for 0).
func (n Number) String() string {
	if n == 0 {
		return ""
	}
	var b [1 + maxDigits]byte
	b[0] = '+'
	return string(packed(n).appendDigits(b[:1]))
}
