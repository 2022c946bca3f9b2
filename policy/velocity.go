package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	// Time zones are validated with time.LoadLocation; embedding the IANA
	// database makes the same zone names valid on every host, whether or
	// not it has /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Critical actions: what a critical threshold does besides alerting.
const (
	// ActionLockdown locks the account's (or subaccount's) international
	// calls until an operator unlocks it; domestic and emergency calls pass.
	ActionLockdown = "lockdown"
	// ActionAlert only alerts.
	ActionAlert = "alert"
)

// Limits of the velocity settings.
const (
	MaxVelocityRules   = 16
	MaxWindowMinutes   = 1440
	DefaultWindow      = 60
	MaxThreshold       = 1_000_000
	MaxDurationSeconds = 7 * 86400
	MaxMoney           = 1_000_000_000 // currency units; a rate or a daily limit
	MaxRate            = 1_000_000     // currency units per minute
	MoneyDecimals      = 6
	maxRuleNameLen     = 64
	// MaxDistinct bounds the distinct_* levels: a scope remembers at most
	// that many destinations (or countries) per rule, so its memory is
	// bounded by the level, not by what a fraudster dials.
	MaxDistinct = 1000
	// DefaultRangeDigits is how many trailing digits a number range drops
	// by default: ranges of 1,000 numbers, the block size premium-rate
	// (IPRN) providers commonly lease and publish test numbers from.
	DefaultRangeDigits = 3
	// MaxRangeDigits is the widest range: a million numbers.
	MaxRangeDigits = 6
	// DefaultShortCallSeconds is the length under which an answered call
	// is short: long enough for a human to say who they want, too short
	// for a conversation.
	DefaultShortCallSeconds = 10
	// DefaultMinAnsweredCalls is how many ended calls short_calls needs in
	// the window before its share counts, so two short calls of three do
	// not read as 66 %.
	DefaultMinAnsweredCalls = 20
	maxShortCallSeconds     = 3600
)

// Threshold is a warning and a critical level of one measure; 0 leaves a
// level unset. Warning must be below critical when both are set.
type Threshold struct {
	Warning  int `json:"warning,omitempty"`
	Critical int `json:"critical,omitempty"`
}

// VelocityRule is one fraud_detection-style rule: the calls it counts (a
// destination prefix, active hours and days in the account's time zone) and
// the thresholds of each measure it watches.
type VelocityRule struct {
	// Name appears in alerts; "rule N" (1-based) when empty.
	Name string `json:"name,omitempty"`
	// Prefix restricts the rule to destinations under an E.164 prefix; ""
	// counts every destination.
	Prefix string `json:"prefix,omitempty"`
	// Hours is "HH:MM-HH:MM" in the account's time zone (the end is
	// exclusive; "22:00-06:00" spans midnight); "" is all day.
	Hours string `json:"hours,omitempty"`
	// Days are the days of the week the rule is active ("mon" … "sun");
	// empty is every day. With Hours spanning midnight, the day is the one
	// the window starts on.
	Days []string `json:"days,omitempty"`
	// WindowMinutes is the window of calls_per_window and
	// blocked_attempts (1-1440, default 60).
	WindowMinutes int `json:"window_minutes,omitempty"`

	CallsPerMinute  *Threshold `json:"calls_per_minute,omitempty"`
	CallsPerWindow  *Threshold `json:"calls_per_window,omitempty"`
	ConcurrentCalls *Threshold `json:"concurrent_calls,omitempty"`
	SequentialCalls *Threshold `json:"sequential_calls,omitempty"`
	// CallDuration is in seconds; live calls are checked as they run.
	CallDuration *Threshold `json:"call_duration,omitempty"`
	// BlockedAttempts counts attempts refused as barred (country_barred,
	// country_disabled, number_barred, rate_exceeded) within the window.
	BlockedAttempts *Threshold `json:"blocked_attempts,omitempty"`
	// DistinctDestinations counts the different numbers called (allowed)
	// in the window: a compromised PBX fans out to many numbers. At most
	// MaxDistinct.
	DistinctDestinations *Threshold `json:"distinct_destinations,omitempty"`
	// DistinctCountries counts the different destination countries called
	// (allowed) in the window. At most MaxDistinct.
	DistinctCountries *Threshold `json:"distinct_countries,omitempty"`
	// SequentialRangeCalls is sequential_calls over a number range (the
	// number without its last RangeDigits digits): fraud walks a leased
	// block of premium numbers, one number per call.
	SequentialRangeCalls *Threshold `json:"sequential_range_calls,omitempty"`
	// ShortCalls is the share, in percent, of the calls ended in the
	// window that were up less than ShortCallSeconds (traffic pumping,
	// wangiri); counted once MinAnsweredCalls have ended in the window.
	ShortCalls *Threshold `json:"short_calls,omitempty"`
	// InvalidNumbers counts attempts refused invalid_number in the window:
	// a burst is someone probing the dial plan.
	InvalidNumbers *Threshold `json:"invalid_numbers,omitempty"`
	// LockedAttempts counts attempts refused international_locked in the
	// window: someone trying on after a lockdown.
	LockedAttempts *Threshold `json:"locked_attempts,omitempty"`

	// RangeDigits is how many trailing digits sequential_range_calls drops
	// to make a number's range (1-6, default 3: ranges of 1,000 numbers).
	RangeDigits int `json:"range_digits,omitempty"`
	// ShortCallSeconds is the length under which a call is short (1-3600,
	// default 10).
	ShortCallSeconds int `json:"short_call_seconds,omitempty"`
	// MinAnsweredCalls is how many calls must have ended in the window
	// before short_calls counts (1-1000000, default 20).
	MinAnsweredCalls int `json:"min_answered_calls,omitempty"`

	// Action overrides the velocity action for this rule's critical level.
	Action string `json:"action,omitempty"`
}

