// Package recent keeps the recent check queries — who called, what number
// (as E.164), from which address, when, and what tollgate answered — in a
// fixed ring, so that a proposed policy can be tried on yesterday's traffic
// (POST /v1/what-if) before it is put in force.
//
// The ring sits beside the query path: Add takes no lock and allocates
// nothing. The ring is one preallocated, pointer-free array of fixed-size
// records, each a few machine words written with atomic stores behind a
// sequence word; a writer claims a slot with one atomic add, and a reader
// (a what-if replay, the periodic save) copies a slot only when its
// sequence word is the same before and after the copy, so it never sees a
// half-written record and never stops a writer.
package recent

import (
	"cmp"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Field widths of a record. Names longer than NameBytes together, and
// dialled strings longer than NumberBytes that have no E.164 form, are
// kept truncated and flagged: a replay skips them (and says how many).
const (
	// NameBytes holds the account and subaccount names together.
	NameBytes = 44
	// NumberBytes holds the E.164 number ("+" and up to 15 digits), or the
	// dialled string when it has no E.164 form.
	NumberBytes = 20
	// RecordBytes is the size of one record in memory and on disk.
	RecordBytes = words * 8
)

const (
	words = 13
	// byte offsets in a record's data (after the sequence and time words)
	offIP    = 0
	offNum   = offIP + 16
	offNames = offNum + NumberBytes
	offMeta  = offNames + NameBytes
	dataLen  = offMeta + 8 // 88 = 11 words
)

// Record flags.
const (
	flagIPv4 = 1 << iota
	flagIPv6
	flagTruncated // a name or a dialled string did not fit
	flagRawNumber // Number is the dialled string, not an E.164 number
)

// Call is one recorded query, decoded.
type Call struct {
	Time       time.Time
	Account    string
	Subaccount string
	// To is the E.164 number the call resolved to ("+..."), or the string
	// dialled when it did not resolve to one (a short code, an invalid
	// number).
	To    string
	SrcIP string
	// Action and Reason are what tollgate answered (matcher.Action and
	// matcher.Reason values).
	Action, Reason uint8
	// Country is the destination's country ("" when unknown).
	Country string
	// Truncated: a name or the dialled string did not fit its field, so
	// the record cannot be replayed faithfully.
	Truncated bool
}

// Ring is the recent-traffic ring. The zero value is unusable; use New.
// A nil *Ring is a disabled ring: Add does nothing.
type Ring struct {
	slots  []slot
	next   atomic.Uint64
	maxAge time.Duration
	// lapped counts records given up because a writer stalled mid-record
	// held their slot (the ring went round while it slept).
	lapped atomic.Uint64
}

type slot [words]atomic.Uint64 // [0] sequence (index+1; 0 never written, busy while written), [1] unix ns, [2:] data

// busy marks a slot a writer is filling: the one writer whose swap found
// something else owns it until it stores the record's sequence.
const busy = ^uint64(0)

// New returns a ring of size records that forgets records older than
// maxAge (0: only the size bounds it). size <= 0 returns nil: no ring.
// The array (RecordBytes per record) is mapped at once outside the Go heap
// and never freed: a daemon has one ring for its lifetime; pages no record
// reached yet cost no resident memory.
func New(size int, maxAge time.Duration) *Ring {
	if size <= 0 {
		return nil
	}
	return &Ring{slots: allocSlots(size), maxAge: maxAge}
}

// Size is the ring's capacity in records.
func (r *Ring) Size() int {
	if r == nil {
		return 0
	}
	return len(r.slots)
}

// MaxAge is the age beyond which records are forgotten (0: none).
func (r *Ring) MaxAge() time.Duration {
	if r == nil {
		return 0
	}
	return r.maxAge
}

// Lapped is how many records Add gave up because their slot was still
// being written by a writer one lap behind.
func (r *Ring) Lapped() uint64 {
	if r == nil {
		return 0
	}
	return r.lapped.Load()
}

// Written is how many records were ever added (including those since
// overwritten).
func (r *Ring) Written() uint64 {
	if r == nil {
		return 0
	}
	return r.next.Load()
}

// Add records one query. e164 is the verdict's number ("+..." or a short
// code's digits; empty for an invalid number, in which case dialled is
// kept instead). It never blocks and never allocates.
//
// The record is written in place between two sequence-word updates (a
// seqlock): the swap to busy orders before the plain stores of the data,
// the store of the new sequence after them, and readers load every word
// atomically and keep a copy only when the sequence word did not change.
// The swap also makes the writer the slot's only one: a writer that finds
// the slot busy (another, claimed one lap earlier, stalled mid-record)
// gives its record up rather than write over the other's, which would let
// a reader take the mix of both for a whole record.
// The data stores are deliberately plain (a dozen atomic stores cost more
// than the rest of Add), hence go:norace: readers detect the overlap the
// race detector would report.
//
//go:norace
func (r *Ring) Add(now time.Time, account, sub, dialled string, e164 []byte, srcIP string, action, reason uint8, country string) {
	if r == nil {
		return
	}
	i := r.next.Add(1) - 1
	s := &r.slots[i%uint64(len(r.slots))]
	if s[0].Swap(busy) == busy {
		r.lapped.Add(1)
		return
	}
	p := (*[RecordBytes]byte)(unsafe.Pointer(s))
	binary.LittleEndian.PutUint64(p[8:], uint64(now.UnixNano()))
	d := p[16:]
	var flags byte
	ip16 := (*[16]byte)(d[offIP : offIP+16])
	*ip16 = [16]byte{}
	if srcIP != "" {
		if ip, err := netip.ParseAddr(srcIP); err == nil {
			*ip16 = ip.As16()
			if ip.Is4() {
				flags |= flagIPv4
			} else {
				flags |= flagIPv6
			}
		}
	}
	var nn int
	if len(e164) > 0 {
		nn = copy(d[offNum:offNum+NumberBytes], e164)
		if nn < len(e164) {
			flags |= flagTruncated
		}
	} else {
		flags |= flagRawNumber
		nn = copy(d[offNum:offNum+NumberBytes], dialled)
		if nn < len(dialled) {
			flags |= flagTruncated
		}
	}
	an := copy(d[offNames:offNames+NameBytes], account)
	sn := copy(d[offNames+an:offNames+NameBytes], sub)
	if an < len(account) || sn < len(sub) {
		flags |= flagTruncated
	}
	d[offMeta] = byte(an)
	d[offMeta+1] = byte(sn)
	d[offMeta+2] = byte(nn)
	d[offMeta+3] = action
	d[offMeta+4] = reason
	d[offMeta+5] = flags
	binary.LittleEndian.PutUint16(d[offMeta+6:], packCountry(country))
	s[0].Store(i + 1)
}

// packCountry packs an ISO code (two capitals) or "001" into 1..677; 0 for
// anything else.
func packCountry(cc string) uint16 {
	switch {
	case len(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z':
		return uint16(cc[0]-'A')*26 + uint16(cc[1]-'A') + 1
	case cc == "001":
		return 26*26 + 1
	}
	return 0
}

var countryNames = func() (t [26*26 + 2]string) {
	for i := 0; i < 26*26; i++ {
		t[i+1] = string([]byte{byte('A' + i/26), byte('A' + i%26)})
	}
	t[26*26+1] = "001"
	return t
}()

// raw is one record's words as copied out of a slot (sequence included).
type raw [words]uint64

// load copies slot i if it holds a whole record.
func (r *Ring) load(i int, out *raw) bool {
	s := &r.slots[i]
	seq := s[0].Load()
	if seq == 0 || seq == busy {
		return false
	}
	for w := 1; w < words; w++ {
		out[w] = s[w].Load()
	}
	out[0] = seq
	return s[0].Load() == seq
}

// decodeInto turns a record's words into c, whose strings point into buf
// (at least dataLen+64 bytes), reused by the next record.
func (w *raw) decodeInto(c *Call, buf []byte) {
	d := buf[:dataLen]
	for i := 0; i < dataLen/8; i++ {
		binary.LittleEndian.PutUint64(d[i*8:], w[2+i])
	}
	an, sn, nn := int(d[offMeta]), int(d[offMeta+1]), int(d[offMeta+2])
	flags := d[offMeta+5]
	*c = Call{Time: time.Unix(0, int64(w[1])).UTC(), Action: d[offMeta+3], Reason: d[offMeta+4]}
	if an > NameBytes || sn > NameBytes-an || nn > NumberBytes {
		c.Truncated = true
		return
	}
	c.Account = unsafeString(d[offNames : offNames+an])
	c.Subaccount = unsafeString(d[offNames+an : offNames+an+sn])
	c.To = unsafeString(d[offNum : offNum+nn])
	c.Truncated = flags&flagTruncated != 0
	if cc := binary.LittleEndian.Uint16(d[offMeta+6:]); int(cc) < len(countryNames) {
		c.Country = countryNames[cc]
	}
	var ip16 [16]byte
	copy(ip16[:], d[offIP:offIP+16])
	ipb := buf[dataLen:dataLen:len(buf)]
	switch {
	case flags&flagIPv4 != 0:
		c.SrcIP = unsafeString(netip.AddrFrom16(ip16).Unmap().AppendTo(ipb))
	case flags&flagIPv6 != 0:
		c.SrcIP = unsafeString(netip.AddrFrom16(ip16).AppendTo(ipb))
	}
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Calls returns the records younger than the ring's maximum age at now,
// oldest first, as independent copies (tests, small rings). A replay of a
// large ring uses Each, which copies nothing.
func (r *Ring) Calls(now time.Time) []Call {
	var out []Call
	r.Each(now, func(c *Call) bool {
		x := *c
		x.Account, x.Subaccount = strings.Clone(c.Account), strings.Clone(c.Subaccount)
		x.To, x.SrcIP = strings.Clone(c.To), strings.Clone(c.SrcIP)
		out = append(out, x)
		return true
	})
	return out
}

// key orders the records of a replay: by time, then by the order added.
type key struct {
	t   int64
	seq uint64
}

// Each calls fn with every record younger than the ring's maximum age at
// now, oldest first (by time, then by the order they were added), until fn
// returns false. The Call and its strings are valid only during fn (they
// point into a buffer the next record reuses). Writers go on meanwhile: a
// record overwritten before fn reaches it is left out. It returns how many
// records it visited.
func (r *Ring) Each(now time.Time, fn func(*Call) bool) int {
	if r == nil {
		return 0
	}
	n := uint64(len(r.slots))
	end := r.next.Load()
	start := uint64(0)
	if end > n {
		start = end - n
	}
	var cutoff int64 = math.MinInt64
	if r.maxAge > 0 {
		cutoff = now.Add(-r.maxAge).UnixNano()
	}
	keys := make([]key, 0, end-start)
	for i := start; i < end; i++ {
		s := &r.slots[i%n]
		if s[0].Load() != i+1 {
			continue
		}
		if t := int64(s[1].Load()); t >= cutoff {
			keys = append(keys, key{t, i + 1})
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.t != b.t {
			return cmp.Compare(a.t, b.t)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var w raw
	var buf [dataLen + 64]byte
	var c Call
	visited := 0
	for _, k := range keys {
		if !r.load(int((k.seq-1)%n), &w) || w[0] != k.seq {
			continue
		}
		w.decodeInto(&c, buf[:])
		visited++
		if !fn(&c) {
			break
		}
	}
	return visited
}
