package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVelocityValidateCanonicalises(t *testing.T) {
	p := Policy{
		TimeZone:           ptr("America/New_York"),
		MaxDestinationRate: ptr(0.25),
		Velocity: &Velocity{Rules: []VelocityRule{{
			Prefix: "0044 20", Hours: "8:00-18:30", Days: []string{"Friday", "mon", "TUE"},
			CallsPerMinute: &Threshold{Warning: 10, Critical: 20},
		}}},
	}
	if err := p.Validate(""); err != nil {
		t.Fatal(err)
	}
	r := p.Velocity.Rules[0]
	if r.Prefix != "+4420" || r.Hours != "08:00-18:30" || !slices.Equal(r.Days, []string{"mon", "tue", "fri"}) {
		t.Errorf("not canonical: %+v", r)
	}
	if r.Window() != DefaultWindow {
		t.Errorf("window %d", r.Window())
	}
	if a := p.Velocity.CriticalAction(r.Action); a != ActionLockdown {
		t.Errorf("default action %q", a)
	}
	if a := (&Velocity{Action: ActionAlert}).CriticalAction(""); a != ActionAlert {
		t.Errorf("velocity action %q", a)
	}
	if a := (&Velocity{Action: ActionAlert}).CriticalAction(ActionLockdown); a != ActionLockdown {
		t.Errorf("rule action %q", a)
	}
}

