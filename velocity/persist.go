package velocity

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// The engine's fraud state, as package fraudstate stores it: one record per
// scope (fraudstate.Scopes, keyed "account" or "account/subaccount") and one
// per call (fraudstate.Calls, keyed by Call-ID). Collect writes what changed
// since the last collection; RestoreScope and RestoreCall read it back at
// start, after the first Sync. Counters are kept as their ring buckets,
// which are tagged with absolute times: restored, a window is where it was
// relative to now, and buckets that fell out of their window while the
// daemon was down are dropped.

// scopeRec is a scope's stored state.
type scopeRec struct {
	Spend       *spendRec `json:"spend,omitempty"`
	Peak        *peakRec  `json:"peak,omitempty"`
	Rules       []ruleRec `json:"rules,omitempty"`
	Grace       *graceRec `json:"grace,omitempty"`
	Unconfirmed [2]int64  `json:"unconfirmed"` // local day, calls
}

type spendRec struct {
	Day    int64  `json:"day"`   // local day number
	Spent  int64  `json:"spent"` // millionths booked
	Fired  uint8  `json:"fired,omitempty"`
	Levels string `json:"levels"` // the levels Fired was raised under
}

type peakRec struct {
	Day     int64      `json:"day"`
	Today   int        `json:"today"`
	History [][2]int64 `json:"history,omitempty"` // day, peak
}

// ruleRec is one rule's counters and raised levels. Counting and Levels
// identify the rule (what it counts; its thresholds and action) so that
// a changed policy keeps what still applies, as Sync does.
type ruleRec struct {
	Counting string   `json:"counting"`
	Levels   string   `json:"levels"`
	CPM      []uint64 `json:"cpm,omitempty"` // ring buckets: tag<<32 | count
	Window   []uint64 `json:"window,omitempty"`
	Blocked  []uint64 `json:"blocked,omitempty"`
	Seq      uint64   `json:"seq,omitempty"`
	// the pattern measures': their rings, the range run, and the distinct
	// sets as [member, minute last seen] pairs
	Invalid   []uint64         `json:"invalid,omitempty"`
	Locked    []uint64         `json:"locked,omitempty"`
	Ended     []uint64         `json:"ended,omitempty"`
	Short     []uint64         `json:"short,omitempty"`
	RangeSeq  uint64           `json:"range_seq,omitempty"`
	Dests     [][2]uint64      `json:"dests,omitempty"`
	Countries [][2]uint64      `json:"countries,omitempty"`
	Fired     map[string]uint8 `json:"fired,omitempty"`  // by measure
	Relock    map[string]int   `json:"relock,omitempty"` // by measure
}

type graceRec struct {
	Until time.Time `json:"until,omitzero"`
	By    string    `json:"by"`
	Spend int64     `json:"spend,omitempty"`
}

// callRec is a live call or an ended call's tombstone.
type callRec struct {
	Account     string                            `json:"account"`
	Subaccount  string                            `json:"subaccount,omitempty"`
	Dest        uint64                            `json:"dest,omitempty"`
	Rate        int64                             `json:"rate"`
	Answered    int64                             `json:"answered"` // unix nanoseconds
	Heard       int64                             `json:"heard"`
	Ended       int64                             `json:"ended,omitempty"` // when its end was known; 0 while live
	Unconfirmed bool                              `json:"unconfirmed,omitempty"`
	Booked      int64                             `json:"booked,omitempty"` // nanoseconds, once ended
	Levels      [2][policy.MaxVelocityRules]uint8 `json:"levels"`
	// Proxy and Dialog, while the call is live: what a teardown needs to
	// end it after a restart.
	Proxy  string  `json:"proxy,omitempty"`
	Dialog *Dialog `json:"dialog,omitempty"`
}

// empty reports whether the record holds nothing a restart would miss (a
// scope that never counted a call, spent, peaked or raised a level): such
// scopes are not written, so 100,000 idle accounts cost no records.
func (r *scopeRec) empty(ctrs []*counters) bool {
	if r.Spend != nil || r.Peak != nil || r.Grace != nil || r.Unconfirmed[1] != 0 {
		return false
	}
	for _, c := range ctrs {
		if c != nil {
			return false
		}
	}
	for i := range r.Rules {
		if len(r.Rules[i].Fired)+len(r.Rules[i].Relock) > 0 {
			return false
		}
	}
	return true
}

