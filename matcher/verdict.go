package matcher

import (
	"time"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
)

// Action is what the SIP proxy must do with the call.
type Action uint8

// The three answers a proxy acts on. The HTTP status of the query API carries
// them too (200, 403, 202) for configs that do not parse JSON.
const (
	Allow Action = iota
	Reject
	Screen
)

var actionNames = [...]string{Allow: "allow", Reject: "reject", Screen: "screen"}

// String is the wire name of the action ("allow", "reject", "screen").
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// HTTPStatus is the query API status that carries the action.
func (a Action) HTTPStatus() int {
	switch a {
	case Allow:
		return 200
	case Screen:
		return 202
	default:
		return 403
	}
}

// Reason says why a decision was taken. Each has a stable wire name, a numeric
// hangup code for CDRs, a SIP response and a human message: see Reasons.
type Reason uint8

// Reasons in wire order. New reasons are appended; codes never change meaning.
const (
	ReasonOK Reason = iota
	ReasonEmergency
	ReasonInvalidNumber
	ReasonNotPermitted
	ReasonCountryBarred
	ReasonCountryDisabled
	ReasonNumberBarred
	ReasonInternationalLocked
	ReasonRateExceeded
	ReasonOriginScreen
	ReasonOriginRejected
	ReasonUntrustedSource
	ReasonSourceBlocked
	ReasonQuarantined
	ReasonUnknownSubaccount
	ReasonAccountQuarantined
	ReasonChannelLimit
	ReasonAccountChannelLimit
	ReasonCPSLimit
	numReasons
)

// ReasonInfo is one row of the verdict table that operators and SIP configs
// are written against (docs/verdicts.md is generated from it by a test).
type ReasonInfo struct {
	Name      string // wire name, e.g. "country_barred"
	Code      int    // hangup code for CDRs, e.g. 2030
	SIPCode   int    // SIP response the proxy sends (or 200 for a relayed call)
	SIPReason string // SIP reason phrase
	Message   string // what an operator or end customer reads
}

// Reasons is the verdict table, indexed by Reason. 2030 and 2040 are the codes
// Plivo documents for barred countries and numbers; the others are ours.
var Reasons = [numReasons]ReasonInfo{
	ReasonOK:              {"ok", 1000, 200, "OK", "The call is permitted"},
	ReasonEmergency:       {"emergency", 1001, 200, "OK", "Emergency number: always permitted"},
	ReasonInvalidNumber:   {"invalid_number", 2010, 484, "Address Incomplete", "The dialled number is not a valid telephone number"},
	ReasonNotPermitted:    {"not_permitted", 2020, 403, "Not Permitted", "This account is not permitted to place calls"},
	ReasonCountryBarred:   {"country_barred", 2030, 403, "Barred Country", "Calls to this destination country are barred"},
	ReasonCountryDisabled: {"country_disabled", 2031, 403, "Country Disabled", "Calls to this destination country are disabled by the operator"},
	ReasonNumberBarred:    {"number_barred", 2040, 403, "Barred Number", "Calls to this destination number are barred"},
	ReasonInternationalLocked: {"international_locked", 2050, 403, "International Calls Locked",
		"International calls of this account are locked after suspected fraud; domestic and emergency calls still pass"},
	ReasonRateExceeded: {"rate_exceeded", 2060, 403, "Destination Rate Exceeded",
		"This destination costs more per minute than the account's max_destination_rate"},
	ReasonOriginScreen: {"origin_screen", 1010, 200, "OK",
		"The call's origin needs screening: the proxy relays it to the screening IVR (SCREEN_URI)"},
	ReasonOriginRejected: {"origin_rejected", 2070, 403, "Origin Rejected",
		"Calls from this origin country are rejected by the account's geo profile"},
	ReasonUntrustedSource: {"untrusted_source", 2071, 403, "Untrusted Source",
		"The call does not come from one of the account's trusted source addresses"},
	ReasonSourceBlocked: {"source_blocked", 2072, 403, "Source Blocked",
		"The call's source address or origin country is on the operator's source blocklist"},
	ReasonQuarantined: {"quarantined", 2073, 403, "Account Quarantined",
		"The account is quarantined after failed screenings: only domestic and emergency calls pass"},
	ReasonUnknownSubaccount: {"unknown_subaccount", 2021, 403, "Unknown Subaccount",
		"The account accepts only its known subaccounts, and this one is not among them"},
	ReasonAccountQuarantined: {"account_quarantined", 2074, 403, "Account Quarantined",
		"The account's stored policy was found damaged at start and is quarantined: every call but an emergency call is refused until the account is written again"},
	ReasonChannelLimit: {"fleet_channel_limit", 2080, 503, "Channel Limit Reached",
		"Fleet mode: the other tollgates' proxies hold every channel of the max_channels cap"},
	ReasonAccountChannelLimit: {"fleet_account_channel_limit", 2081, 503, "Channel Limit Reached",
		"Fleet mode: the other tollgates' proxies hold every channel of the account_max_channels cap"},
	ReasonCPSLimit: {"fleet_cps_limit", 2082, 503, "CPS Limit Exceeded",
		"Fleet mode: the other tollgates' proxies used the whole max_cps cap in the last second"},
}

