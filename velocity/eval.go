package velocity

import (
	"fmt"
	"math"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/policy"
)

// Alert levels as stored in the fired-state maps.
const (
	lvlNone uint8 = iota
	lvlWarning
	lvlCritical
)

var measureUnits = [numMeasures]string{"calls", "calls", "calls", "calls", "seconds", "attempts",
	"numbers", "countries", "calls", "percent", "attempts", "attempts"}

func levelOf(v int, t policy.Threshold) uint8 {
	switch {
	case t.Critical > 0 && v >= t.Critical:
		return lvlCritical
	case t.Warning > 0 && v >= t.Warning:
		return lvlWarning
	}
	return lvlNone
}

// pendingAlert is an alert found under a scope's lock, raised after it.
type pendingAlert struct {
	a    alert.Alert
	lock bool // the critical level's action is a lockdown
}

type evalState struct {
	peakRatio float64
}

// yieldEvery is how many scopes Evaluate checks between yields to the
// query goroutines: about 100 µs of work.
const yieldEvery = 256

// yield lets the query goroutines run in the middle of a long pass. On one P
// (GOMAXPROCS=1, a pinned sidecar) runtime.Gosched is not enough: the
// scheduler takes the yielding goroutine back from the run queue before it
// polls the network, so queries would wait for sysmon's 10 ms poll. Parking
// on a timer makes the scheduler poll the network first.
func yield() { time.Sleep(time.Microsecond) }

// Evaluate checks every scope with news (attempts, events, a config change)
// and every scope still holding live calls or raised alerts against its
// rules: alerts for levels newly reached, lockdowns for critical levels
// whose action is lockdown. It also ends expired calls (at most once a
// second) and updates the gauges. Run calls it periodically; tests call it
// with an injected clock.
func (e *Engine) Evaluate() {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	start := time.Now()
	now := e.opt.Now()
	if e.opt.Offline {
		// a replay has no live calls and no unlocks: a level is reached
		// only by a scope's own new attempts, so only scopes with news
		// are evaluated (a replay of a day evaluates once a second)
		clear(e.watch)
		clear(e.persist)
	}
	e.drainDirty()
	e.ranges.configure(e.rangeCfg.Load())
	if js := e.journal.Load(); js != nil {
		for _, j := range js {
			j.drain(e.fold)
		}
	}
	ranges := e.ranges.check(now)
	if e.lastSweep.IsZero() || now.Sub(e.lastSweep) >= time.Second || now.Before(e.lastSweep) {
		e.sweep(now)
		if e.unknownN.Load() > 0 {
			e.pruneUnknown(now, e.table.Load().accounts)
		}
		e.lastSweep = now
	}
	var st evalState
	n, dropped := 0, 0
	for s := range e.watch {
		keep, changed := s.evaluate(now, &st)
		if !keep {
			delete(e.watch, s)
			dropped++
		}
		if changed {
			e.persist[s] = struct{}{}
		}
		// A pass over tens of thousands of scopes takes milliseconds; on
		// one P (GOMAXPROCS=1, a pinned sidecar) it would hold every query
		// behind it that long. Let them run between slices of the pass.
		if n++; n%yieldEvery == 0 && !e.opt.Offline {
			yield()
		}
	}
	if dropped > 1024 && len(e.watch) < dropped {
		// A Go map keeps the room it once needed: after the pass over
		// every scope that follows a start or a full sync, keep the few
		// still watched in a map their size.
		// (maps.Clone would copy the room too.)
		w := make(map[*Scope]struct{}, len(e.watch))
		for s := range e.watch {
			w[s] = struct{}{}
		}
		e.watch = w
	}
	e.raiseRanges(ranges)
	e.cpsRatio.Store(math.Float64bits(e.cpsRatioOf(uint32(now.Unix() - 1))))
	e.peakRatio.Store(math.Float64bits(st.peakRatio))
	took := time.Since(start)
	e.evalNanos.Store(took.Nanoseconds())
	e.evalTotal.Add(took.Nanoseconds())
	i := 0
	for i < len(EvalBuckets) && took.Seconds() > EvalBuckets[i] {
		i++
	}
	e.evalHist[i].Add(1)
}

