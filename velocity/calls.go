package velocity

import (
	"hash/maphash"
	"sort"
	"sync"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// EventKind is what a call event reports.
type EventKind uint8

// Call events.
const (
	Answered EventKind = iota
	Ended
	numEventKinds
)

// EventKindNames are the wire names (and metric labels) of the kinds.
var EventKindNames = [numEventKinds]string{"answered", "ended"}

// Result is what became of an event.
type Result uint8

// Event results.
const (
	// Accepted changed the state: a new live call, or a call ended.
	Accepted Result = iota
	// Duplicate repeated (or came after) what is known of the call: an
	// answered call already live or ended, an end already counted.
	Duplicate
	// Ignored named an account tollgate does not know.
	Ignored
	numResults
)

// ResultNames are the metric labels of the results.
var ResultNames = [numResults]string{"accepted", "duplicate", "ignored"}

// Event is one call event from a proxy.
type Event struct {
	Kind       EventKind
	CallID     string
	Account    string
	Subaccount string
	// To is the destination: the verdict's e164, or the number as dialled.
	To string
	// Time is when the call was answered or ended; zero means now.
	Time time.Time
	// Duration is, for an end, how long the call was up; negative when
	// the proxy did not say (then it is measured from the answer).
	Duration time.Duration
	// Proxy names the proxy that reported the call, as configured in
	// tollgate (-proxy-control): a teardown goes to that proxy's control
	// interface and nowhere else. Empty for configs that do not say.
	Proxy string
	// Dialog is how the proxy finds the call's dialog to end it.
	Dialog Dialog
}

// Dialog identifies a call's dialog on the proxy that reported it. The
// Call-ID is the event's; the tags complete RFC 3261's dialog identity, and
// ID is the proxy's own dialog id (OpenSIPS $DLG_did), for the proxies that
// can end a dialog by it. Any may be empty.
type Dialog struct {
	FromTag string `json:"from_tag,omitempty"`
	ToTag   string `json:"to_tag,omitempty"`
	ID      string `json:"id,omitempty"`
}

// LiveCall is a live call as a teardown sees it.
type LiveCall struct {
	CallID     string
	Account    string
	Subaccount string
	// To is the resolved E.164 destination ("" when it did not resolve).
	To string
	// Home is the home country of the call's scope ("" when it has none).
	Home     string
	Answered time.Time
	Proxy    string
	Dialog   Dialog
}

// call is a live call, or the tombstone of an ended one that keeps its end
// idempotent.
type call struct {
	id       string
	scope    *Scope
	dest     matcher.Number
	rate     int64 // millionths per minute; -1 when the deck does not price it
	answered time.Time
	proxy    string
	dialog   Dialog
	ended    bool      // under the shard's lock
	endedAt  time.Time // under the shard's lock: when the end was known (the tombstone's age)
	// heard is the last time an event told of the call (its answer, or a
	// repeated answer); under the shard's lock.
	heard time.Time
	// unconfirmed marks a call whose end never came: it was booked from
	// its answer to when it was last heard (or the unconfirmed cap).
	unconfirmed bool // under the shard's lock
	// forgotten marks a tombstone the sweep dropped (its record goes at the
	// next flush); under the shard's lock.
	forgotten bool
	// booked is how long the ended call was booked for; under the shard's
	// lock.
	booked time.Duration
	// durLevel is the level of call_duration alert already raised for this
	// call, per rule of durCfg, in its own scope [0] and its account's [1]
	// (under that scope's mu; read through durLevels).
	durLevel [2][policy.MaxVelocityRules]uint8
	durCfg   [2]*scopeConfig
}

const callShards = 64

// callTable finds calls by Call-ID.
type callTable struct {
	seed   maphash.Seed
	shards [callShards]callShard
}

// callShard is one shard of the call table; dirty lists the calls changed
// since the fraud state was last collected.
type callShard struct {
	mu    sync.Mutex
	m     map[string]*call
	dirty []*call
}

func (t *callTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = map[string]*call{}
	}
}

func (t *callTable) shard(id string) *callShard {
	return &t.shards[maphash.String(t.seed, id)%callShards]
}

// Apply takes one call event. Answers of a call already known and ends of
// a call already ended are duplicates and change nothing; an end whose
// answer was never seen still counts the call's duration and cost. Events
// of accounts the engine does not know are ignored.
func (e *Engine) Apply(ev Event) Result {
	r := e.apply(ev)
	if ev.Kind < numEventKinds {
		e.events[ev.Kind][r].Add(1)
	}
	return r
}