func TestVelocityFieldErrors(t *testing.T) {
	th := func(w, c int) *Threshold { return &Threshold{Warning: w, Critical: c} }
	rule := func(r VelocityRule) Policy { return Policy{Velocity: &Velocity{Rules: []VelocityRule{r}}} }
	cases := []struct {
		name       string
		p          Policy
		field, msg string
	}{
		{"bad zone", Policy{TimeZone: ptr("Mars/Olympus_Mons")}, "time_zone", "unknown time zone"},
		{"local zone", Policy{TimeZone: ptr("Local")}, "time_zone", "not an IANA"},
		{"empty zone", Policy{TimeZone: ptr("")}, "time_zone", "not an IANA"},
		{"negative rate", Policy{MaxDestinationRate: ptr(-1.0)}, "max_destination_rate", "negative"},
		{"too precise rate", Policy{MaxDestinationRate: ptr(0.0000001)}, "max_destination_rate", "decimal places"},
		{"huge rate", Policy{MaxDestinationRate: ptr(1e9)}, "max_destination_rate", "above"},
		{"bad action", Policy{Velocity: &Velocity{Action: "shoot"}}, "velocity.action", `"shoot"`},
		{"no threshold", rule(VelocityRule{Prefix: "+44"}), "velocity.rules[0]", "sets no threshold"},
		{"warning above critical", rule(VelocityRule{CallsPerMinute: th(30, 20)}), "velocity.rules[0].calls_per_minute.warning", "not below critical"},
		{"empty threshold", rule(VelocityRule{ConcurrentCalls: th(0, 0)}), "velocity.rules[0].concurrent_calls", "neither"},
		{"negative", rule(VelocityRule{SequentialCalls: th(-1, 5)}), "velocity.rules[0].sequential_calls.warning", "outside"},
		{"duration too long", rule(VelocityRule{CallDuration: th(0, 8*86400)}), "velocity.rules[0].call_duration.critical", "outside"},
		{"bad prefix", rule(VelocityRule{Prefix: "+0", CallsPerMinute: th(1, 2)}), "velocity.rules[0].prefix", "starts with 0"},
		{"bad hours", rule(VelocityRule{Hours: "8-18", CallsPerMinute: th(1, 2)}), "velocity.rules[0].hours", "HH:MM"},
		{"empty hours", rule(VelocityRule{Hours: "08:00-08:00", CallsPerMinute: th(1, 2)}), "velocity.rules[0].hours", "empty window"},
		{"bad minute", rule(VelocityRule{Hours: "08:61-09:00", CallsPerMinute: th(1, 2)}), "velocity.rules[0].hours", "not a time"},
		{"bad day", rule(VelocityRule{Days: []string{"mon", "caturday"}, CallsPerMinute: th(1, 2)}), "velocity.rules[0].days[1]", "caturday"},
		{"day twice", rule(VelocityRule{Days: []string{"mon", "Monday"}, CallsPerMinute: th(1, 2)}), "velocity.rules[0].days[1]", "twice"},
		{"window", rule(VelocityRule{WindowMinutes: 1441, CallsPerWindow: th(1, 2)}), "velocity.rules[0].window_minutes", "outside"},
		{"rule action", rule(VelocityRule{Action: "ban", CallsPerMinute: th(1, 2)}), "velocity.rules[0].action", `"ban"`},
		{"rule name", rule(VelocityRule{Name: "a\nb", CallsPerMinute: th(1, 2)}), "velocity.rules[0].name", "printable"},
		{"spend empty", Policy{Velocity: &Velocity{DailySpend: &SpendLimit{}}}, "velocity.daily_spend", "neither"},
		{"spend order", Policy{Velocity: &Velocity{DailySpend: &SpendLimit{Warning: 10, Limit: 5}}}, "velocity.daily_spend.warning", "not below"},
		{"spend negative", Policy{Velocity: &Velocity{DailySpend: &SpendLimit{Limit: -5}}}, "velocity.daily_spend.limit", "negative"},
		{"spend action", Policy{Velocity: &Velocity{DailySpend: &SpendLimit{Limit: 5, Action: "x"}}}, "velocity.daily_spend.action", `"x"`},
		{"relock margin negative", Policy{Velocity: &Velocity{RelockMargin: -1}}, "velocity.relock_margin", "between 0.01 and 100"},
		{"relock margin tiny", Policy{Velocity: &Velocity{RelockMargin: 0.001}}, "velocity.relock_margin", "between 0.01 and 100"},
		{"relock margin huge", Policy{Velocity: &Velocity{RelockMargin: 101}}, "velocity.relock_margin", "between 0.01 and 100"},
	}
	for _, c := range cases {
		err := c.p.Validate("")
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want *FieldError", c.name, err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%s: got %q %q, want field %q msg containing %q", c.name, fe.Field, fe.Msg, c.field, c.msg)
		}
	}
	many := make([]VelocityRule, MaxVelocityRules+1)
	for i := range many {
		many[i].CallsPerMinute = th(1, 2)
	}
	if err := (&Policy{Velocity: &Velocity{Rules: many}}).Validate(""); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("too many rules: %v", err)
	}
	// a subaccount's field names carry its path
	a := Account{Subaccounts: map[string]Policy{"sales": {TimeZone: ptr("Nowhere/Land")}}}
	var fe *FieldError
	if err := a.Validate(); !errors.As(err, &fe) || fe.Field != "subaccounts.sales.time_zone" {
		t.Errorf("subaccount zone: %v", err)
	}
}

func TestMergeVelocity(t *testing.T) {
	v := &Velocity{Rules: []VelocityRule{{CallsPerMinute: &Threshold{Critical: 5}}}}
	def := Merge(BuiltinDefault(), Policy{TimeZone: ptr("Europe/Paris"), Velocity: v})
	if def.MaxDestinationRate != -1 || def.TimeZone != "Europe/Paris" || def.Velocity != v {
		t.Fatalf("default: %+v", def)
	}
	acct := Merge(def, Policy{MaxDestinationRate: ptr(0.5)})
	if acct.Velocity != v || acct.MaxDestinationRate != 500_000 || acct.TimeZone != "Europe/Paris" {
		t.Errorf("account does not inherit: %+v", acct)
	}
	sub := MergeSubaccount(acct, Policy{})
	if sub.Velocity != nil || sub.MaxDestinationRate != 500_000 || sub.TimeZone != "Europe/Paris" {
		t.Errorf("subaccount: velocity must not be inherited, the rest must: %+v", sub)
	}
	own := &Velocity{Action: ActionAlert}
	if s := MergeSubaccount(acct, Policy{Velocity: own}); s.Velocity != own {
		t.Errorf("subaccount's own velocity: %+v", s)
	}
}

