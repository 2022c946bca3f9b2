package admin

import (
	"strings"

	"github.com/tollgate/tollgate/service"
	"github.com/valyala/fasthttp"
)

// adminReq is what a route's handler gets besides the request: who asked,
// the method and the values of the pattern's {placeholders}.
type adminReq struct {
	who    service.Actor
	method string
	route  *adminRoute
	vals   []string
}

// param returns the value of the placeholder {name} of the route's
// pattern, or "" when the pattern has none of that name.
func (r *adminReq) param(name string) string {
	for i, n := range r.route.params {
		if n == name {
			return r.vals[i]
		}
	}
	return ""
}

// adminRoute is one row of the admin API: a method and a path pattern
// whose {name} segments match any one segment.
type adminRoute struct {
	Method  string
	Pattern string
	// Body is the request body limit in bytes; 0 is MaxSmallBody.
	Body  int
	Serve func(h *API, ctx *fasthttp.RequestCtx, r *adminReq)

	segs   []string // the pattern split at "/", without the leading one
	params []string // the placeholders' names, in order
	pidx   []int    // the placeholders' segment indexes
}

// adminRoutes is the admin API: every authenticated route of the admin
// listener. The docs test checks each row is documented in docs/api.md and
// each documented route is a row; the 405 answer's Allow header lists a
// path's methods in row order. Add a row to add a route.
var adminRoutes = compileRoutes([]adminRoute{
	{Method: "GET", Pattern: "/v1/accounts", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.listAccounts(ctx) }},
	{Method: "PATCH", Pattern: "/v1/accounts", Body: MaxPolicyBody, Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.bulkPatch(ctx, r.who) }},
	{Method: "GET", Pattern: "/v1/accounts/{account}", Body: MaxPolicyBody, Serve: serveAccount},
	{Method: "PUT", Pattern: "/v1/accounts/{account}", Body: MaxPolicyBody, Serve: serveAccount},
	{Method: "PATCH", Pattern: "/v1/accounts/{account}", Body: MaxPolicyBody, Serve: serveAccount},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}", Body: MaxPolicyBody, Serve: serveAccount},
	{Method: "GET", Pattern: "/v1/accounts/{account}/subaccounts/{sub}", Body: MaxPolicyBody, Serve: serveSubaccount},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/subaccounts/{sub}", Body: MaxPolicyBody, Serve: serveSubaccount},
	{Method: "PATCH", Pattern: "/v1/accounts/{account}/subaccounts/{sub}", Body: MaxPolicyBody, Serve: serveSubaccount},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}", Body: MaxPolicyBody, Serve: serveSubaccount},

	{Method: "GET", Pattern: "/v1/operator", Body: MaxPolicyBody, Serve: serveOperator},
	{Method: "PUT", Pattern: "/v1/operator", Body: MaxPolicyBody, Serve: serveOperator},
	{Method: "PATCH", Pattern: "/v1/operator", Body: MaxPolicyBody, Serve: serveOperator},
	{Method: "PUT", Pattern: "/v1/operator/countries/{CC}", Serve: serveOperatorCountry},
	{Method: "DELETE", Pattern: "/v1/operator/countries/{CC}", Serve: serveOperatorCountry},
	{Method: "PUT", Pattern: "/v1/operator/recommended-denies", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
		h.operatorRecommendedDenies(ctx, r.who, r.method)
	}},
	{Method: "DELETE", Pattern: "/v1/operator/recommended-denies", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
		h.operatorRecommendedDenies(ctx, r.who, r.method)
	}},
	{Method: "GET", Pattern: "/v1/recommended-denies", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.recommendedDenies(ctx) }},
	{Method: "PUT", Pattern: "/v1/operator/prefixes/{prefix}", Serve: serveOperatorPrefix},
	{Method: "DELETE", Pattern: "/v1/operator/prefixes/{prefix}", Serve: serveOperatorPrefix},

	{Method: "GET", Pattern: "/v1/high-risk", Body: MaxHighRiskBody, Serve: serveHighRisk},
	{Method: "PUT", Pattern: "/v1/high-risk", Body: MaxHighRiskBody, Serve: serveHighRisk},
	{Method: "DELETE", Pattern: "/v1/high-risk", Body: MaxHighRiskBody, Serve: serveHighRisk},
	{Method: "GET", Pattern: "/v1/countries", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.countries(ctx) }},
	{Method: "GET", Pattern: "/v1/audit", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.audit(ctx) }},
	{Method: "GET", Pattern: "/v1/fleet", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.fleetInfo(ctx) }},
	{Method: "POST", Pattern: "/v1/reload", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.reload(ctx) }},

	{Method: "GET", Pattern: "/v1/accounts/{account}/velocity", Serve: serveVelocity},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/velocity", Serve: serveVelocity},
	{Method: "GET", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/velocity", Serve: serveVelocity},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/velocity", Serve: serveVelocity},
	{Method: "GET", Pattern: "/v1/accounts/{account}/calls", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
		h.calls(ctx, r.param("account"))
	}},
	{Method: "GET", Pattern: "/v1/accounts/{account}/lock", Serve: serveLock},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/lock", Serve: serveLock},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/lock", Serve: serveLock},
	{Method: "GET", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/lock", Serve: serveLock},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/lock", Serve: serveLock},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/lock", Serve: serveLock},
	{Method: "GET", Pattern: "/v1/locks", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.locks(ctx) }},
	{Method: "GET", Pattern: "/v1/rate-deck", Body: MaxRateDeckBody, Serve: serveRateDeck},
	{Method: "PUT", Pattern: "/v1/rate-deck", Body: MaxRateDeckBody, Serve: serveRateDeck},
	{Method: "DELETE", Pattern: "/v1/rate-deck", Body: MaxRateDeckBody, Serve: serveRateDeck},
	{Method: "GET", Pattern: "/v1/alerts", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.recentAlerts(ctx) }},
	// The query API's GET /v1/check behind the admin credentials, for the
	// console's "try a call" (the query listener is another origin).
	{Method: "GET", Pattern: "/v1/check", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.q.Check(ctx) }},
	{Method: "GET", Pattern: "/v1/stats", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.statsReport(ctx) }},

	{Method: "GET", Pattern: "/v1/accounts/{account}/origin", Serve: serveOrigin},
	{Method: "POST", Pattern: "/v1/accounts/{account}/screening", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/quarantine", Serve: serveOrigin},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/home-origin", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/home-origin", Serve: serveOrigin},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/unblock-code", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/unblock-code", Serve: serveOrigin},
	{Method: "POST", Pattern: "/v1/accounts/{account}/unblock-code/verify", Serve: serveOrigin},
	{Method: "GET", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/origin", Serve: serveOrigin},
	{Method: "POST", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/screening", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/quarantine", Serve: serveOrigin},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/home-origin", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/home-origin", Serve: serveOrigin},
	{Method: "PUT", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/unblock-code", Serve: serveOrigin},
	{Method: "DELETE", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/unblock-code", Serve: serveOrigin},
	{Method: "POST", Pattern: "/v1/accounts/{account}/subaccounts/{sub}/unblock-code/verify", Serve: serveOrigin},

	// issue #16 (whatif.go)
	{Method: "POST", Pattern: "/v1/what-if", Body: MaxPolicyBody, Serve: serveWhatIf},
	{Method: "GET", Pattern: "/v1/shadow", Body: MaxPolicyBody, Serve: serveShadow},
	{Method: "PUT", Pattern: "/v1/shadow", Body: MaxPolicyBody, Serve: serveShadow},
	{Method: "DELETE", Pattern: "/v1/shadow", Body: MaxPolicyBody, Serve: serveShadow},
	{Method: "POST", Pattern: "/v1/shadow/promote", Serve: serveShadow},

	// issue #15 templates (templates.go)
	{Method: "GET", Pattern: "/v1/templates", Serve: func(h *API, ctx *fasthttp.RequestCtx, r *adminReq) { h.listTemplates(ctx) }},
	{Method: "GET", Pattern: "/v1/templates/{name}", Body: MaxPolicyBody, Serve: serveTemplate},
	{Method: "PUT", Pattern: "/v1/templates/{name}", Body: MaxPolicyBody, Serve: serveTemplate},
	{Method: "DELETE", Pattern: "/v1/templates/{name}", Body: MaxPolicyBody, Serve: serveTemplate},
	{Method: "GET", Pattern: "/v1/templates/{name}/accounts", Serve: serveTemplateAccounts},
})

// OpenRoutes are served on both listeners without a token.
var OpenRoutes = []string{"GET /health", "GET /ready", "GET /metrics"}

// QueryRoutes are the query listener's routes (with OpenRoutes).
var QueryRoutes = []string{"GET /v1/check", "POST /v1/check", "POST /rpc", "POST /v1/events"}

// Route is one admin API route as the console, the CLI and the docs test
// see it: its method and path pattern.
type Route struct {
	Method  string
	Pattern string
}

// Routes lists the admin API's routes in table order, so tools built
// on the API (the console, the CLI, the docs test) need no copy of it.
func Routes() []Route {
	out := make([]Route, len(adminRoutes))
	for i, r := range adminRoutes {
		out[i] = Route{Method: r.Method, Pattern: r.Pattern}
	}
	return out
}

func compileRoutes(rows []adminRoute) []adminRoute {
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		if !strings.HasPrefix(r.Pattern, "/") || r.Serve == nil || r.Method == "" {
			panic("handler: bad admin route " + r.Method + " " + r.Pattern)
		}
		if seen[r.Method+" "+r.Pattern] {
			panic("handler: admin route " + r.Method + " " + r.Pattern + " twice")
		}
		seen[r.Method+" "+r.Pattern] = true
		r.segs = strings.Split(r.Pattern[1:], "/")
		for j, s := range r.segs {
			if name, ok := strings.CutPrefix(s, "{"); ok && strings.HasSuffix(name, "}") {
				r.params = append(r.params, strings.TrimSuffix(name, "}"))
				r.pidx = append(r.pidx, j)
			}
		}
		if r.Body == 0 {
			r.Body = MaxSmallBody
		}
	}
	return rows
}

