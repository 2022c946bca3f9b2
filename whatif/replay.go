// Package whatif replays calls — the recent-traffic ring, or a CDR file —
// against the policy in force and a proposed change to it, side by side,
// and reports which verdicts the change would turn, from what to what, by
// account, country and reason, with examples.
//
// Each side decides with a velocity engine of its own, fed in time order by
// a clock the replay moves: counters start empty, so velocity verdicts
// (international lockdowns reached by a rule's critical level) are those
// the replayed calls themselves would have caused. Origin checks, which
// keep state of their own, are not replayed (see matcher.DecideWith).
package whatif

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/velocity"
)

// Side is one policy a replay decides with: a compiled snapshot and, for
// velocity rules, the set it was compiled from (nil: no velocity).
type Side struct {
	Snap *matcher.Snapshot
	Set  *policy.Set
}

// Options tune a replay.
type Options struct {
	// Examples is how many changed calls the report shows (default 20).
	Examples int
	// Top bounds the by-account, by-country and by-reason lists (default
	// 50); the totals count every one.
	Top int
	// Unrecorded: the calls carry no verdict of their own (a CDR file),
	// so BaseDiffers is not counted.
	Unrecorded bool
}

// Replayer decides calls in time order against a base policy and, when
// given, a proposed one. It is single-goroutine.
type Replayer struct {
	m          *matcher.Matcher
	base, next side
	clock      time.Time
	lastEval   int64
	opt        Options
	rep        *Report
	byAccount  map[string]*int
	byCountry  map[string]int
	byReason   map[string]int
	trans      map[transKey]int
	start      time.Time
	ruleBuf    []byte
	last       Verdicts
	verdicts   [2][3]int // base, next by action
}

type side struct {
	snap *matcher.Snapshot
	vel  *velocity.Engine
}

type transKey struct {
	fromA matcher.Action
	fromR matcher.Reason
	toA   matcher.Action
	toR   matcher.Reason
}

