package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// Origin is the origin checker the service keeps the state of, nil without
// one.
func (s *Service) Origin() *origin.Checker { return s.orig }

func (s *Service) needOrigin() error {
	if s.orig == nil {
		return &ConflictError{Msg: "origin checks are not enabled in this process"}
	}
	return nil
}

// originAudit is an account's durable origin state as the audit log shows
// it: the unblock code's hash never leaves the store.
type originAudit struct {
	Home           string `json:"home,omitempty"`
	HomeAssigned   bool   `json:"home_assigned,omitempty"`
	PassUntil      string `json:"pass_until,omitempty"`
	Failed         int    `json:"failed_screenings"`
	Quarantined    bool   `json:"quarantined"`
	HasUnblockCode bool   `json:"has_unblock_code"`
	CodeLocked     string `json:"unblock_code_locked_until,omitempty"`
	CodeFailures   int    `json:"unblock_code_failures,omitempty"`
}

func auditOf(d origin.Durable) json.RawMessage {
	a := originAudit{Home: d.Home, HomeAssigned: d.HomeAuto, Failed: d.Failed, Quarantined: d.Quarantined, HasUnblockCode: d.UnblockCode != "",
		CodeFailures: d.CodeFailures}
	if !d.PassUntil.IsZero() {
		a.PassUntil = d.PassUntil.UTC().Format("2006-01-02T15:04:05Z")
	}
	if !d.CodeLockedUntil.IsZero() {
		a.CodeLocked = d.CodeLockedUntil.UTC().Format("2006-01-02T15:04:05Z")
	}
	return mustJSON(a)
}

func durableJSON(d origin.Durable) json.RawMessage {
	if d.IsZero() {
		return nil
	}
	return mustJSON(d)
}

// loadOrigin restores the stored origin state into the checker's State.
func (s *Service) loadOrigin() error {
	raw, err := s.st.Origin()
	if err != nil {
		return err
	}
	m := make(map[string]origin.Durable, len(raw))
	for k, b := range raw {
		var d origin.Durable
		if err := policy.DecodeStrict(b, &d); err != nil {
			return fmt.Errorf("stored origin state of %q: %w", k, err)
		}
		m[k] = d
	}
	return s.orig.State().Restore(m)
}

// originScope finds the origin state of an account or subaccount: its
// compiled rules and state key ("account/sub" for a subaccount with origin
// settings of its own, whose state is its own; the account's otherwise)
// and the audit object. The scope must exist. Caller holds s.mu.
func (s *Service) originScope(account, sub string) (r *origin.Rules, key, object string, err error) {
	if err := s.loaded(); err != nil {
		return nil, "", "", err
	}
	if err := s.scopeExists(account, sub); err != nil {
		return nil, "", "", err
	}
	r, key = s.m.Snapshot().OriginScope(account, sub)
	object = "accounts/" + account + "/origin"
	if key != account {
		object = "accounts/" + account + "/subaccounts/" + sub + "/origin"
	}
	return r, key, object, nil
}

