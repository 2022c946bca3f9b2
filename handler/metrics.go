package handler

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
)

// transport labels the way a query arrived. The set is closed, so it is a
// bounded metric label.
type transport uint8

const (
	tHTTP      transport = iota // GET/POST /v1/check
	tHTTPRPC                    // POST /rpc
	tNetstring                  // JSON-RPC in netstrings over TCP (Kamailio janssonrpcc)
	tTCPJSON                    // bare JSON-RPC over TCP (OpenSIPS jsonrpc)
	numTransports
)

var transportNames = [numTransports]string{"http", "http_rpc", "tcp_netstring", "tcp_json"}

const (
	nReasons = len(matcher.Reasons)
	nActions = 3
)

// latencyBuckets are the histogram's upper bounds in seconds: fine-grained
// under the 1 ms target, coarse above it.
var latencyBuckets = [...]float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1}

var latencyBucketNs = func() (b [len(latencyBuckets)]int64) {
	for i, s := range latencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNs  atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(latencyBucketNs) && ns > latencyBucketNs[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(ns))
}

// metrics are the query path's counters: plain atomics indexed by bounded
// labels, so counting costs a few nanoseconds and never allocates.
type metrics struct {
	decisions   [numTransports][nActions][nReasons]atomic.Uint64
	parseErrors [numTransports]atomic.Uint64
	latency     [numTransports]histogram
	tcpConns    atomic.Int64
	tcpAccepted atomic.Uint64
	adminReqs   [6]atomic.Uint64 // by status class 1xx..5xx, [0] unused
	authFail    atomic.Uint64
	// eventsRefused counts call-event requests refused by cause
	// (refusedNames): no or wrong token, absurd duration or time
	eventsRefused [numRefused]atomic.Uint64
	conns         [numListeners]connMetrics
	started       time.Time
}

func (m *metrics) decision(t transport, v *matcher.Verdict) {
	a, r := int(v.Action), int(v.Reason)
	if a < nActions && r < nReasons {
		m.decisions[t][a][r].Add(1)
	}
}

