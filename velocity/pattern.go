package velocity

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// Patterns that per-account counters miss: distinct destinations and
// countries per scope, and the operator-wide count of accounts per number
// range. Both need a set, which does not fit in an atomic word; so the
// decision path only appends the attempt to a fixed journal (one slot,
// lock-free, no allocation) and the evaluator, single-threaded, folds the
// journal into the sets before it evaluates. A full journal drops the
// attempt and counts the drop: detection may then come late, a decision is
// never held up.

// journalSize is the journal's slots: at the default 250 ms interval it
// holds 262,144 recorded attempts a second, several times what one
// process decides. It is split into journalShards queues by account, so
// that decisions on different cores do not all write one word.
const (
	journalSize   = 1 << 16
	journalShards = 8
)

// journals is the sharded journal.
type journals [journalShards]*journal

func newJournals() *journals {
	var js journals
	for i := range js {
		js[i] = newJournal(journalSize / journalShards)
	}
	return &js
}

// shard is the queue of a scope's account: one account's attempts stay in
// order.
func (js *journals) shard(s *Scope) *journal {
	if s.parent != nil {
		s = s.parent
	}
	return js[s.shard]
}

func (js *journals) dropped() uint64 {
	var n uint64
	for _, j := range js {
		n += j.dropped.Load()
	}
	return n
}

// journalEntry is one attempt the sets need. seq orders the slot between
// the writers and the evaluator (Vyukov's bounded queue).
type journalEntry struct {
	seq     atomic.Uint64
	scope   *Scope
	dest    matcher.Number
	country matcher.Country
	minute  uint32
	own, up uint16 // rules of the scope and of its account whose distinct sets count it
	rng     bool   // counts for the range velocity
}

// journal is a bounded multi-writer, single-reader queue.
type journal struct {
	head    atomic.Uint64
	_       [56]byte // keep the writers' word off the reader's line
	tail    uint64   // the evaluator's
	dropped atomic.Uint64
	slots   []journalEntry
}

func newJournal(n int) *journal {
	j := &journal{slots: make([]journalEntry, n)}
	for i := range j.slots {
		j.slots[i].seq.Store(uint64(i))
	}
	return j
}

// push appends an attempt; false (and a counted drop) when full.
func (j *journal) push(s *Scope, dest matcher.Number, cc matcher.Country, minute uint32, own, up uint16, rng bool) bool {
	mask := uint64(len(j.slots) - 1)
	for {
		pos := j.head.Load()
		sl := &j.slots[pos&mask]
		switch seq := sl.seq.Load(); {
		case seq == pos:
			if !j.head.CompareAndSwap(pos, pos+1) {
				continue
			}
			sl.scope, sl.dest, sl.country, sl.minute, sl.own, sl.up, sl.rng = s, dest, cc, minute, own, up, rng
			sl.seq.Store(pos + 1)
			return true
		case seq < pos:
			j.dropped.Add(1)
			return false
		}
	}
}

// drain hands every entry written so far to f, in order. Evaluator only.
func (j *journal) drain(f func(e *journalEntry)) {
	mask := uint64(len(j.slots) - 1)
	for {
		sl := &j.slots[j.tail&mask]
		if sl.seq.Load() != j.tail+1 {
			return
		}
		f(sl)
		sl.scope = nil
		sl.seq.Store(j.tail + uint64(len(j.slots)))
		j.tail++
	}
}

// distinctSet is an exact set of up to a cap of members, each with the
// minute it was last seen: a member older than the window no longer
// counts. Once cap members are fresh the set stops growing (the level is
// reached; the value reads cap), so its memory is bounded by the level.
// Evaluator and admin reads only, under the scope's mu.
type distinctSet struct {
	m map[uint64]uint32
	// oldest is at most the oldest member's minute: while it is within
	// the window, no member can have left it and expire need not look
	oldest uint32
}

func (d *distinctSet) add(key uint64, minute uint32, window, cap int) {
	if _, ok := d.m[key]; !ok && len(d.m) >= cap {
		d.expire(minute, window)
		if len(d.m) >= cap {
			return
		}
	}
	if len(d.m) == 0 || int32(minute-d.oldest) < 0 {
		d.oldest = minute // (restored members come in any order)
	}
	d.m[key] = minute
}

func (d *distinctSet) expire(minute uint32, window int) {
	if len(d.m) == 0 || minute-d.oldest < uint32(window) {
		return
	}
	oldest := minute
	for k, last := range d.m {
		if minute-last >= uint32(window) {
			delete(d.m, k)
		} else if minute-last > minute-oldest {
			oldest = last
		}
	}
	d.oldest = oldest
}

