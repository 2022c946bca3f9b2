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
	RuleNoGeo                      // no Geo-IP database in force: every origin unknown
	RuleUnknownOrigin              // no or unreadable source address, or one the database does not place
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
	// Parent is the account's state key when Account is a subaccount's own
	// state key ("" otherwise): the account's quarantine holds its
	// subaccounts too.
	Parent string
	SrcIP  string // the caller's source address as the proxy saw it (ParseSource's forms)
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
	// Ref, when not nil, remembers where Account's state lives between
	// checks (see Ref): it must only ever be passed with this Account.
	Ref *Ref
	// Now is the time of the call in Unix nanoseconds when the caller has
	// read the clock already (0: Check reads it, if it needs it). A State
	// with a clock of its own (StateOptions.Now, as tests set) reads that
	// one instead.
	Now int64
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
	Unknown UnknownCause  // why the origin country is unknown (CauseKnown when it is not)
}

// Checker answers origin checks from the Geo-IP database in force, the
// account's compiled rules and its state.
type Checker struct {
	geo *GeoIP
	st  *State
	// outcomes counts Check's answers by rule and action, unknown the
	// unknown origins by cause, for metrics.
	outcomes [numRules][3]atomic.Uint64
	unknown  [numCauses]atomic.Uint64
}

// Unknowns calls f for every cause of an unknown origin with how many
// checks met one since the Checker was made (a closed set of labels).
func (c *Checker) Unknowns(f func(cause UnknownCause, n uint64)) {
	for i := CauseKnown + 1; i < numCauses; i++ {
		f(i, c.unknown[i].Load())
	}
}

// Degraded reports whether country rules are in force without a Geo-IP
// database to read the country from (rules reports whether any account's
// rules or the operator's blocklist need one): every origin is then
// unknown and gets the unknown action.
func (c *Checker) Degraded(rulesNeedGeo bool) bool { return rulesNeedGeo && !c.geo.Enabled() }

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

// NewChecker returns a Checker. geo may be nil or hold no database: every
// origin is then unknown (each account with country rules gets its unknown
// action), and address rules (blocklist, trusted sources, IP location
// change) still apply.
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

// PrefetchSource starts loading the line of the Geo-IP table that the
// check of a call from src will read (an IPv4 address's /16 bucket in a
// large table), so that its cache miss overlaps with what the caller does
// first, as Ref.Prefetch does for the account's state. It parses nothing
// beyond the address's first two numbers, waits for nothing and changes
// nothing.
func (c *Checker) PrefetchSource(src string) { c.geo.Table().prefetch4(src) }

// Check decides on the origin of one call. The order:
//
//  1. emergency calls pass;
//  2. no rules: pass (origin checks off for the account);
//  3. the operator's source blocklist, by address then origin country: reject;
//  4. quarantine (the account's, or its own for a subaccount with state of
//     its own): anything but a domestic call is rejected;
//  5. trusted sources, when the account lists any: inside passes, outside is rejected;
//  6. an origin whose zone rejects is rejected, unless it is the home country;
//     an unknown origin (no or unreadable source address, no Geo-IP
//     database, an address the database does not place) gets the unknown
//     action when the account has country rules: the profile's, screen
//     without one (and at least screen without a database when the
//     operator blocks countries);
//  7. a location change within the period screens;
//  8. the home country passes;
//  9. a stationary account elsewhere, or without a home, screens;
//  10. an origin whose zone screens, screens;
//  11. otherwise the call passes, and may assign the home country.
//
// A screen is waived while a passed screening's window is open. Only an
// allowed call becomes the account's last call; a screened one does when
// its screening passes (ScreeningPassed), so redialling after a screen
// meets the same screen. Check takes no global lock and allocates nothing
// once the account's state exists.
func (c *Checker) Check(in Input) Outcome {
	var o Outcome
	c.CheckInto(&in, &o)
	return o
}

