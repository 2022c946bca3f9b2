package velocity

import (
	"sync/atomic"

	"github.com/tollgate/tollgate/matcher"
)

// ringSize is the number of buckets of every window ring: 60 one-second
// buckets make calls per minute exact to the second, and a window of W
// minutes gets buckets of ceil(W/60) minutes.
const ringSize = 60

// ring counts events in time buckets without a lock. Each bucket is one
// atomic word: the bucket's tag (which second or which group of minutes it
// counts) in the high 32 bits and the count in the low 32. A writer that
// finds an old tag starts the bucket over, so a window rolls over by itself
// and a reader only adds the buckets whose tags are in its range.
type ring [ringSize]atomic.Uint64

func (r *ring) add(tag uint32) {
	b := &r[tag%ringSize]
	for {
		old := b.Load()
		nw := uint64(tag)<<32 | 1
		if uint32(old>>32) == tag {
			if uint32(old) == ^uint32(0) {
				return // saturated
			}
			nw = old + 1
		}
		if b.CompareAndSwap(old, nw) {
			return
		}
	}
}

// sum adds the buckets tagged from..to (inclusive).
func (r *ring) sum(from, to uint32) int {
	n := 0
	for i := range r {
		v := r[i].Load()
		if t := uint32(v >> 32); t >= from && t <= to {
			n += int(uint32(v))
		}
	}
	return n
}

// count is the count of one bucket tag.
func (r *ring) count(tag uint32) int {
	v := r[tag%ringSize].Load()
	if uint32(v>>32) != tag {
		return 0
	}
	return int(uint32(v))
}

func (r *ring) reset() {
	for i := range r {
		r[i].Store(0)
	}
}

// window is a ring over a window of minutes: bucket tags are minute/width.
type window struct {
	minutes int    // the window
	width   uint32 // minutes per bucket
	buckets uint32 // buckets that cover the window
}

func newWindow(minutes int) window {
	w := uint32((minutes + ringSize - 1) / ringSize)
	return window{minutes: minutes, width: w, buckets: (uint32(minutes) + w - 1) / w}
}

func (w window) tag(unixMinute uint32) uint32 { return unixMinute / w.width }

// span is the tag range that covers the window ending at unixMinute.
func (w window) span(unixMinute uint32) (from, to uint32) {
	to = w.tag(unixMinute)
	return to - (w.buckets - 1), to
}

// Sequential calls are packed into one word: a 32-bit hash of the number,
// a 12-bit run length and the 20-bit minute of the last call of the run. A
// call to the same number within the rule's window extends the run; any
// other call starts a new one.
const (
	seqCountBits = 12
	seqMinBits   = 20
	seqMaxCount  = 1<<seqCountBits - 1
	seqMinMask   = 1<<seqMinBits - 1
)

func numberHash(n matcher.Number) uint32 {
	h := uint64(n) * 0x9E3779B97F4A7C15
	return uint32(h>>32) | 1 // never 0, the empty word's hash
}

func seqRecord(w *atomic.Uint64, n matcher.Number, unixMinute uint32, windowMinutes int) {
	h := numberHash(n)
	m := uint64(unixMinute & seqMinMask)
	for {
		old := w.Load()
		cnt := uint64(1)
		if uint32(old>>32) == h && seqFresh(old, unixMinute, windowMinutes) {
			cnt = min((old>>seqMinBits)&seqMaxCount+1, seqMaxCount)
		}
		nw := uint64(h)<<32 | cnt<<seqMinBits | m
		if w.CompareAndSwap(old, nw) {
			return
		}
	}
}

// seqFresh reports whether the run's last call is within the window.
func seqFresh(v uint64, unixMinute uint32, windowMinutes int) bool {
	last := uint32(v & seqMinMask)
	return (unixMinute-last)&seqMinMask < uint32(windowMinutes)
}

// seqValue is the current run length (0 once the run is older than the
// window).
func seqValue(v uint64, unixMinute uint32, windowMinutes int) int {
	if v == 0 || !seqFresh(v, unixMinute, windowMinutes) {
		return 0
	}
	return int((v >> seqMinBits) & seqMaxCount)
}
