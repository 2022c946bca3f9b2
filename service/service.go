// Package service applies operator changes: it owns the policy set in force,
// and turns every admin write into validate → compile → persist → swap, in
// that order, so that a change the admin API acknowledged is both on disk
// and in force for the next query, and a change that fails at any step leaves
// both the disk and the snapshot as they were. Admin writes are serialised by
// one mutex; the query path never sees it (it reads the matcher's atomic
// snapshot pointer).
package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// Where the high-risk list in force comes from.
const (
	OriginFile    = "file"    // -high-risk-file, authoritative while set
	OriginStored  = "stored"  // an operator's PUT /v1/high-risk
	OriginBuiltin = "builtin" // the list shipped in the binary
)

// NotFoundError means the object a request names does not exist.
type NotFoundError struct{ What string }

// Error names what was not found.
func (e *NotFoundError) Error() string { return e.What + " not found" }

// ConflictError means the request cannot apply in the current configuration
// (the high-risk list comes from a file, so the API may not replace it).
type ConflictError struct{ Msg string }

// Error says why the request cannot apply.
func (e *ConflictError) Error() string { return e.Msg }

// StoreError means the change was valid but could not be written; nothing
// was swapped in, so the service still serves the previous state.
type StoreError struct{ Err error }

// Error marks the failure as storage, not validation.
func (e *StoreError) Error() string { return "storage: " + e.Err.Error() }

// Unwrap exposes the store's error.
func (e *StoreError) Unwrap() error { return e.Err }

// InvalidError means the change does not validate or compile. Field is the
// offending field when known (a *policy.FieldError is inside).
type InvalidError struct{ Err error }

// Error is the validation or compile error as is, field first.
func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap exposes the *policy.FieldError, when there is one.
func (e *InvalidError) Unwrap() error { return e.Err }

// Field names the offending field, or "" if the error is not about one.
func (e *InvalidError) Field() string {
	var fe *policy.FieldError
	if errors.As(e.Err, &fe) {
		return fe.Field
	}
	return ""
}

// Actor is who makes a change, for the audit log.
type Actor struct {
	Name   string // token name
	Remote string // client address
}

// HighRiskInfo describes the high-risk list in force.
type HighRiskInfo struct {
	Origin  string    `json:"origin"`
	Version string    `json:"version"`
	Source  string    `json:"source"`
	Entries int       `json:"entries"`
	Updated time.Time `json:"updated,omitzero"` // none for the shipped list
}

// ReloadStats are the counters /metrics exposes about reloads and storage.
type ReloadStats struct {
	Success, Failure uint64
	LastOK           bool
	LastSuccess      time.Time
	StoreErrors      uint64
}

// RateDeckInfo describes the rate deck in force.
type RateDeckInfo struct {
	Origin   string    `json:"origin"` // "file", "stored" or "none"
	Version  string    `json:"version,omitempty"`
	Source   string    `json:"source,omitempty"`
	Currency string    `json:"currency,omitempty"`
	Entries  int       `json:"entries"`
	Updated  time.Time `json:"updated,omitzero"` // none without a deck
}

// OriginNone means no rate deck is loaded.
const OriginNone = "none"

// Options configure a Service.
type Options struct {
	// HighRiskFile, when set, is the authoritative high-risk list: read at
	// Load and Reload, and PUT /v1/high-risk is refused.
	HighRiskFile string
	// RateDeckFile, when set, is the authoritative rate deck: read at Load
	// and Reload, and PUT /v1/rate-deck is refused.
	RateDeckFile string
	// Velocity, when set, is kept in step with every policy change, gets
	// the stored lockdowns at Load, and has its automatic lockdowns made
	// durable and audited by the service.
	Velocity *velocity.Engine
	// Origin, when set, is the origin checker whose per-account state
	// (screening, quarantine, home location, unblock codes) the service
	// restores at Load, changes through the admin API and keeps durable.
	Origin *origin.Checker
	// FlushState, when set, writes the fraud state now (the
	// fraudstate.Writer's Flush): an unlock's grace is written before the
	// unlock is answered.
	FlushState func() error
	// Logger gets one line per admin change and per reload.
	Logger zerolog.Logger
	// Now is the clock (tests); time.Now if nil.
	Now func() time.Time
	// Replicator, when set (fleet mode), gets every change before the
	// local store: the fleet's source of truth first, this node's cache
	// second (see SetReplicator and remote.go).
	Replicator Replicator
}

