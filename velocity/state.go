package velocity

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/policy"
)

// MeasureState is one measure of one rule as the admin API shows it.
type MeasureState struct {
	Value    int    `json:"value"`
	Warning  int    `json:"warning,omitempty"`
	Critical int    `json:"critical,omitempty"`
	Level    string `json:"level"` // "ok", "warning", "critical"
}

// RuleState is one rule's counters.
type RuleState struct {
	Name          string                  `json:"name"`
	Prefix        string                  `json:"prefix,omitempty"`
	Hours         string                  `json:"hours,omitempty"`
	Days          []string                `json:"days,omitempty"`
	WindowMinutes int                     `json:"window_minutes"`
	Active        bool                    `json:"active"`
	Measures      map[string]MeasureState `json:"measures"`
}

// SpendState is the scope's spend today (amounts in the deck's currency).
type SpendState struct {
	Day      string      `json:"day"` // the local date, YYYY-MM-DD
	Spent    json.Number `json:"spent"`
	Booked   json.Number `json:"booked"`  // ended calls
	Running  json.Number `json:"running"` // calls in progress
	Currency string      `json:"currency,omitempty"`
	Warning  json.Number `json:"warning,omitempty"`
	Limit    json.Number `json:"limit,omitempty"`
	Level    string      `json:"level"`
}

// ScopeState is what the admin API shows of an account or subaccount.
type ScopeState struct {
	Account    string `json:"account"`
	Subaccount string `json:"subaccount,omitempty"`
	TimeZone   string `json:"time_zone"`
	Lock       *Lock  `json:"lock"`
	// IntlLocked is true when this scope or (for a subaccount) its
	// account is locked.
	IntlLocked      bool        `json:"international_locked"`
	LiveCalls       int         `json:"live_calls"`
	PeakToday       int         `json:"peak_today"`
	TypicalPeak     int         `json:"typical_peak"`
	CallsThisSecond int         `json:"calls_this_second,omitempty"`
	MaxCPS          int         `json:"max_cps,omitempty"`
	Spend           SpendState  `json:"spend"`
	Rules           []RuleState `json:"rules"`
	// UnconfirmedCalls counts today's calls whose end never came (booked
	// from their answer to when they were last heard of).
	UnconfirmedCalls int `json:"unconfirmed_calls"`
	// Unlock is what the last operator unlock left: when it lapses and at
	// which values the measures it found critical lock again (nil when
	// none is pending).
	Unlock *UnlockState `json:"unlock,omitempty"`
}

// UnlockState is an operator unlock still being watched.
type UnlockState struct {
	By    string    `json:"by"`
	Until time.Time `json:"until,omitzero"`
	// Relock is, by "rule/measure" (and "daily_spend"), the value at which
	// a new critical is raised and the scope locked again.
	Relock map[string]json.Number `json:"relock"`
}

// AccountState is an account's scope with its subaccounts'.
type AccountState struct {
	ScopeState
	Subaccounts []ScopeState `json:"subaccounts,omitempty"`
}

// ErrUnknownScope means the account or subaccount does not exist.
type ErrUnknownScope struct{ Key string }

// Error names the scope.
func (e *ErrUnknownScope) Error() string { return fmt.Sprintf("no account or subaccount %q", e.Key) }

// State returns an account's counters, its subaccounts' included.
func (e *Engine) State(account string) (AccountState, error) {
	en, _ := e.table.Load().accounts.Get(account)
	if en == nil {
		return AccountState{}, &ErrUnknownScope{Key: account}
	}
	now := e.opt.Now()
	out := AccountState{ScopeState: e.scope(en, account).state(now)}
	names := make([]string, 0, len(en.subs))
	for n := range en.subs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out.Subaccounts = append(out.Subaccounts, en.subs[n].state(now))
	}
	return out, nil
}

func levelName(l uint8) string {
	switch l {
	case lvlCritical:
		return "critical"
	case lvlWarning:
		return "warning"
	}
	return "ok"
}

func micro(m int64) json.Number { return json.Number(policy.FormatMicro(m)) }

