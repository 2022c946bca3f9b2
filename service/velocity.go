package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// Velocity is the engine the service keeps in step, nil without one.
func (s *Service) Velocity() *velocity.Engine { return s.vel }

func (s *Service) needVelocity() error {
	if s.vel == nil {
		return &ConflictError{Msg: "velocity counters are not enabled in this process"}
	}
	return nil
}

// lockObject is a lock's audit object: accounts/A/lock or
// accounts/A/subaccounts/S/lock.
func lockObject(account, sub string) string {
	if sub == "" {
		return "accounts/" + account + "/lock"
	}
	return "accounts/" + account + "/subaccounts/" + sub + "/lock"
}

// scopeExists checks, under s.mu, that account (and sub) are in the policy.
func (s *Service) scopeExists(account, sub string) error {
	a, ok := s.set.Accounts[account]
	if !ok {
		return &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	if sub != "" {
		if _, ok := a.Subaccounts[sub]; !ok {
			return &NotFoundError{What: fmt.Sprintf("subaccount %q of account %q", sub, account)}
		}
	}
	return nil
}

// Lock locks the international calls of an account (or a subaccount) until
// an operator unlocks it: durable and audited with who and why, then in
// force for the next decision. Locking a locked scope rewrites who and why.
func (s *Service) Lock(who Actor, account, sub, reason string) (velocity.Lock, error) {
	l := velocity.Lock{Account: account, Subaccount: sub, By: who.Name, Reason: reason}
	if err := s.needVelocity(); err != nil {
		return l, err
	}
	if len(reason) > policy.MaxReasonLen {
		return l, &InvalidError{Err: &policy.FieldError{Field: "reason", Msg: fmt.Sprintf("longer than %d bytes", policy.MaxReasonLen)}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return l, err
	}
	if err := s.scopeExists(account, sub); err != nil {
		// an account tollgate does not know, served by the default policy
		// by choice, is counted and can be locked by its name
		if _, known := s.set.Accounts[account]; known || sub != "" || s.set.Operator.UnknownAccounts == policy.UnknownReject || policy.ValidName(account) != nil {
			return l, err
		}
	}
	l.Time = s.opt.Now().UTC()
	body := mustJSON(l)
	audit := store.AuditEntry{Action: "lock", Object: lockObject(account, sub), After: body, Before: json.RawMessage("null"),
		Who: who.Name, Remote: who.Remote, Time: l.Time}
	if before, ok := s.vel.LockOf(account, sub); ok {
		audit.Before = mustJSON(before)
	}
	if _, err := s.commit(&store.Change{Audit: audit, Locks: map[string]json.RawMessage{l.Key(): body}}); err != nil {
		s.storeErrs.Add(1)
		return l, &StoreError{Err: err}
	}
	if err := s.vel.Lock(l); err != nil {
		return l, err
	}
	s.log.Warn().Str("who", who.Name).Str("remote", who.Remote).Str("scope", l.Key()).Str("reason", reason).Msg("international calls locked")
	return l, nil
}

// Unlock lifts a lockdown, durable and audited with who and why. It is
// UnlockUntil with no expiry.
func (s *Service) Unlock(who Actor, account, sub, reason string) (velocity.Lock, error) {
	l, _, err := s.UnlockUntil(who, account, sub, reason, "")
	return l, err
}

// UntilMidnight is the until of an unlock for the rest of the account's
// day: its next local midnight.
const UntilMidnight = "midnight"

// UnlockUntil lifts a lockdown, durable and audited with who, why and
// until. The unlock does not switch the protection off: a measure found
// critical locks again when it grows by the policy's relock_margin, and an
// until (an RFC 3339 time in the future, or "midnight": the scope's next
// local midnight) ends the unlock then, locking again if a level is still
// crossed. It returns the lock lifted and the until in force (zero for
// none).
func (s *Service) UnlockUntil(who Actor, account, sub, reason, until string) (velocity.Lock, time.Time, error) {
	var at time.Time
	if err := s.needVelocity(); err != nil {
		return velocity.Lock{}, at, err
	}
	if len(reason) > policy.MaxReasonLen {
		return velocity.Lock{}, at, &InvalidError{Err: &policy.FieldError{Field: "reason", Msg: fmt.Sprintf("longer than %d bytes", policy.MaxReasonLen)}}
	}
	s.mu.Lock()
	before, err := s.unlockLocked(who, account, sub, reason, until, &at)
	s.mu.Unlock()
	if err != nil {
		return before, at, err
	}
	// the unlock's grace (the levels that lock again, until) is fraud
	// state: written before the answer, so it is as durable as the unlock
	// (outside s.mu: a flush waits for call events, which may be locking)
	if s.opt.FlushState != nil {
		if err := s.opt.FlushState(); err != nil {
			s.log.Error().Err(err).Str("scope", before.Key()).Msg("unlock grace not stored yet; it is retried with the next flush")
		}
	}
	return before, at, nil
}

func (s *Service) unlockLocked(who Actor, account, sub, reason, until string, at *time.Time) (velocity.Lock, error) {
	if err := s.loaded(); err != nil {
		return velocity.Lock{}, err
	}
	before, ok := s.vel.LockOf(account, sub)
	if !ok {
		if err := s.scopeExists(account, sub); err != nil {
			return before, err
		}
		return before, &NotFoundError{What: fmt.Sprintf("lock of %q", velocity.Lock{Account: account, Subaccount: sub}.Key())}
	}
	now := s.opt.Now()
	switch {
	case until == "":
	case strings.EqualFold(until, UntilMidnight):
		t, err := s.vel.NextMidnight(account, sub, now)
		if err != nil {
			return before, &NotFoundError{What: err.Error()}
		}
		*at = t
	default:
		t, err := time.Parse(time.RFC3339Nano, until)
		if err != nil {
			return before, &InvalidError{Err: &policy.FieldError{Field: "until", Msg: fmt.Sprintf("%q is neither an RFC 3339 time nor \"midnight\"", until)}}
		}
		if !t.After(now) {
			return before, &InvalidError{Err: &policy.FieldError{Field: "until", Msg: fmt.Sprintf("%s is not in the future", until)}}
		}
		*at = t
	}
	after := struct {
		Unlocked bool      `json:"unlocked"`
		By       string    `json:"by"`
		Reason   string    `json:"reason"`
		Until    time.Time `json:"until,omitzero"`
	}{true, who.Name, reason, at.UTC()}
	audit := store.AuditEntry{Action: "unlock", Object: lockObject(account, sub), Before: mustJSON(before), After: mustJSON(after),
		Who: who.Name, Remote: who.Remote, Time: now}
	if _, err := s.commit(&store.Change{Audit: audit, Locks: map[string]json.RawMessage{before.Key(): nil}}); err != nil {
		s.storeErrs.Add(1)
		return before, &StoreError{Err: err}
	}
	s.vel.UnlockUntil(account, sub, who.Name, reason, *at)
	ev := s.log.Warn().Str("who", who.Name).Str("remote", who.Remote).Str("scope", before.Key()).Str("reason", reason)
	if !at.IsZero() {
		ev = ev.Time("until", *at)
	}
	ev.Msg("international calls unlocked")
	return before, nil
}

// persistAutoLock makes an automatic lockdown durable and audits it. The
// engine has already locked the scope in memory: a failure here is logged
// and the lock stays in force until the process ends.
func (s *Service) persistAutoLock(l velocity.Lock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := mustJSON(l)
	audit := store.AuditEntry{Action: "lock", Object: lockObject(l.Account, l.Subaccount), Before: json.RawMessage("null"),
		After: body, Who: velocity.AutomaticBy, Time: l.Time}
	if _, err := s.commit(&store.Change{Audit: audit, Locks: map[string]json.RawMessage{l.Key(): body}}); err != nil {
		s.storeErrs.Add(1)
		s.log.Error().Err(err).Str("scope", l.Key()).Msg("automatic lockdown not stored: it holds until this process ends")
	}
}

// autoBlockRange blocks a number range that the range velocity found many
// accounts calling, through the very path an admin's block takes: stored,
// audited (prefix.block by "tollgate") and lifted by the same
// DELETE /v1/operator/prefixes/{prefix}. Called from the evaluator.
func (s *Service) autoBlockRange(prefix, reason string) error {
	if len(reason) > policy.MaxReasonLen {
		reason = reason[:policy.MaxReasonLen]
	}
	if _, err := s.BlockPrefix(Actor{Name: velocity.AutomaticBy}, prefix, reason); err != nil {
		s.log.Error().Err(err).Str("prefix", prefix).Msg("automatic range block not applied")
		return err
	}
	s.log.Warn().Str("prefix", prefix).Str("reason", reason).Msg("number range blocked automatically")
	return nil
}

// Locks lists every lockdown in force.
func (s *Service) Locks() ([]velocity.Lock, error) {
	if err := s.needVelocity(); err != nil {
		return nil, err
	}
	return s.vel.Locks(), nil
}

// VelocityState returns an account's velocity counters.
func (s *Service) VelocityState(account string) (velocity.AccountState, error) {
	if err := s.needVelocity(); err != nil {
		return velocity.AccountState{}, err
	}
	st, err := s.vel.State(account)
	if err != nil {
		return st, &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	return st, nil
}

// Calls lists an account's calls: live, and ended ones still remembered.
func (s *Service) Calls(account string) ([]velocity.CallState, error) {
	if err := s.needVelocity(); err != nil {
		return nil, err
	}
	cs, err := s.vel.Calls(account)
	if err != nil {
		return nil, &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	return cs, nil
}

// ResetVelocity zeroes an account's (or a subaccount's) counters and
// re-arms its alerts, audited. Lockdowns are not touched.
func (s *Service) ResetVelocity(who Actor, account, sub string) error {
	if err := s.needVelocity(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return err
	}
	if err := s.scopeExists(account, sub); err != nil {
		return err
	}
	obj := "accounts/" + account + "/velocity"
	if sub != "" {
		obj = "accounts/" + account + "/subaccounts/" + sub + "/velocity"
	}
	audit := store.AuditEntry{Action: "velocity.reset", Object: obj, Who: who.Name, Remote: who.Remote, Time: s.opt.Now()}
	if st, err := s.vel.State(account); err == nil {
		audit.Before = mustJSON(st)
	}
	if _, err := s.commit(&store.Change{Audit: audit}); err != nil {
		s.storeErrs.Add(1)
		return &StoreError{Err: err}
	}
	if err := s.vel.Reset(account, sub); err != nil {
		return &NotFoundError{What: err.Error()}
	}
	s.log.Info().Str("who", who.Name).Str("remote", who.Remote).Str("object", obj).Msg("velocity counters reset")
	return nil
}

// RateDeck returns the deck in force (nil when none) and where it comes
// from. The deck is shared: callers must not modify it.
func (s *Service) RateDeck() (*policy.RateDeck, RateDeckInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, RateDeckInfo{}, err
	}
	return s.set.Rates, s.rd, nil
}

func (s *Service) rateDeckWritable() error {
	if s.opt.RateDeckFile != "" {
		return &ConflictError{Msg: fmt.Sprintf("the rate deck comes from -rate-deck-file %s: edit that file and reload (SIGHUP or POST /v1/reload) instead", s.opt.RateDeckFile)}
	}
	return nil
}

// PutRateDeck replaces the stored rate deck with an already parsed one;
// body is its raw text, hashed for its version.
func (s *Service) PutRateDeck(who Actor, d policy.RateDeck, body []byte) (RateDeckInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return RateDeckInfo{}, err
	}
	if err := s.rateDeckWritable(); err != nil {
		return s.rd, err
	}
	info := RateDeckInfo{Origin: OriginStored, Version: listVersion("", body), Source: "api:" + who.Name, Currency: d.Currency,
		Entries: len(d.Entries), Updated: s.opt.Now().UTC()}
	next := s.topSet()
	next.Rates = &d
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: "rate_deck.put", Object: "rate-deck", Before: mustJSON(s.rd), After: mustJSON(info)},
		RateDeck: &store.RateDeckRecord{Deck: d, Version: info.Version, Source: info.Source, Updated: info.Updated},
	}
	if err := s.apply(next, ch, who, nil); err != nil {
		return s.rd, err
	}
	s.rd = info
	return info, nil
}

// DeleteRateDeck drops the stored rate deck: no destination is priced and
// max_destination_rate refuses nothing until another is loaded.
func (s *Service) DeleteRateDeck(who Actor) (RateDeckInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return RateDeckInfo{}, err
	}
	if err := s.rateDeckWritable(); err != nil {
		return s.rd, err
	}
	if s.rd.Origin != OriginStored {
		return s.rd, &NotFoundError{What: "stored rate deck"}
	}
	info := RateDeckInfo{Origin: OriginNone}
	next := s.topSet()
	next.Rates = nil
	ch := &store.Change{
		Audit:        store.AuditEntry{Action: "rate_deck.delete", Object: "rate-deck", Before: mustJSON(s.rd), After: mustJSON(info)},
		DropRateDeck: true,
	}
	if err := s.apply(next, ch, who, nil); err != nil {
		return s.rd, err
	}
	s.rd = info
	return info, nil
}

// WriteRateDeck writes the deck in force as CSV (just the header when none).
func WriteRateDeck(d *policy.RateDeck) ([]byte, error) {
	var b bytes.Buffer
	if d == nil {
		d = &policy.RateDeck{}
	}
	if err := policy.WriteRateDeck(&b, *d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
