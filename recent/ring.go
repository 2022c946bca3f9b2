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

// A record is six words: the sequence word, the time (Unix ns), the
// source address (16 bytes, IPv4 mapped), the number and flags, and the
// names and verdict:
//
//	word 4: bits 0–49 the number's digits as a binary value (or, with
//	        numInterned, the intern id of the string), 50–53 how many
//	        digits (leading zeros kept), 54 a leading "+", 55 numInterned,
//	        56–63 the flags below
//	word 5: bits 0–19 the account's intern id, 20–39 the subaccount's,
//	        40–49 the country (packCountry), 50–55 the action, 56–63 the
//	        reason
//
// An E.164 number ("+" and up to 15 digits) or a short code's digits are
// held in the record; any other dialled string, and the names, are held
// once in the ring's intern table (names.go), which is bounded.
const (
	// RecordBytes is the size of one record in memory (the file holds
	// the words after the sequence word, and the names once).
	RecordBytes = words * 8
)

const (
	words = 6

	numDigitsShift = 50
	numPlus        = 1 << 54
	numInterned    = 1 << 55
	flagsShift     = 56
	maxDigits      = 15

	subShift     = 20
	countryShift = 40
	actionShift  = 50
	reasonShift  = 56
)

// Record flags.
const (
	flagIPv4 = 1 << iota
	flagIPv6
	flagTruncated // a name or the dialled string could not be held
	flagRawNumber // the number is the dialled string, not an E.164 number
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
	names  *names
}

type slot [words]atomic.Uint64 // [0] sequence (index+1; 0 never written, busy while written), [1] unix ns, [2:] data

// busy marks a slot a writer is filling: the one writer whose swap found
// something else owns it until it stores the record's sequence.
const busy = ^uint64(0)

// New returns a ring of size records that forgets records older than
// maxAge (0: only the size bounds it). size <= 0 returns nil: no ring.
// The array (RecordBytes per record) and the intern table (at most
// MaxNames names in NameArenaBytes) are mapped at once outside the Go heap
// and never freed: a daemon has one ring for its lifetime; pages no record
// reached yet cost no resident memory.
func New(size int, maxAge time.Duration) *Ring {
	if size <= 0 {
		return nil
	}
	return newRing(size, maxAge, MaxNames, NameArenaBytes)
}

func newRing(size int, maxAge time.Duration, maxNames, arena int) *Ring {
	return &Ring{slots: mapSlice[slot](size), maxAge: maxAge, names: newNames(maxNames, arena)}
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
	number, raw := unsafeString(e164), false
	if len(e164) == 0 {
		number, raw = dialled, true
	}
	var w [words]uint64
	w[1] = uint64(now.UnixNano())
	r.encode(&w, account, sub, number, raw, srcIP, action, reason, country)
	i := r.next.Add(1) - 1
	s := &r.slots[i%uint64(len(r.slots))]
	if s[0].Swap(busy) == busy {
		r.lapped.Add(1)
		return
	}
	p := (*[words]uint64)(unsafe.Pointer(s))
	p[1], p[2], p[3], p[4], p[5] = w[1], w[2], w[3], w[4], w[5]
	s[0].Store(i + 1)
}

// encode fills words 2–5 of a record, interning what is not held in it.
func (r *Ring) encode(w *[words]uint64, account, sub, number string, raw bool, srcIP string, action, reason uint8, country string) {
	var flags uint64
	if srcIP != "" {
		if ip, err := netip.ParseAddr(srcIP); err == nil {
			b := ip.As16()
			w[2] = binary.LittleEndian.Uint64(b[:8])
			w[3] = binary.LittleEndian.Uint64(b[8:])
			if ip.Is4() {
				flags |= flagIPv4
			} else {
				flags |= flagIPv6
			}
		}
	}
	if raw {
		flags |= flagRawNumber
	}
	num, ok := packNumber(number)
	if !ok {
		id, ok := r.names.intern(number)
		if !ok {
			flags |= flagTruncated
		}
		num = uint64(id) | numInterned
	}
	w[4] = num | flags<<flagsShift
	aid, ok1 := r.names.intern(account)
	sid, ok2 := r.names.intern(sub)
	if !ok1 || !ok2 || action >= 1<<(reasonShift-actionShift) {
		w[4] |= flagTruncated << flagsShift
	}
	w[5] = uint64(aid) | uint64(sid)<<subShift | uint64(packCountry(country))<<countryShift |
		uint64(action&(1<<(reasonShift-actionShift)-1))<<actionShift | uint64(reason)<<reasonShift
}

// packNumber holds an optional "+" and 1–15 digits in a record's number
// bits; ok is false for anything else.
func packNumber(s string) (uint64, bool) {
	var w uint64
	if len(s) > 0 && s[0] == '+' {
		w, s = numPlus, s[1:]
	}
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	return w | v | uint64(len(s))<<numDigitsShift, true
}

// appendNumber appends what packNumber packed.
func appendNumber(b []byte, w uint64) []byte {
	n := int(w>>numDigitsShift) & 0xf
	if n == 0 {
		return b
	}
	if w&numPlus != 0 {
		b = append(b, '+')
	}
	var d [maxDigits]byte
	v := w & (1<<numDigitsShift - 1)
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
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

// decodeBuf is what decodeInto needs beside the names: the number and the
// address as text.
const decodeBuf = 16 + 64

// decodeInto turns a record's words into c, whose strings point into buf
// (at least decodeBuf bytes), reused by the next record, and into the
// ring's intern table.
func (r *Ring) decodeInto(w *raw, c *Call, buf []byte) {
	num, meta := w[4], w[5]
	flags := num >> flagsShift
	*c = Call{Time: time.Unix(0, int64(w[1])).UTC(),
		Action: uint8(meta>>actionShift) & (1<<(reasonShift-actionShift) - 1), Reason: uint8(meta >> reasonShift)}
	c.Truncated = flags&flagTruncated != 0
	var ok1, ok2, ok3 bool
	c.Account, ok1 = r.names.get(uint32(meta & idMask))
	c.Subaccount, ok2 = r.names.get(uint32(meta >> subShift & idMask))
	if num&numInterned != 0 {
		c.To, ok3 = r.names.get(uint32(num & idMask))
	} else {
		c.To, ok3 = unsafeString(appendNumber(buf[:0:16], num)), true
	}
	if !ok1 || !ok2 || !ok3 {
		c.Truncated = true
	}
	if cc := meta >> countryShift & (1<<10 - 1); int(cc) < len(countryNames) {
		c.Country = countryNames[cc]
	}
	var ip16 [16]byte
	binary.LittleEndian.PutUint64(ip16[:8], w[2])
	binary.LittleEndian.PutUint64(ip16[8:], w[3])
	ipb := buf[16:16:len(buf)]
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
	var buf [decodeBuf]byte
	var c Call
	visited := 0
	for _, k := range keys {
		if !r.load(int((k.seq-1)%n), &w) || w[0] != k.seq {
			continue
		}
		r.decodeInto(&w, &c, buf[:])
		visited++
		if !fn(&c) {
			break
		}
	}
	return visited
}