// SpendLimit is a daily spend limit in the rate deck's currency, reset at
// midnight in the account's time zone. Limit is the critical level.
type SpendLimit struct {
	Warning float64 `json:"warning,omitempty"`
	Limit   float64 `json:"limit,omitempty"`
	Action  string  `json:"action,omitempty"`
}

// Velocity is a scope's velocity settings: its rules, its daily spend limit
// and what a critical level does.
type Velocity struct {
	// Action is the default critical action: "lockdown" (the default) or
	// "alert".
	Action     string         `json:"action,omitempty"`
	Rules      []VelocityRule `json:"rules,omitempty"`
	DailySpend *SpendLimit    `json:"daily_spend,omitempty"`
	// RelockMargin is how far, in critical levels, a measure found at its
	// critical level by an operator's unlock must grow again before it
	// raises a new critical and locks again (0, unset: 1, another limit's
	// worth): an unlock must not switch the protection off for the day.
	RelockMargin float64 `json:"relock_margin,omitempty"`
}

// MaxRelockMargin bounds Velocity.RelockMargin.
const MaxRelockMargin = 100

// Day names in time.Weekday order.
var dayNames = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDay reads a day of the week: "mon" or "monday", any case.
func ParseDay(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, d := range dayNames {
		if s == d || s == strings.ToLower(time.Weekday(i).String()) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// ParseHours reads "HH:MM-HH:MM" into minutes of the day [from, to).
func ParseHours(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	if from, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if from == 24*60 {
		return 0, 0, fmt.Errorf("%q starts at 24:00, which only ends a window (start at 00:00)", s)
	}
	if to, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	if from == to {
		return 0, 0, fmt.Errorf("%q is an empty window (leave hours out for all day)", s)
	}
	return from, to, nil
}

func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return hh*60 + mm, nil
}

// ValidTimeZone checks an IANA time zone name ("Europe/London", "UTC").
// "Local" and "" are refused: the zone must not depend on the host.
func ValidTimeZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}

// checkMoney validates an amount in currency units: finite, >= 0, at most
// max and at most MoneyDecimals decimal places.
func checkMoney(v, max float64) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("not a number")
	case v < 0:
		return fmt.Errorf("%v is negative", v)
	case v > max:
		return fmt.Errorf("%v is above %v", v, max)
	}
	txt := strconv.FormatFloat(v, 'f', -1, 64)
	if _, frac, ok := strings.Cut(txt, "."); ok && len(frac) > MoneyDecimals {
		return fmt.Errorf("%v has more than %d decimal places", v, MoneyDecimals)
	}
	return nil
}

// Micro converts an amount in currency units to millionths, the integer
// unit rates and spend are counted in.
func Micro(v float64) int64 { return int64(math.Round(v * 1e6)) }

