package origin

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/tollgate/tollgate/policy"
)

// MaxRanges bounds one CIDR list, so a single request cannot make a snapshot
// arbitrarily large.
const MaxRanges = 10000

// u128 is an IPv6 address as two big-endian halves, for ordered comparison.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// next is a+1; ok is false when a is the last address.
func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

func addr128(a netip.Addr) u128 {
	b := a.As16()
	return u128{be64(b[:8]), be64(b[8:])}
}

func be64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func addr32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// prefixBounds4 is the first and last address of an IPv4 prefix.
func prefixBounds4(p netip.Prefix) (lo, hi uint32) {
	lo = addr32(p.Addr())
	if bits := p.Bits(); bits < 32 {
		hi = lo | (uint32(1)<<(32-bits) - 1)
	} else {
		hi = lo
	}
	return lo, hi
}

// prefixBounds6 is the first and last address of an IPv6 prefix.
func prefixBounds6(p netip.Prefix) (lo, hi u128) {
	lo = addr128(p.Addr())
	hi = lo
	bits := p.Bits()
	switch {
	case bits >= 128:
	case bits >= 64:
		hi.lo |= ^uint64(0) >> uint(bits-64)
	default:
		hi.hi |= ^uint64(0) >> uint(bits)
		hi.lo = ^uint64(0)
	}
	return lo, hi
}

type range4 struct{ lo, hi uint32 }
type range6 struct{ lo, hi u128 }

// RangeSet is a compiled, immutable set of IP ranges: sorted, merged,
// non-overlapping intervals searched by bisection, so Contains allocates
// nothing and costs O(log n). The zero value is the empty set.
type RangeSet struct {
	v4 []range4
	v6 []range6
	n  int // entries it was compiled from
}

// Len is how many list entries the set was compiled from.
func (s *RangeSet) Len() int { return s.n }

// Empty reports whether the set holds no address.
func (s *RangeSet) Empty() bool { return len(s.v4) == 0 && len(s.v6) == 0 }

// Contains reports whether a is in the set. IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d) are treated as the IPv4 address they carry.
func (s *RangeSet) Contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		x := addr32(a)
		v := s.v4
		i, j := 0, len(v) // find the first range with hi >= x
		for i < j {
			h := int(uint(i+j) >> 1)
			if v[h].hi < x {
				i = h + 1
			} else {
				j = h
			}
		}
		return i < len(v) && v[i].lo <= x
	}
	x := addr128(a)
	v := s.v6
	i, j := 0, len(v)
	for i < j {
		h := int(uint(i+j) >> 1)
		if v[h].hi.less(x) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < len(v) && !x.less(v[i].lo)
}

// ParsePrefix reads one list entry: a CIDR prefix ("192.0.2.0/24",
// "2001:db8::/32") or a bare address (a /32 or /128), as policy.ParseCIDR
// does (policy validates the lists with the same rules). Host bits below the
// mask are refused rather than silently dropped, since "10.1.2.3/8" is more
// likely a typo than a wish to trust all of 10/8. IPv4-mapped IPv6 prefixes
// are returned as the IPv4 prefix they carry.
func ParsePrefix(s string) (netip.Prefix, error) { return policy.ParseCIDR(s) }

// ParseRanges compiles a CIDR list (see ParsePrefix for an entry's syntax).
// An error names the offending entry by index. Overlapping and adjacent
// entries are merged.
func ParseRanges(list []string) (RangeSet, error) {
	if len(list) > MaxRanges {
		return RangeSet{}, fmt.Errorf("%d entries, more than the %d allowed", len(list), MaxRanges)
	}
	ps := make([]netip.Prefix, 0, len(list))
	for i, e := range list {
		p, err := ParsePrefix(e)
		if err != nil {
			return RangeSet{}, fmt.Errorf("[%d]: %w", i, err)
		}
		ps = append(ps, p)
	}
	return compileRanges(ps), nil
}

// CanonicalRanges validates a CIDR list and returns it canonicalised (masked
// prefixes in their shortest spelling, bare addresses as /32 or /128, sorted,
// duplicates removed), so equal lists store equal.
func CanonicalRanges(list []string) ([]string, error) {
	if _, err := ParseRanges(list); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		p, _ := ParsePrefix(e)
		out = append(out, p.String())
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func compileRanges(ps []netip.Prefix) RangeSet {
	s := RangeSet{n: len(ps)}
	for _, p := range ps {
		if p.Addr().Is4() {
			lo, hi := prefixBounds4(p)
			s.v4 = append(s.v4, range4{lo, hi})
		} else {
			lo, hi := prefixBounds6(p)
			s.v6 = append(s.v6, range6{lo, hi})
		}
	}
	slices.SortFunc(s.v4, func(a, b range4) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	slices.SortFunc(s.v6, func(a, b range6) int {
		switch {
		case a.lo.less(b.lo):
			return -1
		case b.lo.less(a.lo):
			return 1
		}
		return 0
	})
	// Merge overlapping and adjacent intervals.
	m4 := s.v4[:0]
	for _, r := range s.v4 {
		if n := len(m4); n > 0 && (m4[n-1].hi == ^uint32(0) || r.lo <= m4[n-1].hi+1) {
			if r.hi > m4[n-1].hi {
				m4[n-1].hi = r.hi
			}
			continue
		}
		m4 = append(m4, r)
	}
	s.v4 = slices.Clip(m4)
	m6 := s.v6[:0]
	for _, r := range s.v6 {
		if n := len(m6); n > 0 {
			nx, ok := m6[n-1].hi.next()
			if !ok || !nx.less(r.lo) {
				if m6[n-1].hi.less(r.hi) {
					m6[n-1].hi = r.hi
				}
				continue
			}
		}
		m6 = append(m6, r)
	}
	s.v6 = slices.Clip(m6)
	return s
}
