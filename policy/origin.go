package policy

import (
	"fmt"
	"net/netip"
	"strings"
)

// Origin settings (where a call comes from: Geo-IP zones, home location,
// location changes, screening, trusted sources). Each field inherits
// separately, subaccount from account from the operator default.
type Origin struct {
	// GeoProfile names one of the operator's geo profiles.
	GeoProfile *string `json:"geo_profile,omitempty"`
	// Mobility is "stationary" (calls from the home country only, elsewhere
	// screened) or "roaming" (the default).
	Mobility *string `json:"mobility,omitempty"`
	// HomeOrigin is the home country calls are safe from (ISO code; "" clears it).
	HomeOrigin *string `json:"home_origin,omitempty"`
	// AssignHomeOrigin lets the first call from a country the geo profile
	// allows become the home country when none is set.
	AssignHomeOrigin *bool `json:"assign_home_origin,omitempty"`
	// LocationChangeMinutes: a call from another country (or IP) within
	// this many minutes of the last call is screened; 0 is off.
	LocationChangeMinutes *int `json:"location_change_minutes,omitempty"`
	// LocationChangeBy is "country" (the default) or "ip".
	LocationChangeBy *string `json:"location_change_by,omitempty"`
	// ScreeningPassMinutes of normal calling after a passed screening (default 60).
	ScreeningPassMinutes *int `json:"screening_pass_minutes,omitempty"`
	// MaxFailedScreenings in a row quarantine the account (default 3).
	MaxFailedScreenings *int `json:"max_failed_screenings,omitempty"`
	// TrustedSources are the CIDRs the account calls from; when not empty,
	// calls from anywhere else are rejected (untrusted_source).
	TrustedSources *[]string `json:"trusted_sources,omitempty"`
}

// Origin setting values.
const (
	MobilityStationary = "stationary"
	MobilityRoaming    = "roaming"
	ChangeByCountry    = "country"
	ChangeByIP         = "ip"
	OriginAllow        = "allow"
	OriginScreen       = "screen"
	OriginReject       = "reject"
)

// Limits on origin settings.
const (
	MaxOriginMinutes    = 7 * 24 * 60
	MaxFailedScreenings = 100
	MaxCIDRs            = 10000
	MaxGeoProfiles      = 256
	MaxGeoZones         = 64
)

// GeoZone is one zone of a geo profile: countries whose calls get Action.
type GeoZone struct {
	Name      string   `json:"name"`
	Action    string   `json:"action"`    // allow, screen or reject
	Countries []string `json:"countries"` // ISO codes or selectors (continent:AF, region:caribbean)
}

// GeoProfile groups the world's countries into zones. A country in no zone
// gets Default; an unknown origin (no source address, no Geo-IP database, an
// address the database does not place) gets Unknown.
type GeoProfile struct {
	Zones   []GeoZone `json:"zones"`
	Default string    `json:"default,omitempty"` // allow when empty
	Unknown string    `json:"unknown,omitempty"` // screen when empty
}

// SourceBlocklist is the operator-wide list of sources no call may come
// from: address ranges and origin countries (scanner hotspots).
type SourceBlocklist struct {
	CIDRs     []string `json:"cidrs,omitempty"`
	Countries []string `json:"countries,omitempty"`
}

// ParseCIDR reads one address-list entry: a CIDR prefix or a bare address
// (a /32 or /128). Bits set below the mask are refused ("10.1.2.3/8" is more
// likely a typo than a wish for all of 10/8). IPv4-mapped IPv6 prefixes
// become the IPv4 prefix they carry.
func ParseCIDR(s string) (netip.Prefix, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return netip.Prefix{}, fmt.Errorf("empty entry")
	}
	if strings.IndexByte(in, '/') < 0 {
		a, err := netip.ParseAddr(in)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", in)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zoned addresses are not allowed", in)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(in)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (want e.g. 192.0.2.0/24 or 2001:db8::/32)", in)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", in)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has bits set below its /%d mask: did you mean %s or %s/%d?",
			in, p.Bits(), m, p.Addr(), p.Addr().BitLen())
	}
	return p, nil
}

// canonCIDRs validates a CIDR list and canonicalises it in place (shortest
// spelling, sorted, duplicates removed).
func canonCIDRs(field string, list []string) ([]string, error) {
	if len(list) > MaxCIDRs {
		return nil, fieldErr(field, "%d entries, more than the %d allowed", len(list), MaxCIDRs)
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		p, err := ParseCIDR(e)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		out = append(out, p.String())
	}
	return sortedUnique(out), nil
}

// canonOrigins validates a list of origin countries or selectors.
func canonOrigins(field string, list []string) ([]string, error) {
	if len(list) > MaxExcept {
		return nil, fieldErr(field, "%d entries, more than the %d allowed", len(list), MaxExcept)
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		c, err := CanonicalSelector(e)
		if err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		if c == NonGeographic {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a country a call can come from", e)
		}
		out = append(out, c)
	}
	return sortedUnique(out), nil
}

func originAction(field, s string) (string, error) {
	a := strings.ToLower(strings.TrimSpace(s))
	switch a {
	case "", OriginAllow, OriginScreen, OriginReject:
		return a, nil
	}
	return "", fieldErr(field, "%q is not allow, screen or reject", s)
}