// drainDirty moves the scopes with news to the evaluator's watch and to
// the fraud state's next collection. Called with evalMu held.
func (e *Engine) drainDirty() {
	for s := e.dirty.Swap(nil); s != nil; {
		next := s.next.Load()
		s.next.Store(nil)
		s.dirtyFlag.Store(false)
		e.watch[s] = struct{}{}
		e.persist[s] = struct{}{}
		if e.export != nil {
			e.export[s] = struct{}{}
		}
		s = next
	}
}

// evaluate checks one scope and reports whether it still needs watching
// and whether its stored state changed.
func (s *Scope) evaluate(now time.Time, st *evalState) (keep, changed bool) {
	cfg := s.cfg.Load()
	if cfg == nil || s.gone.Load() {
		return false, false
	}
	var fire []pendingAlert
	sec := now.Unix()

	s.mu.Lock()
	before := s.stamp()
	if s.firedCfg != cfg {
		// a new config: the levels raised under the old one still hold for
		// the measures whose rule, level and action are unchanged (so a
		// policy edit does not re-raise them, nor re-lock a scope an
		// operator unlocked); the others are judged afresh
		s.regrace(s.firedCfg, cfg)
		s.fired, s.spendFired = rearm(s.fired, s.firedCfg, cfg), rearmSpend(s.spendFired, s.firedCfg, cfg)
		s.firedCfg = cfg
	}
	g := s.grace
	if g != nil && s.locked.Load() {
		s.grace, g = nil, nil // locked again: the unlock is over
	}
	lapsed := g.lapsed(now)
	local := now.In(cfg.loc)
	rem := s.remote.Load()
	for i := range cfg.rules {
		r := &cfg.rules[i]
		var v [numMeasures]int
		r.values(sec, &v)
		r.addRemote(rem, &v)
		if r.active(local) && (r.has[mConcurrent] || r.has[mDuration]) {
			for c := range s.live {
				if !r.matches(c.dest) {
					continue
				}
				v[mConcurrent]++
				if !r.has[mDuration] {
					continue
				}
				idx := 0
				if c.scope != s {
					idx = 1
				}
				d := int(now.Sub(c.answered) / time.Second)
				if lvl, raised := levelOf(d, r.th[mDuration]), c.durLevels(idx, cfg); lvl > raised[i] {
					raised[i] = lvl
					fire = append(fire, s.thresholdAlert(now, r, mDuration, lvl, d, c.id))
				}
			}
		}
		for m := 0; m < numMeasures; m++ {
			if m == mDuration || !r.has[m] {
				continue
			}
			key := alertKey{uint8(i), uint8(m)}
			lvl, prev := levelOf(v[m], r.th[m]), s.fired[key]
			switch {
			case lvl > prev:
				if s.fired == nil {
					s.fired = map[alertKey]uint8{}
				}
				s.fired[key] = lvl
				fire = append(fire, s.thresholdAlert(now, r, m, lvl, v[m], ""))
			case lvl == lvlNone && prev != lvlNone:
				delete(s.fired, key) // below warning again: re-armed
				if g != nil {
					delete(g.relock, key)
				}
			case prev == lvlCritical && g != nil:
				// unlocked by an operator: a further margin, or the
				// unlock's end with the level still crossed, is a new
				// critical
				if at, ok := g.relock[key]; ok && (v[m] >= at || (lapsed && lvl == lvlCritical)) {
					delete(g.relock, key)
					p := s.thresholdAlert(now, r, m, lvlCritical, v[m], "")
					if !lapsed || v[m] >= at {
						p.a.Threshold = float64(at)
					}
					fire = append(fire, s.again(p, fmt.Sprint(at), lapsed && v[m] < at))
				}
			}
			if v[m] > 0 {
				keep = true
			}
		}
	}
	if len(s.fired) > 0 || s.grace != nil || rem != nil {
		keep = true
	}
	if cfg.spendWarn > 0 || cfg.spendLimit > 0 {
		s.rollDay(now, cfg)
		spent := s.spent + s.running(now, cfg) + rem.spend(s.spendDay)
		lvl := lvlNone
		switch {
		case cfg.spendLimit > 0 && spent >= cfg.spendLimit:
			lvl = lvlCritical
		case cfg.spendWarn > 0 && spent >= cfg.spendWarn:
			lvl = lvlWarning
		}
		switch {
		case lvl > s.spendFired:
			s.spendFired = lvl
			fire = append(fire, s.spendAlert(now, cfg, lvl, spent))
		case s.spendFired == lvlCritical && g != nil && g.spend > 0 && (spent >= g.spend || (lapsed && lvl == lvlCritical)):
			at := g.spend
			g.spend = 0
			p := s.spendAlert(now, cfg, lvlCritical, spent)
			if spent >= at {
				p.a.Threshold = float64(at) / 1e6
			}
			fire = append(fire, s.again(p, policy.FormatMicro(at), spent < at))
		}
	}
	if g != nil && (lapsed || (len(g.relock) == 0 && g.spend == 0 && g.until.IsZero())) {
		s.grace = nil // lapsed, or nothing left to watch for
	}
	live := len(s.live)
	s.notePeak(live, now)
	if live > 0 {
		keep = true
		if tp := s.typicalPeak(dayNumber(now, cfg)); tp > 0 {
			st.peakRatio = math.Max(st.peakRatio, float64(live)/float64(tp))
		}
	}
	changed = s.stamp() != before
	s.mu.Unlock()
	s.e.raise(s, fire)
	return keep, changed
}

