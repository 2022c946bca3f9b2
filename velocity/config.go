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
	numMeasures
)

// scopeConfig is a scope's compiled settings. It is immutable; Sync swaps
// in a new one, and a rule's counters move to the new config when the rule
// still counts the same calls.
type scopeConfig struct {
	home   string
	loc    *time.Location
	maxCPS int
	rules  []rule
	timed  bool // some rule has hours or days: Record needs the local time

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
	// ctr is allocated by the first call the rule counts (so a scope that
	// never calls costs no counters), and carried over by Sync.
	ctr atomic.Pointer[counters]
}

// counters are one rule's lock-free counts; a ring exists only when the
// rule watches its measure.
type counters struct {
	seq     atomic.Uint64
	cpm     *ring // allowed calls, by second
	win     *ring // allowed calls, by window bucket
	blocked *ring // barred attempts, by window bucket
}

// counters returns the rule's counters, allocating them on first use: once
// per rule and scope, shared by every later call.
func (r *rule) counters() *counters {
	if c := r.ctr.Load(); c != nil {
		return c
	}
	n := 0
	for _, m := range []int{mCPM, mWindow, mBlocked} {
		if r.has[m] {
			n++
		}
	}
	rings := make([]ring, n)
	c := &counters{}
	for _, x := range []struct {
		m int
		p **ring
	}{{mCPM, &c.cpm}, {mWindow, &c.win}, {mBlocked, &c.blocked}} {
		if r.has[x.m] {
			*x.p, rings = &rings[0], rings[1:]
		}
	}
	if r.ctr.CompareAndSwap(nil, c) {
		return c
	}
	return r.ctr.Load()
}

func (c *counters) reset() {
	for _, r := range []*ring{c.cpm, c.win, c.blocked} {
		if r != nil {
			r.reset()
		}
	}
	c.seq.Store(0)
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
}

// sameCounting reports whether two rules count exactly the same calls into
// the same rings, so that a policy change that only moves thresholds keeps
// the counts.
func (r *rule) sameCounting(o *rule) bool {
	return r.prefix == o.prefix && r.from == o.from && r.to == o.to && r.days == o.days && r.win == o.win &&
		r.has[mCPM] == o.has[mCPM] && r.has[mWindow] == o.has[mWindow] && r.has[mBlocked] == o.has[mBlocked] &&
		r.has[mSequential] == o.has[mSequential]
}

// compileConfig builds a scope's config from its effective policy. prev's
// counters are carried over to the rules that count the same calls. zones
// caches loaded time zones (loading one parses the zone database).
func compileConfig(eff policy.Effective, prev *scopeConfig, zones map[string]*time.Location) (*scopeConfig, error) {
	c := &scopeConfig{home: eff.HomeCountry, maxCPS: eff.MaxCPS, loc: time.UTC, relockMargin: DefaultRelockMargin}
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
