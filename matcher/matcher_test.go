package matcher

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

func sp(s string) *string      { return &s }
func ip(i int) *int            { return &i }
func lp(l ...string) *[]string { return &l }

// testSet is a small operator setup exercising every layer.
func testSet() *policy.Set {
	return &policy.Set{
		Operator: policy.Operator{
			DisabledCountries: map[string]policy.DisabledCountry{"KP": {Reason: "sanctions"}, "LV": {Reason: "IRSF wave 2026-11"}},
			BlockedPrefixes:   []policy.BlockedPrefix{{Prefix: "+4470", Reason: "personal numbers abused"}},
		},
		Accounts: map[string]policy.Account{
			"acme": {
				Policy: policy.Policy{
					HomeCountry:   sp("US"),
					Countries:     &policy.CountryRule{Default: policy.Allow, Except: []string{"CU", "SO"}},
					AllowPrefixes: lp("+4420", "+88216"),
					BlockPrefixes: lp("+3320", "+44207"),
					MaxChannels:   ip(160),
					MaxCPS:        ip(20),
				},
				Subaccounts: map[string]policy.Policy{
					"sales": {Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:NA"}}},
					"ships": {HighRisk: sp(policy.HighRiskAllow), MaxCPS: ip(2)},
				},
			},
			"nanp-only": {Policy: policy.Policy{
				HomeCountry: sp("CA"),
				Countries:   &policy.CountryRule{Default: policy.Deny, Except: []string{"nanp"}},
			}},
			"uk":   {Policy: policy.Policy{HomeCountry: sp("GB")}},
			"aus":  {Policy: policy.Policy{HomeCountry: sp("AU")}},
			"lv":   {Policy: policy.Policy{HomeCountry: sp("LV")}},
			"none": {Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny}}},
		},
		HighRisk: []policy.HighRiskEntry{
			{Prefix: "+881", Country: "001", Category: "satellite", Source: "test GMSS"},
			{Prefix: "+88216", Country: "001", Category: "satellite", Source: "test Thuraya"},
			{Prefix: "+44909", Country: "GB", Category: "premium_rate", Source: "test GB premium"},
			{Prefix: "+4420", Country: "GB", Category: "irsf", Source: "test overlap"},
			{Prefix: "+2317", Country: "LR", Category: "irsf", Source: "test LR"},
		},
	}
}

func newTestMatcher(t testing.TB, set *policy.Set) *Matcher {
	t.Helper()
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	m := New(numplan.Default(), Options{})
	m.Swap(snap)
	return m
}

type want struct {
	action  Action
	reason  Reason
	country string
	e164    string
	rule    string // substring of the rule text; "" = don't check
}

