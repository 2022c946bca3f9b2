package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// Edit is one admin write of a proposed change, written as the admin API
// takes it: a method, a path and the document (or, with PATCH, the JSON
// merge patch of RFC 7396) the route would get. A what-if, a shadow policy
// and its promotion all take a list of them, applied in order.
type Edit struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// MaxEdits bounds the edits of one proposed change.
const MaxEdits = 1000

// Proposal is a change compiled beside the policy in force and never
// swapped in: the policy it was compiled against (Base, BaseSnap) and the
// result (Next, NextSnap). The sets are private copies (their Accounts maps
// are not the service's), so a replay may read them while admin writes go
// on.
type Proposal struct {
	Edits    []Edit
	Base     *policy.Set
	BaseSnap *matcher.Snapshot
	Next     *policy.Set
	NextSnap *matcher.Snapshot

	accounts map[string]*policy.Account // the accounts it writes (nil: delete)
	operator *policy.Operator           // the operator settings it writes, if any
}

// Propose compiles edits over the policy in force without applying them.
// An edit that does not validate is refused with an *InvalidError whose
// field names the edit ("edits[2].body.countries.except"), a missing
// object with a *NotFoundError; nothing is changed either way.
func (s *Service) Propose(edits []Edit) (*Proposal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proposeLocked(edits, true)
}

// proposeLocked builds the proposal; sets asks for the Base and Next
// copies (a replay needs them, a promotion does not).
func (s *Service) proposeLocked(edits []Edit, sets bool) (*Proposal, error) {
	if err := s.loaded(); err != nil {
		return nil, err
	}
	if len(edits) == 0 {
		return nil, &InvalidError{Err: &policy.FieldError{Field: "edits", Msg: "empty; at least one edit is required"}}
	}
	if len(edits) > MaxEdits {
		return nil, &InvalidError{Err: &policy.FieldError{Field: "edits", Msg: fmt.Sprintf("%d edits; at most %d", len(edits), MaxEdits)}}
	}
	p := &Proposal{Edits: edits, accounts: map[string]*policy.Account{}}
	for i, e := range edits {
		if err := p.edit(s, e); err != nil {
			return nil, editError(i, e, err)
		}
	}
	live := s.m.Snapshot()
	snap := live
	var err error
	next := s.topSet()
	if p.operator != nil {
		next.Operator = *p.operator
		if snap, err = s.compile(snap, next); err != nil {
			return nil, &InvalidError{Err: err}
		}
	}
	if len(p.accounts) > 0 {
		if snap, err = snap.WithAccounts(p.accounts); err != nil {
			return nil, &InvalidError{Err: err}
		}
	}
	p.NextSnap, p.BaseSnap = snap, live
	if sets {
		base := s.topSet()
		base.Accounts = make(map[string]policy.Account, len(s.set.Accounts))
		for k, v := range s.set.Accounts {
			base.Accounts[k] = v
		}
		next.Accounts = make(map[string]policy.Account, len(s.set.Accounts)+len(p.accounts))
		for k, v := range s.set.Accounts {
			next.Accounts[k] = v
		}
		for k, a := range p.accounts {
			if a == nil {
				delete(next.Accounts, k)
			} else {
				next.Accounts[k] = *a
			}
		}
		p.Base, p.Next = base, next
	}
	return p, nil
}

// editError names the edit in a validation error's field.
func editError(i int, e Edit, err error) error {
	field := fmt.Sprintf("edits[%d]", i)
	if ie, ok := err.(*InvalidError); ok {
		if f := ie.Field(); f != "" {
			field += "." + f
		}
		return &InvalidError{Err: &policy.FieldError{Field: field, Msg: fmt.Sprintf("%s %s: %s", e.Method, e.Path, fieldMsg(ie.Err))}}
	}
	if nf, ok := err.(*NotFoundError); ok {
		return &NotFoundError{What: fmt.Sprintf("%s (%s, %s %s)", nf.What, field, e.Method, e.Path)}
	}
	return err
}

func fieldMsg(err error) string {
	if fe, ok := err.(*policy.FieldError); ok {
		return fe.Msg
	}
	return err.Error()
}

func invalid(field, format string, a ...any) error {
	return &InvalidError{Err: &policy.FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}}
}

// account is an account as the proposal sees it so far.
func (p *Proposal) account(s *Service, name string) (policy.Account, bool) {
	if a, ok := p.accounts[name]; ok {
		if a == nil {
			return policy.Account{}, false
		}
		return *a, true
	}
	a, ok := s.set.Accounts[name]
	return a, ok
}

