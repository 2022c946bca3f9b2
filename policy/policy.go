// Package policy holds the data an operator edits (accounts, subaccounts,
// operator settings, the high-risk list) and its validation. It knows nothing
// of numbering plans, transports or storage, so every other room can depend on
// it and it can be validated anywhere (admin API, store load, CLI) the same way.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Country permission defaults. An account either allows every country except
// a list, or denies every country except a list (Plivo's two geo-permission
// modes).
const (
	Allow = "allow"
	Deny  = "deny"
)

// High-risk modes: high-risk destinations are blocked unless an account opts in.
const (
	HighRiskBlock = "block"
	HighRiskAllow = "allow"
)

// Unknown-account modes for the operator: serve an account tollgate has never
// heard of with the default policy, or reject its calls outright.
const (
	UnknownDefault = "default"
	UnknownReject  = "reject"
)

// Unknown-subaccount modes of an account: a query naming a subaccount the
// account does not have is decided under the account's own policy
// ("account", the default) or refused as unknown_subaccount ("reject"), so
// invented names cannot dodge a subaccount's lock or caps.
const (
	UnknownSubAccount = "account"
	UnknownSubReject  = "reject"
)

// CountryRule is an account's geo permission: Default applies to every
// destination not named in Except. Except entries are ISO 3166 alpha-2 codes,
// "001" for non-geographic international networks, or selectors
// ("continent:NA", "region:caribbean", "nanp") so that "North America only" is
// one entry.
type CountryRule struct {
	Default string   `json:"default"`
	Except  []string `json:"except"`
}

// Policy is one layer of an account's settings. Every field is optional: a
// field left out (nil) is inherited from the layer above (subaccount from
// account, account from the operator default). Pointers keep "not set" apart
// from "set to the zero value" (max_channels 0 means no cap, an empty
// allow_prefixes list clears the inherited one).
type Policy struct {
	HomeCountry   *string      `json:"home_country,omitempty"`
	Countries     *CountryRule `json:"countries,omitempty"`
	HighRisk      *string      `json:"high_risk,omitempty"`
	AllowPrefixes *[]string    `json:"allow_prefixes,omitempty"`
	BlockPrefixes *[]string    `json:"block_prefixes,omitempty"`
	MaxChannels   *int         `json:"max_channels,omitempty"`
	MaxCPS        *int         `json:"max_cps,omitempty"`
	// TimeZone is the IANA zone of the account's day: the hours and days
	// of velocity rules and the midnight the daily spend resets at (default
	// UTC).
	TimeZone *string `json:"time_zone,omitempty"`
	// MaxDestinationRate refuses destinations whose rate deck price is
	// above it, in the deck's currency per minute (rate_exceeded).
	MaxDestinationRate *float64 `json:"max_destination_rate,omitempty"`
	// Velocity holds the scope's velocity rules and daily spend limit.
	// Unlike every other field, a subaccount does not inherit it: the
	// account's velocity counts the subaccounts' calls already, and a
	// subaccount's own velocity counts only its calls.
	Velocity *Velocity `json:"velocity,omitempty"`
	// Origin holds the origin checks' settings (Geo-IP zones, home
	// location, location changes, screening, trusted sources); each of its
	// fields is inherited separately.
	Origin *Origin `json:"origin,omitempty"`
}

// Account is a customer's policy with its subaccounts' overrides.
type Account struct {
	// Template names the operator's template (a "product") whose settings
	// the account inherits under its own: see Template.
	Template string `json:"template,omitempty"`
	Policy
	// UnknownSubaccounts is UnknownSubAccount ("" too) or UnknownSubReject.
	UnknownSubaccounts string `json:"unknown_subaccounts,omitempty"`
	// AccountMaxChannels and AccountMaxCPS cap the account and all its
	// subaccounts together (0 = none): max_channels and max_cps cap each
	// scope on its own, so without these every subaccount name a trunk
	// sends would get a cap of its own.
	AccountMaxChannels int               `json:"account_max_channels,omitempty"`
	AccountMaxCPS      int               `json:"account_max_cps,omitempty"`
	Subaccounts        map[string]Policy `json:"subaccounts,omitempty"`
	// Tags group accounts for people and tools (a bulk change to every
	// account tagged "wholesale", a console filter); no decision reads them.
	Tags []string `json:"tags,omitempty"`
}

