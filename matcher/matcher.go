package matcher

import (
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/nyaruka/phonenumbers"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
)

// Matcher answers queries from the current snapshot. Decide only reads: the
// snapshot is swapped whole with an atomic pointer when policy changes, so a
// decision never sees half a change and never waits for one.
type Matcher struct {
	snap  atomic.Pointer[Snapshot]
	empty *Snapshot // serves before the first Swap, so Decide never sees nil
	plan  *numplan.Plan
	// slow caches national-format and ambiguous-code resolutions
	// (phonenumbers.Parse costs ~10 µs and allocates); results depend only on
	// the numbering plan, not on policy, so they survive snapshot swaps.
	slow   *fastcache.Cache
	hits   atomic.Uint64
	misses atomic.Uint64
	vel    Velocity // nil: no velocity counting or lockdown
	origin Origin   // nil: no origin checks
	// checker is origin when it is package origin's Checker, called
	// directly: its outcome is written into the verdict in place.
	checker *origin.Checker
}

// Options tune a Matcher.
type Options struct {
	// SlowCacheBytes bounds the cache of national-format resolutions
	// (default 32 MiB, fastcache's minimum).
	SlowCacheBytes int
	// Velocity, when set, is consulted by every decision of a known
	// account: its international lock is applied and the attempt counted.
	Velocity Velocity
	// Origin, when set, is consulted for every call the destination rules
	// allow, when its account has origin rules: it may screen or reject
	// the call by where it comes from.
	Origin Origin
}

// SnapshotStats describes a compiled snapshot, for logs and metrics.
type SnapshotStats struct {
	Accounts    int
	Subaccounts int
	HighRisk    int
	Rates       int // prefixes of the rate deck
	Prefixes    int // every prefix in every prefix set
	BuiltAt     time.Time
	BuildTime   time.Duration
}

// New returns a matcher with no policy loaded: until the first Swap it
// decides with the built-in default policy and Ready reports false.
func New(plan *numplan.Plan, o Options) *Matcher {
	if o.SlowCacheBytes <= 0 {
		o.SlowCacheBytes = 32 << 20
	}
	m := &Matcher{plan: plan, slow: fastcache.New(o.SlowCacheBytes), vel: o.Velocity, origin: o.Origin}
	m.checker, _ = o.Origin.(*origin.Checker)
	m.empty = &Snapshot{plan: plan, deflt: &account{countries: noCountries, defaultAllow: true, highRiskBlock: true, countriesLayer: LayerDefault, highRiskLayer: LayerDefault, maxRate: -1}}
	return m
}

// Swap installs s for every following decision and returns the previous
// snapshot (nil on the first call).
func (m *Matcher) Swap(s *Snapshot) *Snapshot { return m.snap.Swap(s) }

// Snapshot returns the snapshot in force, nil before the first Swap.
func (m *Matcher) Snapshot() *Snapshot { return m.snap.Load() }

// Ready reports whether a policy snapshot has been loaded.
func (m *Matcher) Ready() bool { return m.snap.Load() != nil }

// CacheStats reports the slow-path cache's hits and misses.
func (m *Matcher) CacheStats() (hits, misses uint64) { return m.hits.Load(), m.misses.Load() }

// Plan is the numbering plan the matcher resolves with.
func (m *Matcher) Plan() *numplan.Plan { return m.plan }

// universalEmergency are dialled as emergency numbers on every GSM network,
// so they pass even for an account whose home country is unknown.
var universalEmergency = [...]string{"112", "911"}

// Decide answers one query. It allocates nothing and takes no lock for
// numbers in international form (+CC, 00CC, the home country's IDD, bare
// digits without a home country); national-format numbers go through a
// bounded cache in front of libphonenumber. With a Velocity, the attempt of
// a known account, or of an unknown one the operator serves, is counted and
// its international lock applied. With an
// Origin, a call everything else allows is checked for where it comes from
// last (emergency calls never are): see docs/verdicts.md for the order.
func (m *Matcher) Decide(q *Query) Verdict {
	s := m.snap.Load()
	if s == nil {
		s = m.empty
	}
	var v Verdict
	m.decideIn(&v, s, m.vel, true, m.origin != nil, q, nil)
	return v
}

