// Package velocity is the stateful side of tollgate's decisions: per-account
// (and per-subaccount) counters of call attempts, live channels and spend,
// the fraud_detection-style rules evaluated against them, and the
// international lockdown a critical level triggers.
//
// The decision path (matcher.Decide through the matcher.Velocity interface)
// only reads an atomic pointer to an immutable table, reads a lock flag and
// adds to atomic counters: no lock, no allocation, no waiting. Everything
// else — call events from the proxies, the periodic evaluation of the rules,
// alerts, locks and admin reads — runs beside it under ordinary mutexes.
//
// Counting: every decided attempt of a known account is recorded in its
// scope and, for a subaccount, in its account's scope too. A rule counts
// the attempts whose destination is under its prefix while it is active
// (hours and days in the account's time zone): allowed attempts in a
// one-second ring (calls per minute), in a window ring (calls per window)
// and in a sequential-run word; attempts refused as barred in a window
// ring (blocked attempts). Live calls come from call events (answered,
// ended), expire after a maximum duration, and give concurrent calls, call
// durations as they run, the daily spend (answered calls' cost plus the
// running cost of calls in progress, from the rate deck) and each account's
// daily peak of channels.
//
// Memory: a rule's counters are allocated by the first call it counts in a
// scope — one ring of 60 eight-byte buckets (480 B) per watched measure among
// calls per minute, calls per window and blocked attempts — so scopes that
// never call cost only their scope (a few hundred bytes). That first counted
// call is the only one that allocates; every later decision allocates nothing.
package velocity

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/cow"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// Options configure an Engine.
type Options struct {
	// Now is the clock; time.Now if nil. Tests inject one.
	Now func() time.Time
	// MaxCallDuration is how long a live call may run before it is taken
	// as ended (its end event lost); default 4 h. Ends are idempotent by
	// call id for as long again.
	MaxCallDuration time.Duration
	// UnconfirmedCap is the least a call whose end never came is booked
	// for (from its answer); it is otherwise booked from its answer to
	// when it was last heard of. 0 (the default) books only what was
	// heard; at most MaxCallDuration.
	UnconfirmedCap time.Duration
	// KeepState has the engine list the calls that changed for Collect
	// (the fraud state's writer); without it Collect sees only scopes.
	KeepState bool
	// Interval is how often Run evaluates the rules (default 250 ms).
	Interval time.Duration
	// Notifier gets every alert; it must not block.
	Notifier alert.Notifier
	// OnLock is called (from the evaluating goroutine) after an automatic
	// lockdown, so it can be made durable and audited.
	OnLock func(Lock)
	// OnLockedAnswer is called when a call of a locked scope is answered (it
	// was let through before the lock and answered after it), so that the
	// teardown can end it too. It must not block.
	OnLockedAnswer func(account, sub string)
	// Resolve turns what a call event says was dialled into E.164 ("" if
	// it does not resolve); a "+digits" number is used as it is without it.
	Resolve func(account, sub, to string) string
	// Price is the rate deck: millionths of Currency per minute.
	Price func(e164 string) (int64, bool)
	// Currency names the rate deck's currency for alerts.
	Currency func() string
	// Offline marks an engine a replay drives from one goroutine with a
	// clock of its own (package whatif): Evaluate never yields to query
	// goroutines, as there are none to wait, and evaluates only the
	// scopes with new attempts.
	Offline bool
	// OnRangeBlock blocks a number range operator-wide when the range
	// velocity's critical level asks for it (called from the evaluating
	// goroutine; the service makes it an audited operator prefix block).
	OnRangeBlock func(prefix, reason string) error
}

// Lock is an international lockdown of an account or subaccount.
type Lock struct {
	Account    string    `json:"account"`
	Subaccount string    `json:"subaccount,omitempty"`
	Time       time.Time `json:"time"`
	// By is "tollgate" for an automatic lockdown, else the admin token's
	// name.
	By        string `json:"by"`
	Reason    string `json:"reason"`
	Automatic bool   `json:"automatic"`
	// Rule and Kind name the rule and measure whose critical level locked
	// the scope (automatic lockdowns).
	Rule string `json:"rule,omitempty"`
	Kind string `json:"kind,omitempty"`
}

// Key is "account" or "account/subaccount" (names cannot contain '/').
func (l Lock) Key() string { return scopeKey(l.Account, l.Subaccount) }

func scopeKey(account, sub string) string {
	if sub == "" {
		return account
	}
	return account + "/" + sub
}

// AutomaticBy is the Lock.By of automatic lockdowns.
const AutomaticBy = "tollgate"

