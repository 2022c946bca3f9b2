package matcher

import (
	"errors"
	"reflect"

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
	r, err := c.originOp.Account(originSpec(e))
	if err != nil {
		var fe *origin.FieldError
		if errors.As(err, &fe) {
			return nil, &policy.FieldError{Field: field + "origin." + fe.Field, Msg: fe.Msg}
		}
		return nil, err
	}
	return r, nil
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
func (m *Matcher) checkOrigin(v *Verdict, a *account, q *Query) {
	in := origin.Input{Account: q.Account, SrcIP: q.SrcIP, Rules: a.origin, DestCountry: v.Country, HomeCountry: a.home}
	o := m.origin.Check(in)
	v.Origin, v.originRan = o, true
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
	if s == nil {
		return nil
	}
	if a, ok := s.accounts[account]; ok {
		return a.origin
	}
	return s.deflt.origin
}
