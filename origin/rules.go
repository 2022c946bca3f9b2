package origin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/policy"
)

// Action is what origin checks make of a call.
type Action uint8

// Origin actions, from the mildest. Screen sends the call to the screening
// IVR.
const (
	Allow Action = iota
	Screen
	Reject
)

var actionNames = [...]string{Allow: "allow", Screen: "screen", Reject: "reject"}

// String is the action's name as zones and the rule text write it.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// ParseAction reads "allow", "screen" or "reject".
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if s == n {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want allow, screen or reject)", s)
}

// Mobility values: a stationary account calls from its home country only
// (elsewhere it is screened), a roaming one from anywhere its zones allow.
const (
	Stationary = "stationary"
	Roaming    = "roaming"
)

// Location-change granularity: a call from another country, or from another
// source IP, within the period is screened.
const (
	ChangeByCountry = "country"
	ChangeByIP      = "ip"
)

// Limits on origin settings.
const (
	MaxZones          = 64
	MaxProfiles       = 256
	MaxMinutes        = 7 * 24 * 60 // a week
	MaxFailedLimit    = 100
	DefaultPassMin    = 60
	DefaultMaxFailed  = 3
	MaxBlockedOrigins = 300
)

// ZoneSpec is one zone of a geo profile: the countries in it and what their
// calls get.
type ZoneSpec struct {
	Name string `json:"name"`
	// Action is "allow", "screen" or "reject".
	Action string `json:"action"`
	// Countries are ISO codes or selectors ("continent:AF",
	// "region:caribbean"), as policy.CanonicalSelector reads them.
	Countries []string `json:"countries"`
}

// ProfileSpec is a geo profile: the world's countries grouped into zones. A
// country in no zone gets Default; a call whose origin is unknown (no or
// no readable source address, no Geo-IP database, an address the database
// does not place) gets Unknown, "screen" when empty: an origin nobody knows
// must not pass a rule that asks where the caller is.
type ProfileSpec struct {
	Zones   []ZoneSpec `json:"zones"`
	Default string     `json:"default,omitempty"` // "allow" when empty
	Unknown string     `json:"unknown,omitempty"` // "screen" when empty
}

// OperatorSpec is the operator-wide origin configuration.
type OperatorSpec struct {
	// Profiles by name.
	Profiles map[string]ProfileSpec `json:"profiles,omitempty"`
	// BlockedSources are CIDRs no call may come from (scanner hotspots).
	BlockedSources []string `json:"blocked_sources,omitempty"`
	// BlockedOrigins are countries no call may come from.
	BlockedOrigins []string `json:"blocked_origins,omitempty"`
}

// AccountSpec is one account's (or subaccount's, fully merged) origin
// settings. The zero value switches every origin rule off except the
// operator's blocklist.
type AccountSpec struct {
	// Profile names a geo profile of the operator ("" for none).
	Profile string `json:"profile,omitempty"`
	// Mobility is Stationary or Roaming ("" is Roaming).
	Mobility string `json:"mobility,omitempty"`
	// Home is the home country set by the operator ("" for none).
	Home string `json:"home,omitempty"`
	// AssignHome lets the first call from a country the profile allows
	// become the home country when none is set.
	AssignHome bool `json:"assign_home,omitempty"`
	// ChangeMinutes is the allowed location-change period: a call from
	// another country (or IP, per ChangeBy) within this many minutes of
	// the last call is screened. 0 turns the check off.
	ChangeMinutes int `json:"location_change_minutes,omitempty"`
	// ChangeBy is ChangeByCountry ("" is country) or ChangeByIP.
	ChangeBy string `json:"location_change_by,omitempty"`
	// PassMinutes is how long a passed screening allows normal calling
	// (DefaultPassMin when 0).
	PassMinutes int `json:"screening_pass_minutes,omitempty"`
	// MaxFailed is how many failed screenings in a row quarantine the
	// account (DefaultMaxFailed when 0).
	MaxFailed int `json:"max_failed_screenings,omitempty"`
	// TrustedSources are the CIDRs the account calls from; when set, a
	// call from anywhere else is rejected.
	TrustedSources []string `json:"trusted_sources,omitempty"`
}