// stampOf is a cheap summary of the scope's stored state that the
// evaluator can change: the raised levels, the spend day, today's peak and
// the grace. Called with s.mu held.
type stampOf struct {
	fired      int
	firedSum   int
	spendFired uint8
	spendDay   int64
	peakDay    int64
	peakToday  int
	grace      *grace
	relock     int
	spendAt    int64
}

func (s *Scope) stamp() stampOf {
	st := stampOf{fired: len(s.fired), spendFired: s.spendFired, spendDay: s.spendDay, peakDay: s.peakDay, peakToday: s.peakToday, grace: s.grace}
	for k, l := range s.fired {
		st.firedSum += int(k.rule)*131 + int(k.measure)*7 + int(l)
	}
	if s.grace != nil {
		st.relock, st.spendAt = len(s.grace.relock), s.grace.spend
	}
	return st
}

// pairRules pairs each rule of cfg with the rule of old that counts the
// same calls, as compileConfig pairs their counters: pair[i] is old's index,
// or -1.
func pairRules(old, cfg *scopeConfig) (pair [policy.MaxVelocityRules]int8) {
	var taken uint32
	for i := range cfg.rules {
		pair[i] = -1
		if old == nil {
			continue
		}
		for j := range old.rules {
			if taken&(1<<j) == 0 && old.rules[j].sameCounting(&cfg.rules[i]) {
				taken |= 1 << j
				pair[i] = int8(j)
				break
			}
		}
	}
	return pair
}

// carries reports whether a level of measure m raised under old rule o
// still holds under its paired rule r: the same threshold and critical
// action.
func carries(o, r *rule, m int) bool {
	return r.has[m] && o.th[m] == r.th[m] && o.action == r.action
}

// rearm carries a scope's raised levels from its old config to a new one:
// a measure keeps its level when its rule counts the same calls (paired by
// pairRules) with the same threshold and the same critical action. Called
// with s.mu held.
//
// It returns nil when no level carries (a scope without raised levels holds
// no map: every account's scope is evaluated once after a start).
func rearm(fired map[alertKey]uint8, old, cfg *scopeConfig) map[alertKey]uint8 {
	if old == nil || len(fired) == 0 {
		return nil
	}
	out := map[alertKey]uint8{}
	pair := pairRules(old, cfg)
	for i := range cfg.rules {
		j := pair[i]
		if j < 0 {
			continue
		}
		for m := 0; m < numMeasures; m++ {
			if lvl, ok := fired[alertKey{uint8(j), uint8(m)}]; ok && carries(&old.rules[j], &cfg.rules[i], m) {
				out[alertKey{uint8(i), uint8(m)}] = lvl
			}
		}
	}
	return out
}

// durLevels returns a call's raised call_duration levels in scope idx (0
// its own, 1 its account's) by rule of cfg, carried over (as rearm does)
// from the config they were raised under. Called with the scope's mu held.
func (c *call) durLevels(idx int, cfg *scopeConfig) *[policy.MaxVelocityRules]uint8 {
	if old := c.durCfg[idx]; old != cfg {
		var next [policy.MaxVelocityRules]uint8
		if old != nil {
			pair := pairRules(old, cfg)
			for i := range cfg.rules {
				if j := pair[i]; j >= 0 && carries(&old.rules[j], &cfg.rules[i], mDuration) {
					next[i] = c.durLevel[idx][j]
				}
			}
		}
		c.durLevel[idx], c.durCfg[idx] = next, cfg
	}
	return &c.durLevel[idx]
}

