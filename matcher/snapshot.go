package matcher

import (
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
	"weak"

	"github.com/tollgate/tollgate/cow"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
)

// countryIdx maps an ISO 3166 alpha-2 code to 0..675 and "001" to 676, so
// country sets are bitsets and per-country tables are arrays: no map lookup on
// the hot path. -1 for anything else.
func countryIdx(cc string) int {
	if len(cc) == 2 {
		a, b := cc[0], cc[1]
		if a >= 'A' && a <= 'Z' && b >= 'A' && b <= 'Z' {
			return int(a-'A')*26 + int(b-'A')
		}
		return -1
	}
	if cc == policy.NonGeographic {
		return numCountryIdx - 1
	}
	return -1
}

const numCountryIdx = 26*26 + 1

// countrySet is a set of destinations by countryIdx.
type countrySet [(numCountryIdx + 63) / 64]uint64

func (s *countrySet) add(i int) { s[i>>6] |= 1 << (uint(i) & 63) }
func (s *countrySet) has(i int) bool {
	return i >= 0 && s[i>>6]&(1<<(uint(i)&63)) != 0
}

// account is one compiled policy: an account, a subaccount, or the default.
// A subaccount starts as a copy of its account and replaces only what it sets,
// so inherited prefix sets are shared, not copied.
type account struct {
	name, sub string

	home     string
	homeInfo *numplan.RegionInfo // the plan's facts of home (nil without one): no lookup per call

	// countries is the compiled countries.except list (never nil),
	// shared by every layer with the same list: 100,000 accounts drawn
	// from a few hundred distinct lists pay 8 bytes each, not 112 and an
	// array.
	countries *countryRule

	allow, block *prefixSet

	maxChannels, maxCPS int
	// the account-wide caps (account and every subaccount together)
	acctMaxChannels, acctMaxCPS int

	maxRate int64 // max_destination_rate in millionths per minute, -1 = none

	origin *origin.Rules // nil: origin checks off
	// originRef remembers where the origin state of a known account's
	// (or subaccount's) state key lives, so that a check finds it with
	// one load. Written by checks (atomically); a layer copied from
	// another starts with an empty one.
	originRef origin.Ref
	// originKey is the origin state key of a subaccount with origin
	// settings of its own ("account/sub"); "" for the account's state.
	originKey string

	subs map[string]*account

	// tmpl is the template a compiled template, or an account (or
	// subaccount) compiled over one, comes from; nil for none. Its
	// identity tells CompileFrom an account's template changed, and its
	// name goes in the verdict. One pointer: 100,000 accounts pay 8 bytes
	// each.
	tmpl *templateSrc

	// src is what an account (not a subaccount) was compiled from, so
	// CompileFrom can reuse it while the source is the very same objects;
	// nil for other layers, and for every layer of a snapshot from
	// CompileAgainst (its caller keeps the sources). A pointer into a
	// chunk the compile filled: inline, its 144 bytes made every layer 352
	// bytes instead of 192.
	src *accountSrc

	// The one-byte fields last, together: 100,000 accounts pay no padding.
	homeLayer, countriesLayer, highRiskLayer, allowLayer, blockLayer Layer
	maxRateLayer, originLayer                                        Layer
	defaultAllow                                                     bool // countries.default == allow
	highRiskBlock                                                    bool
	// whether a subaccount name the account lacks is refused, and the
	// layer that said so
	rejectUnknownSubs bool
	unknownSubsLayer  Layer
	// quarantined: the account's stored records were damaged at start;
	// every call but an emergency call is refused (account_quarantined).
	quarantined bool
}

// accountSrc is the part of a policy.Account that sameAccount compares
// (its tags are not compiled).
type accountSrc struct {
	pol              policy.Policy
	subs             map[string]policy.Policy
	template         string
	unknownSubs      string
	maxChannels, cps int
}

// newSrc returns acc's accountSrc, in a chunk of the compile's: one
// object per few thousand accounts rather than one each. A chunk lives
// while one of its accounts does; chunks double from 16 to 4096 entries, so
// a compile of a few accounts pins little.
func (c *compiler) newSrc(acc *policy.Account) *accountSrc {
	if c.noSrc {
		return nil
	}
	if len(c.srcs) == 0 {
		c.srcChunk = min(max(2*c.srcChunk, 16), 4096)
		c.srcs = make([]accountSrc, c.srcChunk)
	}
	s := &c.srcs[0]
	c.srcs = c.srcs[1:]
	*s = accountSrc{pol: acc.Policy, subs: acc.Subaccounts, template: acc.Template, unknownSubs: acc.UnknownSubaccounts,
		maxChannels: acc.AccountMaxChannels, cps: acc.AccountMaxCPS}
	return s
}

// templateSrc is a compiled template's name and source.
type templateSrc struct {
	name string
	src  policy.Template
}

// countryRule is a compiled countries.except list.
type countryRule struct {
	except countrySet // countries covered by the list
	sels   []exceptSel
}

// noCountries is the rule of a layer that lists no exceptions.
var noCountries = &countryRule{}

// exceptSel is one countries.except entry, kept to name the entry that
// matched in the rule text.
type exceptSel struct {
	name string
	set  *countrySet
}