// Engine holds every scope's state. Create it with New, feed it the policy
// with Sync, call events with Apply, and run Run (or Evaluate) for the rules.
type Engine struct {
	opt Options

	table atomic.Pointer[table]
	mu    sync.Mutex // Sync and locks
	locks map[string]Lock

	dirty atomic.Pointer[Scope] // scopes with news since the last evaluation (a Treiber stack)
	calls callTable

	unknown  unknownTable // scopes of accounts tollgate does not know (unknown.go)
	unknownN atomic.Int64

	evalMu    sync.Mutex
	watch     map[*Scope]struct{}
	lastSweep time.Time
	// persist holds the scopes changed since the fraud state was last
	// collected (under evalMu).
	persist map[*Scope]struct{}
	// stateMu lets Collect see each call event whole: events hold it
	// shared, Collect exclusively.
	stateMu sync.RWMutex

	live      atomic.Int64
	events    [numEventKinds][numResults]atomic.Uint64
	expired   atomic.Uint64
	relocks   atomic.Uint64
	lockdowns [2]atomic.Uint64 // automatic, operator
	unlocks   atomic.Uint64
	cpsOver   atomic.Uint64
	// cpsMax is, for the current and the previous second (by second % 2),
	// the highest ratio of a scope's attempts to its max_cps, in
	// thousandths, tagged with the second: second<<32 | ratio. The query
	// path keeps it, so the evaluator need not visit scopes for CPS.
	cpsMax    [2]atomic.Uint64
	cpsRatio  atomic.Uint64 // float64 bits
	peakRatio atomic.Uint64
	evalNanos atomic.Int64

	// journal carries attempts to the distinct sets and the range table
	// (nil until a policy needs it); rangeCfg is the operator's range
	// velocity (nil: off); ranges is its table (the evaluator's).
	journal  atomic.Pointer[journals]
	rangeCfg atomic.Pointer[rangeConfig]
	ranges   rangeTable
	// evalHist counts evaluations by duration (EvalBuckets, the last one
	// +Inf), with their total, for the duration histogram of /metrics: the
	// last evaluation alone hides the slow ones between two scrapes.
	evalHist  [len(EvalBuckets) + 1]atomic.Uint64
	evalTotal atomic.Int64

	// export holds, for fleet mode (fleet.go), the scopes with news since
	// their last export (under evalMu; nil until EnableExport); exporting
	// says it is on.
	export    map[*Scope]struct{}
	exporting atomic.Bool
	// exportedSet holds the scopes whose last export was non-zero (under
	// evalMu).
	exportedSet map[*Scope]struct{}
}

// EvalBuckets are the upper bounds, in seconds, of the evaluation duration
// histogram: from a small table (0.1 ms) to a pass long enough to delay a
// lockdown noticeably (0.25 s, the default -velocity-interval).
var EvalBuckets = [...]float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}

// table is an immutable index of the scopes by name.
type table struct {
	accounts cow.Map[*entry] // persistent: a sync shares untouched shards
	deflt    policy.Policy
	scopes   int // accounts and subaccounts
}

type entry struct {
	// slot holds the account's scope, made on first use for an account
	// that has no velocity rules, no subaccounts and no lock (most of
	// them: a scope is ~290 bytes, 100,000 of them 30 MB). Entries of the
	// same account share one slot across syncs, so a scope made while a
	// sync runs is not lost to it.
	slot *slot
	// scope caches slot's scope for this entry (nil until seen): the
	// lookup of a made scope reads one pointer, as before lazy scopes.
	scope atomic.Pointer[Scope]
	subs  map[string]*Scope
	// src is what the entry was synced from; nil when the sync was given
	// the sources (SyncAgainst, SyncAccountsAgainst): 56 bytes for each of
	// 100,000 accounts that the caller holds already.
	src *velSrc
	// tmpl is the template layer the account was synced over (nil: none),
	// shared by every account on it: a template change re-syncs them.
	tmpl *policy.Policy
}

// velSrc is what an account's scopes were synced from: the fields a scope
// config reads (see compileConfig), so a sync can reuse the entry while
// they are the very same objects. Not the whole policy.Account: 168 bytes
// more for each of 100,000 accounts.
type velSrc struct {
	home, zone *string
	maxCPS     *int
	vel        *policy.Velocity
	tmpl       string
	subs       map[string]policy.Policy
}

func srcOf(a policy.Account) velSrc {
	return velSrc{home: a.HomeCountry, zone: a.TimeZone, maxCPS: a.MaxCPS, vel: a.Velocity, tmpl: a.Template, subs: a.Subaccounts}
}

// sameVel reports whether a layer sets the very same objects for every
// field a scope config reads.
func sameVel(a, b policy.Policy) bool {
	return a.HomeCountry == b.HomeCountry && a.TimeZone == b.TimeZone && a.MaxCPS == b.MaxCPS && a.Velocity == b.Velocity
}

// slot is where an account's scope lives once made.
type slot struct {
	s atomic.Pointer[Scope]
	// cfg is the config a scope made on first use starts with.
	cfg atomic.Pointer[scopeConfig]
}

// scope returns the account's scope, making it on first use (lock-free:
// two racing first uses agree on the one that is stored).
func (e *Engine) scope(en *entry, account string) *Scope {
	if s := en.scope.Load(); s != nil {
		return s
	}
	if s := en.slot.s.Load(); s != nil {
		en.scope.Store(s)
		return s
	}
	s := &Scope{e: e, account: account, shard: uint8(maphash.String(journalSeed, account) % journalShards)}
	if m := e.unknown.locked.Load(); m != nil {
		if _, ok := (*m)[account]; ok {
			s.locked.Store(true)
		}
	}
	s.cfg.Store(en.slot.cfg.Load())
	if !en.slot.s.CompareAndSwap(nil, s) {
		s = en.slot.s.Load()
		en.scope.Store(s)
		return s
	}
	en.scope.Store(s)
	// a sync that stored a new config before this scope was visible to
	// it: take that one
	if c := en.slot.cfg.Load(); c != s.cfg.Load() {
		s.cfg.Store(c)
	}
	return s
}

