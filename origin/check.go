package origin

import (
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Kind is the reason class of an outcome; the matcher maps each to a verdict
// reason with its own code.
type Kind uint8

// Outcome kinds. Wire names match the matcher's reasons.
const (
	KindNone        Kind = iota // allowed
	KindScreen                  // origin_screen: send to the screening IVR
	KindRejected                // origin_rejected: the origin's zone rejects calls
	KindUntrusted               // untrusted_source: not among the account's trusted sources
	KindBlocked                 // source_blocked: on the operator's source blocklist
	KindQuarantined             // quarantined: too many failed screenings
	numKinds
)

var kindNames = [numKinds]string{"", "origin_screen", "origin_rejected", "untrusted_source", "source_blocked", "quarantined"}

// String is the kind's wire name ("" for KindNone).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return ""
}

// Rule is the origin rule that decided.
type Rule uint8

// Origin rules, in the order Check considers them.
const (
	RuleOff            Rule = iota // the account has no origin rules
	RuleEmergency                  // emergency calls are never held back
	RuleBlockedSource              // source address on the operator's blocklist
	RuleBlockedOrigin              // origin country on the operator's blocklist
	RuleQuarantine                 // quarantined account, call not domestic
	RuleUntrusted                  // source not among the account's trusted sources
	RuleTrusted                    // source among the account's trusted sources
	RuleNoGeo                      // no Geo-IP database in force: country rules off
	RuleUnknownOrigin              // the database does not know the source address
	RuleZone                       // the origin country's zone of the geo profile
	RuleLocationChange             // another country (or IP) within the change period
	RuleHome                       // the account's home country
	RuleStationary                 // stationary account calling from abroad
	RuleNoHome                     // stationary account without a home country
	RuleHomeAssigned               // first call from an allowed country: became home
	RulePassed                     // a screen waived: screening passed recently
	RuleAllowed                    // no rule objects (roaming, no profile)
	numRules
)

var ruleNames = [numRules]string{
	"off", "emergency", "blocked_source", "blocked_origin", "quarantine", "untrusted", "trusted",
	"no_geoip", "unknown_origin", "zone", "location_change", "home", "stationary", "no_home",
	"home_assigned", "screening_passed", "allowed",
}

// String is the rule's name, fit for a metric label.
func (r Rule) String() string {
	if r < numRules {
		return ruleNames[r]
	}
	return "unknown"
}

// Rules lists every rule's name, for pre-registering metric label values.
func RuleNames() []string { return append([]string(nil), ruleNames[:]...) }

// Input is what Check needs to know about one call. Strings may point into
// request memory: Check keeps none of them.
type Input struct {
	Account string // the account (or "account/subaccount" state key) the call is charged to
	SrcIP   string // the caller's source address as the proxy saw it
	// Rules are the account's compiled origin rules; nil switches origin
	// checks off for the call.
	Rules *Rules
	// DestCountry is the destination's ISO code ("" when unknown) and
	// HomeCountry the account's home (destination) country, so that a
	// quarantined account can still make domestic calls.
	DestCountry string
	HomeCountry string
	// Emergency calls pass whatever the origin (the matcher lets them
	// through before asking, this is a second belt).
	Emergency bool
}

// Outcome is Check's answer: a plain value whose strings point at immutable
// data (compiled rules, the country table), valid after any reload.
type Outcome struct {
	Action  Action
	Kind    Kind
	Rule    Rule
	Waived  Rule          // for RulePassed: the screen rule the pass waived
	Country string        // origin country, "" when unknown or not looked up
	Zone    string        // the geo profile's zone for the origin, "" for none
	Profile string        // the geo profile consulted, "" for none
	Home    string        // the account's home country in force, "" for none
	Last    string        // location change: the last call's country
	Since   time.Duration // location change: time since the last call
	Period  time.Duration // location change: the allowed change period
	Failed  int           // quarantine: failed screenings
	ByIP    bool          // location change measured by source IP
}