// FieldError names the setting that is wrong, so an operator can fix it
// without guessing.
type FieldError struct {
	Field string
	Msg   string
}

// Error is "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Profile is a compiled geo profile: an action per country, looked up by
// index without allocation. Immutable.
type Profile struct {
	Name    string
	action  [numCC]Action
	zone    [numCC]uint8 // 1 + zone index, 0 = in no zone
	zones   []string
	unknown Action
}

// Zone is the action and zone name ("" when in no zone) for origin country c.
func (p *Profile) lookup(c cc) (Action, string) {
	if c == 0 {
		return p.unknown, ""
	}
	z := p.zone[c]
	if z == 0 {
		return p.action[c], ""
	}
	return p.action[c], p.zones[z-1]
}

// Lookup is the action and zone for an ISO country code ("" or an unknown
// code gets the profile's Unknown action).
func (p *Profile) Lookup(country string) (Action, string) { return p.lookup(packCC(country)) }

// Operator is the compiled operator-wide origin configuration. Immutable.
type Operator struct {
	profiles       map[string]*Profile
	blocked        RangeSet
	blockedOrigins [numCC]bool
	nBlockedOrigin int
}

// Rules are one account's compiled origin rules, the operator's included.
// Immutable: a policy change compiles new Rules.
type Rules struct {
	op          *Operator
	profile     *Profile // nil: no profile
	stationary  bool
	home        cc
	assignHome  bool
	changeNanos int64
	changeByIP  bool
	passNanos   int64
	maxFailed   int
	trusted     RangeSet
	hasTrusted  bool
	spec        AccountSpec
	// countryRules: some rule of the account needs the origin country
	// (profile, stationary, home, home assignment, location change by
	// country); an unknown origin then gets unknownAct.
	countryRules bool
	unknownAct   Action
}

// Spec is the settings the rules were compiled from.
func (r *Rules) Spec() AccountSpec { return r.spec }

// PassMinutes is how long a passed screening allows normal calling.
func (r *Rules) PassMinutes() int { return int(r.passNanos / 60e9) }

// MaxFailed is how many failed screenings in a row quarantine the account.
func (r *Rules) MaxFailed() int { return r.maxFailed }

// PolicyHome is the home country the rules' policy sets ("" for none).
func (r *Rules) PolicyHome() string {
	if r == nil {
		return ""
	}
	return r.home.String()
}

// CountryRules reports whether a rule of the account needs the origin
// country, so that an unknown origin gets UnknownAction.
func (r *Rules) CountryRules() bool { return r != nil && r.countryRules }

// UnknownAction is what a call of an unknown origin gets when the account
// has country rules: the geo profile's unknown action, screen without one.
func (r *Rules) UnknownAction() Action { return r.unknownAct }

// NeedsGeo reports whether the rules or the operator's blocklist read the
// origin country: without a Geo-IP database they are degraded.
func (r *Rules) NeedsGeo() bool { return r != nil && (r.countryRules || r.op.nBlockedOrigin > 0) }

// NeedsState reports whether the rules keep per-account calling history
// (location changes, home assignment).
func (r *Rules) NeedsState() bool {
	return r != nil && (r.changeNanos > 0 || (r.assignHome && r.home == 0))
}

// Profile returns the named compiled profile.
func (o *Operator) Profile(name string) (*Profile, bool) {
	p, ok := o.profiles[name]
	return p, ok
}