// Snapshot is a compiled, immutable policy. Everything a decision reads is
// here or in the numbering plan; nothing in it changes after Compile, so any
// number of goroutines may decide against it while a new one is built.
type Snapshot struct {
	plan *numplan.Plan
	// accounts is persistent: WithAccounts copies the one shard a change
	// touches and shares the others with the snapshot it came from, which
	// stays exactly as it was for the decisions still reading it.
	accounts cow.Map[*account]
	deflt    *account
	// templates are the compiled templates by name, each a layer over
	// deflt that the accounts naming it are compiled over. Replaced whole
	// by a change, never edited.
	templates     map[string]*account
	rejectUnknown bool

	disabled       countrySet
	disabledReason *[numCountryIdx]string // behind a pointer: WithAccounts copies the Snapshot

	opBlocked       *prefixSet
	opBlockedReason []string

	highRisk       *prefixSet
	highRiskDetail []string // interned "category; source" by payload index

	rates     *prefixSet // the rate deck; payload indexes rateMicro
	rateMicro []int64
	currency  string

	geoAccounts int // accounts whose own or subaccounts' origin rules read the origin country

	stats SnapshotStats

	// originOp is the operator's compiled origin settings, which
	// WithAccounts compiles accounts against.
	originOp *origin.Operator

	// What this snapshot was compiled from, so CompileFrom can reuse every
	// part whose source is the very same object (the admin path shares
	// unchanged accounts and the high-risk list between successive sets).
	srcDefault  policy.Policy
	srcHighRisk hrSource
	srcRates    *policy.RateDeck
	srcOperator policy.Operator

	// top is new with every compile of the top level and kept by
	// WithAccounts: two snapshots with the same top differ at most in
	// their accounts (SameFor).
	top *topMark

	// noSrc: the accounts' layers record no source (CompileAgainst), and
	// neither do those WithAccounts and WithTemplate compile into it.
	noSrc bool
}

type topMark struct{ _ byte } // not zero-sized: each new one is distinct

// SameFor reports, without deciding, whether s and o decide q alike: o
// derives from s (or s from o) by account changes alone, and q's account
// compiles to the very same policy in both. A shadow policy that changes a
// few accounts skips the others' second decision this way. False means
// only "maybe not".
func (s *Snapshot) SameFor(o *Snapshot, q *Query) bool {
	if s == nil || o == nil || s.top == nil || s.top != o.top {
		return false
	}
	if q.Account == "" {
		return true
	}
	a, okA := s.accounts.Get(q.Account)
	b, okB := o.accounts.Get(q.Account)
	return okA == okB && a == b
}

// Stats describes the snapshot.
func (s *Snapshot) Stats() SnapshotStats { return s.stats }

// compiler carries caches used while compiling one snapshot.
type compiler struct {
	plan      *numplan.Plan
	selectors map[string]*countrySet
	// countryRules shares compiled countries.except lists, by the
	// selectors joined with NUL.
	countryRules map[string]*countryRule
	prefixes     int
	originOp     *origin.Operator
	// originCache shares compiled origin rules between layers with the
	// same settings (see originKey).
	originCache map[originKey]*origin.Rules
	templates   map[string]*account
	// srcs is the free part of the chunk newSrc takes from, srcChunk the
	// size of the last chunk made
	srcs     []accountSrc
	srcChunk int
	// noSrc: the layers record no source (see CompileAgainst)
	noSrc bool
}

// countryRule compiles a countries.except list, or returns the one
// compiled already for the same list.
func (c *compiler) countryRule(except []string) *countryRule {
	if len(except) == 0 {
		return noCountries
	}
	key := strings.Join(except, "\x00")
	if r, ok := c.countryRules[key]; ok {
		return r
	}
	r := &countryRule{sels: make([]exceptSel, 0, len(except))}
	for _, sel := range except {
		set := c.selectorSet(sel)
		for i := range r.except {
			r.except[i] |= set[i]
		}
		r.sels = append(r.sels, exceptSel{name: sel, set: set})
	}
	if c.countryRules == nil {
		c.countryRules = map[string]*countryRule{}
	}
	c.countryRules[key] = r
	return r
}

func (c *compiler) selectorSet(sel string) *countrySet {
	if s, ok := c.selectors[sel]; ok {
		return s
	}
	s := new(countrySet)
	for _, cc := range policy.ExpandSelector(sel) {
		s.add(countryIdx(cc))
	}
	c.selectors[sel] = s
	return s
}

func (c *compiler) prefixSet(list []string, field string) (*prefixSet, error) {
	if len(list) == 0 {
		return nil, nil
	}
	keys := make([]packed, len(list))
	vals := make([]uint32, len(list))
	for i, p := range list {
		k, err := packPrefix(p)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		keys[i] = k
	}
	c.prefixes += len(list)
	return newPrefixSet(keys, vals), nil
}

// packPrefix packs a canonical "+digits" prefix.
func packPrefix(p string) (packed, error) {
	if len(p) < 2 || p[0] != '+' || len(p)-1 > maxDigits {
		return 0, fmt.Errorf("prefix %q is not +digits (1-15 digits)", p)
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return 0, fmt.Errorf("prefix %q is not +digits", p)
		}
	}
	return pack([]byte(p[1:])), nil
}