// Service is the single writer of policy. Create it with New, then Load.
type Service struct {
	m    *matcher.Matcher
	plan *numplan.Plan
	st   *store.Store
	opt  Options
	log  zerolog.Logger

	mu sync.Mutex
	// set is the source of the snapshot in force; HighRisk is the effective
	// list. Its top level is replaced, never edited; its Accounts map is
	// edited in place by apply, under mu, once a change is committed and
	// swapped in (the snapshot keeps its own compiled copy, so nothing
	// outside mu ever reads the map).
	set  *policy.Set
	hr   HighRiskInfo
	rd   RateDeckInfo
	vel  *velocity.Engine
	orig *origin.Checker

	// hrList is the high-risk list in force: set.HighRisk is nil once the
	// set is in force (see keepHighRisk).
	hrList *packedHighRisk

	// velInStep: the velocity engine's last sync succeeded, so it was
	// synced from set's accounts (see velWas).
	velInStep bool

	// originPending counts persistOrigin goroutines not yet done (Flush).
	originPending sync.WaitGroup
	// remote is set, under mu, while a change another node made is
	// applied: it is not replicated again.
	remote bool

	reloadOK, reloadFail, storeErrs atomic.Uint64
	lastOK                          atomic.Bool
	lastSuccess                     atomic.Int64 // unix nanoseconds
}

// New ties a matcher to a store. st may be opened read-only (tollgate check):
// Load and Reload never write.
func New(m *matcher.Matcher, plan *numplan.Plan, st *store.Store, opt Options) *Service {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Service{m: m, plan: plan, st: st, opt: opt, log: opt.Logger, vel: opt.Velocity, orig: opt.Origin}
	if s.vel != nil {
		s.vel.SetOnLock(s.persistAutoLock)
		s.vel.SetOnRangeBlock(s.autoBlockRange)
	}
	if s.orig != nil {
		s.orig.State().SetOnChange(s.persistOrigin)
	}
	return s
}

// Load reads the store and the high-risk list, compiles and swaps in the
// first snapshot. An error leaves the matcher as it was (not ready).
func (s *Service) Load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := s.st.Load()
	if err != nil {
		return err
	}
	meta, err := s.st.HighRiskMeta()
	if err != nil {
		return err
	}
	if s.vel != nil {
		raw, err := s.st.Locks()
		if err != nil {
			return err
		}
		locks := make([]velocity.Lock, 0, len(raw))
		for key, b := range raw {
			var l velocity.Lock
			if err := policy.DecodeStrict(b, &l); err != nil {
				return fmt.Errorf("stored lock %q: %w", key, err)
			}
			locks = append(locks, l)
		}
		s.vel.RestoreLocks(locks)
	}
	if s.orig != nil {
		if err := s.loadOrigin(); err != nil {
			return err
		}
	}
	err = s.loadLocked(set, meta, nil, false, false)
	s.countReload(err)
	return err
}

// Reload re-reads the high-risk file (when one is configured) and recompiles.
// A file that does not parse or compile is refused with its error (line
// number included) and the snapshot in force keeps serving.
func (s *Service) Reload() (HighRiskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		return HighRiskInfo{}, errors.New("nothing loaded yet")
	}
	set := *s.set
	set.HighRisk = nil
	keep := &s.rd
	if s.rd.Origin == OriginFile {
		set.Rates, keep = nil, nil
	}
	// A stored list stays as compiled; a file is read again, and the
	// shipped list is the shipped list.
	err := s.loadLocked(&set, store.HighRiskMeta{}, keep, s.hr.Origin == OriginStored, true)
	s.countReload(err)
	if err != nil {
		s.log.Error().Err(err).Msg("reload refused; the previous policy stays in force")
		return s.hr, err
	}
	s.log.Info().Str("high_risk_origin", s.hr.Origin).Str("high_risk_version", s.hr.Version).
		Int("high_risk_entries", s.hr.Entries).Str("rate_deck_origin", s.rd.Origin).Str("rate_deck_version", s.rd.Version).
		Int("rate_deck_entries", s.rd.Entries).Msg("reloaded")
	return s.hr, nil
}

func (s *Service) countReload(err error) {
	if err != nil {
		s.reloadFail.Add(1)
		s.lastOK.Store(false)
		return
	}
	s.reloadOK.Add(1)
	s.lastOK.Store(true)
	s.lastSuccess.Store(s.opt.Now().UnixNano())
}