// writeMetrics renders everything in the Prometheus text format, by hand:
// one pass, no client library, labels only from closed sets.
func (h *Handler) writeMetrics(b *bytes.Buffer) {
	m := h.met
	counterHead := func(name, help, typ string) {
		b.WriteString("# HELP ")
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(help)
		b.WriteString("\n# TYPE ")
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(typ)
		b.WriteByte('\n')
	}
	num := func(v float64) { b.WriteString(strconv.FormatFloat(v, 'g', -1, 64)) }
	uint := func(v uint64) { b.WriteString(strconv.FormatUint(v, 10)) }
	line := func(name string, v float64) {
		b.WriteString(name)
		b.WriteByte(' ')
		num(v)
		b.WriteByte('\n')
	}
	gauge := func(name, help string, v float64) {
		counterHead(name, help, "gauge")
		line(name, v)
	}
	boolf := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}

	counterHead("tollgate_decisions_total", "Decisions taken, by verdict, reason and transport.", "counter")
	for t := transport(0); t < numTransports; t++ {
		for a := 0; a < nActions; a++ {
			for r := 0; r < nReasons; r++ {
				n := m.decisions[t][a][r].Load()
				if n == 0 {
					continue
				}
				b.WriteString(`tollgate_decisions_total{transport="`)
				b.WriteString(transportNames[t])
				b.WriteString(`",verdict="`)
				b.WriteString(matcher.Action(a).String())
				b.WriteString(`",reason="`)
				b.WriteString(matcher.Reasons[r].Name)
				b.WriteString(`"} `)
				uint(n)
				b.WriteByte('\n')
			}
		}
	}

	counterHead("tollgate_parse_errors_total", "Malformed query requests (answered 400 or with a JSON-RPC error), by transport.", "counter")
	for t := transport(0); t < numTransports; t++ {
		b.WriteString(`tollgate_parse_errors_total{transport="`)
		b.WriteString(transportNames[t])
		b.WriteString(`"} `)
		uint(m.parseErrors[t].Load())
		b.WriteByte('\n')
	}

	counterHead("tollgate_events_refused_total", "Call-event requests refused, by cause: token (no or wrong -events-token, or a peer off the loopback without one), duration (longer than -max-call-duration), future (time beyond the clock-skew allowance).", "counter")
	for c := 0; c < numRefused; c++ {
		b.WriteString(`tollgate_events_refused_total{cause="`)
		b.WriteString(refusedNames[c])
		b.WriteString(`"} `)
		uint(m.eventsRefused[c].Load())
		b.WriteByte('\n')
	}

	counterHead("tollgate_request_duration_seconds", "Time from a query fully read to its answer encoded, by transport.", "histogram")
	for t := transport(0); t < numTransports; t++ {
		hist := &m.latency[t]
		var cum uint64
		for i := range hist.counts {
			cum += hist.counts[i].Load()
			b.WriteString(`tollgate_request_duration_seconds_bucket{transport="`)
			b.WriteString(transportNames[t])
			b.WriteString(`",le="`)
			if i < len(latencyBuckets) {
				num(latencyBuckets[i])
			} else {
				b.WriteString("+Inf")
			}
			b.WriteString(`"} `)
			uint(cum)
			b.WriteByte('\n')
		}
		b.WriteString(`tollgate_request_duration_seconds_sum{transport="`)
		b.WriteString(transportNames[t])
		b.WriteString(`"} `)
		num(float64(hist.sumNs.Load()) / 1e9)
		b.WriteString("\ntollgate_request_duration_seconds_count{transport=\"")
		b.WriteString(transportNames[t])
		b.WriteString(`"} `)
		uint(cum)
		b.WriteByte('\n')
	}

	if h.svc != nil {
		st := h.svc.Stats()
		counterHead("tollgate_reloads_total", "Policy loads and reloads (start, SIGHUP, POST /v1/reload), by result.", "counter")
		b.WriteString(`tollgate_reloads_total{result="success"} `)
		uint(st.Success)
		b.WriteString("\n" + `tollgate_reloads_total{result="failure"} `)
		uint(st.Failure)
		b.WriteByte('\n')
		gauge("tollgate_reload_success", "1 if the last load or reload succeeded, 0 if it was refused.", boolf(st.LastOK))
		var last float64
		if !st.LastSuccess.IsZero() {
			last = float64(st.LastSuccess.UnixNano()) / 1e9
		}
		gauge("tollgate_reload_last_success_timestamp_seconds", "When the last successful load or reload happened.", last)
		counterHead("tollgate_store_errors_total", "Admin writes that failed in storage (answered 500, nothing applied).", "counter")
		line("tollgate_store_errors_total", float64(st.StoreErrors))
		if info, err := h.svc.HighRiskInfo(); err == nil {
			counterHead("tollgate_high_risk_list", "Entries of the high-risk list in force, labelled by where it comes from (file, stored, builtin).", "gauge")
			b.WriteString(`tollgate_high_risk_list{origin="`)
			b.WriteString(info.Origin)
			b.WriteString(`"} `)
			uint(uint64(info.Entries))
			b.WriteByte('\n')
		}
	}

	if h.svc != nil {
		if _, rd, err := h.svc.RateDeck(); err == nil {
			counterHead("tollgate_rate_deck", "Prefixes of the rate deck in force, labelled by where it comes from (file, stored, none).", "gauge")
			b.WriteString(`tollgate_rate_deck{origin="`)
			b.WriteString(rd.Origin)
			b.WriteString(`"} `)
			uint(uint64(rd.Entries))
			b.WriteByte('\n')
		}
	}
	if h.vel != nil {
		h.writeVelocityMetrics(b, counterHead, gauge, line)
	}
	if h.svc != nil && h.svc.Origin() != nil {
		h.writeOriginMetrics(b, h.svc.Origin(), counterHead, gauge, line)
	}
	if h.alerts != nil {
		h.writeAlertMetrics(b, counterHead, gauge)
	}
	if w := h.opt.State; w != nil {
		st := w.Stats()
		counterHead("tollgate_state_flushes_total", "Writes of the fraud state to the data file, by result (ok, failed: kept for the next one).", "counter")
		b.WriteString(`tollgate_state_flushes_total{result="ok"} ` + strconv.FormatUint(st.Flushes, 10) + "\n")
		b.WriteString(`tollgate_state_flushes_total{result="failed"} ` + strconv.FormatUint(st.Failures, 10) + "\n")
		counterHead("tollgate_state_records_written_total", "Fraud state records written or deleted.", "counter")
		line("tollgate_state_records_written_total", float64(st.Records))
		last := 0.0
		if !st.LastFlush.IsZero() {
			last = float64(st.LastFlush.UnixNano()) / 1e9
		}
		gauge("tollgate_state_last_flush_timestamp_seconds", "When the fraud state was last written: what a kill -9 now would keep.", last)
		gauge("tollgate_state_flush_seconds", "How long the last write of the fraud state took.", st.LastDuration.Seconds())
		gauge("tollgate_state_pending_records", "Records queued for the next write of the fraud state (alerts, webhook deliveries).", float64(st.Pending))
	}
	if h.opt.Teardown != nil {
		writeTeardownMetrics(b, h.opt.Teardown.Stats(), counterHead, gauge)
	}
	h.writeWhatIfMetrics(b)
	h.writeFleetMetrics(b, gauge, counterHead, line)
	h.writeFleetStateMetrics(b, gauge, counterHead, line)

	hits, misses := h.m.CacheStats()
	counterHead("tollgate_national_cache_hits_total", "National-format resolutions answered from the cache.", "counter")
	line("tollgate_national_cache_hits_total", float64(hits))
	counterHead("tollgate_national_cache_misses_total", "National-format resolutions that went to libphonenumber.", "counter")
	line("tollgate_national_cache_misses_total", float64(misses))
	ratio := 0.0
	if hits+misses > 0 {
		ratio = float64(hits) / float64(hits+misses)
	}
	gauge("tollgate_national_cache_hit_ratio", "hits / (hits + misses) of the national-format cache since start.", ratio)

	if snap := h.m.Snapshot(); snap != nil {
		st := snap.Stats()
		gauge("tollgate_snapshot_accounts", "Accounts in the snapshot in force.", float64(st.Accounts))
		gauge("tollgate_snapshot_subaccounts", "Subaccounts in the snapshot in force.", float64(st.Subaccounts))
		gauge("tollgate_snapshot_high_risk_prefixes", "High-risk prefixes in the snapshot in force.", float64(st.HighRisk))
		gauge("tollgate_snapshot_prefixes", "Prefixes in every prefix set of the snapshot in force.", float64(st.Prefixes))
		gauge("tollgate_snapshot_build_seconds", "How long compiling the snapshot in force took.", st.BuildTime.Seconds())
		gauge("tollgate_snapshot_built_timestamp_seconds", "When the snapshot in force was compiled.", float64(st.BuiltAt.UnixNano())/1e9)
	}
	gauge("tollgate_ready", "1 when a policy is loaded and the service is not draining.", boolf(h.svcReady() && !h.draining.Load()))
	gauge("tollgate_tcp_connections", "Open JSON-RPC TCP connections.", float64(m.tcpConns.Load()))
	counterHead("tollgate_tcp_connections_total", "JSON-RPC TCP connections accepted.", "counter")
	line("tollgate_tcp_connections_total", float64(m.tcpAccepted.Load()))
	connFamily := func(name, help, typ string, v func(*connMetrics) float64) {
		counterHead(name, help, typ)
		for k := ListenerKind(0); k < numListeners; k++ {
			b.WriteString(name)
			b.WriteString(`{listener="`)
			b.WriteString(listenerNames[k])
			b.WriteString(`"} `)
			num(v(&m.conns[k]))
			b.WriteByte('\n')
		}
	}
	connFamily("tollgate_connections", "Open connections, by listener.", "gauge", func(c *connMetrics) float64 { return float64(c.open.Load()) })
	connFamily("tollgate_connections_accepted_total", "Connections accepted, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.accepted.Load()) })
	connFamily("tollgate_connections_shed_total", "Idle connections closed to make room for a new one (listener or source at its cap), by listener.", "counter", func(c *connMetrics) float64 { return float64(c.shed.Load()) })
	connFamily("tollgate_connections_refused_total", "Connections closed on arrival: their listener or source was at its cap with no idle connection to displace, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.refused.Load()) })
	connFamily("tollgate_accept_errors_total", "Failed accepts (e.g. out of file descriptors), retried with a back-off, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.acceptErrors.Load()) })
	counterHead("tollgate_admin_requests_total", "Admin API requests by status class.", "counter")
	for c := 1; c <= 5; c++ {
		b.WriteString(`tollgate_admin_requests_total{code="`)
		b.WriteByte(byte('0' + c))
		b.WriteString(`xx"} `)
		uint(m.adminReqs[c].Load())
		b.WriteByte('\n')
	}
	counterHead("tollgate_admin_auth_failures_total", "Admin requests refused for a missing or wrong token.", "counter")
	line("tollgate_admin_auth_failures_total", float64(m.authFail.Load()))

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	gauge("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", float64(ms.Sys))
	if rss := residentBytes(); rss > 0 {
		gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(rss))
	}
	gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(m.started.UnixNano())/1e9)
}

