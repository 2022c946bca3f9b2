package recent

import (
	"hash/maphash"
	"sync/atomic"
)

// The intern table of a ring: the account, subaccount and dialled-string
// names its records refer to by a 20-bit id instead of holding the bytes
// (issue 17: 104 → 48 bytes a record).
//
// It is bounded twice — at most MaxNames strings of at most
// MaxNameBytes each, and at most NameArenaBytes of them together — so that
// a flood of calls from random account names cannot grow memory. When it
// is full a new name is not interned: the record is still written (time,
// number, source address, verdict, country) and flagged Truncated, as a
// name too long for the record was before; a replay skips and counts it
// (Report.Skipped) and tollgate_recent_names_refused_total counts it.
// Names already held keep working. The table is rebuilt with only the
// names the kept records use when the ring is loaded from its file, so a
// restart returns the space a flood took.
//
// Reads and inserts take no lock: the hash table is an array of atomic
// words (a 12-bit hash tag and the id), an insert reserves an id and arena
// bytes with atomic adds, writes the bytes, publishes their place with an
// atomic store and then claims an empty hash slot with a compare-and-swap.
// Two writers of the same new name probe the same slots, so one wins and
// the other finds its entry: a name is held once (the loser's reserved id
// stays unused, which only the bound pays for).
const (
	// MaxNames bounds the names a ring's table holds (ids 1..MaxNames-1;
	// id 0 is the empty string).
	MaxNames = 1 << 18
	// NameArenaBytes bounds the bytes of the names together.
	NameArenaBytes = 4 << 20
	// MaxNameBytes is the longest name interned; a longer one is kept as
	// truncated.
	MaxNameBytes = 255
	idBits       = 20
	idMask       = 1<<idBits - 1
)

type names struct {
	slots []atomic.Uint32 // hash table: 0 empty, else tag<<idBits | id
	offs  []atomic.Uint64 // id → offset<<8 | length; 0 not (yet) published
	arena []byte
	maxID uint64 // ids below it may be handed out
	next  atomic.Uint64
	used  atomic.Uint64
	// refused counts names not interned because the table was full.
	refused atomic.Uint64
	seed    maphash.Seed
}

// newNames maps a table for max names (a power of two, at most
// MaxNames) and arena bytes. Like the ring, it lives outside the Go heap
// and pages no name reached cost nothing resident.
func newNames(max, arena int) *names {
	t := &names{seed: maphash.MakeSeed(), maxID: uint64(max)}
	t.slots = mapSlice[atomic.Uint32](2 * max)
	t.offs = mapSlice[atomic.Uint64](max)
	t.arena = mapSlice[byte](arena)
	t.next.Store(1)
	return t
}

// reset empties the table (only while nothing else uses the ring).
func (t *names) reset() {
	if t.next.Load() == 1 {
		return // untouched: keep its pages unmapped
	}
	clear(t.slots)
	clear(t.offs[:min(t.next.Load(), t.maxID)])
	t.next.Store(1)
	t.used.Store(0)
}

// count is how many ids were handed out.
func (t *names) count() uint64 { return min(t.next.Load(), t.maxID) - 1 }

// get returns the string of id ("" for 0 or an unknown id). It points into
// the arena, which is never rewritten while the ring serves.
func (t *names) get(id uint32) (string, bool) {
	if id == 0 {
		return "", true
	}
	if uint64(id) >= t.maxID {
		return "", false
	}
	o := t.offs[id].Load()
	if o == 0 {
		return "", false
	}
	off, n := o>>8, o&0xff
	return unsafeString(t.arena[off : off+n]), true
}

// intern returns s's id, adding s when it is new; ok is false when s
// cannot be held (too long, or the table is full).
func (t *names) intern(s string) (id uint32, ok bool) {
	if s == "" {
		return 0, true
	}
	if len(s) > MaxNameBytes {
		t.refused.Add(1)
		return 0, false
	}
	h := maphash.String(t.seed, s)
	tag := uint32(h>>52) & 0xfff
	mask := uint64(len(t.slots) - 1)
	var mine uint32
	for i, probes := h&mask, 0; probes < len(t.slots); i, probes = (i+1)&mask, probes+1 {
		v := t.slots[i].Load()
		if v == 0 {
			if mine == 0 {
				if mine = t.reserve(s); mine == 0 {
					t.refused.Add(1)
					return 0, false
				}
			}
			if t.slots[i].CompareAndSwap(0, tag<<idBits|mine) {
				return mine, true
			}
			v = t.slots[i].Load()
		}
		if v>>idBits == tag {
			if got, _ := t.get(v & idMask); got == s {
				return v & idMask, true
			}
		}
	}
	t.refused.Add(1)
	return 0, false
}

// reserve copies s into the arena under a new id and publishes it; 0 when
// an id or the bytes are not left.
func (t *names) reserve(s string) uint32 {
	n := uint64(len(s))
	if t.next.Load() >= t.maxID || t.used.Load()+n > uint64(len(t.arena)) {
		return 0
	}
	id := t.next.Add(1) - 1
	if id >= t.maxID {
		return 0
	}
	off := t.used.Add(n) - n
	if off+n > uint64(len(t.arena)) {
		return 0
	}
	copy(t.arena[off:off+n], s)
	t.offs[id].Store(off<<8 | n)
	return uint32(id)
}