// loadLocked picks the high-risk list (file, else stored, else builtin)
// and the rate deck (file, else stored, else none), compiles set and swaps
// it in. set.HighRisk on entry is the stored list or nil; rd, when not nil,
// is the rate deck in force to keep (set.Rates holds it), else the deck is
// read again; keepHR keeps the stored list in force as compiled; same
// says set's accounts are s.set's (a reload), not read anew.
func (s *Service) loadLocked(set *policy.Set, meta store.HighRiskMeta, rd *RateDeckInfo, keepHR, same bool) error {
	var hr HighRiskInfo
	switch {
	case keepHR && s.opt.HighRiskFile == "":
		hr = s.hr
	case s.opt.HighRiskFile != "":
		l, info, err := ReadHighRiskFile(s.opt.HighRiskFile)
		if err != nil {
			return err
		}
		set.HighRisk, hr = l, info
	case set.HighRisk != nil:
		hr = HighRiskInfo{Origin: OriginStored, Version: meta.Version, Source: meta.Source, Entries: len(set.HighRisk), Updated: meta.Updated}
	default:
		l, err := matcher.DefaultHighRisk()
		if err != nil {
			return fmt.Errorf("shipped high-risk list: %w", err)
		}
		set.HighRisk = l
		hr = HighRiskInfo{Origin: OriginBuiltin, Version: matcher.DefaultHighRiskVersion(), Source: "builtin", Entries: len(l)}
	}
	var rinfo RateDeckInfo
	switch {
	case rd != nil:
		rinfo = *rd
	case s.opt.RateDeckFile != "":
		d, info, err := ReadRateDeckFile(s.opt.RateDeckFile)
		if err != nil {
			return err
		}
		set.Rates, rinfo = d, info
	default:
		d, m, err := s.st.RateDeck()
		if err != nil {
			return err
		}
		set.Rates, rinfo = d, RateDeckInfo{Origin: OriginNone}
		if d != nil {
			rinfo = RateDeckInfo{Origin: OriginStored, Version: m.Version, Source: m.Source, Currency: d.Currency, Entries: len(d.Entries), Updated: m.Updated}
		}
	}
	if set.Accounts == nil {
		set.Accounts = map[string]policy.Account{}
	}
	snap, err := s.compile(s.m.Snapshot(), set)
	if err != nil {
		return err
	}
	same = same && s.set != nil && sameMap(s.set.Accounts, set.Accounts)
	s.m.Swap(snap)
	s.set, s.hr, s.rd = set, hr, rinfo
	s.keepHighRisk()
	s.syncVelocity(s.velWas(same, nil))
	return nil
}

// compile is matcher.CompileFrom, keeping prev's compiled high-risk list
// when set.HighRisk is nil: the service never compiles a set without a
// list (the shipped one at least), so nil means "the list in force". It
// compiles against s.set's accounts (matcher.CompileAgainst): they are
// what the snapshot in force was compiled from, so the compiled accounts
// need not hold a second copy of their sources. prev is the snapshot in
// force (any other reuses no account). Caller holds mu.
func (s *Service) compile(prev *matcher.Snapshot, set *policy.Set) (*matcher.Snapshot, error) {
	return matcher.CompileAgainst(prev, s.sources(prev), set, s.plan, set.HighRisk == nil && prev != nil)
}

// sources is what snap's accounts were compiled from, when snap is the
// snapshot in force: s.set's accounts, which apply edits only once the
// snapshot compiled from the edit is swapped in. nil for any other
// snapshot. Caller holds mu.
func (s *Service) sources(snap *matcher.Snapshot) map[string]policy.Account {
	if s.set == nil || snap == nil || snap != s.m.Snapshot() {
		return nil
	}
	return s.set.Accounts
}

// keepHighRisk moves the high-risk list of the set now in force into its
// packed form and drops the decoded slice: the snapshot has compiled it,
// and only an export needs the entries again. Caller holds mu.
func (s *Service) keepHighRisk() {
	if s.set.HighRisk == nil {
		return
	}
	s.hrList = packHighRisk(s.set.HighRisk)
	s.set.HighRisk = nil
}

// syncVelocity brings the velocity engine in step with the set in force,
// against was (see velWas). The set compiled, so it syncs; an error here
// is a bug, logged loudly. Caller holds mu.
func (s *Service) syncVelocity(was velocity.Was) {
	if s.vel == nil {
		return
	}
	err := s.vel.SyncAgainst(s.set, was)
	s.velInStep = err == nil
	if err != nil {
		s.log.Error().Err(err).Msg("velocity engine refused a policy the matcher compiled; its previous rules stay in force")
	}
}

// velWas is what the velocity engine was last synced from, for a sync of
// s.set: nil (nothing known: every account is synced anew) unless the last
// sync succeeded and same says s.set's accounts are the map it was given,
// edited since only for the accounts prior holds (their values then) and
// the new ones. The engine's entries keep no copy of their sources (see
// velocity.SyncAgainst). Caller holds mu, after the edits.
func (s *Service) velWas(same bool, prior map[string]*policy.Account) velocity.Was {
	if !same || !s.velInStep {
		return nil
	}
	accounts := s.set.Accounts
	return func(name string) (policy.Account, bool) {
		if a, changed := prior[name]; changed {
			if a == nil {
				return policy.Account{}, false
			}
			return *a, true
		}
		a, ok := accounts[name]
		return a, ok
	}
}