// residentBytes reads the RSS from /proc (Linux); 0 elsewhere.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// writeVelocityMetrics writes the velocity engine's counters: every label
// comes from a closed set (event kind and result, lockdown trigger); no
// account ever becomes a label (per-account counters are read through the
// admin API).
func (h *Handler) writeVelocityMetrics(b *bytes.Buffer, head func(name, help, typ string), gauge func(name, help string, v float64), line func(name string, v float64)) {
	st := h.vel.Stats()
	head("tollgate_call_events_total", "Call events from the proxies, by event (answered, ended) and result (accepted, duplicate, ignored: unknown account).", "counter")
	for k := range st.Events {
		for r := range st.Events[k] {
			b.WriteString(`tollgate_call_events_total{event="`)
			b.WriteString(velocity.EventKindNames[k])
			b.WriteString(`",result="`)
			b.WriteString(velocity.ResultNames[r])
			b.WriteString(`"} `)
			b.WriteString(strconv.FormatUint(st.Events[k][r], 10))
			b.WriteByte('\n')
		}
	}
	gauge("tollgate_live_calls", "Calls answered and not yet ended, from call events.", float64(st.LiveCalls))
	head("tollgate_calls_expired_total", "Live calls taken as ended after -max-call-duration (their end event was lost): booked unconfirmed, from the answer to when last heard of.", "counter")
	line("tollgate_calls_expired_total", float64(st.Expired))
	head("tollgate_lockdowns_total", "International lockdowns of an account or subaccount, by trigger (automatic: a critical velocity level; operator: the admin API).", "counter")
	b.WriteString(`tollgate_lockdowns_total{trigger="automatic"} `)
	b.WriteString(strconv.FormatUint(st.LockdownsAuto, 10))
	b.WriteString("\n" + `tollgate_lockdowns_total{trigger="operator"} `)
	b.WriteString(strconv.FormatUint(st.LockdownsOp, 10))
	b.WriteByte('\n')
	head("tollgate_unlocks_total", "Lockdowns lifted by an operator.", "counter")
	line("tollgate_unlocks_total", float64(st.Unlocks))
	gauge("tollgate_locked_scopes", "Accounts and subaccounts whose international calls are locked now.", float64(st.Locked))
	gauge("tollgate_unknown_account_scopes", "Unknown accounts (served by the default policy) counted under a scope of their own name now; at 16384, further names share one overflow scope.", float64(st.UnknownScopes))
	gauge("tollgate_velocity_scopes", "Accounts and subaccounts the velocity counters track.", float64(st.Scopes))
	head("tollgate_cps_over_cap_total", "Seconds in which an account or subaccount attempted more calls than its max_cps.", "counter")
	line("tollgate_cps_over_cap_total", float64(st.CPSOverCap))
	gauge("tollgate_cps_cap_ratio_max", "Highest ratio, over accounts and subaccounts with max_cps, of the last complete second's call attempts to max_cps.", st.CPSCapRatioMax)
	gauge("tollgate_channels_peak_ratio_max", "Highest ratio, over accounts and subaccounts, of live calls to the typical peak (the highest daily peak of the 7 days before today).", st.PeakRatioMax)
	gauge("tollgate_velocity_evaluation_seconds", "How long the last evaluation of the velocity rules took.", float64(st.EvaluationNanos)/1e9)
	head("tollgate_velocity_journal_dropped_total", "Attempts the distinct-destination/country sets and the range velocity missed because their journal was full.", "counter")
	line("tollgate_velocity_journal_dropped_total", float64(st.JournalDropped))
	gauge("tollgate_range_velocity_ranges", "Number ranges the operator's range velocity remembers (at most max_ranges).", float64(st.RangesTracked))
	head("tollgate_range_velocity_evicted_total", "Number ranges the range velocity forgot, least recently called first, to make room for new ones.", "counter")
	line("tollgate_range_velocity_evicted_total", float64(st.RangesEvicted))
	head("tollgate_range_blocks_total", "Number ranges blocked operator-wide by the range velocity's critical level (action block).", "counter")
	line("tollgate_range_blocks_total", float64(st.RangeBlocks))
	head("tollgate_velocity_evaluation_duration_seconds", "How long the evaluations of the velocity rules took.", "histogram")
	var cum uint64
	for i, c := range st.EvaluationCounts {
		cum += c
		b.WriteString(`tollgate_velocity_evaluation_duration_seconds_bucket{le="`)
		if i < len(velocity.EvalBuckets) {
			b.WriteString(strconv.FormatFloat(velocity.EvalBuckets[i], 'g', -1, 64))
		} else {
			b.WriteString("+Inf")
		}
		b.WriteString(`"} `)
		b.WriteString(strconv.FormatUint(cum, 10))
		b.WriteByte('\n')
	}
	line("tollgate_velocity_evaluation_duration_seconds_sum", float64(st.EvaluationTotalNanos)/1e9)
	line("tollgate_velocity_evaluation_duration_seconds_count", float64(cum))
}