func TestDecide(t *testing.T) {
	m := newTestMatcher(t, testSet())
	f := func(account, sub, to string, w want) {
		t.Helper()
		v := m.Decide(&Query{To: to, Account: account, Subaccount: sub})
		rule := v.RuleString()
		if v.Action != w.action || v.Reason != w.reason || v.Country != w.country || v.E164() != w.e164 {
			t.Errorf("%s/%s %q: got %s %s country=%q e164=%q (%s); want %s %s country=%q e164=%q",
				account, sub, to, v.Action, v.Reason, v.Country, v.E164(), rule, w.action, w.reason, w.country, w.e164)
			return
		}
		if !strings.Contains(rule, w.rule) {
			t.Errorf("%s/%s %q: rule %q does not contain %q", account, sub, to, rule, w.rule)
		}
	}
	ok := func(cc, e164, rule string) want { return want{Allow, ReasonOK, cc, e164, rule} }
	rej := func(r Reason, cc, e164, rule string) want { return want{Reject, r, cc, e164, rule} }

	// Formats: E.164, 00, the home IDD, national, URI leftovers, separators.
	f("acme", "", "+442031234567", ok("GB", "+442031234567", "account acme: allow prefix +4420"))
	f("acme", "", "+49 30 1234567", ok("DE", "+49301234567", "account acme: countries allow-all-except; DE not listed"))
	f("acme", "", "0049301234567", ok("DE", "+49301234567", ""))
	f("acme", "", "011 49 30 1234567", ok("DE", "+49301234567", ""))
	f("acme", "", "(212) 555-0100", ok("US", "+12125550100", ""))
	f("acme", "", "1-212-555-0100", ok("US", "+12125550100", ""))
	f("acme", "", "%2B49301234567", ok("DE", "+49301234567", ""))
	f("acme", "", "tel:+49-30-1234567", ok("DE", "+49301234567", ""))
	f("acme", "", "sip:+49301234567@carrier.example;user=phone", ok("DE", "+49301234567", ""))
	f("acme", "", "sip:0049.30.1234567@carrier.example", ok("DE", "+49301234567", ""))
	f("uk", "", "07700 900123", ok("GB", "+447700900123", ""))
	f("uk", "", "020 7946 0958", want{Reject, ReasonNumberBarred, "GB", "+442079460958", "high-risk prefix +4420 (irsf; test overlap), blocked by default policy"})
	f("aus", "", "0011 49 30 1234567", ok("DE", "+49301234567", ""))
	f("aus", "", "02 9374 4000", ok("AU", "+61293744000", ""))
	f("", "", "49301234567", ok("DE", "+49301234567", "default policy"))

	// NANP and other shared codes resolve to the right country.
	f("acme", "", "+1 876 555 0123", ok("JM", "+18765550123", ""))
	f("acme", "", "+1 809 555 0123", ok("DO", "+18095550123", ""))
	f("acme", "", "+1 787 555 0123", ok("PR", "+17875550123", ""))
	f("acme", "", "+1 416 555 0123", ok("CA", "+14165550123", ""))
	f("acme", "", "+7 727 258 0000", ok("KZ", "+77272580000", ""))
	f("acme", "", "+7 495 123 4567", ok("RU", "+74951234567", ""))
	f("acme", "", "+44 1481 256789", ok("GG", "+441481256789", ""))
	f("acme", "", "+44 1624 456789", ok("IM", "+441624456789", ""))
	f("acme", "", "+800 1234 5678", ok("001", "+80012345678", ""))

	// Emergency numbers pass before any block, as dialled.
	emerg := func(cc, n string) want { return want{Allow, ReasonEmergency, cc, n, "always allowed"} }
	f("acme", "", "911", emerg("US", "911"))
	f("uk", "", "999", emerg("GB", "999"))
	f("uk", "", "112", emerg("GB", "112"))
	f("aus", "", "000", emerg("AU", "000"))
	f("none", "", "112", emerg("", "112"))
	f("lv", "", "112", emerg("LV", "112")) // home country disabled by the operator: still passes

	// Invalid input is a verdict, never a panic.
	inv := func(rule string) want { return rej(ReasonInvalidNumber, "", "", rule) }
	f("acme", "", "", inv("empty"))
	f("acme", "", "abc", inv("character"))
	f("acme", "", "+44+20", inv("character"))
	f("acme", "", "44*20", inv("character"))
	f("acme", "", "%2", inv("character"))
	f("acme", "", "+"+strings.Repeat("1", 33), inv("longer than 32"))
	f("acme", "", "+4420794609581234", inv("wrong length"))
	f("acme", "", "+999 1234 5678", inv("no country"))
	f("acme", "", "+1 055 555 0123", inv("no country")) // NANP area codes start 2-9
	f("acme", "", "+1 555 555 0123", inv("no country")) // unassigned NANP area code: fail closed
	f("acme", "", "+1 212 055 0123", inv("no country")) // and so do exchanges
	f("acme", "", "+44 7700 900123", ok("GB", "+447700900123", ""))
	f("acme", "", "+44 20", inv("wrong length"))
	f("none", "", "07700900123", inv("no home country"))

	// Operator layer: no account can re-enable.
	f("acme", "", "+850 2 123 4567", rej(ReasonCountryDisabled, "KP", "+85021234567", "operator: calls to KP disabled: sanctions"))
	f("acme", "", "+44 7000 123456", rej(ReasonNumberBarred, "GB", "+447000123456", "operator: prefix +4470 blocked: personal numbers abused"))

	// Account layer: countries, prefixes, high-risk.
	f("acme", "", "+53 7 1234567", rej(ReasonCountryBarred, "CU", "+5371234567", "account acme: countries allow-all-except; CU listed"))
	f("acme", "", "+33 2 12 34 56 78", ok("FR", "+33212345678", ""))
	f("acme", "", "+33 20 12 34 56 7", rej(ReasonNumberBarred, "FR", "+33201234567", "account acme: block prefix +3320"))
	f("acme", "", "+44 207 946 0958", rej(ReasonNumberBarred, "GB", "+442079460958", "block prefix +44207")) // longer block beats allow +4420
	f("acme", "", "+881 6 12345678", rej(ReasonNumberBarred, "001", "+881612345678", "high-risk prefix +881 (satellite; test GMSS), blocked by default policy"))
	f("acme", "", "+88216 1234567", ok("001", "+882161234567", "allow prefix +88216")) // explicit allow beats same-length high-risk
	f("acme", "", "+231 77 123 4567", rej(ReasonNumberBarred, "LR", "+231771234567", "high-risk prefix +2317"))

	// Subaccounts override what they set and inherit the rest.
	f("acme", "sales", "+1 876 555 0123", ok("JM", "+18765550123", "subaccount acme/sales: countries deny-all-except; JM listed via continent:NA"))
	f("acme", "sales", "+49 30 1234567", rej(ReasonCountryBarred, "DE", "+49301234567", "subaccount acme/sales: countries deny-all-except; DE not listed"))
	f("acme", "sales", "+442031234567", ok("GB", "+442031234567", "account acme: allow prefix +4420")) // inherited allow prefix
	f("acme", "ships", "+881 6 12345678", ok("001", "+881612345678", "account acme: countries"))
	f("acme", "ships", "+53 7 1234567", rej(ReasonCountryBarred, "CU", "+5371234567", "account acme"))
	f("acme", "nosuch", "+53 7 1234567", rej(ReasonCountryBarred, "CU", "+5371234567", "account acme")) // unknown subaccount: the account's policy

	// Selectors.
	f("nanp-only", "", "+1 876 555 0123", ok("JM", "+18765550123", "JM listed via nanp"))
	f("nanp-only", "", "+52 55 1234 5678", rej(ReasonCountryBarred, "MX", "+525512345678", "deny-all-except; MX not listed"))
	f("none", "", "+49 30 1234567", rej(ReasonCountryBarred, "DE", "+49301234567", "account none: countries deny-all-except; DE not listed"))

	// Unknown accounts get the default policy.
	f("stranger", "", "+49 30 1234567", ok("DE", "+49301234567", "default policy: countries allow-all-except; DE not listed"))
	f("stranger", "", "+881 6 12345678", rej(ReasonNumberBarred, "001", "+881612345678", "default policy"))
}

