package query

import (
	"io"
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
	// eventsRefused counts call-event requests refused by cause
	// (refusedNames): no or wrong token, absurd duration or time
	eventsRefused [numRefused]atomic.Uint64
	conns         [numListeners]connMetrics
	// loopHandoffs counts the epoll loop's handovers to fasthttp (nil:
	// no loop).
	loopHandoffs atomic.Pointer[atomic.Uint64]
}

func (m *metrics) decision(t transport, v *matcher.Verdict) {
	a, r := int(v.Action), int(v.Reason)
	if a < nActions && r < nReasons {
		m.decisions[t][a][r].Add(1)
	}
}

// writeQuery writes the query transports' families: decisions, malformed
// requests, refused call events and latency, labelled by transport.
func (m *metrics) writeQuery(w io.Writer) {
	p := promtext.New(w)
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
func (m *metrics) writeConns(w io.Writer) {
	p := promtext.New(w)
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
	if n := m.loopHandoffs.Load(); n != nil {
		p.Counter("tollgate_query_loop_handoffs_total", "Query connections the epoll loop (-query-loop=epoll) handed to the fasthttp server for a request it does not serve itself.", float64(n.Load()))
	}
}