func (p *Proposal) op(s *Service) policy.Operator {
	if p.operator != nil {
		return p.operator.Clone()
	}
	return s.set.Operator.Clone()
}

// edit applies one edit to the proposal, validating as the admin route
// would.
func (p *Proposal) edit(s *Service, e Edit) error {
	method := strings.ToUpper(e.Method)
	path := e.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) < 2 || seg[0] != "v1" {
		return invalid("path", "%q is not an account, subaccount or operator path", e.Path)
	}
	switch {
	case len(seg) == 3 && seg[1] == "accounts":
		return p.editAccount(s, method, seg[2], e.Body)
	case len(seg) == 5 && seg[1] == "accounts" && seg[3] == "subaccounts":
		return p.editSubaccount(s, method, seg[2], seg[4], e.Body)
	case len(seg) == 2 && seg[1] == "operator":
		return p.editOperator(s, method, e.Body)
	case len(seg) == 4 && seg[1] == "operator" && seg[2] == "countries":
		return p.editCountry(s, method, seg[3], e.Body)
	}
	return invalid("path", "%q is not an account, subaccount or operator path", e.Path)
}

func methods(method string, allowed ...string) error {
	for _, m := range allowed {
		if m == method {
			return nil
		}
	}
	return invalid("method", "%q not allowed here; use %s", method, strings.Join(allowed, ", "))
}

// decodeDoc decodes a document (or a merge patch over cur, for PATCH)
// strictly into v.
func decodeDoc(method string, body json.RawMessage, cur any, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("body", "empty; a JSON object is required")
	}
	if method == "PATCH" {
		merged, err := policy.MergePatch(mustJSON(cur), body)
		if err != nil {
			return invalid("body", "%v", err)
		}
		body = merged
	}
	if err := policy.DecodeStrict(body, v); err != nil {
		if fe, ok := err.(*policy.FieldError); ok {
			f := "body"
			if fe.Field != "" {
				f += "." + fe.Field
			}
			return &InvalidError{Err: &policy.FieldError{Field: f, Msg: fe.Msg}}
		}
		return &InvalidError{Err: err}
	}
	return nil
}

func (p *Proposal) editAccount(s *Service, method, name string, body json.RawMessage) error {
	if err := methods(method, "PUT", "PATCH", "DELETE"); err != nil {
		return err
	}
	if err := policy.ValidName(name); err != nil {
		return invalid("account", "%v", err)
	}
	old, existed := p.account(s, name)
	if method == "DELETE" || method == "PATCH" {
		if !existed {
			return &NotFoundError{What: fmt.Sprintf("account %q", name)}
		}
	}
	if method == "DELETE" {
		p.accounts[name] = nil
		return nil
	}
	var a policy.Account
	if err := decodeDoc(method, body, old, &a); err != nil {
		return err
	}
	if a.Subaccounts == nil && existed && len(old.Subaccounts) > 0 {
		a.Subaccounts = make(map[string]policy.Policy, len(old.Subaccounts))
		for k, v := range old.Subaccounts {
			a.Subaccounts[k] = v.Clone()
		}
	}
	if err := a.CheckSize(); err != nil {
		return &InvalidError{Err: err}
	}
	if err := a.Validate(); err != nil {
		return &InvalidError{Err: prefixField("body", err)}
	}
	p.accounts[name] = &a
	return nil
}

func prefixField(prefix string, err error) error {
	if fe, ok := err.(*policy.FieldError); ok {
		f := prefix
		if fe.Field != "" {
			f += "." + fe.Field
		}
		return &policy.FieldError{Field: f, Msg: fe.Msg}
	}
	return err
}

