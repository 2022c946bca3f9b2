package whatif

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/promtext"
)

const (
	numReasons   = len(matcher.Reasons)
	numCountries = 26*26 + 2 // 0 unknown, 1..676 AA..ZZ, 677 "001"
)

// ShadowStats are a shadow policy's counters: every decision it took
// beside the live one, and the disagreements by the reason of the refusing
// side and the destination country (bounded labels: about 16 × 678).
type ShadowStats struct {
	Decisions     atomic.Uint64
	Disagreements atomic.Uint64
	byRC          [numReasons][numCountries]atomic.Uint64
	// turned counts live → shadow actions (allow, reject, screen).
	turned  [3][3]atomic.Uint64
	lastLog atomic.Int64 // unix ns of the last sampled log line
}

// Shadow is a candidate policy decided beside the live one on every query
// and never enforced. It is immutable but for its counters; replacing the
// candidate makes a new Shadow sharing them (Rebased).
type Shadow struct {
	snap  *matcher.Snapshot
	base  *matcher.Snapshot // the live snapshot it was compiled over
	stats *ShadowStats
	log   zerolog.Logger
	// LogEvery spaces the sampled disagreement log lines (default 1 s).
	logEvery int64
	// Installed and By say when and by whom it was installed.
	Installed time.Time
	By        string
	// Edits is the change it is (kept opaque: the service's edits).
	Edits any
	stale atomic.Bool
}

// NewShadow makes a shadow of snap, compiled over the live snapshot base.
func NewShadow(snap, base *matcher.Snapshot, log zerolog.Logger, by string, edits any) *Shadow {
	return &Shadow{snap: snap, base: base, stats: &ShadowStats{}, log: log, logEvery: int64(time.Second),
		Installed: time.Now().UTC(), By: by, Edits: edits}
}

// Rebased is the same candidate compiled again over a newer live snapshot,
// with the same counters.
func (s *Shadow) Rebased(snap, base *matcher.Snapshot) *Shadow {
	return &Shadow{snap: snap, base: base, stats: s.stats, log: s.log, logEvery: s.logEvery,
		Installed: s.Installed, By: s.By, Edits: s.Edits}
}

// Stats are the shadow's counters.
func (s *Shadow) Stats() *ShadowStats { return s.stats }

// Base is the live snapshot the shadow was compiled over.
func (s *Shadow) Base() *matcher.Snapshot { return s.base }

// Snapshot is the candidate's compiled snapshot.
func (s *Shadow) Snapshot() *matcher.Snapshot { return s.snap }

// Stale reports, once, that the live policy moved since the shadow was
// compiled (the first caller to see it gets true and rebuilds it).
func (s *Shadow) Stale(live *matcher.Snapshot) bool {
	return live != s.base && s.stale.CompareAndSwap(false, true)
}

// Observe decides q with the candidate, reading (never counting into) the
// live velocity state, and counts a disagreement with the live verdict.
// It takes no lock and allocates nothing. A call the live policy refused
// for its origin (a stateful check the shadow does not run) agrees when
// the candidate allows its destination.
func (s *Shadow) Observe(m *matcher.Matcher, vel matcher.Velocity, q *matcher.Query, live *matcher.Verdict) {
	st := s.stats
	st.Decisions.Add(1)
	if s.snap.SameFor(m.Snapshot(), q) {
		return // an account the candidate does not change
	}
	sv := m.DecideBeside(s.snap, vel, false, q, live)
	if sv.Action == live.Action && sv.Reason == live.Reason {
		return
	}
	if sv.Reason == matcher.ReasonOK && live.Rule == matcher.RuleOrigin {
		return
	}
	st.Disagreements.Add(1)
	reason, country := sv.Reason, sv.Country
	if sv.Action == matcher.Allow {
		reason = live.Reason
	}
	if country == "" {
		country = live.Country
	}
	st.byRC[reason][countryIndex(country)].Add(1)
	if int(live.Action) < 3 && int(sv.Action) < 3 {
		st.turned[live.Action][sv.Action].Add(1)
	}
	now := time.Now().UnixNano()
	if last := st.lastLog.Load(); now-last >= s.logEvery && st.lastLog.CompareAndSwap(last, now) {
		if ev := s.log.Info(); ev != nil {
			var nb [24]byte
			num := sv.E164Bytes()
			if len(num) == 0 {
				num = live.E164Bytes()
			}
			n := copy(nb[:], num)
			for i := 6; i < n; i++ { // as refused calls are logged: country code and first digits
				nb[i] = 'x'
			}
			ev.Str("account", q.Account).Str("subaccount", q.Subaccount).Str("country", country).
				Str("live_verdict", live.Action.String()).Str("live_reason", live.Reason.String()).
				Str("shadow_verdict", sv.Action.String()).Str("shadow_reason", sv.Reason.String()).
				Bytes("number", nb[:n]).Msg("shadow policy disagrees (sampled)")
		}
	}
}

func countryIndex(cc string) int {
	switch {
	case len(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' && cc[1] <= 'Z':
		return int(cc[0]-'A')*26 + int(cc[1]-'A') + 1
	case cc == "001":
		return numCountries - 1
	}
	return 0
}

func countryName(i int) string {
	switch {
	case i == 0:
		return ""
	case i == numCountries-1:
		return "001"
	}
	i--
	return string([]byte{byte('A' + i/26), byte('A' + i%26)})
}

// ShadowCount is the disagreements of one reason and country.
type ShadowCount struct {
	Reason  string `json:"reason"`
	Country string `json:"country"`
	Calls   uint64 `json:"calls"`
}

// ByReasonCountry lists the non-zero counters, by reason then country.
func (st *ShadowStats) ByReasonCountry() []ShadowCount {
	var out []ShadowCount
	for r := range st.byRC {
		for c := range st.byRC[r] {
			if n := st.byRC[r][c].Load(); n > 0 {
				out = append(out, ShadowCount{Reason: matcher.Reason(r).String(), Country: countryName(c), Calls: n})
			}
		}
	}
	return out
}

// Turned is how many decisions went from the live action to the shadow's.
func (st *ShadowStats) Turned(live, shadow matcher.Action) uint64 {
	if int(live) < 3 && int(shadow) < 3 {
		return st.turned[live][shadow].Load()
	}
	return 0
}

// WriteMetrics writes the shadow's families for /metrics (active is
// whether a shadow is installed now; st may be nil). Labels are verdict
// reasons and countries: closed sets.
func WriteMetrics(w io.Writer, st *ShadowStats, active bool) {
	p := promtext.New(w)
	p.Head("tollgate_shadow_active", "Whether a shadow policy is installed (PUT /v1/shadow).", "gauge")
	p.UintLine("tollgate_shadow_active", uint64(promtext.Bool(active)))
	var n uint64
	if st != nil {
		n = st.Decisions.Load()
	}
	p.Head("tollgate_shadow_decisions_total", "Decisions the shadow policy took beside the live one.", "counter")
	p.UintLine("tollgate_shadow_decisions_total", n)
	p.Head("tollgate_shadow_disagreements_total", "Shadow decisions that differ from the live verdict, by the reason of the refusing side and destination country.", "counter")
	if st == nil {
		return
	}
	for _, c := range st.ByReasonCountry() {
		p.Label2("tollgate_shadow_disagreements_total", "reason", c.Reason, "country", c.Country, c.Calls)
	}
}