// MaxTags is the most tags an account may have.
const MaxTags = 32

// DisabledCountry records why the operator switched a destination off for
// everyone; no account setting can turn it back on.
type DisabledCountry struct {
	Reason string `json:"reason"`
}

// BlockedPrefix is an operator-wide destination block (a number range seen in
// fraud), stronger than any account allow prefix.
type BlockedPrefix struct {
	Prefix string `json:"prefix"`
	Reason string `json:"reason"`
}

// Operator holds the settings above every account.
type Operator struct {
	// DisabledCountries maps an ISO code (or "001") to why it was disabled.
	DisabledCountries map[string]DisabledCountry `json:"disabled_countries,omitempty"`
	// BlockedPrefixes are E.164 prefixes no account can call.
	BlockedPrefixes []BlockedPrefix `json:"blocked_prefixes,omitempty"`
	// UnknownAccounts says what an account tollgate does not know gets:
	// the default policy ("default", the default) or a rejection ("reject").
	UnknownAccounts string `json:"unknown_accounts,omitempty"`
	// Default is the policy of unknown accounts and the base every account
	// inherits from. Fields left out take the built-in defaults: all
	// countries allowed, high-risk blocked, no caps.
	Default Policy `json:"default"`
	// GeoProfiles are the geo profiles accounts name in origin.geo_profile.
	GeoProfiles map[string]GeoProfile `json:"geo_profiles,omitempty"`
	// SourceBlocklist lists the sources no call may come from.
	SourceBlocklist *SourceBlocklist `json:"source_blocklist,omitempty"`
	// RangeVelocity watches number ranges across accounts; nil is off.
	RangeVelocity *RangeVelocity `json:"range_velocity,omitempty"`
}

// HighRiskEntry is one line of the high-risk prefix list: an E.164 prefix,
// the country it belongs to, why it is risky and where that fact comes from.
type HighRiskEntry struct {
	Prefix   string `json:"prefix"`
	Country  string `json:"country"`
	Category string `json:"category"`
	Source   string `json:"source"`
}

// Set is everything a snapshot is compiled from.
type Set struct {
	Operator Operator
	Accounts map[string]Account
	// Templates are the account templates accounts name in "template".
	// The map is replaced, never edited, once in a set.
	Templates map[string]Template
	HighRisk  []HighRiskEntry
	// Rates is the rate deck in force, nil when none is loaded.
	Rates *RateDeck
	// Quarantined are accounts whose stored records were found damaged at
	// start (tollgate -quarantine-damaged), with what was damaged: every
	// call of theirs is refused (account_quarantined) until the account is
	// written again. Never mutated once in a set, only replaced.
	Quarantined map[string]string
}

// Limits on identifiers and lists, so a single request cannot make the
// snapshot arbitrarily large or a name unprintable in a SIP header.
const (
	MaxNameLen  = 64
	MaxPrefixes = 10000
	// MaxSubaccounts bounds an account's subaccounts and
	// MaxAccountPrefixes its prefix lists all together (300 subaccounts of
	// 10,000 prefixes each took the daemon to 1.9 GB).
	MaxSubaccounts     = 1000
	MaxAccountPrefixes = 100_000
	MaxExcept          = 300
	MaxReasonLen       = 256
	MaxCapValue        = 1_000_000
	MaxPrefixLen       = 15 // E.164 numbers have at most 15 digits
	builtinDefault     = Allow
)

// FieldError names the field that made a document invalid, so an operator
// can fix it without guessing.
type FieldError struct {
	Field string
	Msg   string
}

