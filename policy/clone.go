package policy

import (
	"maps"
	"slices"
)

// Deep copies of the policy types, in the manner of net/http's Header.Clone.
// Validate canonicalises documents in place and the service hands settings
// out of its lock to be encoded, so whatever leaves or enters the set in
// force must share no map, slice or pointer with it: a shallow copy is a data
// race waiting for the next PUT. TestCloneDeep walks every map, slice and
// pointer field of these types by reflection, so a field added without a
// deep copy here fails the test.
//
// Every Clone keeps nil apart from empty: in these documents an empty list
// often means something (an empty allow_prefixes clears the inherited one)
// and a nil one means "not set".

// clonePtr copies the value p points to; nil stays nil. For types with no
// references inside.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// cloneSlicePtr copies a pointer to a list of strings, keeping nil and
// empty apart at both levels.
func cloneSlicePtr(p *[]string) *[]string {
	if p == nil {
		return nil
	}
	v := slices.Clone(*p)
	return &v
}

// Clone returns a deep copy of the rule.
func (c *CountryRule) Clone() *CountryRule {
	if c == nil {
		return nil
	}
	out := *c
	out.Except = slices.Clone(c.Except)
	return &out
}

// Clone returns a deep copy of the policy layer.
func (p Policy) Clone() Policy {
	out := p
	out.HomeCountry = clonePtr(p.HomeCountry)
	out.Countries = p.Countries.Clone()
	out.HighRisk = clonePtr(p.HighRisk)
	out.AllowPrefixes = cloneSlicePtr(p.AllowPrefixes)
	out.BlockPrefixes = cloneSlicePtr(p.BlockPrefixes)
	out.MaxChannels = clonePtr(p.MaxChannels)
	out.MaxCPS = clonePtr(p.MaxCPS)
	out.TimeZone = clonePtr(p.TimeZone)
	out.MaxDestinationRate = clonePtr(p.MaxDestinationRate)
	out.Velocity = p.Velocity.Clone()
	out.Origin = p.Origin.Clone()
	return out
}

// Clone returns a deep copy of the account and its subaccounts.
func (a Account) Clone() Account {
	out := a
	out.Policy = a.Policy.Clone()
	out.Tags = slices.Clone(a.Tags)
	if a.Subaccounts != nil {
		out.Subaccounts = make(map[string]Policy, len(a.Subaccounts))
		for k, v := range a.Subaccounts {
			out.Subaccounts[k] = v.Clone()
		}
	}
	return out
}

// Clone returns a deep copy of the operator settings.
func (o Operator) Clone() Operator {
	out := o
	out.DisabledCountries = maps.Clone(o.DisabledCountries) // values hold no references
	out.BlockedPrefixes = slices.Clone(o.BlockedPrefixes)   // likewise
	out.Default = o.Default.Clone()
	if o.GeoProfiles != nil {
		out.GeoProfiles = make(map[string]GeoProfile, len(o.GeoProfiles))
		for k, v := range o.GeoProfiles {
			out.GeoProfiles[k] = v.Clone()
		}
	}
	out.SourceBlocklist = o.SourceBlocklist.Clone()
	out.RangeVelocity = o.RangeVelocity.Clone()
	return out
}

// Clone returns a deep copy of the range velocity settings.
func (r *RangeVelocity) Clone() *RangeVelocity {
	if r == nil {
		return nil
	}
	out := *r
	return &out
}

// Clone returns a deep copy of the velocity settings.
func (v *Velocity) Clone() *Velocity {
	if v == nil {
		return nil
	}
	out := *v
	out.DailySpend = clonePtr(v.DailySpend)
	if v.Rules != nil {
		out.Rules = make([]VelocityRule, len(v.Rules))
		for i, r := range v.Rules {
			out.Rules[i] = r.Clone()
		}
	}
	return &out
}

// Clone returns a deep copy of the rule.
func (r VelocityRule) Clone() VelocityRule {
	out := r
	out.Days = slices.Clone(r.Days)
	out.CallsPerMinute = clonePtr(r.CallsPerMinute)
	out.CallsPerWindow = clonePtr(r.CallsPerWindow)
	out.ConcurrentCalls = clonePtr(r.ConcurrentCalls)
	out.SequentialCalls = clonePtr(r.SequentialCalls)
	out.CallDuration = clonePtr(r.CallDuration)
	out.BlockedAttempts = clonePtr(r.BlockedAttempts)
	out.DistinctDestinations = clonePtr(r.DistinctDestinations)
	out.DistinctCountries = clonePtr(r.DistinctCountries)
	out.SequentialRangeCalls = clonePtr(r.SequentialRangeCalls)
	out.ShortCalls = clonePtr(r.ShortCalls)
	out.InvalidNumbers = clonePtr(r.InvalidNumbers)
	out.LockedAttempts = clonePtr(r.LockedAttempts)
	return out
}

// Clone returns a deep copy of the origin settings.
func (o *Origin) Clone() *Origin {
	if o == nil {
		return nil
	}
	out := *o
	out.GeoProfile = clonePtr(o.GeoProfile)
	out.Mobility = clonePtr(o.Mobility)
	out.HomeOrigin = clonePtr(o.HomeOrigin)
	out.AssignHomeOrigin = clonePtr(o.AssignHomeOrigin)
	out.LocationChangeMinutes = clonePtr(o.LocationChangeMinutes)
	out.LocationChangeBy = clonePtr(o.LocationChangeBy)
	out.ScreeningPassMinutes = clonePtr(o.ScreeningPassMinutes)
	out.MaxFailedScreenings = clonePtr(o.MaxFailedScreenings)
	out.TrustedSources = cloneSlicePtr(o.TrustedSources)
	return &out
}

// Clone returns a deep copy of the geo profile.
func (g GeoProfile) Clone() GeoProfile {
	out := g
	if g.Zones != nil {
		out.Zones = make([]GeoZone, len(g.Zones))
		for i, z := range g.Zones {
			out.Zones[i] = z.Clone()
		}
	}
	return out
}

// Clone returns a deep copy of the zone.
func (z GeoZone) Clone() GeoZone {
	out := z
	out.Countries = slices.Clone(z.Countries)
	return out
}

// Clone returns a deep copy of the blocklist.
func (b *SourceBlocklist) Clone() *SourceBlocklist {
	if b == nil {
		return nil
	}
	out := *b
	out.CIDRs = slices.Clone(b.CIDRs)
	out.Countries = slices.Clone(b.Countries)
	return &out
}