// countingSig identifies what a rule counts (compiled once, in r.sigs).
func countingSig(r *rule) string {
	sig := fmt.Sprintf("%d|%d-%d|%d|%d|%t%t%t%t", uint64(r.prefix), r.from, r.to, r.days, r.win.minutes,
		r.has[mCPM], r.has[mWindow], r.has[mBlocked], r.has[mSequential])
	if r.has[mDistinctDest] || r.has[mDistinctCountry] || r.has[mRangeSeq] || r.has[mShort] || r.has[mInvalid] || r.has[mLocked] {
		// the pattern measures, only when watched: a rule without them
		// keeps the signature records were written with before them
		sig += fmt.Sprintf("|%t%t%t%t%t%t|%d|%d", r.has[mDistinctDest], r.has[mDistinctCountry], r.has[mRangeSeq], r.has[mShort],
			r.has[mInvalid], r.has[mLocked], r.rangeDigits, r.shortSec)
	}
	return sig
}

// setPairs is a distinct set as [member, minute] pairs.
func setPairs(d *distinctSet) [][2]uint64 {
	if d == nil || len(d.m) == 0 {
		return nil
	}
	out := make([][2]uint64, 0, len(d.m))
	for k, m := range d.m {
		out = append(out, [2]uint64{k, uint64(m)})
	}
	return out
}

// restoreSet puts back the members still within the window, up to cap.
func restoreSet(pairs [][2]uint64, minute uint32, window, cap int) *distinctSet {
	if len(pairs) == 0 {
		return nil
	}
	d := newDistinct(cap)
	for _, p := range pairs {
		if m := uint32(p[1]); minute-m < uint32(window) {
			d.add(p[0], m, window, cap)
		}
	}
	return d
}

func levelsSig(r *rule) string {
	var b strings.Builder
	for m := 0; m < numMeasures; m++ {
		if r.has[m] {
			fmt.Fprintf(&b, "%s:%d/%d,", policy.MeasureNames[m], r.th[m].Warning, r.th[m].Critical)
		}
	}
	return b.String() + r.action
}

func spendSig(cfg *scopeConfig) string {
	return fmt.Sprintf("%d/%d/%s", cfg.spendWarn, cfg.spendLimit, cfg.spendAction)
}

