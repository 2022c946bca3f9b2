package handler

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/matcher"
)

// Issue 11 item 14: the whole countries that used to be on the default
// high-risk list are an exported, versioned set an operator opts into with
// one audited, reversible call.
func TestRecommendedDenies(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US","countries":{"default":"allow","except":[]},"high_risk":"block"}`)
	check := func(to, want string) {
		t.Helper()
		if _, reason := e.verdict("account=acme&to=" + strings.ReplaceAll(to, "+", "%2B")); reason != want {
			t.Errorf("%s: %s, want %s", to, reason, want)
		}
	}
	// Not blocked by default; their premium ranges are.
	check("+18765230123", "ok")
	check("+966112345678", "ok")
	check("+966925012345", "number_barred")

	type deniesJSON struct {
		Version   string
		Generated string
		Applied   bool
		Countries []struct {
			Country, Name, Reason string
			Prefixes, Sources     []string
			Disabled              bool
		}
	}
	get := func() deniesJSON {
		t.Helper()
		var d deniesJSON
		if err := json.Unmarshal(e.mustA("GET", "/v1/recommended-denies", "").body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := get()
	shipped, err := matcher.DefaultRecommendedDenies()
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != shipped.Meta.Version || d.Applied || len(d.Countries) != 24 {
		t.Fatalf("GET: %+v", d)
	}
	for _, c := range d.Countries {
		if c.Disabled || len(c.Prefixes) == 0 || len(c.Sources) == 0 || c.Name == "" {
			t.Errorf("country %+v", c)
		}
		if c.Country == "JM" && strings.Join(c.Prefixes, " ") != "+1658 +1876" {
			t.Errorf("JM prefixes %v", c.Prefixes)
		}
	}
	if r := e.mustA("GET", "/v1/recommended-denies?format=csv", ""); string(r.body) != string(matcher.DefaultRecommendedDeniesCSV()) || !strings.HasPrefix(r.hdr["Content-Type"], "text/csv") {
		t.Errorf("CSV export: %s %.200s", r.hdr["Content-Type"], r.body)
	}
	if r := e.a("GET", "/v1/recommended-denies?format=xml", ""); r.status != 400 {
		t.Errorf("format=xml: %d %s", r.status, r.body)
	}

	// The operator disabled Saudi Arabia itself before opting in.
	e.mustA("PUT", "/v1/operator/countries/SA", `{"reason":"ops ticket 1"}`)
	var ch struct {
		Version         string
		Added           []string
		Removed         []string
		AlreadyDisabled []string `json:"already_disabled"`
	}
	json.Unmarshal(e.mustA("PUT", "/v1/operator/recommended-denies", "").body, &ch)
	if ch.Version != d.Version || len(ch.Added) != 23 || strings.Join(ch.AlreadyDisabled, " ") != "SA" {
		t.Fatalf("apply: %+v", ch)
	}
	for _, to := range []string{"+18765230123", "+16582951234", "+18092345678", "+22235123456", "+966112345678", "+243991234567"} {
		check(to, "country_disabled")
	}
	if d := get(); !d.Applied {
		t.Errorf("not applied after PUT: %+v", d)
	}
	// Applying again changes nothing and writes no audit entry.
	before := e.mustA("GET", "/v1/audit?limit=1", "").body
	ch.Added, ch.AlreadyDisabled = nil, nil
	json.Unmarshal(e.mustA("PUT", "/v1/operator/recommended-denies", "").body, &ch)
	if len(ch.Added) != 0 || len(ch.AlreadyDisabled) != 24 {
		t.Errorf("second apply: %+v", ch)
	}
	if after := e.mustA("GET", "/v1/audit?limit=1", "").body; string(after) != string(before) {
		t.Errorf("second apply was audited: %s", after)
	}
	contains(t, "audit", before, `"action":"recommended_denies.apply"`, `"object":"operator/recommended-denies"`, `"JM":{"reason":"recommended deny `+d.Version+`"}`)

	// Reversible: DELETE lifts what the set disabled, not the operator's own.
	ch.Added, ch.AlreadyDisabled = nil, nil
	json.Unmarshal(e.mustA("DELETE", "/v1/operator/recommended-denies", "").body, &ch)
	if len(ch.Removed) != 23 || strings.Contains(strings.Join(ch.Removed, " "), "SA") {
		t.Fatalf("remove: %+v", ch)
	}
	check("+18765230123", "ok")
	check("+966112345678", "country_disabled")
	contains(t, "audit", e.mustA("GET", "/v1/audit?limit=1", "").body, `"action":"recommended_denies.remove"`)
	if r := e.a("DELETE", "/v1/operator/recommended-denies", ""); r.status != 404 {
		t.Errorf("second DELETE: %d %s", r.status, r.body)
	}
	if r := e.a("POST", "/v1/operator/recommended-denies", ""); r.status != 405 || r.hdr["Allow"] != "PUT, DELETE" {
		t.Errorf("POST: %d %v", r.status, r.hdr)
	}
	if r := do(t, e.admin, "GET", "/v1/recommended-denies", "", nil); r.status != 401 {
		t.Errorf("without token: %d", r.status)
	}
}