// End books the end of a call that tollgate itself ended (a teardown),
// like an ended event but without counting it among the proxies' events.
func (e *Engine) End(ev Event) Result {
	ev.Kind = Ended
	return e.apply(ev)
}

func (e *Engine) apply(ev Event) Result {
	s := e.lookup(ev.Account, ev.Subaccount)
	if s == nil || ev.CallID == "" {
		return Ignored
	}
	// a collection of the fraud state sees an event whole: the call and
	// the spend it booked, or neither
	e.stateMu.RLock()
	defer e.stateMu.RUnlock()
	now := e.opt.Now()
	at := ev.Time
	if at.IsZero() || at.After(now) {
		at = now
	}
	sh := e.calls.shard(ev.CallID)
	sh.mu.Lock()
	c := sh.m[ev.CallID]
	if c != nil && (ev.Kind == Answered || c.ended) {
		if ev.Kind == Answered && !c.ended && now.After(c.heard) {
			// a repeated answer of a live call: it is still heard of
			c.heard = now
			e.noteCall(sh, c)
		}
		sh.mu.Unlock()
		return Duplicate
	}
	if c == nil {
		dest, rate := e.price(ev)
		c = &call{id: ev.CallID, scope: s, dest: dest, rate: rate, answered: at, heard: at, proxy: ev.Proxy, dialog: ev.Dialog}
		if ev.Kind == Ended {
			dur := min(ev.Duration, e.opt.MaxCallDuration)
			if dur < 0 {
				dur = 0
			}
			c.answered = at.Add(-dur)
			c.ended, c.endedAt, c.booked = true, at, dur
		}
		sh.m[ev.CallID] = c
		e.noteCall(sh, c)
		sh.mu.Unlock()
		if ev.Kind == Answered {
			e.live.Add(1)
			c.scope.addLive(c, now)
			if e.opt.OnLockedAnswer != nil && s.IntlLocked() != matcher.LayerNone {
				// ringing when the lock came: the teardown decides whether
				// it is international
				e.opt.OnLockedAnswer(s.account, s.sub)
			}
		} else {
			c.scope.endCall(c, c.answered, at, now, false)
		}
		return Accepted
	}
	// the end of a live call; c.answered stays as it was (the evaluator
	// reads it), the proxy's duration decides the cost
	c.ended, c.endedAt, c.heard = true, at, at
	e.noteCall(sh, c)
	answered := c.answered
	if ev.Duration >= 0 {
		answered = at.Add(-ev.Duration)
	}
	if at.Sub(answered) > e.opt.MaxCallDuration {
		// no call is longer: an answer dated far back (a forged or
		// replayed event) must not make a week-long call of it
		answered = at.Add(-e.opt.MaxCallDuration)
	}
	c.booked = at.Sub(answered)
	sh.mu.Unlock()
	e.live.Add(-1)
	c.scope.endCall(c, answered, at, now, true)
	return Accepted
}

// noteCall lists a changed call for the next collection of the fraud
// state (only when it is kept: otherwise nothing would ever drain the
// list). Called with the shard's lock held.
func (e *Engine) noteCall(sh *callShard, c *call) {
	if e.opt.KeepState {
		sh.dirty = append(sh.dirty, c)
	}
}

// LiveCalls lists the calls up in a scope: for an account, its own and its
// subaccounts'; for a subaccount, its own. ok is false when the scope does
// not exist. A call may end while the list is used; its end is idempotent.
func (e *Engine) LiveCalls(account, sub string) (calls []LiveCall, ok bool) {
	s := e.exact(account, sub)
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	calls = make([]LiveCall, 0, len(s.live))
	for c := range s.live {
		lc := LiveCall{CallID: c.id, Account: c.scope.account, Subaccount: c.scope.sub, Answered: c.answered,
			Proxy: c.proxy, Dialog: c.dialog}
		if c.dest != 0 {
			lc.To = c.dest.String()
		}
		if cfg := c.scope.cfg.Load(); cfg != nil {
			lc.Home = cfg.home
		}
		calls = append(calls, lc)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].Answered.Before(calls[j].Answered) })
	return calls, true
}