// layer applies one validated policy layer over parent.
func (c *compiler) layer(parent *account, p *policy.Policy, l Layer, field string) (*account, error) {
	a := *parent
	a.subs, a.src, a.originRef = nil, nil, origin.Ref{}
	if p.HomeCountry != nil {
		a.home, a.homeLayer = *p.HomeCountry, l
		a.homeInfo = c.plan.Region(a.home)
	}
	if p.Countries != nil {
		a.defaultAllow = p.Countries.Default == policy.Allow
		a.countries = c.countryRule(p.Countries.Except)
		a.countriesLayer = l
	}
	if p.HighRisk != nil {
		a.highRiskBlock, a.highRiskLayer = *p.HighRisk == policy.HighRiskBlock, l
	}
	var err error
	if p.AllowPrefixes != nil {
		if a.allow, err = c.prefixSet(*p.AllowPrefixes, field+"allow_prefixes"); err != nil {
			return nil, err
		}
		a.allowLayer = l
	}
	if p.BlockPrefixes != nil {
		if a.block, err = c.prefixSet(*p.BlockPrefixes, field+"block_prefixes"); err != nil {
			return nil, err
		}
		a.blockLayer = l
	}
	if p.MaxChannels != nil {
		a.maxChannels = *p.MaxChannels
	}
	if p.MaxCPS != nil {
		a.maxCPS = *p.MaxCPS
	}
	if p.MaxDestinationRate != nil {
		a.maxRate, a.maxRateLayer = policy.Micro(*p.MaxDestinationRate), l
	}
	if p.Origin != nil {
		// The parent's merged settings are those its rules were
		// compiled from (none for rules-free or the operator's own).
		eff := policy.MergeOrigin(originEffective(a.origin), p.Origin)
		a.originLayer = l
		if a.origin, err = c.originRules(eff, field); err != nil {
			return nil, err
		}
	}
	return &a, nil
}

// Compile validates set and compiles it into a snapshot. Validation
// canonicalises set in place (upper-case codes, canonical prefixes), which is
// idempotent. On any error no snapshot is returned: the caller keeps serving
// the one it has, so a bad change is never half-applied.
func Compile(set *policy.Set, plan *numplan.Plan) (*Snapshot, error) {
	return CompileFrom(nil, set, plan)
}

// CompileFrom is Compile reusing the parts of prev whose source objects set
// still shares: the compiled high-risk list when set.HighRisk is the same
// slice, the rate deck when set.Rates is the same deck, and each compiled
// account whose policy.Account holds the same pointers (when the operator
// default and origin settings are unchanged too). Sources must not be
// mutated once compiled; the admin path replaces, never edits, an account.
// It walks every account of set: for a change of a few accounts,
// WithAccounts costs a shard instead.
func CompileFrom(prev *Snapshot, set *policy.Set, plan *numplan.Plan) (*Snapshot, error) {
	return compileFrom(prev, set, plan, false, nil, false)
}

// CompileAgainst is CompileFrom (CompileKeepHighRisk when keepHR) for a
// caller that keeps the accounts prev was compiled from: was holds, by
// name, the very policy.Account each of prev's accounts was compiled from
// (it may be set.Accounts itself when the accounts did not change). An
// account of set is reused when it holds the same pointers as its entry
// in was, as CompileFrom decides from the source a layer records. The
// layers of the snapshot it returns, and of those WithAccounts and
// WithTemplate derive from it, record no source (144 bytes an account):
// compile them again with CompileAgainst and the accounts they were
// compiled from; CompileFrom recompiles every account of them. A nil was
// reuses no account.
func CompileAgainst(prev *Snapshot, was map[string]policy.Account, set *policy.Set, plan *numplan.Plan, keepHR bool) (*Snapshot, error) {
	if keepHR && prev == nil {
		return nil, errors.New("CompileKeepHighRisk without a previous snapshot")
	}
	return compileFrom(prev, set, plan, keepHR, was, true)
}

// CompileKeepHighRisk is CompileFrom taking prev's compiled high-risk list
// whatever set.HighRisk holds: for a caller that keeps the list it compiled
// in a form of its own (the service keeps it packed, 18 bytes an entry
// instead of the decoded list's 80) rather than holding the decoded slice
// for CompileFrom to recognise. prev must not be nil.
func CompileKeepHighRisk(prev *Snapshot, set *policy.Set, plan *numplan.Plan) (*Snapshot, error) {
	if prev == nil {
		return nil, errors.New("CompileKeepHighRisk without a previous snapshot")
	}
	return compileFrom(prev, set, plan, true, nil, false)
}