// writeAlertMetrics writes the alert counters by kind and level (both
// closed sets) and the webhook deliveries.
func (h *Handler) writeAlertMetrics(b *bytes.Buffer, head func(name, help, typ string), gauge func(name, help string, v float64)) {
	st := h.alerts.Stats()
	head("tollgate_alerts_total", "Alerts raised, by kind (a velocity measure, daily_spend, lockdown, unlock) and level (warning, critical, info).", "counter")
	for k, kind := range alert.Kinds {
		for l, level := range alert.Levels {
			if !alertCombination(kind, level) {
				continue
			}
			b.WriteString(`tollgate_alerts_total{kind="`)
			b.WriteString(kind)
			b.WriteString(`",level="`)
			b.WriteString(level)
			b.WriteString(`"} `)
			b.WriteString(strconv.FormatUint(st.Alerts[k][l], 10))
			b.WriteByte('\n')
		}
	}
	head("tollgate_webhook_deliveries_total", "Webhook delivery attempts, by result (delivered, retried, failed: given up).", "counter")
	for r, name := range alert.ResultNames {
		b.WriteString(`tollgate_webhook_deliveries_total{result="`)
		b.WriteString(name)
		b.WriteString(`"} `)
		b.WriteString(strconv.FormatUint(st.Deliveries[r], 10))
		b.WriteByte('\n')
	}
	head("tollgate_webhook_dropped_total", "Alerts dropped from a full webhook queue (the oldest goes).", "counter")
	b.WriteString("tollgate_webhook_dropped_total " + strconv.FormatUint(st.Dropped, 10) + "\n")
	gauge("tollgate_webhook_queue_length", "Alerts waiting for delivery, over all webhooks.", float64(st.Queued))
}

