package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// Selection names the accounts a bulk change applies to: exactly one of a
// list of names, a tag, or all of them.
type Selection struct {
	Accounts []string `json:"accounts,omitempty"`
	Tag      string   `json:"tag,omitempty"`
	All      bool     `json:"all,omitempty"`
}

// MaxBulkList bounds Selection.Accounts; a larger change selects by tag or
// all.
const MaxBulkList = 10_000

// BulkResult says what a bulk change did (or, dry, would do).
type BulkResult struct {
	// Matched is how many accounts the selection names.
	Matched int `json:"matched"`
	// Changed are the accounts the patch changes, sorted; the rest
	// already were as the patch says.
	Changed []string `json:"changed"`
	// Unchanged counts the matched accounts the patch leaves as they were.
	Unchanged int  `json:"unchanged"`
	DryRun    bool `json:"dry_run,omitempty"`
}

// bulkAudit is a bulk change's audit "after": what was asked, not every
// account (their previous documents are in "before", enough to undo it).
type bulkAudit struct {
	Selection Selection       `json:"selection"`
	Patch     json.RawMessage `json:"patch"`
	Changed   []string        `json:"changed"`
}

func (sel Selection) check() error {
	n := 0
	if len(sel.Accounts) > 0 {
		n++
	}
	if sel.Tag != "" {
		n++
	}
	if sel.All {
		n++
	}
	if n != 1 {
		return &InvalidError{Err: &policy.FieldError{Field: "select", Msg: `name exactly one of "accounts" (a list of names), "tag" or "all": true`}}
	}
	if len(sel.Accounts) > MaxBulkList {
		return &InvalidError{Err: &policy.FieldError{Field: "select.accounts", Msg: fmt.Sprintf("%d names, more than %d; select by tag or all", len(sel.Accounts), MaxBulkList)}}
	}
	return nil
}

// BulkPatch applies one JSON merge patch to every account the selection
// names, in one audited transaction: every result is validated first, and
// one that does not validate refuses the whole change, naming its account
// and field; otherwise one commit to the store and one snapshot swap apply
// them all, so a query sees all of the change or none. A listed name that
// is not an account is a 404 and nothing changes. dry validates and
// reports without writing. Audited as accounts.bulk_patch: before holds the
// changed accounts' previous documents, after the selection, the patch and
// the names changed.
func (s *Service) BulkPatch(who Actor, sel Selection, patch []byte, dry bool) (BulkResult, error) {
	if err := sel.check(); err != nil {
		return BulkResult{}, err
	}
	// The patch is checked once, before any account, so its own errors are
	// reported as such rather than as the first account's.
	if _, err := policy.MergePatch([]byte(`{}`), patch); err != nil {
		return BulkResult{}, &InvalidError{Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return BulkResult{}, err
	}
	var names []string
	switch {
	case len(sel.Accounts) > 0:
		seen := make(map[string]bool, len(sel.Accounts))
		for _, n := range sel.Accounts {
			if _, ok := s.set.Accounts[n]; !ok {
				return BulkResult{}, &NotFoundError{What: fmt.Sprintf("account %q (select.accounts; nothing was changed)", n)}
			}
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	default:
		for n, a := range s.set.Accounts {
			if sel.All || a.HasTag(sel.Tag) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return BulkResult{}, &NotFoundError{What: fmt.Sprintf("account tagged %q", sel.Tag)}
		}
	}
	sort.Strings(names)
	res := BulkResult{Matched: len(names), Changed: []string{}, DryRun: dry}
	accounts := make(map[string]*policy.Account)
	before := make(map[string]policy.Account)
	for _, n := range names {
		old := s.set.Accounts[n]
		oldJSON := mustJSON(old)
		merged, err := policy.MergePatch(oldJSON, patch)
		if err != nil {
			return BulkResult{}, &InvalidError{Err: err}
		}
		var a policy.Account
		if err := policy.DecodeStrict(merged, &a); err != nil {
			return BulkResult{}, bulkInvalid(n, err)
		}
		if err := a.CheckSize(); err != nil {
			return BulkResult{}, bulkInvalid(n, err)
		}
		if err := a.Validate(); err != nil {
			return BulkResult{}, bulkInvalid(n, err)
		}
		if bytes.Equal(mustJSON(a), oldJSON) {
			res.Unchanged++
			continue
		}
		accounts[n] = &a
		before[n] = old
		res.Changed = append(res.Changed, n)
	}
	if dry || len(accounts) == 0 {
		return res, nil
	}
	what := "all"
	switch {
	case sel.Tag != "":
		what = "tag:" + sel.Tag
	case len(sel.Accounts) > 0:
		what = "list"
	}
	ch := &store.Change{
		Audit: store.AuditEntry{Action: "accounts.bulk_patch", Object: "accounts (" + what + ")",
			Before: mustJSON(before), After: mustJSON(bulkAudit{Selection: sel, Patch: json.RawMessage(patch), Changed: res.Changed})},
		Accounts: accounts,
	}
	if err := s.apply(nil, ch, who, nil); err != nil {
		return BulkResult{}, err
	}
	return res, nil
}

// bulkInvalid names the account whose result does not validate; the field
// stays the FieldError's own.
func bulkInvalid(name string, err error) error {
	return &InvalidError{Err: fmt.Errorf("account %q: %w (nothing was changed)", name, err)}
}

// AccountsTagged lists the accounts carrying tag as Accounts lists all:
// sorted by name, those after `after`, at most limit. total is how many
// carry the tag.
func (s *Service) AccountsTagged(tag, after string, limit int) (list []NamedAccount, total int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, 0, err
	}
	var names []string
	for n, a := range s.set.Accounts {
		if a.HasTag(tag) {
			total++
			if n > after {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	list = make([]NamedAccount, len(names))
	for i, n := range names {
		list[i] = NamedAccount{Name: n, Account: s.set.Accounts[n].Clone()}
	}
	return list, total, nil
}