// DecideWith decides q against s instead of the snapshot in force, for a
// shadow policy and what-if replays. vel (nil for none) is consulted for
// international locks, and counted into only when count is set: a shadow
// reads the live counters without adding to them, a replay counts into an
// engine of its own. Origin checks are never run: they keep state (the
// calling history a location change is judged by) that a second decision
// must not touch. It allocates nothing, as Decide.
func (m *Matcher) DecideWith(s *Snapshot, vel Velocity, count bool, q *Query) Verdict {
	var v Verdict
	m.decideIn(&v, s, vel, count, false, q, nil)
	return v
}

// DecideBeside is DecideWith for a second decision of a query already
// decided: prev must be the verdict Decide, DecideWith or DecideBeside
// returned for the very same q (as returned, unmodified). Where q's account
// has the same home country in s as in prev's snapshot, the dialled number
// is not normalized and resolved again (national format, numbering plan,
// routing number): prev's resolution is reused, which is what keeps a
// shadow policy's second decision well under the cost of the first. The
// verdict is exactly DecideWith's.
func (m *Matcher) DecideBeside(s *Snapshot, vel Velocity, count bool, q *Query, prev *Verdict) Verdict {
	var v Verdict
	m.decideIn(&v, s, vel, count, false, q, prev)
	return v
}

// decideIn takes a whole decision. prev, when not nil, is an earlier
// verdict of the same query whose noted resolution of q.To (see resKind)
// is reused if a has the home country it was resolved under.
func (m *Matcher) decideIn(v *Verdict, s *Snapshot, vel Velocity, count, origin bool, q *Query, prev *Verdict) {
	a, known, sub := s.lookup(q)
	if origin && known && a.origin != nil {
		// The origin check comes last and reads the account's origin
		// state and the Geo-IP table's line for the source: start
		// loading both now, behind the rest.
		a.originRef.Prefetch()
		if m.checker != nil {
			m.checker.PrefetchSource(q.SrcIP)
		}
	}
	var sc VelocityScope
	if vel != nil && (known || q.Account != "" && !s.rejectUnknown) {
		// an unknown account served by choice is counted (and can be
		// locked) under a scope of its own name
		sc = vel.Scope(q.Account, sub)
	}
	if prev != nil && (prev.res == resNone || prev.resHome != a.home || prev.resInfo != a.homeInfo) {
		prev = nil
	}
	if prev != nil {
		// a noted resolution is of a dialled string without rn=
		m.decide(v, s, a, known, sub, q, q.To, sc, prev)
	} else {
		m.decide(v, s, a, known, sub, q, q.To, sc, nil)
		if rn, n := routingNumber(q.To); n > 0 {
			m.decideRN(v, s, a, known, sub, q, rn, n, sc)
			v.res = resNone // the number fields may be the routing number's
		}
	}
	if origin && v.Reason == ReasonOK && a.origin != nil {
		m.checkOrigin(v, a, known, q)
	}
	if v.Action != Reject && v.Reason != ReasonEmergency && sc != nil {
		if fs, ok := sc.(FleetScope); ok {
			shareCaps(v, fs)
		}
	}
	if v.Layer == LayerTemplate {
		v.Template = a.tmpl.name
	}
	if count && sc != nil && v.Reason != ReasonEmergency {
		var dest Number
		if v.e164n > 1 && v.e164[0] == '+' {
			dest = Number(pack(v.e164[1:v.e164n]))
		}
		sc.Record(dest, PackCountry(v.Country), OutcomeOf(v))
	}
}

// decideRN decides a call whose dialled string carries a routing number
// (rn=) on that number too, as a carrier would route it: the stricter of
// the two verdicts wins (reject over screen over allow; the dialled number
// on a tie), and the verdict says which decided. A routing number that is
// empty, or given more than once, is an invalid number: which one a carrier
// would take is not tollgate's guess.
func (m *Matcher) decideRN(v *Verdict, s *Snapshot, a *account, known bool, sub string, q *Query, rn string, n int, sc VelocityScope) {
	var w Verdict
	if n > 1 || rn == "" {
		w.Account, w.Subaccount = q.Account, sub
		w.MaxChannels, w.MaxCPS = a.maxChannels, a.maxCPS
		w.AccountMaxChannels, w.AccountMaxCPS = a.acctMaxChannels, a.acctMaxCPS
		w.invalid(InvalidRoutingNumber)
	} else {
		m.decide(&w, s, a, known, sub, q, rn, sc, nil)
	}
	if w.Reason == ReasonEmergency {
		// a routing number is where a call goes, never a dialled short code
		w.invalid(InvalidRoutingNumber)
	}
	copy(w.rn[:], w.e164[:w.e164n])
	w.rnn = w.e164n
	if severity(w.Action) > severity(v.Action) {
		*v = w
		v.DecidedBy = DecidedByRN
		return
	}
	v.rn, v.rnn = w.rn, w.rnn
	v.DecidedBy = DecidedByTo
}