// compileFrom compiles set reusing prev; with noSrc, the accounts of was
// (the sources of prev's accounts) decide which account is reused, and
// the new layers record no source.
func compileFrom(prev *Snapshot, set *policy.Set, plan *numplan.Plan, keepHR bool, was map[string]policy.Account, noSrc bool) (*Snapshot, error) {
	start := time.Now()
	hrPrev := prev // the high-risk list does not inherit from the default
	if prev != nil && (prev.plan != plan || !samePolicy(prev.srcDefault, set.Operator.Default) || !sameOriginOperator(&prev.srcOperator, &set.Operator)) {
		prev = nil // everything inherits from the default: rebuild
	}
	if err := set.Operator.Validate(); err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	c := &compiler{plan: plan, selectors: make(map[string]*countrySet), noSrc: noSrc}
	var err error
	if c.originOp, err = compileOriginOperator(&set.Operator); err != nil {
		return nil, fmt.Errorf("operator: %w", err)
	}
	s := &Snapshot{
		top:           new(topMark),
		noSrc:         noSrc,
		plan:          plan,
		rejectUnknown: set.Operator.UnknownAccounts == policy.UnknownReject,
	}

	builtin := policy.BuiltinDefault()
	base := &account{
		countries:    noCountries,
		defaultAllow: builtin.Countries.Default == policy.Allow, highRiskBlock: builtin.HighRisk == policy.HighRiskBlock,
		homeLayer: LayerDefault, countriesLayer: LayerDefault, highRiskLayer: LayerDefault, allowLayer: LayerDefault, blockLayer: LayerDefault,
		maxRate: builtin.MaxDestinationRate, maxRateLayer: LayerDefault, originLayer: LayerDefault,
	}
	if len(set.Operator.GeoProfiles) > 0 || set.Operator.SourceBlocklist != nil {
		// The blocklist applies to every call, whatever the account sets.
		if base.origin, err = c.originRules(policy.OriginEffective{}, "operator.default."); err != nil {
			return nil, err
		}
	}
	deflt, err := c.layer(base, &set.Operator.Default, LayerDefault, "operator.default.")
	if err != nil {
		return nil, err
	}
	s.deflt = deflt
	var prevTemplates map[string]*account
	if prev != nil {
		prevTemplates = prev.templates
	}
	if c.templates, err = c.compileTemplates(deflt, set.Templates, prevTemplates); err != nil {
		return nil, err
	}
	s.templates = c.templates

	s.disabledReason = new([numCountryIdx]string)
	for cc, d := range set.Operator.DisabledCountries {
		i := countryIdx(cc)
		s.disabled.add(i)
		s.disabledReason[i] = d.Reason
	}
	if n := len(set.Operator.BlockedPrefixes); n > 0 {
		keys := make([]packed, n)
		vals := make([]uint32, n)
		s.opBlockedReason = make([]string, n)
		for i, bp := range set.Operator.BlockedPrefixes {
			k, err := packPrefix(bp.Prefix)
			if err != nil {
				return nil, fmt.Errorf("operator: blocked_prefixes[%d]: %w", i, err)
			}
			keys[i], vals[i], s.opBlockedReason[i] = k, uint32(i), bp.Reason
		}
		s.opBlocked = newPrefixSet(keys, vals)
	}

	hrSrc := newHRSource(set.HighRisk)
	if hrPrev != nil && (keepHR || sameHighRisk(hrPrev.srcHighRisk, set.HighRisk)) {
		s.highRisk, s.highRiskDetail, hrSrc = hrPrev.highRisk, hrPrev.highRiskDetail, hrPrev.srcHighRisk
	} else if err := s.compileHighRisk(set.HighRisk); err != nil {
		return nil, err
	}

	if prev != nil && prev.srcRates == set.Rates {
		s.rates, s.rateMicro, s.currency = prev.rates, prev.rateMicro, prev.currency
	} else if err := s.compileRates(set.Rates); err != nil {
		return nil, err
	}

	// With a reusable prev, start from its accounts and change only those
	// that differ, so an unchanged shard stays shared; else build afresh.
	var b *cow.Builder[*account]
	if prev != nil {
		b = prev.accounts.Edit()
	} else {
		b = cow.NewBuilder[*account](len(set.Accounts))
	}
	var firstErr error
	firstName := ""
	matched := 0 // accounts of prev still in set
	for name, acc := range set.Accounts {
		if prev != nil {
			if old, ok := prev.accounts.Get(name); ok {
				matched++
				if c.sameSource(old, was, name, &acc) && !old.quarantined && old.tmpl == c.templates[acc.Template].source() {
					continue
				}
			}
		}
		a, err := c.account(deflt, name, acc)
		if err != nil {
			// Report the first bad account by name, so the same bad set
			// always yields the same error.
			if firstErr == nil || name < firstName {
				firstErr, firstName = err, name
			}
			continue
		}
		b.Set(name, a)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if prev != nil && matched < prev.accounts.Len() {
		for name := range prev.accounts.All() {
			if _, ok := set.Accounts[name]; !ok {
				b.Delete(name)
			}
		}
	}
	for name := range set.Quarantined {
		// Whatever the account's readable records say, none of them
		// applies: no subaccounts, no velocity scope of its own.
		b.Set(name, &account{name: name, quarantined: true, maxRate: -1, countries: noCountries})
	}
	s.accounts = b.Map()
	s.originOp = c.originOp
	s.srcDefault, s.srcHighRisk, s.srcRates = set.Operator.Default, hrSrc, set.Rates
	s.srcOperator = set.Operator
	subs, prefixes := 0, deflt.allow.len()+deflt.block.len()
	for _, a := range s.accounts.All() {
		subs += len(a.subs)
		prefixes += a.prefixes()
		if a.needsGeo() {
			s.geoAccounts++
		}
	}
	s.stats = SnapshotStats{
		Accounts:    s.accounts.Len(),
		Subaccounts: subs,
		HighRisk:    s.highRisk.len(),
		Rates:       s.rates.len(),
		Prefixes:    prefixes + s.highRisk.len() + s.opBlocked.len() + s.rates.len(),
		BuiltAt:     start,
		BuildTime:   time.Since(start),
	}
	return s, nil
}

// WithAccounts returns s with the given accounts compiled again (a nil
// value removes an account), against s's operator settings. Everything
// else, and every other account's compiled layers, is shared with s, which
// is not changed and goes on deciding exactly as before: a change copies
// the one shard of s's accounts it touches (about N/256 entries), not the
// whole set. On error (an account that does not validate) no snapshot is
// returned. The sources must not be mutated once compiled.
func (s *Snapshot) WithAccounts(changes map[string]*policy.Account) (*Snapshot, error) {
	if s == nil || s.deflt == nil {
		return nil, fmt.Errorf("no snapshot to change")
	}
	return s.withAccounts(&compiler{plan: s.plan, selectors: make(map[string]*countrySet), originOp: s.originOp, templates: s.templates, noSrc: s.noSrc}, changes)
}

// withAccounts is WithAccounts with the compiler (and so the templates)
// given.
func (s *Snapshot) withAccounts(c *compiler, changes map[string]*policy.Account) (*Snapshot, error) {
	start := time.Now()
	n := *s
	b := s.accounts.Edit()
	subs, prefixes := s.stats.Subaccounts, s.stats.Prefixes
	names := make([]string, 0, len(changes))
	for name := range changes {
		names = append(names, name)
	}
	sort.Strings(names) // the same bad change always names the same account
	for _, name := range names {
		if old, ok := b.Get(name); ok {
			subs -= len(old.subs)
			prefixes -= old.prefixes()
			if old.needsGeo() {
				n.geoAccounts--
			}
		}
		acc := changes[name]
		if acc == nil {
			b.Delete(name)
			continue
		}
		a, err := c.account(s.deflt, name, *acc)
		if err != nil {
			return nil, err
		}
		b.Set(name, a)
		subs += len(a.subs)
		prefixes += a.prefixes()
		if a.needsGeo() {
			n.geoAccounts++
		}
	}
	n.accounts = b.Map()
	n.stats.Accounts, n.stats.Subaccounts, n.stats.Prefixes = n.accounts.Len(), subs, prefixes
	n.stats.BuiltAt, n.stats.BuildTime = start, time.Since(start)
	return &n, nil
}

// needsGeo reports whether the origin rules of an account or of one of its
// subaccounts read the origin country.
func (a *account) needsGeo() bool {
	if a.origin.NeedsGeo() {
		return true
	}
	for _, sa := range a.subs {
		if sa.origin.NeedsGeo() {
			return true
		}
	}
	return false
}

// prefixes counts the prefixes an account's own layers compiled: its allow
// and block sets and those its subaccounts set instead of inheriting.
func (a *account) prefixes() int {
	n := a.allow.len() + a.block.len()
	for _, sa := range a.subs {
		if sa.allow != a.allow {
			n += sa.allow.len()
		}
		if sa.block != a.block {
			n += sa.block.len()
		}
	}
	return n
}

// maxRuleSource bounds the part of a high-risk entry's source that the rule
// text quotes; the full citation stays in the list (GET /v1/high-risk).
const maxRuleSource = 96

// shortSource is the title of a source citation: up to the first URL or
// the first "; " that starts another citation, at most maxRuleSource bytes
// (cut at a rune boundary), so a reject log line stays readable.
func shortSource(src string) string {
	for _, sep := range []string{", http", "; ", " http"} {
		if i := strings.Index(src, sep); i > 0 {
			src = src[:i]
		}
	}
	if len(src) > maxRuleSource {
		i := maxRuleSource
		for i > 0 && !utf8.RuneStart(src[i]) {
			i--
		}
		src = src[:i] + "…"
	}
	return src
}

// account validates and compiles one account with its subaccounts.
func (c *compiler) account(deflt *account, name string, acc policy.Account) (*account, error) {
	src := c.newSrc(&acc) // as given: validation may replace fields of acc
	if err := policy.ValidName(name); err != nil {
		return nil, fmt.Errorf("account %q: bad name: %w", name, err)
	}
	if err := acc.Validate(); err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	parent := deflt
	var tmpl *policy.Template
	if acc.Template != "" {
		t, ok := c.templates[acc.Template]
		if !ok {
			return nil, fmt.Errorf("account %s: %w", name, &policy.FieldError{Field: "template", Msg: fmt.Sprintf("no template %q (GET /v1/templates lists them)", acc.Template)})
		}
		parent, tmpl = t, &t.tmpl.src
	}
	a, err := c.layer(parent, &acc.Policy, LayerAccount, "")
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	a.name, a.src = name, src
	unknownSubs, maxCh, maxCPS := policy.AccountWide(tmpl, &acc)
	a.acctMaxChannels, a.acctMaxCPS = maxCh, maxCPS
	a.rejectUnknownSubs = unknownSubs == policy.UnknownSubReject
	a.unknownSubsLayer = LayerAccount
	if acc.UnknownSubaccounts == "" && tmpl != nil && tmpl.UnknownSubaccounts != "" {
		a.unknownSubsLayer = LayerTemplate
	}
	if len(acc.Subaccounts) > 0 {
		a.subs = make(map[string]*account, len(acc.Subaccounts))
		for subName, sp := range acc.Subaccounts {
			sa, err := c.layer(a, &sp, LayerSubaccount, "subaccounts."+subName+".")
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", name, err)
			}
			sa.sub = subName
			if sp.Origin != nil {
				sa.originKey = origin.StateKey(name, subName)
			}
			a.subs[subName] = sa
		}
	}
	return a, nil
}

