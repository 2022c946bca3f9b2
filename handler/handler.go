// Package handler assembles tollgate's HTTP and TCP surface: the query
// transports (package handler/query: /v1/check, JSON-RPC over HTTP and
// TCP, call events), the admin API and console (package handler/admin),
// and health, readiness and /metrics on either listener. /metrics
// concatenates the families each package writes of its own state.
package handler

import (
	"bytes"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/handler/admin"
	"github.com/tollgate/tollgate/handler/query"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/stats"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/tollgate/tollgate/whatif"
	"github.com/valyala/fasthttp"
)

// Limits of the query transports (package query).
const (
	MaxCheckBody          = query.MaxCheckBody
	MaxRPCBody            = query.MaxRPCBody
	DefaultRPCIdleTimeout = query.DefaultRPCIdleTimeout
	DefaultLogBurst       = query.DefaultLogBurst
	DefaultLogInterval    = query.DefaultLogInterval
)

// Token is one admin bearer token and the name the audit log records for it.
type Token = query.Token

// The query transports' listener types, kept here for the assembler's
// callers.
type (
	RPCServer    = query.RPCServer
	Listener     = query.Listener
	ListenerKind = query.ListenerKind
	ConnLimits   = query.ConnLimits
	EventResults = query.EventResults
)

// Listener kinds (connection metrics and limits).
const (
	ListenerQuery = query.ListenerQuery
	ListenerRPC   = query.ListenerRPC
	ListenerAdmin = query.ListenerAdmin
)

// ErrServerClosed is returned by RPCServer.Serve after Shutdown.
var ErrServerClosed = query.ErrServerClosed

// DefaultConnLimits are the limits of a listener of at most max connections.
func DefaultConnLimits(max int) ConnLimits { return query.DefaultConnLimits(max) }

// AppendVerdict appends the JSON object of v (query.AppendVerdict).
func AppendVerdict(dst []byte, v *matcher.Verdict) []byte { return query.AppendVerdict(dst, v) }

// DecodeEvents decodes a POST /v1/events body (query.DecodeEvents).
func DecodeEvents(body []byte) ([]velocity.Event, error) { return query.DecodeEvents(body) }

// Options configure a Handler.
type Options struct {
	// Logger receives one line per rejected or screened call and per admin
	// change; none for allowed calls.
	Logger zerolog.Logger
	// LogNumbers logs the full dialled number of a rejected call; by default
	// only its country code and first digits are logged.
	LogNumbers bool
	// LogRejectBurst samples the refused-call lines: at most this many per
	// (account, subaccount, reason) every LogRejectInterval (default 10 s),
	// the rest counted in the key's next line and in a summary line. 0 logs
	// every refused call (a flood then writes a line per call).
	LogRejectBurst    int
	LogRejectInterval time.Duration
	// Tokens are the admin API's bearer tokens.
	Tokens []Token
	// RPCIdleTimeout closes a TCP connection with no request for this long
	// (default DefaultRPCIdleTimeout): idle connections hold descriptors, and
	// a proxy whose connection was closed opens a new one.
	RPCIdleTimeout time.Duration
	// RPCFrameTimeout bounds reading one request once its first byte arrived,
	// and writing its reply (default 5 s).
	RPCFrameTimeout time.Duration
	// Velocity takes call events (POST /v1/events, JSON-RPC "event") and
	// feeds /metrics; without it events are refused with 503.
	Velocity *velocity.Engine
	// Alerts feeds /metrics and GET /v1/alerts.
	Alerts *alert.Dispatcher
	// State is the fraud state writer, for /metrics.
	State *fraudstate.Writer
	// EventTokens are the tokens call events must carry (-events-token).
	// Without any, events are accepted from local peers only.
	EventTokens []Token
	// MaxCallDuration refuses an ended event whose duration is longer
	// (default 4 h, velocity's default).
	MaxCallDuration time.Duration
	// Now is the clock events are judged by and refused-call log lines
	// sampled by (time.Now if nil).
	Now func() time.Time
	// Teardown feeds /metrics (nil without -proxy-control).
	Teardown *teardown.Teardown
	// Recent, when set, records every check query for POST /v1/what-if
	// (nil: -recent-size 0).
	Recent *recent.Ring
	// Fleet is fleet mode's policy (nil without -nats): GET /v1/fleet,
	// ?wait=all, the fleet metrics and /ready detail (fleet.go).
	Fleet *fleet.Policy
	// FleetState is fleet mode's shared fraud state (nil without -nats):
	// its metrics (fleet_state.go).
	FleetState *fleet.State
}