// Verdict is the action a reason stands for: screen for origin_screen,
// allow for the reasons relayed with 200, reject for the others.
func (r Reason) Verdict() Action {
	switch {
	case r == ReasonOriginScreen:
		return Screen
	case r.Info().SIPCode == 200:
		return Allow
	}
	return Reject
}

// Info returns the table row of r.
func (r Reason) Info() *ReasonInfo {
	if r < numReasons {
		return &Reasons[r]
	}
	return &Reasons[ReasonInvalidNumber]
}

// String is the wire name of the reason.
func (r Reason) String() string { return r.Info().Name }

// Query is what a SIP proxy knows about one outbound INVITE. Only To is
// required. Transports may point these strings at request memory without
// copying: the matcher never keeps them past Decide, and a Verdict refers to
// them only as long as the caller keeps the query alive.
type Query struct {
	To         string // the dialled user part, in any common format
	Account    string // account tag as the proxy authenticated it
	Subaccount string // optional subaccount
	From       string // caller's number (reserved for origin checks)
	SrcIP      string // caller's source IP (reserved for origin checks)
	CallID     string // SIP Call-ID (logged with a rejection)
	// At is when the call is checked, if the caller has read the clock
	// already (a transport's request time); zero: the origin checks read
	// it when they need it.
	At time.Time
}

// Layer says which level of policy took a decision.
type Layer uint8

// Policy layers, from the most general.
const (
	LayerNone Layer = iota // no policy consulted (invalid number, emergency)
	LayerOperator
	LayerDefault // the operator's default policy, applied to an unknown account
	LayerAccount
	LayerSubaccount
	LayerHighRisk // the high-risk list, applied because the account blocks it
	// LayerTemplate is the account's template (Verdict.Template names
	// it): the account, or its subaccount, left the deciding setting to it.
	LayerTemplate
)

var layerNames = [...]string{"", "operator", "default", "account", "subaccount", "high-risk list", "template"}

// String names the layer as the rule text does.
func (l Layer) String() string {
	if int(l) < len(layerNames) {
		return layerNames[l]
	}
	return ""
}

// RuleKind is the particular rule within a layer that decided.
type RuleKind uint8

// Rule kinds; AppendRule turns them into a sentence.
const (
	RuleNone RuleKind = iota
	RuleEmergency
	RuleInvalid
	RuleUnknownAccount
	RuleCountryDisabled
	RuleBlockedPrefix  // operator-wide blocked prefix
	RuleAllowPrefix    // account/subaccount allow prefix
	RuleBlockPrefix    // account/subaccount block prefix
	RuleHighRisk       // prefix on the high-risk list
	RuleCountryAllowed // country permissions allow it
	RuleCountryDenied  // country permissions deny it
	RuleLockdown       // the account's international calls are locked
	RuleRateExceeded   // the destination's rate is above max_destination_rate
	RuleOrigin         // an origin check (see Verdict.Origin)
	RuleUnknownSub     // a subaccount the account does not have (unknown_subaccounts=reject)
	RuleQuarantined    // the account's stored records were damaged (-quarantine-damaged)
	RuleFleetCap       // fleet mode: the other nodes use the whole cap
)

