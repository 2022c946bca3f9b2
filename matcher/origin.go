package matcher

import (
	"errors"
	"reflect"
	"strings"

	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
)

// Origin is what a decision needs from the origin checks (package origin's
// Checker implements it): where the call comes from, against the account's
// compiled origin rules and its screening state. Implementations must answer
// without blocking or allocating and must not keep the strings they are
// given.
type Origin interface {
	Check(in origin.Input) origin.Outcome
}

// originSpec turns merged origin settings into what package origin compiles.
func originSpec(e policy.OriginEffective) origin.AccountSpec {
	return origin.AccountSpec{
		Profile: e.GeoProfile, Mobility: e.Mobility, Home: e.HomeOrigin, AssignHome: e.AssignHomeOrigin,
		ChangeMinutes: e.LocationChangeMinutes, ChangeBy: e.LocationChangeBy,
		PassMinutes: e.ScreeningPassMinutes, MaxFailed: e.MaxFailedScreenings, TrustedSources: e.TrustedSources,
	}
}

// originEffective is the merged origin settings r was compiled from
// (originSpec's inverse; the zero settings for nil rules).
func originEffective(r *origin.Rules) policy.OriginEffective {
	if r == nil {
		return policy.OriginEffective{}
	}
	s := r.Spec()
	return policy.OriginEffective{
		GeoProfile: s.Profile, Mobility: s.Mobility, HomeOrigin: s.Home, AssignHomeOrigin: s.AssignHome,
		LocationChangeMinutes: s.ChangeMinutes, LocationChangeBy: s.ChangeBy,
		ScreeningPassMinutes: s.PassMinutes, MaxFailedScreenings: s.MaxFailed, TrustedSources: s.TrustedSources,
	}
}

// compileOriginOperator compiles the operator's geo profiles and source
// blocklist; nil when the operator has neither (origin checks then run
// only for layers that set origin settings).
func compileOriginOperator(op *policy.Operator) (*origin.Operator, error) {
	spec := origin.OperatorSpec{Profiles: make(map[string]origin.ProfileSpec, len(op.GeoProfiles))}
	for n, g := range op.GeoProfiles {
		ps := origin.ProfileSpec{Default: g.Default, Unknown: g.Unknown}
		for _, z := range g.Zones {
			ps.Zones = append(ps.Zones, origin.ZoneSpec{Name: z.Name, Action: z.Action, Countries: z.Countries})
		}
		spec.Profiles[n] = ps
	}
	if b := op.SourceBlocklist; b != nil {
		spec.BlockedSources, spec.BlockedOrigins = b.CIDRs, b.Countries
	}
	o, err := origin.CompileOperator(spec)
	if err != nil {
		var fe *origin.FieldError
		if errors.As(err, &fe) {
			return nil, &policy.FieldError{Field: fe.Field, Msg: fe.Msg}
		}
		return nil, err
	}
	return o, nil
}

// originRules compiles one layer's merged origin settings; field prefixes
// error field names.
func (c *compiler) originRules(e policy.OriginEffective, field string) (*origin.Rules, error) {
	spec := originSpec(e)
	k := originKeyOf(spec)
	if r, ok := c.originCache[k]; ok {
		return r, nil
	}
	r, err := c.originOp.Account(spec)
	if err != nil {
		var fe *origin.FieldError
		if errors.As(err, &fe) {
			return nil, &policy.FieldError{Field: field + "origin." + fe.Field, Msg: fe.Msg}
		}
		return nil, err
	}
	if c.originCache == nil {
		c.originCache = map[originKey]*origin.Rules{}
	}
	c.originCache[k] = r
	return r, nil
}

// originKey identifies an origin.AccountSpec: accounts with the same
// settings share one compiled *origin.Rules (immutable), so 100,000
// accounts on a handful of settings hold a handful of Rules, and the
// decision path reads rules that stay in cache. TestOriginKeyFields fails
// when AccountSpec gains a field this key does not cover.
type originKey struct {
	profile, mobility, home, changeBy     string
	assignHome                            bool
	changeMinutes, passMinutes, maxFailed int
	trusted                               string // TrustedSources joined by NUL
}

