package service

import (
	"strings"

	"github.com/tollgate/tollgate/policy"
)

// packedHighRisk is the high-risk list in force as the service keeps it
// between compiles, for export: each prefix packed into a uint64 and the
// index of its (country, category, source), which a list of a million
// prefixes repeats a few hundred times. 10 bytes an entry against the
// decoded slice's 80 (76 MiB for 1,000,000 prefixes), so the daemon does
// not keep a second, larger copy of what the snapshot has compiled.
// entries rebuilds the decoded list, in its order, on demand.
type packedHighRisk struct {
	// digits holds each prefix, "+" and 1 to 15 digits, as 4-bit digit+1
	// nibbles from the top (0 ends it). When a prefix is not of that form
	// (the stored and file lists are canonical, so only in tests), digits
	// is nil and prefixes holds them all, each ending at ends[i].
	digits   []uint64
	prefixes string
	ends     []uint32
	// meta16 is the tuple index of each entry while there are at most
	// 65,536 tuples, else meta.
	meta16 []uint16
	meta   []uint32
	tuples []hrTuple
}

type hrTuple struct{ country, category, source string }

// packDigits packs "+" and 1 to 15 digits; ok is false for anything else.
func packDigits(p string) (v uint64, ok bool) {
	if len(p) < 2 || len(p) > 16 || p[0] != '+' {
		return 0, false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v |= uint64(c-'0'+1) << (60 - 4*(i-1))
	}
	return v, true
}

// appendDigits appends the prefix packDigits packed into v.
func appendDigits(b []byte, v uint64) []byte {
	b = append(b, '+')
	for sh := 60; sh >= 4; sh -= 4 {
		d := byte(v>>sh) & 0xf
		if d == 0 {
			break
		}
		b = append(b, '0'+d-1)
	}
	return b
}

func packHighRisk(l []policy.HighRiskEntry) *packedHighRisk {
	p := &packedHighRisk{digits: make([]uint64, len(l))}
	for i := range l {
		v, ok := packDigits(l[i].Prefix)
		if !ok {
			p.digits = nil
			break
		}
		p.digits[i] = v
	}
	if p.digits == nil {
		n := 0
		for i := range l {
			n += len(l[i].Prefix)
		}
		var b strings.Builder
		b.Grow(n)
		p.ends = make([]uint32, len(l))
		for i := range l {
			b.WriteString(l[i].Prefix)
			p.ends[i] = uint32(b.Len())
		}
		p.prefixes = b.String()
	}
	meta := make([]uint32, len(l))
	ids := map[hrTuple]uint32{}
	for i := range l {
		e := &l[i]
		t := hrTuple{e.Country, e.Category, e.Source}
		id, ok := ids[t]
		if !ok {
			id = uint32(len(p.tuples))
			ids[t] = id
			// Copies: the tuple's strings may point into the parsed file.
			p.tuples = append(p.tuples, hrTuple{strings.Clone(t.country), strings.Clone(t.category), strings.Clone(t.source)})
		}
		meta[i] = id
	}
	if len(p.tuples) <= 1<<16 {
		p.meta16 = make([]uint16, len(l))
		for i, id := range meta {
			p.meta16[i] = uint16(id)
		}
	} else {
		p.meta = meta
	}
	return p
}

// len is the number of entries.
func (p *packedHighRisk) len() int {
	if p == nil {
		return 0
	}
	if p.meta16 != nil {
		return len(p.meta16)
	}
	return len(p.meta)
}

// entries rebuilds the list, entry for entry; the caller owns it.
func (p *packedHighRisk) entries() []policy.HighRiskEntry {
	if p == nil {
		return nil
	}
	n := p.len()
	out := make([]policy.HighRiskEntry, n)
	prefixes, ends := p.prefixes, p.ends
	if p.digits != nil {
		// every prefix in one string, as the fallback keeps them
		b := make([]byte, 0, 10*n)
		ends = make([]uint32, n)
		for i, v := range p.digits {
			b = appendDigits(b, v)
			ends[i] = uint32(len(b))
		}
		prefixes = string(b)
	}
	start := uint32(0)
	for i, end := range ends {
		var id uint32
		if p.meta16 != nil {
			id = uint32(p.meta16[i])
		} else {
			id = p.meta[i]
		}
		t := &p.tuples[id]
		out[i] = policy.HighRiskEntry{Prefix: prefixes[start:end], Country: t.country, Category: t.category, Source: t.source}
		start = end
	}
	return out
}