// Checker answers origin checks from the Geo-IP database in force, the
// account's compiled rules and its state.
type Checker struct {
	geo *GeoIP
	st  *State
	// outcomes counts Check's answers by rule and action, for metrics.
	outcomes [numRules][3]atomic.Uint64
}

// Outcomes calls f for every origin rule and action with how many Check
// answers took them since the Checker was made (labels from closed sets,
// for metrics).
func (c *Checker) Outcomes(f func(rule Rule, action Action, n uint64)) {
	for r := range c.outcomes {
		for a := range c.outcomes[r] {
			f(Rule(r), Action(a), c.outcomes[r][a].Load())
		}
	}
}

// NewChecker returns a Checker. geo may be nil or hold no database: country
// rules are then off, and address rules (blocklist, trusted sources, IP
// location change) still apply.
func NewChecker(geo *GeoIP, st *State) *Checker {
	if st == nil {
		st = NewState(StateOptions{})
	}
	return &Checker{geo: geo, st: st}
}

// State is the account state the Checker reads and writes.
func (c *Checker) State() *State { return c.st }

// Geo is the Geo-IP database holder (may be nil).
func (c *Checker) Geo() *GeoIP { return c.geo }

// Check decides on the origin of one call. The order:
//
//  1. emergency calls pass;
//  2. no rules: pass (origin checks off for the account);
//  3. the operator's source blocklist, by address then origin country: reject;
//  4. quarantine: anything but a domestic call is rejected;
//  5. trusted sources, when the account lists any: inside passes, outside is rejected;
//  6. without a Geo-IP database the country rules are off (an IP location change still screens);
//  7. an origin whose zone rejects is rejected, unless it is the home country;
//     an unknown origin gets the profile's unknown action;
//  8. a location change within the period screens;
//  9. the home country passes;
//  10. a stationary account elsewhere, or without a home, screens;
//  11. an origin whose zone screens, screens;
//  12. otherwise the call passes, and may assign the home country.
//
// A screen is waived while a passed screening's window is open. Allowed and
// screened calls become the account's last call. Check takes no global lock
// and allocates nothing once the account's state exists.
func (c *Checker) Check(in Input) Outcome {
	if in.Emergency {
		return Outcome{Rule: RuleEmergency}
	}
	r := in.Rules
	if r == nil {
		return Outcome{Rule: RuleOff}
	}
	o, changed, account := c.check(&in, r)
	c.outcomes[o.Rule][o.Action].Add(1)
	if changed && c.st.o.OnChange != nil {
		// The account name may point into request memory: the hook gets
		// its own copy (once per account, when its home is assigned).
		c.st.o.OnChange(strings.Clone(account), c.durable(account))
	}
	return o
}

