package velocity

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// Measure indexes, in the order of policy.MeasureNames.
const (
	mCPM = iota
	mWindow
	mConcurrent
	mSequential
	mDuration
	mBlocked
	mDistinctDest
	mDistinctCountry
	mRangeSeq
	mShort
	mInvalid
	mLocked
	numMeasures
)

// scopeConfig is a scope's compiled settings. It is immutable; Sync swaps
// in a new one, and a rule's counters move to the new config when the rule
// still counts the same calls.
type scopeConfig struct {
	home   string
	homeCC matcher.Country
	loc    *time.Location
	maxCPS int
	rules  []rule
	timed  bool // some rule has hours or days: Record needs the local time
	// distinct: some rule counts distinct destinations or countries, which
	// the evaluator keeps from the journal
	distinct bool

	spendWarn, spendLimit int64 // millionths; 0 = not set
	spendAction           string
	// relockMargin is the policy's relock_margin (DefaultRelockMargin
	// when unset).
	relockMargin float64
}

// rule is a compiled policy.VelocityRule with its counters.
type rule struct {
	name     string
	prefix   matcher.Number // 0: every destination
	from, to int            // minutes of the day, [from, to); from == to: all day
	days     uint8          // bit per time.Weekday; 0: every day
	win      window
	th       [numMeasures]policy.Threshold
	has      [numMeasures]bool
	action   string // of the critical level
	prefixTx string // "+44", for alerts and the admin API
	// sigs identify, in the stored fraud state, what the rule counts and
	// its levels (countingSig, levelsSig).
	sigs [2]string
	// rangeDigits, shortSec and minAnswered tune sequential_range_calls
	// and short_calls (policy defaults applied)
	rangeDigits, shortSec, minAnswered int
	// caps bound the distinct sets (distinctCap), destinations and
	// countries
	caps [2]int
	// ctr is allocated by the first call the rule counts (so a scope that
	// never calls costs no counters), and carried over by Sync.
	ctr atomic.Pointer[counters]
}

// counters are one rule's lock-free counts; a ring exists only when the
// rule watches its measure.
type counters struct {
	seq      atomic.Uint64
	rangeSeq atomic.Uint64 // the sequential run over number ranges
	cpm      *ring         // allowed calls, by second
	win      *ring         // allowed calls, by window bucket
	blocked  *ring         // barred attempts, by window bucket
	invalid  *ring         // invalid_number attempts, by window bucket
	locked   *ring         // international_locked attempts, by window bucket
	ended    *ring         // calls ended (short_calls' base), by window bucket
	short    *ring         // calls ended short, by window bucket

	// dests and countries are the distinct sets, kept by the evaluator
	// from the journal under the scope's mu (nil until the first call).
	dests, countries *distinctSet
}

// ringMeasures are the measures counted in a window ring, with the rings
// each needs.
var ringMeasures = []int{mCPM, mWindow, mBlocked, mInvalid, mLocked, mShort}

// counters returns the rule's counters, allocating them on first use: once
// per rule and scope, shared by every later call.
func (r *rule) counters() *counters {
	if c := r.ctr.Load(); c != nil {
		return c
	}
	c := &counters{}
	slots := c.rings()
	n := 0
	for _, x := range slots {
		if r.has[x.m] {
			n++
		}
	}
	rings := make([]ring, n)
	for _, x := range slots {
		if r.has[x.m] {
			*x.p, rings = &rings[0], rings[1:]
		}
	}
	if r.ctr.CompareAndSwap(nil, c) {
		return c
	}
	return r.ctr.Load()
}

// rings lists the counters' rings with the measure each counts (short_calls
// has two).
func (c *counters) rings() []struct {
	m int
	p **ring
} {
	return []struct {
		m int
		p **ring
	}{{mCPM, &c.cpm}, {mWindow, &c.win}, {mBlocked, &c.blocked}, {mInvalid, &c.invalid}, {mLocked, &c.locked},
		{mShort, &c.ended}, {mShort, &c.short}}
}