func (p *Proposal) editSubaccount(s *Service, method, account, sub string, body json.RawMessage) error {
	if err := methods(method, "PUT", "PATCH", "DELETE"); err != nil {
		return err
	}
	if err := policy.ValidName(sub); err != nil {
		return invalid("subaccount", "%v", err)
	}
	old, ok := p.account(s, account)
	if !ok {
		return &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	before, had := old.Subaccounts[sub]
	if (method == "DELETE" || method == "PATCH") && !had {
		return &NotFoundError{What: fmt.Sprintf("subaccount %q of account %q", sub, account)}
	}
	na := old
	na.Subaccounts = make(map[string]policy.Policy, len(old.Subaccounts)+1)
	for k, v := range old.Subaccounts {
		na.Subaccounts[k] = v
	}
	if method == "DELETE" {
		delete(na.Subaccounts, sub)
		if len(na.Subaccounts) == 0 {
			na.Subaccounts = nil
		}
	} else {
		var sp policy.Policy
		if err := decodeDoc(method, body, before, &sp); err != nil {
			return err
		}
		if err := sp.Validate(""); err != nil {
			return &InvalidError{Err: prefixField("body", err)}
		}
		na.Subaccounts[sub] = sp
		if err := na.CheckSize(); err != nil {
			return &InvalidError{Err: err}
		}
	}
	p.accounts[account] = &na
	return nil
}

func (p *Proposal) editOperator(s *Service, method string, body json.RawMessage) error {
	if err := methods(method, "PUT", "PATCH"); err != nil {
		return err
	}
	var op policy.Operator
	if err := decodeDoc(method, body, p.op(s), &op); err != nil {
		return err
	}
	return p.setOperator(op)
}

func (p *Proposal) setOperator(op policy.Operator) error {
	if err := op.Validate(); err != nil {
		return &InvalidError{Err: prefixField("body", err)}
	}
	sort.Slice(op.BlockedPrefixes, func(i, j int) bool { return op.BlockedPrefixes[i].Prefix < op.BlockedPrefixes[j].Prefix })
	if len(op.BlockedPrefixes) == 0 {
		op.BlockedPrefixes = nil
	}
	if len(op.DisabledCountries) == 0 {
		op.DisabledCountries = nil
	}
	p.operator = &op
	return nil
}

func (p *Proposal) editCountry(s *Service, method, code string, body json.RawMessage) error {
	if err := methods(method, "PUT", "DELETE"); err != nil {
		return err
	}
	cc := strings.ToUpper(strings.TrimSpace(code))
	if _, ok := policy.LookupCountry(cc); !ok {
		return invalid("country", "unknown country code %q", code)
	}
	op := p.op(s)
	if method == "DELETE" {
		if _, ok := op.DisabledCountries[cc]; !ok {
			return &NotFoundError{What: fmt.Sprintf("disabled country %q", code)}
		}
		delete(op.DisabledCountries, cc)
		return p.setOperator(op)
	}
	var d policy.DisabledCountry
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeDoc("PUT", body, nil, &d); err != nil {
			return err
		}
	}
	if len(d.Reason) > policy.MaxReasonLen {
		return invalid("body.reason", "longer than %d bytes", policy.MaxReasonLen)
	}
	if op.DisabledCountries == nil {
		op.DisabledCountries = map[string]policy.DisabledCountry{}
	}
	op.DisabledCountries[cc] = d
	return p.setOperator(op)
}

// ApplyEdits puts a proposed change in force through the one write path
// (validate, compile, persist with one audit entry, swap): action names
// it in the audit log ("shadow.promote"). The edits are proposed again
// over the policy in force now, so a change made since they were first
// proposed is neither lost nor overwritten unseen: an edit that no longer
// applies fails the whole change.
func (s *Service) ApplyEdits(who Actor, action string, edits []Edit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proposeLocked(edits, false)
	if err != nil {
		return err
	}
	// before and after hold every object the change writes, as the
	// account and operator audit entries do, and the edits that made them
	before, after := map[string]any{}, map[string]any{"edits": edits}
	for name, a := range p.accounts {
		if old, ok := s.set.Accounts[name]; ok {
			before["accounts/"+name] = old
		} else {
			before["accounts/"+name] = nil
		}
		after["accounts/"+name] = a // nil: deleted
	}
	if p.operator != nil {
		before["operator"], after["operator"] = s.set.Operator, p.operator
	}
	ch := &store.Change{
		Audit:    store.AuditEntry{Action: action, Object: "policy", Before: mustJSON(before), After: mustJSON(after)},
		Accounts: p.accounts,
		Operator: p.operator,
	}
	var top *policy.Set
	if p.operator != nil {
		top = s.topSet()
		top.Operator = *p.operator
	}
	return s.apply(top, ch, who, nil)
}

// Current is the policy in force: a private copy of the set (its Accounts
// map is the caller's) and the snapshot compiled from it, for a replay
// against it alone.
func (s *Service) Current() (*policy.Set, *matcher.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, nil, err
	}
	set := s.topSet()
	set.Accounts = make(map[string]policy.Account, len(s.set.Accounts))
	for k, v := range s.set.Accounts {
		set.Accounts[k] = v
	}
	return set, s.m.Snapshot(), nil
}
