package velocity

import (
	"time"
)

// Fleet mode (package fleet) makes every measure the sum over the tollgates
// of a fleet. Each node exports the absolute local state of the scopes that
// changed (ExportCounts); each receiver keeps the latest Counts per node and
// scope, sums them (SumCounts) and installs the sum on the scope
// (SetRemote). The evaluator adds the installed sum to the local values, so
// a level is reached on the fleet's total; the decision path reads only the
// remote channel and CPS use for the caps (RemoteUse), one atomic load.
// Replacing, never adding, is what makes a repeated or duplicated message
// harmless.

// fleetMeasures are the measures that add up over nodes: counts of calls
// and attempts. call_duration is a property of one call (its node raises
// it); the distinct sets, the range runs and the short-call percentage do
// not add, and stay per node.
var fleetMeasures = [...]int{mCPM, mWindow, mConcurrent, mBlocked, mInvalid, mLocked}

// Counts is one scope's absolute local state as a node of a fleet
// publishes it.
type Counts struct {
	Account string `json:"a"`
	Sub     string `json:"s,omitempty"`
	// Live is the scope's live calls (an account's include its
	// subaccounts'); Own those of the scope itself, the channels its
	// max_channels caps.
	Live int `json:"l,omitempty"`
	Own  int `json:"o,omitempty"`
	// CPS is the attempts of the last complete second (scopes with a
	// max_cps only).
	CPS int `json:"c,omitempty"`
	// Spend is today's spend in millionths (booked and running) of day Day
	// (days since the epoch in the account's time zone).
	Spend int64 `json:"sp,omitempty"`
	Day   int64 `json:"d,omitempty"`
	// Rules are the rules' summable measures, by rule name.
	Rules []RuleCounts `json:"r,omitempty"`
}

// RuleCounts is one rule's measures in Counts.
type RuleCounts struct {
	Name string `json:"n"`
	// V are the measures by index of policy.MeasureNames (the summable
	// ones set, the others 0).
	V [numMeasures]int `json:"v"`
	// Seq is the hash of the number of the current sequential run, whose
	// length is V[sequential_calls].
	Seq uint32 `json:"h,omitempty"`
}

// Clone returns a deep copy (Counts are kept per node by receivers).
func (c Counts) Clone() Counts {
	c.Rules = append([]RuleCounts(nil), c.Rules...)
	return c
}

// Zero reports whether the counts hold nothing.
func (c *Counts) Zero() bool {
	if c.Live != 0 || c.Own != 0 || c.CPS != 0 || c.Spend != 0 {
		return false
	}
	for i := range c.Rules {
		if c.Rules[i].V != [numMeasures]int{} {
			return false
		}
	}
	return true
}

// Valid reports whether the counts could come from an engine: nothing
// negative (a forged negative count would lower the fleet's sums).
func (c *Counts) Valid() bool {
	if c.Live < 0 || c.Own < 0 || c.CPS < 0 || c.Spend < 0 || c.Own > c.Live {
		return false
	}
	for i := range c.Rules {
		for _, v := range c.Rules[i].V {
			if v < 0 {
				return false
			}
		}
	}
	return true
}

func (c *Counts) equal(o *Counts) bool {
	if c.Account != o.Account || c.Sub != o.Sub || c.Live != o.Live || c.Own != o.Own || c.CPS != o.CPS ||
		c.Spend != o.Spend || c.Day != o.Day || len(c.Rules) != len(o.Rules) {
		return false
	}
	for i := range c.Rules {
		if c.Rules[i] != o.Rules[i] {
			return false
		}
	}
	return true
}

// Remote is the sum of the other nodes' Counts of one scope.
type Remote struct {
	Live, Own, CPS int
	// Spend is today's remote spend (millionths) of day Day.
	Spend int64
	Day   int64
	Rules map[string]RemoteRule
}

// RemoteRule is one rule's remote measures.
type RemoteRule struct {
	V [numMeasures]int
	// Seq and SeqN are the longest sequential run over the other nodes
	// (runs to the same number added up).
	Seq  uint32
	SeqN int
}

// SumCounts adds up the counts of one scope from several nodes (nil when
// there is nothing).
func SumCounts(cs []Counts) *Remote {
	r := &Remote{}
	seqs := map[string]map[uint32]int{}
	any := false
	for i := range cs {
		c := &cs[i]
		if c.Zero() {
			continue
		}
		any = true
		r.Live += c.Live
		r.Own += c.Own
		r.CPS += c.CPS
		if c.Spend != 0 {
			switch {
			case r.Day == 0 || c.Day > r.Day:
				r.Day, r.Spend = c.Day, c.Spend // a newer day starts over
			case c.Day == r.Day:
				r.Spend += c.Spend
			}
		}
		for _, rc := range c.Rules {
			if r.Rules == nil {
				r.Rules = map[string]RemoteRule{}
			}
			rr := r.Rules[rc.Name]
			for _, m := range fleetMeasures {
				rr.V[m] += rc.V[m]
			}
			if rc.Seq != 0 && rc.V[mSequential] > 0 {
				if seqs[rc.Name] == nil {
					seqs[rc.Name] = map[uint32]int{}
				}
				seqs[rc.Name][rc.Seq] += rc.V[mSequential]
			}
			r.Rules[rc.Name] = rr
		}
	}
	if !any {
		return nil
	}
	for name, runs := range seqs {
		rr := r.Rules[name]
		for h, n := range runs {
			if n > rr.SeqN || (n == rr.SeqN && h < rr.Seq) {
				rr.Seq, rr.SeqN = h, n
			}
		}
		r.Rules[name] = rr
	}
	return r
}

