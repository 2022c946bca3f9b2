package policy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// The parsers of the small fields operators type (hours, amounts, CIDRs)
// and of whole account and operator documents: any input gets a value or
// an error, never a panic, and what they accept is what they promised.

func FuzzParseHours(f *testing.F) {
	for _, s := range []string{"09:00-17:00", "22:00-06:00", "00:00-24:00", "9-5", "24:00-01:00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		from, to, err := ParseHours(s)
		if err == nil && (from < 0 || from >= 24*60 || to < 0 || to > 24*60 || from == to) {
			t.Fatalf("%q accepted as [%d, %d)", s, from, to)
		}
	})
}

func FuzzParseMicro(f *testing.F) {
	for _, s := range []string{"0.012", "3", ".5", "1.", "1e3", "-1", "99999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseMicro(s, 1_000_000)
		if err != nil {
			return
		}
		if v < 0 || v > 1_000_000*1_000_000 {
			t.Fatalf("%q -> %d", s, v)
		}
		// what it accepts is a plain decimal that strconv reads the same
		fv, perr := strconv.ParseFloat(s, 64)
		if perr != nil || int64(fv*1e6+0.5) != v && int64(fv*1e6) != v {
			t.Fatalf("%q -> %d, strconv %v %v", s, v, fv, perr)
		}
	})
}

func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::ffff:10.0.0.0/104", "10.1.2.3/8", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		if err == nil && (!p.IsValid() || p.Masked() != p) {
			t.Fatalf("%q accepted as %v", s, p)
		}
	})
}

// FuzzDocuments decodes an account and an operator document the way the
// admin API does (unknown fields refused) and validates them.
func FuzzDocuments(f *testing.F) {
	for _, s := range []string{
		`{"home_country":"US","countries":{"default":"allow","except":["CU","SO"]},"high_risk":"block","allow_prefixes":["+4420"],"block_prefixes":["+4470"],"max_channels":160,"max_cps":20}`,
		`{"countries":{"default":"deny","except":["continent:NA","region:caribbean","nanp"]},"time_zone":"America/New_York"}`,
		`{"velocity":{"daily_spend":{"warning":500,"limit":1000},"rules":[{"name":"n","prefix":"+881","hours":"22:00-06:00","days":["sat"],"calls_per_minute":{"warning":1,"critical":2}}]}}`,
		`{"origin":{"geo_profile":"std","trusted_sources":["192.0.2.0/24"],"screening_pass_minutes":30}}`,
		`{"geo_profiles":{"std":{"zones":[{"name":"watch","action":"screen","countries":["NG"]}]}},"source_blocklist":["198.51.100.0/24"]}`,
		`{"velocity":{"rules":[{"distinct_destinations":{"warning":40,"critical":80},"distinct_countries":{"critical":10},"sequential_range_calls":{"critical":12},"range_digits":4,"short_calls":{"warning":60,"critical":85},"short_call_seconds":6,"min_answered_calls":20,"invalid_numbers":{"critical":30},"locked_attempts":{"critical":10}}]}}`,
		`{"range_velocity":{"accounts":{"warning":10,"critical":20},"range_digits":3,"window_minutes":60,"action":"block","max_ranges":4096}}`,
		`{"max_cps":-1}`, `[]`, `{"home_country":"XX"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Account
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&a) == nil {
			if err := a.Validate(); err != nil && err.Error() == "" {
				t.Fatal("an error without a message")
			}
		}
		var o Operator
		dec = json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&o) == nil {
			if err := o.Validate(); err != nil && err.Error() == "" {
				t.Fatal("an error without a message")
			}
		}
	})
}
