package matcher

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
)

// originSet is testSet with origin settings: a source blocklist, an account
// that trusts only its PBX's range, and one with a geo profile.
func originSet() *policy.Set {
	set := testSet()
	set.Operator.GeoProfiles = map[string]policy.GeoProfile{
		"std": {Zones: []policy.GeoZone{{Name: "watch", Action: "screen", Countries: []string{"NG"}}}},
	}
	set.Operator.SourceBlocklist = &policy.SourceBlocklist{CIDRs: []string{"198.51.100.0/24"}}
	set.Accounts["pbx"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{TrustedSources: lp("192.0.2.0/24")},
	}, Subaccounts: map[string]policy.Policy{
		"branch": {Origin: &policy.Origin{TrustedSources: lp("203.0.113.0/24")}},
	}}
	set.Accounts["roamer"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{LocationChangeMinutes: ip(30), LocationChangeBy: sp("ip")},
	}}
	set.Accounts["geo"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{GeoProfile: sp("std")},
	}}
	return set
}

func newOriginMatcher(t testing.TB, set *policy.Set) (*Matcher, *origin.Checker) {
	t.Helper()
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := origin.NewChecker(nil, origin.NewState(origin.StateOptions{Now: func() time.Time { return now }}))
	m := New(numplan.Default(), Options{Origin: c})
	m.Swap(snap)
	return m, c
}

func TestOriginDecisions(t *testing.T) {
	m, c := newOriginMatcher(t, originSet())
	for _, tc := range []struct {
		q      Query
		action Action
		reason Reason
		layer  Layer
		rule   string
	}{
		{Query{To: "+441134960123", Account: "pbx", SrcIP: "192.0.2.10"}, Allow, ReasonOK, LayerDefault,
			"; origin: source address among the account's trusted sources"},
		{Query{To: "+441134960123", Account: "pbx", SrcIP: "10.9.9.9"}, Reject, ReasonUntrustedSource, LayerAccount,
			"account pbx: origin: source address not among the account's trusted sources"},
		{Query{To: "+441134960123", Account: "pbx", Subaccount: "branch", SrcIP: "203.0.113.5"}, Allow, ReasonOK, LayerDefault, "trusted sources"},
		{Query{To: "+441134960123", Account: "pbx", Subaccount: "branch", SrcIP: "192.0.2.10"}, Reject, ReasonUntrustedSource, LayerSubaccount,
			"subaccount pbx/branch: origin: source address not among"},
		{Query{To: "+441134960123", Account: "pbx", SrcIP: "198.51.100.9"}, Reject, ReasonSourceBlocked, LayerOperator,
			"operator: origin: source address on the operator's source blocklist"},
		{Query{To: "+441134960123", Account: "acme", SrcIP: "198.51.100.9"}, Reject, ReasonSourceBlocked, LayerOperator, "blocklist"},
		{Query{To: "+441134960123", Account: "stranger", SrcIP: "198.51.100.9"}, Reject, ReasonSourceBlocked, LayerOperator, "blocklist"},
		// Emergency first, always; destination rejections before origin.
		{Query{To: "999", Account: "pbx", SrcIP: "198.51.100.9"}, Allow, ReasonEmergency, LayerNone, "emergency number"},
		{Query{To: "+5372345678", Account: "acme", SrcIP: "198.51.100.9"}, Reject, ReasonCountryBarred, LayerAccount, "countries allow-all-except"},
		{Query{To: "abc", Account: "pbx", SrcIP: "10.9.9.9"}, Reject, ReasonInvalidNumber, LayerNone, "invalid number"},
		// No Geo-IP database in this test: every origin is unknown, which
		// rules that need no country let through and a geo profile screens.
		{Query{To: "+441134960123", Account: "roamer", SrcIP: "192.0.2.1"}, Allow, ReasonOK, LayerDefault, "; origin: origin unknown: no Geo-IP database: allow"},
		{Query{To: "+441134960123", Account: "geo", SrcIP: "192.0.2.1"}, Screen, ReasonOriginScreen, LayerAccount, `account geo: origin: origin unknown: no Geo-IP database: geo profile "std" says screen`},
	} {
		v := m.Decide(&tc.q)
		if v.Action != tc.action || v.Reason != tc.reason || v.Layer != tc.layer || !strings.Contains(v.RuleString(), tc.rule) {
			t.Errorf("%+v: %s %s %s %q", tc.q, v.Action, v.Reason, v.Layer, v.RuleString())
		}
		if v.Action != tc.reason.Verdict() {
			t.Errorf("%s: action %s, table says %s", tc.reason, v.Action, tc.reason.Verdict())
		}
	}
	// Location change by IP: screened, then passed through the state.
	q := Query{To: "+441134960123", Account: "roamer", SrcIP: "192.0.2.2"}
	v := m.Decide(&q)
	if v.Action != Screen || v.Reason != ReasonOriginScreen || v.Action.HTTPStatus() != 202 ||
		!strings.Contains(v.RuleString(), "account roamer: origin: source address changed") {
		t.Fatalf("%s %s %q", v.Action, v.Reason, v.RuleString())
	}
	if _, err := c.State().ScreeningPassed("roamer", m.Snapshot().OriginRules("roamer")); err != nil {
		t.Fatal(err)
	}
	q.SrcIP = "192.0.2.3"
	if v := m.Decide(&q); v.Action != Allow || !strings.Contains(v.RuleString(), "screening passed recently") {
		t.Fatalf("after pass: %s %q", v.Action, v.RuleString())
	}
	// Accounts without origin settings and an operator without any: off.
	if m.Snapshot().OriginRules("acme") == nil {
		t.Error("the blocklist must reach every account")
	}
	m2, _ := newOriginMatcher(t, testSet())
	if m2.Snapshot().OriginRules("acme") != nil {
		t.Error("origin rules without any origin setting")
	}
	if v := m2.Decide(&Query{To: "+441134960123", Account: "acme", SrcIP: "198.51.100.9"}); v.OriginRan() || strings.Contains(v.RuleString(), "origin") {
		t.Errorf("origin ran without settings: %q", v.RuleString())
	}
}

