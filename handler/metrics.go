package handler

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/promtext"
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

// writeMetrics renders /metrics in the Prometheus text format, by hand:
// one pass, no client library, labels only from closed sets. Each package
// that owns state writes its own families (WriteMetrics); this only
// concatenates them, in an order kept stable for readers of the raw text
// (testdata/metrics.golden).
func (h *Handler) writeMetrics(b *bytes.Buffer) {
	p := promtext.New(b)
	h.met.writeQuery(p)
	if h.svc != nil {
		h.svc.WriteMetrics(b)
	}
	if h.vel != nil {
		h.vel.WriteMetrics(b)
	}
	if h.svc != nil && h.svc.Origin() != nil {
		h.svc.Origin().WriteMetrics(b, h.originDegraded())
	}
	if h.alerts != nil {
		h.alerts.WriteMetrics(b)
	}
	if h.opt.State != nil {
		h.opt.State.WriteMetrics(b)
	}
	if h.opt.Teardown != nil {
		h.opt.Teardown.WriteMetrics(b)
	}
	h.opt.Recent.WriteMetrics(b) // nil-safe: the ring's families are always there
	h.writeShadowMetrics(b)
	if h.opt.Fleet != nil {
		h.opt.Fleet.WriteMetrics(b)
	}
	if h.opt.FleetState != nil {
		h.opt.FleetState.WriteMetrics(b, h.fleetAlertFallbacks.Load())
	}
	h.writeMatcherMetrics(p)
	p.Gauge("tollgate_ready", "1 when a policy is loaded and the service is not draining.", promtext.Bool(h.svcReady() && !h.draining.Load()))
	h.met.writeConns(p)
	h.met.writeAdmin(p)
	writeProcessMetrics(p, h.met.started)
}

// writeQuery writes the query transports' families: decisions, malformed
// requests, refused call events and latency, labelled by transport.
func (m *metrics) writeQuery(p *promtext.Writer) {
	p.Head("tollgate_decisions_total", "Decisions taken, by verdict, reason and transport.", "counter")
	for t := transport(0); t < numTransports; t++ {
		for a := 0; a < nActions; a++ {
			for r := 0; r < nReasons; r++ {
				n := m.decisions[t][a][r].Load()
				if n == 0 {
					continue
				}
				p.S(`tollgate_decisions_total{transport="`)
				p.S(transportNames[t])
				p.S(`",verdict="`)
				p.S(matcher.Action(a).String())
				p.S(`",reason="`)
				p.S(matcher.Reasons[r].Name)
				p.S(`"} `)
				p.Uint(n)
				p.S("\n")
			}
		}
	}
	p.Head("tollgate_parse_errors_total", "Malformed query requests (answered 400 or with a JSON-RPC error), by transport.", "counter")
	for t := transport(0); t < numTransports; t++ {
		p.Label1("tollgate_parse_errors_total", "transport", transportNames[t], m.parseErrors[t].Load())
	}
	p.Head("tollgate_events_refused_total", "Call-event requests refused, by cause: token (no or wrong -events-token, or a peer off the loopback without one), duration (longer than -max-call-duration), future (time beyond the clock-skew allowance).", "counter")
	for c := 0; c < numRefused; c++ {
		p.Label1("tollgate_events_refused_total", "cause", refusedNames[c], m.eventsRefused[c].Load())
	}
	p.Head("tollgate_request_duration_seconds", "Time from a query fully read to its answer encoded, by transport.", "histogram")
	for t := transport(0); t < numTransports; t++ {
		hist := &m.latency[t]
		var cum uint64
		for i := range hist.counts {
			cum += hist.counts[i].Load()
			p.S(`tollgate_request_duration_seconds_bucket{transport="`)
			p.S(transportNames[t])
			p.S(`",le="`)
			if i < len(latencyBuckets) {
				p.Float(latencyBuckets[i])
			} else {
				p.S("+Inf")
			}
			p.S(`"} `)
			p.Uint(cum)
			p.S("\n")
		}
		p.S(`tollgate_request_duration_seconds_sum{transport="`)
		p.S(transportNames[t])
		p.S(`"} `)
		p.Float(float64(hist.sumNs.Load()) / 1e9)
		p.S("\ntollgate_request_duration_seconds_count{transport=\"")
		p.S(transportNames[t])
		p.S(`"} `)
		p.Uint(cum)
		p.S("\n")
	}
}