// count is the members seen within the window ending at minute.
func (d *distinctSet) count(minute uint32, window int) int {
	if d == nil {
		return 0
	}
	d.expire(minute, window)
	return len(d.m)
}

func (d *distinctSet) clear() {
	if d != nil {
		clear(d.m)
	}
}

func newDistinct(cap int) *distinctSet {
	return &distinctSet{m: make(map[uint64]uint32, min(cap, 64))}
}

// fold applies one journal entry to its scopes' distinct sets.
func (e *Engine) fold(x *journalEntry) {
	if x.own != 0 {
		x.scope.foldDistinct(x.own, x.dest, x.country, x.minute)
	}
	if x.up != 0 && x.scope.parent != nil {
		x.scope.parent.foldDistinct(x.up, x.dest, x.country, x.minute)
	}
	if x.rng {
		e.ranges.add(x)
	}
}

func (s *Scope) foldDistinct(mask uint16, dest matcher.Number, cc matcher.Country, minute uint32) {
	cfg := s.cfg.Load()
	if cfg == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range cfg.rules {
		if mask&(1<<i) == 0 {
			continue
		}
		r := &cfg.rules[i]
		c := r.ctr.Load()
		if c == nil {
			continue
		}
		if r.has[mDistinctDest] && dest != 0 {
			if c.dests == nil {
				c.dests = newDistinct(r.distinctCap(mDistinctDest))
			}
			c.dests.add(uint64(dest), minute, r.win.minutes, r.distinctCap(mDistinctDest))
		}
		if r.has[mDistinctCountry] && cc != 0 {
			if c.countries == nil {
				c.countries = newDistinct(r.distinctCap(mDistinctCountry))
			}
			c.countries.add(uint64(cc), minute, r.win.minutes, r.distinctCap(mDistinctCountry))
		}
	}
}

// rangeConfig is the compiled policy.RangeVelocity.
type rangeConfig struct {
	src    policy.RangeVelocity
	digits int
	window int // minutes
	size   int
}

func compileRange(p *policy.RangeVelocity) *rangeConfig {
	if p == nil {
		return nil
	}
	return &rangeConfig{src: *p, digits: p.Digits(), window: p.Window(), size: p.Size()}
}

// rangeTable is the range velocity's state: a fixed number of ranges, the
// least recently called forgotten first, each with the accounts that
// called it (at most its critical level of them). Evaluator only.
type rangeTable struct {
	cfg     *rangeConfig
	idx     map[matcher.Number]int32
	ents    []rangeEnt
	mru     int32 // most recently called; -1 when empty
	lru     int32 // least recently called
	touched []int32
	pass    uint32
	tracked atomic.Int64
	blocks  atomic.Uint64
	evicted atomic.Uint64
}

type rangeEnt struct {
	key        matcher.Number
	accts      map[*Scope]uint32 // an account's scope: the minute it last called
	prev, next int32
	fired      uint8
	pass       uint32 // the evaluation that last touched it
}

// configure installs a (possibly changed) config: a new range width or
// table size starts the table over; new levels keep the counts and re-arm.
func (t *rangeTable) configure(c *rangeConfig) {
	if c == t.cfg {
		return
	}
	old := t.cfg
	t.cfg = c
	if c == nil {
		t.idx, t.ents, t.touched = nil, nil, nil
		t.tracked.Store(0)
		return
	}
	if old == nil || old.digits != c.digits || old.size != c.size {
		t.idx = make(map[matcher.Number]int32, c.size)
		t.ents = make([]rangeEnt, 0, c.size)
		t.mru, t.lru, t.pass = -1, -1, 1 // pass 0 is an entry's "never"
		t.tracked.Store(0)
		return
	}
	if old.src.Accounts != c.src.Accounts || old.src.Action != c.src.Action || old.window != c.window {
		for i := range t.ents {
			t.ents[i].fired = lvlNone
		}
	}
}

func (t *rangeTable) unlink(i int32) {
	en := &t.ents[i]
	if en.prev >= 0 {
		t.ents[en.prev].next = en.next
	} else {
		t.mru = en.next
	}
	if en.next >= 0 {
		t.ents[en.next].prev = en.prev
	} else {
		t.lru = en.prev
	}
}