// New prepares a replay. next may be nil (a replay against one policy:
// nothing can change). m supplies the numbering plan and its cache only.
func New(m *matcher.Matcher, base Side, next *Side, opt Options) (*Replayer, error) {
	if opt.Examples <= 0 {
		opt.Examples = 20
	}
	if opt.Top <= 0 {
		opt.Top = 50
	}
	r := &Replayer{m: m, opt: opt, rep: &Report{}, byAccount: map[string]*int{}, byCountry: map[string]int{},
		byReason: map[string]int{}, trans: map[transKey]int{}, start: time.Now()}
	var err error
	if r.base, err = r.side(base); err != nil {
		return nil, err
	}
	if next != nil {
		if r.next, err = r.side(*next); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Replayer) side(s Side) (side, error) {
	out := side{snap: s.Snap}
	if s.Set != nil {
		out.vel = velocity.New(velocity.Options{Now: func() time.Time { return r.clock }, Offline: true})
		// a new engine, synced once: no source to keep for a later sync
		if err := out.vel.SyncAgainst(s.Set, nil); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Verdicts are the two decisions of one call.
type Verdicts struct {
	Base, Next matcher.Verdict
	// Changed: the proposed policy answers with another action or reason.
	Changed bool
}

// Decide replays one call at its time. Calls must come in time order (a
// call earlier than the one before is decided at the later time). c's
// strings need to live only during the call.
func (r *Replayer) Decide(c *recent.Call, out *Verdicts) {
	if c.Time.After(r.clock) {
		r.clock = c.Time
	}
	// rules are evaluated (and lockdowns reached) once per replayed second,
	// as the daemon evaluates every 250 ms
	if sec := r.clock.Unix(); sec != r.lastEval {
		r.lastEval = sec
		for _, s := range []*side{&r.base, &r.next} {
			if s.vel != nil {
				s.vel.Evaluate()
			}
		}
	}
	q := matcher.Query{To: c.To, Account: c.Account, Subaccount: c.Subaccount, SrcIP: c.SrcIP}
	out.Base = r.m.DecideWith(r.base.snap, velOf(r.base.vel), true, &q)
	out.Changed = false
	if r.next.snap == nil {
		out.Next = out.Base
		return
	}
	out.Next = r.m.DecideWith(r.next.snap, velOf(r.next.vel), true, &q)
	out.Changed = out.Base.Action != out.Next.Action || out.Base.Reason != out.Next.Reason
}

// velOf keeps a nil engine a nil interface.
func velOf(e *velocity.Engine) matcher.Velocity {
	if e == nil {
		return nil
	}
	return e
}

// Add replays one call and counts it into the report. The verdicts it
// returns (nil for a skipped call) are valid until the next Add.
func (r *Replayer) Add(c *recent.Call) *Verdicts {
	rep := r.rep
	rep.Calls++
	if rep.From.IsZero() || c.Time.Before(rep.From) {
		rep.From = c.Time
	}
	if c.Time.After(rep.To) {
		rep.To = c.Time
	}
	if c.Truncated {
		rep.Skipped++
		return nil
	}
	v := &r.last
	r.Decide(c, v)
	rep.Replayed++
	if !r.opt.Unrecorded && (uint8(v.Base.Action) != c.Action || uint8(v.Base.Reason) != c.Reason) {
		rep.BaseDiffers++
	}
	if int(v.Base.Action) < 3 {
		r.verdicts[0][v.Base.Action]++
	}
	if r.next.snap != nil && int(v.Next.Action) < 3 {
		r.verdicts[1][v.Next.Action]++
	}
	if !v.Changed {
		return v
	}
	rep.Changed++
	r.trans[transKey{v.Base.Action, v.Base.Reason, v.Next.Action, v.Next.Reason}]++
	// c's bytes are reused, and assigning to a map key stores the key
	// again: the count is updated through a pointer instead
	if n := r.byAccount[c.Account]; n != nil {
		*n++
	} else {
		r.byAccount[strings.Clone(c.Account)] = &[]int{1}[0]
	}
	country := v.Next.Country
	if country == "" {
		country = v.Base.Country
	}
	r.byCountry[country]++
	// the reason of the side that refuses (both may)
	reason := v.Next.Reason
	if v.Next.Action == matcher.Allow {
		reason = v.Base.Reason
	}
	r.byReason[reason.String()]++
	if len(rep.Examples) < r.opt.Examples {
		rep.Examples = append(rep.Examples, Example{
			Time: c.Time.UTC(), Account: strings.Clone(c.Account), Subaccount: strings.Clone(c.Subaccount),
			To: strings.Clone(c.To), SrcIP: strings.Clone(c.SrcIP), Country: country,
			Before: r.outcome(&v.Base), After: r.outcome(&v.Next),
		})
	}
	return v
}

func (r *Replayer) outcome(v *matcher.Verdict) Outcome {
	r.ruleBuf = v.AppendRule(r.ruleBuf[:0])
	return Outcome{Verdict: v.Action.String(), Reason: v.Reason.String(), Rule: string(r.ruleBuf)}
}

// Report is what a replay found.
type Report struct {
	// From and To are the times of the oldest and newest call replayed.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Calls is every call offered; Replayed those decided; Skipped those
	// whose names or number did not fit the ring's fields.
	Calls    int `json:"calls"`
	Replayed int `json:"replayed"`
	Skipped  int `json:"skipped"`
	// Changed is how many verdicts the proposed policy changes.
	Changed int `json:"changed"`
	// BaseDiffers is how many calls the policy in force, replayed, decides
	// otherwise than was answered at the time: the policy changed since,
	// or the verdict came from state a replay does not have (origin
	// checks, velocity counters older than the replayed window, locks).
	BaseDiffers int `json:"base_differs_from_recorded,omitempty"`
	// Verdicts counts the replayed calls by the action of the policy in
	// force; ProposedVerdicts by the proposed policy's (absent without
	// one).
	Verdicts         map[string]int `json:"verdicts"`
	ProposedVerdicts map[string]int `json:"proposed_verdicts,omitempty"`
	Transitions      []Transition   `json:"transitions"`
	// Accounts and Countries count the distinct accounts and countries
	// with a changed call; ByAccount and ByCountry are the top ones.
	Accounts  int       `json:"accounts"`
	Countries int       `json:"countries"`
	ByAccount []Count   `json:"by_account"`
	ByCountry []Count   `json:"by_country"`
	ByReason  []Count   `json:"by_reason"`
	Examples  []Example `json:"examples"`
	// TookMS is how long the replay took.
	TookMS int64 `json:"took_ms"`
}

// Transition counts the calls whose verdict turned from one outcome to
// another ("allow/ok" to "reject/country_disabled").
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Calls int    `json:"calls"`
}

// Count is the changed calls of one account, country or reason.
type Count struct {
	Key   string `json:"key"`
	Calls int    `json:"calls"`
}

// Outcome is one side's verdict on an example call.
type Outcome struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Rule    string `json:"rule,omitempty"`
}

// Example is one changed call.
type Example struct {
	Time       time.Time `json:"time"`
	Account    string    `json:"account"`
	Subaccount string    `json:"subaccount,omitempty"`
	To         string    `json:"to"`
	SrcIP      string    `json:"src_ip,omitempty"`
	Country    string    `json:"country,omitempty"`
	Before     Outcome   `json:"before"`
	After      Outcome   `json:"after"`
}

// Report returns the report of every call added so far.
func (r *Replayer) Report() *Report {
	rep := *r.rep
	rep.Transitions = make([]Transition, 0, len(r.trans))
	for k, n := range r.trans {
		rep.Transitions = append(rep.Transitions, Transition{
			From: k.fromA.String() + "/" + k.fromR.String(), To: k.toA.String() + "/" + k.toR.String(), Calls: n})
	}
	slices.SortFunc(rep.Transitions, func(a, b Transition) int {
		if c := cmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return cmp.Compare(a.From+a.To, b.From+b.To)
	})
	rep.Verdicts = map[string]int{}
	for a, n := range r.verdicts[0] {
		rep.Verdicts[matcher.Action(a).String()] = n
	}
	if r.next.snap != nil {
		rep.ProposedVerdicts = map[string]int{}
		for a, n := range r.verdicts[1] {
			rep.ProposedVerdicts[matcher.Action(a).String()] = n
		}
	}
	rep.Accounts, rep.Countries = len(r.byAccount), len(r.byCountry)
	accounts := make(map[string]int, len(r.byAccount))
	for k, n := range r.byAccount {
		accounts[k] = *n
	}
	rep.ByAccount = top(accounts, r.opt.Top)
	rep.ByCountry = top(r.byCountry, r.opt.Top)
	rep.ByReason = top(r.byReason, r.opt.Top)
	if rep.Examples == nil {
		rep.Examples = []Example{}
	}
	rep.TookMS = time.Since(r.start).Milliseconds()
	return &rep
}

func top(m map[string]int, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if c := cmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Ring replays every call of the ring younger than its maximum age.
func (r *Replayer) Ring(ring *recent.Ring, now time.Time) *Report {
	ring.Each(now, func(c *recent.Call) bool {
		r.Add(c)
		return true
	})
	return r.Report()
}