func (c *Checker) durable(account string) Durable {
	a := c.st.get(account)
	if a == nil {
		return Durable{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable(c.st.o.Now())
}

func (c *Checker) check(in *Input, r *Rules) (o Outcome, changed bool, account string) {
	ip, ipOK := ParseIP(in.SrcIP)
	tab := c.geo.Table()
	var origin cc
	if ipOK && tab != nil {
		origin = tab.lookup(ip)
	}
	o.Country = origin.String()
	op := r.op

	// Operator blocklist.
	if ipOK && op.blocked.Contains(ip) {
		o.Action, o.Kind, o.Rule = Reject, KindBlocked, RuleBlockedSource
		return o, false, ""
	}
	if origin != 0 && op.blockedOrigins[origin] {
		o.Action, o.Kind, o.Rule = Reject, KindBlocked, RuleBlockedOrigin
		return o, false, ""
	}

	var a *acct
	if in.Account != "" {
		if r.NeedsState() {
			a = c.st.getOrCreate(in.Account, false)
		} else {
			a = c.st.get(in.Account)
		}
	}
	// The clock is read only for an account with state: its history and
	// pass window are all that need the time (and a clock read costs tens
	// of nanoseconds on some virtual machines).
	var now int64
	var s acct // a's fields, or zero
	if a != nil {
		now = c.st.o.Now().UnixNano()
		a.mu.Lock()
		defer a.mu.Unlock()
		s.lastAt, s.lastCC, s.lastIP = a.lastAt, a.lastCC, a.lastIP
		s.home, s.passUntil, s.failed, s.quarantined = a.home, a.passUntil, a.failed, a.quarantined
	}
	home := r.home
	if home == 0 {
		home = s.home
	}
	o.Home = home.String()

	if s.quarantined {
		dest := packCC(in.DestCountry)
		domestic := dest != 0 && (dest == packCC(in.HomeCountry) || dest == home)
		if !domestic {
			o.Action, o.Kind, o.Rule, o.Failed = Reject, KindQuarantined, RuleQuarantine, s.failed
			return o, false, ""
		}
	}

	if r.hasTrusted {
		if !ipOK || !r.trusted.Contains(ip) {
			o.Action, o.Kind, o.Rule = Reject, KindUntrusted, RuleUntrusted
			return o, false, ""
		}
		o.Rule = RuleTrusted
		c.record(a, now, origin, ip, ipOK)
		return o, false, ""
	}

	geo := tab != nil
	zoneAct := Allow
	if geo && r.profile != nil {
		zoneAct, o.Zone = r.profile.lookup(origin)
		o.Profile = r.profile.Name
	}

	// Rejections: zone (home is safe) or unknown origin.
	if geo && zoneAct == Reject && (origin == 0 || origin != home) {
		o.Action, o.Kind, o.Rule = Reject, KindRejected, RuleZone
		if origin == 0 {
			o.Rule = RuleUnknownOrigin
		}
		return o, false, ""
	}

	// Screens.
	screen := ruleNone
	if r.changeNanos > 0 && s.lastAt != 0 && now-s.lastAt < r.changeNanos && now >= s.lastAt {
		if r.changeByIP {
			if ipOK && s.lastIP.IsValid() && ip.Unmap() != s.lastIP {
				screen = RuleLocationChange
				o.ByIP = true
			}
		} else if geo && origin != 0 && s.lastCC != 0 && origin != s.lastCC {
			screen = RuleLocationChange
			o.Last = s.lastCC.String()
		}
		if screen == RuleLocationChange {
			o.Since, o.Period = time.Duration(now-s.lastAt), time.Duration(r.changeNanos)
		}
	}
	assign := false
	if screen == ruleNone {
		switch {
		case !geo:
			o.Rule = RuleNoGeo
		case origin == 0:
			o.Rule = RuleUnknownOrigin
			if zoneAct == Screen {
				screen = RuleUnknownOrigin
			}
		case origin == home:
			o.Rule = RuleHome
		case r.stationary && home != 0:
			screen = RuleStationary
		case zoneAct == Screen:
			screen = RuleZone
		case home == 0 && r.assignHome && a != nil:
			o.Rule, assign = RuleHomeAssigned, true
		case r.stationary:
			screen = RuleNoHome
		case r.profile != nil:
			o.Rule = RuleZone
		default:
			o.Rule = RuleAllowed
		}
	}
	if screen != ruleNone {
		if s.passUntil > now {
			o.Rule, o.Waived = RulePassed, screen
		} else {
			o.Action, o.Kind, o.Rule = Screen, KindScreen, screen
		}
	}
	c.record(a, now, origin, ip, ipOK)
	if assign {
		a.home, a.homeAuto = origin, true
		o.Home = o.Country
		return o, true, in.Account
	}
	return o, false, ""
}

// ruleNone means "no screen yet" inside Check; it is RuleOff's value, which
// Check never returns for an account with rules.
const ruleNone = RuleOff

// record makes this call the account's last. Caller holds a.mu.
func (c *Checker) record(a *acct, now int64, origin cc, ip netip.Addr, ipOK bool) {
	if a == nil {
		return
	}
	a.lastAt, a.lastCC = now, origin
	if ipOK {
		a.lastIP = ip.Unmap()
	} else {
		a.lastIP = netip.Addr{}
	}
}

// AppendText appends the sentence that says which origin rule applied, for
// the verdict's rule text. With a large enough dst it allocates nothing.
func (o *Outcome) AppendText(dst []byte) []byte {
	switch o.Rule {
	case RuleOff:
		return append(dst, "origin checks off for the account"...)
	case RuleEmergency:
		return append(dst, "emergency call: origin not checked"...)
	case RuleBlockedSource:
		return append(dst, "source address on the operator's source blocklist"...)
	case RuleBlockedOrigin:
		dst = appendOrigin(dst, o.Country)
		return append(dst, " on the operator's source blocklist"...)
	case RuleQuarantine:
		dst = append(dst, "account quarantined after "...)
		dst = strconv.AppendInt(dst, int64(o.Failed), 10)
		return append(dst, " failed screenings: only domestic and emergency calls"...)
	case RuleUntrusted:
		return append(dst, "source address not among the account's trusted sources"...)
	case RuleTrusted:
		return append(dst, "source address among the account's trusted sources"...)
	case RuleNoGeo:
		return append(dst, "no Geo-IP database: origin country not checked"...)
	case RuleUnknownOrigin:
		dst = append(dst, "origin unknown to the Geo-IP database"...)
		if o.Profile != "" {
			dst = append(dst, ": geo profile \""...)
			dst = append(dst, o.Profile...)
			dst = append(dst, "\" says "...)
			dst = append(dst, o.Action.String()...)
		}
		return dst
	case RuleZone:
		dst = appendOrigin(dst, o.Country)
		if o.Zone != "" {
			dst = append(dst, " in zone \""...)
			dst = append(dst, o.Zone...)
			dst = append(dst, '"')
		} else {
			dst = append(dst, " in no zone"...)
		}
		dst = append(dst, " of geo profile \""...)
		dst = append(dst, o.Profile...)
		dst = append(dst, '"')
		dst = append(dst, ": "...)
		return append(dst, o.Action.String()...)
	case RuleLocationChange:
		if o.ByIP {
			dst = append(dst, "source address changed "...)
		} else {
			dst = appendOrigin(dst, o.Country)
			dst = append(dst, ", last call from "...)
			dst = append(dst, o.Last...)
			dst = append(dst, ' ')
		}
		dst = appendMinutes(dst, o.Since)
		dst = append(dst, " ago, within the "...)
		dst = appendMinutes(dst, o.Period)
		return append(dst, " location-change period"...)
	case RuleHome:
		dst = appendOrigin(dst, o.Country)
		return append(dst, " is the account's home country"...)
	case RuleStationary:
		dst = append(dst, "stationary account at home in "...)
		dst = append(dst, o.Home...)
		dst = append(dst, " calling from "...)
		if o.Country == "" {
			return append(dst, "an unknown origin"...)
		}
		return append(dst, o.Country...)
	case RuleNoHome:
		dst = append(dst, "stationary account without a home country, "...)
		return appendOrigin(dst, o.Country)
	case RuleHomeAssigned:
		dst = appendOrigin(dst, o.Country)
		return append(dst, " allowed and assigned as the account's home country"...)
	case RulePassed:
		dst = append(dst, "screening passed recently: waived ("...)
		if o.Waived != RulePassed {
			w := *o
			w.Rule, w.Action = o.Waived, Screen
			dst = w.AppendText(dst)
		}
		return append(dst, ')')
	case RuleAllowed:
		dst = appendOrigin(dst, o.Country)
		return append(dst, " allowed"...)
	}
	return append(dst, "origin rule unknown"...)
}

func appendOrigin(dst []byte, country string) []byte {
	if country == "" {
		return append(dst, "origin unknown"...)
	}
	return append(append(dst, "origin "...), country...)
}

// appendMinutes writes d as "N min" (seconds under a minute as "N s").
func appendMinutes(dst []byte, d time.Duration) []byte {
	if d < time.Minute {
		dst = strconv.AppendInt(dst, int64(d/time.Second), 10)
		return append(dst, " s"...)
	}
	dst = strconv.AppendInt(dst, int64(d/time.Minute), 10)
	return append(dst, " min"...)
}