// FormatMicro writes millionths as a decimal amount without trailing zeros
// ("0.012", "3", "0.000001").
func FormatMicro(m int64) string {
	return string(AppendMicro(nil, m))
}

// AppendMicro is FormatMicro into a buffer (no allocation when dst has room).
func AppendMicro(dst []byte, m int64) []byte {
	if m < 0 {
		dst = append(dst, '-')
		m = -m
	}
	dst = strconv.AppendInt(dst, m/1e6, 10)
	frac := m % 1e6
	if frac == 0 {
		return dst
	}
	var f [6]byte
	for i := 5; i >= 0; i-- {
		f[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for n > 0 && f[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, f[:n]...)
}

// ParseMicro reads a decimal amount ("0.012", "3", ".5") into millionths:
// no sign, no exponent, at most MoneyDecimals decimals, at most max units.
func ParseMicro(s string, max int64) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty amount")
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if hasDot && frac == "" && intPart == "" {
		return 0, fmt.Errorf("%q is not an amount", s)
	}
	if len(frac) > MoneyDecimals {
		return 0, fmt.Errorf("%q has more than %d decimal places", s, MoneyDecimals)
	}
	var units int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal amount", s)
		}
		units = units*10 + int64(c-'0')
		if units > max {
			return 0, fmt.Errorf("%q is above %d", s, max)
		}
	}
	var f int64
	for i := 0; i < MoneyDecimals; i++ {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q is not a decimal amount", s)
			}
			f += int64(c - '0')
		}
	}
	m := units*1e6 + f
	if m > max*1e6 {
		return 0, fmt.Errorf("%q is above %d", s, max)
	}
	return m, nil
}

func checkAction(field, a string) error {
	switch a {
	case "", ActionLockdown, ActionAlert:
		return nil
	}
	return fieldErr(field, "%q is not \"lockdown\" or \"alert\"", a)
}

func (t *Threshold) validate(field string, max int) error {
	if t == nil {
		return nil
	}
	switch {
	case t.Warning < 0 || t.Warning > max:
		return fieldErr(field+".warning", "%d is outside 0..%d (0 = not set)", t.Warning, max)
	case t.Critical < 0 || t.Critical > max:
		return fieldErr(field+".critical", "%d is outside 0..%d (0 = not set)", t.Critical, max)
	case t.Warning == 0 && t.Critical == 0:
		return fieldErr(field, "neither warning nor critical is set")
	case t.Warning > 0 && t.Critical > 0 && t.Warning >= t.Critical:
		return fieldErr(field+".warning", "%d is not below critical %d", t.Warning, t.Critical)
	}
	return nil
}

// Measures returns the rule's thresholds by measure name, in a fixed order,
// with nil for the measures it does not watch.
func (r *VelocityRule) Measures() [NumMeasures]*Threshold {
	return [NumMeasures]*Threshold{r.CallsPerMinute, r.CallsPerWindow, r.ConcurrentCalls, r.SequentialCalls, r.CallDuration, r.BlockedAttempts,
		r.DistinctDestinations, r.DistinctCountries, r.SequentialRangeCalls, r.ShortCalls, r.InvalidNumbers, r.LockedAttempts}
}

// Measure names, in the order of VelocityRule.Measures. They are the "kind"
// of a velocity alert and a bounded metric label.
var MeasureNames = [NumMeasures]string{"calls_per_minute", "calls_per_window", "concurrent_calls", "sequential_calls", "call_duration", "blocked_attempts",
	"distinct_destinations", "distinct_countries", "sequential_range_calls", "short_calls", "invalid_numbers", "locked_attempts"}

// measureMax is each measure's highest level: the distinct sets are
// bounded by theirs, a share is a percentage.
var measureMax = [NumMeasures]int{MaxThreshold, MaxThreshold, MaxThreshold, MaxThreshold, MaxDurationSeconds, MaxThreshold,
	MaxDistinct, MaxDistinct, MaxThreshold, 100, MaxThreshold, MaxThreshold}

// NumMeasures is the number of per-rule measures.
const NumMeasures = 12