// match reports whether the path's segments fit the pattern; a placeholder
// takes any segment, an empty one too unless nonEmpty.
func (r *adminRoute) match(segs []string, nonEmpty bool) bool {
	if len(segs) != len(r.segs) {
		return false
	}
	p := 0
	for i, s := range r.segs {
		if p < len(r.pidx) && r.pidx[p] == i {
			p++
			if nonEmpty && segs[i] == "" {
				return false
			}
			continue
		}
		if s != segs[i] {
			return false
		}
	}
	return true
}

// findRoute returns the route for the method and path segments and, when
// the path is known but the method is not, the path's methods in row order.
func findRoute(method string, segs []string) (*adminRoute, []string) {
	var allowed []string
	for i := range adminRoutes {
		r := &adminRoutes[i]
		if !r.match(segs, false) {
			continue
		}
		if r.Method == method {
			return r, nil
		}
		allowed = append(allowed, r.Method)
	}
	return nil, allowed
}

// vals returns the values of the route's placeholders in segs.
func (r *adminRoute) vals(segs []string) []string {
	v := make([]string, len(r.pidx))
	for i, j := range r.pidx {
		v[i] = segs[j]
	}
	return v
}

// adminBodyLimit is the body limit of the route the raw request URI names,
// whatever the method. A path spelled unusually (a doubled or trailing
// slash, an empty name) gets the small limit; the limits matter only to
// callers that passed the token check anyway.
func adminBodyLimit(uri []byte) int {
	p := b2s(uri)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		return MaxSmallBody
	}
	segs := strings.Split(p[1:], "/")
	limit := 0
	for i := range adminRoutes {
		if r := &adminRoutes[i]; r.match(segs, true) {
			limit = max(limit, r.Body)
		}
	}
	if limit == 0 {
		return MaxSmallBody
	}
	return limit
}

