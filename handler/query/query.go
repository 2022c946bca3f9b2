// Package query is tollgate's query transports: what a SIP proxy calls per
// INVITE (HTTP GET/POST /v1/check, JSON-RPC over HTTP, over netstring TCP
// and over bare-JSON TCP) and the call events it reports (POST /v1/events,
// JSON-RPC "event"), with their connection limits and their metrics.
//
// Every query transport does the same three steps: decode into a
// matcher.Query whose strings point into the request's own memory, Decide,
// and encode the verdict with the one hand-written encoder (AppendVerdict)
// into a pooled buffer. Nothing on that path allocates, locks or logs unless
// the call is rejected.
//
// Package handler assembles this with the admin API, health, readiness and
// /metrics on the listeners.
package query

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/stats"
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

// Token is one bearer token and the name logs record for it (admin tokens
// and -events-token).
type Token struct {
	Name   string
	Secret string
}

// TokenHash keeps only a digest of a token, compared in constant time, so
// neither the comparison's timing nor a heap dump gives the token away.
type TokenHash struct {
	Name string
	Sum  [sha256.Size]byte
}

// HashToken digests t.
func HashToken(t Token) TokenHash {
	return TokenHash{Name: t.Name, Sum: sha256.Sum256([]byte(t.Secret))}
}

// Options configure a Server. Handler's Options carry the same fields.
type Options struct {
	// Logger receives one line per rejected or screened call; none for
	// allowed calls.
	Logger zerolog.Logger
	// LogNumbers logs the full dialled number of a rejected call.
	LogNumbers bool
	// LogRejectBurst and LogRejectInterval sample the refused-call lines
	// (0 burst logs every refused call).
	LogRejectBurst    int
	LogRejectInterval time.Duration
	// RPCIdleTimeout and RPCFrameTimeout bound TCP connections (defaults
	// DefaultRPCIdleTimeout and 5 s).
	RPCIdleTimeout  time.Duration
	RPCFrameTimeout time.Duration
	// Velocity takes call events; without it events are refused with 503.
	Velocity *velocity.Engine
	// EventTokens are the tokens call events must carry; without any,
	// events are accepted from local peers only.
	EventTokens []Token
	// MaxCallDuration refuses an ended event whose duration is longer
	// (default 4 h).
	MaxCallDuration time.Duration
	// Now is the clock events are judged by and refused-call log lines
	// sampled by (time.Now if nil).
	Now func() time.Time
	// Recent, when set, records every check query.
	Recent *recent.Ring
	// Stats, when set, counts every decision for GET /v1/stats.
	Stats *stats.Stats
	// Rebase is called, in a goroutine of its own, when the installed
	// shadow policy was compiled over a snapshot no longer in force.
	Rebase func(*whatif.Shadow)
}

// Server decides the queries of every query transport and counts them.
type Server struct {
	m        *matcher.Matcher
	opt      Options
	log      zerolog.Logger
	met      *metrics
	evTokens []TokenHash
	vel      *velocity.Engine
	sampler  *logSampler // nil: every refused call logged
	stats    *stats.Stats
	// Shadow is the shadow policy in force (nil: none), read lock-free by
	// every query; the admin API installs and removes it.
	Shadow atomic.Pointer[whatif.Shadow]
}

// New builds the query transports over m.
func New(m *matcher.Matcher, opt Options) *Server {
	if opt.RPCIdleTimeout <= 0 {
		opt.RPCIdleTimeout = DefaultRPCIdleTimeout
	}
	if opt.RPCFrameTimeout <= 0 {
		opt.RPCFrameTimeout = 5 * time.Second
	}
	if opt.MaxCallDuration <= 0 {
		opt.MaxCallDuration = 4 * time.Hour
	}
	h := &Server{m: m, opt: opt, log: opt.Logger, met: &metrics{}, vel: opt.Velocity, stats: opt.Stats}
	h.sampler = newLogSampler(opt.LogRejectBurst, opt.LogRejectInterval, opt.Now)
	for _, t := range opt.EventTokens {
		h.evTokens = append(h.evTokens, HashToken(t))
	}
	return h
}

func (h *Server) now() time.Time {
	if h.opt.Now != nil {
		return h.opt.Now()
	}
	return time.Now()
}

// Serve answers the query endpoints of the HTTP query listener:
// /v1/check, /rpc and /v1/events. It reports false for any other path.
func (h *Server) Serve(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.Path()) {
	case "/v1/check":
		h.check(ctx)
	case "/rpc":
		h.httpRPC(ctx)
	case "/v1/events":
		h.events(ctx)
	default:
		return false
	}
	return true
}

// decide runs one query and counts it; a rejected or screened call gets its
// log line. It is the single decision point of every transport. at is when
// the request arrived if the transport already read the clock (fasthttp's
// ctx.Time()), so the recent-traffic ring and the origin checks need no
// clock read of their own; a zero at reads the clock.
func (h *Server) decide(q *matcher.Query, t transport, at time.Time) matcher.Verdict {
	q.At = at // the origin checks need no clock read of their own either
	v := h.m.Decide(q)
	h.met.decision(t, &v)
	h.observe(q, &v, at)
	if h.stats != nil {
		h.stats.Record(q.Account, &v)
	}
	if v.Action != matcher.Allow {
		h.logVerdict(q, &v, t)
	}
	return v
}

