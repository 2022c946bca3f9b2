package matcher

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/origin/geotest"
	"github.com/tollgate/tollgate/policy"
)

// Source addresses of geoTestNets.
const (
	srcGB = "81.2.69.10"
	srcNG = "197.210.0.10"
	srcCN = "175.16.199.10"
)

var geoTestNets = []geotest.Net{{CIDR: "81.2.69.0/24", Country: "GB"}, {CIDR: "197.210.0.0/16", Country: "NG"}, {CIDR: "175.16.0.0/16", Country: "CN"}}

// geoTestDB builds a GeoLite2-Country-shaped database with the test's own
// networks (nothing is downloaded) and loads it.
func geoTestDB(t testing.TB) *origin.GeoIP {
	t.Helper()
	path := filepath.Join(t.TempDir(), "country.mmdb")
	if err := geotest.Write(path, geoTestNets...); err != nil {
		t.Fatal(err)
	}
	g, err := origin.OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// geoProfiles: "std" screens NG and rejects CN, "strict" rejects NG.
func geoProfiles() map[string]policy.GeoProfile {
	return map[string]policy.GeoProfile{
		"std": {Zones: []policy.GeoZone{
			{Name: "watch", Action: "screen", Countries: []string{"NG"}},
			{Name: "banned", Action: "reject", Countries: []string{"CN"}},
		}},
		"strict": {Zones: []policy.GeoZone{{Name: "banned", Action: "reject", Countries: []string{"NG", "CN"}}}},
	}
}

// TestOriginGeoLayers: with a Geo-IP database in force, an account's geo
// profile decides by origin country; a subaccount's profile and mobility
// override the account's, and the verdict names the layer and the rule.
func TestOriginGeoLayers(t *testing.T) {
	set := testSet()
	set.Operator.GeoProfiles = geoProfiles()
	set.Accounts["travel"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{GeoProfile: sp("std")},
	}, Subaccounts: map[string]policy.Policy{
		"desk":  {Origin: &policy.Origin{GeoProfile: sp("strict")}},
		"fixed": {Origin: &policy.Origin{Mobility: sp("stationary"), HomeOrigin: sp("GB")}},
	}}
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := New(numplan.Default(), Options{Origin: origin.NewChecker(geoTestDB(t), origin.NewState(origin.StateOptions{Now: func() time.Time { return now }}))})
	m.Swap(snap)
	for _, tc := range []struct {
		sub, src string
		action   Action
		reason   Reason
		layer    Layer
		rule     string
	}{
		{"", srcGB, Allow, ReasonOK, LayerDefault, `origin: origin GB in no zone of geo profile "std": allow`},
		{"", srcNG, Screen, ReasonOriginScreen, LayerAccount, `account travel: origin: origin NG in zone "watch" of geo profile "std": screen`},
		{"", srcCN, Reject, ReasonOriginRejected, LayerAccount, `origin CN in zone "banned" of geo profile "std": reject`},
		{"desk", srcNG, Reject, ReasonOriginRejected, LayerSubaccount, `subaccount travel/desk: origin: origin NG in zone "banned" of geo profile "strict": reject`},
		{"desk", srcGB, Allow, ReasonOK, LayerDefault, `geo profile "strict": allow`},
		// "fixed" keeps the account's profile and adds stationary mobility.
		{"fixed", srcGB, Allow, ReasonOK, LayerDefault, "origin GB is the account's home country"},
		{"fixed", srcCN, Reject, ReasonOriginRejected, LayerSubaccount, `geo profile "std": reject`},
		{"fixed", srcNG, Screen, ReasonOriginScreen, LayerSubaccount, "stationary account at home in GB calling from NG"},
	} {
		v := m.Decide(&Query{To: "+441134960123", Account: "travel", Subaccount: tc.sub, SrcIP: tc.src})
		if v.Action != tc.action || v.Reason != tc.reason || v.Layer != tc.layer || !strings.Contains(v.RuleString(), tc.rule) {
			t.Errorf("%s from %s: %s %s %s %q", tc.sub, tc.src, v.Action, v.Reason, v.Layer, v.RuleString())
		}
	}
}