// Validate checks one velocity rule and canonicalises it (prefix, days).
func (r *VelocityRule) Validate(field string) error {
	if len(r.Name) > maxRuleNameLen || (r.Name != "" && !printable(r.Name)) {
		return fieldErr(field+"name", "must be printable text of at most %d bytes", maxRuleNameLen)
	}
	if r.Prefix != "" {
		p, err := NormalizePrefix(r.Prefix)
		if err != nil {
			return fieldErr(field+"prefix", "%v", err)
		}
		r.Prefix = p
	}
	if r.Hours != "" {
		from, to, err := ParseHours(r.Hours)
		if err != nil {
			return fieldErr(field+"hours", "%v", err)
		}
		r.Hours = fmt.Sprintf("%02d:%02d-%02d:%02d", from/60, from%60, to/60, to%60)
	}
	if len(r.Days) > 0 {
		var set [7]bool
		for i, d := range r.Days {
			wd, ok := ParseDay(d)
			if !ok {
				return fieldErr(fmt.Sprintf("%sdays[%d]", field, i), "%q is not a day of the week (mon … sun)", d)
			}
			if set[wd] {
				return fieldErr(fmt.Sprintf("%sdays[%d]", field, i), "%q listed twice", d)
			}
			set[wd] = true
		}
		out := make([]string, 0, len(r.Days))
		for _, wd := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
			if set[wd] {
				out = append(out, dayNames[wd])
			}
		}
		r.Days = out
	}
	if r.WindowMinutes < 0 || r.WindowMinutes > MaxWindowMinutes {
		return fieldErr(field+"window_minutes", "%d is outside 1..%d (0 = %d)", r.WindowMinutes, MaxWindowMinutes, DefaultWindow)
	}
	any := false
	for i, t := range r.Measures() {
		if err := t.validate(field+MeasureNames[i], measureMax[i]); err != nil {
			return err
		}
		any = any || t != nil
	}
	if !any {
		return fieldErr(field[:max(0, len(field)-1)], "the rule sets no threshold (%s)", strings.Join(MeasureNames[:], ", "))
	}
	for _, o := range []struct {
		name      string
		v, max    int
		measure   *Threshold
		needsName string
	}{
		{"range_digits", r.RangeDigits, MaxRangeDigits, r.SequentialRangeCalls, "sequential_range_calls"},
		{"short_call_seconds", r.ShortCallSeconds, maxShortCallSeconds, r.ShortCalls, "short_calls"},
		{"min_answered_calls", r.MinAnsweredCalls, MaxThreshold, r.ShortCalls, "short_calls"},
	} {
		switch {
		case o.v < 0 || o.v > o.max:
			return fieldErr(field+o.name, "%d is outside 1..%d (0 = the default)", o.v, o.max)
		case o.v != 0 && o.measure == nil:
			return fieldErr(field+o.name, "set without %s, the measure it tunes", o.needsName)
		}
	}
	return checkAction(field+"action", r.Action)
}

// Range is the rule's range_digits with the default applied.
func (r *VelocityRule) Range() int { return orDefault(r.RangeDigits, DefaultRangeDigits) }

// ShortSeconds is the rule's short_call_seconds with the default applied.
func (r *VelocityRule) ShortSeconds() int {
	return orDefault(r.ShortCallSeconds, DefaultShortCallSeconds)
}