// severity orders actions for decideRN: allow < screen < reject.
func severity(a Action) int {
	switch a {
	case Allow:
		return 0
	case Screen:
		return 1
	}
	return 2
}

// Destination resolves what a query dialled, as Decide would, without
// counting it or applying velocity: the E.164 number ("" when the number
// does not resolve to one) and its country. For call events, off the
// decision path.
func (m *Matcher) Destination(q *Query) (e164, country string) {
	s := m.snap.Load()
	if s == nil {
		s = m.empty
	}
	a, known, sub := s.lookup(q)
	var v Verdict
	m.decide(&v, s, a, known, sub, q, q.To, nil, nil)
	if b := v.E164Bytes(); len(b) > 1 && b[0] == '+' {
		return string(b), v.Country
	}
	return "", v.Country
}

// lookup finds the compiled policy of the query's account and subaccount:
// the default policy for an unknown account, the account's for an unknown
// subaccount.
func (s *Snapshot) lookup(q *Query) (a *account, known bool, sub string) {
	a = s.deflt
	if q.Account != "" {
		if acc, ok := s.accounts.Get(q.Account); ok {
			a, known = acc, true
			if q.Subaccount != "" {
				if sa, ok := acc.subs[q.Subaccount]; ok {
					a, sub = sa, q.Subaccount
				}
			}
		}
	}
	return a, known, sub
}

