// Package handler is tollgate's transports: the query API a SIP proxy calls
// per INVITE (HTTP GET/POST /v1/check, JSON-RPC over HTTP, over netstring TCP
// and over bare-JSON TCP), the admin API, health, readiness and metrics.
//
// Every query transport does the same three steps: decode into a
// matcher.Query whose strings point into the request's own memory, Decide,
// and encode the verdict with the one hand-written encoder (AppendVerdict)
// into a pooled buffer. Nothing on that path allocates, locks or logs unless
// the call is rejected.
package handler

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/stats"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/tollgate/tollgate/whatif"
	"github.com/valyala/fasthttp"
)

// Limits of the query transports.
const (
	// MaxCheckBody bounds a POST /v1/check body: six fields of 256 bytes,
	// escaped, with room to spare.
	MaxCheckBody = 4 << 10
	// MaxRPCBody bounds a JSON-RPC request (HTTP body or TCP frame); a batch
	// of a few dozen checks fits.
	MaxRPCBody = 64 << 10
	// DefaultRPCIdleTimeout closes a JSON-RPC TCP connection with no
	// request for this long; it was 10 minutes, which let idle connections
	// pile up to the descriptor limit.
	DefaultRPCIdleTimeout = time.Minute
	// maxBatch bounds the requests of one JSON-RPC batch.
	maxBatch = 100
)

// Token is one admin bearer token and the name the audit log records for it.
type Token struct {
	Name   string
	Secret string
}

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
	// Now is the clock events are judged by (time.Now if nil).
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

// Handler holds the matcher, the service and the metrics shared by every
// listener.
type Handler struct {
	m        *matcher.Matcher
	svc      *service.Service
	opt      Options
	log      zerolog.Logger
	met      *metrics
	draining atomic.Bool
	tokens   []tokenHash
	evTokens []tokenHash
	vel      *velocity.Engine
	alerts   *alert.Dispatcher
	sampler  *logSampler // nil: every refused call logged
	console  consoleSessions
	shadow   atomic.Pointer[whatif.Shadow]
	wi       whatIfState
	stats    *stats.Stats
	// fleetAlertFallbacks counts GET /v1/alerts answered from this node's
	// list because the fleet's alert stream could not be read.
	fleetAlertFallbacks atomic.Uint64
}

// New builds the handlers. svc may be nil for a query-only handler (tests,
// benchmarks): the admin API then answers 503.
func New(m *matcher.Matcher, svc *service.Service, opt Options) *Handler {
	if opt.RPCIdleTimeout <= 0 {
		opt.RPCIdleTimeout = DefaultRPCIdleTimeout
	}
	if opt.RPCFrameTimeout <= 0 {
		opt.RPCFrameTimeout = 5 * time.Second
	}
	if opt.MaxCallDuration <= 0 {
		opt.MaxCallDuration = 4 * time.Hour
	}
	h := &Handler{m: m, svc: svc, opt: opt, log: opt.Logger, met: &metrics{started: time.Now()}, vel: opt.Velocity, alerts: opt.Alerts}
	h.sampler = newLogSampler(opt.LogRejectBurst, opt.LogRejectInterval)
	h.stats = stats.New(time.Now())
	go h.stats.Run(nil) // for the process's life: a tick a second
	for _, t := range opt.Tokens {
		h.tokens = append(h.tokens, hashToken(t))
	}
	for _, t := range opt.EventTokens {
		h.evTokens = append(h.evTokens, hashToken(t))
	}
	return h
}

func (h *Handler) now() time.Time {
	if h.opt.Now != nil {
		return h.opt.Now()
	}
	return time.Now()
}

// SetDraining makes /ready answer 503 so load balancers and proxies stop
// sending new work before the listeners close.
func (h *Handler) SetDraining() { h.draining.Store(true) }

func (h *Handler) svcReady() bool {
	if h.svc != nil {
		return h.svc.Ready()
	}
	return h.m.Ready()
}

// decide runs one query and counts it; a rejected or screened call gets its
// log line. It is the single decision point of every transport.
func (h *Handler) decide(q *matcher.Query, t transport) matcher.Verdict {
	return h.decideAt(q, t, time.Time{})
}