func (t *rangeTable) front(i int32) {
	en := &t.ents[i]
	en.prev, en.next = -1, t.mru
	if t.mru >= 0 {
		t.ents[t.mru].prev = i
	}
	t.mru = i
	if t.lru < 0 {
		t.lru = i
	}
}

// add counts an allowed international call into its range.
func (t *rangeTable) add(x *journalEntry) {
	c := t.cfg
	if c == nil {
		return
	}
	key := x.dest.Truncate(c.digits)
	i, ok := t.idx[key]
	switch {
	case ok:
		t.unlink(i)
	case len(t.ents) < c.size:
		i = int32(len(t.ents))
		t.ents = append(t.ents, rangeEnt{accts: map[*Scope]uint32{}})
		t.tracked.Add(1)
	default: // forget the least recently called range
		i = t.lru
		t.unlink(i)
		delete(t.idx, t.ents[i].key)
		clear(t.ents[i].accts)
		t.ents[i].fired, t.ents[i].pass = lvlNone, 0
		t.evicted.Add(1)
	}
	en := &t.ents[i]
	if !ok {
		en.key = key
		t.idx[key] = i
	}
	t.front(i)
	acct := x.scope
	if acct.parent != nil {
		acct = acct.parent
	}
	cap := c.src.Accounts.Critical
	if cap == 0 {
		cap = c.src.Accounts.Warning
	}
	if _, seen := en.accts[acct]; !seen && len(en.accts) >= cap {
		expireAccts(en.accts, x.minute, c.window)
		if len(en.accts) >= cap {
			cap = -1
		}
	}
	if cap >= 0 {
		en.accts[acct] = x.minute
	}
	if en.pass != t.pass {
		en.pass = t.pass
		t.touched = append(t.touched, i)
	}
}

func expireAccts(m map[*Scope]uint32, minute uint32, window int) {
	for k, last := range m {
		if minute-last >= uint32(window) && last != minute {
			delete(m, k)
		}
	}
}

// rangeFinding is a range level newly reached.
type rangeFinding struct {
	a     alert.Alert
	block string // the prefix to block, "" for none
}

// check judges the ranges called since the last check.
func (t *rangeTable) check(now time.Time) []rangeFinding {
	c := t.cfg
	defer func() { t.touched = t.touched[:0]; t.pass++ }()
	if c == nil {
		return nil
	}
	var out []rangeFinding
	minute := uint32(now.Unix() / 60)
	for _, i := range t.touched {
		en := &t.ents[i]
		expireAccts(en.accts, minute, c.window)
		n := len(en.accts)
		lvl := levelOf(n, c.src.Accounts)
		switch {
		case lvl > en.fired:
			en.fired = lvl
			out = append(out, t.finding(now, en.key, n, lvl))
		case lvl == lvlNone:
			en.fired = lvlNone
		}
	}
	return out
}

func (t *rangeTable) finding(now time.Time, key matcher.Number, n int, lvl uint8) rangeFinding {
	c := t.cfg
	th, level := c.src.Accounts.Warning, alert.LevelWarning
	if lvl == lvlCritical {
		th, level = c.src.Accounts.Critical, alert.LevelCritical
	}
	prefix := key.String()
	a := alert.Alert{Time: now, Type: alert.TypeThreshold, Level: level, Kind: alert.KindRangeAccounts, Prefix: prefix,
		Value: float64(n), Threshold: float64(th), Unit: "accounts"}
	a.Message = fmt.Sprintf("range %s: %d accounts called it within %d minutes, reaching the %s level %d", prefix, n, c.window, level, th)
	f := rangeFinding{a: a}
	if lvl == lvlCritical {
		f.a.Action = policy.ActionAlert
		if c.src.Action == policy.RangeActionBlock {
			f.a.Action, f.block = policy.RangeActionBlock, prefix
		}
		f.a.Message += "; action " + f.a.Action
	}
	return f
}

// SetOnRangeBlock sets what blocks a range whose critical level asks for it
// (the service's audited operator prefix block); call it before Run.
func (e *Engine) SetOnRangeBlock(f func(prefix, reason string) error) { e.opt.OnRangeBlock = f }

// raiseRanges sends the range alerts and carries out their blocks.
func (e *Engine) raiseRanges(fs []rangeFinding) {
	for _, f := range fs {
		e.notify(f.a)
		if f.block == "" {
			continue
		}
		if e.opt.OnRangeBlock == nil {
			continue
		}
		if err := e.opt.OnRangeBlock(f.block, f.a.Message); err == nil {
			e.ranges.blocks.Add(1)
		}
	}
}