// canonCountries expands ISO codes and selectors into packed codes.
func canonCountries(field string, list []string) ([]cc, error) {
	var out []cc
	for i, e := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		canon, err := policy.CanonicalSelector(e)
		if err != nil {
			return nil, &FieldError{Field: f, Msg: err.Error()}
		}
		if canon == policy.NonGeographic {
			return nil, fieldErr(f, "%q is not a country a call can come from", e)
		}
		for _, c := range policy.ExpandSelector(canon) {
			if p := packCC(c); p != 0 {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func parseActionField(field, s string) (Action, error) {
	return parseActionDefault(field, s, Allow)
}

func parseActionDefault(field, s string, def Action) (Action, error) {
	if s == "" {
		return def, nil
	}
	a, err := ParseAction(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return 0, &FieldError{Field: field, Msg: err.Error()}
	}
	return a, nil
}

// CompileProfile compiles one geo profile; field prefixes error field names.
// A country listed in two zones is an error (which zone wins would be
// guesswork).
func CompileProfile(field, name string, ps ProfileSpec) (*Profile, error) {
	if len(ps.Zones) > MaxZones {
		return nil, fieldErr(field+"zones", "%d zones, more than the %d allowed", len(ps.Zones), MaxZones)
	}
	p := &Profile{Name: name}
	def, err := parseActionField(field+"default", ps.Default)
	if err != nil {
		return nil, err
	}
	if p.unknown, err = parseActionDefault(field+"unknown", ps.Unknown, Screen); err != nil {
		return nil, err
	}
	for i := range p.action {
		p.action[i] = def
	}
	names := map[string]bool{}
	for i, z := range ps.Zones {
		f := fmt.Sprintf("%szones[%d].", field, i)
		if err := policy.ValidName(z.Name); err != nil {
			return nil, &FieldError{Field: f + "name", Msg: err.Error()}
		}
		if names[z.Name] {
			return nil, fieldErr(f+"name", "zone %q defined twice", z.Name)
		}
		names[z.Name] = true
		a, err := ParseAction(strings.ToLower(strings.TrimSpace(z.Action)))
		if err != nil {
			return nil, &FieldError{Field: f + "action", Msg: err.Error()}
		}
		if len(z.Countries) == 0 {
			return nil, fieldErr(f+"countries", "a zone needs at least one country")
		}
		if len(z.Countries) > policy.MaxExcept {
			return nil, fieldErr(f+"countries", "%d entries, more than the %d allowed", len(z.Countries), policy.MaxExcept)
		}
		codes, err := canonCountries(f+"countries", z.Countries)
		if err != nil {
			return nil, err
		}
		for _, c := range codes {
			if prev := p.zone[c]; prev != 0 && prev != uint8(i+1) {
				return nil, fieldErr(f+"countries", "%s is already in zone %q", c, ps.Zones[prev-1].Name)
			}
			p.zone[c] = uint8(i + 1)
			p.action[c] = a
		}
		p.zones = append(p.zones, z.Name)
	}
	return p, nil
}

// CompileOperator validates and compiles the operator-wide configuration.
func CompileOperator(s OperatorSpec) (*Operator, error) {
	o := &Operator{profiles: map[string]*Profile{}}
	if len(s.Profiles) > MaxProfiles {
		return nil, fieldErr("profiles", "%d profiles, more than the %d allowed", len(s.Profiles), MaxProfiles)
	}
	names := make([]string, 0, len(s.Profiles))
	for n := range s.Profiles {
		names = append(names, n)
	}
	sort.Strings(names) // the first error is the same every time
	for _, n := range names {
		f := "profiles." + n + "."
		if err := policy.ValidName(n); err != nil {
			return nil, &FieldError{Field: "profiles." + n, Msg: err.Error()}
		}
		p, err := CompileProfile(f, n, s.Profiles[n])
		if err != nil {
			return nil, err
		}
		o.profiles[n] = p
	}
	var err error
	if o.blocked, err = ParseRanges(s.BlockedSources); err != nil {
		return nil, &FieldError{Field: "blocked_sources" + bracketField(err), Msg: stripIndex(err)}
	}
	if len(s.BlockedOrigins) > MaxBlockedOrigins {
		return nil, fieldErr("blocked_origins", "%d entries, more than the %d allowed", len(s.BlockedOrigins), MaxBlockedOrigins)
	}
	codes, err := canonCountries("blocked_origins", s.BlockedOrigins)
	if err != nil {
		return nil, err
	}
	for _, c := range codes {
		if !o.blockedOrigins[c] {
			o.blockedOrigins[c] = true
			o.nBlockedOrigin++
		}
	}
	return o, nil
}

// bracketField and stripIndex move ParseRanges' "[i]: " into the field name.
func bracketField(err error) string {
	s := err.Error()
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]: "); i > 0 {
			return s[:i+1]
		}
	}
	return ""
}