// decideAt is decide for a request that arrived at a time the transport
// already read (fasthttp's ctx.Time()), so the recent-traffic ring needs no
// clock read of its own; a zero at reads the clock.
func (h *Handler) decideAt(q *matcher.Query, t transport, at time.Time) matcher.Verdict {
	v := h.m.Decide(q)
	h.met.decision(t, &v)
	h.observe(q, &v, at)
	h.stats.Record(q.Account, &v)
	if v.Action != matcher.Allow {
		h.logVerdict(q, &v, t)
	}
	return v
}

// logVerdict writes the one line of a refused call: who, where to, why and
// the rule, and the number only in part unless LogNumbers is set.
func (h *Handler) logVerdict(q *matcher.Query, v *matcher.Verdict, t transport) {
	if h.log.GetLevel() > zerolog.InfoLevel {
		return
	}
	var suppressed uint64
	if h.sampler != nil {
		ok, supp, summary := h.sampler.allow(logKey(q.Account, q.Subaccount, v.Reason))
		if summary > 0 {
			h.log.Info().Uint64("suppressed", summary).Dur("interval", time.Duration(h.sampler.interval)).
				Msg("refused-call log lines suppressed")
		}
		if !ok {
			return
		}
		suppressed = supp
	}
	ev := h.log.Info()
	if ev == nil {
		return
	}
	var rb [2048]byte
	var nb [40]byte
	num := v.E164Bytes()
	if len(num) == 0 {
		num = []byte(q.To) // invalid numbers are logged as dialled (still masked)
		if len(num) > 32 {
			num = num[:32]
		}
	}
	if !h.opt.LogNumbers {
		num = maskNumber(nb[:0], num)
	}
	msg := "call rejected"
	if v.Action == matcher.Screen {
		msg = "call screened"
	}
	ev.Str("transport", transportNames[t]).
		Str("account", q.Account).
		Str("subaccount", q.Subaccount).
		Str("country", v.Country).
		Str("reason", v.Reason.String()).
		Int("code", v.Reason.Info().Code).
		Bytes("rule", v.AppendRule(rb[:0])).
		Bytes("number", num).
		Str("call_id", q.CallID)
	if suppressed > 0 {
		ev.Uint64("suppressed", suppressed)
	}
	ev.Msg(msg)
}

// maskNumber keeps the leading digits that say where a call went (country
// code and the start of the national number) and hides the subscriber part.
func maskNumber(dst, num []byte) []byte {
	keep := 5
	if len(num) > 0 && num[0] == '+' {
		keep = 6
	}
	for i, c := range num {
		if i >= keep && c >= '0' && c <= '9' {
			c = 'x'
		}
		dst = append(dst, c)
	}
	return dst
}

var (
	ctJSON    = []byte("application/json")
	ctText    = []byte("text/plain; charset=utf-8")
	ctMetrics = []byte("text/plain; version=0.0.4; charset=utf-8")
	ctCSV     = []byte("text/csv; charset=utf-8")
)

// setBody encodes straight into the response's pooled body buffer: the
// buffer is swapped out, appended to and swapped back, so the verdict is
// written once and never copied.
func setBody(ctx *fasthttp.RequestCtx, fill func([]byte) []byte) {
	b := ctx.Response.SwapBody(nil)
	b = fill(b[:0])
	ctx.Response.SwapBody(b)
}

// Query serves the query listener: /v1/check, /rpc, /v1/events and the
// operational endpoints.
func (h *Handler) Query(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/v1/check":
		h.check(ctx)
	case "/rpc":
		h.httpRPC(ctx)
	case "/v1/events":
		h.events(ctx)
	default:
		if !h.ops(ctx, path) {
			h.jsonError(ctx, fasthttp.StatusNotFound, "no such endpoint")
		}
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
	setBody(ctx, func(b []byte) []byte {
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
				b = appendJSONString(b, fleetDetail)
			}
			b = append(b, `},`...)
		}
		b = append(b, `"canary":`...)
		b = AppendVerdict(b, &v)
		return append(b, '}')
	})
}

