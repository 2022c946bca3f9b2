package service

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// PreconditionError is a write refused because the resource changed since
// the client read it (If-Match named another revision).
type PreconditionError struct{ Msg string }

// Error says which revision is in force.
func (e *PreconditionError) Error() string { return e.Msg }

// Revision is a resource's entity tag: a digest of its JSON as stored, so
// a client can send it back in If-Match and have its PATCH refused when
// someone else changed the resource in between.
func Revision(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// checkRevision compares If-Match ("" or "*" match anything) with the
// revision of the document in force.
func checkRevision(ifMatch string, current any) error {
	if ifMatch == "" || ifMatch == "*" {
		return nil
	}
	if rev := Revision(current); rev != ifMatch {
		return &PreconditionError{Msg: fmt.Sprintf("If-Match %s: the resource changed, its revision is now %s (GET it again)", ifMatch, rev)}
	}
	return nil
}

// mergeInto applies the merge patch to the JSON of cur and decodes the
// result strictly into out, so a field the patch misspells is refused by
// name just as in a PUT.
func mergeInto(cur any, patch []byte, out any) error {
	merged, err := policy.MergePatch(mustJSON(cur), patch)
	if err != nil {
		return &InvalidError{Err: err}
	}
	if err := policy.DecodeStrict(merged, out); err != nil {
		return &InvalidError{Err: err}
	}
	return nil
}

// PatchAccount applies a JSON merge patch (RFC 7396) to an existing
// account, then validates and stores the result as a PUT of it would:
// fields the patch leaves out keep their values (a PUT would drop them),
// null removes a field, and "subaccounts" merges per subaccount. ifMatch,
// when not "" or "*", must be the account's current Revision. Audited as
// account.patch with the whole account before and after.
func (s *Service) PatchAccount(who Actor, name string, patch []byte, ifMatch string) (policy.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Account{}, err
	}
	old, ok := s.set.Accounts[name]
	if !ok {
		return old, &NotFoundError{What: fmt.Sprintf("account %q (PUT creates one)", name)}
	}
	if err := checkRevision(ifMatch, old); err != nil {
		return old, err
	}
	var a policy.Account
	if err := mergeInto(old, patch, &a); err != nil {
		return a, err
	}
	return s.putAccountLocked(who, name, a, "account.patch")
}

// PatchSubaccount applies a JSON merge patch to a subaccount's own layer
// and stores the result as PutSubaccount would.
func (s *Service) PatchSubaccount(who Actor, account, sub string, patch []byte, ifMatch string) (policy.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Policy{}, err
	}
	a, ok := s.set.Accounts[account]
	if !ok {
		return policy.Policy{}, &NotFoundError{What: fmt.Sprintf("account %q", account)}
	}
	old, ok := a.Subaccounts[sub]
	if !ok {
		return old, &NotFoundError{What: fmt.Sprintf("subaccount %q of account %q (PUT creates one)", sub, account)}
	}
	if err := checkRevision(ifMatch, old); err != nil {
		return old, err
	}
	var p policy.Policy
	if err := mergeInto(old, patch, &p); err != nil {
		return p, err
	}
	if err := p.Validate(""); err != nil {
		return p, &InvalidError{Err: err}
	}
	return s.putSubaccountLocked(who, account, sub, p, "subaccount.patch")
}

// PatchOperator applies a JSON merge patch to the operator settings and
// stores the result as PutOperator would.
func (s *Service) PatchOperator(who Actor, patch []byte, ifMatch string) (policy.Operator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Operator{}, err
	}
	if err := checkRevision(ifMatch, s.set.Operator); err != nil {
		return policy.Operator{}, err
	}
	var op policy.Operator
	if err := mergeInto(s.set.Operator, patch, &op); err != nil {
		return op, err
	}
	return s.putOperatorLocked(who, op, store.AuditEntry{Action: "operator.patch", Object: "operator"})
}
