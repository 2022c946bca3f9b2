package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// Replicator is fleet mode's write path (package fleet): every change goes
// to the fleet's policy bucket before this node's store, under the service
// lock, so the node's own view and the revision it compares against move
// together. Policy records (accounts, operator settings, high-risk list,
// rate deck) are compare-and-set: a change built on a stale view is
// refused with a *RevisionConflictError, and while the fleet cannot be
// reached with an *UnavailableError, and nothing is changed. Locks, origin
// state and audit-only entries are never refused: a partitioned node must
// still lock an account; the Replicator sends them when it can.
type Replicator interface {
	Replicate(ch *store.Change) error
}

// UnavailableError refuses a policy change while the fleet's policy
// bucket cannot be reached: writing only this node's copy would fork the
// policy. The admin API answers 503.
type UnavailableError struct{ Msg string }

// Error says why writes are refused and what still works.
func (e *UnavailableError) Error() string { return e.Msg }

// RevisionConflictError refuses a policy change built on a record that
// another node changed meanwhile (compare-and-set on the revision). The
// admin API answers 409; reading the object again and retrying applies
// the change on top of the other one.
type RevisionConflictError struct {
	Key      string // the record, e.g. "acct.acme"
	Expected uint64 // the revision this node had applied
	Current  uint64 // the bucket's revision of the record (0 if unknown)
}

// Error names the record and both revisions.
func (e *RevisionConflictError) Error() string {
	return fmt.Sprintf("%s was changed on another node (revision %d, this node had applied %d); read it again and retry", e.Key, e.Current, e.Expected)
}

// isFleetError: the fleet refused the change (unreachable, conflict, or
// a change too large to write whole), not this node's store.
func isFleetError(err error) bool {
	var u *UnavailableError
	var c *RevisionConflictError
	var i *InvalidError
	return errors.As(err, &u) || errors.As(err, &c) || errors.As(err, &i)
}

// SetReplicator puts the service in fleet mode; call it before serving
// admin writes.
func (s *Service) SetReplicator(r Replicator) {
	s.mu.Lock()
	s.opt.Replicator = r
	s.mu.Unlock()
}

// commit sends ch to the fleet first (unless it came from the fleet),
// then to this node's store.
func (s *Service) commit(ch *store.Change) (uint64, error) {
	if r := s.opt.Replicator; r != nil && !s.remote {
		if err := r.Replicate(ch); err != nil {
			return 0, err
		}
	}
	return s.st.Commit(ch)
}

// RemoteUnlock is how a lock another node lifted was lifted: the engine
// starts the same grace on every node.
type RemoteUnlock struct {
	By     string
	Reason string
	Until  time.Time
}

// Barrier waits for the admin write in progress, if any: the fleet
// watcher calls it before it reports a revision this node wrote as
// applied.
func (s *Service) Barrier() {
	s.mu.Lock()
	s.mu.Unlock() //nolint:staticcheck // an empty critical section on purpose
}