// Handler holds the matcher, the service, the query transports and the
// admin API, and serves what both listeners share.
type Handler struct {
	m        *matcher.Matcher
	svc      *service.Service
	opt      Options
	log      zerolog.Logger
	q        *query.Server // the query transports
	a        *admin.API    // the admin API and console
	started  time.Time
	draining atomic.Bool
	vel      *velocity.Engine
	alerts   *alert.Dispatcher
	stats    *stats.Stats
}

// New builds the handlers. svc may be nil for a query-only handler (tests,
// benchmarks): the admin API then answers 503.
func New(m *matcher.Matcher, svc *service.Service, opt Options) *Handler {
	h := &Handler{m: m, svc: svc, opt: opt, log: opt.Logger, started: time.Now(), vel: opt.Velocity, alerts: opt.Alerts}
	h.stats = stats.New(time.Now())
	go h.stats.Run(nil) // for the process's life: a tick a second
	h.q = query.New(m, query.Options{
		Logger: opt.Logger, LogNumbers: opt.LogNumbers,
		LogRejectBurst: opt.LogRejectBurst, LogRejectInterval: opt.LogRejectInterval,
		RPCIdleTimeout: opt.RPCIdleTimeout, RPCFrameTimeout: opt.RPCFrameTimeout,
		Velocity: opt.Velocity, EventTokens: opt.EventTokens, MaxCallDuration: opt.MaxCallDuration,
		Now: opt.Now, Recent: opt.Recent, Stats: h.stats,
		Rebase: func(sh *whatif.Shadow) { h.a.RebaseShadow(sh) },
	})
	h.a = admin.New(m, svc, admin.Options{
		Logger: opt.Logger, Tokens: opt.Tokens, Query: h.q, Ops: h.ops,
		Velocity: opt.Velocity, Alerts: opt.Alerts, Now: opt.Now, Recent: opt.Recent, Stats: h.stats,
		Fleet: opt.Fleet, FleetState: opt.FleetState,
	})
	return h
}

// Admin serves the admin listener: the admin API and console, and the
// operational endpoints.
func (h *Handler) Admin(ctx *fasthttp.RequestCtx) { h.a.Serve(ctx) }

// AdminServer returns the fasthttp server for the admin listener.
func (h *Handler) AdminServer() *fasthttp.Server { return h.a.HTTPServer() }

// Route is one row of the admin API's route table (admin.Routes).
type Route = admin.Route

// AdminRoutes lists the admin API's routes in table order (admin.Routes).
func AdminRoutes() []Route { return admin.Routes() }

// SetDraining makes /ready answer 503 so load balancers and proxies stop
// sending new work before the listeners close.
func (h *Handler) SetDraining() { h.draining.Store(true) }

func (h *Handler) svcReady() bool {
	if h.svc != nil {
		return h.svc.Ready()
	}
	return h.m.Ready()
}

var (
	ctJSON    = []byte("application/json")
	ctText    = []byte("text/plain; charset=utf-8")
	ctMetrics = []byte("text/plain; version=0.0.4; charset=utf-8")
	ctCSV     = []byte("text/csv; charset=utf-8")
)

// Query serves the query listener: /v1/check, /rpc, /v1/events and the
// operational endpoints.
func (h *Handler) Query(ctx *fasthttp.RequestCtx) {
	if h.q.Serve(ctx) {
		return
	}
	if !h.ops(ctx, ctx.Path()) {
		query.JSONError(ctx, fasthttp.StatusNotFound, "no such endpoint")
	}
}