func originKeyOf(s origin.AccountSpec) originKey {
	return originKey{
		profile: s.Profile, mobility: s.Mobility, home: s.Home, changeBy: s.ChangeBy, assignHome: s.AssignHome,
		changeMinutes: s.ChangeMinutes, passMinutes: s.PassMinutes, maxFailed: s.MaxFailed,
		trusted: strings.Join(s.TrustedSources, "\x00"),
	}
}

// sameOriginOperator reports whether the operator's origin settings are
// the very same objects, so compiled accounts (which point at the compiled
// operator) can be reused.
func sameOriginOperator(a, b *policy.Operator) bool {
	return reflect.ValueOf(a.GeoProfiles).UnsafePointer() == reflect.ValueOf(b.GeoProfiles).UnsafePointer() &&
		a.SourceBlocklist == b.SourceBlocklist
}

// originReasons maps an origin outcome's kind to its verdict reason.
var originReasons = [...]Reason{
	origin.KindNone:        ReasonOK,
	origin.KindScreen:      ReasonOriginScreen,
	origin.KindRejected:    ReasonOriginRejected,
	origin.KindUntrusted:   ReasonUntrustedSource,
	origin.KindBlocked:     ReasonSourceBlocked,
	origin.KindQuarantined: ReasonQuarantined,
}

// checkOrigin runs the origin checks on a call the destination rules,
// lockdown and rate deck allow, and turns a screen or reject into the
// verdict. An allowed call keeps its destination rule; the origin rule that
// let it through is kept for the rule text.
func (m *Matcher) checkOrigin(v *Verdict, a *account, known bool, q *Query) {
	in := origin.Input{Account: q.Account, SrcIP: q.SrcIP, Rules: a.origin, DestCountry: v.Country, HomeCountry: a.home}
	if known {
		// A known account's (or subaccount's) compiled layer always
		// checks the same state key; the default layer serves many.
		in.Ref = &a.originRef
	}
	if !q.At.IsZero() {
		in.Now = q.At.UnixNano()
	}
	if a.originKey != "" {
		// A subaccount with origin settings of its own has its own state
		// (one user's call abroad moves no other user), held by its
		// account's quarantine too.
		in.Account, in.Parent = a.originKey, a.name
	}
	if m.checker != nil {
		m.checker.CheckInto(&in, &v.Origin)
	} else {
		v.Origin = m.origin.Check(in)
	}
	v.originRan = true
	o := &v.Origin
	if o.Action == origin.Allow {
		return
	}
	v.Action = Reject
	if o.Action == origin.Screen {
		v.Action = Screen
	}
	v.Reason, v.Rule, v.Layer = originReasons[o.Kind], RuleOrigin, a.originLayer
	if o.Kind == origin.KindBlocked {
		v.Layer = LayerOperator
	}
	v.MatchLen, v.Selector, v.Detail = 0, "", ""
}

// OriginRules returns the compiled origin rules of an account (nil when
// origin checks are off for it), for the admin API's screening reports.
func (s *Snapshot) OriginRules(account string) *origin.Rules {
	r, _ := s.OriginScope(account, "")
	return r
}

// OriginScope returns the compiled origin rules that decide a scope's
// calls (nil when origin checks are off for it) and the key of the origin
// state they read and write: "account/sub" for a subaccount with origin
// settings of its own, the account's name otherwise (a subaccount without
// them, or one the policy does not know, shares its account's state).
func (s *Snapshot) OriginScope(account, sub string) (*origin.Rules, string) {
	if s == nil {
		return nil, account
	}
	a, ok := s.accounts.Get(account)
	if !ok {
		return s.deflt.origin, account
	}
	if sa, ok := a.subs[sub]; ok && sub != "" {
		if sa.originKey != "" {
			return sa.origin, sa.originKey
		}
		return sa.origin, account
	}
	return a.origin, account
}

// OriginNeedsGeo reports whether some origin rules of the snapshot (an
// account's, a subaccount's, the default's or the operator's country
// blocklist) read the origin country, so that running without a Geo-IP
// database degrades them.
func (s *Snapshot) OriginNeedsGeo() bool {
	return s != nil && (s.geoAccounts > 0 || (s.deflt != nil && s.deflt.origin.NeedsGeo()))
}