// ApplyRemote applies a change another node made (from the fleet's
// bucket) through the path a local write takes: compile, store in this
// node's cache with the writer's audit entry, swap, and bring the velocity
// engine's locks and the origin checker's state in step. A change that
// would not change anything (this node already has it, e.g. replayed at
// reconnect) is skipped: applied is false. A change that does not
// validate is refused and the policy in force stays.
func (s *Service) ApplyRemote(ch *store.Change, unlocks map[string]RemoteUnlock) (applied bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return false, err
	}
	s.remote = true
	defer func() { s.remote = false }()
	who := Actor{Name: ch.Audit.Who, Remote: ch.Audit.Remote}
	if who.Name == "" {
		who.Name = "fleet"
	}
	if len(ch.Accounts) > 1 {
		// a batch (a node catching up): only the accounts that change
		// are compiled and written
		for name, a := range ch.Accounts {
			if !s.accountChanges(name, a) {
				delete(ch.Accounts, name)
			}
		}
	}
	if !s.remoteChanges(ch) {
		return false, nil
	}
	var top *policy.Set
	var hr *HighRiskInfo
	var rd *RateDeckInfo
	if ch.Operator != nil || ch.HighRisk != nil || ch.DropHighRisk || ch.RateDeck != nil || ch.DropRateDeck {
		top = s.topSet()
		if ch.Operator != nil {
			op := ch.Operator.Clone()
			if err := op.Validate(); err != nil {
				return false, &InvalidError{Err: err}
			}
			top.Operator = op
		}
		switch {
		case ch.HighRisk != nil && s.opt.HighRiskFile == "":
			top.HighRisk = ch.HighRisk.Entries
			hr = &HighRiskInfo{Origin: OriginStored, Version: ch.HighRisk.Version, Source: ch.HighRisk.Source, Entries: len(ch.HighRisk.Entries), Updated: ch.HighRisk.Updated}
		case ch.DropHighRisk && s.opt.HighRiskFile == "":
			l, err := matcher.DefaultHighRisk()
			if err != nil {
				return false, err
			}
			top.HighRisk = l
			hr = &HighRiskInfo{Origin: OriginBuiltin, Version: matcher.DefaultHighRiskVersion(), Source: "builtin", Entries: len(l)}
		}
		switch {
		case ch.RateDeck != nil && s.opt.RateDeckFile == "":
			d := ch.RateDeck.Deck
			top.Rates = &d
			rd = &RateDeckInfo{Origin: OriginStored, Version: ch.RateDeck.Version, Source: ch.RateDeck.Source, Currency: d.Currency, Entries: len(d.Entries), Updated: ch.RateDeck.Updated}
		case ch.DropRateDeck && s.opt.RateDeckFile == "":
			top.Rates = nil
			rd = &RateDeckInfo{Origin: OriginNone}
		}
	}
	for name, a := range ch.Accounts {
		if a == nil {
			continue
		}
		if err := a.Validate(); err != nil {
			return false, &InvalidError{Err: fmt.Errorf("account %q: %w", name, err)}
		}
	}
	for name, t := range ch.Templates {
		if t == nil {
			continue
		}
		if err := t.Validate(); err != nil {
			return false, &InvalidError{Err: fmt.Errorf("template %q: %w", name, err)}
		}
	}
	if top != nil || len(ch.Accounts) > 0 || len(ch.Templates) > 0 {
		audit := ch.Audit
		if err := s.apply(top, ch, who, hr); err != nil {
			return false, err
		}
		ch.Audit = audit
		if rd != nil {
			s.rd = *rd
		}
		return true, nil
	}
	// locks and origin state: stored with their audit entry, then in force
	if _, err := s.st.Commit(ch); err != nil {
		s.storeErrs.Add(1)
		return false, &StoreError{Err: err}
	}
	for key, raw := range ch.Locks {
		if s.vel == nil {
			break
		}
		if raw == nil {
			account, sub, _ := strings.Cut(key, "/")
			u := unlocks[key]
			if u.By == "" {
				u.By = who.Name
			}
			// quiet: the node that unlocked raised the alert
			s.vel.UnlockQuiet(account, sub, u.By, u.Reason, u.Until)
			s.log.Warn().Str("who", u.By).Str("scope", key).Str("from", "fleet").Msg("international calls unlocked")
			continue
		}
		var l velocity.Lock
		if err := policy.DecodeStrict(raw, &l); err != nil {
			return true, fmt.Errorf("lock %q: %w", key, err)
		}
		// quiet: the node that locked raised the alert
		s.vel.RestoreLocks([]velocity.Lock{l})
		s.log.Warn().Str("who", l.By).Str("scope", key).Str("from", "fleet").Msg("international calls locked")
	}
	if s.orig != nil && len(ch.Origin) > 0 {
		m := make(map[string]origin.Durable, len(ch.Origin))
		for key, raw := range ch.Origin {
			var d origin.Durable
			if raw != nil {
				if err := policy.DecodeStrict(raw, &d); err != nil {
					return true, fmt.Errorf("origin state %q: %w", key, err)
				}
			}
			m[key] = d
		}
		if err := s.orig.State().Restore(m); err != nil {
			return true, err
		}
	}
	return true, nil
}