func TestDecideCaps(t *testing.T) {
	m := newTestMatcher(t, testSet())
	f := func(account, sub string, ch, cps int) {
		t.Helper()
		v := m.Decide(&Query{To: "+49301234567", Account: account, Subaccount: sub})
		if v.MaxChannels != ch || v.MaxCPS != cps {
			t.Errorf("%s/%s: caps %d/%d, want %d/%d", account, sub, v.MaxChannels, v.MaxCPS, ch, cps)
		}
	}
	f("acme", "", 160, 20)
	f("acme", "sales", 160, 20) // inherited
	f("acme", "ships", 160, 2)  // overridden
	f("stranger", "", 0, 0)
}

func TestUnknownAccountsReject(t *testing.T) {
	set := testSet()
	set.Operator.UnknownAccounts = policy.UnknownReject
	m := newTestMatcher(t, set)
	v := m.Decide(&Query{To: "+49301234567", Account: "stranger"})
	if v.Reason != ReasonNotPermitted || v.Action != Reject {
		t.Fatalf("unknown account: %s %s", v.Action, v.Reason)
	}
	if got := v.RuleString(); got != `operator: unknown account "stranger" refused (unknown_accounts=reject)` {
		t.Errorf("rule %q", got)
	}
	// Emergency calls still pass (112 is universal when the home is unknown).
	if v := m.Decide(&Query{To: "112", Account: "stranger"}); v.Reason != ReasonEmergency {
		t.Errorf("emergency from unknown account: %s", v.Reason)
	}
	if v := m.Decide(&Query{To: "+49301234567", Account: "acme"}); v.Action != Allow {
		t.Errorf("known account: %s %s", v.Action, v.Reason)
	}
}