// decide takes the decision for the number to (the query's, or its
// routing number) without the origin checks and without counting it. prev,
// when not nil, holds the resolution of to under a's home country (noted
// by an earlier decision of the same query): to is not normalized or
// resolved again. The resolution is noted in v either way.
func (m *Matcher) decide(v *Verdict, s *Snapshot, a *account, known bool, sub string, q *Query, to string, sc VelocityScope, prev *Verdict) {
	v.Account = q.Account
	v.Subaccount = sub
	v.MaxChannels, v.MaxCPS = a.maxChannels, a.maxCPS
	v.AccountMaxChannels, v.AccountMaxCPS = a.acctMaxChannels, a.acctMaxCPS

	var x dialled
	var d []byte
	if prev == nil {
		if bad := normalize(to, &x); bad != InvalidNone {
			v.invalid(bad)
			return
		}
		d = x.digits()

		// Emergency numbers pass before any block, as dialled. (A noted
		// resolution was reached past this test, under the same home.)
		if !x.plus && isEmergency(a, d) {
			v.Action, v.Reason, v.Rule = Allow, ReasonEmergency, RuleEmergency
			v.Country = a.home
			v.setNumber(d)
			return
		}
	}
	if a.quarantined {
		v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonAccountQuarantined, LayerOperator, RuleQuarantined
		v.Subaccount = ""
		return
	}
	if !known && s.rejectUnknown {
		v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonNotPermitted, LayerOperator, RuleUnknownAccount
		return
	}
	if a.rejectUnknownSubs && q.Subaccount != "" && sub == "" {
		v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonUnknownSubaccount, a.unknownSubsLayer, RuleUnknownSub
		v.Detail = q.Subaccount
		return
	}

	var (
		buf     [48]byte
		num     []byte // E.164 digits without '+'
		short   shortKind
		country string
		bad     InvalidKind
		kind    resKind
	)
	if prev != nil {
		kind = prev.res
		switch kind {
		case resE164:
			num, country = prev.e164[1:prev.e164n], prev.Country
		case resShort:
			d, short = prev.e164[:prev.e164n], prev.resShort
		default:
			bad = prev.Invalid
		}
	} else {
		num, short, country, bad = m.resolve(a, x.plus, d, buf[:0])
		switch {
		case bad != InvalidNone:
			kind = resInvalid
		case short != shortNone:
			kind = resShort
		default:
			kind = resE164
		}
	}
	v.res, v.resShort, v.resHome, v.resInfo = kind, short, a.home, a.homeInfo
	if bad != InvalidNone {
		v.invalid(bad)
		return
	}
	if short != shortNone {
		// A valid short number of the home country (directory enquiries,
		// service codes): domestic, never rewritten, never locked (it is
		// domestic) and never priced (it has no E.164 form).
		v.Country = a.home
		v.setNumber(d)
		ci := countryIdx(a.home)
		if s.disabled.has(ci) {
			v.countryDisabled(s, ci)
			return
		}
		if short == shortPremium && a.highRiskBlock {
			v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonNumberBarred, a.highRiskLayer, RuleHighRisk
			v.Detail = "premium_rate short number; libphonenumber short-number metadata"
			return
		}
		v.countries(a, ci)
		return
	}

	v.Country = country
	v.e164[0] = '+'
	v.e164n = uint8(1 + copy(v.e164[1:], num))

	ci := countryIdx(v.Country)
	if s.disabled.has(ci) {
		v.countryDisabled(s, ci)
		return
	}
	p := pack(num)
	if e := s.opBlocked.match(p); e >= 0 {
		v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonNumberBarred, LayerOperator, RuleBlockedPrefix
		v.MatchLen = s.opBlocked.keys[e].digits()
		v.Detail = s.opBlockedReason[s.opBlocked.val[e]]
		return
	}

	// Prefix rules: the longest match wins. An explicit block beats an
	// allow of the same length; an explicit allow beats a high-risk entry of
	// the same length (the account opted in to that very range).
	la, lb, lh := 0, 0, 0
	if e := a.allow.match(p); e >= 0 {
		la = a.allow.keys[e].digits()
	}
	if e := a.block.match(p); e >= 0 {
		lb = a.block.keys[e].digits()
	}
	eh := int32(-1)
	if a.highRiskBlock {
		if eh = s.highRisk.match(p); eh >= 0 {
			lh = s.highRisk.keys[eh].digits()
		}
	}
	switch {
	case lb > 0 && lb >= la && lb >= lh:
		v.Action, v.Reason, v.Layer, v.Rule, v.MatchLen = Reject, ReasonNumberBarred, a.blockLayer, RuleBlockPrefix, lb
		return
	case lh > 0 && lh > la:
		v.Action, v.Reason, v.Layer, v.Rule, v.MatchLen = Reject, ReasonNumberBarred, a.highRiskLayer, RuleHighRisk, lh
		v.Detail = s.highRiskDetail[s.highRisk.val[eh]]
		return
	case la > 0:
		v.Action, v.Reason, v.Layer, v.Rule, v.MatchLen = Allow, ReasonOK, a.allowLayer, RuleAllowPrefix, la
		v.gates(s, a, sc, p)
		return
	}
	v.countries(a, ci)
	v.gates(s, a, sc, p)
}

// resolve finds what d, the digits a dialled (plus: written with a '+'),
// are: E.164 digits (aliasing d or buf) and their country, a short number
// of the home country, or invalid. It depends on a's home country alone
// (and the numbering plan), which is what lets DecideBeside reuse it.
func (m *Matcher) resolve(a *account, plus bool, d []byte, buf []byte) (num []byte, short shortKind, country string, bad InvalidKind) {
	switch {
	case plus:
		num = d
	case a.home != "":
		if n := a.homeInfo.MatchIDD(d); n > 0 && n < len(d) {
			num = d[n:]
		} else if len(d) > 2 && d[0] == '0' && d[1] == '0' {
			num = d[2:]
		} else {
			num, short, bad = m.national(a.home, d, buf)
			if bad != InvalidNone || short != shortNone {
				return nil, short, "", bad
			}
		}
	default:
		switch {
		case len(d) > 2 && d[0] == '0' && d[1] == '0':
			num = d[2:]
		case d[0] == '0':
			return nil, shortNone, "", InvalidNoHome
		default:
			num = d // E.164 written without '+', as many trunks send it
		}
	}

	if len(num) > maxDigits {
		return nil, shortNone, "", InvalidLength
	}
	r := m.plan.Resolve(num)
	switch r.Status {
	case numplan.OK:
		country = r.Region
	case numplan.Ambiguous:
		if country = m.ambiguous(num); country == "" {
			return nil, shortNone, "", InvalidNoCountry
		}
	case numplan.NoRegion:
		// A shared code's range that no region's metadata claims (the
		// Ofcom drama range +44 7700 900xxx) belongs to the code's main
		// country, as any unlisted range of a single-country code does:
		// only its length is checked there too. Not so for NANP: an
		// unknown area code may be a new Caribbean overlay that stale
		// metadata lacks, a classic IRSF destination, so it fails closed.
		if num[0] == '1' {
			return nil, shortNone, "", InvalidNoCountry
		}
		if country = mainRegion(num[:r.CCLen]); country == "" {
			return nil, shortNone, "", InvalidNoCountry
		}
	case numplan.BadLength:
		return nil, shortNone, "", InvalidLength
	default:
		return nil, shortNone, "", InvalidNoCountry
	}
	if !nanpStructure(num) {
		return nil, shortNone, "", InvalidNoCountry
	}
	return num, shortNone, country, InvalidNone
}

