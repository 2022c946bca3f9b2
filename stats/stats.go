// Package stats keeps what was decided in the last hour and day — decisions
// by verdict and reason, and the countries, prefixes and accounts most
// rejected — so "what is being blocked" needs no log digging. It is fed
// from the query path: a decision costs a few atomic adds into the current
// time bucket, with no lock, no clock read and no allocation (a rejected
// account seen for the first time in a bucket copies its name once).
// Memory is fixed: 61 one-minute and 25 one-hour buckets (about 1.5 MB).
package stats

import (
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/matcher"
)

const (
	// topSlots bounds the distinct prefixes and accounts one bucket keeps;
	// past it, further ones are counted as "other".
	topSlots = 256
	probe    = 8
	// countrySlots: two letters A-Z (27*27 with the blank) and "001".
	countrySlots = 27 * 27
	nActions     = 3
	nReasons     = len(matcher.Reasons)
	// PrefixDigits is how many digits of a rejected number (country code
	// included) make its prefix, unless a prefix rule decided.
	PrefixDigits = 5
	// TopN is how many entries each top list returns.
	TopN = 10
)

type slot struct {
	key  atomic.Uint64
	n    atomic.Uint64
	name atomic.Pointer[string]
}

type bucket struct {
	epoch     atomic.Int64 // the bucket's start, in units of its ring's width since the Unix epoch
	verdicts  [nActions]atomic.Uint64
	reasons   [nReasons]atomic.Uint64
	countries [countrySlots]atomic.Uint64
	prefixes  [topSlots]slot
	accounts  [topSlots]slot
	otherPfx  atomic.Uint64
	otherAcct atomic.Uint64
}

func (b *bucket) clear(epoch int64) {
	b.epoch.Store(-1)
	for i := range b.verdicts {
		b.verdicts[i].Store(0)
	}
	for i := range b.reasons {
		b.reasons[i].Store(0)
	}
	for i := range b.countries {
		b.countries[i].Store(0)
	}
	for i := range b.prefixes {
		b.prefixes[i].key.Store(0)
		b.prefixes[i].n.Store(0)
		b.accounts[i].key.Store(0)
		b.accounts[i].n.Store(0)
		b.accounts[i].name.Store(nil)
	}
	b.otherPfx.Store(0)
	b.otherAcct.Store(0)
	b.epoch.Store(epoch)
}

// ring is a window of buckets of one width.
type ring struct {
	width   int64 // seconds
	buckets []bucket
	cur     atomic.Pointer[bucket]
}

// Stats is the recorder. Its zero value is not usable; use New. Start
// the clock with Run (or Tick from a test).
type Stats struct {
	minutes, hours ring
}

// New returns a recorder whose buckets start at now.
func New(now time.Time) *Stats {
	s := &Stats{
		// One bucket more than the window: the next one is cleared
		// ahead while the window's oldest still counts.
		minutes: ring{width: 60, buckets: make([]bucket, 60+1)},
		hours:   ring{width: 3600, buckets: make([]bucket, 24+1)},
	}
	for _, r := range []*ring{&s.minutes, &s.hours} {
		for i := range r.buckets {
			r.buckets[i].epoch.Store(-1)
		}
	}
	s.Tick(now)
	return s
}

// Tick moves the current buckets to now's and clears the next ones ahead
// of time, so a writer never finds a stale bucket. Run calls it every
// second; a step back in the clock is ignored.
func (s *Stats) Tick(now time.Time) {
	sec := now.Unix()
	for _, r := range []*ring{&s.minutes, &s.hours} {
		e := sec / r.width
		n := int64(len(r.buckets))
		b := &r.buckets[e%n]
		if cur := r.cur.Load(); cur != nil && cur.epoch.Load() > e {
			continue
		}
		if b.epoch.Load() != e {
			b.clear(e)
		}
		r.cur.Store(b)
		if next := &r.buckets[(e+1)%n]; next.epoch.Load() != e+1 {
			next.clear(e + 1)
		}
	}
}

// Run ticks every second until stop is closed.
func (s *Stats) Run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// Record counts one decision. It takes no lock and, but for the first
// rejection of an account in a bucket, allocates nothing.
func (s *Stats) Record(account string, v *matcher.Verdict) {
	a, r := int(v.Action), int(v.Reason)
	if a >= nActions || r >= nReasons {
		return
	}
	rejected := v.Action == matcher.Reject
	var ci int
	var pk uint64
	var ak uint64
	if rejected {
		ci = countryIndex(v.Country)
		pk = prefixKey(v)
		ak = accountKey(account)
	}
	for _, rg := range []*ring{&s.minutes, &s.hours} {
		b := rg.cur.Load()
		b.verdicts[a].Add(1)
		b.reasons[r].Add(1)
		if !rejected {
			continue
		}
		if ci >= 0 {
			b.countries[ci].Add(1)
		}
		if pk != 0 && !add(&b.prefixes, pk, "") {
			b.otherPfx.Add(1)
		}
		if ak != 0 && !add(&b.accounts, ak, account) {
			b.otherAcct.Add(1)
		}
	}
}