func (h *Handler) jsonError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(ctJSON)
	setBody(ctx, func(b []byte) []byte {
		b = append(b, `{"error":`...)
		b = appendJSONString(b, msg)
		return append(b, '}')
	})
}

// check serves GET and POST /v1/check.
func (h *Handler) check(ctx *fasthttp.RequestCtx) {
	var q matcher.Query
	var e decodeError
	switch {
	case ctx.IsGet():
		e = decodeArgs(ctx.QueryArgs(), &q)
	case ctx.IsPost():
		body := ctx.PostBody()
		if len(body) > MaxCheckBody {
			e = decodeError{kind: errBodyTooLarge, off: MaxCheckBody}
			break
		}
		var sc scratch
		e = decodeObject(body, &q, &sc)
		if e.ok() {
			h.answerCheck(ctx, &q)
		}
		sc.release()
		if e.ok() {
			return
		}
	default:
		ctx.Response.Header.Set("Allow", "GET, POST")
		h.jsonError(ctx, fasthttp.StatusMethodNotAllowed, "use GET or POST")
		return
	}
	if !e.ok() {
		h.met.parseErrors[tHTTP].Add(1)
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		ctx.SetContentTypeBytes(ctJSON)
		setBody(ctx, func(b []byte) []byte { return appendErrorBody(b, e) })
		return
	}
	h.answerCheck(ctx, &q)
}

func (h *Handler) answerCheck(ctx *fasthttp.RequestCtx, q *matcher.Query) {
	v := h.decideAt(q, tHTTP, ctx.Time())
	ctx.SetStatusCode(v.Action.HTTPStatus())
	ctx.SetContentTypeBytes(ctJSON)
	b := ctx.Response.SwapBody(nil)
	b = AppendVerdict(b[:0], &v)
	ctx.Response.SwapBody(b)
	h.met.latency[tHTTP].observe(time.Since(ctx.Time()))
}

// httpRPC serves JSON-RPC 2.0 over HTTP: POST /rpc, one request or a batch.
func (h *Handler) httpRPC(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		h.jsonError(ctx, fasthttp.StatusMethodNotAllowed, "JSON-RPC requests are POSTed")
		return
	}
	body := ctx.PostBody()
	ctx.SetContentTypeBytes(ctJSON)
	b := ctx.Response.SwapBody(nil)
	sc := scratch{local: localPeer(ctx.RemoteAddr())}
	b, replied := h.rpc(b[:0], body, tHTTPRPC, &sc)
	sc.release()
	ctx.Response.SwapBody(b)
	if !replied {
		ctx.SetStatusCode(fasthttp.StatusNoContent) // notifications only
	}
	h.met.latency[tHTTPRPC].observe(time.Since(ctx.Time()))
}

// QueryServer returns the fasthttp server for the query listener, with
// limits sized for one small request per INVITE over keep-alive.
func (h *Handler) QueryServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler: h.Query,
		// No Server, no Date and no default Content-Type header: no proxy
		// reads them, and every answer sets its own Content-Type. The
		// admin listener keeps them.
		NoDefaultDate:         true,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxRequestBodySize:    MaxRPCBody,
		ReadBufferSize:        8 << 10,
		WriteBufferSize:       4 << 10,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		ErrorHandler:          h.transportError,
		ConnState:             connState,
		Logger:                fasthttpLogger{h.log},
	}
}

// transportError answers requests fasthttp itself could not read (body over
// the limit, header too large, garbage) with the same 400 shape as ours.
func (h *Handler) transportError(ctx *fasthttp.RequestCtx, err error) {
	h.met.parseErrors[tHTTP].Add(1)
	msg := "malformed HTTP request: " + err.Error()
	if err == fasthttp.ErrBodyTooLarge {
		msg = "request body larger than " + itoa(MaxRPCBody) + " bytes"
	}
	h.jsonError(ctx, fasthttp.StatusBadRequest, msg)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// fasthttpLogger sends fasthttp's own messages (accept errors and the like)
// to zerolog at debug level.
type fasthttpLogger struct{ l zerolog.Logger }

// Printf implements fasthttp.Logger.
func (f fasthttpLogger) Printf(format string, args ...any) { f.l.Debug().Msgf(format, args...) }