// made returns the account's scope if it was made, else nil.
func (en *entry) made() *Scope { return en.slot.s.Load() }

// New returns an engine with no accounts.
func New(opt Options) *Engine {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxCallDuration <= 0 {
		opt.MaxCallDuration = 4 * time.Hour
	}
	if opt.Interval <= 0 {
		opt.Interval = 250 * time.Millisecond
	}
	e := &Engine{opt: opt, locks: map[string]Lock{}, watch: map[*Scope]struct{}{}, persist: map[*Scope]struct{}{}}
	e.unknown.seed = maphash.MakeSeed()
	e.calls.init()
	e.table.Store(&table{})
	return e
}

// SetOnLock sets Options.OnLock; call it before Run.
func (e *Engine) SetOnLock(f func(Lock)) { e.opt.OnLock = f }

// SetOnLockedAnswer sets Options.OnLockedAnswer; call it before events
// are applied.
func (e *Engine) SetOnLockedAnswer(f func(account, sub string)) { e.opt.OnLockedAnswer = f }

// Scope is a scope's live state; the matcher reaches it through
// matcher.Velocity.
type Scope struct {
	e            *Engine
	account, sub string
	parent       *Scope

	locked atomic.Bool
	shard  uint8 // the journal queue of the account's attempts
	cfg    atomic.Pointer[scopeConfig]
	cps    [4]atomic.Uint64 // attempts by second, for the CPS cap metrics
	gone   atomic.Bool

	dirtyFlag atomic.Bool
	next      atomic.Pointer[Scope]
	stored    bool // the fraud state holds a record of it (under the engine's evalMu)

	unknown  bool         // the scope of an account tollgate does not know
	lastSeen atomic.Int64 // unix seconds of its last call (unknown scopes)

	mu          sync.Mutex         // everything below: events, evaluation, admin
	live        map[*call]struct{} // nil until the scope's first live call
	spendDay    int64
	spent       int64 // millionths booked today
	spendFired  uint8
	peakDay     int64
	peakToday   int
	history     *[7]dayPeak // nil until a day with calls has passed
	fired       map[alertKey]uint8
	firedCfg    *scopeConfig
	lastAttempt int64
	// grace is what an operator's unlock leaves: the levels at which the
	// measures it found critical lock again, and when it lapses (nil when
	// there is none).
	grace *grace
	// unconfirmed counts today's calls whose end never came.
	unconfirmedDay int64
	unconfirmed    int

	// remote is the other nodes' sum in fleet mode (nil: none); exported
	// is what this node last published of the scope (under the engine's
	// evalMu).
	remote   atomic.Pointer[Remote]
	exported *Counts
}

type dayPeak struct {
	day  int64
	peak int
}

type alertKey struct{ rule, measure uint8 }

func (e *Engine) newScope(account, sub string, parent *Scope) *Scope {
	s := &Scope{e: e, account: account, sub: sub, parent: parent, shard: uint8(maphash.String(journalSeed, account) % journalShards)}
	if _, ok := e.locks[scopeKey(account, sub)]; ok {
		s.locked.Store(true)
	}
	return s
}

// Scope implements matcher.Velocity: the scope of an account, or of its
// subaccount when sub names one, or nil for an account the engine does not
// know. Lock-free and allocation-free.
func (e *Engine) Scope(account, sub string) matcher.VelocityScope {
	if s := e.lookup(account, sub); s != nil {
		return s
	}
	if _, known := e.table.Load().accounts.Get(account); !known {
		// an unknown account served by choice: its own scope (unknown.go)
		if s := e.unknownScope(account); s != nil {
			return s
		}
	}
	return nil
}

// known reports whether the policy in force has the account.
func (e *Engine) known(account string) bool {
	_, ok := e.table.Load().accounts.Get(account)
	return ok
}

func (e *Engine) lookup(account, sub string) *Scope {
	en, _ := e.table.Load().accounts.Get(account)
	if en == nil {
		if sub == "" {
			return e.unknown.find(account)
		}
		return nil
	}
	if sub != "" {
		if s := en.subs[sub]; s != nil {
			return s
		}
	}
	return e.scope(en, account)
}

// IntlLocked implements matcher.VelocityScope.
func (s *Scope) IntlLocked() matcher.Layer {
	if s.parent != nil {
		switch {
		case s.parent.locked.Load():
			return matcher.LayerAccount
		case s.locked.Load():
			return matcher.LayerSubaccount
		}
		return matcher.LayerNone
	}
	if s.locked.Load() {
		return matcher.LayerAccount
	}
	return matcher.LayerNone
}

var journalSeed = maphash.MakeSeed()