// Error reads "field: what is wrong", the form the admin API's 400 answers
// and the reload log lines carry; a problem with a document as a whole (no
// field) is just what is wrong.
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ValidName reports whether s can name an account or subaccount: 1-64 bytes of
// letters, digits and ._-@+: (what SIP user parts and trunk tags use), so it is
// safe in URLs, logs and dialog profile names; "." and ".." are refused, since
// a URL path cannot carry them as a segment. It is the one naming rule of the
// admin API, tollgate import, the query decoders and the loaded data file.
func ValidName(s string) error {
	switch bad, i := nameFault(s); bad {
	case nameEmpty:
		return errors.New("must not be empty")
	case nameLong:
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	case nameChar:
		return fmt.Errorf("character %s not allowed (letters, digits and ._-@+: only)", quoteChar(s, i))
	case nameDots:
		return errors.New(`"." and ".." cannot be names (a URL path cannot hold them)`)
	}
	return nil
}

// IsValidName is ValidName without the message, for the query path: it
// never allocates.
func IsValidName(s string) bool {
	bad, _ := nameFault(s)
	return bad == nameOK
}

const (
	nameOK = iota
	nameEmpty
	nameLong
	nameChar
	nameDots
)

func nameFault(s string) (int, int) {
	switch {
	case s == "":
		return nameEmpty, 0
	case len(s) > MaxNameLen:
		return nameLong, 0
	case s == "." || s == "..":
		return nameDots, 0
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == '@', c == '+', c == ':':
		default:
			return nameChar, i
		}
	}
	return nameOK, 0
}

// quoteChar quotes the character starting at s[i] for a message: the whole
// UTF-8 character ('é'), not its first byte taken as Latin-1 ('Ã'), which
// is what quoting the byte did; a byte that starts no valid character is
// shown in hex.
func quoteChar(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return strconv.QuoteRune(r)
}

// NormalizePrefix turns an operator-written prefix ("+44 20", "0044-20",
// "4420") into canonical E.164 digits with a leading '+'. It refuses anything
// that is not a plausible E.164 prefix.
func NormalizePrefix(p string) (string, error) {
	s := strings.TrimSpace(p)
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "00"):
		s = s[2:]
	}
	var b strings.Builder
	b.WriteByte('+')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", fmt.Errorf("prefix %q: character %s is not a digit", p, quoteChar(s, i))
		}
	}
	out := b.String()
	switch {
	case len(out) == 1:
		return "", fmt.Errorf("prefix %q has no digits", p)
	case len(out)-1 > MaxPrefixLen:
		return "", fmt.Errorf("prefix %q is longer than %d digits", p, MaxPrefixLen)
	case out[1] == '0':
		return "", fmt.Errorf("prefix %q: no country calling code starts with 0", p)
	}
	return out, nil
}