// writeConns writes the listeners' connection families.
func (m *metrics) writeConns(p *promtext.Writer) {
	p.Gauge("tollgate_tcp_connections", "Open JSON-RPC TCP connections.", float64(m.tcpConns.Load()))
	p.Counter("tollgate_tcp_connections_total", "JSON-RPC TCP connections accepted.", float64(m.tcpAccepted.Load()))
	connFamily := func(name, help, typ string, v func(*connMetrics) float64) {
		p.Head(name, help, typ)
		for k := ListenerKind(0); k < numListeners; k++ {
			p.Line(name+`{listener="`+listenerNames[k]+`"}`, v(&m.conns[k]))
		}
	}
	connFamily("tollgate_connections", "Open connections, by listener.", "gauge", func(c *connMetrics) float64 { return float64(c.open.Load()) })
	connFamily("tollgate_connections_accepted_total", "Connections accepted, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.accepted.Load()) })
	connFamily("tollgate_connections_shed_total", "Idle connections closed to make room for a new one (listener or source at its cap), by listener.", "counter", func(c *connMetrics) float64 { return float64(c.shed.Load()) })
	connFamily("tollgate_connections_refused_total", "Connections closed on arrival: their listener or source was at its cap with no idle connection to displace, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.refused.Load()) })
	connFamily("tollgate_accept_errors_total", "Failed accepts (e.g. out of file descriptors), retried with a back-off, by listener.", "counter", func(c *connMetrics) float64 { return float64(c.acceptErrors.Load()) })
}

// writeAdmin writes the admin API's families.
func (m *metrics) writeAdmin(p *promtext.Writer) {
	p.Head("tollgate_admin_requests_total", "Admin API requests by status class.", "counter")
	for c := 1; c <= 5; c++ {
		p.Label1("tollgate_admin_requests_total", "code", string(rune('0'+c))+"xx", m.adminReqs[c].Load())
	}
	p.Counter("tollgate_admin_auth_failures_total", "Admin requests refused for a missing or wrong token.", float64(m.authFail.Load()))
}

// writeMatcherMetrics writes the decision core's families: the matcher
// stays free of I/O, so its counters are rendered here.
func (h *Handler) writeMatcherMetrics(p *promtext.Writer) {
	hits, misses := h.m.CacheStats()
	p.Counter("tollgate_national_cache_hits_total", "National-format resolutions answered from the cache.", float64(hits))
	p.Counter("tollgate_national_cache_misses_total", "National-format resolutions that went to libphonenumber.", float64(misses))
	ratio := 0.0
	if hits+misses > 0 {
		ratio = float64(hits) / float64(hits+misses)
	}
	p.Gauge("tollgate_national_cache_hit_ratio", "hits / (hits + misses) of the national-format cache since start.", ratio)
	if snap := h.m.Snapshot(); snap != nil {
		st := snap.Stats()
		p.Gauge("tollgate_snapshot_accounts", "Accounts in the snapshot in force.", float64(st.Accounts))
		p.Gauge("tollgate_snapshot_subaccounts", "Subaccounts in the snapshot in force.", float64(st.Subaccounts))
		p.Gauge("tollgate_snapshot_high_risk_prefixes", "High-risk prefixes in the snapshot in force.", float64(st.HighRisk))
		p.Gauge("tollgate_snapshot_prefixes", "Prefixes in every prefix set of the snapshot in force.", float64(st.Prefixes))
		p.Gauge("tollgate_snapshot_build_seconds", "How long compiling the snapshot in force took.", st.BuildTime.Seconds())
		p.Gauge("tollgate_snapshot_built_timestamp_seconds", "When the snapshot in force was compiled.", float64(st.BuiltAt.UnixNano())/1e9)
	}
}

// writeProcessMetrics writes the Go runtime's and the process's families.
func writeProcessMetrics(p *promtext.Writer, started time.Time) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.Gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	p.Gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	p.Gauge("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", float64(ms.Sys))
	if rss := residentBytes(); rss > 0 {
		p.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", float64(rss))
	}
	p.Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(started.UnixNano())/1e9)
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

// originDegraded reports whether origin rules in force read the origin
// country while no Geo-IP database is: /ready and a gauge say so.
func (h *Handler) originDegraded() bool {
	if h.svc == nil || h.svc.Origin() == nil {
		return false
	}
	return h.svc.Origin().Degraded(h.m.Snapshot().OriginNeedsGeo())
}