// Record implements matcher.VelocityScope: it counts an attempt in this
// scope and, for a subaccount, in its account's. An allowed call that a
// distinct set or the range velocity needs is also put on the journal.
func (s *Scope) Record(dest matcher.Number, cc matcher.Country, o matcher.Outcome) {
	now := s.e.opt.Now()
	if s.unknown {
		s.lastSeen.Store(now.Unix())
	}
	own := s.record(now, dest, o)
	var up uint16
	if s.parent != nil {
		up = s.parent.record(now, dest, o)
	}
	rng := false
	if o == matcher.OutcomeAllowed && dest != 0 {
		if s.e.rangeCfg.Load() != nil {
			// international calls only: a range every customer calls at
			// home (a bank, a utility) is business, not fraud
			if cfg := s.cfg.Load(); cfg != nil && (cfg.homeCC == 0 || cc != cfg.homeCC) {
				rng = true
			}
		}
	}
	if own|up != 0 || rng {
		if js := s.e.journal.Load(); js != nil {
			js.shard(s).push(s, dest, cc, uint32(now.Unix()/60), own, up, rng)
		}
	}
}

// record counts an attempt in the scope's rules; it returns the rules whose
// distinct sets count it (bit i: rule i).
func (s *Scope) record(now time.Time, dest matcher.Number, o matcher.Outcome) (distinct uint16) {
	cfg := s.cfg.Load()
	if cfg == nil {
		return 0
	}
	sec := now.Unix()
	news := false
	if cfg.maxCPS > 0 {
		// counted here, once per scope and second, rather than by the
		// evaluator: a scope whose only watch is its CPS cap never needs
		// a visit
		n := bucketAdd(&s.cps[sec%int64(len(s.cps))], uint32(sec))
		if n == cfg.maxCPS+1 {
			s.e.cpsOver.Add(1)
		}
		s.e.noteCPS(uint32(sec), n, cfg.maxCPS)
		if n == 1 && s.e.exporting.Load() {
			news = true // a fleet's other nodes learn of this second
		}
	}
	if len(cfg.rules) > 0 && o != matcher.OutcomeOther {
		minute := uint32(sec / 60)
		var local time.Time
		haveLocal := false
		for i := range cfg.rules {
			r := &cfg.rules[i]
			if !r.matches(dest) {
				continue
			}
			if r.from != r.to || r.days != 0 {
				if !haveLocal {
					local, haveLocal = now.In(cfg.loc), true
				}
				if !r.active(local) {
					continue
				}
			}
			// only the measures the rule watches are counted: each is a
			// cache line of a scope among thousands
			switch o {
			case matcher.OutcomeAllowed:
				if !r.has[mCPM] && !r.has[mWindow] && !r.has[mSequential] && !r.has[mRangeSeq] &&
					!r.has[mDistinctDest] && !r.has[mDistinctCountry] {
					continue
				}
				c := r.counters()
				if c.cpm != nil {
					c.cpm.add(uint32(sec))
				}
				if c.win != nil {
					c.win.add(r.win.tag(minute))
				}
				if r.has[mSequential] {
					seqRecord(&c.seq, dest, minute, r.win.minutes)
				}
				if r.has[mRangeSeq] {
					seqRecord(&c.rangeSeq, dest.Truncate(r.rangeDigits), minute, r.win.minutes)
				}
				if r.has[mDistinctDest] || r.has[mDistinctCountry] {
					distinct |= 1 << i
				}
			case matcher.OutcomeBarred:
				if !r.has[mBlocked] {
					continue
				}
				r.counters().blocked.add(r.win.tag(minute))
			case matcher.OutcomeInvalid, matcher.OutcomeLocked:
				// probes: blocked attempts, and each its own measure
				m := mInvalid
				if o == matcher.OutcomeLocked {
					m = mLocked
				}
				if !r.has[mBlocked] && !r.has[m] {
					continue
				}
				c := r.counters()
				if c.blocked != nil {
					c.blocked.add(r.win.tag(minute))
				}
				if m == mInvalid && c.invalid != nil {
					c.invalid.add(r.win.tag(minute))
				} else if m == mLocked && c.locked != nil {
					c.locked.add(r.win.tag(minute))
				}
			default:
				continue
			}
			news = true
		}
	}
	if news {
		s.markDirty()
	}
	return distinct
}

// bucketAdd is ring.add for one bucket of any ring; it returns the
// bucket's new count.
func bucketAdd(b *atomic.Uint64, tag uint32) int {
	for {
		old := b.Load()
		nw := uint64(tag)<<32 | 1
		if uint32(old>>32) == tag {
			nw = old + 1
		}
		if b.CompareAndSwap(old, nw) {
			return int(uint32(nw))
		}
	}
}

// noteCPS raises the second's highest CPS-to-cap ratio to n/max if that is
// higher. After the first few calls of a second it is one load.
func (e *Engine) noteCPS(sec uint32, n, max int) {
	r := uint64(min(n*1000/max, math.MaxUint32))
	slot := &e.cpsMax[sec%2]
	for {
		old := slot.Load()
		if uint32(old>>32) == sec && uint64(uint32(old)) >= r {
			return
		}
		if slot.CompareAndSwap(old, uint64(sec)<<32|r) {
			return
		}
	}
}

