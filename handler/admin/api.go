// Package admin is tollgate's admin API and console: one route table
// (routes.go) that the console, the CLI (tollgate admin) and the API docs
// test read, the bearer-token and console-session authentication, body
// limits applied before a body is read, and the handlers behind every
// route. Package handler serves it on the admin listener, beside health,
// readiness and /metrics.
package admin

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/handler/query"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/promtext"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/stats"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// Options configure an API.
type Options struct {
	// Logger receives one line per admin change.
	Logger zerolog.Logger
	// Tokens are the admin API's bearer tokens.
	Tokens []query.Token
	// Query is the query transports: GET /v1/check behind the admin
	// credentials, and the shadow policy the what-if routes install.
	Query *query.Server
	// Ops serves /health, /ready and /metrics on the admin listener too
	// (false: not one of them).
	Ops func(ctx *fasthttp.RequestCtx, path []byte) bool
	// Velocity and Alerts back the velocity and alert routes.
	Velocity *velocity.Engine
	Alerts   *alert.Dispatcher
	// Now is the clock of the what-if replays (time.Now if nil).
	Now func() time.Time
	// Recent is the recent-traffic ring of POST /v1/what-if (nil: none).
	Recent *recent.Ring
	// Stats is what GET /v1/stats reports.
	Stats *stats.Stats
	// Fleet and FleetState are fleet mode's (nil without -nats).
	Fleet      *fleet.Policy
	FleetState *fleet.State
}

// API serves the admin listener.
type API struct {
	m       *matcher.Matcher
	svc     *service.Service
	opt     Options
	log     zerolog.Logger
	q       *query.Server
	met     metrics
	tokens  []query.TokenHash
	vel     *velocity.Engine
	alerts  *alert.Dispatcher
	console consoleSessions
	wi      whatIfState
	stats   *stats.Stats
	// fleetAlertFallbacks counts GET /v1/alerts answered from this node's
	// list because the fleet's alert stream could not be read.
	fleetAlertFallbacks atomic.Uint64
}

// New builds the admin API. svc may be nil: every route then answers 503.
func New(m *matcher.Matcher, svc *service.Service, opt Options) *API {
	h := &API{m: m, svc: svc, opt: opt, log: opt.Logger, q: opt.Query, vel: opt.Velocity, alerts: opt.Alerts, stats: opt.Stats}
	for _, t := range opt.Tokens {
		h.tokens = append(h.tokens, query.HashToken(t))
	}
	return h
}

func (h *API) now() time.Time {
	if h.opt.Now != nil {
		return h.opt.Now()
	}
	return time.Now()
}

func (h *API) ops(ctx *fasthttp.RequestCtx, path []byte) bool {
	return h.opt.Ops != nil && h.opt.Ops(ctx, path)
}

var (
	ctJSON = []byte("application/json")
	ctText = []byte("text/plain; charset=utf-8")
	ctCSV  = []byte("text/csv; charset=utf-8")
)

// metrics are the admin API's counters.
type metrics struct {
	adminReqs [6]atomic.Uint64 // by status class 1xx..5xx, [0] unused
	authFail  atomic.Uint64
}

// WriteMetrics writes the admin API's families for /metrics.
func (h *API) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	p.Head("tollgate_admin_requests_total", "Admin API requests by status class.", "counter")
	for c := 1; c <= 5; c++ {
		p.Label1("tollgate_admin_requests_total", "code", string(rune('0'+c))+"xx", h.met.adminReqs[c].Load())
	}
	p.Counter("tollgate_admin_auth_failures_total", "Admin requests refused for a missing or wrong token.", float64(h.met.authFail.Load()))
}

// AuthFailures is the count of admin requests refused for a missing or
// wrong token.
func (h *API) AuthFailures() uint64 { return h.met.authFail.Load() }

// FleetAlertFallbacks is the count of GET /v1/alerts answered from this
// node's list because the fleet's alert stream could not be read.
func (h *API) FleetAlertFallbacks() uint64 { return h.fleetAlertFallbacks.Load() }