// SetRemote installs the other nodes' sum for account/sub (nil: none) and
// has the scope evaluated again. It reports whether the scope exists.
func (e *Engine) SetRemote(account, sub string, r *Remote) bool {
	s := e.exact(account, sub)
	if s == nil {
		return false
	}
	if old := s.remote.Swap(r); old == nil && r == nil {
		return true
	}
	s.markDirty()
	return true
}

// RemoteOf returns the installed remote sum of account/sub (nil: none).
func (e *Engine) RemoteOf(account, sub string) *Remote {
	if s := e.exact(account, sub); s != nil {
		return s.remote.Load()
	}
	return nil
}

// RemoteUse implements matcher.FleetScope: the channels other nodes hold
// of this scope's max_channels, of its account's account_max_channels, and
// their attempts in the last second against its max_cps. Lock-free and
// allocation-free.
func (s *Scope) RemoteUse() (channels, accountChannels, cps int) {
	if r := s.remote.Load(); r != nil {
		channels, cps = r.Own, r.CPS
		if s.parent == nil {
			accountChannels = r.Live
		}
	}
	if s.parent != nil {
		if r := s.parent.remote.Load(); r != nil {
			accountChannels = r.Live
		}
	}
	return channels, accountChannels, cps
}

// EnableExport has the engine track the scopes whose state changed for
// ExportCounts; call it once, before calls are counted.
func (e *Engine) EnableExport() {
	e.evalMu.Lock()
	if e.export == nil {
		e.export = map[*Scope]struct{}{}
	}
	e.evalMu.Unlock()
	e.exporting.Store(true)
}

// ExportCounts calls f with the counts of every scope with news (calls,
// events, a new config) since the last export whose counts differ from
// what was last exported; with recheck, also of every scope last exported
// non-zero whose counts changed by themselves (windows roll over); with
// full, of every non-zero scope whatever it last said. A scope that went
// back to zero is exported once more with zero counts. Counts are
// absolute: a receiver replaces what it held of this node and scope.
func (e *Engine) ExportCounts(full, recheck bool, f func(Counts)) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	if e.export == nil {
		e.export = map[*Scope]struct{}{}
	}
	if e.exportedSet == nil {
		e.exportedSet = map[*Scope]struct{}{}
	}
	e.drainDirty()
	if full || recheck {
		for s := range e.exportedSet {
			e.export[s] = struct{}{}
		}
	}
	now := e.opt.Now()
	for s := range e.export {
		delete(e.export, s)
		var c Counts
		if !s.gone.Load() {
			c = s.counts(now)
		}
		c.Account, c.Sub = s.account, s.sub
		zero := c.Zero()
		prev := s.exported
		if (prev == nil && zero) || (prev != nil && !full && prev.equal(&c)) {
			continue
		}
		f(c)
		if zero {
			s.exported = nil
			delete(e.exportedSet, s)
		} else {
			s.exported = &c
			e.exportedSet[s] = struct{}{}
		}
	}
}

// counts is the scope's local state for ExportCounts.
func (s *Scope) counts(now time.Time) Counts {
	cfg := s.cfg.Load()
	var c Counts
	if cfg == nil {
		return c
	}
	sec := now.Unix()
	if cfg.maxCPS > 0 {
		c.CPS = bucketCount(&s.cps[(sec-1)%int64(len(s.cps))], uint32(sec-1))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.Live = len(s.live)
	for cl := range s.live {
		if cl.scope == s {
			c.Own++
		}
	}
	if cfg.spendWarn > 0 || cfg.spendLimit > 0 {
		s.rollDay(now, cfg)
		c.Spend, c.Day = s.spent+s.running(now, cfg), s.spendDay
		if c.Spend == 0 {
			c.Day = 0
		}
	}
	local := now.In(cfg.loc)
	for i := range cfg.rules {
		r := &cfg.rules[i]
		var v [numMeasures]int
		r.values(sec, &v)
		rc := RuleCounts{Name: r.name}
		for _, m := range fleetMeasures {
			rc.V[m] = v[m]
		}
		if r.has[mConcurrent] && r.active(local) {
			rc.V[mConcurrent] = 0
			for cl := range s.live {
				if r.matches(cl.dest) {
					rc.V[mConcurrent]++
				}
			}
		}
		if r.has[mSequential] && v[mSequential] > 0 {
			rc.V[mSequential] = v[mSequential]
			if ctr := r.ctr.Load(); ctr != nil {
				rc.Seq = uint32(ctr.seq.Load() >> 32)
			}
		}
		c.Rules = append(c.Rules, rc)
	}
	return c
}

// addRemote adds the other nodes' measures of rule r to v (the values of
// the local node).
func (r *rule) addRemote(rem *Remote, v *[numMeasures]int) {
	if rem == nil {
		return
	}
	rr, ok := rem.Rules[r.name]
	if !ok {
		return
	}
	for _, m := range fleetMeasures {
		if r.has[m] {
			v[m] += rr.V[m]
		}
	}
	if r.has[mSequential] && rr.SeqN > 0 {
		local := uint32(0)
		if c := r.ctr.Load(); c != nil && v[mSequential] > 0 {
			local = uint32(c.seq.Load() >> 32)
		}
		if local == rr.Seq {
			v[mSequential] += rr.SeqN
		} else {
			v[mSequential] = max(v[mSequential], rr.SeqN)
		}
	}
}

// remoteSpend is the other nodes' spend of the scope's current day.
func (rem *Remote) spend(day int64) int64 {
	if rem == nil || rem.Day != day {
		return 0
	}
	return rem.Spend
}