// writeTeardownMetrics writes the teardowns' counters: results and RPC
// outcomes are closed sets; no account, call or proxy becomes a label.
func writeTeardownMetrics(b *bytes.Buffer, st teardown.Stats, head func(name, help, typ string), gauge func(name, help string, v float64)) {
	head("tollgate_teardown_triggers_total", "Lockdowns (and, with -teardown-on-spend, daily-spend criticals) that asked for the live international calls of a scope to be ended.", "counter")
	b.WriteString("tollgate_teardown_triggers_total " + strconv.FormatUint(st.Triggers, 10) + "\n")
	head("tollgate_teardown_calls_total", "Live calls a teardown looked at, by result: ended, not_found (the proxy had no such dialog), gone (its end arrived first), refused (the proxy answered with another error), failed (no answer after -teardown-attempts; alerted), no_proxy (the call's proxy id is not in -proxy-control), no_dialog (its events lacked the dialog's identifiers), domestic (left up), dropped (queue full).", "counter")
	for r, name := range teardown.ResultNames {
		b.WriteString(`tollgate_teardown_calls_total{result="`)
		b.WriteString(name)
		b.WriteString(`"} `)
		b.WriteString(strconv.FormatUint(st.Calls[r], 10))
		b.WriteByte('\n')
	}
	head("tollgate_teardown_rpcs_total", "Requests to the proxies' control interfaces, by result: ok, error (the proxy answered with an error), failed (no usable answer: refused, timeout, HTTP error).", "counter")
	for r, name := range teardown.RPCResultNames {
		b.WriteString(`tollgate_teardown_rpcs_total{result="`)
		b.WriteString(name)
		b.WriteString(`"} `)
		b.WriteString(strconv.FormatUint(st.RPCs[r], 10))
		b.WriteByte('\n')
	}
	gauge("tollgate_teardown_pending", "Calls queued for a teardown or in a request to their proxy.", float64(st.Pending))
}

// alertCombination reports whether an alert of kind can have level:
// thresholds warn or are critical, lockdowns and failed teardowns are
// critical, unlocks info.
func alertCombination(kind, level string) bool {
	switch kind {
	case alert.KindLockdown, alert.KindTeardown:
		return level == alert.LevelCritical
	case alert.KindUnlock, alert.KindUnconfirmedCall:
		return level == alert.LevelInfo
	}
	return level != alert.LevelInfo
}