// CheckInto is Check writing its outcome to *o, for a caller that keeps
// the outcome in a larger value (the matcher's verdict): neither the input
// nor the outcome is copied on the way. It keeps neither pointer.
func (c *Checker) CheckInto(in *Input, o *Outcome) {
	*o = Outcome{}
	if in.Emergency {
		o.Rule = RuleEmergency
		return
	}
	r := in.Rules
	if r == nil {
		o.Rule = RuleOff
		return
	}
	changed, account := c.check(in, r, o)
	c.outcomes[o.Rule][o.Action].Add(1)
	if changed && c.st.o.OnChange != nil {
		// The account name may point into request memory: the hook gets
		// its own copy (once per account, when its home is assigned).
		c.st.o.OnChange(strings.Clone(account), c.durable(account))
	}
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

func (c *Checker) check(in *Input, r *Rules, o *Outcome) (changed bool, account string) {
	ip, perr := ParseSource(in.SrcIP)
	ipOK := perr == SourceOK
	if ipOK {
		ip = ip.Unmap()
	}
	tab := c.geo.Table()
	var origin cc
	switch {
	case perr == SourceEmpty:
		o.Unknown = CauseMissing
	case !ipOK:
		o.Unknown = CauseInvalid
	case tab == nil:
		o.Unknown = CauseNoGeoIP
	default:
		if origin = tab.lookup(ip); origin == 0 {
			o.Unknown = CauseNotFound
		}
	}
	if o.Unknown != CauseKnown {
		c.unknown[o.Unknown].Add(1)
	}
	o.Country = origin.String()
	op := r.op

	// Operator blocklist.
	if ipOK && op.blocked.Contains(ip) {
		o.Action, o.Kind, o.Rule = Reject, KindBlocked, RuleBlockedSource
		return false, ""
	}
	if origin != 0 && op.blockedOrigins[origin] {
		o.Action, o.Kind, o.Rule = Reject, KindBlocked, RuleBlockedOrigin
		return false, ""
	}

	// A subaccount with state of its own is still held by its account's
	// quarantine.
	parentQ, parentFailed := false, 0
	if in.Parent != "" {
		if p := c.st.get(in.Parent); p != nil {
			var pv hotView
			p.load(&pv)
			parentQ, parentFailed = pv.quarantined, pv.failed
		}
	}

	var a *acct
	if in.Account != "" {
		a = c.st.lookup(in.Ref, in.Account, r.NeedsState())
	}
	// The clock is read only for an account with state: its history and
	// pass window are all that need the time (and a clock read costs tens
	// of nanoseconds on some virtual machines). The account is read without
	// a lock; its lock is taken only to change it.
	var now int64
	var s hotView // a's fields, or zero
	var q uint32  // the sequence s was read under
	if a != nil {
		if now = in.Now; now == 0 || !c.st.realClock {
			now = c.st.o.Now().UnixNano()
		}
		q = a.load(&s)
	}
	home := r.home
	if home == 0 {
		home = s.home
	}
	o.Home = home.String()

	if s.quarantined || parentQ {
		dest := packCC(in.DestCountry)
		domestic := dest != 0 && (dest == packCC(in.HomeCountry) || dest == home)
		if !domestic {
			o.Action, o.Kind, o.Rule, o.Failed = Reject, KindQuarantined, RuleQuarantine, s.failed
			if !s.quarantined {
				o.Failed = parentFailed
			}
			return false, ""
		}
	}

	if r.hasTrusted {
		if !ipOK || !r.trusted.Contains(ip) {
			o.Action, o.Kind, o.Rule = Reject, KindUntrusted, RuleUntrusted
			return false, ""
		}
		o.Rule = RuleTrusted
		if a != nil {
			c.record(a, q, &s, now, origin, ip, ipOK)
		}
		return false, ""
	}

	zoneAct := Allow
	if r.profile != nil {
		o.Profile = r.profile.Name
		if origin != 0 {
			zoneAct, o.Zone = r.profile.lookup(origin)
		}
	}
	// An unknown origin satisfies no rule that asks where the caller is:
	// it gets the unknown action (the profile's, screen without one). With
	// no database at all, the operator's country blocklist cannot be
	// applied either, so it is screened at least.
	unknownAct, unknownRule := Allow, RuleUnknownOrigin
	if origin == 0 {
		if r.countryRules {
			unknownAct = r.unknownAct
		}
		if o.Unknown == CauseNoGeoIP {
			unknownRule = RuleNoGeo
			if op.nBlockedOrigin > 0 && unknownAct < Screen {
				unknownAct = Screen
			}
		}
	}

	// Rejections: zone (home is safe) or unknown origin.
	if origin != 0 && zoneAct == Reject && origin != home {
		o.Action, o.Kind, o.Rule = Reject, KindRejected, RuleZone
		return false, ""
	}
	if origin == 0 && unknownAct == Reject {
		o.Action, o.Kind, o.Rule = Reject, KindRejected, unknownRule
		return false, ""
	}

	// Screens.
	screen := ruleNone
	if r.changeNanos > 0 {
		if r.changeByIP {
			if ipOK && s.lastIP.IsValid() && within(now, s.ipAt, r.changeNanos) && ip != s.lastIP {
				screen = RuleLocationChange
				o.ByIP = true
				o.Since = time.Duration(now - s.ipAt)
			}
		} else if origin != 0 && s.lastCC != 0 && within(now, s.ccAt, r.changeNanos) && origin != s.lastCC {
			screen = RuleLocationChange
			o.Last = s.lastCC.String()
			o.Since = time.Duration(now - s.ccAt)
		}
		if screen == RuleLocationChange {
			o.Period = time.Duration(r.changeNanos)
		}
	}
	assign := false
	if screen == ruleNone {
		switch {
		case origin == 0:
			o.Rule = unknownRule
			if unknownAct == Screen {
				screen = unknownRule
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
			if a != nil {
				// Its origin becomes the last call only if the screening
				// passes (pend is not among the fields Check reads: no
				// publish).
				a.mu.Lock()
				a.pendAt, a.pendCC, a.pendIP = now, origin, netip.Addr{}
				if ipOK {
					a.pendIP = ip
				}
				a.mu.Unlock()
			}
			return false, ""
		}
	}
	if assign {
		a.lock()
		assigned := a.home == 0 // no other call or the operator set one meanwhile
		if assigned {
			a.home, a.homeAuto = origin, true
		}
		c.setLast(a, now, origin, ip, ipOK)
		a.unlock()
		if assigned {
			o.Home = o.Country
			return true, in.Account
		}
		// Another call of the account (or the operator) set a home
		// between the read and the lock: this call is allowed as read,
		// without claiming it assigned one.
		o.Rule = RuleAllowed
		return false, ""
	}
	if a != nil {
		c.record(a, q, &s, now, origin, ip, ipOK)
	}
	return false, ""
}

// within reports whether a last call at "at" (0: none) is less than period
// before now.
func within(now, at, period int64) bool {
	return at != 0 && now >= at && now-at < period
}

// ruleNone means "no screen yet" inside Check; it is RuleOff's value, which
// Check never returns for an account with rules.
const ruleNone = RuleOff

// recordGrain is how stale the last call's time may be left: a call from
// the same origin and address as the last, less than recordGrain after it,
// does not rewrite the account (so a busy account's calls do not all take
// its lock). The location-change period is minutes; a time up to a second
// old shortens it by at most that second.
const recordGrain = int64(time.Second)

// needRecord reports whether an allowed call changes the account's last
// call as read in s.
func needRecord(s *hotView, now int64, origin cc, ip netip.Addr, ipOK bool) bool {
	if origin != 0 && (origin != s.lastCC || now-s.ccAt >= recordGrain || now < s.ccAt) {
		return true
	}
	return ipOK && (ip != s.lastIP || now-s.ipAt >= recordGrain || now < s.ipAt)
}

// record makes an allowed call the account's last (setLast), a's fields
// having been read as s under sequence q. A call from the last call's
// country and address, which moves only the times, is recorded without
// the account's lock when nothing was written since s was read (touch);
// any other, or one that meets a writer, under the lock.
func (c *Checker) record(a *acct, q uint32, s *hotView, now int64, origin cc, ip netip.Addr, ipOK bool) {
	if !needRecord(s, now, origin, ip, ipOK) {
		return
	}
	// What setLast would do: move each time that is not ahead of the call.
	setCC, setIP := origin != 0 && now >= s.ccAt, ipOK && now >= s.ipAt
	if (!setCC || origin == s.lastCC) && (!setIP || ip == s.lastIP) && c.quietMove(a, s, now, setCC, setIP) &&
		a.touch(q, now, setCC, setIP) {
		return
	}
	a.lock()
	c.setLast(a, now, origin, ip, ipOK)
	a.unlock()
}

// quietMove reports whether moving a's last-call times (as record would,
// from s) leaves noteMove nothing to do: fleet export off, or the new
// time less than LocationRefresh after the exported one (the exported
// country and address are then the last call's: see noteMove).
func (c *Checker) quietMove(a *acct, s *hotView, now int64, setCC, setIP bool) bool {
	if !c.st.exporting.Load() {
		return true
	}
	ccAt, ipAt := s.ccAt, s.ipAt
	if setCC {
		ccAt = now
	}
	if setIP {
		ipAt = now
	}
	return max(ccAt, ipAt)-a.pubAt.Load() < int64(LocationRefresh)
}

// setLast makes an allowed call the account's last: its country when
// known, its source address when readable; an unknown origin leaves the
// last country (and its time) as they were, so it can neither erase a
// location history nor restart a location-change period. A call older
// than the last one recorded (two calls of the account raced) leaves it.
// Caller holds a's lock (and unlock publishes).
func (c *Checker) setLast(a *acct, now int64, origin cc, ip netip.Addr, ipOK bool) {
	if origin != 0 && now >= a.ccAt() {
		a.lastCC = origin
		a.setCCAt(now)
	}
	if ipOK && now >= a.ipAt() {
		a.lastIP = ip
		a.setIPAt(now)
	}
	c.st.noteMove(a)
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
	case RuleNoGeo, RuleUnknownOrigin:
		switch o.Unknown {
		case CauseMissing:
			dst = append(dst, "origin unknown: no source address"...)
		case CauseInvalid:
			dst = append(dst, "origin unknown: source address unreadable"...)
		case CauseNoGeoIP:
			dst = append(dst, "origin unknown: no Geo-IP database"...)
		default:
			dst = append(dst, "origin unknown to the Geo-IP database"...)
		}
		if o.Profile != "" {
			dst = append(dst, ": geo profile \""...)
			dst = append(dst, o.Profile...)
			dst = append(dst, "\" says "...)
		} else {
			dst = append(dst, ": "...)
		}
		return append(dst, o.Action.String()...)
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