// sameMap reports whether a and b are the very same map (not merely
// equal).
func sameMap(a, b map[string]policy.Account) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// ReadRateDeckFile parses a rate deck file; its version is a hash of its
// content.
func ReadRateDeckFile(path string) (*policy.RateDeck, RateDeckInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, RateDeckInfo{}, fmt.Errorf("rate deck file: %w", err)
	}
	d, err := policy.ParseRateDeck(bytes.NewReader(b))
	if err != nil {
		return nil, RateDeckInfo{}, fmt.Errorf("rate deck file %s: %w", path, err)
	}
	info := RateDeckInfo{Origin: OriginFile, Version: listVersion("", b), Source: "file:" + path, Currency: d.Currency, Entries: len(d.Entries)}
	if fi, err := os.Stat(path); err == nil {
		info.Updated = fi.ModTime().UTC()
	}
	return &d, info, nil
}

// ReadHighRiskFile parses a high-risk CSV file. Its version is the file's
// "# version:" line, else a hash of its content, so two different files never
// report the same version.
func ReadHighRiskFile(path string) ([]policy.HighRiskEntry, HighRiskInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, HighRiskInfo{}, fmt.Errorf("high-risk file: %w", err)
	}
	l, err := policy.ParseHighRiskList(bytes.NewReader(b))
	if err != nil {
		return nil, HighRiskInfo{}, fmt.Errorf("high-risk file %s: %w", path, err)
	}
	info := HighRiskInfo{Origin: OriginFile, Version: listVersion(l.Meta.Version, b), Source: "file:" + path, Entries: len(l.Entries)}
	if fi, err := os.Stat(path); err == nil {
		info.Updated = fi.ModTime().UTC()
	}
	return l.Entries, info, nil
}

func listVersion(declared string, body []byte) string {
	if declared != "" {
		return declared
	}
	h := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(h[:8])
}

// Ready reports whether a policy has been loaded.
func (s *Service) Ready() bool { return s.m.Ready() }

// Stats returns reload and storage counters for /metrics.
func (s *Service) Stats() ReloadStats {
	r := ReloadStats{Success: s.reloadOK.Load(), Failure: s.reloadFail.Load(), LastOK: s.lastOK.Load(), StoreErrors: s.storeErrs.Load()}
	if ns := s.lastSuccess.Load(); ns != 0 {
		r.LastSuccess = time.Unix(0, ns)
	}
	return r
}