// MinAnswered is the rule's min_answered_calls with the default applied.
func (r *VelocityRule) MinAnswered() int {
	return orDefault(r.MinAnsweredCalls, DefaultMinAnsweredCalls)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// Window is the rule's window in minutes, with the default applied.
func (r *VelocityRule) Window() int {
	if r.WindowMinutes == 0 {
		return DefaultWindow
	}
	return r.WindowMinutes
}

// Validate checks velocity settings and canonicalises their rules.
func (v *Velocity) Validate(field string) error {
	if err := checkAction(field+"action", v.Action); err != nil {
		return err
	}
	if len(v.Rules) > MaxVelocityRules {
		return fieldErr(field+"rules", "more than %d rules", MaxVelocityRules)
	}
	if m := v.RelockMargin; math.IsNaN(m) || m < 0 || m > MaxRelockMargin || (m > 0 && m < 0.01) {
		return fieldErr(field+"relock_margin", "%v is not between 0.01 and %d critical levels", m, MaxRelockMargin)
	}
	for i := range v.Rules {
		if err := v.Rules[i].Validate(fmt.Sprintf("%srules[%d].", field, i)); err != nil {
			return err
		}
	}
	if s := v.DailySpend; s != nil {
		f := field + "daily_spend."
		if err := checkMoney(s.Warning, MaxMoney); err != nil {
			return fieldErr(f+"warning", "%v", err)
		}
		if err := checkMoney(s.Limit, MaxMoney); err != nil {
			return fieldErr(f+"limit", "%v", err)
		}
		switch {
		case s.Warning == 0 && s.Limit == 0:
			return fieldErr(field+"daily_spend", "neither warning nor limit is set")
		case s.Warning > 0 && s.Limit > 0 && s.Warning >= s.Limit:
			return fieldErr(f+"warning", "%v is not below limit %v", s.Warning, s.Limit)
		}
		if err := checkAction(f+"action", s.Action); err != nil {
			return err
		}
	}
	return nil
}

// CriticalAction is the action a rule's (or the spend limit's) critical
// level takes: its own, else the velocity default, else lockdown.
func (v *Velocity) CriticalAction(own string) string {
	switch {
	case own != "":
		return own
	case v != nil && v.Action != "":
		return v.Action
	}
	return ActionLockdown
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Range velocity: the operator-wide watch of many accounts calling into one
// number range, which no account's own counters see.
const (
	// RangeActionBlock adds a critical range to the operator's blocked
	// prefixes (audited; DELETE /v1/operator/prefixes/{prefix} lifts it).
	RangeActionBlock = "block"
	// DefaultMaxRanges is how many ranges the watch remembers by default.
	DefaultMaxRanges = 4096
	// MaxRanges bounds max_ranges.
	MaxRanges = 16384
	// MaxRangeAccounts bounds the accounts levels: each remembered range
	// keeps at most that many accounts.
	MaxRangeAccounts = 100
)

// RangeVelocity counts, per number range (an international destination
// without its last RangeDigits digits), the different accounts that called
// it in a window: twenty accounts each calling one number of a premium
// range is one fraud, invisible to each account's rules.
type RangeVelocity struct {
	// RangeDigits is how many trailing digits make the range (1-6,
	// default 3).
	RangeDigits int `json:"range_digits,omitempty"`
	// WindowMinutes is the window (1-1440, default 60).
	WindowMinutes int `json:"window_minutes,omitempty"`
	// Accounts are the levels: different accounts (a subaccount counts as
	// its account) with an allowed international call into one range in
	// the window. At most MaxRangeAccounts.
	Accounts Threshold `json:"accounts"`
	// Action is what the critical level does besides alerting: "alert"
	// (the default) or "block".
	Action string `json:"action,omitempty"`
	// MaxRanges is how many ranges are remembered (default 4096, at most
	// 16384); the least recently called is forgotten first.
	MaxRanges int `json:"max_ranges,omitempty"`
}

// Validate checks the range velocity settings.
func (r *RangeVelocity) Validate(field string) error {
	if r == nil {
		return nil
	}
	if r.RangeDigits < 0 || r.RangeDigits > MaxRangeDigits {
		return fieldErr(field+"range_digits", "%d is outside 1..%d (0 = %d)", r.RangeDigits, MaxRangeDigits, DefaultRangeDigits)
	}
	if r.WindowMinutes < 0 || r.WindowMinutes > MaxWindowMinutes {
		return fieldErr(field+"window_minutes", "%d is outside 1..%d (0 = %d)", r.WindowMinutes, MaxWindowMinutes, DefaultWindow)
	}
	if err := r.Accounts.validate(field+"accounts", MaxRangeAccounts); err != nil {
		return err
	}
	switch r.Action {
	case "", ActionAlert:
	case RangeActionBlock:
		if r.Accounts.Critical == 0 {
			return fieldErr(field+"action", "\"block\" needs a critical level in accounts")
		}
	default:
		return fieldErr(field+"action", "%q is not \"alert\" or \"block\"", r.Action)
	}
	if r.MaxRanges < 0 || r.MaxRanges > MaxRanges {
		return fieldErr(field+"max_ranges", "%d is outside 1..%d (0 = %d)", r.MaxRanges, MaxRanges, DefaultMaxRanges)
	}
	return nil
}

// Digits is range_digits with the default applied.
func (r *RangeVelocity) Digits() int { return orDefault(r.RangeDigits, DefaultRangeDigits) }

// Window is window_minutes with the default applied.
func (r *RangeVelocity) Window() int { return orDefault(r.WindowMinutes, DefaultWindow) }

// Size is max_ranges with the default applied.
func (r *RangeVelocity) Size() int { return orDefault(r.MaxRanges, DefaultMaxRanges) }