// gates apply, to a call the permissions allow, what comes after them: the
// international lockdown of a locked account (a destination outside its
// home country; an account with no home country has only emergency calls
// left), then the rate deck against max_destination_rate.
func (v *Verdict) gates(s *Snapshot, a *account, sc VelocityScope, p packed) {
	if v.Action != Allow {
		return
	}
	if sc != nil && v.Country != a.home {
		if l := sc.IntlLocked(); l != LayerNone {
			v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonInternationalLocked, l, RuleLockdown
			v.MatchLen, v.Selector, v.Detail = 0, "", a.home
			return
		}
	}
	if a.maxRate >= 0 && s.rates != nil {
		if e := s.rates.match(p); e >= 0 {
			if r := s.rateMicro[s.rates.val[e]]; r > a.maxRate {
				v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonRateExceeded, a.maxRateLayer, RuleRateExceeded
				v.MatchLen, v.Selector, v.Detail = s.rates.keys[e].digits(), "", ""
				v.Rate, v.MaxRate, v.Currency = r, a.maxRate, s.currency
			}
		}
	}
	return
}

func (v *Verdict) invalid(k InvalidKind) {
	v.Action, v.Reason, v.Rule, v.Invalid = Reject, ReasonInvalidNumber, RuleInvalid, k
	v.Country, v.e164n = "", 0
	return
}

func (v *Verdict) countryDisabled(s *Snapshot, ci int) {
	v.Action, v.Reason, v.Layer, v.Rule = Reject, ReasonCountryDisabled, LayerOperator, RuleCountryDisabled
	v.Detail = s.disabledReason[ci]
	return
}

// countries applies the account's country permissions to destination ci.
func (v *Verdict) countries(a *account, ci int) {
	v.Layer = a.countriesLayer
	cr := a.countries
	listed := cr.except.has(ci)
	if listed {
		for i := range cr.sels {
			if cr.sels[i].set.has(ci) {
				v.Selector = cr.sels[i].name
				break
			}
		}
	}
	if a.defaultAllow != listed {
		v.Action, v.Reason, v.Rule = Allow, ReasonOK, RuleCountryAllowed
	} else {
		v.Action, v.Reason, v.Rule = Reject, ReasonCountryBarred, RuleCountryDenied
	}
	return
}

// isEmergency: the home country's emergency numbers, or without a home
// country the few that work almost everywhere.
func isEmergency(a *account, d []byte) bool {
	if a.home != "" {
		return a.homeInfo.IsEmergency(d)
	}
	for _, e := range universalEmergency {
		if string(d) == e {
			return true
		}
	}
	return false
}

// Slow-path cache entries: key is a tag byte, the home country and the
// digits; value is a tag byte and data.
const (
	tagE164    = 'E' // value: E.164 digits
	tagShort   = 'S' // value: one byte, shortStandard or shortPremium
	tagInvalid = 'X' // value: one byte, the InvalidKind
	tagRegion  = 'R' // value: region code
)

type shortKind uint8

const (
	shortNone shortKind = iota
	shortStandard
	shortPremium
)