// cpsRatioOf is the highest CPS-to-cap ratio of second sec, 0 when no scope
// with a cap had an attempt then.
func (e *Engine) cpsRatioOf(sec uint32) float64 {
	v := e.cpsMax[sec%2].Load()
	if uint32(v>>32) != sec {
		return 0
	}
	return float64(uint32(v)) / 1000
}

func bucketCount(b *atomic.Uint64, tag uint32) int {
	v := b.Load()
	if uint32(v>>32) != tag {
		return 0
	}
	return int(uint32(v))
}

// markDirty puts the scope on the evaluator's stack once.
func (s *Scope) markDirty() {
	if s.dirtyFlag.Load() || !s.dirtyFlag.CompareAndSwap(false, true) {
		return
	}
	for {
		head := s.e.dirty.Load()
		s.next.Store(head)
		if s.e.dirty.CompareAndSwap(head, s) {
			return
		}
	}
}

// Sync installs the policy set's accounts and settings: a scope for every
// account and subaccount (kept, with its counters, across syncs), the rules
// compiled, the lockdowns re-applied. A scope whose account disappears is
// dropped. Call it after every swap of a snapshot compiled from the same set;
// the set must have passed matcher.Compile. On error nothing changes.
func (e *Engine) Sync(set *policy.Set) error { return e.sync(set, nil, true, nil) }

// Was tells a sync what the engine was last synced from: the very
// policy.Account the last sync was given for the named account (false:
// none, or not known). See SyncAgainst.
type Was func(account string) (policy.Account, bool)

// SyncAgainst is Sync for a caller that keeps what the engine was synced
// from: an account of set keeps its entry, as with Sync, while it holds
// the same objects (for what a scope config reads) as was says the last
// sync was given. The entries it makes record no source of their own, so
// a later Sync or SyncAccounts makes them anew (keeping every scope and
// its counters, as always). A nil was keeps no entry.
func (e *Engine) SyncAgainst(set *policy.Set, was Was) error {
	return e.sync(set, nil, true, orNone(was))
}

// SyncAccountsAgainst is SyncAccounts with was as for SyncAgainst.
func (e *Engine) SyncAccountsAgainst(set *policy.Set, names []string, was Was) error {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	return e.sync(set, names, false, orNone(was))
}

func orNone(was Was) Was {
	if was == nil {
		return func(string) (policy.Account, bool) { return policy.Account{}, false }
	}
	return was
}

// SyncAccounts is Sync after a change of the named accounts only (an
// account no longer in set is dropped): it visits those, not every account,
// and the new table shares every untouched shard with the old one. When the
// operator default changed since the last sync it syncs everything.
func (e *Engine) SyncAccounts(set *policy.Set, names []string) error {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	return e.sync(set, names, false, nil)
}

