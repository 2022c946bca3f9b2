package policy

import "iter"

// Template is a named set of account settings that many accounts share
// (PortaBilling's "product": "retail-eu", "wholesale-us"). An account that
// names it in "template" inherits every setting it leaves out from the
// template, and the template's from the operator default, so the layers of
// an account on a template are, from the most general:
//
//	operator default → template → account → subaccount
//
// and each layer's field, when set, replaces the one below it whole:
// scalars, caps and lists alike. In particular countries (default and
// except together), allow_prefixes and block_prefixes replace, never merge:
// an account that sets countries has exactly its own country rule, as a
// subaccount that sets countries already has (an additive merge would make
// a template's deny list impossible to relax and an account's impossible
// to read alone). origin is the one object merged field by field, as it is
// between account and subaccount (MergeOrigin); velocity is replaced whole
// and, as always, not inherited by subaccounts. The operator's disabled
// countries and blocked prefixes sit above all of it: no template can
// enable what the operator disabled.
//
// Changing a template changes every account on it at once: one write, one
// audit entry, one snapshot.
type Template struct {
	// Description is free text for people (what the product is).
	Description string `json:"description,omitempty"`
	Policy
	// UnknownSubaccounts, AccountMaxChannels and AccountMaxCPS are the
	// account-only settings of Account, inherited the same way: an
	// account's unknown_subaccounts when it sets one ("account" too), its
	// account-wide caps when not 0. (0 is "no cap" and "not set" alike, so
	// an account cannot lift a template's account-wide cap to none; it can
	// set MaxCapValue.)
	UnknownSubaccounts string `json:"unknown_subaccounts,omitempty"`
	AccountMaxChannels int    `json:"account_max_channels,omitempty"`
	AccountMaxCPS      int    `json:"account_max_cps,omitempty"`
}

// Limits of templates: how many an operator may have, and the length of
// a description.
const (
	MaxTemplates      = 10_000
	MaxDescriptionLen = 256
)

// Validate checks a template and canonicalises it in place, like an
// account's own layer (field names are the template's: "countries.except[1]").
func (t *Template) Validate() error {
	if len(t.Description) > MaxDescriptionLen {
		return fieldErr("description", "longer than %d bytes", MaxDescriptionLen)
	}
	if err := t.Policy.Validate(""); err != nil {
		return err
	}
	return validateAccountWide(t.UnknownSubaccounts, t.AccountMaxChannels, t.AccountMaxCPS)
}

// validateAccountWide checks the settings only an account (or a template)
// has.
func validateAccountWide(unknownSubs string, maxChannels, maxCPS int) error {
	switch unknownSubs {
	case "", UnknownSubAccount, UnknownSubReject:
	default:
		return fieldErr("unknown_subaccounts", "%q is not \"account\" or \"reject\"", unknownSubs)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"account_max_channels", maxChannels}, {"account_max_cps", maxCPS}} {
		if c.v < 0 || c.v > MaxCapValue {
			return fieldErr(c.name, "%d is outside 0..%d (0 = no cap)", c.v, MaxCapValue)
		}
	}
	return nil
}

// Clone returns a deep copy of the template.
func (t Template) Clone() Template {
	out := t
	out.Policy = t.Policy.Clone()
	return out
}

// CheckTemplate refuses an account naming a template the set does not
// have, naming the field.
func (s *Set) CheckTemplate(a *Account) error {
	if a.Template == "" {
		return nil
	}
	if _, ok := s.Templates[a.Template]; !ok {
		return fieldErr("template", "no template %q (GET /v1/templates lists them)", a.Template)
	}
	return nil
}

// AccountWide resolves the account-only settings of a over its template:
// unknown_subaccounts when a sets it, each account-wide cap when a's is
// not 0.
func AccountWide(t *Template, a *Account) (unknownSubs string, maxChannels, maxCPS int) {
	unknownSubs, maxChannels, maxCPS = a.UnknownSubaccounts, a.AccountMaxChannels, a.AccountMaxCPS
	if t == nil {
		return
	}
	if unknownSubs == "" {
		unknownSubs = t.UnknownSubaccounts
	}
	if maxChannels == 0 {
		maxChannels = t.AccountMaxChannels
	}
	if maxCPS == 0 {
		maxCPS = t.AccountMaxCPS
	}
	return
}

// AccountsOn yields the accounts of the set that name template name, in
// no particular order, without copying the set: the accounts a change of
// the template changes.
func (s *Set) AccountsOn(name string) iter.Seq2[string, Account] {
	return func(yield func(string, Account) bool) {
		for n, a := range s.Accounts {
			if a.Template == name && !yield(n, a) {
				return
			}
		}
	}
}
