package service

import (
	"strings"

	"github.com/tollgate/tollgate/policy"
)

// packedHighRisk is the high-risk list in force as the service keeps it
// between compiles, for export: the prefixes in one string, each entry's
// end offset and the index of its (country, category, source), which a
// list of a million prefixes repeats a few hundred times. About 17 bytes an
// entry against the decoded slice's 80 (76 MiB for 1,000,000 prefixes), so
// the daemon does not keep a second, larger copy of what the snapshot has
// compiled. entries rebuilds the decoded list, in its order, on demand.
type packedHighRisk struct {
	prefixes string
	ends     []uint32
	meta     []uint32
	tuples   []hrTuple
}

type hrTuple struct{ country, category, source string }

func packHighRisk(l []policy.HighRiskEntry) *packedHighRisk {
	n := 0
	for i := range l {
		n += len(l[i].Prefix)
	}
	var b strings.Builder
	b.Grow(n)
	p := &packedHighRisk{ends: make([]uint32, len(l)), meta: make([]uint32, len(l))}
	ids := map[hrTuple]uint32{}
	for i := range l {
		e := &l[i]
		b.WriteString(e.Prefix)
		p.ends[i] = uint32(b.Len())
		t := hrTuple{e.Country, e.Category, e.Source}
		id, ok := ids[t]
		if !ok {
			id = uint32(len(p.tuples))
			ids[t] = id
			// Copies: the tuple's strings may point into the parsed file.
			p.tuples = append(p.tuples, hrTuple{strings.Clone(t.country), strings.Clone(t.category), strings.Clone(t.source)})
		}
		p.meta[i] = id
	}
	p.prefixes = b.String()
	return p
}

// len is the number of entries.
func (p *packedHighRisk) len() int {
	if p == nil {
		return 0
	}
	return len(p.ends)
}

// entries rebuilds the list, entry for entry; the caller owns it.
func (p *packedHighRisk) entries() []policy.HighRiskEntry {
	if p == nil {
		return nil
	}
	out := make([]policy.HighRiskEntry, len(p.ends))
	start := uint32(0)
	for i, end := range p.ends {
		t := &p.tuples[p.meta[i]]
		out[i] = policy.HighRiskEntry{Prefix: p.prefixes[start:end], Country: t.country, Category: t.category, Source: t.source}
		start = end
	}
	return out
}
