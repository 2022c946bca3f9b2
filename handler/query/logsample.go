package query

import (
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/matcher"
)

// Defaults of the reject-log sampler: a fraud burst rejects thousands of
// calls a second for the same account and reason, and one line each wrote
// 43 MB of log in 25 s of load. Five lines per (account, subaccount, reason)
// every 10 s say what is happening; the rest are counted.
const (
	DefaultLogBurst    = 5
	DefaultLogInterval = 10 * time.Second
	// logSlots bounds the sampler's table (a power of two). A key that finds
	// its slot taken by another key takes it over and logs, so a distinct
	// account and reason is never hidden behind another; collisions only
	// cost sampling, not visibility.
	logSlots = 4096
)

// logSlot is one key's window: all atomics, no lock on the query path.
type logSlot struct {
	key    atomic.Uint64
	window atomic.Int64  // interval number the count n belongs to
	n      atomic.Uint32 // lines asked for in window
	supp   atomic.Uint64 // suppressed since this key's last written line
	total  atomic.Uint64 // suppressed ever (read by the summary)
	_      [24]byte      // one slot per cache line: hot accounts do not share
}

// logSampler decides whether a refused call's log line is written: the first
// burst lines per key and interval are, the rest are counted and reported on
// the key's next written line ("suppressed") and in a summary line once per
// interval. Its zero value is unusable; burst <= 0 means no sampling.
type logSampler struct {
	burst    uint32
	interval int64 // ns
	now      func() int64
	slots    *[logSlots]logSlot
	sumAt    atomic.Int64  // interval number of the last summary
	reported atomic.Uint64 // sum of the slots' total at the last summary
}

// newLogSampler returns nil for burst <= 0. now is its clock (nil: the
// system's).
func newLogSampler(burst int, interval time.Duration, now func() time.Time) *logSampler {
	if burst <= 0 {
		return nil
	}
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	s := &logSampler{burst: uint32(burst), interval: int64(interval), now: func() int64 { return time.Now().UnixNano() },
		slots: new([logSlots]logSlot)}
	if now != nil {
		s.now = func() int64 { return now().UnixNano() }
	}
	s.sumAt.Store(s.now() / s.interval)
	return s
}

// logKey hashes (account, subaccount, reason) with FNV-1a; 0 is kept for an
// empty slot.
func logKey(account, subaccount string, r matcher.Reason) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(account); i++ {
		h = (h ^ uint64(account[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211
	for i := 0; i < len(subaccount); i++ {
		h = (h ^ uint64(subaccount[i])) * 1099511628211
	}
	h = (h ^ uint64(r) ^ 0x100) * 1099511628211
	if h == 0 {
		h = 1
	}
	return h
}

// allow reports whether the line of key is written, and how many lines of
// the key were suppressed since its last written one. summary > 0 asks the
// caller to write the once-per-interval summary line with that count.
func (s *logSampler) allow(key uint64) (ok bool, suppressed, summary uint64) {
	now := s.now()
	w := now / s.interval
	if last := s.sumAt.Load(); w != last && s.sumAt.CompareAndSwap(last, w) {
		summary = s.collect()
	}
	sl := &s.slots[key&(logSlots-1)]
	if sl.key.Load() != key {
		// a new key, or another key's slot: take it over and write the line
		sl.key.Store(key)
		sl.window.Store(w)
		sl.n.Store(1)
		return true, sl.supp.Swap(0), summary
	}
	if cur := sl.window.Load(); cur != w && sl.window.CompareAndSwap(cur, w) {
		sl.n.Store(0)
	}
	if sl.n.Add(1) <= s.burst {
		return true, sl.supp.Swap(0), summary
	}
	sl.supp.Add(1)
	sl.total.Add(1)
	return false, 0, summary
}

// collect returns the lines suppressed since the previous summary.
func (s *logSampler) collect() uint64 {
	var sum uint64
	for i := range s.slots {
		sum += s.slots[i].total.Load()
	}
	return sum - s.reported.Swap(sum)
}