// Live reports whether a call is up (answered, not ended).
func (e *Engine) Live(callID string) bool {
	sh := e.calls.shard(callID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.m[callID]
	return c != nil && !c.ended
}

// price resolves an event's destination and its rate.
func (e *Engine) price(ev Event) (matcher.Number, int64) {
	e164 := ev.To
	if e.opt.Resolve != nil {
		e164 = e.opt.Resolve(ev.Account, ev.Subaccount, ev.To)
	}
	n, ok := matcher.PackNumber(e164)
	if !ok {
		return 0, -1
	}
	if e.opt.Price != nil {
		if r, ok := e.opt.Price(e164); ok {
			return n, r
		}
	}
	return n, -1
}

// addLive registers a new live call in its scope and its account's.
func (s *Scope) addLive(c *call, now time.Time) {
	for sc := s; sc != nil; sc = sc.parent {
		sc.mu.Lock()
		if sc.live == nil {
			sc.live = map[*call]struct{}{}
		}
		sc.live[c] = struct{}{}
		sc.notePeak(len(sc.live), now)
		sc.mu.Unlock()
		sc.markDirty()
	}
}

// endCall takes an ended call out of the live sets (when it was live),
// books the part of its cost that falls today, and checks its duration
// against the rules.
func (s *Scope) endCall(c *call, answered, ended, now time.Time, wasLive bool) {
	dur := ended.Sub(answered)
	for i, sc := 0, s; sc != nil; i, sc = i+1, sc.parent {
		cfg := sc.cfg.Load()
		var fire []pendingAlert
		sc.mu.Lock()
		if wasLive {
			delete(sc.live, c)
		}
		sc.rollDay(now, cfg)
		if c.rate > 0 {
			sc.spent += costToday(c.rate, answered, ended, sc.dayStart(now, cfg))
		}
		if cfg != nil {
			fire = sc.durationAlerts(cfg, c, i, dur, now)
			sc.countEnded(cfg, c, dur, now)
		}
		sc.mu.Unlock()
		sc.markDirty()
		sc.e.raise(sc, fire)
	}
}

// countEnded counts an ended call towards short_calls: in the rules that
// were active when it was answered, by the minute it ended. Called with
// s.mu held.
func (s *Scope) countEnded(cfg *scopeConfig, c *call, dur time.Duration, now time.Time) {
	var local time.Time
	if cfg.timed {
		local = c.answered.In(cfg.loc)
	}
	minute := uint32(now.Unix() / 60)
	for i := range cfg.rules {
		r := &cfg.rules[i]
		if !r.has[mShort] || !r.matches(c.dest) || (cfg.timed && !r.active(local)) {
			continue
		}
		ctr := r.counters()
		tag := r.win.tag(minute)
		ctr.ended.add(tag)
		if dur < time.Duration(r.shortSec)*time.Second {
			ctr.short.add(tag)
		}
	}
}

// costToday is the cost, in millionths, of the part of [from, to) after
// midnight (the start of today).
func costToday(rate int64, from, to, midnight time.Time) int64 {
	if from.Before(midnight) {
		from = midnight
	}
	ms := to.Sub(from).Milliseconds()
	if ms <= 0 || rate <= 0 {
		return 0
	}
	return rate * ms / 60_000
}

// dayStart is the local midnight that started now's day in the scope's
// time zone.
func (s *Scope) dayStart(now time.Time, cfg *scopeConfig) time.Time {
	loc := time.UTC
	if cfg != nil {
		loc = cfg.loc
	}
	l := now.In(loc)
	y, m, d := l.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// dayNumber numbers local days (days since 1970-01-01 of the local date).
func dayNumber(now time.Time, cfg *scopeConfig) int64 {
	loc := time.UTC
	if cfg != nil {
		loc = cfg.loc
	}
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// rollDay starts a new spend day at local midnight. Called with s.mu held.
func (s *Scope) rollDay(now time.Time, cfg *scopeConfig) {
	if day := dayNumber(now, cfg); day != s.spendDay {
		s.spendDay, s.spent, s.spendFired = day, 0, 0
		if s.grace != nil {
			s.grace.spend = 0 // a new day: the spend starts over
		}
	}
}

// notePeak tracks the day's highest number of live calls and keeps the
// previous days' peaks. Called with s.mu held.
func (s *Scope) notePeak(live int, now time.Time) {
	day := dayNumber(now, s.cfg.Load())
	if day != s.peakDay {
		if s.peakDay != 0 && s.peakToday > 0 {
			if s.history == nil {
				s.history = new([7]dayPeak)
			}
			copy(s.history[1:], s.history[:len(s.history)-1])
			s.history[0] = dayPeak{day: s.peakDay, peak: s.peakToday}
		}
		s.peakDay, s.peakToday = day, 0
	}
	s.peakToday = max(s.peakToday, live)
}

// typicalPeak is the highest daily peak of the seven days before today (0
// until a day with calls has passed). Called with s.mu held.
func (s *Scope) typicalPeak(today int64) int {
	p := 0
	if s.history == nil {
		return 0
	}
	for _, h := range s.history {
		if h.day != 0 && h.day < today && h.day >= today-7 {
			p = max(p, h.peak)
		}
	}
	return p
}

// sweep ends the live calls older than the maximum duration and forgets
// the tombstones of calls ended longer ago than that. A call whose end was
// lost is unconfirmed: it is booked for what is known of it — from its
// answer to when it was last heard of, or to the unconfirmed cap after its
// answer if that is later — not for the whole maximum duration, and its
// tombstone is kept another maximum duration so that a late end is not
// counted again.
func (e *Engine) sweep(now time.Time) {
	max := e.opt.MaxCallDuration
	for i := range e.calls.shards {
		sh := &e.calls.shards[i]
		var expired []*call
		var ends []time.Time
		sh.mu.Lock()
		n := len(sh.m)
		for id, c := range sh.m {
			switch {
			case c.ended && now.Sub(c.endedAt) > max:
				delete(sh.m, id)
				c.forgotten = true
				e.noteCall(sh, c)
			case !c.ended && now.Sub(c.answered) > max:
				end := c.answered.Add(min(e.opt.UnconfirmedCap, max))
				if c.heard.After(end) {
					end = c.heard
				}
				c.ended, c.endedAt, c.unconfirmed, c.booked = true, now, true, end.Sub(c.answered)
				e.noteCall(sh, c)
				expired = append(expired, c)
				ends = append(ends, end)
			}
		}
		sh.mu.Unlock()
		for j, c := range expired {
			e.live.Add(-1)
			e.expired.Add(1)
			c.scope.endCall(c, c.answered, ends[j], now, true)
			c.scope.noteUnconfirmed(c, ends[j], now)
		}
		if n >= yieldEvery {
			yield() // after a long shard, as Evaluate does between scopes
		}
	}
}

// CallState is a call as the admin API lists it: live, or ended and still
// remembered (for -max-call-duration after its end, so that its end is not
// counted twice).
type CallState struct {
	CallID     string    `json:"call_id"`
	Subaccount string    `json:"subaccount,omitempty"`
	To         string    `json:"to,omitempty"`
	Answered   time.Time `json:"answered"`
	LastHeard  time.Time `json:"last_heard"`
	Live       bool      `json:"live"`
	// Seconds is how long it has been up (live) or was booked for (ended).
	Seconds float64 `json:"seconds"`
	// Unconfirmed marks a call whose end never came: booked from its
	// answer to when it was last heard of (or the unconfirmed cap).
	Unconfirmed bool `json:"unconfirmed"`
}

// MaxListedCalls bounds Calls.
const MaxListedCalls = 1000

// Calls lists an account's calls (its subaccounts' included), newest
// answer first, at most MaxListedCalls. It walks the whole call table: an
// admin read, never on the query path.
func (e *Engine) Calls(account string) ([]CallState, error) {
	if _, ok := e.table.Load().accounts.Get(account); !ok {
		return nil, &ErrUnknownScope{Key: account}
	}
	now := e.opt.Now()
	out := []CallState{}
	for i := range e.calls.shards {
		sh := &e.calls.shards[i]
		sh.mu.Lock()
		for _, c := range sh.m {
			if c.scope.account != account {
				continue
			}
			cs := CallState{CallID: c.id, Subaccount: c.scope.sub, Answered: c.answered.UTC(), LastHeard: c.heard.UTC(),
				Live: !c.ended, Unconfirmed: c.unconfirmed, Seconds: c.booked.Seconds()}
			if c.dest != 0 {
				cs.To = c.dest.String()
			}
			if !c.ended {
				cs.Seconds = now.Sub(c.answered).Seconds()
			}
			out = append(out, cs)
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Answered.Equal(out[j].Answered) {
			return out[i].Answered.After(out[j].Answered)
		}
		return out[i].CallID < out[j].CallID
	})
	if len(out) > MaxListedCalls {
		out = out[:MaxListedCalls]
	}
	return out, nil
}
