package velocity

import (
	"fmt"
	"math"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/policy"
)

// grace is what an operator's unlock leaves on a scope: the levels at which
// the measures it found critical raise a new critical (and lock again), and
// when the unlock lapses. Under the scope's mu.
type grace struct {
	until  time.Time        // zero: it does not lapse
	relock map[alertKey]int // by rule and measure: the value that locks again
	spend  int64            // the daily spend that locks again (millionths); 0: none
	by     string
}

// DefaultRelockMargin is the further margin, in critical levels, by which
// a measure found critical at an unlock must grow to lock again: another
// limit's worth.
const DefaultRelockMargin = 1.0

// relockAt is the value at which a measure at v locks again after an
// unlock: v plus margin times its critical level (at least one more).
func relockAt(v, critical int, margin float64) int {
	return v + max(1, int(math.Ceil(margin*float64(critical))))
}

// values reads a rule's measures as the evaluator does: its counters and,
// while the rule is active, its live calls, with the other nodes' in fleet
// mode. Called with s.mu held.
func (s *Scope) values(now time.Time, local time.Time, r *rule, v *[numMeasures]int) {
	r.values(now.Unix(), v)
	r.addRemote(s.remote.Load(), v)
	if r.active(local) && r.has[mConcurrent] {
		for c := range s.live {
			if r.matches(c.dest) {
				v[mConcurrent]++
			}
		}
	}
}

// startGrace records, at an operator's unlock, the level at which each
// measure now critical (with a lockdown action) locks again, and until.
// A measure at its critical level that this scope had not raised yet
// counts as raised: in fleet mode a node gets the lockdown another node
// raised (and the unlock) before its own evaluator may have seen the
// fleet's sum cross, and without this it would raise the same critical
// the moment the unlock lands and lock the account again everywhere. An
// operator's unlock of a lock taken by hand is judged the same way.
func (s *Scope) startGrace(now, until time.Time, by string) {
	cfg := s.cfg.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.markDirty()
	s.grace = nil
	if cfg == nil {
		return
	}
	if s.firedCfg != cfg {
		s.fired, s.spendFired = rearm(s.fired, s.firedCfg, cfg), rearmSpend(s.spendFired, s.firedCfg, cfg)
		s.firedCfg = cfg
	}
	g := &grace{until: until, relock: map[alertKey]int{}, by: by}
	local := now.In(cfg.loc)
	for i := range cfg.rules {
		r := &cfg.rules[i]
		if r.action != policy.ActionLockdown {
			continue
		}
		var v [numMeasures]int
		s.values(now, local, r, &v)
		for m := 0; m < numMeasures; m++ {
			if m == mDuration || !r.has[m] {
				continue
			}
			key := alertKey{uint8(i), uint8(m)}
			if s.fired[key] != lvlCritical && levelOf(v[m], r.th[m]) != lvlCritical {
				continue
			}
			if s.fired == nil {
				s.fired = map[alertKey]uint8{}
			}
			s.fired[key] = lvlCritical
			g.relock[key] = relockAt(max(v[m], r.th[m].Critical), r.th[m].Critical, cfg.relockMargin)
		}
	}
	if cfg.spendAction == policy.ActionLockdown && cfg.spendLimit > 0 {
		s.rollDay(now, cfg)
		spent := s.spent + s.running(now, cfg) + s.remote.Load().spend(s.spendDay)
		if s.spendFired == lvlCritical || spent >= cfg.spendLimit {
			s.spendFired = lvlCritical
			g.spend = max(spent, cfg.spendLimit) + int64(math.Ceil(cfg.relockMargin*float64(cfg.spendLimit)))
		}
	}
	s.grace = g
}

// lapsed reports whether the grace's until has passed.
func (g *grace) lapsed(now time.Time) bool {
	return g != nil && !g.until.IsZero() && !now.Before(g.until)
}

// regrace carries the grace's re-lock levels from the old config to a new
// one as rearm carries the raised levels. Called with s.mu held.
func (s *Scope) regrace(old, cfg *scopeConfig) {
	g := s.grace
	if g == nil {
		return
	}
	next := map[alertKey]int{}
	if old != nil {
		pair := pairRules(old, cfg)
		for i := range cfg.rules {
			j := pair[i]
			if j < 0 {
				continue
			}
			for m := 0; m < numMeasures; m++ {
				if at, ok := g.relock[alertKey{uint8(j), uint8(m)}]; ok && carries(&old.rules[j], &cfg.rules[i], m) {
					next[alertKey{uint8(i), uint8(m)}] = at
				}
			}
		}
	}
	g.relock = next
	if rearmSpend(lvlCritical, old, cfg) != lvlCritical {
		g.spend = 0
	}
}

// again turns a critical alert into the new critical of a measure that
// grew past its re-lock level (at, as text) after an unlock, or that is
// still critical when the unlock lapsed. Called with s.mu held.
func (s *Scope) again(p pendingAlert, at string, lapsed bool) pendingAlert {
	if lapsed {
		p.a.Message += fmt.Sprintf("; still critical when the unlock by %s lapsed", s.grace.by)
	} else {
		p.a.Message += fmt.Sprintf("; crossed again after the unlock by %s (re-lock level %s)", s.grace.by, at)
	}
	return p
}

// noteUnconfirmed counts a call whose end never came in its scope and its
// account's, and alerts: it was booked only for what was known of it.
func (s *Scope) noteUnconfirmed(c *call, end, now time.Time) {
	for sc := s; sc != nil; sc = sc.parent {
		cfg := sc.cfg.Load()
		sc.mu.Lock()
		if day := dayNumber(now, cfg); day != sc.unconfirmedDay {
			sc.unconfirmedDay, sc.unconfirmed = day, 0
		}
		sc.unconfirmed++
		sc.mu.Unlock()
		sc.markDirty()
	}
	dur := end.Sub(c.answered)
	s.e.notify(alert.Alert{Time: now, Type: alert.TypeCall, Level: alert.LevelInfo, Kind: alert.KindUnconfirmedCall,
		Account: s.account, Subaccount: s.sub, CallID: c.id, Value: float64(dur / time.Second), Unit: "seconds", Unconfirmed: true,
		Message: fmt.Sprintf("%s: call %s answered at %s never reported its end within %v: booked unconfirmed for %v (answer to last heard)",
			s.name(), c.id, c.answered.UTC().Format(time.RFC3339), s.e.opt.MaxCallDuration, dur.Round(time.Second))})
}

// NextMidnight is the next local midnight of a scope's time zone after now
// (UTC's for a scope without one): the end of an unlock "until midnight".
func (e *Engine) NextMidnight(account, sub string, now time.Time) (time.Time, error) {
	s := e.exact(account, sub)
	if s == nil {
		return time.Time{}, &ErrUnknownScope{Key: scopeKey(account, sub)}
	}
	loc := time.UTC
	if cfg := s.cfg.Load(); cfg != nil {
		loc = cfg.loc
	}
	l := now.In(loc)
	y, m, d := l.Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc), nil
}