// apply is the one path every change takes (admin writes today, a fleet's
// remote changes later): compile only what ch changes, persist ch with its
// audit entry, swap the new snapshot in, then bring s.set and the velocity
// engine in step. ch.Accounts are the accounts that change (a nil value
// deletes one): WithAccounts compiles just those, sharing every other
// compiled account with the snapshot in force, so a one-account write at
// 100,000 accounts costs a shard copy, not a rebuild. top, when not nil, is
// a new top level (operator settings, high-risk list, rate deck) over
// s.set's accounts, from s.topSet; CompileFrom then reuses every part that
// top still shares. ch.Templates are templates that change (nil deletes
// one): each is compiled with every account that names it
// (applyTemplates), and those accounts' velocity scopes re-synced. Called
// with s.mu held. On any error nothing changed: not the disk, not the
// snapshot, not s.set.
func (s *Service) apply(top *policy.Set, ch *store.Change, who Actor, hr *HighRiskInfo) error {
	snap := s.m.Snapshot()
	var err error
	if top != nil {
		if snap, err = s.compile(snap, top); err != nil {
			return &InvalidError{Err: err}
		}
	}
	var onTemplates, onDeleted []string
	if len(ch.Templates) > 0 {
		if snap, onTemplates, err = s.applyTemplates(snap, ch, "put"); err != nil {
			return err
		}
	}
	if len(ch.Accounts) > 0 {
		if snap, err = snap.WithAccounts(ch.Accounts); err != nil {
			return &InvalidError{Err: err}
		}
	}
	if len(ch.Templates) > 0 {
		if snap, onDeleted, err = s.applyTemplates(snap, ch, "delete"); err != nil {
			return err
		}
	}
	ch.Audit.Who, ch.Audit.Remote, ch.Audit.Time = who.Name, who.Remote, s.opt.Now()
	id, err := s.commit(ch)
	if err != nil {
		if isFleetError(err) {
			return err
		}
		s.storeErrs.Add(1)
		s.log.Error().Err(err).Str("action", ch.Audit.Action).Str("object", ch.Audit.Object).Msg("store write failed; change not applied")
		return &StoreError{Err: err}
	}
	same := top == nil || sameMap(top.Accounts, s.set.Accounts)
	s.m.Swap(snap)
	if top != nil {
		s.set = top
		s.keepHighRisk()
	}
	// what the accounts ch changes were, for the velocity engine's sync
	// (nil: none)
	prior := make(map[string]*policy.Account, len(ch.Accounts))
	for name := range ch.Accounts {
		var p *policy.Account
		if a, ok := s.set.Accounts[name]; ok {
			p = &a
		}
		prior[name] = p
	}
	names := make([]string, 0, len(ch.Accounts))
	for name, a := range ch.Accounts {
		if a == nil {
			delete(s.set.Accounts, name)
		} else {
			s.set.Accounts[name] = *a
		}
		names = append(names, name)
	}
	// Writing or deleting a quarantined account released it: the store
	// replaced (or dropped) its damaged records in the same commit, and
	// WithAccounts replaced (or dropped) its compiled placeholder.
	for _, name := range names {
		if _, q := s.set.Quarantined[name]; q {
			rest := make(map[string]string, len(s.set.Quarantined))
			for k, v := range s.set.Quarantined {
				if _, written := ch.Accounts[k]; !written {
					rest[k] = v
				}
			}
			s.set.Quarantined = rest
			break
		}
	}
	if hr != nil {
		s.hr = *hr
	}
	s.commitTemplates(ch)
	// accounts on a changed template changed too
	names = append(append(names, onTemplates...), onDeleted...)
	if top != nil {
		s.syncVelocity(s.velWas(same, prior))
	} else if s.vel != nil {
		if err := s.vel.SyncAccountsAgainst(s.set, names, s.velWas(same, prior)); err != nil {
			s.velInStep = false
			s.log.Error().Err(err).Msg("velocity engine refused accounts the matcher compiled; their previous rules stay in force")
		}
	}
	st := snap.Stats()
	s.log.Info().Str("who", who.Name).Str("remote", who.Remote).Str("action", ch.Audit.Action).
		Str("object", ch.Audit.Object).Uint64("audit_id", id).Int("accounts", st.Accounts).
		Dur("compile", st.BuildTime).Msg("admin change")
	return nil
}

// topSet copies the top level of the set in force (operator settings,
// high-risk list, rate deck) for a change to one of them; the accounts map
// is the same one.
func (s *Service) topSet() *policy.Set {
	next := *s.set
	return &next
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only policy types, which always marshal
	}
	return b
}

func (s *Service) loaded() error {
	if s.set == nil {
		return errors.New("policy not loaded yet")
	}
	return nil
}

// Account returns one account with its subaccounts.
func (s *Service) Account(name string) (policy.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Account{}, err
	}
	a, ok := s.set.Accounts[name]
	if why, q := s.set.Quarantined[name]; q && !ok {
		return policy.Account{}, &NotFoundError{What: fmt.Sprintf("account %q (quarantined: %s; PUT the account again to release it)", name, why)}
	}
	if !ok {
		return policy.Account{}, &NotFoundError{What: fmt.Sprintf("account %q", name)}
	}
	return a.Clone(), nil
}

// NamedAccount is an account with its name, for listings.
type NamedAccount struct {
	Name string
	policy.Account
}

// Accounts lists accounts sorted by name: those after `after`, at most limit
// (all if limit <= 0). total is the number of accounts.
func (s *Service) Accounts(after string, limit int) (list []NamedAccount, total int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, 0, err
	}
	names := firstAfter(s.set.Accounts, after, limit)
	list = make([]NamedAccount, len(names))
	for i, n := range names {
		list[i] = NamedAccount{Name: n, Account: s.set.Accounts[n].Clone()}
	}
	return list, len(s.set.Accounts), nil
}

