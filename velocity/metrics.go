package velocity

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the engine's families for /metrics: every label
// comes from a closed set (event kind and result, lockdown trigger); no
// account ever becomes a label (per-account counters are read through the
// admin API).
func (e *Engine) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	st := e.Stats()
	p.Head("tollgate_call_events_total", "Call events from the proxies, by event (answered, ended) and result (accepted, duplicate, ignored: unknown account).", "counter")
	for k := range st.Events {
		for r := range st.Events[k] {
			p.Label2("tollgate_call_events_total", "event", EventKindNames[k], "result", ResultNames[r], st.Events[k][r])
		}
	}
	p.Gauge("tollgate_live_calls", "Calls answered and not yet ended, from call events.", float64(st.LiveCalls))
	p.Counter("tollgate_calls_expired_total", "Live calls taken as ended after -max-call-duration (their end event was lost): booked unconfirmed, from the answer to when last heard of.", float64(st.Expired))
	p.Head("tollgate_lockdowns_total", "International lockdowns of an account or subaccount, by trigger (automatic: a critical velocity level; operator: the admin API).", "counter")
	p.Label1("tollgate_lockdowns_total", "trigger", "automatic", st.LockdownsAuto)
	p.Label1("tollgate_lockdowns_total", "trigger", "operator", st.LockdownsOp)
	p.Counter("tollgate_unlocks_total", "Lockdowns lifted by an operator.", float64(st.Unlocks))
	p.Gauge("tollgate_locked_scopes", "Accounts and subaccounts whose international calls are locked now.", float64(st.Locked))
	p.Gauge("tollgate_unknown_account_scopes", "Unknown accounts (served by the default policy) counted under a scope of their own name now; at 16384, further names share one overflow scope.", float64(st.UnknownScopes))
	p.Gauge("tollgate_velocity_scopes", "Accounts and subaccounts the velocity counters track.", float64(st.Scopes))
	p.Counter("tollgate_cps_over_cap_total", "Seconds in which an account or subaccount attempted more calls than its max_cps.", float64(st.CPSOverCap))
	p.Gauge("tollgate_cps_cap_ratio_max", "Highest ratio, over accounts and subaccounts with max_cps, of the last complete second's call attempts to max_cps.", st.CPSCapRatioMax)
	p.Gauge("tollgate_channels_peak_ratio_max", "Highest ratio, over accounts and subaccounts, of live calls to the typical peak (the highest daily peak of the 7 days before today).", st.PeakRatioMax)
	p.Gauge("tollgate_velocity_evaluation_seconds", "How long the last evaluation of the velocity rules took.", float64(st.EvaluationNanos)/1e9)
	p.Counter("tollgate_velocity_journal_dropped_total", "Attempts the distinct-destination/country sets and the range velocity missed because their journal was full.", float64(st.JournalDropped))
	p.Gauge("tollgate_range_velocity_ranges", "Number ranges the operator's range velocity remembers (at most max_ranges).", float64(st.RangesTracked))
	p.Counter("tollgate_range_velocity_evicted_total", "Number ranges the range velocity forgot, least recently called first, to make room for new ones.", float64(st.RangesEvicted))
	p.Counter("tollgate_range_blocks_total", "Number ranges blocked operator-wide by the range velocity's critical level (action block).", float64(st.RangeBlocks))
	p.Head("tollgate_velocity_evaluation_duration_seconds", "How long the evaluations of the velocity rules took.", "histogram")
	var cum uint64
	for i, c := range st.EvaluationCounts {
		cum += c
		p.S(`tollgate_velocity_evaluation_duration_seconds_bucket{le="`)
		if i < len(EvalBuckets) {
			p.Float(EvalBuckets[i])
		} else {
			p.S("+Inf")
		}
		p.S(`"} `)
		p.Uint(cum)
		p.S("\n")
	}
	p.Line("tollgate_velocity_evaluation_duration_seconds_sum", float64(st.EvaluationTotalNanos)/1e9)
	p.Line("tollgate_velocity_evaluation_duration_seconds_count", float64(cum))
}