// observe is the query path's hook: the query goes into the recent-traffic
// ring, and a shadow policy, when one is installed, decides it too. No
// lock, no allocation.
func (h *Server) observe(q *matcher.Query, v *matcher.Verdict, at time.Time) {
	if r := h.opt.Recent; r != nil {
		if at.IsZero() || h.opt.Now != nil { // an injected clock (tests) wins
			at = h.now()
		}
		r.Add(at, q.Account, q.Subaccount, q.To, v.E164Bytes(), q.SrcIP, uint8(v.Action), uint8(v.Reason), v.Country)
	}
	if sh := h.Shadow.Load(); sh != nil {
		var vel matcher.Velocity
		if h.vel != nil {
			vel = h.vel
		}
		sh.Observe(h.m, vel, q, v)
		if sh.Stale(h.m.Snapshot()) && h.opt.Rebase != nil {
			go h.opt.Rebase(sh)
		}
	}
}

// logVerdict writes the one line of a refused call: who, where to, why and
// the rule, and the number only in part unless LogNumbers is set.
func (h *Server) logVerdict(q *matcher.Query, v *matcher.Verdict, t transport) {
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

var ctJSON = []byte("application/json")

// ctText is the compact verdict's content type (format=compact).
var ctText = []byte("text/plain; charset=utf-8")

// SetBody encodes straight into the response's pooled body buffer: the
// buffer is swapped out, appended to and swapped back, so the body is
// written once and never copied.
func SetBody(ctx *fasthttp.RequestCtx, fill func([]byte) []byte) {
	b := ctx.Response.SwapBody(nil)
	b = fill(b[:0])
	ctx.Response.SwapBody(b)
}

// JSONError answers {"error":msg} with status.
func JSONError(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(ctJSON)
	SetBody(ctx, func(b []byte) []byte {
		b = append(b, `{"error":`...)
		b = AppendJSONString(b, msg)
		return append(b, '}')
	})
}

func (h *Server) jsonError(ctx *fasthttp.RequestCtx, status int, msg string) {
	JSONError(ctx, status, msg)
}

// errorBody is the shape of the JSON errors of /v1/events, the admin API's.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func (h *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) { WriteJSON(ctx, status, v) }

// WriteJSON answers v encoded with encoding/json, HTML left unescaped (off
// the per-call path: call events, the admin API).
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "<token>" reads better than "\u003ctoken\u003e"
	if err := enc.Encode(v); err != nil {
		status = fasthttp.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"encoding the response failed"}` + "\n")
	}
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(ctJSON)
	ctx.SetBody(b.Bytes())
}

// check serves GET and POST /v1/check.
func (h *Server) check(ctx *fasthttp.RequestCtx) {
	var q matcher.Query
	var e decodeError
	var f verdictFormat
	switch {
	case ctx.IsGet():
		e = decodeArgs(ctx.QueryArgs(), &q, &f)
	case ctx.IsPost():
		body := ctx.PostBody()
		if len(body) > MaxCheckBody {
			e = decodeError{kind: errBodyTooLarge, off: MaxCheckBody}
			break
		}
		var sc scratch
		e = decodeObject(body, &q, &f, &sc)
		if e.ok() {
			h.answerCheck(ctx, &q, f)
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
		SetBody(ctx, func(b []byte) []byte { return appendErrorBody(b, e) })
		return
	}
	h.answerCheck(ctx, &q, f)
}

func (h *Server) answerCheck(ctx *fasthttp.RequestCtx, q *matcher.Query, f verdictFormat) {
	v := h.decide(q, tHTTP, ctx.Time())
	ctx.SetStatusCode(v.Action.HTTPStatus())
	b := ctx.Response.SwapBody(nil)
	if f == formatCompact {
		ctx.SetContentTypeBytes(ctText)
		b = AppendVerdictCompact(b[:0], &v)
	} else {
		ctx.SetContentTypeBytes(ctJSON)
		b = AppendVerdict(b[:0], &v)
	}
	ctx.Response.SwapBody(b)
	h.met.latency[tHTTP].observe(time.Since(ctx.Time()))
}

// httpRPC serves JSON-RPC 2.0 over HTTP: POST /rpc, one request or a batch.
func (h *Server) httpRPC(ctx *fasthttp.RequestCtx) {
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

// HTTPServer returns the fasthttp server for the query listener, serving
// with handle (the assembled handler: these endpoints and the operational
// ones), with limits sized for one small request per INVITE over
// keep-alive.
func (h *Server) HTTPServer(handle fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler: handle,
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
		ConnState:             ConnState,
		Logger:                FastHTTPLogger{h.log},
	}
}

// transportError answers requests fasthttp itself could not read (body over
// the limit, header too large, garbage) with the same 400 shape as ours.
func (h *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	h.met.parseErrors[tHTTP].Add(1)
	msg := "malformed HTTP request: " + err.Error()
	if err == fasthttp.ErrBodyTooLarge {
		msg = "request body larger than " + Itoa(MaxRPCBody) + " bytes"
	}
	h.jsonError(ctx, fasthttp.StatusBadRequest, msg)
}

// Itoa formats a non-negative n.
func Itoa(n int) string {
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

// FastHTTPLogger sends fasthttp's own messages (accept errors and the like)
// to zerolog at debug level.
type FastHTTPLogger struct{ L zerolog.Logger }

// Printf implements fasthttp.Logger.
func (f FastHTTPLogger) Printf(format string, args ...any) { f.L.Debug().Msgf(format, args...) }

// WriteMetrics writes the query transports' families that open /metrics:
// decisions, malformed requests, refused call events and latency.
func (h *Server) WriteMetrics(w io.Writer) { h.met.writeQuery(w) }

// WriteConnMetrics writes the TCP and per-listener connection families.
func (h *Server) WriteConnMetrics(w io.Writer) { h.met.writeConns(w) }

// Check serves GET and POST /v1/check (the admin listener serves it too,
// behind the admin credentials, for the console).
func (h *Server) Check(ctx *fasthttp.RequestCtx) { h.check(ctx) }