// reset zeroes the counts. Called with the scope's mu held (the distinct
// sets are under it).
func (c *counters) reset() {
	for _, x := range c.rings() {
		if *x.p != nil {
			(*x.p).reset()
		}
	}
	c.seq.Store(0)
	c.rangeSeq.Store(0)
	c.dests.clear()
	c.countries.clear()
}

// values reads the rule's counted measures at sec (0 for a rule that has
// counted nothing yet).
func (r *rule) values(sec int64, v *[numMeasures]int) {
	c := r.ctr.Load()
	if c == nil {
		return
	}
	minute := uint32(sec / 60)
	from, to := r.win.span(minute)
	if c.cpm != nil {
		v[mCPM] = c.cpm.sum(uint32(sec-59), uint32(sec))
	}
	if c.win != nil {
		v[mWindow] = c.win.sum(from, to)
	}
	if c.blocked != nil {
		v[mBlocked] = c.blocked.sum(from, to)
	}
	if r.has[mSequential] {
		v[mSequential] = seqValue(c.seq.Load(), minute, r.win.minutes)
	}
	if r.has[mRangeSeq] {
		v[mRangeSeq] = seqValue(c.rangeSeq.Load(), minute, r.win.minutes)
	}
	if c.invalid != nil {
		v[mInvalid] = c.invalid.sum(from, to)
	}
	if c.locked != nil {
		v[mLocked] = c.locked.sum(from, to)
	}
	if c.ended != nil {
		if n := c.ended.sum(from, to); n >= r.minAnswered && n > 0 {
			v[mShort] = c.short.sum(from, to) * 100 / n
		}
	}
	// the distinct sets are read under the scope's mu, as the callers hold
	v[mDistinctDest] = c.dests.count(minute, r.win.minutes)
	v[mDistinctCountry] = c.countries.count(minute, r.win.minutes)
}

// maxDistinctCap bounds a distinct set whatever the relock margin: with a
// margin too wide for it, an unlocked scope locks again on that measure
// only when the unlock lapses (or the count drops and rises again).
const maxDistinctCap = 2 * policy.MaxDistinct

// distinctCap is how many members a rule's distinct set of measure m
// keeps: its critical level (its warning when it has none), and, with a
// lockdown action, up to the level at which an operator's unlock locks
// again (relockAt). Knowing that a level is reached is all the set is for.
func (r *rule) distinctCap(m int) int { return r.caps[m-mDistinctDest] }

func distinctCap(t policy.Threshold, action string, margin float64) int {
	if t.Critical == 0 {
		return t.Warning
	}
	if action != policy.ActionLockdown {
		return t.Critical
	}
	return min(relockAt(t.Critical, t.Critical, margin), max(t.Critical, maxDistinctCap))
}

// sameCounting reports whether two rules count exactly the same calls into
// the same rings, so that a policy change that only moves thresholds keeps
// the counts.
func (r *rule) sameCounting(o *rule) bool {
	if r.prefix != o.prefix || r.from != o.from || r.to != o.to || r.days != o.days || r.win != o.win {
		return false
	}
	for _, m := range []int{mCPM, mWindow, mBlocked, mSequential, mRangeSeq, mShort, mInvalid, mLocked, mDistinctDest, mDistinctCountry} {
		if r.has[m] != o.has[m] {
			return false
		}
	}
	return (!r.has[mRangeSeq] || r.rangeDigits == o.rangeDigits) && (!r.has[mShort] || r.shortSec == o.shortSec)
}