// Validate checks one policy layer and canonicalises it in place (upper-case
// country codes, canonical prefixes, sorted de-duplicated lists), so equal
// policies compare and store equal. field prefixes error field names
// ("subaccounts.sales.countries.except[2]").
func (p *Policy) Validate(field string) error {
	if p.HomeCountry != nil {
		cc := strings.ToUpper(strings.TrimSpace(*p.HomeCountry))
		if _, ok := LookupCountry(cc); !ok || cc == NonGeographic {
			return fieldErr(field+"home_country", "unknown country code %q", *p.HomeCountry)
		}
		if cc != *p.HomeCountry {
			p.HomeCountry = &cc
		}
	}
	if p.Countries != nil {
		c := p.Countries
		switch c.Default {
		case Allow, Deny:
		case "":
			return fieldErr(field+"countries.default", "required: \"allow\" or \"deny\"")
		default:
			return fieldErr(field+"countries.default", "%q is not \"allow\" or \"deny\"", c.Default)
		}
		if len(c.Except) > MaxExcept {
			return fieldErr(field+"countries.except", "more than %d entries", MaxExcept)
		}
		out := make([]string, 0, len(c.Except))
		for i, e := range c.Except {
			canon, err := CanonicalSelector(e)
			if err != nil {
				return fieldErr(fmt.Sprintf("%scountries.except[%d]", field, i), "%v", err)
			}
			out = append(out, canon)
		}
		// A list already canonical (every stored one: Validate ran before
		// it was stored) is kept: replacing it with an equal copy would
		// write to the account the caller shares (the service's set,
		// which a compile validates) and keep the copy alive beside the
		// original, 4-6 MB for 100,000 accounts on every start.
		if out = sortedUnique(out); c.Except == nil || !slices.Equal(out, c.Except) {
			c.Except = out
		}
	}
	if p.HighRisk != nil {
		switch *p.HighRisk {
		case HighRiskBlock, HighRiskAllow:
		default:
			return fieldErr(field+"high_risk", "%q is not \"block\" or \"allow\"", *p.HighRisk)
		}
	}
	for _, l := range []struct {
		name string
		list *[]string
	}{{"allow_prefixes", p.AllowPrefixes}, {"block_prefixes", p.BlockPrefixes}} {
		if l.list == nil {
			continue
		}
		if len(*l.list) > MaxPrefixes {
			return fieldErr(field+l.name, "more than %d prefixes", MaxPrefixes)
		}
		out := make([]string, 0, len(*l.list))
		for i, s := range *l.list {
			n, err := NormalizePrefix(s)
			if err != nil {
				return fieldErr(fmt.Sprintf("%s%s[%d]", field, l.name, i), "%v", err)
			}
			out = append(out, n)
		}
		if out = sortedUnique(out); *l.list == nil || !slices.Equal(out, *l.list) {
			*l.list = out
		}
	}
	for _, c := range []struct {
		name string
		v    *int
	}{{"max_channels", p.MaxChannels}, {"max_cps", p.MaxCPS}} {
		if c.v != nil && (*c.v < 0 || *c.v > MaxCapValue) {
			return fieldErr(field+c.name, "%d is outside 0..%d (0 = no cap)", *c.v, MaxCapValue)
		}
	}
	if p.TimeZone != nil {
		if _, err := ValidTimeZone(*p.TimeZone); err != nil {
			return fieldErr(field+"time_zone", "%v", err)
		}
	}
	if p.MaxDestinationRate != nil {
		if err := checkMoney(*p.MaxDestinationRate, MaxRate); err != nil {
			return fieldErr(field+"max_destination_rate", "%v", err)
		}
	}
	if p.Velocity != nil {
		if err := p.Velocity.Validate(field + "velocity."); err != nil {
			return err
		}
	}
	if p.Origin != nil {
		if err := p.Origin.Validate(field + "origin."); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks an account and all its subaccounts.
func (a *Account) Validate() error {
	if err := a.Policy.Validate(""); err != nil {
		return err
	}
	if a.Template != "" {
		if err := ValidName(a.Template); err != nil {
			return fieldErr("template", "bad template name: %v", err)
		}
	}
	if err := validateAccountWide(a.UnknownSubaccounts, a.AccountMaxChannels, a.AccountMaxCPS); err != nil {
		return err
	}
	if err := a.validateTags(); err != nil {
		return err
	}
	names := make([]string, 0, len(a.Subaccounts))
	for name := range a.Subaccounts {
		names = append(names, name)
	}
	sort.Strings(names) // the same bad document always reports the same field
	for _, name := range names {
		sub := a.Subaccounts[name]
		if err := ValidName(name); err != nil {
			return fieldErr(fmt.Sprintf("subaccounts.%q", name), "bad subaccount name: %v", err)
		}
		if err := sub.Validate("subaccounts." + name + "."); err != nil {
			return err
		}
		a.Subaccounts[name] = sub
	}
	return nil
}

// CheckSize refuses an account over MaxSubaccounts or MaxAccountPrefixes
// (prefixes as given, before Validate removes duplicates; it only counts, so
// it runs first).
// Writes (the admin API, tollgate import) call it; loading a stored
// account does not, so a data file written before these limits still
// starts.
func (a *Account) CheckSize() error {
	if len(a.Subaccounts) > MaxSubaccounts {
		return fieldErr("subaccounts", "%d subaccounts, more than the %d an account may have", len(a.Subaccounts), MaxSubaccounts)
	}
	n := a.Policy.prefixCount()
	for _, p := range a.Subaccounts {
		n += p.prefixCount()
	}
	if n > MaxAccountPrefixes {
		return fieldErr("subaccounts", "%d allow and block prefixes over the account and its subaccounts, more than the %d allowed", n, MaxAccountPrefixes)
	}
	return nil
}

func (p *Policy) prefixCount() int {
	n := 0
	if p.AllowPrefixes != nil {
		n += len(*p.AllowPrefixes)
	}
	if p.BlockPrefixes != nil {
		n += len(*p.BlockPrefixes)
	}
	return n
}

// Validate checks the operator settings.
func (o *Operator) Validate() error {
	if len(o.DisabledCountries) > 0 {
		canon := make(map[string]DisabledCountry, len(o.DisabledCountries))
		for cc, d := range o.DisabledCountries {
			up := strings.ToUpper(strings.TrimSpace(cc))
			if _, ok := LookupCountry(up); !ok {
				return fieldErr(fmt.Sprintf("disabled_countries.%q", cc), "unknown country code")
			}
			if _, dup := canon[up]; dup {
				return fieldErr("disabled_countries."+up, "listed twice (codes are case-insensitive)")
			}
			if len(d.Reason) > MaxReasonLen {
				return fieldErr("disabled_countries."+up+".reason", "longer than %d bytes", MaxReasonLen)
			}
			canon[up] = d
		}
		o.DisabledCountries = canon
	}
	seen := make(map[string]bool, len(o.BlockedPrefixes))
	for i := range o.BlockedPrefixes {
		bp := &o.BlockedPrefixes[i]
		n, err := NormalizePrefix(bp.Prefix)
		if err != nil {
			return fieldErr(fmt.Sprintf("blocked_prefixes[%d].prefix", i), "%v", err)
		}
		if seen[n] {
			return fieldErr(fmt.Sprintf("blocked_prefixes[%d].prefix", i), "%s listed twice", n)
		}
		seen[n] = true
		bp.Prefix = n
		if len(bp.Reason) > MaxReasonLen {
			return fieldErr(fmt.Sprintf("blocked_prefixes[%d].reason", i), "longer than %d bytes", MaxReasonLen)
		}
	}
	switch o.UnknownAccounts {
	case "", UnknownDefault, UnknownReject:
	default:
		return fieldErr("unknown_accounts", "%q is not \"default\" or \"reject\"", o.UnknownAccounts)
	}
	if len(o.GeoProfiles) > MaxGeoProfiles {
		return fieldErr("geo_profiles", "%d profiles, more than the %d allowed", len(o.GeoProfiles), MaxGeoProfiles)
	}
	names := make([]string, 0, len(o.GeoProfiles))
	for n := range o.GeoProfiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := ValidName(n); err != nil {
			return fieldErr(fmt.Sprintf("geo_profiles.%q", n), "bad profile name: %v", err)
		}
		g := o.GeoProfiles[n]
		if err := g.Validate("geo_profiles." + n + "."); err != nil {
			return err
		}
		o.GeoProfiles[n] = g
	}
	if o.SourceBlocklist != nil {
		if err := o.SourceBlocklist.Validate("source_blocklist."); err != nil {
			return err
		}
	}
	if err := o.RangeVelocity.Validate("range_velocity."); err != nil {
		return err
	}
	if err := o.Default.Validate("default."); err != nil {
		return err
	}
	return o.CheckProfile("default.", &o.Default)
}

// CheckProfile checks that the geo profile a policy layer names is one of
// the operator's (a layer alone cannot know).
func (o *Operator) CheckProfile(field string, p *Policy) error {
	if p.Origin == nil || p.Origin.GeoProfile == nil || *p.Origin.GeoProfile == "" {
		return nil
	}
	if _, ok := o.GeoProfiles[*p.Origin.GeoProfile]; !ok {
		return fieldErr(field+"origin.geo_profile", "no geo profile %q in the operator's geo_profiles", *p.Origin.GeoProfile)
	}
	return nil
}

// Effective is a fully resolved policy: every layer merged, nothing left to
// inherit. The matcher compiles one per account and subaccount.
type Effective struct {
	HomeCountry   string
	Countries     CountryRule
	HighRisk      string
	AllowPrefixes []string
	BlockPrefixes []string
	MaxChannels   int
	MaxCPS        int
	TimeZone      string // "" is UTC
	// MaxDestinationRate in millionths of the deck's currency per minute;
	// -1 when not set.
	MaxDestinationRate int64
	Velocity           *Velocity // nil: no velocity rules
	Origin             OriginEffective
}

// BuiltinDefault is what an operator gets before setting anything: all
// countries allowed, high-risk destinations blocked, no caps, no home country.
func BuiltinDefault() Effective {
	return Effective{Countries: CountryRule{Default: builtinDefault}, HighRisk: HighRiskBlock, MaxDestinationRate: -1}
}

// Merge applies layer over base: each field the layer sets replaces base's.
func Merge(base Effective, layer Policy) Effective {
	out := base
	if layer.HomeCountry != nil {
		out.HomeCountry = *layer.HomeCountry
	}
	if layer.Countries != nil {
		out.Countries = *layer.Countries
	}
	if layer.HighRisk != nil {
		out.HighRisk = *layer.HighRisk
	}
	if layer.AllowPrefixes != nil {
		out.AllowPrefixes = *layer.AllowPrefixes
	}
	if layer.BlockPrefixes != nil {
		out.BlockPrefixes = *layer.BlockPrefixes
	}
	if layer.MaxChannels != nil {
		out.MaxChannels = *layer.MaxChannels
	}
	if layer.MaxCPS != nil {
		out.MaxCPS = *layer.MaxCPS
	}
	if layer.TimeZone != nil {
		out.TimeZone = *layer.TimeZone
	}
	if layer.MaxDestinationRate != nil {
		out.MaxDestinationRate = Micro(*layer.MaxDestinationRate)
	}
	if layer.Velocity != nil {
		out.Velocity = layer.Velocity
	}
	out.Origin = MergeOrigin(out.Origin, layer.Origin)
	return out
}

// MergeSubaccount applies a subaccount's layer over its account's effective
// policy: like Merge, except that velocity is never inherited (see
// Policy.Velocity).
func MergeSubaccount(account Effective, sub Policy) Effective {
	account.Velocity = nil
	return Merge(account, sub)
}

func sortedUnique(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// validateTags checks the tags (names, at most MaxTags) and sorts them, so
// the same set is stored the same way; a repeated tag is dropped.
func (a *Account) validateTags() error {
	if len(a.Tags) > MaxTags {
		return fieldErr("tags", "%d tags, more than the %d an account may have", len(a.Tags), MaxTags)
	}
	for i, t := range a.Tags {
		if err := ValidName(t); err != nil {
			return fieldErr(fmt.Sprintf("tags[%d]", i), "bad tag %q: %v", t, err)
		}
	}
	if len(a.Tags) == 0 {
		a.Tags = nil
		return nil
	}
	sort.Strings(a.Tags)
	a.Tags = slices.Compact(a.Tags)
	return nil
}

// HasTag reports whether the account carries the tag.
func (a *Account) HasTag(tag string) bool {
	return slices.Contains(a.Tags, tag)
}