// remoteChanges reports whether ch would change anything here. Called
// with s.mu held.
func (s *Service) remoteChanges(ch *store.Change) bool {
	for name, a := range ch.Accounts {
		if s.accountChanges(name, a) {
			return true
		}
	}
	if ch.Operator != nil && !jsonEqual(s.set.Operator, ch.Operator) {
		return true
	}
	for name, t := range ch.Templates {
		old, ok := s.set.Templates[name]
		if (t == nil) == ok || t != nil && !jsonEqual(old, t) {
			return true // a template (and every account on it) changes
		}
	}
	if ch.HighRisk != nil && s.opt.HighRiskFile == "" && (s.hr.Origin != OriginStored || s.hr.Version != ch.HighRisk.Version) {
		return true
	}
	if ch.DropHighRisk && s.opt.HighRiskFile == "" && s.hr.Origin == OriginStored {
		return true
	}
	if ch.RateDeck != nil && s.opt.RateDeckFile == "" && (s.rd.Origin != OriginStored || s.rd.Version != ch.RateDeck.Version) {
		return true
	}
	if ch.DropRateDeck && s.opt.RateDeckFile == "" && s.rd.Origin == OriginStored {
		return true
	}
	for key, raw := range ch.Locks {
		if s.vel == nil {
			break
		}
		account, sub, _ := strings.Cut(key, "/")
		l, locked := s.vel.LockOf(account, sub)
		if raw == nil {
			if locked {
				return true
			}
			continue
		}
		if !locked || !jsonEqual(l, raw) {
			return true
		}
	}
	for key, raw := range ch.Origin {
		if s.orig == nil {
			break
		}
		d := s.orig.State().Durable(key)
		if raw == nil {
			if !d.IsZero() {
				return true
			}
			continue
		}
		if !jsonEqual(d, raw) {
			return true
		}
	}
	return false
}

// accountChanges reports whether writing a (nil: deleting) would change
// the account in force. Called with s.mu held.
func (s *Service) accountChanges(name string, a *policy.Account) bool {
	old, ok := s.set.Accounts[name]
	if a == nil {
		return ok
	}
	_, q := s.set.Quarantined[name]
	// both typed: encoding/json writes the same bytes for equal accounts
	return q || !ok || !bytes.Equal(mustJSON(old), mustJSON(a))
}

// jsonEqual compares a value with another value or raw JSON by their
// canonical encoding.
func jsonEqual(a, b any) bool {
	canon := func(v any) string {
		if raw, ok := v.(json.RawMessage); ok {
			var x any
			if json.Unmarshal(raw, &x) != nil {
				return string(raw)
			}
			v = x
		} else {
			var x any
			if json.Unmarshal(mustJSON(v), &x) != nil {
				return ""
			}
			v = x
		}
		return string(mustJSON(v))
	}
	return canon(a) == canon(b)
}

// FleetSnapshot is this node's policy as records, for reconciling with
// the fleet's bucket (package fleet) and seeding an empty one.
type FleetSnapshot struct {
	Accounts  map[string]struct{}
	Templates map[string]struct{}
	Locks     map[string]struct{}
	Origin    map[string]struct{}
}

// Names lists the accounts, templates, locks and origin states this node holds, so
// the fleet can drop the ones its bucket does not have.
func (s *Service) Names() FleetSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := FleetSnapshot{Accounts: map[string]struct{}{}, Templates: map[string]struct{}{}, Locks: map[string]struct{}{}, Origin: map[string]struct{}{}}
	if s.set != nil {
		for n := range s.set.Accounts {
			out.Accounts[n] = struct{}{}
		}
		for n := range s.set.Templates {
			out.Templates[n] = struct{}{}
		}
	}
	if s.vel != nil {
		for _, l := range s.vel.Locks() {
			out.Locks[l.Key()] = struct{}{}
		}
	}
	if s.orig != nil {
		for k := range s.orig.State().Export() {
			out.Origin[k] = struct{}{}
		}
	}
	return out
}