// compileConfig builds a scope's config from its effective policy. prev's
// counters are carried over to the rules that count the same calls. zones
// caches loaded time zones (loading one parses the zone database).
func compileConfig(eff policy.Effective, prev *scopeConfig, zones map[string]*time.Location) (*scopeConfig, error) {
	c := &scopeConfig{home: eff.HomeCountry, homeCC: matcher.PackCountry(eff.HomeCountry), maxCPS: eff.MaxCPS, loc: time.UTC, relockMargin: DefaultRelockMargin}
	if eff.TimeZone != "" {
		loc, ok := zones[eff.TimeZone]
		if !ok {
			var err error
			if loc, err = policy.ValidTimeZone(eff.TimeZone); err != nil {
				return nil, err
			}
			if zones != nil {
				zones[eff.TimeZone] = loc
			}
		}
		c.loc = loc
	}
	v := eff.Velocity
	if v == nil {
		return c, nil
	}
	if v.RelockMargin > 0 {
		c.relockMargin = v.RelockMargin
	}
	if s := v.DailySpend; s != nil {
		c.spendWarn, c.spendLimit = policy.Micro(s.Warning), policy.Micro(s.Limit)
		c.spendAction = v.CriticalAction(s.Action)
	}
	var taken []bool
	if prev != nil {
		taken = make([]bool, len(prev.rules))
	}
	c.rules = make([]rule, len(v.Rules))
	for i := range v.Rules {
		pr := &v.Rules[i]
		r := &c.rules[i]
		r.name, r.win, r.action, r.prefixTx = pr.Name, newWindow(pr.Window()), v.CriticalAction(pr.Action), pr.Prefix
		r.rangeDigits, r.shortSec, r.minAnswered = pr.Range(), pr.ShortSeconds(), pr.MinAnswered()
		if r.name == "" {
			r.name = fmt.Sprintf("rule %d", i+1)
		}
		if pr.Prefix != "" {
			n, ok := matcher.PackNumber(pr.Prefix)
			if !ok {
				return nil, fmt.Errorf("rule %s: prefix %q is not canonical", r.name, pr.Prefix)
			}
			r.prefix = n
		}
		if pr.Hours != "" {
			from, to, err := policy.ParseHours(pr.Hours)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %v", r.name, err)
			}
			r.from, r.to = from, to
		}
		for _, d := range pr.Days {
			wd, ok := policy.ParseDay(d)
			if !ok {
				return nil, fmt.Errorf("rule %s: day %q", r.name, d)
			}
			r.days |= 1 << wd
		}
		for m, t := range pr.Measures() {
			if t != nil {
				r.th[m], r.has[m] = *t, true
			}
		}
		if prev != nil {
			for j := range prev.rules {
				if !taken[j] && prev.rules[j].sameCounting(r) {
					r.ctr.Store(prev.rules[j].ctr.Load())
					taken[j] = true
					break
				}
			}
		}
		c.timed = c.timed || r.from != r.to || r.days != 0
		r.sigs = [2]string{countingSig(r), levelsSig(r)}
		c.distinct = c.distinct || r.has[mDistinctDest] || r.has[mDistinctCountry]
		for k, m := range []int{mDistinctDest, mDistinctCountry} {
			r.caps[k] = distinctCap(r.th[m], r.action, c.relockMargin)
		}
	}
	return c, nil
}

// active reports whether the rule counts a call at local time t. A window
// that spans midnight belongs to the day it starts on.
func (r *rule) active(t time.Time) bool {
	h, m, _ := t.Clock()
	min := h*60 + m
	day := t.Weekday()
	switch {
	case r.from == r.to:
	case r.from < r.to:
		if min < r.from || min >= r.to {
			return false
		}
	default: // spans midnight
		switch {
		case min >= r.from:
		case min < r.to:
			day = (day + 6) % 7 // the window started yesterday
		default:
			return false
		}
	}
	return r.days == 0 || r.days&(1<<day) != 0
}

// matches reports whether the rule counts calls to dest.
func (r *rule) matches(dest matcher.Number) bool {
	return r.prefix == 0 || (dest != 0 && dest.HasPrefix(r.prefix))
}