// PutAccount creates or replaces an account's policy. Subaccounts are their
// own resources: when a.Subaccounts is nil the existing ones are kept,
// otherwise they are replaced too. It returns the account as stored
// (canonicalised).
func (s *Service) PutAccount(who Actor, name string, a policy.Account) (policy.Account, error) {
	if err := policy.ValidName(name); err != nil {
		return a, &InvalidError{Err: &policy.FieldError{Field: "account", Msg: err.Error()}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return a, err
	}
	old, existed := s.set.Accounts[name]
	if a.Subaccounts == nil && existed && len(old.Subaccounts) > 0 {
		a.Subaccounts = make(map[string]policy.Policy, len(old.Subaccounts))
		for k, v := range old.Subaccounts {
			a.Subaccounts[k] = v.Clone() // Validate canonicalises in place
		}
	}
	return s.putAccountLocked(who, name, a, "account.put")
}

// putAccountLocked validates the whole account a and applies it, audited
// as action with the account before and after. Called with s.mu held.
func (s *Service) putAccountLocked(who Actor, name string, a policy.Account, action string) (policy.Account, error) {
	old, existed := s.set.Accounts[name]
	if err := a.CheckSize(); err != nil { // first: it only counts
		return a, &InvalidError{Err: err}
	}
	if err := a.Validate(); err != nil {
		return a, &InvalidError{Err: err}
	}
	if err := s.checkTemplate(&a); err != nil {
		return a, err
	}
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: action, Object: "accounts/" + name, After: mustJSON(a)},
		Accounts: map[string]*policy.Account{name: &a},
	}
	if existed {
		ch.Audit.Before = mustJSON(old)
	}
	return a.Clone(), s.apply(nil, ch, who, nil)
}

// DeleteAccount removes an account and its subaccounts; its calls then get
// the operator's unknown-account treatment.
func (s *Service) DeleteAccount(who Actor, name string) (policy.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Account{}, err
	}
	old, ok := s.set.Accounts[name]
	if !ok {
		return old, &NotFoundError{What: fmt.Sprintf("account %q", name)}
	}
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: "account.delete", Object: "accounts/" + name, Before: mustJSON(old)},
		Accounts: map[string]*policy.Account{name: nil},
	}
	return old, s.apply(nil, ch, who, nil)
}

// Subaccount returns one subaccount's own layer (fields it leaves out are
// inherited from the account).
func (s *Service) Subaccount(account, sub string) (policy.Policy, error) {
	a, err := s.Account(account)
	if err != nil {
		return policy.Policy{}, err
	}
	p, ok := a.Subaccounts[sub] // a is already a copy
	if !ok {
		return p, &NotFoundError{What: fmt.Sprintf("subaccount %q of account %q", sub, account)}
	}
	return p, nil
}

// PutSubaccount creates or replaces a subaccount of an existing account.
func (s *Service) PutSubaccount(who Actor, account, sub string, p policy.Policy) (policy.Policy, error) {
	if err := policy.ValidName(sub); err != nil {
		return p, &InvalidError{Err: &policy.FieldError{Field: "subaccount", Msg: err.Error()}}
	}
	if err := p.Validate(""); err != nil {
		return p, &InvalidError{Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return p, err
	}
	return s.putSubaccountLocked(who, account, sub, p, "subaccount.put")
}

// putSubaccountLocked applies the validated subaccount p, audited as
// action. Called with s.mu held.
func (s *Service) putSubaccountLocked(who Actor, account, sub string, p policy.Policy, action string) (policy.Policy, error) {
	old, ok := s.set.Accounts[account]
	if !ok {
		return p, &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	na := old
	na.Subaccounts = make(map[string]policy.Policy, len(old.Subaccounts)+1)
	for k, v := range old.Subaccounts {
		na.Subaccounts[k] = v
	}
	na.Subaccounts[sub] = p
	if err := na.CheckSize(); err != nil {
		return p, &InvalidError{Err: err}
	}
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: action, Object: "accounts/" + account + "/subaccounts/" + sub, After: mustJSON(p)},
		Accounts: map[string]*policy.Account{account: &na},
	}
	if before, existed := old.Subaccounts[sub]; existed {
		ch.Audit.Before = mustJSON(before)
	}
	return p.Clone(), s.apply(nil, ch, who, nil)
}

// DeleteSubaccount removes a subaccount; its calls then get the account's
// policy.
func (s *Service) DeleteSubaccount(who Actor, account, sub string) (policy.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Policy{}, err
	}
	old, ok := s.set.Accounts[account]
	if !ok {
		return policy.Policy{}, &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	before, ok := old.Subaccounts[sub]
	if !ok {
		return before, &NotFoundError{What: fmt.Sprintf("subaccount %q of account %q", sub, account)}
	}
	na := old
	na.Subaccounts = make(map[string]policy.Policy, len(old.Subaccounts))
	for k, v := range old.Subaccounts {
		if k != sub {
			na.Subaccounts[k] = v
		}
	}
	if len(na.Subaccounts) == 0 {
		na.Subaccounts = nil
	}
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: "subaccount.delete", Object: "accounts/" + account + "/subaccounts/" + sub, Before: mustJSON(before)},
		Accounts: map[string]*policy.Account{account: &na},
	}
	return before, s.apply(nil, ch, who, nil)
}