func TestParseHoursAndDays(t *testing.T) {
	for in, want := range map[string][2]int{"00:00-24:00": {0, 1440}, "22:00-06:00": {1320, 360}, " 9:05 - 17:00 ": {545, 1020}} {
		f, to, err := ParseHours(in)
		if err != nil || f != want[0] || to != want[1] {
			t.Errorf("ParseHours(%q) = %d %d %v", in, f, to, err)
		}
	}
	for _, bad := range []string{"", "9-5", "25:00-01:00", "24:01-01:00", "24:00-01:00", "+9:00-17:00", "09:-1-10:00", "aa:bb-cc:dd", "09:00"} {
		if _, _, err := ParseHours(bad); err == nil {
			t.Errorf("ParseHours(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Weekday{"sun": time.Sunday, "SATURDAY": time.Saturday, " wed ": time.Wednesday} {
		if d, ok := ParseDay(in); !ok || d != want {
			t.Errorf("ParseDay(%q) = %v %v", in, d, ok)
		}
	}
	if _, ok := ParseDay("mo"); ok {
		t.Error("ParseDay(mo) accepted")
	}
}

func TestMicro(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "0.012": 12000, "3": 3_000_000, ".5": 500_000, "1.000001": 1_000_001, "7.": 7_000_000} {
		got, err := ParseMicro(in, MaxRate)
		if err != nil || got != want {
			t.Errorf("ParseMicro(%q) = %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "-1", "1e3", "0.0000001", "1,5", "abc", "1000001", "99999999999999999999"} {
		if _, err := ParseMicro(bad, MaxRate); err == nil {
			t.Errorf("ParseMicro(%q) accepted", bad)
		}
	}
	for m, want := range map[int64]string{0: "0", 12000: "0.012", 3_000_000: "3", 1: "0.000001", 1_500_000: "1.5", -250_000: "-0.25"} {
		if got := FormatMicro(m); got != want {
			t.Errorf("FormatMicro(%d) = %q, want %q", m, got, want)
		}
	}
	if Micro(0.1) != 100_000 || Micro(1.23) != 1_230_000 {
		t.Errorf("Micro: %d %d", Micro(0.1), Micro(1.23))
	}
}

// The pattern measures and the range velocity: one bad setting per case,
// each refused with the field it names.
func TestPatternFieldErrors(t *testing.T) {
	th := func(w, c int) *Threshold { return &Threshold{Warning: w, Critical: c} }
	rule := func(r VelocityRule) Policy { return Policy{Velocity: &Velocity{Rules: []VelocityRule{r}}} }
	rv := func(r RangeVelocity) Operator { return Operator{RangeVelocity: &r} }
	cases := []struct {
		name       string
		validate   func() error
		field, msg string
	}{
		{"distinct above the bound", rule(VelocityRule{DistinctDestinations: th(10, 5000)}).validator(), "velocity.rules[0].distinct_destinations.critical", "outside 0..1000"},
		{"countries order", rule(VelocityRule{DistinctCountries: th(5, 5)}).validator(), "velocity.rules[0].distinct_countries.warning", "not below critical"},
		{"range run empty", rule(VelocityRule{SequentialRangeCalls: th(0, 0)}).validator(), "velocity.rules[0].sequential_range_calls", "neither"},
		{"share above 100", rule(VelocityRule{ShortCalls: th(50, 101)}).validator(), "velocity.rules[0].short_calls.critical", "outside 0..100"},
		{"invalid negative", rule(VelocityRule{InvalidNumbers: th(-1, 3)}).validator(), "velocity.rules[0].invalid_numbers.warning", "outside"},
		{"locked order", rule(VelocityRule{LockedAttempts: th(9, 3)}).validator(), "velocity.rules[0].locked_attempts.warning", "not below"},
		{"range digits too wide", rule(VelocityRule{SequentialRangeCalls: th(5, 10), RangeDigits: 7}).validator(), "velocity.rules[0].range_digits", "outside 1..6"},
		{"range digits negative", rule(VelocityRule{SequentialRangeCalls: th(5, 10), RangeDigits: -1}).validator(), "velocity.rules[0].range_digits", "outside"},
		{"range digits alone", rule(VelocityRule{CallsPerMinute: th(5, 10), RangeDigits: 4}).validator(), "velocity.rules[0].range_digits", "without sequential_range_calls"},
		{"short seconds too long", rule(VelocityRule{ShortCalls: th(50, 80), ShortCallSeconds: 3601}).validator(), "velocity.rules[0].short_call_seconds", "outside 1..3600"},
		{"short seconds alone", rule(VelocityRule{CallsPerMinute: th(5, 10), ShortCallSeconds: 5}).validator(), "velocity.rules[0].short_call_seconds", "without short_calls"},
		{"min answered negative", rule(VelocityRule{ShortCalls: th(50, 80), MinAnsweredCalls: -5}).validator(), "velocity.rules[0].min_answered_calls", "outside"},
		{"min answered alone", rule(VelocityRule{DistinctCountries: th(3, 5), MinAnsweredCalls: 5}).validator(), "velocity.rules[0].min_answered_calls", "without short_calls"},
		{"operator range: no levels", rv(RangeVelocity{}).validator(), "range_velocity.accounts", "neither"},
		{"operator range: too many accounts", rv(RangeVelocity{Accounts: Threshold{Critical: 101}}).validator(), "range_velocity.accounts.critical", "outside 0..100"},
		{"operator range: digits", rv(RangeVelocity{Accounts: Threshold{Critical: 20}, RangeDigits: 9}).validator(), "range_velocity.range_digits", "outside 1..6"},
		{"operator range: window", rv(RangeVelocity{Accounts: Threshold{Critical: 20}, WindowMinutes: 2000}).validator(), "range_velocity.window_minutes", "outside 1..1440"},
		{"operator range: action", rv(RangeVelocity{Accounts: Threshold{Critical: 20}, Action: "lockdown"}).validator(), "range_velocity.action", `"lockdown" is not "alert" or "block"`},
		{"operator range: block without critical", rv(RangeVelocity{Accounts: Threshold{Warning: 20}, Action: "block"}).validator(), "range_velocity.action", "needs a critical level"},
		{"operator range: table", rv(RangeVelocity{Accounts: Threshold{Critical: 20}, MaxRanges: 100000}).validator(), "range_velocity.max_ranges", "outside 1..16384"},
	}
	for _, c := range cases {
		var fe *FieldError
		if err := c.validate(); !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want *FieldError", c.name, err)
		} else if fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
			t.Errorf("%s: got %q %q, want field %q msg containing %q", c.name, fe.Field, fe.Msg, c.field, c.msg)
		}
	}
	good := rule(VelocityRule{DistinctDestinations: th(0, 1000), ShortCalls: th(50, 100), ShortCallSeconds: 6, MinAnsweredCalls: 1,
		SequentialRangeCalls: th(5, 10), RangeDigits: 6, InvalidNumbers: th(1, 2), LockedAttempts: th(1, 2)})
	if err := good.Validate(""); err != nil {
		t.Errorf("good rule: %v", err)
	}
	r := good.Velocity.Rules[0]
	if r.Range() != 6 || r.ShortSeconds() != 6 || r.MinAnswered() != 1 {
		t.Errorf("settings %d %d %d", r.Range(), r.ShortSeconds(), r.MinAnswered())
	}
	if d := (VelocityRule{}); d.Range() != DefaultRangeDigits || d.ShortSeconds() != DefaultShortCallSeconds || d.MinAnswered() != DefaultMinAnsweredCalls {
		t.Errorf("defaults %d %d %d", d.Range(), d.ShortSeconds(), d.MinAnswered())
	}
	op := rv(RangeVelocity{Accounts: Threshold{Warning: 10, Critical: 20}, Action: "block"})
	if err := op.Validate(); err != nil {
		t.Errorf("good range velocity: %v", err)
	}
}

func (p Policy) validator() func() error   { return func() error { return p.Validate("") } }
func (o Operator) validator() func() error { return func() error { return o.Validate() } }