// ops serves /health, /ready and /metrics on either listener.
func (h *Handler) ops(ctx *fasthttp.RequestCtx, path []byte) bool {
	switch string(path) {
	case "/health":
		ctx.SetContentTypeBytes(ctJSON)
		ctx.SetBodyString(`{"status":"ok"}`)
	case "/ready":
		h.ready(ctx)
	case "/metrics":
		var b bytes.Buffer
		h.writeMetrics(&b)
		ctx.SetContentTypeBytes(ctMetrics)
		ctx.SetBody(b.Bytes())
	default:
		return false
	}
	return true
}

// canary is the query /ready decides: a plain international number with no
// account, which every loaded snapshot can answer.
var canary = matcher.Query{To: "+14155550123"}

func (h *Handler) ready(ctx *fasthttp.RequestCtx) {
	ctx.SetContentTypeBytes(ctJSON)
	switch {
	case h.draining.Load():
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"ready":false,"reason":"draining"}`)
		return
	case !h.svcReady():
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"ready":false,"reason":"no policy loaded"}`)
		return
	}
	q := canary
	v := h.m.Decide(&q)
	if v.Reason == matcher.ReasonInvalidNumber {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"ready":false,"reason":"canary decision failed: the numbering plan does not resolve +14155550123"}`)
		return
	}
	degraded := h.originDegraded()
	fleetDetail := joinDetail(h.fleetDegraded(), h.fleetStateDegraded())
	query.SetBody(ctx, func(b []byte) []byte {
		b = append(b, `{"ready":true,`...)
		if degraded || fleetDetail != "" {
			// Still 200: the proxies fail closed on 503, which would refuse
			// every call of every account, while the origin checks without
			// a database already hold back what they cannot place (each
			// account's unknown action), and a node away from its fleet
			// serves its last applied policy. Monitoring alerts on this
			// member, tollgate_origin_degraded and
			// tollgate_policy_stale_seconds.
			b = append(b, `"degraded":{`...)
			if degraded {
				b = append(b, `"origin":"no Geo-IP database (-geoip-db): every origin is unknown and gets the geo profile's unknown action"`...)
			}
			if fleetDetail != "" {
				if degraded {
					b = append(b, ',')
				}
				b = append(b, `"fleet":`...)
				b = query.AppendJSONString(b, fleetDetail)
			}
			b = append(b, `},`...)
		}
		b = append(b, `"canary":`...)
		b = query.AppendVerdict(b, &v)
		return append(b, '}')
	})
}

// QueryServer returns the fasthttp server for the query listener, with
// limits sized for one small request per INVITE over keep-alive.
func (h *Handler) QueryServer() *fasthttp.Server { return h.q.HTTPServer(h.Query) }

// QueryLoop is the query listener's epoll transport (-query-loop=epoll).
type QueryLoop = query.Loop

// QueryLoopSupported says whether this build has the epoll transport
// (Linux).
const QueryLoopSupported = query.LoopSupported

// NewQueryLoop builds the epoll transport over ln with fasthttp's
// timeouts of qs; serve qs on the loop's Fallback() for every request the
// loop hands over (other paths, /ready, /metrics, malformed requests).
func (h *Handler) NewQueryLoop(ln *Listener, qs *fasthttp.Server) (*QueryLoop, error) {
	return h.q.NewLoop(ln, query.LoopConfig{ReadTimeout: qs.ReadTimeout, WriteTimeout: qs.WriteTimeout, IdleTimeout: qs.IdleTimeout})
}

// NewRPCServer returns a TCP JSON-RPC server answering with h's query
// transports.
func (h *Handler) NewRPCServer() *RPCServer { return h.q.NewRPCServer() }

// Limit wraps ln with the limits lim, counted under kind in /metrics.
func (h *Handler) Limit(ln net.Listener, kind ListenerKind, lim ConnLimits) *Listener {
	return h.q.Limit(ln, kind, lim)
}