func serveAccount(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.account(ctx, r.who, r.method, r.param("account"))
}

func serveSubaccount(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.subaccount(ctx, r.who, r.method, r.param("account"), r.param("sub"))
}

func serveOperator(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.operator(ctx, r.who, r.method)
}

func serveOperatorCountry(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.operatorCountry(ctx, r.who, r.method, r.param("CC"))
}

func serveOperatorPrefix(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.operatorPrefix(ctx, r.who, r.method, r.param("prefix"))
}

func serveHighRisk(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.highRisk(ctx, r.who, r.method)
}

func serveVelocity(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.velocityState(ctx, r.who, r.method, r.param("account"), r.param("sub"))
}

func serveLock(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.lock(ctx, r.who, r.method, r.param("account"), r.param("sub"))
}

func serveRateDeck(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	h.rateDeck(ctx, r.who, r.method)
}

// serveOrigin serves the origin routes: what is the pattern's tail after
// the account or subaccount ("origin", "screening", "unblock-code/verify").
func serveOrigin(h *API, ctx *fasthttp.RequestCtx, r *adminReq) {
	p := r.route.Pattern
	if i := strings.Index(p, "{sub}/"); i >= 0 {
		p = p[i+len("{sub}/"):]
	} else {
		p = p[strings.Index(p, "{account}/")+len("{account}/"):]
	}
	h.origin(ctx, r.who, r.method, p, r.param("account"), r.param("sub"))
}

// FindRoute returns the route of the table that serves method and path
// ("" when none does) and, when only other methods serve the path, the
// methods allowed.
func FindRoute(method, path string) (r Route, ok bool, allowed []string) {
	ar, allowed := findRoute(method, strings.Split(strings.Trim(path, "/"), "/"))
	if ar == nil {
		return Route{}, false, allowed
	}
	return Route{Method: ar.Method, Pattern: ar.Pattern}, true, nil
}