// Operator returns a deep copy of the operator settings in force: the
// caller encodes it outside the lock while the next change validates (and
// canonicalises in place) its own copy.
func (s *Service) Operator() (policy.Operator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Operator{}, err
	}
	return s.set.Operator.Clone(), nil
}

// putOperatorLocked validates op, then applies it with the given audit
// entry; before and after default to the whole settings.
func (s *Service) putOperatorLocked(who Actor, op policy.Operator, audit store.AuditEntry) (policy.Operator, error) {
	if err := op.Validate(); err != nil {
		return op, &InvalidError{Err: err}
	}
	sort.Slice(op.BlockedPrefixes, func(i, j int) bool { return op.BlockedPrefixes[i].Prefix < op.BlockedPrefixes[j].Prefix })
	if len(op.BlockedPrefixes) == 0 {
		op.BlockedPrefixes = nil
	}
	if len(op.DisabledCountries) == 0 {
		op.DisabledCountries = nil
	}
	if audit.Before == nil {
		audit.Before = mustJSON(s.set.Operator)
	}
	if audit.After == nil {
		audit.After = mustJSON(op)
	}
	next := s.topSet()
	next.Operator = op
	return op.Clone(), s.apply(next, &store.Change{Audit: audit, Operator: &op}, who, nil)
}

// PutOperator replaces the whole operator settings.
func (s *Service) PutOperator(who Actor, op policy.Operator) (policy.Operator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return op, err
	}
	return s.putOperatorLocked(who, op, store.AuditEntry{Action: "operator.put", Object: "operator"})
}

// DisableCountry switches a destination off for every account.
func (s *Service) DisableCountry(who Actor, code, reason string) (string, policy.DisabledCountry, error) {
	cc := strings.ToUpper(strings.TrimSpace(code))
	d := policy.DisabledCountry{Reason: reason}
	if _, ok := policy.LookupCountry(cc); !ok {
		return cc, d, &InvalidError{Err: &policy.FieldError{Field: "country", Msg: fmt.Sprintf("unknown country code %q", code)}}
	}
	if len(reason) > policy.MaxReasonLen {
		return cc, d, &InvalidError{Err: &policy.FieldError{Field: "reason", Msg: fmt.Sprintf("longer than %d bytes", policy.MaxReasonLen)}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return cc, d, err
	}
	op := s.set.Operator.Clone()
	if op.DisabledCountries == nil {
		op.DisabledCountries = map[string]policy.DisabledCountry{}
	}
	audit := store.AuditEntry{Action: "country.disable", Object: "operator/countries/" + cc, After: mustJSON(d), Before: json.RawMessage("null")}
	if before, ok := op.DisabledCountries[cc]; ok {
		audit.Before = mustJSON(before)
	}
	op.DisabledCountries[cc] = d
	_, err := s.putOperatorLocked(who, op, audit)
	return cc, d, err
}

// EnableCountry lifts an operator's disable.
func (s *Service) EnableCountry(who Actor, code string) (string, policy.DisabledCountry, error) {
	cc := strings.ToUpper(strings.TrimSpace(code))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return cc, policy.DisabledCountry{}, err
	}
	before, ok := s.set.Operator.DisabledCountries[cc]
	if !ok {
		return cc, before, &NotFoundError{What: fmt.Sprintf("disabled country %q", code)}
	}
	op := s.set.Operator.Clone()
	delete(op.DisabledCountries, cc)
	_, err := s.putOperatorLocked(who, op, store.AuditEntry{Action: "country.enable", Object: "operator/countries/" + cc,
		Before: mustJSON(before), After: json.RawMessage("null")})
	return cc, before, err
}