func TestOriginCompileErrors(t *testing.T) {
	set := originSet()
	set.Accounts["bad"] = policy.Account{Policy: policy.Policy{Origin: &policy.Origin{GeoProfile: sp("nope")}}}
	_, err := Compile(set, numplan.Default())
	if err == nil || !strings.Contains(err.Error(), "origin.geo_profile") || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("%v", err)
	}
	set = originSet()
	set.Operator.GeoProfiles["std"] = policy.GeoProfile{Zones: []policy.GeoZone{{Name: "z", Action: "allow", Countries: []string{"DE"}}, {Name: "y", Action: "reject", Countries: []string{"DE"}}}}
	if _, err := Compile(set, numplan.Default()); err == nil || !strings.Contains(err.Error(), "already in zone") {
		t.Fatalf("%v", err)
	}
}

// TestOriginReuse checks that CompileFrom recompiles accounts when the
// operator's origin settings change (their rules point at the operator's).
func TestOriginReuse(t *testing.T) {
	set := originSet()
	prev, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	next := *set
	next.Operator.SourceBlocklist = &policy.SourceBlocklist{CIDRs: []string{"192.0.2.0/24"}}
	snap, err := CompileFrom(prev, &next, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	m := New(numplan.Default(), Options{Origin: origin.NewChecker(nil, nil)})
	m.Swap(snap)
	if v := m.Decide(&Query{To: "+441134960123", Account: "pbx", SrcIP: "192.0.2.10"}); v.Reason != ReasonSourceBlocked {
		t.Fatalf("stale operator rules: %s %q", v.Reason, v.RuleString())
	}
}

func TestOriginZeroAlloc(t *testing.T) {
	if raceEnabledMatcher {
		t.Skip("the race detector allocates")
	}
	m, _ := newOriginMatcher(t, originSet())
	var buf [512]byte
	for _, q := range []Query{
		{To: "+441134960123", Account: "pbx", SrcIP: "192.0.2.10"},
		{To: "+441134960123", Account: "pbx", SrcIP: "10.9.9.9"},
		{To: "+441134960123", Account: "roamer", SrcIP: "192.0.2.1"},
		{To: "+441134960123", Account: "roamer", SrcIP: "192.0.2.2"},
		{To: "+441134960123", Account: "acme", SrcIP: "198.51.100.9"},
	} {
		m.Decide(&q)
		if n := testing.AllocsPerRun(100, func() {
			v := m.Decide(&q)
			_ = v.AppendRule(buf[:0])
		}); n != 0 {
			t.Errorf("%+v: %.1f allocs", q, n)
		}
	}
}
