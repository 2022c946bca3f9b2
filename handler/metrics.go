package handler

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/promtext"
	"github.com/tollgate/tollgate/whatif"
)

// writeMetrics renders /metrics in the Prometheus text format, by hand:
// one pass, no client library, labels only from closed sets. Each package
// that owns state writes its own families (WriteMetrics); this only
// concatenates them, in an order kept stable for readers of the raw text
// (testdata/metrics.golden).
func (h *Handler) writeMetrics(b *bytes.Buffer) {
	p := promtext.New(b)
	h.q.WriteMetrics(b)
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
		h.opt.FleetState.WriteMetrics(b, h.a.FleetAlertFallbacks())
	}
	h.writeMatcherMetrics(p)
	p.Gauge("tollgate_ready", "1 when a policy is loaded and the service is not draining.", promtext.Bool(h.svcReady() && !h.draining.Load()))
	h.q.WriteConnMetrics(b)
	h.a.WriteMetrics(b)
	writeProcessMetrics(p, h.started)
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

// writeShadowMetrics writes the shadow policy's families (whatif's; the
// shadow in force is the query transports').
func (h *Handler) writeShadowMetrics(b *bytes.Buffer) {
	sh := h.q.Shadow.Load()
	var st *whatif.ShadowStats
	if sh != nil {
		st = sh.Stats()
	}
	whatif.WriteMetrics(b, st, sh != nil)
}