// originChange applies one change to the origin state of an account (or a
// subaccount, sub not ""), makes it durable and audits it (action on
// accounts/A/origin or accounts/A/subaccounts/S/origin, with the state
// before and after). The scope must exist. f gets the state key.
func (s *Service) originChange(who Actor, action, account, sub string, detail any, f func(st *origin.State, key string, r *origin.Rules) (origin.Status, error)) (origin.Status, error) {
	if err := s.needOrigin(); err != nil {
		return origin.Status{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, key, object, err := s.originScope(account, sub)
	if err != nil {
		return origin.Status{}, err
	}
	st := s.orig.State()
	before := st.Durable(key)
	status, err := f(st, key, r)
	status = status.InForce(r)
	after := st.Durable(key)
	if after == before {
		return status, err
	}
	body := map[string]any{"state": auditOf(after)}
	if detail != nil {
		body["request"] = detail
	}
	audit := store.AuditEntry{Action: action, Object: object, Before: auditOf(before), After: mustJSON(body),
		Who: who.Name, Remote: who.Remote, Time: s.opt.Now()}
	if _, cerr := s.commit(&store.Change{Audit: audit, Origin: map[string]json.RawMessage{key: durableJSON(after)}}); cerr != nil {
		s.storeErrs.Add(1)
		s.log.Error().Err(cerr).Str("account", account).Str("action", action).Msg("origin state not stored: it holds until this process ends")
		if err == nil {
			err = &StoreError{Err: cerr}
		}
	}
	s.log.Info().Str("who", who.Name).Str("remote", who.Remote).Str("action", action).Str("account", account).Msg("origin state changed")
	return status, err
}

// persistOrigin makes a change the checker made by itself (a home country
// assigned at a first call) durable and audits it as 'tollgate'. It runs
// in its own goroutine, off the decision path.
func (s *Service) persistOrigin(account string, d origin.Durable) {
	s.originPending.Add(1)
	go func() {
		defer s.originPending.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		d := s.orig.State().Durable(account) // the latest, whatever the order of goroutines
		before := d                          // the same without the assigned home
		before.Home, before.HomeAuto = "", false
		object := "accounts/" + account + "/origin"
		if a, sub, ok := strings.Cut(account, "/"); ok { // a subaccount's own state
			object = "accounts/" + a + "/subaccounts/" + sub + "/origin"
		}
		audit := store.AuditEntry{Action: "home_assigned", Object: object, Before: auditOf(before),
			After: auditOf(d), Who: "tollgate", Time: s.opt.Now()}
		if _, err := s.commit(&store.Change{Audit: audit, Origin: map[string]json.RawMessage{account: durableJSON(d)}}); err != nil {
			s.storeErrs.Add(1)
			s.log.Error().Err(err).Str("account", account).Msg("assigned home country not stored: it holds until this process ends")
		}
	}()
}

// Flush waits until the origin state changes the checker made by itself
// (home countries assigned at a first call) are stored and audited. Call it
// once decisions have stopped, before closing the store.
func (s *Service) Flush() { s.originPending.Wait() }

// OriginStatus reports the origin state of an account (or a subaccount,
// sub not ""), with the home in force and where it comes from.
func (s *Service) OriginStatus(account, sub string) (origin.Status, error) {
	if err := s.needOrigin(); err != nil {
		return origin.Status{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, key, _, err := s.originScope(account, sub)
	if err != nil {
		return origin.Status{}, err
	}
	return s.orig.State().Status(key).InForce(r), nil
}

// Screening results the IVR reports.
const (
	ScreeningPassed = "passed"
	ScreeningFailed = "failed"
)

// ReportScreening records the screening IVR's outcome for an account (or
// a subaccount, sub not ""): passed opens the screening pass window and
// makes the screened call's origin the last call's, failed counts a
// failure (too many quarantine the scope).
func (s *Service) ReportScreening(who Actor, account, sub, result string) (origin.Status, error) {
	if result != ScreeningPassed && result != ScreeningFailed {
		return origin.Status{}, &InvalidError{Err: &policy.FieldError{Field: "result", Msg: fmt.Sprintf("%q is not passed or failed", result)}}
	}
	return s.originChange(who, "screening_"+result, account, sub, map[string]string{"result": result},
		func(st *origin.State, key string, r *origin.Rules) (origin.Status, error) {
			if result == ScreeningPassed {
				return st.ScreeningPassed(key, r)
			}
			return st.ScreeningFailed(key, r)
		})
}

// ReleaseQuarantine lifts a scope's quarantine and clears its failures.
func (s *Service) ReleaseQuarantine(who Actor, account, sub string) (origin.Status, error) {
	return s.originChange(who, "quarantine_release", account, sub, nil, func(st *origin.State, key string, _ *origin.Rules) (origin.Status, error) {
		return st.Release(key)
	})
}

// SetHomeOrigin sets a scope's home country. While the policy sets
// home_origin, that home is the one in force: the change is refused
// (ConflictError naming it) rather than stored to no effect.
func (s *Service) SetHomeOrigin(who Actor, account, sub, country string) (origin.Status, error) {
	return s.originChange(who, "home_set", account, sub, map[string]string{"country": country}, func(st *origin.State, key string, r *origin.Rules) (origin.Status, error) {
		if ph := r.PolicyHome(); ph != "" {
			field := "accounts/" + account
			if sub != "" {
				field += "/subaccounts/" + sub
			}
			return st.Status(key), &ConflictError{Msg: fmt.Sprintf("country: the policy's origin.home_origin %s is in force and wins over a home set here; "+
				"change home_origin in the policy (%s) instead", ph, field)}
		}
		status, err := st.SetHome(key, country)
		return status, originInvalid(err)
	})
}

// ClearHomeOrigin forgets a scope's set or assigned home country.
func (s *Service) ClearHomeOrigin(who Actor, account, sub string) (origin.Status, error) {
	return s.originChange(who, "home_clear", account, sub, nil, func(st *origin.State, key string, _ *origin.Rules) (origin.Status, error) {
		return st.ClearHome(key)
	})
}

// SetUnblockCode stores a scope's service unblock code, hashed.
func (s *Service) SetUnblockCode(who Actor, account, sub, code string) (origin.Status, error) {
	return s.originChange(who, "unblock_code_set", account, sub, nil, func(st *origin.State, key string, _ *origin.Rules) (origin.Status, error) {
		status, err := st.SetUnblockCode(key, code)
		return status, originInvalid(err)
	})
}

// ClearUnblockCode removes a scope's service unblock code.
func (s *Service) ClearUnblockCode(who Actor, account, sub string) (origin.Status, error) {
	return s.originChange(who, "unblock_code_clear", account, sub, nil, func(st *origin.State, key string, _ *origin.Rules) (origin.Status, error) {
		return st.ClearUnblockCode(key)
	})
}

// VerifyUnblockCode checks a code keyed in on the IVR (origin.ErrWrongCode,
// origin.ErrCodeLocked and origin.ErrNoCode say why not). A right code
// counts as a passed screening and lifts quarantine. Every attempt is
// audited, the code never.
func (s *Service) VerifyUnblockCode(who Actor, account, sub, code string) (origin.Status, error) {
	if err := s.needOrigin(); err != nil {
		return origin.Status{}, err
	}
	s.mu.Lock()
	r, key, object, err := s.originScope(account, sub)
	s.mu.Unlock()
	if err != nil {
		return origin.Status{}, err
	}
	// The hash is slow on purpose: computed outside the service lock.
	status, verr := s.orig.State().VerifyUnblockCode(key, r, code)
	status = status.InForce(r)
	result := "verified"
	switch {
	case errors.Is(verr, origin.ErrWrongCode):
		result = "wrong_code"
	case errors.Is(verr, origin.ErrCodeLocked):
		result = "locked_out"
	case errors.Is(verr, origin.ErrNoCode):
		result = "no_code"
	case verr != nil:
		return status, verr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.orig.State().Durable(key)
	audit := store.AuditEntry{Action: "unblock_code_verify", Object: object, Before: json.RawMessage("null"),
		After: mustJSON(map[string]any{"result": result, "state": auditOf(d)}), Who: who.Name, Remote: who.Remote, Time: s.opt.Now()}
	// Stored whatever the result: a right code lifts quarantine, a wrong
	// one may start a lock-out that a restart must not lift.
	ch := &store.Change{Audit: audit, Origin: map[string]json.RawMessage{key: durableJSON(d)}}
	if _, err := s.commit(ch); err != nil {
		s.storeErrs.Add(1)
		s.log.Error().Err(err).Str("account", account).Msg("unblock code verification not stored")
	}
	return status, verr
}

// originInvalid turns origin's field errors into the service's.
func originInvalid(err error) error {
	var fe *origin.FieldError
	if errors.As(err, &fe) {
		return &InvalidError{Err: &policy.FieldError{Field: fe.Field, Msg: fe.Msg}}
	}
	if err != nil && !errors.Is(err, origin.ErrNoCode) {
		return &InvalidError{Err: err}
	}
	return err
}