func stripIndex(err error) string {
	s := err.Error()
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]: "); i > 0 {
			return s[i+3:]
		}
	}
	return s
}

// Account validates one account's settings against the operator's and
// compiles them. A nil Operator is an empty one.
func (o *Operator) Account(s AccountSpec) (*Rules, error) {
	if o == nil {
		o = &Operator{}
	}
	r := &Rules{op: o, spec: s}
	if s.Profile != "" {
		p, ok := o.profiles[s.Profile]
		if !ok {
			return nil, fieldErr("geo_profile", "no geo profile %q (operator profiles: %s)", s.Profile, o.profileList())
		}
		r.profile = p
	}
	switch strings.ToLower(strings.TrimSpace(s.Mobility)) {
	case "", Roaming:
	case Stationary:
		r.stationary = true
	default:
		return nil, fieldErr("mobility", "unknown mobility %q (want %s or %s)", s.Mobility, Stationary, Roaming)
	}
	if s.Home != "" {
		up := strings.ToUpper(strings.TrimSpace(s.Home))
		if _, ok := policy.LookupCountry(up); !ok || up == policy.NonGeographic {
			return nil, fieldErr("home_origin", "unknown country code %q", s.Home)
		}
		r.home = packCC(up)
	}
	r.assignHome = s.AssignHome
	if s.ChangeMinutes < 0 || s.ChangeMinutes > MaxMinutes {
		return nil, fieldErr("location_change_minutes", "%d is outside 0..%d", s.ChangeMinutes, MaxMinutes)
	}
	r.changeNanos = int64(s.ChangeMinutes) * 60e9
	switch strings.ToLower(strings.TrimSpace(s.ChangeBy)) {
	case "", ChangeByCountry:
	case ChangeByIP:
		r.changeByIP = true
	default:
		return nil, fieldErr("location_change_by", "unknown value %q (want %s or %s)", s.ChangeBy, ChangeByCountry, ChangeByIP)
	}
	pm := s.PassMinutes
	if pm < 0 || pm > MaxMinutes {
		return nil, fieldErr("screening_pass_minutes", "%d is outside 0..%d", pm, MaxMinutes)
	}
	if pm == 0 {
		pm = DefaultPassMin
	}
	r.passNanos = int64(pm) * 60e9
	r.maxFailed = s.MaxFailed
	if r.maxFailed < 0 || r.maxFailed > MaxFailedLimit {
		return nil, fieldErr("max_failed_screenings", "%d is outside 0..%d", s.MaxFailed, MaxFailedLimit)
	}
	if r.maxFailed == 0 {
		r.maxFailed = DefaultMaxFailed
	}
	var err error
	if r.trusted, err = ParseRanges(s.TrustedSources); err != nil {
		return nil, &FieldError{Field: "trusted_sources" + bracketField(err), Msg: stripIndex(err)}
	}
	r.hasTrusted = len(s.TrustedSources) > 0
	r.countryRules = r.profile != nil || r.stationary || r.home != 0 || r.assignHome || (r.changeNanos > 0 && !r.changeByIP)
	r.unknownAct = Screen
	if r.profile != nil {
		r.unknownAct = r.profile.unknown
	}
	return r, nil
}

func (o *Operator) profileList() string {
	if len(o.profiles) == 0 {
		return "none"
	}
	n := make([]string, 0, len(o.profiles))
	for k := range o.profiles {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}