func TestOperatorDefaultPolicy(t *testing.T) {
	set := testSet()
	set.Operator.Default = policy.Policy{HomeCountry: sp("GB"), HighRisk: sp(policy.HighRiskAllow), MaxChannels: ip(10)}
	m := newTestMatcher(t, set)
	v := m.Decide(&Query{To: "07700 900123", Account: "stranger"})
	if v.Action != Allow || v.E164() != "+447700900123" || v.MaxChannels != 10 {
		t.Errorf("default home GB: %s %s %s caps %d", v.Action, v.Reason, v.E164(), v.MaxChannels)
	}
	if v := m.Decide(&Query{To: "+881612345678", Account: "stranger"}); v.Action != Allow {
		t.Errorf("default high_risk allow: %s %s", v.Action, v.Reason)
	}
	// acme sets no high_risk: it inherits the operator default (allow).
	if v := m.Decide(&Query{To: "+881612345678", Account: "acme"}); v.Action != Allow {
		t.Errorf("inherited high_risk allow: %s %s %s", v.Action, v.Reason, v.RuleString())
	}
}

func TestCompileErrors(t *testing.T) {
	f := func(name string, mutate func(*policy.Set), field string) {
		t.Helper()
		set := testSet()
		mutate(set)
		_, err := Compile(set, numplan.Default())
		var fe *policy.FieldError
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		if field != "" && (!errors.As(err, &fe) || fe.Field != field) {
			t.Errorf("%s: error %v, want field %q", name, err, field)
		}
	}
	f("bad home", func(s *policy.Set) { a := s.Accounts["uk"]; a.HomeCountry = sp("XX"); s.Accounts["uk"] = a }, "home_country")
	f("bad selector", func(s *policy.Set) {
		a := s.Accounts["acme"]
		a.Subaccounts["sales"] = policy.Policy{Countries: &policy.CountryRule{Default: "allow", Except: []string{"US", "continent:XX"}}}
	}, "subaccounts.sales.countries.except[1]")
	f("bad prefix", func(s *policy.Set) { a := s.Accounts["uk"]; a.BlockPrefixes = lp("+44x"); s.Accounts["uk"] = a }, "block_prefixes[0]")
	f("bad account name", func(s *policy.Set) { s.Accounts["a b"] = policy.Account{} }, "")
	f("bad disabled", func(s *policy.Set) { s.Operator.DisabledCountries["ZZ"] = policy.DisabledCountry{} }, `disabled_countries."ZZ"`)
	f("bad high-risk prefix", func(s *policy.Set) { s.HighRisk = append(s.HighRisk, policy.HighRiskEntry{Prefix: "881"}) }, "")
	f("negative cap", func(s *policy.Set) { a := s.Accounts["uk"]; a.MaxCPS = ip(-1); s.Accounts["uk"] = a }, "max_cps")
}

// A snapshot swap is seen by the next decision; the old one keeps working
// for anyone still holding it.
func TestSwap(t *testing.T) {
	m := New(numplan.Default(), Options{})
	if m.Ready() {
		t.Fatal("ready before any snapshot")
	}
	// Before the first snapshot: the built-in default (allow, high-risk blocked, no list).
	if v := m.Decide(&Query{To: "+49301234567"}); v.Action != Allow {
		t.Fatalf("empty matcher: %s", v.Reason)
	}
	set := testSet()
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	m.Swap(snap)
	if v := m.Decide(&Query{To: "+5371234567", Account: "acme"}); v.Reason != ReasonCountryBarred {
		t.Fatalf("after swap: %s", v.Reason)
	}
	set.Accounts["acme"] = policy.Account{}
	snap2, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	if old := m.Swap(snap2); old != snap {
		t.Fatal("Swap did not return the previous snapshot")
	}
	if v := m.Decide(&Query{To: "+5371234567", Account: "acme"}); v.Action != Allow {
		t.Fatalf("after second swap: %s", v.Reason)
	}
}