// compileTemplates validates and compiles every template as a layer over
// deflt, reusing prev's compiled template while its source is the very
// same objects (prev is nil when deflt changed). The first bad template
// in name order is reported.
func (c *compiler) compileTemplates(deflt *account, set map[string]policy.Template, prev map[string]*account) (map[string]*account, error) {
	if len(set) == 0 {
		return nil, nil
	}
	if len(set) > policy.MaxTemplates {
		return nil, &policy.FieldError{Field: "templates", Msg: fmt.Sprintf("%d templates, more than the %d allowed", len(set), policy.MaxTemplates)}
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string]*account, len(set))
	for _, name := range names {
		t := set[name]
		if old, ok := prev[name]; ok && sameTemplate(old.tmpl.src, t) {
			out[name] = old
			continue
		}
		ct, err := c.template(deflt, name, t)
		if err != nil {
			return nil, err
		}
		out[name] = ct
	}
	return out, nil
}

// template validates and compiles one template.
func (c *compiler) template(deflt *account, name string, t policy.Template) (*account, error) {
	src := t
	if err := policy.ValidName(name); err != nil {
		return nil, fmt.Errorf("template %q: bad name: %w", name, err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	ct, err := c.layer(deflt, &t.Policy, LayerTemplate, "")
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	ct.tmpl = &templateSrc{name: name, src: src}
	return ct, nil
}

// rebaseAccount recompiles prev, an account compiled over a template that
// changed, over parent (the template compiled anew) without validating
// and compiling its own layers again: what its own layer, and each
// subaccount's, set is taken from prev, everything else from parent. acc
// is prev's source. It returns nil when it cannot (a layer with origin
// settings, which are merged with the parent's and compiled together):
// the caller compiles the account instead. Validation and prefix sets are
// most of an account's compile, so a template change costs little more
// per account than the copy of its compiled struct.
func rebaseAccount(prev, parent *account, acc policy.Account) *account {
	a := rebaseLayer(prev, parent, &acc.Policy)
	if a == nil {
		return nil
	}
	a.name, a.src = prev.name, prev.src
	unknownSubs, maxCh, maxCPS := policy.AccountWide(&parent.tmpl.src, &acc)
	a.acctMaxChannels, a.acctMaxCPS = maxCh, maxCPS
	a.rejectUnknownSubs = unknownSubs == policy.UnknownSubReject
	a.unknownSubsLayer = LayerAccount
	if acc.UnknownSubaccounts == "" && parent.tmpl.src.UnknownSubaccounts != "" {
		a.unknownSubsLayer = LayerTemplate
	}
	if len(acc.Subaccounts) > 0 {
		a.subs = make(map[string]*account, len(acc.Subaccounts))
		for name, sp := range acc.Subaccounts {
			ps, ok := prev.subs[name]
			if !ok {
				return nil
			}
			sa := rebaseLayer(ps, a, &sp)
			if sa == nil {
				return nil
			}
			sa.sub = name
			a.subs[name] = sa
		}
	}
	return a
}

// rebaseLayer is one layer of rebaseAccount: prev's fields that p sets
// over a copy of parent; nil when p has origin settings.
func rebaseLayer(prev, parent *account, p *policy.Policy) *account {
	if p.Origin != nil {
		return nil
	}
	a := *parent
	a.subs, a.src, a.originRef = nil, nil, origin.Ref{}
	if p.HomeCountry != nil {
		a.home, a.homeInfo, a.homeLayer = prev.home, prev.homeInfo, prev.homeLayer
	}
	if p.Countries != nil {
		a.defaultAllow, a.countries, a.countriesLayer = prev.defaultAllow, prev.countries, prev.countriesLayer
	}
	if p.HighRisk != nil {
		a.highRiskBlock, a.highRiskLayer = prev.highRiskBlock, prev.highRiskLayer
	}
	if p.AllowPrefixes != nil {
		a.allow, a.allowLayer = prev.allow, prev.allowLayer
	}
	if p.BlockPrefixes != nil {
		a.block, a.blockLayer = prev.block, prev.blockLayer
	}
	if p.MaxChannels != nil {
		a.maxChannels = prev.maxChannels
	}
	if p.MaxCPS != nil {
		a.maxCPS = prev.maxCPS
	}
	if p.MaxDestinationRate != nil {
		a.maxRate, a.maxRateLayer = prev.maxRate, prev.maxRateLayer
	}
	return &a
}

// source is the template a compiled template comes from; nil for none.
func (a *account) source() *templateSrc {
	if a == nil {
		return nil
	}
	return a.tmpl
}

// WithTemplate returns s with template name set to t (nil removes it)
// and the accounts that name it, which accounts yields, compiled again
// over it: one snapshot in which all of them changed together. Like
// WithAccounts it copies only the shards of s's accounts it touches and
// leaves s as it was. accounts must yield every account of s compiled
// over the template (one left behind would go on deciding under the old
// settings: refused), each naming it; a removed template must have none.
// On error (the template, or an account over it, does not compile) no
// snapshot is returned: the first bad account by name is reported.
func (s *Snapshot) WithTemplate(name string, t *policy.Template, accounts iter.Seq2[string, policy.Account]) (*Snapshot, error) {
	return s.WithTemplateAgainst(name, t, accounts, nil)
}

// WithTemplateAgainst is WithTemplate for a snapshot from CompileAgainst:
// was holds, by name, the policy.Account each of s's accounts was compiled
// from, which decides (as the source a layer records does for
// WithTemplate) whether an account over the template is rebased on the new
// one rather than compiled again. A nil was rebases none.
func (s *Snapshot) WithTemplateAgainst(name string, t *policy.Template, accounts iter.Seq2[string, policy.Account], was map[string]policy.Account) (*Snapshot, error) {
	start := time.Now()
	if s == nil || s.deflt == nil {
		return nil, fmt.Errorf("no snapshot to change")
	}
	c := &compiler{plan: s.plan, selectors: make(map[string]*countrySet), originOp: s.originOp, noSrc: s.noSrc}
	c.templates = make(map[string]*account, len(s.templates)+1)
	for k, v := range s.templates {
		c.templates[k] = v
	}
	old := s.templates[name].source()
	if t == nil {
		delete(c.templates, name)
	} else {
		if len(c.templates) >= policy.MaxTemplates && old == nil {
			return nil, &policy.FieldError{Field: "templates", Msg: fmt.Sprintf("%d templates already, the most allowed", policy.MaxTemplates)}
		}
		ct, err := c.template(s.deflt, name, *t)
		if err != nil {
			return nil, err
		}
		c.templates[name] = ct
	}
	n := *s
	b := s.accounts.Edit()
	subs, prefixes := s.stats.Subaccounts, s.stats.Prefixes
	given := 0 // accounts given that s compiled over the old template
	var firstErr error
	firstName := ""
	for an, acc := range accounts {
		var err error
		switch {
		case acc.Template != name:
			err = fmt.Errorf("account %s: names template %q, not %q", an, acc.Template, name)
		case t == nil:
			err = fmt.Errorf("template %s: account %s still names it", name, an)
		}
		var a *account
		if err == nil {
			if prev, ok := b.Get(an); ok && old != nil && prev.tmpl == old && !prev.quarantined && c.sameSource(prev, was, an, &acc) {
				a = rebaseAccount(prev, c.templates[name], acc)
			}
			if a == nil {
				a, err = c.account(s.deflt, an, acc)
			}
		}
		if err != nil {
			if firstErr == nil || an < firstName {
				firstErr, firstName = err, an
			}
			continue
		}
		if prev, ok := b.Get(an); ok {
			if prev.tmpl == old {
				given++
			}
			subs -= len(prev.subs)
			prefixes -= prev.prefixes()
			if prev.needsGeo() {
				n.geoAccounts--
			}
		}
		b.Set(an, a)
		subs += len(a.subs)
		prefixes += a.prefixes()
		if a.needsGeo() {
			n.geoAccounts++
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if old != nil {
		on := 0
		for _, a := range s.accounts.All() {
			if a.tmpl == old {
				on++
			}
		}
		if on != given {
			return nil, fmt.Errorf("template %s: %d accounts name it, %d were given", name, on, given)
		}
	}
	n.accounts = b.Map()
	n.templates = c.templates
	n.stats.Accounts, n.stats.Subaccounts, n.stats.Prefixes = n.accounts.Len(), subs, prefixes
	n.stats.BuiltAt, n.stats.BuildTime = start, time.Since(start)
	return &n, nil
}

// samePolicy reports whether two layers are the very same objects (not
// merely equal): only then can a compiled result be reused without
// re-validating.
func samePolicy(a, b policy.Policy) bool {
	return a.HomeCountry == b.HomeCountry && a.Countries == b.Countries && a.HighRisk == b.HighRisk &&
		a.AllowPrefixes == b.AllowPrefixes && a.BlockPrefixes == b.BlockPrefixes &&
		a.MaxChannels == b.MaxChannels && a.MaxCPS == b.MaxCPS &&
		a.TimeZone == b.TimeZone && a.MaxDestinationRate == b.MaxDestinationRate && a.Velocity == b.Velocity &&
		a.Origin == b.Origin
}

// sameSource reports whether acc is the very source the compiled account
// old (named name) was taken from: by old's recorded source, or, for a
// compile that records none, by was[name] (none there: never the same).
func (c *compiler) sameSource(old *account, was map[string]policy.Account, name string, acc *policy.Account) bool {
	if !c.noSrc {
		return sameAccount(old.src, acc)
	}
	w, ok := was[name]
	if !ok {
		return false
	}
	src := accountSrc{pol: w.Policy, subs: w.Subaccounts, template: w.Template, unknownSubs: w.UnknownSubaccounts,
		maxChannels: w.AccountMaxChannels, cps: w.AccountMaxCPS}
	return sameAccount(&src, acc)
}

// sameAccount reports whether b is the very source a was taken from (a
// nil a: no source, never the same).
func sameAccount(a *accountSrc, b *policy.Account) bool {
	if a == nil || !samePolicy(a.pol, b.Policy) || len(a.subs) != len(b.Subaccounts) || a.template != b.Template ||
		a.unknownSubs != b.UnknownSubaccounts || a.maxChannels != b.AccountMaxChannels || a.cps != b.AccountMaxCPS {
		return false
	}
	return len(a.subs) == 0 || reflect.ValueOf(a.subs).UnsafePointer() == reflect.ValueOf(b.Subaccounts).UnsafePointer()
}

// hrSource identifies the high-risk list a snapshot was compiled from
// without keeping it alive: a weak pointer to its first entry and its
// length. Holding the slice itself would pin 80 bytes an entry (76 MiB for
// 1,000,000 prefixes) that the compiled set does not need.
type hrSource struct {
	first weak.Pointer[policy.HighRiskEntry]
	n     int
}

func newHRSource(l []policy.HighRiskEntry) hrSource {
	if len(l) == 0 {
		return hrSource{}
	}
	return hrSource{first: weak.Make(&l[0]), n: len(l)}
}

// sameHighRisk reports whether l is the very slice src was made from (and
// still alive).
func sameHighRisk(src hrSource, l []policy.HighRiskEntry) bool {
	return src.n == len(l) && (len(l) == 0 || src.first.Value() == &l[0])
}

func sameTemplate(a, b policy.Template) bool {
	return samePolicy(a.Policy, b.Policy) && a.Description == b.Description && a.UnknownSubaccounts == b.UnknownSubaccounts &&
		a.AccountMaxChannels == b.AccountMaxChannels && a.AccountMaxCPS == b.AccountMaxCPS
}

func (s *Snapshot) compileHighRisk(list []policy.HighRiskEntry) error {
	if len(list) == 0 {
		return nil
	}
	keys := make([]packed, len(list))
	vals := make([]uint32, len(list))
	intern := make(map[string]uint32)
	for i, e := range list {
		k, err := packPrefix(e.Prefix)
		if err != nil {
			return fmt.Errorf("high-risk list entry %d: %w", i+1, err)
		}
		d := e.Category + "; " + shortSource(e.Source)
		id, ok := intern[d]
		if !ok {
			id = uint32(len(s.highRiskDetail))
			intern[d] = id
			s.highRiskDetail = append(s.highRiskDetail, d)
		}
		keys[i], vals[i] = k, id
	}
	s.highRisk = newPrefixSet(keys, vals)
	return nil
}

// compileRates packs the rate deck into a prefix set. The deck was parsed
// (canonical prefixes, one currency) before it got here.
func (s *Snapshot) compileRates(d *policy.RateDeck) error {
	if d == nil || len(d.Entries) == 0 {
		return nil
	}
	keys := make([]packed, len(d.Entries))
	vals := make([]uint32, len(d.Entries))
	s.rateMicro = make([]int64, len(d.Entries))
	for i, e := range d.Entries {
		k, err := packPrefix(e.Prefix)
		if err != nil {
			return fmt.Errorf("rate deck entry %d: %w", i+1, err)
		}
		if e.Micro < 0 {
			return fmt.Errorf("rate deck entry %d: negative rate", i+1)
		}
		keys[i], vals[i], s.rateMicro[i] = k, uint32(i), e.Micro
	}
	s.rates = newPrefixSet(keys, vals)
	s.currency = d.Currency
	return nil
}

// Rate prices an E.164 number ("+…") with the rate deck: millionths of
// Currency per minute of its longest matching prefix. ok is false when no
// deck is loaded or no prefix matches.
func (s *Snapshot) Rate(e164 string) (micro int64, ok bool) {
	if s == nil || s.rates == nil || len(e164) < 2 || e164[0] != '+' || len(e164)-1 > maxDigits {
		return 0, false
	}
	for i := 1; i < len(e164); i++ {
		if e164[i] < '0' || e164[i] > '9' {
			return 0, false
		}
	}
	var b [maxDigits]byte
	n := copy(b[:], e164[1:])
	e := s.rates.match(pack(b[:n]))
	if e < 0 {
		return 0, false
	}
	return s.rateMicro[s.rates.val[e]], true
}

// Currency is the rate deck's currency, "" without a deck.
func (s *Snapshot) Currency() string {
	if s == nil {
		return ""
	}
	return s.currency
}
