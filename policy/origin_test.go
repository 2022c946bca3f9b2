package policy

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOriginValidate(t *testing.T) {
	for _, c := range []struct {
		doc, field, msg string
	}{
		{`{"origin":{"mobility":"nomad"}}`, "origin.mobility", "not stationary or roaming"},
		{`{"origin":{"home_origin":"XX"}}`, "origin.home_origin", "unknown country"},
		{`{"origin":{"home_origin":"001"}}`, "origin.home_origin", "unknown country"},
		{`{"origin":{"location_change_minutes":-1}}`, "origin.location_change_minutes", "outside"},
		{`{"origin":{"screening_pass_minutes":100000}}`, "origin.screening_pass_minutes", "outside"},
		{`{"origin":{"max_failed_screenings":101}}`, "origin.max_failed_screenings", "outside"},
		{`{"origin":{"location_change_by":"asn"}}`, "origin.location_change_by", "not country or ip"},
		{`{"origin":{"trusted_sources":["192.0.2.0/24","10.1.2.3/8"]}}`, "origin.trusted_sources[1]", "did you mean 10.0.0.0/8"},
		{`{"origin":{"trusted_sources":["example.com"]}}`, "origin.trusted_sources[0]", "not an IP address"},
		{`{"origin":{"geo_profile":"bad name"}}`, "origin.geo_profile", "not allowed"},
	} {
		var p Policy
		if err := json.Unmarshal([]byte(c.doc), &p); err != nil {
			t.Fatal(err)
		}
		err := p.Validate("")
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%s: %v, want %s: …%s", c.doc, err, c.field, c.msg)
		}
	}
	var p Policy
	json.Unmarshal([]byte(`{"origin":{"mobility":"Stationary","home_origin":" de ","location_change_by":"IP","trusted_sources":["10.0.0.1","10.0.0.0/8","10.0.0.0/8"]}}`), &p)
	if err := p.Validate(""); err != nil {
		t.Fatal(err)
	}
	o := p.Origin
	if *o.Mobility != "stationary" || *o.HomeOrigin != "DE" || *o.LocationChangeBy != "ip" || strings.Join(*o.TrustedSources, " ") != "10.0.0.0/8 10.0.0.1/32" {
		t.Fatalf("not canonical: %+v", o)
	}
}

func TestOperatorOriginValidate(t *testing.T) {
	for _, c := range []struct {
		doc, field, msg string
	}{
		{`{"geo_profiles":{"p":{"zones":[{"name":"z","action":"block","countries":["DE"]}]}}}`, "geo_profiles.p.zones[0].action", "not allow, screen or reject"},
		{`{"geo_profiles":{"p":{"zones":[{"name":"z","countries":["DE"]}]}}}`, "geo_profiles.p.zones[0].action", "required"},
		{`{"geo_profiles":{"p":{"zones":[{"name":"z","action":"allow"}]}}}`, "geo_profiles.p.zones[0].countries", "at least one"},
		{`{"geo_profiles":{"p":{"zones":[{"name":"z","action":"allow","countries":["QQ"]}]}}}`, "geo_profiles.p.zones[0].countries[0]", "unknown country"},
		{`{"geo_profiles":{"p":{"zones":[{"name":"a","action":"allow","countries":["continent:EU"]},{"name":"b","action":"reject","countries":["FR"]}]}}}`, "geo_profiles.p.zones[1].countries", `FR is already in zone "a"`},
		{`{"geo_profiles":{"p":{"default":"maybe"}}}`, "geo_profiles.p.default", "not allow"},
		{`{"geo_profiles":{"bad name":{}}}`, `geo_profiles."bad name"`, "bad profile name"},
		{`{"source_blocklist":{"cidrs":["300.0.0.0/8"]}}`, "source_blocklist.cidrs[0]", "not a CIDR"},
		{`{"source_blocklist":{"countries":["001"]}}`, "source_blocklist.countries[0]", "not a country"},
		{`{"default":{"origin":{"geo_profile":"none"}}}`, "default.origin.geo_profile", `no geo profile "none"`},
	} {
		var o Operator
		if err := json.Unmarshal([]byte(c.doc), &o); err != nil {
			t.Fatal(err)
		}
		err := o.Validate()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%s: %v, want %s: …%s", c.doc, err, c.field, c.msg)
		}
	}
	var o Operator
	json.Unmarshal([]byte(`{"geo_profiles":{"std":{"zones":[{"name":"w","action":"Screen","countries":["ng","continent:AS"]}],"unknown":"screen"}},
		"source_blocklist":{"cidrs":["198.51.100.7"],"countries":["ru"]},"default":{"origin":{"geo_profile":"std"}}}`), &o)
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if z := o.GeoProfiles["std"].Zones[0]; z.Action != "screen" || z.Countries[0] != "NG" {
		t.Fatalf("not canonical: %+v", z)
	}
	if b := o.SourceBlocklist; b.CIDRs[0] != "198.51.100.7/32" || b.Countries[0] != "RU" {
		t.Fatalf("not canonical: %+v", b)
	}
}

func TestMergeOrigin(t *testing.T) {
	s, m, home := "std", 30, "DE"
	base := Merge(BuiltinDefault(), Policy{Origin: &Origin{GeoProfile: &s, LocationChangeMinutes: &m}})
	sub := Merge(base, Policy{Origin: &Origin{HomeOrigin: &home}})
	if sub.Origin.GeoProfile != "std" || sub.Origin.LocationChangeMinutes != 30 || sub.Origin.HomeOrigin != "DE" {
		t.Fatalf("%+v", sub.Origin)
	}
}