func (s *Scope) state(now time.Time) ScopeState {
	cfg := s.cfg.Load()
	st := ScopeState{Account: s.account, Subaccount: s.sub, Rules: []RuleState{}}
	if l, ok := s.e.LockOf(s.account, s.sub); ok {
		st.Lock = &l
	}
	st.IntlLocked = s.IntlLocked() != 0
	if cfg == nil {
		return st
	}
	st.TimeZone = cfg.loc.String()
	sec := now.Unix()
	if cfg.maxCPS > 0 {
		st.MaxCPS = cfg.maxCPS
		st.CallsThisSecond = bucketCount(&s.cps[sec%int64(len(s.cps))], uint32(sec))
	}
	local := now.In(cfg.loc)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollDay(now, cfg)
	s.notePeak(len(s.live), now)
	st.LiveCalls, st.PeakToday, st.TypicalPeak = len(s.live), s.peakToday, s.typicalPeak(dayNumber(now, cfg))
	if s.unconfirmedDay == dayNumber(now, cfg) {
		st.UnconfirmedCalls = s.unconfirmed
	}
	if g := s.grace; g != nil {
		u := &UnlockState{By: g.by, Until: g.until, Relock: map[string]json.Number{}}
		if g.spend > 0 {
			u.Relock[alert.KindDailySpend] = micro(g.spend)
		}
		if s.firedCfg == cfg {
			for k, at := range g.relock {
				u.Relock[cfg.rules[k.rule].name+"/"+policy.MeasureNames[k.measure]] = json.Number(strconv.Itoa(at))
			}
		}
		st.Unlock = u
	}
	running := s.running(now, cfg) + s.remote.Load().spend(s.spendDay)
	st.Spend = SpendState{Day: local.Format("2006-01-02"), Spent: micro(s.spent + running), Booked: micro(s.spent), Running: micro(running)}
	if s.e.opt.Currency != nil {
		st.Spend.Currency = s.e.opt.Currency()
	}
	lvl := lvlNone
	if cfg.spendWarn > 0 {
		st.Spend.Warning = micro(cfg.spendWarn)
		if s.spent+running >= cfg.spendWarn {
			lvl = lvlWarning
		}
	}
	if cfg.spendLimit > 0 {
		st.Spend.Limit = micro(cfg.spendLimit)
		if s.spent+running >= cfg.spendLimit {
			lvl = lvlCritical
		}
	}
	st.Spend.Level = levelName(lvl)
	for i := range cfg.rules {
		r := &cfg.rules[i]
		rs := RuleState{Name: r.name, Prefix: r.prefixTx, WindowMinutes: r.win.minutes, Active: r.active(local), Measures: map[string]MeasureState{}}
		if r.from != r.to {
			rs.Hours = fmt.Sprintf("%02d:%02d-%02d:%02d", r.from/60, r.from%60, r.to/60, r.to%60)
		}
		for _, d := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
			if r.days&(1<<d) != 0 {
				rs.Days = append(rs.Days, dayNames[d])
			}
		}
		var v [numMeasures]int
		r.values(sec, &v)
		r.addRemote(s.remote.Load(), &v)
		for c := range s.live {
			if r.matches(c.dest) {
				v[mConcurrent]++
				v[mDuration] = max(v[mDuration], int(now.Sub(c.answered)/time.Second))
			}
		}
		for m := 0; m < numMeasures; m++ {
			if !r.has[m] {
				continue
			}
			rs.Measures[policy.MeasureNames[m]] = MeasureState{Value: v[m], Warning: r.th[m].Warning, Critical: r.th[m].Critical,
				Level: levelName(levelOf(v[m], r.th[m]))}
		}
		st.Rules = append(st.Rules, rs)
	}
	return st
}

var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// Reset zeroes a scope's counters (every rule's windows and sequential run,
// today's booked spend) and re-arms its alerts. Live calls stay: they are
// calls in progress, not history. sub "" resets the account and all its
// subaccounts.
func (e *Engine) Reset(account, sub string) error {
	en, _ := e.table.Load().accounts.Get(account)
	if en == nil {
		return &ErrUnknownScope{Key: account}
	}
	var scopes []*Scope
	if sub != "" {
		s := en.subs[sub]
		if s == nil {
			return &ErrUnknownScope{Key: scopeKey(account, sub)}
		}
		scopes = append(scopes, s)
	} else {
		scopes = append(scopes, e.scope(en, account))
		for _, s := range en.subs {
			scopes = append(scopes, s)
		}
	}
	for _, s := range scopes {
		s.mu.Lock()
		if cfg := s.cfg.Load(); cfg != nil {
			for i := range cfg.rules {
				if c := cfg.rules[i].ctr.Load(); c != nil {
					c.reset()
				}
			}
		}
		for i := range s.cps {
			s.cps[i].Store(0)
		}
		s.spent, s.spendFired, s.fired, s.grace = 0, 0, map[alertKey]uint8{}, nil
		for c := range s.live {
			idx := 0
			if c.scope != s {
				idx = 1
			}
			c.durLevel[idx] = [policy.MaxVelocityRules]uint8{}
		}
		s.mu.Unlock()
		s.markDirty()
	}
	return nil
}