// sync syncs every account of set (all) or the named ones. was, when not
// nil, says what the last sync was given (SyncAgainst), and the new
// entries record no source; else the entries' own sources say.
func (e *Engine) sync(set *policy.Set, names []string, all bool, was Was) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.table.Load()
	base := policy.Merge(policy.BuiltinDefault(), set.Operator.Default)
	reuse := samePolicy(old.deflt, set.Operator.Default)
	all = all || !reuse
	nt := &table{deflt: set.Operator.Default, scopes: old.scopes}
	var b *cow.Builder[*entry]
	if all {
		b = cow.NewBuilder[*entry](len(set.Accounts))
		nt.scopes = 0
	} else {
		b = old.accounts.Edit()
	}
	type pending struct {
		s   *Scope // a subaccount's scope, or nil
		sl  *slot  // an account's slot
		cfg *scopeConfig
		acc string // the account, for an account's slot
	}
	zones := map[string]*time.Location{}
	var todo []pending
	plain := map[plainKey]*scopeConfig{} // rule-less configs, shared
	compile := func(eff policy.Effective, prev *scopeConfig) (*scopeConfig, error) {
		if eff.Velocity != nil {
			return compileConfig(eff, prev, zones)
		}
		k := plainKey{eff.HomeCountry, eff.TimeZone, eff.MaxCPS}
		if c, ok := plain[k]; ok {
			return c, nil
		}
		c, err := compileConfig(eff, nil, zones)
		if err == nil {
			plain[k] = c
		}
		return c, err
	}
	var gone []*entry                    // entries of accounts no longer in set
	tmpls := map[string]*policy.Policy{} // this sync's template layers, one per template
	tmplOf := func(acc *policy.Account) *policy.Policy {
		if acc.Template == "" {
			return nil
		}
		if p, ok := tmpls[acc.Template]; ok {
			return p
		}
		var p *policy.Policy
		if t, ok := set.Templates[acc.Template]; ok {
			p = &t.Policy
		}
		tmpls[acc.Template] = p
		return p
	}
	one := func(name string, acc policy.Account) error {
		oe, _ := old.accounts.Get(name)
		if !all && oe != nil {
			nt.scopes -= 1 + len(oe.subs)
		}
		tp := tmplOf(&acc)
		same := false
		switch {
		case oe == nil || !reuse:
		case was != nil:
			if w, ok := was(name); ok {
				same = sameAccount(srcOf(w), acc)
			}
		case oe.src != nil:
			same = sameAccount(*oe.src, acc)
		}
		if same && sameTemplate(oe.tmpl, tp) {
			b.Set(name, oe)
			nt.scopes += 1 + len(oe.subs)
			return nil
		}
		eff := base
		if tp != nil {
			eff = policy.Merge(eff, *tp)
		}
		eff = policy.Merge(eff, acc.Policy)
		en := &entry{tmpl: tp}
		if was == nil {
			src := srcOf(acc)
			en.src = &src
		}
		if oe != nil {
			en.slot = oe.slot
		} else {
			en.slot = &slot{}
		}
		acct := en.made()
		if _, locked := e.locks[name]; acct == nil && (eff.Velocity != nil || len(acc.Subaccounts) > 0 || locked) {
			acct = e.newScope(name, "", nil)
			acct.cfg.Store(en.slot.cfg.Load())
			en.slot.s.Store(acct) // under e.mu; a first use not yet: not in the table
		}
		en.scope.Store(acct)
		prev := en.slot.cfg.Load()
		if acct != nil {
			prev = acct.cfg.Load()
		}
		cfg, err := compile(eff, prev)
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		todo = append(todo, pending{sl: en.slot, cfg: cfg, acc: name})
		if len(acc.Subaccounts) > 0 {
			en.subs = make(map[string]*Scope, len(acc.Subaccounts))
		}
		for subName, sp := range acc.Subaccounts {
			var ss *Scope
			if oe != nil {
				ss = oe.subs[subName]
			}
			if ss == nil {
				ss = e.newScope(name, subName, acct)
			}
			scfg, err := compile(policy.MergeSubaccount(eff, sp), ss.cfg.Load())
			if err != nil {
				return fmt.Errorf("account %s: subaccount %s: %w", name, subName, err)
			}
			todo = append(todo, pending{s: ss, cfg: scfg})
			en.subs[subName] = ss
		}
		b.Set(name, en)
		nt.scopes += 1 + len(en.subs)
		return nil
	}
	if all {
		for name, acc := range set.Accounts {
			if err := one(name, acc); err != nil {
				return err
			}
		}
		if err := e.syncUnknown(set, base, zones); err != nil {
			return fmt.Errorf("operator default: %w", err)
		}
	} else {
		for _, name := range names {
			acc, ok := set.Accounts[name]
			if ok {
				if err := one(name, acc); err != nil {
					return err
				}
				continue
			}
			if oe, ok := old.accounts.Get(name); ok {
				b.Delete(name)
				nt.scopes -= 1 + len(oe.subs)
				gone = append(gone, oe)
			}
		}
	}
	nt.accounts = b.Map()
	for _, p := range todo {
		if p.sl != nil {
			p.sl.cfg.Store(p.cfg) // before looking for a scope: see Engine.scope
			if p.s = p.sl.s.Load(); p.s == nil {
				continue // not made yet: nothing to re-evaluate
			}
		}
		p.s.cfg.Store(p.cfg)
		p.s.markDirty() // re-evaluate under the new thresholds
	}
	// Scopes that disappear: the old accounts missing from the new table
	// (looked for only when the table shrank or was rebuilt with others:
	// a one-account change with 100,000 accounts does not walk them all),
	// and the subaccounts the rebuilt accounts dropped.
	if all {
		matched := 0
		for name := range set.Accounts {
			if _, ok := old.accounts.Get(name); ok {
				matched++
			}
		}
		if matched < old.accounts.Len() {
			for name, oe := range old.accounts.All() {
				if _, ok := nt.accounts.Get(name); !ok {
					gone = append(gone, oe)
				}
			}
		}
	}
	for _, oe := range gone {
		if s := oe.made(); s != nil {
			s.gone.Store(true)
			s.markDirty() // its stored state goes
		}
		for _, s := range oe.subs {
			s.gone.Store(true)
			s.markDirty()
		}
	}
	for _, p := range todo {
		if p.sl == nil {
			continue
		}
		oe, _ := old.accounts.Get(p.acc)
		ne, _ := nt.accounts.Get(p.acc)
		if oe == nil || oe == ne {
			continue
		}
		for sub, s := range oe.subs {
			if ne.subs[sub] != s {
				s.gone.Store(true)
				s.markDirty()
			}
		}
	}
	needJournal := false
	if t := e.unknown.tmpl.Load(); t != nil {
		needJournal = t.distinct // unknown accounts' scopes count like the rest
	}
	for _, p := range todo {
		needJournal = needJournal || p.cfg.distinct
	}
	rc := e.rangeCfg.Load()
	switch rv := set.Operator.RangeVelocity; {
	case rv == nil:
		rc = nil
	case rc == nil || rc.src != *rv:
		rc = compileRange(rv)
	}
	if (needJournal || rc != nil) && e.journal.Load() == nil {
		e.journal.Store(newJournals())
	}
	e.rangeCfg.Store(rc)
	e.table.Store(nt)
	return nil
}

// plainKey identifies a scope config without rules: such configs hold no
// counters, so every scope with the same settings shares one.
type plainKey struct {
	home, zone string
	maxCPS     int
}