// originDegraded reports whether origin rules in force read the origin
// country while no Geo-IP database is: /ready and a gauge say so.
func (h *Handler) originDegraded() bool {
	if h.svc == nil || h.svc.Origin() == nil {
		return false
	}
	return h.svc.Origin().Degraded(h.m.Snapshot().OriginNeedsGeo())
}

// writeOriginMetrics writes the origin checks' counters: labels are origin
// rules and actions (closed sets); no account, number or address ever
// becomes a label.
func (h *Handler) writeOriginMetrics(b *bytes.Buffer, c *origin.Checker, head func(name, help, typ string), gauge func(name, help string, v float64), line func(name string, v float64)) {
	head("tollgate_origin_checks_total", "Origin checks of calls the destination rules allowed, by the origin rule that applied and its action (allow, screen, reject).", "counter")
	c.Outcomes(func(r origin.Rule, a origin.Action, n uint64) {
		if n == 0 && r != origin.RuleZone {
			return // keep the exposition short; zone rows are always there
		}
		b.WriteString(`tollgate_origin_checks_total{rule="`)
		b.WriteString(r.String())
		b.WriteString(`",action="`)
		b.WriteString(a.String())
		b.WriteString(`"} `)
		b.WriteString(strconv.FormatUint(n, 10))
		b.WriteByte('\n')
	})
	st := c.State().Counters()
	head("tollgate_screenings_total", "Screening IVR results reported through the admin API, by result.", "counter")
	b.WriteString(`tollgate_screenings_total{result="passed"} ` + strconv.FormatUint(st.ScreeningsPassed, 10) + "\n")
	b.WriteString(`tollgate_screenings_total{result="failed"} ` + strconv.FormatUint(st.ScreeningsFailed, 10) + "\n")
	head("tollgate_quarantines_total", "Accounts quarantined after too many failed screenings.", "counter")
	line("tollgate_quarantines_total", float64(st.Quarantines))
	head("tollgate_quarantine_releases_total", "Quarantines lifted by an operator.", "counter")
	line("tollgate_quarantine_releases_total", float64(st.Releases))
	head("tollgate_unblock_code_checks_total", "Service unblock code verifications, by result (verified, wrong; lockouts counts the lock-outs they caused).", "counter")
	b.WriteString(`tollgate_unblock_code_checks_total{result="verified"} ` + strconv.FormatUint(st.CodesVerified, 10) + "\n")
	b.WriteString(`tollgate_unblock_code_checks_total{result="wrong"} ` + strconv.FormatUint(st.CodesWrong, 10) + "\n")
	head("tollgate_unblock_code_lockouts_total", "Unblock code verifications locked out after too many wrong codes.", "counter")
	line("tollgate_unblock_code_lockouts_total", float64(st.CodeLockouts))
	gauge("tollgate_origin_accounts", "Accounts with origin state (calling history, screening, home, unblock code).", float64(st.Accounts))
	g := c.Geo()
	tab := g.Table()
	loaded, ranges := 0.0, 0.0
	if tab != nil {
		loaded, ranges = 1, float64(tab.Info.Ranges)
	}
	gauge("tollgate_geoip_loaded", "1 when a Geo-IP database is in force, 0 otherwise (every origin is then unknown).", loaded)
	degraded := 0.0
	if h.originDegraded() {
		degraded = 1
	}
	gauge("tollgate_origin_degraded", "1 when origin rules read the origin country but no Geo-IP database is in force: every origin is unknown and gets the unknown action.", degraded)
	head("tollgate_origin_unknown_total", "Origin checks that met an unknown origin, by cause (missing, invalid, no_geoip, not_in_database).", "counter")
	c.Unknowns(func(cause origin.UnknownCause, n uint64) {
		b.WriteString(`tollgate_origin_unknown_total{cause="` + cause.String() + `"} ` + strconv.FormatUint(n, 10) + "\n")
	})
	gauge("tollgate_geoip_ranges", "Address ranges of the Geo-IP database in force.", ranges)
	ok, refused := g.Loads()
	head("tollgate_geoip_loads_total", "Geo-IP database loads, by result (ok, refused: the file in force stays).", "counter")
	b.WriteString(`tollgate_geoip_loads_total{result="ok"} ` + strconv.FormatUint(ok, 10) + "\n")
	b.WriteString(`tollgate_geoip_loads_total{result="refused"} ` + strconv.FormatUint(refused, 10) + "\n")
}