// national resolves a national-format number dialled from home. The
// returned digits alias buf.
func (m *Matcher) national(home string, d []byte, buf []byte) ([]byte, shortKind, InvalidKind) {
	var kb [2 + 3 + MaxDialled]byte
	key := append(kb[:0], 'N', byte(len(home)))
	key = append(key, home...)
	key = append(key, d...)
	val := m.slow.Get(buf, key)
	if len(val) == 0 {
		m.misses.Add(1)
		val = append(buf[:0], resolveNational(m.plan, home, string(d))...)
		m.slow.Set(key, val)
	} else {
		m.hits.Add(1)
	}
	switch val[0] {
	case tagE164:
		return val[1:], shortNone, InvalidNone
	case tagShort:
		return nil, shortKind(val[1]), InvalidNone
	default:
		return nil, shortNone, InvalidKind(val[1])
	}
}

// resolveNational is the uncached national-format resolution: a full
// national number first, then a short number of the home country.
func resolveNational(plan *numplan.Plan, home, d string) []byte {
	if e164, err := numplan.NationalToE164(d, home); err == nil && len(e164) <= maxDigits {
		r := plan.Resolve([]byte(e164))
		if r.Status == numplan.OK || r.Status == numplan.Ambiguous || r.Status == numplan.NoRegion {
			return append([]byte{tagE164}, e164...)
		}
	}
	if len(d) <= 8 {
		if pn, err := phonenumbers.Parse(d, home); err == nil && phonenumbers.IsValidShortNumberForRegion(pn, home) {
			if premiumShort(home, d) {
				return []byte{tagShort, byte(shortPremium)}
			}
			return []byte{tagShort, byte(shortStandard)}
		}
	}
	return []byte{tagInvalid, byte(InvalidNational)}
}

var (
	premiumShortMu sync.Mutex
	premiumShortRe = map[string]*regexp.Regexp{}
)

// premiumShort reports whether d is a premium-rate short number of region
// according to libphonenumber's short-number metadata.
func premiumShort(region, d string) bool {
	premiumShortMu.Lock()
	re, ok := premiumShortRe[region]
	if !ok {
		coll, err := phonenumbers.ShortNumberMetadataCollection()
		if err == nil {
			for _, md := range coll.GetMetadata() {
				if md.GetId() == region {
					if p := md.GetPremiumRate().GetNationalNumberPattern(); p != "" {
						re, _ = regexp.Compile("^(?:" + p + ")$")
					}
					break
				}
			}
		}
		premiumShortRe[region] = re
	}
	premiumShortMu.Unlock()
	return re != nil && re.MatchString(d)
}

// mainRegion is the main country of a calling code ("44" -> GB).
func mainRegion(cc []byte) string {
	n := 0
	for _, c := range cc {
		n = n*10 + int(c-'0')
	}
	return regionString([]byte(phonenumbers.GetRegionCodeForCountryCode(n)))
}

// nanpStructure reports whether a full +1 number has the NANP shape NXX NXX
// XXXX (area code and exchange start with 2-9). Numbers of other codes, and
// the shorter special numbers some NANP members have (Canada's 310-XXXX),
// are left to the numbering plan's own length checks.
func nanpStructure(num []byte) bool {
	if num[0] != '1' || len(num) != 11 {
		return true
	}
	return num[1] >= '2' && num[4] >= '2'
}

// ambiguous resolves a number whose region the prefix tables could not
// settle, through libphonenumber behind the cache.
func (m *Matcher) ambiguous(num []byte) string {
	var kb [1 + maxDigits]byte
	key := append(kb[:0], tagRegion)
	key = append(key, num...)
	var vb [8]byte
	val := m.slow.Get(vb[:0], key)
	if len(val) == 0 {
		m.misses.Add(1)
		region := numplan.SlowRegion(num)
		m.slow.Set(key, append([]byte{tagRegion}, region...))
		return region
	}
	m.hits.Add(1)
	return regionString(val[1:])
}

// regionString returns the interned string for a region code, so a cache
// hit allocates nothing.
func regionString(b []byte) string {
	if i := countryIdx(string(b)); i >= 0 {
		return regionNames[i]
	}
	return ""
}

var regionNames = func() (t [numCountryIdx]string) {
	for i := 0; i < numCountryIdx-1; i++ {
		t[i] = string([]byte{byte('A' + i/26), byte('A' + i%26)})
	}
	t[numCountryIdx-1] = "001"
	return t
}()
