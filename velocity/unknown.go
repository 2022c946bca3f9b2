package velocity

import (
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/cow"
	"github.com/tollgate/tollgate/policy"
)

// Accounts tollgate does not know, served by choice (the operator's
// unknown_accounts "default"), are counted as if their names were accounts:
// each name gets a scope on its first decided call, with the operator
// default's velocity rules, so a mistyped or invented account is held to
// blocked attempts, calls per minute and lockdowns like any other. The
// scopes live in a fixed table (no lock on the decision path, bounded
// memory): a name the table has no room for shares one overflow scope, so
// flooding the table with names makes those names count together rather
// than not at all. A scope idle for unknownIdle (and not locked, with no
// live call) is dropped.
const (
	unknownSlots = 1 << 14 // scopes of unknown accounts at most
	unknownProbe = 16      // slots a name may take
	// OverflowAccount names the overflow scope (not a valid account name).
	OverflowAccount = "*"
)

// unknownIdle is how long an unknown account's scope outlives its last call:
// at least the longest window of the default's rules, so a window is never
// cut short.
func unknownIdle(cfg *scopeConfig) time.Duration {
	d := time.Hour
	for i := range cfg.rules {
		if w := time.Duration(cfg.rules[i].win.minutes) * time.Minute; w > d {
			d = w
		}
	}
	return d
}

type unknownTable struct {
	seed     maphash.Seed
	slots    [unknownSlots]atomic.Pointer[Scope]
	overflow atomic.Pointer[Scope]
	// tmpl is the config new scopes copy, nil while unknown accounts are
	// refused (then they are not counted: every call is refused anyway).
	tmpl atomic.Pointer[scopeConfig]
	// locked is a copy of the engine's lock keys, readable without its
	// mutex: a new scope of a locked name starts locked.
	locked atomic.Pointer[map[string]struct{}]
}

// find returns the scope of an unknown account, nil if it has none.
func (u *unknownTable) find(name string) *Scope {
	i := maphash.String(u.seed, name)
	for p := uint64(0); p < unknownProbe; p++ {
		if s := u.slots[(i+p)%unknownSlots].Load(); s != nil && s.account == name {
			return s
		}
	}
	return nil
}

// get returns the scope of an unknown account, making it on its first
// call (the one allocation of the name): lock-free.
func (e *Engine) unknownScope(name string) *Scope {
	u := &e.unknown
	tmpl := u.tmpl.Load()
	if tmpl == nil || name == "" {
		return nil
	}
	i := maphash.String(u.seed, name)
	for attempt := 0; attempt < 2; attempt++ {
		free := -1
		for p := uint64(0); p < unknownProbe; p++ {
			j := (i + p) % unknownSlots
			s := u.slots[j].Load()
			if s == nil {
				if free < 0 {
					free = int(j)
				}
				continue
			}
			if s.account == name {
				return s
			}
		}
		if free < 0 {
			break
		}
		s := e.newUnknown(name, tmpl)
		if u.slots[free].CompareAndSwap(nil, s) {
			e.unknownN.Add(1)
			return s
		}
	}
	if s := u.overflow.Load(); s != nil {
		return s
	}
	s := e.newUnknown(OverflowAccount, tmpl)
	if u.overflow.CompareAndSwap(nil, s) {
		return s
	}
	return u.overflow.Load()
}

func (e *Engine) newUnknown(name string, tmpl *scopeConfig) *Scope {
	s := &Scope{e: e, account: name, unknown: true}
	if m := e.unknown.locked.Load(); m != nil {
		if _, ok := (*m)[name]; ok {
			s.locked.Store(true)
		}
	}
	s.cfg.Store(tmpl.fresh())
	s.lastSeen.Store(e.opt.Now().Unix())
	return s
}

// publishLocks copies the lock keys for newUnknown; under e.mu.
func (e *Engine) publishLocks() {
	m := make(map[string]struct{}, len(e.locks))
	for k := range e.locks {
		m[k] = struct{}{}
	}
	e.unknown.locked.Store(&m)
}

// syncUnknown installs the template of unknown accounts' scopes (nil: they
// are not counted) and recompiles the live ones, keeping their counters;
// under e.mu.
func (e *Engine) syncUnknown(set *policy.Set, base policy.Effective, zones map[string]*time.Location) error {
	if set.Operator.UnknownAccounts == policy.UnknownReject {
		e.unknown.tmpl.Store(nil)
		return nil
	}
	tmpl, err := compileConfig(base, nil, zones)
	if err != nil {
		return err
	}
	e.unknown.tmpl.Store(tmpl)
	each := func(s *Scope) error {
		cfg, err := compileConfig(base, s.cfg.Load(), zones)
		if err != nil {
			return err
		}
		s.cfg.Store(cfg)
		s.markDirty()
		return nil
	}
	for i := range e.unknown.slots {
		if s := e.unknown.slots[i].Load(); s != nil {
			if err := each(s); err != nil {
				return err
			}
		}
	}
	if s := e.unknown.overflow.Load(); s != nil {
		return each(s)
	}
	return nil
}

// pruneUnknown drops the scopes of unknown accounts idle for longer than
// their window, and those of names that became accounts; from the
// evaluator.
func (e *Engine) pruneUnknown(now time.Time, known cow.Map[*entry]) {
	for i := range e.unknown.slots {
		s := e.unknown.slots[i].Load()
		if s == nil {
			continue
		}
		_, isKnown := known.Get(s.account)
		if !isKnown && (s.locked.Load() || now.Sub(time.Unix(s.lastSeen.Load(), 0)) < unknownIdle(s.cfg.Load())) {
			continue
		}
		s.mu.Lock()
		busy := len(s.live) > 0
		s.mu.Unlock()
		if busy && !isKnown {
			continue
		}
		if e.unknown.slots[i].CompareAndSwap(s, nil) {
			s.gone.Store(true)
			e.unknownN.Add(-1)
		}
	}
}

// fresh is a copy of c with no counters: each scope of an unknown account
// counts on its own.
func (c *scopeConfig) fresh() *scopeConfig {
	n := new(scopeConfig)
	*n = *c
	n.rules = nil
	if len(c.rules) > 0 {
		n.rules = make([]rule, len(c.rules))
		for i := range c.rules {
			r, o := &n.rules[i], &c.rules[i]
			r.name, r.prefix, r.from, r.to, r.days, r.win = o.name, o.prefix, o.from, o.to, o.days, o.win
			r.th, r.has, r.action, r.prefixTx, r.sigs = o.th, o.has, o.action, o.prefixTx, o.sigs
			r.rangeDigits, r.shortSec, r.minAnswered, r.caps = o.rangeDigits, o.shortSec, o.minAnswered, o.caps
		}
	}
	return n
}