// rearmSpend keeps the daily spend's raised level when its levels and
// action are unchanged.
func rearmSpend(fired uint8, old, cfg *scopeConfig) uint8 {
	if old == nil || old.spendWarn != cfg.spendWarn || old.spendLimit != cfg.spendLimit || old.spendAction != cfg.spendAction {
		return 0
	}
	return fired
}

// running is the cost so far today of the scope's live calls. Called with
// s.mu held.
func (s *Scope) running(now time.Time, cfg *scopeConfig) int64 {
	var sum int64
	mid := s.dayStart(now, cfg)
	for c := range s.live {
		if c.rate > 0 {
			sum += costToday(c.rate, c.answered, now, mid)
		}
	}
	return sum
}

// durationAlerts checks an ended call's duration against the rules that
// were active when it was answered. Called with s.mu held; idx says whether
// s is the call's own scope (0) or its account's (1).
func (s *Scope) durationAlerts(cfg *scopeConfig, c *call, idx int, dur time.Duration, now time.Time) []pendingAlert {
	var out []pendingAlert
	var local time.Time
	if cfg.timed {
		local = c.answered.In(cfg.loc)
	}
	for i := range cfg.rules {
		r := &cfg.rules[i]
		if !r.has[mDuration] || !r.matches(c.dest) || (cfg.timed && !r.active(local)) {
			continue
		}
		d := int(dur / time.Second)
		if lvl, raised := levelOf(d, r.th[mDuration]), c.durLevels(idx, cfg); lvl > raised[i] {
			raised[i] = lvl
			out = append(out, s.thresholdAlert(now, r, mDuration, lvl, d, c.id))
		}
	}
	return out
}

func (s *Scope) name() string { return scopeKey(s.account, s.sub) }

func (s *Scope) thresholdAlert(now time.Time, r *rule, m int, lvl uint8, value int, callID string) pendingAlert {
	th, level := r.th[m].Warning, alert.LevelWarning
	if lvl == lvlCritical {
		th, level = r.th[m].Critical, alert.LevelCritical
	}
	a := alert.Alert{Time: now, Type: alert.TypeThreshold, Level: level, Kind: policy.MeasureNames[m],
		Account: s.account, Subaccount: s.sub, Rule: r.name, Prefix: r.prefixTx,
		Value: float64(value), Threshold: float64(th), Unit: measureUnits[m], CallID: callID}
	where := r.name
	if r.prefixTx != "" {
		where += ", prefix " + r.prefixTx
	}
	a.Message = fmt.Sprintf("%s: %s %d reached the %s level %d (%s)", s.name(), a.Kind, value, level, th, where)
	p := pendingAlert{a: a}
	if lvl == lvlCritical {
		p.a.Action = r.action
		p.lock = r.action == policy.ActionLockdown
		p.a.Message += "; action " + r.action
	}
	return p
}

func (s *Scope) spendAlert(now time.Time, cfg *scopeConfig, lvl uint8, spent int64) pendingAlert {
	th, level := cfg.spendWarn, alert.LevelWarning
	if lvl == lvlCritical {
		th, level = cfg.spendLimit, alert.LevelCritical
	}
	cur := ""
	if s.e.opt.Currency != nil {
		cur = s.e.opt.Currency()
	}
	a := alert.Alert{Time: now, Type: alert.TypeThreshold, Level: level, Kind: alert.KindDailySpend,
		Account: s.account, Subaccount: s.sub, Value: float64(spent) / 1e6, Threshold: float64(th) / 1e6, Unit: cur}
	a.Message = fmt.Sprintf("%s: daily spend %s %s reached the %s level %s", s.name(), policy.FormatMicro(spent), cur, level, policy.FormatMicro(th))
	p := pendingAlert{a: a}
	if lvl == lvlCritical {
		p.a.Action = cfg.spendAction
		p.lock = cfg.spendAction == policy.ActionLockdown
		p.a.Message += "; action " + cfg.spendAction
	}
	return p
}

// raise sends alerts found under a scope's lock and carries out their
// lockdowns.
func (e *Engine) raise(s *Scope, ps []pendingAlert) {
	for _, p := range ps {
		e.notify(p.a)
		if p.lock {
			e.autoLock(s, p.a)
		}
	}
}