// Validate checks a geo profile and canonicalises it in place; a country in
// two zones is an error.
func (g *GeoProfile) Validate(field string) error {
	var err error
	if g.Default, err = originAction(field+"default", g.Default); err != nil {
		return err
	}
	if g.Unknown, err = originAction(field+"unknown", g.Unknown); err != nil {
		return err
	}
	if len(g.Zones) > MaxGeoZones {
		return fieldErr(field+"zones", "%d zones, more than the %d allowed", len(g.Zones), MaxGeoZones)
	}
	owner := map[string]string{}
	names := map[string]bool{}
	for i := range g.Zones {
		z := &g.Zones[i]
		f := fmt.Sprintf("%szones[%d].", field, i)
		if err := ValidName(z.Name); err != nil {
			return fieldErr(f+"name", "%v", err)
		}
		if names[z.Name] {
			return fieldErr(f+"name", "zone %q defined twice", z.Name)
		}
		names[z.Name] = true
		if z.Action, err = originAction(f+"action", z.Action); err != nil {
			return err
		}
		if z.Action == "" {
			return fieldErr(f+"action", "required: allow, screen or reject")
		}
		if len(z.Countries) == 0 {
			return fieldErr(f+"countries", "a zone needs at least one country")
		}
		if z.Countries, err = canonOrigins(f+"countries", z.Countries); err != nil {
			return err
		}
		for _, sel := range z.Countries {
			for _, c := range ExpandSelector(sel) {
				if o, ok := owner[c]; ok && o != z.Name {
					return fieldErr(f+"countries", "%s is already in zone %q", c, o)
				}
				owner[c] = z.Name
			}
		}
	}
	return nil
}

// Validate checks the source blocklist and canonicalises it in place.
func (b *SourceBlocklist) Validate(field string) error {
	var err error
	if b.CIDRs, err = canonCIDRs(field+"cidrs", b.CIDRs); err != nil {
		return err
	}
	b.Countries, err = canonOrigins(field+"countries", b.Countries)
	return err
}

// Validate checks the origin settings of one layer and canonicalises them.
// That GeoProfile names an existing profile is checked against the operator
// (ValidateRefs), since a layer alone does not know the profiles.
func (o *Origin) Validate(field string) error {
	if o.GeoProfile != nil && *o.GeoProfile != "" {
		if err := ValidName(*o.GeoProfile); err != nil {
			return fieldErr(field+"geo_profile", "%v", err)
		}
	}
	if o.Mobility != nil {
		m := strings.ToLower(strings.TrimSpace(*o.Mobility))
		if m != MobilityStationary && m != MobilityRoaming {
			return fieldErr(field+"mobility", "%q is not stationary or roaming", *o.Mobility)
		}
		*o.Mobility = m
	}
	if o.HomeOrigin != nil && *o.HomeOrigin != "" {
		cc := strings.ToUpper(strings.TrimSpace(*o.HomeOrigin))
		if _, ok := LookupCountry(cc); !ok || cc == NonGeographic {
			return fieldErr(field+"home_origin", "unknown country code %q", *o.HomeOrigin)
		}
		*o.HomeOrigin = cc
	}
	for _, m := range []struct {
		name string
		v    *int
		max  int
	}{
		{"location_change_minutes", o.LocationChangeMinutes, MaxOriginMinutes},
		{"screening_pass_minutes", o.ScreeningPassMinutes, MaxOriginMinutes},
		{"max_failed_screenings", o.MaxFailedScreenings, MaxFailedScreenings},
	} {
		if m.v != nil && (*m.v < 0 || *m.v > m.max) {
			return fieldErr(field+m.name, "%d is outside 0..%d", *m.v, m.max)
		}
	}
	if o.LocationChangeBy != nil {
		b := strings.ToLower(strings.TrimSpace(*o.LocationChangeBy))
		if b != ChangeByCountry && b != ChangeByIP {
			return fieldErr(field+"location_change_by", "%q is not country or ip", *o.LocationChangeBy)
		}
		*o.LocationChangeBy = b
	}
	if o.TrustedSources != nil {
		c, err := canonCIDRs(field+"trusted_sources", *o.TrustedSources)
		if err != nil {
			return err
		}
		*o.TrustedSources = c
	}
	return nil
}

// OriginEffective is merged origin settings: every layer applied, nothing
// left to inherit.
type OriginEffective struct {
	GeoProfile            string
	Mobility              string
	HomeOrigin            string
	AssignHomeOrigin      bool
	LocationChangeMinutes int
	LocationChangeBy      string
	ScreeningPassMinutes  int
	MaxFailedScreenings   int
	TrustedSources        []string
}

// MergeOrigin applies a layer's origin settings over base: each field the
// layer sets replaces base's.
func MergeOrigin(base OriginEffective, o *Origin) OriginEffective {
	if o == nil {
		return base
	}
	if o.GeoProfile != nil {
		base.GeoProfile = *o.GeoProfile
	}
	if o.Mobility != nil {
		base.Mobility = *o.Mobility
	}
	if o.HomeOrigin != nil {
		base.HomeOrigin = *o.HomeOrigin
	}
	if o.AssignHomeOrigin != nil {
		base.AssignHomeOrigin = *o.AssignHomeOrigin
	}
	if o.LocationChangeMinutes != nil {
		base.LocationChangeMinutes = *o.LocationChangeMinutes
	}
	if o.LocationChangeBy != nil {
		base.LocationChangeBy = *o.LocationChangeBy
	}
	if o.ScreeningPassMinutes != nil {
		base.ScreeningPassMinutes = *o.ScreeningPassMinutes
	}
	if o.MaxFailedScreenings != nil {
		base.MaxFailedScreenings = *o.MaxFailedScreenings
	}
	if o.TrustedSources != nil {
		base.TrustedSources = *o.TrustedSources
	}
	return base
}
