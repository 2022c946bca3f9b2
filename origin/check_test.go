package origin

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Source addresses of the test database (testNets).
const (
	ipDE      = "10.0.0.1"
	ipDE2     = "10.0.0.2"
	ipFR      = "10.1.0.1"
	ipGB      = "81.2.69.1"
	ipSE      = "89.160.20.1"
	ipSEBlock = "89.160.20.200" // in the operator's blocked 89.160.20.128/25
	ipCN      = "175.16.199.7"
	ipZA      = "196.1.2.3"
	ipNG      = "127.0.0.1"
	ipUS6     = "2001:db8::1"
	ipNone    = "192.0.2.1" // not in the database
)

var testOperator = OperatorSpec{
	Profiles: map[string]ProfileSpec{
		"std": {
			Zones: []ZoneSpec{
				{Name: "europe", Action: "allow", Countries: []string{"DE", "FR", "GB", "SE"}},
				{Name: "watch", Action: "screen", Countries: []string{"NG", "US"}},
				{Name: "banned", Action: "reject", Countries: []string{"CN"}},
			},
			Default: "allow",
			Unknown: "screen",
		},
		"strict": {
			Zones:   []ZoneSpec{{Name: "home", Action: "allow", Countries: []string{"DE"}}},
			Default: "reject",
			Unknown: "reject",
		},
		"lax":   {Unknown: "allow"},
		"plain": {}, // unknown: screen, the default

	},
	BlockedSources: []string{"89.160.20.128/25"},
	BlockedOrigins: []string{"ZA"},
}

type fixture struct {
	t   *testing.T
	clk *clock
	op  *Operator
	st  *State
	c   *Checker
	geo *GeoIP
	chg []string
}

func newFixture(t *testing.T, withDB bool) *fixture {
	t.Helper()
	f := &fixture{t: t, clk: newClock()}
	op, err := CompileOperator(testOperator)
	if err != nil {
		t.Fatal(err)
	}
	f.op = op
	var mu sync.Mutex
	f.st = NewState(StateOptions{Now: f.clk.Now, CodeIterations: 1000, OnChange: func(a string, d Durable) {
		mu.Lock()
		f.chg = append(f.chg, a+":"+d.Home)
		mu.Unlock()
	}})
	if withDB {
		g, err := OpenGeoIP(buildMMDB(t, t.TempDir(), "geo.mmdb", testNets))
		if err != nil {
			t.Fatal(err)
		}
		f.geo = g
	}
	f.c = NewChecker(f.geo, f.st)
	return f
}