// BlockPrefix adds (or re-words) an operator-wide blocked prefix.
func (s *Service) BlockPrefix(who Actor, prefix, reason string) (policy.BlockedPrefix, error) {
	p, err := policy.NormalizePrefix(prefix)
	bp := policy.BlockedPrefix{Prefix: p, Reason: reason}
	if err != nil {
		return bp, &InvalidError{Err: &policy.FieldError{Field: "prefix", Msg: err.Error()}}
	}
	if len(reason) > policy.MaxReasonLen {
		return bp, &InvalidError{Err: &policy.FieldError{Field: "reason", Msg: fmt.Sprintf("longer than %d bytes", policy.MaxReasonLen)}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return bp, err
	}
	op := s.set.Operator.Clone()
	audit := store.AuditEntry{Action: "prefix.block", Object: "operator/prefixes/" + p, Before: json.RawMessage("null"), After: mustJSON(bp)}
	replaced := false
	for i, x := range op.BlockedPrefixes {
		if x.Prefix == p {
			audit.Before = mustJSON(x)
			op.BlockedPrefixes[i] = bp
			replaced = true
		}
	}
	if !replaced {
		op.BlockedPrefixes = append(op.BlockedPrefixes, bp)
	}
	_, err = s.putOperatorLocked(who, op, audit)
	return bp, err
}

// UnblockPrefix removes an operator-wide blocked prefix.
func (s *Service) UnblockPrefix(who Actor, prefix string) (policy.BlockedPrefix, error) {
	p, err := policy.NormalizePrefix(prefix)
	if err != nil {
		return policy.BlockedPrefix{}, &InvalidError{Err: &policy.FieldError{Field: "prefix", Msg: err.Error()}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.BlockedPrefix{}, err
	}
	op := s.set.Operator.Clone()
	var before *policy.BlockedPrefix
	kept := op.BlockedPrefixes[:0]
	for _, x := range op.BlockedPrefixes {
		if x.Prefix == p {
			x := x
			before = &x
			continue
		}
		kept = append(kept, x)
	}
	if before == nil {
		return policy.BlockedPrefix{Prefix: p}, &NotFoundError{What: fmt.Sprintf("blocked prefix %s", p)}
	}
	op.BlockedPrefixes = kept
	_, err = s.putOperatorLocked(who, op, store.AuditEntry{Action: "prefix.unblock", Object: "operator/prefixes/" + p,
		Before: mustJSON(before), After: json.RawMessage("null")})
	return *before, err
}

// HighRisk returns the list in force and where it comes from. The list is
// rebuilt from its packed form for each call (80 bytes an entry, 76 MiB for
// 1,000,000 prefixes, until the caller drops it): for exports; metrics and
// logs want HighRiskInfo.
func (s *Service) HighRisk() ([]policy.HighRiskEntry, HighRiskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, HighRiskInfo{}, err
	}
	return s.hrList.entries(), s.hr, nil
}

// HighRiskInfo is where the list in force comes from and its size, without
// the list.
func (s *Service) HighRiskInfo() (HighRiskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return HighRiskInfo{}, err
	}
	return s.hr, nil
}

func (s *Service) highRiskWritable() error {
	if s.opt.HighRiskFile != "" {
		return &ConflictError{Msg: fmt.Sprintf("the high-risk list comes from -high-risk-file %s: edit that file and reload (SIGHUP or POST /v1/reload) instead", s.opt.HighRiskFile)}
	}
	return nil
}

// PutHighRisk replaces the operator's stored high-risk list with an already
// parsed file; body is its raw text, hashed for a version when the file does
// not declare one.
func (s *Service) PutHighRisk(who Actor, l policy.HighRiskList, body []byte) (HighRiskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return HighRiskInfo{}, err
	}
	if err := s.highRiskWritable(); err != nil {
		return s.hr, err
	}
	info := HighRiskInfo{Origin: OriginStored, Version: listVersion(l.Meta.Version, body), Source: "api:" + who.Name,
		Entries: len(l.Entries), Updated: s.opt.Now().UTC()}
	next := s.topSet()
	next.HighRisk = l.Entries
	ch := &store.Change{
		Audit: store.AuditEntry{Action: "high_risk.put", Object: "high-risk", Before: mustJSON(s.hr), After: mustJSON(info)},
		HighRisk: &store.HighRiskList{Entries: l.Entries, Version: info.Version, Source: info.Source,
			Updated: info.Updated},
	}
	return info, s.apply(next, ch, who, &info)
}

// DeleteHighRisk drops the operator's stored list: the shipped one applies
// again.
func (s *Service) DeleteHighRisk(who Actor) (HighRiskInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return HighRiskInfo{}, err
	}
	if err := s.highRiskWritable(); err != nil {
		return s.hr, err
	}
	if s.hr.Origin != OriginStored {
		return s.hr, &NotFoundError{What: "stored high-risk list (the shipped list is in force)"}
	}
	l, err := matcher.DefaultHighRisk()
	if err != nil {
		return s.hr, fmt.Errorf("shipped high-risk list: %w", err)
	}
	info := HighRiskInfo{Origin: OriginBuiltin, Version: matcher.DefaultHighRiskVersion(), Source: "builtin", Entries: len(l)}
	next := s.topSet()
	next.HighRisk = l
	ch := &store.Change{
		Audit:        store.AuditEntry{Action: "high_risk.delete", Object: "high-risk", Before: mustJSON(s.hr), After: mustJSON(info)},
		DropHighRisk: true,
	}
	return info, s.apply(next, ch, who, &info)
}

// Audit lists the audit log newest first (see store.Store.Audit).
func (s *Service) Audit(limit int, before uint64) ([]store.AuditEntry, error) {
	return s.st.Audit(limit, before)
}