// add counts key in the table; a new key claims a free slot (storing a
// copy of name when not ""). It reports false when the probed slots are
// all taken by other keys.
func add(t *[topSlots]slot, key uint64, name string) bool {
	i := key % topSlots
	for p := uint64(0); p < probe; p++ {
		sl := &t[(i+p)%topSlots]
		k := sl.key.Load()
		if k == 0 && sl.key.CompareAndSwap(0, key) {
			if name != "" {
				n := string([]byte(name)) // the query's bytes are reused
				sl.name.Store(&n)
			}
			k = key
		} else if k == 0 {
			k = sl.key.Load()
		}
		if k == key {
			sl.n.Add(1)
			return true
		}
	}
	return false
}

func countryIndex(cc string) int {
	switch {
	case cc == "001":
		return 0
	case len(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z':
		return int(cc[0]-'A'+1)*27 + int(cc[1]-'A'+1)
	}
	return -1
}

func countryName(i int) string {
	if i == 0 {
		return "001"
	}
	return string([]byte{byte(i/27-1) + 'A', byte(i%27-1) + 'A'})
}

// prefixKey packs the rejected number's prefix — the deciding prefix
// rule's, else its first PrefixDigits digits — as its length and 4-bit
// digits, so no string is built per query.
func prefixKey(v *matcher.Verdict) uint64 {
	e := v.E164Bytes()
	if len(e) < 2 || e[0] != '+' {
		return 0
	}
	d := e[1:]
	n := PrefixDigits
	if v.MatchLen > 0 {
		n = v.MatchLen
	}
	n = min(n, len(d), 15)
	var k uint64
	for _, c := range d[:n] {
		if c < '0' || c > '9' {
			return 0
		}
		k = k<<4 | uint64(c-'0')
	}
	return uint64(n)<<60 | k
}

func prefixName(k uint64) string {
	n := int(k >> 60)
	b := make([]byte, n+1)
	b[0] = '+'
	for i := n; i >= 1; i-- {
		b[i] = byte(k&15) + '0'
		k >>= 4
	}
	return string(b)
}

// accountKey is FNV-1a of the name, never 0; "" (no account) is not kept.
func accountKey(s string) uint64 {
	if s == "" {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	if h == 0 {
		h = 1
	}
	return h
}

// Top is one entry of a top list.
type Top struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

// Report is a window's statistics, as GET /v1/stats answers them.
type Report struct {
	Window string `json:"window"`
	// Since is the start of the oldest bucket in the window: the window
	// covers Since up to now (at most one bucket longer than named).
	Since    time.Time         `json:"since"`
	Total    uint64            `json:"total"`
	Verdicts map[string]uint64 `json:"verdicts"`
	Reasons  map[string]uint64 `json:"reasons"`
	// The top lists count rejected calls; "other" sums those past the
	// kept entries, so nothing is silently dropped.
	TopCountries  []Top  `json:"top_rejected_countries"`
	TopPrefixes   []Top  `json:"top_rejected_prefixes"`
	OtherPrefixes uint64 `json:"other_rejected_prefixes"`
	TopAccounts   []Top  `json:"top_blocked_accounts"`
	OtherAccounts uint64 `json:"other_blocked_accounts"`
}

// Windows are the windows Report accepts.
var Windows = []string{"1h", "24h"}

// Report sums the buckets of the window ("1h" or "24h") ending at the
// current bucket. ok is false for another window.
func (s *Stats) Report(window string) (rep Report, ok bool) {
	var rg *ring
	switch window {
	case "1h":
		rg = &s.minutes
	case "24h":
		rg = &s.hours
	default:
		return rep, false
	}
	cur := rg.cur.Load().epoch.Load()
	first := cur - int64(len(rg.buckets)) + 2 // the spare bucket is not in the window
	rep = Report{Window: window, Since: time.Unix(first*rg.width, 0).UTC(), Verdicts: map[string]uint64{}, Reasons: map[string]uint64{}}
	countries := map[string]uint64{}
	prefixes := map[string]uint64{}
	accounts := map[string]uint64{}
	for i := range rg.buckets {
		b := &rg.buckets[i]
		if e := b.epoch.Load(); e < first || e > cur {
			continue
		}
		for a := range b.verdicts {
			if n := b.verdicts[a].Load(); n > 0 {
				rep.Verdicts[matcher.Action(a).String()] += n
				rep.Total += n
			}
		}
		for r := range b.reasons {
			if n := b.reasons[r].Load(); n > 0 {
				rep.Reasons[matcher.Reason(r).String()] += n
			}
		}
		for c := range b.countries {
			if n := b.countries[c].Load(); n > 0 {
				countries[countryName(c)] += n
			}
		}
		for j := range b.prefixes {
			if k, n := b.prefixes[j].key.Load(), b.prefixes[j].n.Load(); k != 0 && n > 0 {
				prefixes[prefixName(k)] += n
			}
			sl := &b.accounts[j]
			if name, n := sl.name.Load(), sl.n.Load(); name != nil && n > 0 {
				accounts[*name] += n
			}
		}
		rep.OtherPrefixes += b.otherPfx.Load()
		rep.OtherAccounts += b.otherAcct.Load()
	}
	rep.TopCountries = top(countries)
	rep.TopPrefixes = top(prefixes)
	rep.TopAccounts = top(accounts)
	return rep, true
}

// top returns the TopN largest counts, ties by key; the rest is dropped
// from the list (a bucket already bounds what is kept).
func top(m map[string]uint64) []Top {
	out := make([]Top, 0, len(m))
	for k, n := range m {
		out = append(out, Top{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > TopN {
		out = out[:TopN]
	}
	return out
}

// String is for logs.
func (t Top) String() string { return t.Key + "=" + strconv.FormatUint(t.Count, 10) }