// samePolicy reports whether two layers are the very same objects, so an
// unchanged account keeps its compiled config (as matcher.CompileFrom does).
func samePolicy(a, b policy.Policy) bool {
	return a.HomeCountry == b.HomeCountry && a.Countries == b.Countries && a.HighRisk == b.HighRisk &&
		a.AllowPrefixes == b.AllowPrefixes && a.BlockPrefixes == b.BlockPrefixes &&
		a.MaxChannels == b.MaxChannels && a.MaxCPS == b.MaxCPS &&
		a.TimeZone == b.TimeZone && a.MaxDestinationRate == b.MaxDestinationRate && a.Velocity == b.Velocity
}

// sameTemplate reports whether two template layers are the very same
// objects (or both none).
func sameTemplate(a, b *policy.Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return samePolicy(*a, *b)
}

func sameAccount(a velSrc, b policy.Account) bool {
	if a.home != b.HomeCountry || a.zone != b.TimeZone || a.maxCPS != b.MaxCPS || a.vel != b.Velocity ||
		a.tmpl != b.Template || len(a.subs) != len(b.Subaccounts) {
		return false
	}
	for k, v := range a.subs {
		w, ok := b.Subaccounts[k]
		if !ok || !sameVel(v, w) {
			return false
		}
	}
	return true
}

// RestoreLocks installs lockdowns read from storage, without alerts.
func (e *Engine) RestoreLocks(ls []Lock) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range ls {
		e.locks[l.Key()] = l
		if s := e.lookup(l.Account, l.Subaccount); s != nil && s.account == l.Account && s.sub == l.Subaccount {
			s.locked.Store(true)
		}
	}
	e.publishLocks()
}

// Lock locks a scope's international calls on an operator's word (or
// replaces the record of an existing lock) and alerts. The scope must
// exist.
func (e *Engine) Lock(l Lock) error {
	e.mu.Lock()
	s := e.exact(l.Account, l.Subaccount)
	if s == nil && l.Subaccount == "" && !e.known(l.Account) {
		s = e.unknownScope(l.Account) // an unknown account served by choice
		if s != nil && s.account != l.Account {
			s = nil // the overflow scope is no name's own
		}
	}
	if s == nil {
		e.mu.Unlock()
		return fmt.Errorf("no such scope %s", l.Key())
	}
	if l.Time.IsZero() {
		l.Time = e.opt.Now()
	}
	_, was := e.locks[l.Key()]
	e.locks[l.Key()] = l
	e.publishLocks()
	s.locked.Store(true)
	e.mu.Unlock()
	if !was {
		e.lockdowns[1].Add(1)
	}
	e.notify(alert.Alert{Time: l.Time, Type: alert.TypeLockdown, Level: alert.LevelCritical, Kind: alert.KindLockdown,
		Account: l.Account, Subaccount: l.Subaccount, By: l.By, Reason: l.Reason, Action: policy.ActionLockdown,
		Message: fmt.Sprintf("international calls of %s locked by %s: %s", l.Key(), l.By, l.Reason)})
	return nil
}

// Unlock lifts a lockdown and alerts; ok is false when the scope was not
// locked. It is UnlockUntil with no expiry.
func (e *Engine) Unlock(account, sub, by, reason string) (Lock, bool) {
	return e.UnlockUntil(account, sub, by, reason, time.Time{})
}

// UnlockUntil lifts a lockdown and alerts; ok is false when the scope was
// not locked. The unlock does not switch the protection off: every measure
// (and the daily spend) at its critical level now raises a new critical —
// and locks again — when it grows by a further margin (the policy's
// relock_margin times its critical level); and when until is set, the
// unlock lapses then: a measure still at its critical level raises a new
// critical and locks again.
func (e *Engine) UnlockUntil(account, sub, by, reason string, until time.Time) (Lock, bool) {
	return e.unlockUntil(account, sub, by, reason, until, true)
}

// UnlockQuiet is UnlockUntil without the alert: an unlock another fleet
// node made (and alerted) applied here, so the fleet raises one alert.
func (e *Engine) UnlockQuiet(account, sub, by, reason string, until time.Time) (Lock, bool) {
	return e.unlockUntil(account, sub, by, reason, until, false)
}

func (e *Engine) unlockUntil(account, sub, by, reason string, until time.Time, alerts bool) (Lock, bool) {
	key := scopeKey(account, sub)
	e.mu.Lock()
	l, ok := e.locks[key]
	s := e.exact(account, sub)
	if ok {
		delete(e.locks, key)
		e.publishLocks()
		if s != nil {
			s.locked.Store(false)
		} else if s := e.unknown.overflow.Load(); s != nil && account == OverflowAccount {
			s.locked.Store(false)
		}
	}
	e.mu.Unlock()
	if !ok {
		return l, false
	}
	msg := fmt.Sprintf("international calls of %s unlocked by %s: %s", key, by, reason)
	if s != nil {
		s.startGrace(e.opt.Now(), until, by)
		if !until.IsZero() {
			msg += "; until " + until.UTC().Format(time.RFC3339)
		}
	}
	e.unlocks.Add(1)
	if alerts {
		e.notify(alert.Alert{Type: alert.TypeUnlock, Level: alert.LevelInfo, Kind: alert.KindUnlock,
			Account: account, Subaccount: sub, By: by, Reason: reason, Message: msg})
	}
	return l, true
}