func (f *fixture) rules(s AccountSpec) *Rules {
	f.t.Helper()
	r, err := f.op.Account(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) call(account string, r *Rules, ip, dest string) Outcome {
	return f.c.Check(Input{Account: account, SrcIP: ip, Rules: r, DestCountry: dest, HomeCountry: "DE"})
}

func text(o Outcome) string { return string(o.AppendText(nil)) }

// TestCheckRules covers every rule with a fresh account each time.
func TestCheckRules(t *testing.T) {
	std := AccountSpec{Profile: "std"}
	for _, c := range []struct {
		name   string
		noDB   bool
		spec   AccountSpec
		setup  func(f *fixture, acc string)
		ip     string
		dest   string
		emerg  bool
		nilR   bool
		action Action
		kind   Kind
		rule   Rule
		text   string
	}{
		{name: "no rules", nilR: true, ip: ipCN, rule: RuleOff, text: "origin checks off"},
		{name: "emergency", spec: std, ip: ipCN, emerg: true, rule: RuleEmergency, text: "emergency call"},
		{name: "blocked source", spec: std, ip: ipSEBlock, action: Reject, kind: KindBlocked, rule: RuleBlockedSource, text: "source address on the operator's source blocklist"},
		{name: "blocked source without database", noDB: true, spec: std, ip: ipSEBlock, action: Reject, kind: KindBlocked, rule: RuleBlockedSource},
		{name: "blocked origin", spec: std, ip: ipZA, action: Reject, kind: KindBlocked, rule: RuleBlockedOrigin, text: "origin ZA on the operator's source blocklist"},
		{name: "blocked origin even when trusted", spec: AccountSpec{TrustedSources: []string{"196.0.0.0/8"}}, ip: ipZA, action: Reject, kind: KindBlocked, rule: RuleBlockedOrigin},
		{name: "untrusted", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/24"}}, ip: ipFR, action: Reject, kind: KindUntrusted, rule: RuleUntrusted, text: "not among the account's trusted sources"},
		{name: "untrusted without address", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/24"}}, ip: "", action: Reject, kind: KindUntrusted, rule: RuleUntrusted},
		{name: "untrusted garbage address", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/24"}}, ip: "10.0.0.1; drop", action: Reject, kind: KindUntrusted, rule: RuleUntrusted},
		{name: "trusted skips geo", spec: AccountSpec{Profile: "std", TrustedSources: []string{"175.16.199.0/24"}}, ip: ipCN, rule: RuleTrusted, text: "among the account's trusted sources"},
		{name: "trusted mapped v6", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/24"}}, ip: "::ffff:10.0.0.9", rule: RuleTrusted},
		{name: "trusted v6", spec: AccountSpec{TrustedSources: []string{"2001:db8::/48"}}, ip: "[2001:db8::5]", rule: RuleTrusted},
		{name: "no database", noDB: true, spec: std, ip: ipCN, action: Screen, kind: KindScreen, rule: RuleNoGeo, text: `origin unknown: no Geo-IP database: geo profile "std" says screen`},
		{name: "no database strict profile rejects", noDB: true, spec: AccountSpec{Profile: "strict"}, ip: ipCN, action: Reject, kind: KindRejected, rule: RuleNoGeo},
		{name: "no database operator blocks countries", noDB: true, spec: AccountSpec{Profile: "lax"}, ip: ipZA, action: Screen, kind: KindScreen, rule: RuleNoGeo},
		{name: "no database stationary", noDB: true, spec: AccountSpec{Mobility: "stationary", Home: "DE"}, ip: ipDE, action: Screen, kind: KindScreen, rule: RuleNoGeo},
		{name: "missing address stationary at home", spec: AccountSpec{Mobility: "stationary", Home: "DE"}, ip: "", action: Screen, kind: KindScreen, rule: RuleUnknownOrigin, text: "origin unknown: no source address: screen"},
		{name: "unknown address stationary", spec: AccountSpec{Mobility: "stationary", Home: "DE"}, ip: ipNone, action: Screen, kind: KindScreen, rule: RuleUnknownOrigin},
		{name: "garbage address stationary", spec: AccountSpec{Mobility: "stationary", Home: "DE"}, ip: "127.0.0.256", action: Screen, kind: KindScreen, rule: RuleUnknownOrigin, text: "source address unreadable"},
		{name: "unknown origin default screen", spec: AccountSpec{Profile: "plain"}, ip: ipNone, action: Screen, kind: KindScreen, rule: RuleUnknownOrigin},
		{name: "unknown origin allowed by choice", spec: AccountSpec{Profile: "lax"}, ip: ipNone, rule: RuleUnknownOrigin},
		{name: "unknown origin strict missing address", spec: AccountSpec{Profile: "strict"}, ip: "", action: Reject, kind: KindRejected, rule: RuleUnknownOrigin},
		{name: "ip:port read as the address", spec: AccountSpec{Mobility: "stationary", Home: "GB"}, ip: "81.2.69.1:5060", rule: RuleHome},
		{name: "[v6]:port read as the address", spec: std, ip: "[2001:db8::1]:5060", action: Screen, kind: KindScreen, rule: RuleZone},
		{name: "blanks around the address", spec: AccountSpec{Mobility: "stationary", Home: "DE"}, ip: " 10.0.0.1\t", rule: RuleHome},
		{name: "zone dropped", spec: std, ip: "2001:db8::1%eth0", action: Screen, kind: KindScreen, rule: RuleZone},
		{name: "port does not dodge the blocklist", spec: std, ip: ipSEBlock + ":5060", action: Reject, kind: KindBlocked, rule: RuleBlockedSource},
		{name: "zone reject", spec: std, ip: ipCN, action: Reject, kind: KindRejected, rule: RuleZone, text: `origin CN in zone "banned" of geo profile "std": reject`},
		{name: "zone reject but home", spec: AccountSpec{Profile: "std", Home: "CN"}, ip: ipCN, rule: RuleHome, text: "origin CN is the account's home country"},
		{name: "default reject", spec: AccountSpec{Profile: "strict"}, ip: ipFR, action: Reject, kind: KindRejected, rule: RuleZone, text: `origin FR in no zone of geo profile "strict": reject`},
		{name: "unknown origin reject", spec: AccountSpec{Profile: "strict"}, ip: ipNone, action: Reject, kind: KindRejected, rule: RuleUnknownOrigin, text: `origin unknown to the Geo-IP database: geo profile "strict" says reject`},
		{name: "unknown origin screen", spec: std, ip: ipNone, action: Screen, kind: KindScreen, rule: RuleUnknownOrigin},
		{name: "unparsable address screens as unknown", spec: std, ip: "sip:evil", action: Screen, kind: KindScreen, rule: RuleUnknownOrigin},
		{name: "unknown origin without country rules", spec: AccountSpec{}, ip: ipNone, rule: RuleUnknownOrigin, text: "origin unknown to the Geo-IP database: allow"},
		{name: "zone screen", spec: std, ip: ipNG, action: Screen, kind: KindScreen, rule: RuleZone, text: `origin NG in zone "watch" of geo profile "std": screen`},
		{name: "zone screen v6", spec: std, ip: ipUS6, action: Screen, kind: KindScreen, rule: RuleZone},
		{name: "zone screen but home", spec: AccountSpec{Profile: "std", Home: "NG"}, ip: ipNG, rule: RuleHome},
		{name: "zone allow", spec: std, ip: ipGB, rule: RuleZone, text: `origin GB in zone "europe" of geo profile "std": allow`},
		{name: "profile default allow", spec: std, ip: "203.0.113.1", rule: RuleZone, text: `origin AU in no zone of geo profile "std": allow`},
		{name: "no profile roaming", spec: AccountSpec{}, ip: ipCN, rule: RuleAllowed, text: "origin CN allowed"},
		{name: "stationary abroad", spec: AccountSpec{Profile: "std", Mobility: "stationary", Home: "DE"}, ip: ipFR, action: Screen, kind: KindScreen, rule: RuleStationary, text: "stationary account at home in DE calling from FR"},
		{name: "stationary at home", spec: AccountSpec{Profile: "std", Mobility: "stationary", Home: "DE"}, ip: ipDE, rule: RuleHome},
		{name: "stationary without home", spec: AccountSpec{Mobility: "stationary"}, ip: ipDE, action: Screen, kind: KindScreen, rule: RuleNoHome, text: "stationary account without a home country, origin DE"},
		{name: "stationary home from state", spec: AccountSpec{Mobility: "stationary"}, setup: func(f *fixture, acc string) {
			if _, err := f.st.SetHome(acc, "fr"); err != nil {
				f.t.Fatal(err)
			}
		}, ip: ipFR, rule: RuleHome},
		{name: "policy home beats state home", spec: AccountSpec{Mobility: "stationary", Home: "DE"}, setup: func(f *fixture, acc string) {
			f.st.SetHome(acc, "FR")
		}, ip: ipFR, action: Screen, kind: KindScreen, rule: RuleStationary},
		{name: "roaming abroad", spec: AccountSpec{Profile: "std", Home: "DE"}, ip: ipFR, rule: RuleZone},
		{name: "assign home", spec: AccountSpec{Profile: "std", Mobility: "stationary", AssignHome: true}, ip: ipGB, rule: RuleHomeAssigned, text: "origin GB allowed and assigned as the account's home country"},
		{name: "no assignment from a screened zone", spec: AccountSpec{Profile: "std", Mobility: "stationary", AssignHome: true}, ip: ipNG, action: Screen, kind: KindScreen, rule: RuleZone},
		{name: "no assignment from unknown origin", spec: AccountSpec{Profile: "std", AssignHome: true}, ip: ipNone, action: Screen, kind: KindScreen, rule: RuleUnknownOrigin},
		{name: "quarantined international", spec: std, setup: quarantine, ip: ipDE, dest: "FR", action: Reject, kind: KindQuarantined, rule: RuleQuarantine, text: "account quarantined after 3 failed screenings"},
		{name: "quarantined unknown destination", spec: std, setup: quarantine, ip: ipDE, dest: "", action: Reject, kind: KindQuarantined, rule: RuleQuarantine},
		{name: "quarantined domestic", spec: std, setup: quarantine, ip: ipDE, dest: "DE", rule: RuleZone},
		{name: "quarantined domestic by origin home", spec: AccountSpec{Home: "GB"}, setup: quarantine, ip: ipGB, dest: "GB", rule: RuleHome},
		{name: "quarantined emergency", spec: std, setup: quarantine, ip: ipDE, emerg: true, rule: RuleEmergency},
		{name: "quarantine beats trust", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/8"}}, setup: quarantine, ip: ipDE, dest: "US", action: Reject, kind: KindQuarantined, rule: RuleQuarantine},
		{name: "pass waives zone screen", spec: std, setup: pass, ip: ipNG, rule: RulePassed, text: `screening passed recently: waived (origin NG in zone "watch" of geo profile "std": screen)`},
		{name: "pass does not waive reject", spec: std, setup: pass, ip: ipCN, action: Reject, kind: KindRejected, rule: RuleZone},
		{name: "pass does not waive untrusted", spec: AccountSpec{TrustedSources: []string{"10.0.0.0/24"}}, setup: pass, ip: ipGB, action: Reject, kind: KindUntrusted, rule: RuleUntrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, !c.noDB)
			acc := "acct-" + strings.ReplaceAll(c.name, " ", "-")
			var r *Rules
			if !c.nilR {
				r = f.rules(c.spec)
			}
			if c.setup != nil {
				c.setup(f, acc)
			}
			dest := c.dest
			if dest == "" && c.name != "quarantined unknown destination" {
				dest = "GB"
			}
			o := f.c.Check(Input{Account: acc, SrcIP: c.ip, Rules: r, DestCountry: dest, HomeCountry: "DE", Emergency: c.emerg})
			if o.Action != c.action || o.Kind != c.kind || o.Rule != c.rule {
				t.Fatalf("got %s/%s/%s (%s), want %s/%s/%s", o.Action, o.Kind, o.Rule, text(o), c.action, c.kind, c.rule)
			}
			if c.text != "" && !strings.Contains(text(o), c.text) {
				t.Fatalf("text %q lacks %q", text(o), c.text)
			}
		})
	}
}

func quarantine(f *fixture, acc string) {
	for i := 0; i < 3; i++ {
		if _, err := f.st.ScreeningFailed(acc, f.rules(AccountSpec{})); err != nil {
			f.t.Fatal(err)
		}
	}
}

func pass(f *fixture, acc string) {
	if _, err := f.st.ScreeningPassed(acc, f.rules(AccountSpec{PassMinutes: 10})); err != nil {
		f.t.Fatal(err)
	}
}

func TestLocationChangeByCountry(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", ChangeMinutes: 30})
	steps := []struct {
		after  time.Duration
		ip     string
		action Action
		rule   Rule
		text   string
	}{
		{0, ipDE, Allow, RuleZone, ""},
		{5 * time.Minute, ipDE2, Allow, RuleZone, ""}, // same country, other IP
		{5 * time.Minute, ipFR, Screen, RuleLocationChange, "origin FR, last call from DE 5 min ago, within the 30 min location-change period"},
		{time.Minute, ipFR, Screen, RuleLocationChange, "last call from DE 6 min ago"}, // a screened call is not the last one
		{25 * time.Minute, ipDE, Allow, RuleZone, ""},
		{29 * time.Minute, ipGB, Screen, RuleLocationChange, "last call from DE 29 min ago"},
		{30 * time.Minute, ipGB, Allow, RuleZone, ""}, // period over
		{10 * time.Second, ipNone, Screen, RuleUnknownOrigin, ""},
		{10 * time.Second, "", Screen, RuleUnknownOrigin, ""},
		{10 * time.Second, ipDE, Screen, RuleLocationChange, "last call from GB 30 s ago"}, // unknown origins erase nothing
		{time.Minute, ipCN, Reject, RuleZone, ""},
		{time.Minute, ipGB, Allow, RuleZone, ""}, // rejected calls do not move the account
	}
	for i, s := range steps {
		f.clk.Add(s.after)
		o := f.call("alice", r, s.ip, "GB")
		if o.Action != s.action || o.Rule != s.rule {
			t.Fatalf("step %d (%s): %s/%s %q", i, s.ip, o.Action, o.Rule, text(o))
		}
		if s.text != "" && !strings.Contains(text(o), s.text) {
			t.Fatalf("step %d: %q lacks %q", i, text(o), s.text)
		}
	}
	// Other accounts are unaffected.
	if o := f.call("bob", r, ipFR, "GB"); o.Action != Allow {
		t.Fatalf("bob: %s", text(o))
	}
}

func TestLocationChangeByIP(t *testing.T) {
	for _, withDB := range []bool{true, false} {
		f := newFixture(t, withDB)
		if !withDB {
			// Without a database an operator's country blocklist screens
			// every call; this operator has none.
			f.op, _ = CompileOperator(OperatorSpec{})
		}
		r := f.rules(AccountSpec{ChangeMinutes: 10, ChangeBy: "ip"})
		if o := f.call("a", r, ipDE, ""); o.Action != Allow {
			t.Fatal(text(o))
		}
		f.clk.Add(30 * time.Second)
		if o := f.call("a", r, "::ffff:"+ipDE, ""); o.Action != Allow {
			t.Fatalf("mapped form of the same address: %s", text(o))
		}
		f.clk.Add(time.Minute)
		o := f.call("a", r, ipDE2, "")
		if o.Action != Screen || o.Rule != RuleLocationChange || !strings.Contains(text(o), "source address changed 1 min ago, within the 10 min location-change period") {
			t.Fatalf("db=%v: %s/%s %q", withDB, o.Action, o.Rule, text(o))
		}
		f.clk.Add(11 * time.Minute)
		if o := f.call("a", r, ipDE, ""); o.Action != Allow {
			t.Fatal(text(o))
		}
	}
}

func TestHomeAssignment(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", Mobility: "stationary", AssignHome: true})
	if o := f.call("carol", r, ipNG, ""); o.Action != Screen {
		t.Fatalf("first call from a screened zone: %s", text(o))
	}
	if o := f.call("carol", r, ipSE, ""); o.Rule != RuleHomeAssigned || o.Home != "SE" {
		t.Fatalf("%s %q", o.Rule, text(o))
	}
	if got := f.st.Status("carol"); got.Home != "SE" || !got.HomeAssigned {
		t.Fatalf("status %+v", got)
	}
	if len(f.chg) != 1 || f.chg[0] != "carol:SE" {
		t.Fatalf("OnChange calls %v", f.chg)
	}
	if o := f.call("carol", r, ipSE, ""); o.Rule != RuleHome {
		t.Fatalf("second call: %s", text(o))
	}
	if o := f.call("carol", r, ipGB, ""); o.Action != Screen || o.Rule != RuleStationary {
		t.Fatalf("stationary elsewhere: %s", text(o))
	}
	if _, err := f.st.ClearHome("carol"); err != nil {
		t.Fatal(err)
	}
	if o := f.call("carol", r, ipGB, ""); o.Rule != RuleHomeAssigned || o.Home != "GB" {
		t.Fatalf("after clear: %s", text(o))
	}
	// Set by the operator: not overwritten.
	if _, err := f.st.SetHome("carol", "DE"); err != nil {
		t.Fatal(err)
	}
	if st := f.st.Status("carol"); st.Home != "DE" || st.HomeAssigned {
		t.Fatalf("status %+v", st)
	}
	if o := f.call("carol", r, ipGB, ""); o.Rule != RuleStationary {
		t.Fatalf("set home: %s", text(o))
	}
	if _, err := f.st.SetHome("carol", "XX"); err == nil {
		t.Fatal("bad country accepted")
	}
	if _, err := f.st.SetHome("bad name", "DE"); err == nil {
		t.Fatal("bad account accepted")
	}
}

func TestScreeningFlow(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", PassMinutes: 15, MaxFailed: 2})
	screened := func() Outcome { return f.call("dave", r, ipNG, "GB") }
	if o := screened(); o.Action != Screen {
		t.Fatal(text(o))
	}
	st, err := f.st.ScreeningPassed("dave", r)
	if err != nil || !st.PassUntil.Equal(f.clk.Now().Add(15*time.Minute)) {
		t.Fatalf("%+v %v", st, err)
	}
	f.clk.Add(14 * time.Minute)
	if o := screened(); o.Action != Allow || o.Rule != RulePassed || o.Waived != RuleZone {
		t.Fatal(text(o))
	}
	f.clk.Add(time.Minute)
	if o := screened(); o.Action != Screen {
		t.Fatalf("window closed: %s", text(o))
	}
	// Two failures quarantine; a pass in between resets the count.
	f.st.ScreeningFailed("dave", r)
	f.st.ScreeningPassed("dave", r)
	st, _ = f.st.ScreeningFailed("dave", r)
	if st.Quarantined || st.FailedScreens != 1 || !st.PassUntil.IsZero() {
		t.Fatalf("%+v", st)
	}
	st, _ = f.st.ScreeningFailed("dave", r)
	if !st.Quarantined || st.FailedScreens != 2 {
		t.Fatalf("%+v", st)
	}
	if o := f.call("dave", r, ipDE, "GB"); o.Kind != KindQuarantined {
		t.Fatal(text(o))
	}
	if o := f.call("dave", r, ipDE, "DE"); o.Action != Allow {
		t.Fatalf("domestic: %s", text(o))
	}
	// A pass does not lift quarantine; Release does.
	f.st.ScreeningPassed("dave", r)
	if o := f.call("dave", r, ipDE, "GB"); o.Kind != KindQuarantined {
		t.Fatal(text(o))
	}
	st, _ = f.st.Release("dave")
	if st.Quarantined || st.FailedScreens != 0 {
		t.Fatalf("%+v", st)
	}
	if o := f.call("dave", r, ipDE, "GB"); o.Action != Allow {
		t.Fatal(text(o))
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		op    OperatorSpec
		field string
		msg   string
	}{
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{{Name: "z", Action: "block", Countries: []string{"DE"}}}}}}, "profiles.p.zones[0].action", "unknown action"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{{Name: "z", Action: "allow"}}}}}, "profiles.p.zones[0].countries", "at least one"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{{Name: "z", Action: "allow", Countries: []string{"DE", "XX"}}}}}}, "profiles.p.zones[0].countries[1]", "unknown country"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{{Name: "z", Action: "allow", Countries: []string{"001"}}}}}}, "profiles.p.zones[0].countries[0]", "not a country"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{
			{Name: "a", Action: "allow", Countries: []string{"continent:EU"}},
			{Name: "b", Action: "reject", Countries: []string{"FR"}},
		}}}}, "profiles.p.zones[1].countries", `FR is already in zone "a"`},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{
			{Name: "a", Action: "allow", Countries: []string{"DE"}}, {Name: "a", Action: "allow", Countries: []string{"FR"}},
		}}}}, "profiles.p.zones[1].name", "defined twice"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Zones: []ZoneSpec{{Name: "", Action: "allow", Countries: []string{"DE"}}}}}}, "profiles.p.zones[0].name", "empty"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Default: "maybe"}}}, "profiles.p.default", "unknown action"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"p": {Unknown: "maybe"}}}, "profiles.p.unknown", "unknown action"},
		{OperatorSpec{Profiles: map[string]ProfileSpec{"bad name": {}}}, "profiles.bad name", "not allowed"},
		{OperatorSpec{BlockedSources: []string{"10.0.0.0/8", "10.0.0.1/8"}}, "blocked_sources[1]", "did you mean"},
		{OperatorSpec{BlockedOrigins: []string{"ZZ"}}, "blocked_origins[0]", "unknown country"},
	} {
		_, err := CompileOperator(c.op)
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%+v: err %v, want %s: …%s", c.op, err, c.field, c.msg)
		}
	}
	op, err := CompileOperator(testOperator)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec  AccountSpec
		field string
		msg   string
	}{
		{AccountSpec{Profile: "nope"}, "geo_profile", `no geo profile "nope" (operator profiles: lax, plain, std, strict)`},
		{AccountSpec{Mobility: "nomad"}, "mobility", "unknown mobility"},
		{AccountSpec{Home: "XX"}, "home_origin", "unknown country"},
		{AccountSpec{Home: "001"}, "home_origin", "unknown country"},
		{AccountSpec{ChangeMinutes: -1}, "location_change_minutes", "outside"},
		{AccountSpec{ChangeMinutes: MaxMinutes + 1}, "location_change_minutes", "outside"},
		{AccountSpec{ChangeBy: "asn"}, "location_change_by", "unknown value"},
		{AccountSpec{PassMinutes: -5}, "screening_pass_minutes", "outside"},
		{AccountSpec{MaxFailed: 101}, "max_failed_screenings", "outside"},
		{AccountSpec{TrustedSources: []string{"192.0.2.0/24", "bogus"}}, "trusted_sources[1]", "not an IP address"},
	} {
		_, err := op.Account(c.spec)
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%+v: err %v, want %s: …%s", c.spec, err, c.field, c.msg)
		}
	}
	r, err := op.Account(AccountSpec{Mobility: "Stationary", Home: " de ", ChangeBy: "IP"})
	if err != nil || !r.stationary || r.home != packCC("DE") || !r.changeByIP || r.PassMinutes() != DefaultPassMin || r.MaxFailed() != DefaultMaxFailed {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := (*Operator)(nil).Account(AccountSpec{}); err != nil || r == nil {
		t.Fatal("nil operator", err)
	}
	p, _ := op.Profile("std")
	if a, z := p.Lookup("cn"); a != Reject || z != "banned" {
		t.Fatalf("%s %s", a, z)
	}
	if a, z := p.Lookup(""); a != Screen || z != "" {
		t.Fatalf("unknown: %s %s", a, z)
	}
}