// TestOriginSubaccountState: a subaccount with origin settings of its own
// has its own origin state (its calls move no other user's location, its
// assigned home is its own), while one without shares its account's; an
// account's quarantine holds every subaccount.
func TestOriginSubaccountState(t *testing.T) {
	set := testSet()
	set.Operator.GeoProfiles = geoProfiles()
	set.Accounts["team"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{GeoProfile: sp("std"), LocationChangeMinutes: ip(60), AssignHomeOrigin: new(true), Mobility: sp("stationary")},
	}, Subaccounts: map[string]policy.Policy{
		"alice": {Origin: &policy.Origin{LocationChangeMinutes: ip(60)}},
		"bob":   {Origin: &policy.Origin{LocationChangeMinutes: ip(60)}},
		"carol": {MaxChannels: ip(2)}, // no origin settings: the account's state
	}}
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := origin.NewChecker(geoTestDB(t), origin.NewState(origin.StateOptions{Now: func() time.Time { return now }}))
	m := New(numplan.Default(), Options{Origin: c})
	m.Swap(snap)
	call := func(sub, src string) Verdict {
		return m.Decide(&Query{To: "+33142685300", Account: "team", Subaccount: sub, SrcIP: src}) // abroad: quarantine holds it
	}
	// alice's first call, from GB, assigns her own home.
	if v := call("alice", srcGB); v.Action != Allow || !strings.Contains(v.RuleString(), "assigned as the account's home") {
		t.Fatalf("alice from GB: %s %q", v.Action, v.RuleString())
	}
	st := c.State()
	if got := st.Status("team/alice").Home; got != "GB" {
		t.Fatalf("alice's home %q", got)
	}
	if got := st.Status("team").Home; got != "" {
		t.Fatalf("alice's call set the account's home to %q", got)
	}
	// bob's first call, from CN: rejected by the zone; alice's home and
	// history are not his.
	if v := call("bob", srcCN); v.Action != Reject {
		t.Fatalf("bob from CN: %s %q", v.Action, v.RuleString())
	}
	if st.Status("team/bob").Home != "" || st.Status("team/bob").LastCountry != "" {
		t.Fatalf("bob's state %+v", st.Status("team/bob"))
	}
	// carol shares the account's state.
	if v := call("carol", srcGB); v.Action != Allow {
		t.Fatalf("carol: %s %q", v.Action, v.RuleString())
	}
	if got := st.Status("team").Home; got != "GB" {
		t.Fatalf("carol's call: account home %q", got)
	}
	r, key := m.Snapshot().OriginScope("team", "alice")
	if key != "team/alice" || r == nil {
		t.Fatalf("scope of alice: %q %v", key, r)
	}
	if _, key := m.Snapshot().OriginScope("team", "carol"); key != "team" {
		t.Fatalf("scope of carol: %q", key)
	}
	if _, key := m.Snapshot().OriginScope("team", "nobody"); key != "team" {
		t.Fatalf("scope of an unknown subaccount: %q", key)
	}
	// The account's quarantine holds alice too; hers holds only her.
	for i := 0; i < 3; i++ {
		st.ScreeningFailed("team/alice", r)
	}
	if v := call("alice", srcGB); v.Reason != ReasonQuarantined {
		t.Fatalf("alice quarantined: %s %q", v.Reason, v.RuleString())
	}
	if v := call("carol", srcGB); v.Action != Allow {
		t.Fatalf("alice's quarantine reached carol: %q", v.RuleString())
	}
	st.Release("team/alice")
	for i := 0; i < 3; i++ {
		st.ScreeningFailed("team", m.Snapshot().OriginRules("team"))
	}
	if v := call("alice", srcGB); v.Reason != ReasonQuarantined {
		t.Fatalf("account quarantine does not hold alice: %s %q", v.Reason, v.RuleString())
	}
}

// TestOriginRefPerStateKey: a compiled account remembers where its origin
// state lives (originRef), which is right only because its calls always
// use one state key. Unknown accounts share the default layer and must
// not share its Ref: one unknown account's call from GB must not make
// another's from NG a location change; a known account and its
// subaccounts keep their own histories as without the Ref.
func TestOriginRefPerStateKey(t *testing.T) {
	set := testSet()
	set.Operator.GeoProfiles = geoProfiles()
	set.Operator.Default.Origin = &policy.Origin{LocationChangeMinutes: ip(60)}
	set.Accounts["team"] = policy.Account{Policy: policy.Policy{
		HomeCountry: sp("GB"),
		Origin:      &policy.Origin{LocationChangeMinutes: ip(60)},
	}, Subaccounts: map[string]policy.Policy{
		"own":    {Origin: &policy.Origin{LocationChangeMinutes: ip(60)}},
		"shared": {MaxChannels: ip(2)},
	}}
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m := New(numplan.Default(), Options{Origin: origin.NewChecker(geoTestDB(t), origin.NewState(origin.StateOptions{Now: func() time.Time { return now }}))})
	m.Swap(snap)
	call := func(acct, sub, src string) Verdict {
		return m.Decide(&Query{To: "+441134960123", Account: acct, Subaccount: sub, SrcIP: src})
	}
	for _, tc := range []struct {
		acct, sub, src string
		reason         Reason
	}{
		{"stranger-1", "", srcGB, ReasonOK},
		{"stranger-2", "", srcNG, ReasonOK}, // not stranger-1's history
		{"stranger-1", "", srcNG, ReasonOriginScreen},
		{"team", "", srcGB, ReasonOK},
		{"team", "own", srcNG, ReasonOK},              // a history of its own
		{"team", "shared", srcNG, ReasonOriginScreen}, // the account's
		{"team", "nobody", srcNG, ReasonOriginScreen}, // unknown subaccount: the account's
		{"team", "own", srcGB, ReasonOriginScreen},
	} {
		if v := call(tc.acct, tc.sub, tc.src); v.Reason != tc.reason {
			t.Errorf("%s/%s from %s: %s, want %s (%q)", tc.acct, tc.sub, tc.src, v.Reason, tc.reason, v.RuleString())
		}
	}
}

// TestOriginQueryAt: a query's At (a transport's request time) is the
// time the origin checks record the call at, when the origin state keeps
// the real clock.
func TestOriginQueryAt(t *testing.T) {
	set := testSet()
	set.Operator.GeoProfiles = geoProfiles()
	set.Accounts["uk"] = policy.Account{Policy: policy.Policy{HomeCountry: sp("GB"), Origin: &policy.Origin{LocationChangeMinutes: ip(30)}}}
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	c := origin.NewChecker(geoTestDB(t), origin.NewState(origin.StateOptions{}))
	m := New(numplan.Default(), Options{Origin: c})
	m.Swap(snap)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if v := m.Decide(&Query{To: "+441134960123", Account: "uk", SrcIP: srcGB, At: at}); !v.OriginRan() || v.Action != Allow {
		t.Fatalf("%s %q", v.Action, v.RuleString())
	}
	if got := c.State().Status("uk").LastCallAt; !got.Equal(at) {
		t.Fatalf("last call at %v, want the query's %v", got, at)
	}
}