func ringWords(r *ring) []uint64 {
	if r == nil {
		return nil
	}
	var out []uint64
	for i := range r {
		if v := r[i].Load(); uint32(v) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// snapshot is the scope's record but for its counters, and its rules'
// counters (read later: they are atomic, and need no lock). Called with
// s.mu held.
func (s *Scope) snapshot(cfg *scopeConfig) (scopeRec, []*counters) {
	rec := scopeRec{Unconfirmed: [2]int64{s.unconfirmedDay, int64(s.unconfirmed)}}
	if s.spendDay != 0 && cfg != nil && (s.spent != 0 || s.spendFired != 0) {
		rec.Spend = &spendRec{Day: s.spendDay, Spent: s.spent, Fired: s.spendFired, Levels: spendSig(cfg)}
	}
	if s.peakDay != 0 && (s.peakToday != 0 || s.history != nil) {
		rec.Peak = &peakRec{Day: s.peakDay, Today: s.peakToday}
		if s.history != nil {
			for _, h := range s.history {
				if h.day != 0 {
					rec.Peak.History = append(rec.Peak.History, [2]int64{h.day, int64(h.peak)})
				}
			}
		}
	}
	if cfg == nil {
		return rec, nil
	}
	ctrs := make([]*counters, len(cfg.rules))
	fired := s.fired
	if s.firedCfg != cfg {
		fired = nil // raised under another config: rearmed at the next evaluation
	}
	for i := range cfg.rules {
		r := &cfg.rules[i]
		rr := ruleRec{Counting: r.sigs[0], Levels: r.sigs[1]}
		ctrs[i] = r.ctr.Load()
		if c := ctrs[i]; c != nil {
			// the distinct sets are under s.mu, not atomic
			rr.Dests, rr.Countries = setPairs(c.dests), setPairs(c.countries)
		}
		for m := 0; m < numMeasures; m++ {
			key := alertKey{uint8(i), uint8(m)}
			if l := fired[key]; l != lvlNone {
				if rr.Fired == nil {
					rr.Fired = map[string]uint8{}
				}
				rr.Fired[policy.MeasureNames[m]] = l
			}
			if g := s.grace; g != nil && s.firedCfg == cfg {
				if at, ok := g.relock[key]; ok {
					if rr.Relock == nil {
						rr.Relock = map[string]int{}
					}
					rr.Relock[policy.MeasureNames[m]] = at
				}
			}
		}
		rec.Rules = append(rec.Rules, rr)
	}
	if g := s.grace; g != nil {
		rec.Grace = &graceRec{Until: g.until, By: g.by, Spend: g.spend}
	}
	return rec, ctrs
}

// fillCounters reads the rules' counters into the record.
func (r *scopeRec) fillCounters(ctrs []*counters) {
	for i, c := range ctrs {
		if c != nil && i < len(r.Rules) {
			rr := &r.Rules[i]
			rr.CPM, rr.Window, rr.Blocked, rr.Seq = ringWords(c.cpm), ringWords(c.win), ringWords(c.blocked), c.seq.Load()
			rr.Invalid, rr.Locked, rr.Ended, rr.Short = ringWords(c.invalid), ringWords(c.locked), ringWords(c.ended), ringWords(c.short)
			rr.RangeSeq = c.rangeSeq.Load()
		}
	}
}

// Collect implements fraudstate.Source: the records of the scopes and
// calls changed since the last collection. It sees every call event whole
// (the call and what it booked into its scopes, or neither). The state is
// copied under the engine's locks and encoded after them, so call events
// and the evaluator wait only for the copy.
func (e *Engine) Collect(b *fraudstate.Batch) {
	scopes, calls, deletes := e.collect()
	for i := range scopes {
		scopes[i].rec.fillCounters(scopes[i].ctrs)
	}
	encode(b, scopes, calls, deletes)
}

// encode puts collected records into b.
func encode(b *fraudstate.Batch, scopes []keyedScope, calls []keyedCall, deletes []deletion) {
	for i := range scopes {
		if v, err := json.Marshal(&scopes[i].rec); err == nil {
			b.Put(fraudstate.Scopes, scopes[i].key, v)
		}
	}
	for i := range calls {
		if v, err := json.Marshal(&calls[i].rec); err == nil {
			b.Put(fraudstate.Calls, calls[i].key, v)
		}
	}
	for _, d := range deletes {
		b.Delete(d.kind, d.key)
	}
}

type keyedScope struct {
	key  string
	rec  scopeRec
	ctrs []*counters
}

type keyedCall struct {
	key string
	rec callRec
}

type deletion struct {
	kind fraudstate.Kind
	key  string
}

func (e *Engine) collect() (scopes []keyedScope, calls []keyedCall, deletes []deletion) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	e.drainDirty()
	// the scopes that are gone first: a scope dropped and created again
	// under the same name is written after the old one's delete
	for s := range e.persist {
		if s.gone.Load() {
			if s.stored {
				deletes = append(deletes, deletion{fraudstate.Scopes, s.name()})
			}
			delete(e.persist, s)
		}
	}
	scopes = make([]keyedScope, 0, len(e.persist))
	for s := range e.persist {
		cfg := s.cfg.Load()
		s.mu.Lock()
		rec, ctrs := s.snapshot(cfg)
		s.mu.Unlock()
		switch {
		case !rec.empty(ctrs):
			scopes = append(scopes, keyedScope{s.name(), rec, ctrs})
			s.stored = true
		case s.stored:
			deletes = append(deletes, deletion{fraudstate.Scopes, s.name()})
			s.stored = false
		}
		delete(e.persist, s)
	}
	if len(scopes)+len(deletes) > 1024 {
		e.persist = map[*Scope]struct{}{} // drop the room of a big collection
	}
	for i := range e.calls.shards {
		sh := &e.calls.shards[i]
		sh.mu.Lock()
		dirty := sh.dirty
		sh.dirty = nil
		if calls == nil {
			calls = make([]keyedCall, 0, len(dirty)*callShards*5/4)
		}
		first := len(calls)
		for _, c := range dirty {
			if c.forgotten {
				deletes = append(deletes, deletion{fraudstate.Calls, c.id})
				continue
			}
			r := callRec{Account: c.scope.account, Subaccount: c.scope.sub, Dest: uint64(c.dest), Rate: c.rate,
				Answered: c.answered.UnixNano(), Heard: c.heard.UnixNano(), Unconfirmed: c.unconfirmed}
			if c.ended {
				r.Ended, r.Booked = c.endedAt.UnixNano(), int64(c.booked)
			} else {
				r.Proxy = c.proxy
				if c.dialog != (Dialog{}) {
					d := c.dialog
					r.Dialog = &d
				}
			}
			calls = append(calls, keyedCall{c.id, r})
		}
		sh.mu.Unlock()
		j := first
		for _, c := range dirty {
			if c.forgotten {
				continue
			}
			for idx, sc := 0, c.scope; sc != nil && idx < 2; idx, sc = idx+1, sc.parent {
				sc.mu.Lock()
				calls[j].rec.Levels[idx] = c.durLevel[idx]
				sc.mu.Unlock()
			}
			j++
		}
	}
	return scopes, calls, deletes
}

// errGone refuses a record of a scope the policy no longer has.
var errGone = errors.New("no such account or subaccount in the policy")

// restoreRing puts back the buckets of a ring that are still within
// [from, to].
func restoreRing(r *ring, words []uint64, from, to uint32) {
	if r == nil {
		return
	}
	for _, v := range words {
		if t := uint32(v >> 32); t >= from && t <= to {
			r[t%ringSize].Store(v)
		}
	}
}

// RestoreScope puts a stored scope record back (call it after the first
// Sync, before the first call event or evaluation): its counters with
// what is still within their windows, today's spend (not an earlier
// day's), the levels raised and an unlock's grace for the rules whose
// thresholds are unchanged, and the daily peaks.
func (e *Engine) RestoreScope(key string, val []byte) error {
	account, sub, _ := strings.Cut(key, "/")
	s := e.exact(account, sub)
	if s == nil {
		return errGone
	}
	var rec scopeRec
	if err := policy.DecodeStrict(val, &rec); err != nil {
		return err
	}
	cfg := s.cfg.Load()
	if cfg == nil {
		return errGone
	}
	now := e.opt.Now()
	sec := now.Unix()
	minute := uint32(sec / 60)
	today := dayNumber(now, cfg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := rec.Spend; sp != nil && sp.Day == today {
		s.spendDay, s.spent = sp.Day, sp.Spent
		if sp.Levels == spendSig(cfg) {
			s.spendFired = min(sp.Fired, lvlCritical)
		}
	}
	if p := rec.Peak; p != nil {
		s.peakDay, s.peakToday = p.Day, p.Today
		if len(p.History) > 0 {
			s.history = new([7]dayPeak)
			for i, h := range p.History {
				if i < len(s.history) {
					s.history[i] = dayPeak{day: h[0], peak: int(h[1])}
				}
			}
		}
	}
	if rec.Unconfirmed[0] == today {
		s.unconfirmedDay, s.unconfirmed = rec.Unconfirmed[0], int(rec.Unconfirmed[1])
	}
	if s.fired == nil {
		s.fired = map[alertKey]uint8{}
	}
	var g *grace
	if rec.Grace != nil {
		g = &grace{until: rec.Grace.Until, by: rec.Grace.By, relock: map[alertKey]int{}}
		if s.spendFired == lvlCritical {
			g.spend = rec.Grace.Spend
		}
	}
	taken := make([]bool, len(rec.Rules))
	for i := range cfg.rules {
		r := &cfg.rules[i]
		cs, ls := r.sigs[0], r.sigs[1]
		for j := range rec.Rules {
			rr := &rec.Rules[j]
			if taken[j] || rr.Counting != cs {
				continue
			}
			taken[j] = true
			if len(rr.CPM)+len(rr.Window)+len(rr.Blocked)+len(rr.Invalid)+len(rr.Locked)+len(rr.Ended)+len(rr.Dests)+len(rr.Countries) > 0 ||
				rr.Seq != 0 || rr.RangeSeq != 0 {
				c := r.counters()
				restoreRing(c.cpm, rr.CPM, uint32(sec-59), uint32(sec))
				from, to := r.win.span(minute)
				restoreRing(c.win, rr.Window, from, to)
				restoreRing(c.blocked, rr.Blocked, from, to)
				restoreRing(c.invalid, rr.Invalid, from, to)
				restoreRing(c.locked, rr.Locked, from, to)
				restoreRing(c.ended, rr.Ended, from, to)
				restoreRing(c.short, rr.Short, from, to)
				if r.has[mSequential] {
					c.seq.Store(rr.Seq)
				}
				if r.has[mRangeSeq] {
					c.rangeSeq.Store(rr.RangeSeq)
				}
				if r.has[mDistinctDest] {
					c.dests = restoreSet(rr.Dests, minute, r.win.minutes, r.distinctCap(mDistinctDest))
				}
				if r.has[mDistinctCountry] {
					c.countries = restoreSet(rr.Countries, minute, r.win.minutes, r.distinctCap(mDistinctCountry))
				}
			}
			if rr.Levels == ls {
				for m := 0; m < numMeasures; m++ {
					if l := rr.Fired[policy.MeasureNames[m]]; l != lvlNone && r.has[m] {
						if s.fired == nil {
							s.fired = map[alertKey]uint8{}
						}
						s.fired[alertKey{uint8(i), uint8(m)}] = min(l, lvlCritical)
					}
					if at, ok := rr.Relock[policy.MeasureNames[m]]; ok && g != nil {
						g.relock[alertKey{uint8(i), uint8(m)}] = at
					}
				}
			}
			break
		}
	}
	s.firedCfg = cfg
	s.grace = g
	s.stored = true
	s.markDirty() // evaluated (and kept watched) from the first pass
	return nil
}

// RestoreCall puts a stored call back: a live call into its scopes' live
// calls (it costs and counts from its answer, as before the restart), an
// ended call's tombstone into the dedupe set (its end, repeated after the
// restart, is a duplicate). Call it after RestoreScope.
func (e *Engine) RestoreCall(id string, val []byte) error {
	var rec callRec
	if err := policy.DecodeStrict(val, &rec); err != nil {
		return err
	}
	s := e.exact(rec.Account, rec.Subaccount)
	if s == nil {
		return errGone
	}
	now := e.opt.Now()
	c := &call{id: id, scope: s, dest: matcher.Number(rec.Dest), rate: rec.Rate, answered: time.Unix(0, rec.Answered),
		heard: time.Unix(0, rec.Heard), unconfirmed: rec.Unconfirmed, durLevel: rec.Levels, booked: time.Duration(rec.Booked),
		proxy: rec.Proxy}
	if rec.Dialog != nil {
		c.dialog = *rec.Dialog
	}
	if rec.Ended != 0 {
		c.ended, c.endedAt = true, time.Unix(0, rec.Ended)
		if now.Sub(c.endedAt) > e.opt.MaxCallDuration {
			return errors.New("tombstone expired")
		}
	}
	for idx, sc := 0, s; sc != nil && idx < 2; idx, sc = idx+1, sc.parent {
		c.durCfg[idx] = sc.cfg.Load()
	}
	sh := e.calls.shard(id)
	sh.mu.Lock()
	if sh.m[id] != nil {
		sh.mu.Unlock()
		return errors.New("call already known")
	}
	sh.m[id] = c
	sh.mu.Unlock()
	if !c.ended {
		e.live.Add(1)
		for sc := s; sc != nil; sc = sc.parent {
			sc.mu.Lock()
			if sc.live == nil {
				sc.live = map[*call]struct{}{}
			}
			sc.live[c] = struct{}{}
			sc.mu.Unlock()
			sc.markDirty()
		}
	}
	return nil
}