func TestStatePrune(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{ChangeMinutes: 5})
	f.call("a", r, ipDE, "")
	f.call("b", r, ipDE, "")
	f.st.SetHome("b", "DE")
	if f.st.Len() != 2 {
		t.Fatal(f.st.Len())
	}
	f.clk.Add(2 * time.Hour)
	if n := f.st.Prune(time.Hour); n != 1 || f.st.Len() != 1 {
		t.Fatalf("pruned %d, %d left", n, f.st.Len())
	}
	if f.st.Status("b").Home != "DE" {
		t.Fatal("durable state pruned")
	}
}

func TestStateCap(t *testing.T) {
	clk := newClock()
	st := NewState(StateOptions{Now: clk.Now, MaxAccounts: 2})
	op, _ := CompileOperator(OperatorSpec{})
	r, _ := op.Account(AccountSpec{ChangeMinutes: 5, ChangeBy: "ip"})
	c := NewChecker(nil, st)
	for _, a := range []string{"a", "b", "c", "d"} {
		if o := c.Check(Input{Account: a, SrcIP: ipDE, Rules: r}); o.Action != Allow {
			t.Fatal(text(o))
		}
	}
	if st.Len() != 2 {
		t.Fatalf("%d accounts kept", st.Len())
	}
}

func TestExportRestore(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{PassMinutes: 30})
	f.st.SetHome("a", "FR")
	f.st.ScreeningPassed("a", r)
	f.st.ScreeningFailed("b", r)
	f.st.SetUnblockCode("c", "123456")
	f.call("d", f.rules(AccountSpec{ChangeMinutes: 5}), ipDE, "") // history only
	ex := f.st.Export()
	if len(ex) != 3 || ex["a"].Home != "FR" || ex["a"].PassUntil.IsZero() || ex["b"].Failed != 1 || ex["c"].UnblockCode == "" {
		t.Fatalf("%+v", ex)
	}
	g := NewState(StateOptions{Now: f.clk.Now})
	if err := g.Restore(ex); err != nil {
		t.Fatal(err)
	}
	if got := g.Export(); len(got) != 3 || got["a"] != ex["a"] || got["b"] != ex["b"] || got["c"] != ex["c"] {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := g.VerifyUnblockCode("c", r, "123456"); err != nil {
		t.Fatalf("restored code: %v", err)
	}
	for _, bad := range []map[string]Durable{
		{"x": {Home: "QQ"}},
		{"bad name": {}},
		{"x": {Failed: -1}},
		{"x": {UnblockCode: "md5$abc"}},
	} {
		before := g.Export()
		bad["a"] = Durable{Home: "GB"}
		if err := g.Restore(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		if after := g.Export(); after["a"] != before["a"] {
			t.Errorf("failed restore changed state")
		}
	}
}

// TestScreenedCallsDoNotMoveTheAccount: a screened call, failed or not, is
// never the account's last call, so redialling meets the same screen; one
// whose screening passed is. Both location_change_by modes.
func TestScreenedCallsDoNotMoveTheAccount(t *testing.T) {
	for _, by := range []string{"country", "ip"} {
		t.Run(by, func(t *testing.T) {
			f := newFixture(t, true)
			r := f.rules(AccountSpec{Profile: "std", Home: "DE", ChangeMinutes: 60, ChangeBy: by, PassMinutes: 1})
			if o := f.call("u", r, ipDE, ""); o.Action != Allow {
				t.Fatal(text(o))
			}
			f.clk.Add(time.Minute)
			for i := 0; i < 3; i++ {
				o := f.call("u", r, ipGB, "")
				if o.Action != Screen || o.Rule != RuleLocationChange {
					t.Fatalf("call %d from GB after failed screenings: %s %q", i+1, o.Action, text(o))
				}
				if i < 2 {
					if _, err := f.st.ScreeningFailed("u", r); err != nil {
						t.Fatal(err)
					}
				}
				f.clk.Add(time.Minute)
			}
			if st := f.st.Status("u"); st.LastCountry != "DE" {
				t.Fatalf("last country %q after screened calls", st.LastCountry)
			}
			// The third screening passes: GB is where the account is now,
			// after the one-minute pass window too.
			if _, err := f.st.ScreeningPassed("u", r); err != nil {
				t.Fatal(err)
			}
			f.clk.Add(2 * time.Minute)
			if o := f.call("u", r, ipGB, ""); o.Action != Allow || o.Rule == RulePassed {
				t.Fatalf("call from GB after a passed screening: %s %q", o.Action, text(o))
			}
			if st := f.st.Status("u"); st.LastCountry != "GB" {
				t.Fatalf("last country %q after a passed screening", st.LastCountry)
			}
			// A rejected call moves nothing either.
			if o := f.call("u", r, ipCN, ""); o.Action != Reject {
				t.Fatal(text(o))
			}
			if o := f.call("u", r, ipGB, ""); o.Action != Allow {
				t.Fatalf("after a rejected call: %s", text(o))
			}
		})
	}
}

// TestUnknownOriginsCounted: unknown origins are counted by cause.
func TestUnknownOriginsCounted(t *testing.T) {
	count := func(c *Checker) map[string]uint64 {
		m := map[string]uint64{}
		c.Unknowns(func(cause UnknownCause, n uint64) { m[cause.String()] = n })
		return m
	}
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std"})
	for _, ip := range []string{"", " ", "sip:x", ipNone, ipNone, ipDE} {
		f.call("k", r, ip, "")
	}
	if got := count(f.c); got["missing"] != 2 || got["invalid"] != 1 || got["not_in_database"] != 2 || got["no_geoip"] != 0 || len(got) != 4 {
		t.Fatalf("with a database: %v", got)
	}
	f = newFixture(t, false)
	f.call("k", f.rules(AccountSpec{Profile: "std"}), ipDE, "")
	if got := count(f.c); got["no_geoip"] != 1 {
		t.Fatalf("without a database: %v", got)
	}
	if !f.c.Degraded(true) || f.c.Degraded(false) {
		t.Fatal("Degraded without a database")
	}
}