// Verdict is the answer to one Query. It is a plain value: no pointers into
// the snapshot's mutable state, so it stays valid after a reload.
type Verdict struct {
	Action      Action
	Reason      Reason
	Country     string // ISO 3166 code of the destination, "001" for non-geographic, "" if unknown
	Account     string // the account the decision was taken for (echo of the query)
	Subaccount  string // the subaccount, if the query named one the account has
	MaxChannels int    // the account's concurrent-channel cap, 0 = none
	MaxCPS      int    // the account's calls-per-second cap, 0 = none
	// AccountMaxChannels and AccountMaxCPS are the account-wide caps, on
	// the account and all its subaccounts together (0 = none); the proxy
	// enforces them beside MaxChannels and MaxCPS.
	AccountMaxChannels, AccountMaxCPS int

	Layer Layer // which policy level decided
	// Template is, when Layer is LayerTemplate, the template that
	// decided (the account's "template"); "" otherwise.
	Template string
	Rule     RuleKind // which rule within it
	// MatchLen is how many digits of the E.164 number the deciding prefix
	// rule matched (0 when no prefix rule decided). The prefix itself is
	// E164()[:MatchLen+1].
	MatchLen int
	// Detail is a short operator-written or data-provided text for the rule:
	// the operator's reason for a disabled country or blocked prefix, or the
	// high-risk entry's "category; source".
	Detail string
	// Invalid says, for an invalid number, what was wrong with it.
	Invalid InvalidKind
	// Selector is the countries.except entry that matched (e.g.
	// "region:caribbean"), empty if the default applied.
	Selector string
	// Rate and MaxRate are, for rate_exceeded, the destination's price and
	// the account's max_destination_rate in millionths of Currency per
	// minute.
	Rate, MaxRate int64
	Currency      string
	// Origin is the origin checks' outcome when they ran (OriginRan): for
	// RuleOrigin the rule that screened or rejected, for an allowed call
	// the origin rule that let it through.
	Origin    origin.Outcome
	originRan bool
	// DecidedBy says, for a dialled string that carried a routing number
	// (rn=), whether the dialled number (DecidedByTo) or the routing number
	// (DecidedByRN) decided: the stricter verdict of the two wins. Without
	// a routing number it is DecidedByNone.
	DecidedBy DecidedBy

	rn  [24]byte // the routing number's E.164 form, when it resolved
	rnn uint8

	e164  [24]byte // "+" and up to 15 digits, or the short number as dialled
	e164n uint8

	// res notes what the decision learnt of the dialled number, for a
	// second decision of the same query (DecideBeside): its resolution
	// under the home country resHome (plan facts resInfo) is in e164 and
	// Country, or resShort, or Invalid.
	res      resKind
	resShort shortKind
	resHome  string
	resInfo  *numplan.RegionInfo
}

// resKind says what a verdict notes of its dialled number's resolution.
type resKind uint8

const (
	resNone    resKind = iota // nothing: resolve again (emergency, rn=, refused before resolving)
	resE164                   // e164 and Country are the number's E.164 form and country
	resShort                  // e164 is a short number of the home country as dialled; resShort its kind
	resInvalid                // Invalid is why the number does not resolve
)

// DecidedBy names the number a verdict was decided on when the dialled
// string carried a routing number.
type DecidedBy uint8

// Which number decided.
const (
	DecidedByNone DecidedBy = iota // no routing number
	DecidedByTo                    // the dialled number ("to")
	DecidedByRN                    // the routing number ("rn")
)

// String is the wire name: "", "to" or "rn".
func (d DecidedBy) String() string {
	switch d {
	case DecidedByTo:
		return "to"
	case DecidedByRN:
		return "rn"
	}
	return ""
}

// RNBytes is the routing number's E.164 form ("+53…"), empty when the
// dialled string carried none or it did not resolve. It aliases the verdict.
func (v *Verdict) RNBytes() []byte { return v.rn[:v.rnn] }

// OriginRan reports whether the origin checks ran for this call (they run
// for calls everything else allows, when the account has origin rules).
func (v *Verdict) OriginRan() bool { return v.originRan }

// E164Bytes is the resolved number ("+4420…"), or an emergency number as
// dialled, or empty for an invalid number. It aliases the verdict: copy it
// before the verdict goes away.
func (v *Verdict) E164Bytes() []byte { return v.e164[:v.e164n] }

// E164 is E164Bytes as a new string (allocates; for tests and the CLI).
func (v *Verdict) E164() string { return string(v.e164[:v.e164n]) }

func (v *Verdict) setNumber(b []byte) {
	v.e164n = uint8(copy(v.e164[:], b))
}

// InvalidKind says what made a number invalid, for the rule text.
type InvalidKind uint8

// Ways a dialled string fails to be a number.
const (
	InvalidNone InvalidKind = iota
	InvalidEmpty
	InvalidTooLong
	InvalidCharacter
	InvalidNoCountry // no country calling code or region claims it
	InvalidLength    // too short or too long for its country
	InvalidNoHome    // national format but the account has no home country
	InvalidNational  // national format that the home country's plan rejects
	// InvalidRoutingNumber: the rn= parameter is empty, given more than
	// once, or a short code rather than a number.
	InvalidRoutingNumber
)

var invalidText = [...]string{
	InvalidNone:          "",
	InvalidEmpty:         "empty number",
	InvalidTooLong:       "longer than 32 characters",
	InvalidCharacter:     "contains a character that is not a digit or separator",
	InvalidNoCountry:     "no country owns this number",
	InvalidLength:        "wrong length for its country",
	InvalidNoHome:        "national format, but the account has no home country",
	InvalidNational:      "not a valid national number for the home country",
	InvalidRoutingNumber: "routing number (rn=) empty, given more than once or not a number",
}

// String says what was wrong with the number.
func (k InvalidKind) String() string {
	if int(k) < len(invalidText) {
		return invalidText[k]
	}
	return "invalid"
}
