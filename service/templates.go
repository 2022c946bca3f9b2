package service

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// NamedTemplate is a template with its name and how many accounts name
// it, for listings.
type NamedTemplate struct {
	Name     string
	Accounts int
	policy.Template
}

// Templates lists every template sorted by name, each with the number of
// accounts on it.
func (s *Service) Templates() ([]NamedTemplate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, err
	}
	counts := make(map[string]int, len(s.set.Templates))
	for _, a := range s.set.Accounts {
		if a.Template != "" {
			counts[a.Template]++
		}
	}
	out := make([]NamedTemplate, 0, len(s.set.Templates))
	for name, t := range s.set.Templates {
		out = append(out, NamedTemplate{Name: name, Accounts: counts[name], Template: t.Clone()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Template returns one template and the number of accounts on it.
func (s *Service) Template(name string) (NamedTemplate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return NamedTemplate{}, err
	}
	t, ok := s.set.Templates[name]
	if !ok {
		return NamedTemplate{}, &NotFoundError{What: fmt.Sprintf("template %q", name)}
	}
	return NamedTemplate{Name: name, Accounts: s.countOn(name), Template: t.Clone()}, nil
}

// TemplateAccounts lists the names of the accounts on a template, sorted:
// those after `after`, at most limit (all if limit <= 0). total is how
// many accounts name it.
func (s *Service) TemplateAccounts(name, after string, limit int) (names []string, total int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return nil, 0, err
	}
	if _, ok := s.set.Templates[name]; !ok {
		return nil, 0, &NotFoundError{What: fmt.Sprintf("template %q", name)}
	}
	for n := range s.set.AccountsOn(name) {
		total++
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	if names == nil {
		names = []string{}
	}
	return names, total, nil
}

// PutTemplate creates or replaces a template. Every account on it changes
// with it, in the same write: one audit entry, one new snapshot in which
// all of them decide under the new settings. It returns the template as
// stored and the number of accounts that changed.
func (s *Service) PutTemplate(who Actor, name string, t policy.Template) (NamedTemplate, error) {
	if err := policy.ValidName(name); err != nil {
		return NamedTemplate{}, &InvalidError{Err: &policy.FieldError{Field: "template", Msg: err.Error()}}
	}
	if err := t.Validate(); err != nil {
		return NamedTemplate{}, &InvalidError{Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return NamedTemplate{}, err
	}
	if err := s.set.Operator.CheckProfile("", &t.Policy); err != nil {
		return NamedTemplate{}, &InvalidError{Err: err}
	}
	old, existed := s.set.Templates[name]
	if !existed && len(s.set.Templates) >= policy.MaxTemplates {
		return NamedTemplate{}, &InvalidError{Err: &policy.FieldError{Field: "template",
			Msg: fmt.Sprintf("%d templates already, the most allowed", policy.MaxTemplates)}}
	}
	ch := &store.Change{
		Audit:     store.AuditEntry{Action: "template.put", Object: "templates/" + name, After: mustJSON(t)},
		Templates: map[string]*policy.Template{name: &t},
	}
	if existed {
		ch.Audit.Before = mustJSON(old)
	}
	n := s.countOn(name)
	if err := s.apply(nil, ch, who, nil); err != nil {
		return NamedTemplate{}, err
	}
	return NamedTemplate{Name: name, Accounts: n, Template: t.Clone()}, nil
}

// DeleteTemplate removes a template no account names; while accounts
// name it, it is refused (409) with how many and which.
func (s *Service) DeleteTemplate(who Actor, name string) (policy.Template, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loaded(); err != nil {
		return policy.Template{}, err
	}
	old, ok := s.set.Templates[name]
	if !ok {
		return old, &NotFoundError{What: fmt.Sprintf("template %q", name)}
	}
	var names []string
	for n := range s.set.AccountsOn(name) {
		names = append(names, n)
	}
	if len(names) > 0 {
		sort.Strings(names)
		count := len(names)
		if count > 3 {
			names = append(names[:3], "…")
		}
		return old, &ConflictError{Msg: fmt.Sprintf("template %q is in use by %d account(s) (%s): move them to another template, or none, first",
			name, count, strings.Join(names, ", "))}
	}
	ch := &store.Change{
		Audit:     store.AuditEntry{Action: "template.delete", Object: "templates/" + name, Before: mustJSON(old)},
		Templates: map[string]*policy.Template{name: nil},
	}
	return old.Clone(), s.apply(nil, ch, who, nil)
}

// countOn counts the accounts of the set in force that name template
// name. Called with s.mu held.
func (s *Service) countOn(name string) int {
	n := 0
	for range s.set.AccountsOn(name) {
		n++
	}
	return n
}

// checkTemplate refuses an account naming a template there is none of.
// Called with s.mu held.
func (s *Service) checkTemplate(a *policy.Account) error {
	if err := s.set.CheckTemplate(a); err != nil {
		return &InvalidError{Err: err}
	}
	return nil
}

// applyTemplates compiles the template writes of ch into snap: each
// template with every account on it (WithTemplate), puts before the
// accounts of ch are compiled (an account may move onto a new template)
// and deletes after (it may move off one), as when is "put" or "delete".
// It returns the accounts whose effective settings changed. Called with
// s.mu held, from apply.
func (s *Service) applyTemplates(snap *matcher.Snapshot, ch *store.Change, when string) (*matcher.Snapshot, []string, error) {
	names := make([]string, 0, len(ch.Templates))
	for n, t := range ch.Templates {
		if (t == nil) == (when == "delete") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var changed []string
	for _, n := range names {
		on := s.set.AccountsOn(n)
		if when == "delete" {
			// ch's accounts are compiled already, as written: those
			// still naming the template are refused by WithTemplate
			on = func(yield func(string, policy.Account) bool) {
				for a, acc := range s.set.AccountsOn(n) {
					if _, written := ch.Accounts[a]; !written && !yield(a, acc) {
						return
					}
				}
				for a, acc := range ch.Accounts {
					if acc != nil && acc.Template == n && !yield(a, *acc) {
						return
					}
				}
			}
		}
		var err error
		// Before ch's accounts are compiled in, snap's accounts over the
		// template are s.set's (see sources); after, some are ch's.
		var was map[string]policy.Account
		if when == "put" {
			was = s.set.Accounts
		}
		if snap, err = snap.WithTemplateAgainst(n, ch.Templates[n], on, was); err != nil {
			return nil, nil, &InvalidError{Err: err}
		}
		for a := range on {
			changed = append(changed, a)
		}
	}
	return snap, changed, nil
}

// commitTemplates brings s.set's templates in step with ch, once it is
// committed and swapped in: a new top level with a new templates map (the
// map of a set is replaced, never edited). Called with s.mu held.
func (s *Service) commitTemplates(ch *store.Change) {
	if len(ch.Templates) == 0 {
		return
	}
	next := s.topSet()
	next.Templates = maps.Clone(s.set.Templates)
	if next.Templates == nil {
		next.Templates = map[string]policy.Template{}
	}
	for n, t := range ch.Templates {
		if t == nil {
			delete(next.Templates, n)
		} else {
			next.Templates[n] = *t
		}
	}
	s.set = next
}