func TestNationalCache(t *testing.T) {
	m := newTestMatcher(t, testSet())
	for i := 0; i < 3; i++ {
		v := m.Decide(&Query{To: "07700 900123", Account: "uk"})
		if v.E164() != "+447700900123" {
			t.Fatalf("national: %q", v.E164())
		}
	}
	hits, misses := m.CacheStats()
	if misses != 1 || hits != 2 {
		t.Errorf("cache hits %d misses %d, want 2 and 1", hits, misses)
	}
}

// The decision for international-form numbers must not allocate.
func TestDecideAllocs(t *testing.T) {
	m := newTestMatcher(t, testSet())
	for _, q := range []Query{
		{To: "+442031234567", Account: "acme"},
		{To: "011 49 30 1234567", Account: "acme", Subaccount: "sales"},
		{To: "+18765550123", Account: "stranger"},
		{To: "+881612345678", Account: "acme"},
		{To: "911", Account: "acme"},
		{To: "abc", Account: "acme"},
		{To: "07700 900123", Account: "uk"}, // national: a cache hit after the first call
	} {
		m.Decide(&q)
		var buf [256]byte
		n := testing.AllocsPerRun(100, func() {
			v := m.Decide(&q)
			_ = v.AppendRule(buf[:0])
		})
		if n != 0 {
			t.Errorf("%+v: %.1f allocs per decision", q, n)
		}
	}
}

func TestPrefixSet(t *testing.T) {
	list := []string{"1", "12", "123", "1234", "13", "2", "245", "99999"}
	keys := make([]packed, len(list))
	vals := make([]uint32, len(list))
	for i, p := range list {
		keys[i], vals[i] = pack([]byte(p)), uint32(i)
	}
	for _, big := range []bool{false, true} {
		k, v := keys, vals
		if big { // force the bucket index with filler far away
			for i := 0; i < bucketThreshold+10; i++ {
				d := []byte("7000000")
				d[3], d[4], d[5], d[6] = byte('0'+i/1000%10), byte('0'+i/100%10), byte('0'+i/10%10), byte('0'+i%10)
				d[1] = byte('0' + i/10000)
				k = append(k, pack(d))
				v = append(v, 1000)
			}
		}
		s := newPrefixSet(k, v)
		f := func(q, want string) {
			t.Helper()
			e := s.match(pack([]byte(q)))
			got := ""
			if e >= 0 {
				got = string(s.keys[e].appendDigits(nil))
			}
			if got != want {
				t.Errorf("big=%v match(%s) = %q, want %q", big, q, got, want)
			}
		}
		f("1235", "123")
		f("12345", "1234")
		f("1299", "12")
		f("1", "1")
		f("14", "1")
		f("13", "13")
		f("2449", "2")
		f("2459", "245")
		f("3", "")
		f("9999", "")
		f("999991", "99999")
		f("0", "")
	}
}

func TestPack(t *testing.T) {
	f := func(a, b string) {
		t.Helper()
		if !(pack([]byte(a)) < pack([]byte(b))) {
			t.Errorf("pack(%s) !< pack(%s)", a, b)
		}
	}
	f("12", "120")
	f("120", "121")
	f("129", "13")
	f("0", "1")
	f("999", "9999")
	if n := pack([]byte("123456789012345")).digits(); n != 15 {
		t.Errorf("digits = %d", n)
	}
	if got := string(pack([]byte("4420")).appendDigits(nil)); got != "4420" {
		t.Errorf("appendDigits = %q", got)
	}
}