// LockOf returns a scope's lockdown, if it is locked.
func (e *Engine) LockOf(account, sub string) (Lock, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.locks[scopeKey(account, sub)]
	return l, ok
}

// Locks lists every lockdown, sorted by scope.
func (e *Engine) Locks() []Lock {
	e.mu.Lock()
	out := make([]Lock, 0, len(e.locks))
	for _, l := range e.locks {
		out = append(out, l)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// exact finds the scope of exactly account/sub (not the account's for an
// unknown subaccount).
func (e *Engine) exact(account, sub string) *Scope {
	s := e.lookup(account, sub)
	if s == nil || s.sub != sub {
		return nil
	}
	return s
}

// autoLock locks a scope whose critical level asks for it, unless it is
// locked already.
func (e *Engine) autoLock(s *Scope, a alert.Alert) {
	e.mu.Lock()
	key := scopeKey(s.account, s.sub)
	if _, ok := e.locks[key]; ok || s.gone.Load() {
		e.mu.Unlock()
		return
	}
	l := Lock{Account: s.account, Subaccount: s.sub, Time: a.Time, By: AutomaticBy, Reason: a.Message, Automatic: true, Rule: a.Rule, Kind: a.Kind}
	e.locks[key] = l
	e.publishLocks()
	s.locked.Store(true)
	e.mu.Unlock()
	e.lockdowns[0].Add(1)
	e.notify(alert.Alert{Time: a.Time, Type: alert.TypeLockdown, Level: alert.LevelCritical, Kind: alert.KindLockdown,
		Account: s.account, Subaccount: s.sub, Rule: a.Rule, Prefix: a.Prefix, By: AutomaticBy, Reason: a.Message,
		Action: policy.ActionLockdown, Message: fmt.Sprintf("international calls of %s locked automatically: %s", key, a.Message)})
	if e.opt.OnLock != nil && s.account != OverflowAccount {
		// the overflow scope's lock holds until an unlock or a restart
		e.opt.OnLock(l)
	}
}

func (e *Engine) notify(a alert.Alert) {
	if e.opt.Notifier != nil {
		e.opt.Notifier.Notify(a)
	}
}

// Run evaluates the rules every Interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Evaluate()
		}
	}
}

// Stats are the engine's counters and gauges, for /metrics.
type Stats struct {
	Scopes int
	// UnknownScopes are the scopes of unknown accounts served by choice
	// (the overflow scope not included).
	UnknownScopes int
	LiveCalls     int64
	// Events by kind (answered, ended) and result (accepted, duplicate,
	// ignored).
	Events          [numEventKinds][numResults]uint64
	Expired         uint64
	LockdownsAuto   uint64
	LockdownsOp     uint64
	Unlocks         uint64
	Locked          int
	CPSOverCap      uint64
	CPSCapRatioMax  float64
	PeakRatioMax    float64
	EvaluationNanos int64
	// JournalDropped counts attempts the distinct sets and the range
	// velocity missed because the journal was full.
	JournalDropped uint64
	// RangesTracked is how many number ranges the range velocity holds;
	// RangesEvicted counts those it forgot for newer ones; RangeBlocks
	// counts its automatic blocks.
	RangesTracked int64
	RangesEvicted uint64
	RangeBlocks   uint64
	// EvaluationCounts are the evaluations by EvalBuckets bucket (not
	// cumulative; the last is above every bound), EvaluationTotalNanos their
	// summed duration.
	EvaluationCounts     [len(EvalBuckets) + 1]uint64
	EvaluationTotalNanos int64
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	st := Stats{LiveCalls: e.live.Load(), Expired: e.expired.Load(), LockdownsAuto: e.lockdowns[0].Load(),
		LockdownsOp: e.lockdowns[1].Load(), Unlocks: e.unlocks.Load(), CPSOverCap: e.cpsOver.Load(),
		CPSCapRatioMax: math.Float64frombits(e.cpsRatio.Load()), PeakRatioMax: math.Float64frombits(e.peakRatio.Load()),
		EvaluationNanos: e.evalNanos.Load(), EvaluationTotalNanos: e.evalTotal.Load(), RangesTracked: e.ranges.tracked.Load(), RangesEvicted: e.ranges.evicted.Load(),
		RangeBlocks: e.ranges.blocks.Load()}
	if js := e.journal.Load(); js != nil {
		st.JournalDropped = js.dropped()
	}
	for i := range e.evalHist {
		st.EvaluationCounts[i] = e.evalHist[i].Load()
	}
	for k := range e.events {
		for r := range e.events[k] {
			st.Events[k][r] = e.events[k][r].Load()
		}
	}
	st.Scopes = e.table.Load().scopes
	e.mu.Lock()
	st.Locked = len(e.locks)
	st.UnknownScopes = int(e.unknownN.Load())
	e.mu.Unlock()
	return st
}