// CompileFrom reuses what is the same object and rebuilds what changed.
func TestCompileFrom(t *testing.T) {
	plan := numplan.Default()
	set := testSet()
	prev, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	// Replace one account, share the rest (as the admin path does).
	next := &policy.Set{Operator: set.Operator, HighRisk: set.HighRisk, Accounts: map[string]policy.Account{}}
	for k, v := range set.Accounts {
		next.Accounts[k] = v
	}
	next.Accounts["uk"] = policy.Account{Policy: policy.Policy{HomeCountry: sp("GB"), Countries: &policy.CountryRule{Default: policy.Deny}}}
	snap, err := CompileFrom(prev, next, plan)
	if err != nil {
		t.Fatal(err)
	}
	if snap.acct("acme") != prev.acct("acme") || snap.highRisk != prev.highRisk {
		t.Error("unchanged account or high-risk list was rebuilt")
	}
	if snap.acct("uk") == prev.acct("uk") {
		t.Error("changed account was reused")
	}
	m := New(plan, Options{})
	m.Swap(snap)
	if v := m.Decide(&Query{To: "+49301234567", Account: "uk"}); v.Reason != ReasonCountryBarred {
		t.Errorf("changed account: %s", v.Reason)
	}
	if v := m.Decide(&Query{To: "+5371234567", Account: "acme"}); v.Reason != ReasonCountryBarred {
		t.Errorf("reused account: %s", v.Reason)
	}
	if snap.Stats() != (SnapshotStats{}) && snap.Stats().Subaccounts != prev.Stats().Subaccounts {
		t.Errorf("subaccount count %d, want %d", snap.Stats().Subaccounts, prev.Stats().Subaccounts)
	}

	// A new default policy rebuilds every account: acme inherits high_risk.
	next2 := &policy.Set{Operator: next.Operator, HighRisk: next.HighRisk, Accounts: next.Accounts}
	next2.Operator.Default = policy.Policy{HighRisk: sp(policy.HighRiskAllow)}
	snap2, err := CompileFrom(snap, next2, plan)
	if err != nil {
		t.Fatal(err)
	}
	if snap2.acct("acme") == snap.acct("acme") {
		t.Error("account reused across a default-policy change")
	}
	m.Swap(snap2)
	if v := m.Decide(&Query{To: "+881612345678", Account: "acme"}); v.Action != Allow {
		t.Errorf("after default change: %s %s", v.Reason, v.RuleString())
	}

	// A new high-risk list (a different slice) is compiled.
	next3 := &policy.Set{Operator: next2.Operator, Accounts: next2.Accounts,
		HighRisk: []policy.HighRiskEntry{{Prefix: "+4930", Country: "DE", Category: "irsf", Source: "t"}}}
	next3.Operator.Default = policy.Policy{}
	snap3, err := CompileFrom(snap2, next3, plan)
	if err != nil {
		t.Fatal(err)
	}
	m.Swap(snap3)
	if v := m.Decide(&Query{To: "+49301234567", Account: "stranger"}); v.Reason != ReasonNumberBarred {
		t.Errorf("new high-risk list: %s", v.Reason)
	}
	// A bad account in an incremental compile is still refused.
	next4 := &policy.Set{Operator: next3.Operator, HighRisk: next3.HighRisk, Accounts: map[string]policy.Account{"x": {Policy: policy.Policy{HomeCountry: sp("XX")}}}}
	if _, err := CompileFrom(snap3, next4, plan); err == nil {
		t.Error("bad account accepted by CompileFrom")
	}
}

func TestShortSource(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := shortSource(in); got != want {
			t.Errorf("shortSource(%q) = %q, want %q", in, got, want)
		}
	}
	f("libphonenumber v1.8.1 premium_rate GB", "libphonenumber v1.8.1 premium_rate GB")
	f("Cisco Best Practices Table 22-1, https://example.org/x; FCC guide", "Cisco Best Practices Table 22-1")
	f("Ofcom review; FCC", "Ofcom review")
	f(strings.Repeat("é", 60), strings.Repeat("é", 48)+"…")
}

// acct is the compiled account of name, nil if none.
func (s *Snapshot) acct(name string) *account {
	a, _ := s.accounts.Get(name)
	return a
}
