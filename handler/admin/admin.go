package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/handler/query"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/valyala/fasthttp"
)

// Body limits of the admin routes, applied from the request's headers
// before a byte of the body is read (413 when over).
const (
	// MaxHighRiskBody bounds PUT /v1/high-risk: policy.MaxHighRiskEntries
	// entries at the shipped list's mean line of 63 bytes is 127 MB.
	MaxHighRiskBody = 160 << 20
	// MaxRateDeckBody bounds PUT /v1/rate-deck: policy.MaxRateDeckEntries
	// lines of a prefix, a six-decimal rate and a currency (30 bytes).
	MaxRateDeckBody = 64 << 20
	// MaxPolicyBody bounds an account, subaccount or operator document:
	// policy.MaxAccountPrefixes prefixes and the other lists with room.
	MaxPolicyBody = 16 << 20
	// MaxSmallBody bounds every other admin body (a reason, a lock).
	MaxSmallBody = 64 << 10
	// MaxAdminBody is the largest of them: the server's own limit.
	MaxAdminBody = MaxHighRiskBody
)

func isOpsPath(uri []byte) bool {
	p := b2s(uri)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p == "/health" || p == "/ready" || p == "/metrics"
}

// adminHeader runs once a request's headers are in, before its body is
// read. A body sent without a valid token is never read: the request is
// marked as too large for a 1-byte limit, so fasthttp refuses it at once
// (no 100 Continue, chunked or not) and adminTransportError answers 401 and
// closes the connection. A body over its route's limit by Content-Length is
// refused the same way with 413; a chunked one when it passes the limit.
func (h *API) adminHeader(hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := hdr.RequestURI()
	limit := adminBodyLimit(uri)
	cl := hdr.ContentLength()
	switch {
	case (cl > 0 || cl == -1) && !isOpsPath(uri) && h.authHeader(hdr) == "":
		hdr.Del(fasthttp.HeaderExpect)
		hdr.SetContentLength(2) // drops Transfer-Encoding: nothing of the body is read
		limit = 1
	case cl > limit:
		hdr.Del(fasthttp.HeaderExpect)
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: limit}
}

// adminTransportError answers requests fasthttp could not read.
func (h *API) adminTransportError(ctx *fasthttp.RequestCtx, err error) {
	hdr := &ctx.Request.Header
	switch {
	case err != fasthttp.ErrBodyTooLarge:
		h.adminError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request: "+err.Error(), "")
	case hdr.ContentLength() == 0:
		// fasthttp reset the request after reading a chunked body past
		// the limit: the route is no longer known.
		h.adminError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body larger than this endpoint's limit", "body")
	case h.authorize(ctx) == "":
		h.refuseAuth(ctx, "; the body was not read")
	default:
		h.adminError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body larger than "+query.Itoa(adminBodyLimit(hdr.RequestURI()))+" bytes, this endpoint's limit", "body")
	}
	if c := ctx.Response.StatusCode() / 100; c >= 1 && c <= 5 {
		h.met.adminReqs[c].Add(1)
	}
}

// authorize returns the name of the token the request carries, or of the
// token that signed in the console session its cookie holds, or "".
// Every configured token is compared, whichever matches, so the time taken
// does not say which one was close.
func (h *API) authorize(ctx *fasthttp.RequestCtx) string {
	return h.authHeader(&ctx.Request.Header)
}

// authName returns the name of the token an Authorization header value
// carries, or "".
func (h *API) authName(auth []byte) string {
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return ""
	}
	sum := sha256.Sum256(bytes.TrimSpace(auth[len(prefix):]))
	name := ""
	for _, t := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.Sum[:]) == 1 {
			name = t.Name
		}
	}
	return name
}

// HTTPServer returns the fasthttp server for the admin listener: larger
// bodies (a high-risk list upload) and longer timeouts than the query side.
func (h *API) HTTPServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h.Serve,
		Name:                  "tollgate",
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           2 * time.Minute,
		MaxRequestBodySize:    MaxAdminBody,
		ReadBufferSize:        16 << 10,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		HeaderReceived:        h.adminHeader,
		ErrorHandler:          h.adminTransportError,
		ConnState:             query.ConnState,
		Logger:                query.FastHTTPLogger{L: h.log},
	}
}

// Serve serves the admin listener.
func (h *API) Serve(ctx *fasthttp.RequestCtx) {
	var rev0 uint64
	if h.opt.Fleet != nil {
		rev0 = h.opt.Fleet.LastWritten()
	}
	h.admin(ctx)
	h.fleetWait(ctx, string(ctx.Method()), rev0)
	if c := ctx.Response.StatusCode() / 100; c >= 1 && c <= 5 {
		h.met.adminReqs[c].Add(1)
	}
}

func (h *API) admin(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if h.ops(ctx, ctx.Path()) {
		return
	}
	if h.consoleRoute(ctx) {
		return
	}
	who := h.authorize(ctx)
	if who == "" {
		h.refuseAuth(ctx, "")
		return
	}
	if h.svc == nil {
		h.adminError(ctx, fasthttp.StatusServiceUnavailable, "no admin service", "")
		return
	}
	actor := service.Actor{Name: who, Remote: ctx.RemoteIP().String()}
	method := string(ctx.Method())
	segs := strings.Split(strings.Trim(path, "/"), "/")
	r, allowed := findRoute(method, segs)
	switch {
	case r != nil:
		r.Serve(h, ctx, &adminReq{who: actor, method: method, route: r, vals: r.vals(segs)})
	case len(allowed) > 0:
		h.allow(ctx, method, allowed...)
	default:
		h.adminError(ctx, fasthttp.StatusNotFound, "no such endpoint", "")
	}
}

func (h *API) allow(ctx *fasthttp.RequestCtx, method string, allowed ...string) bool {
	for _, m := range allowed {
		if m == method {
			return true
		}
	}
	ctx.Response.Header.Set(fasthttp.HeaderAllow, strings.Join(allowed, ", "))
	h.adminError(ctx, fasthttp.StatusMethodNotAllowed, method+" not allowed here; use "+strings.Join(allowed, ", "), "")
	return false
}

// adminErrorBody is every admin error: what went wrong and, for a
// validation error, the field at fault.
type adminErrorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func (h *API) adminError(ctx *fasthttp.RequestCtx, status int, msg, field string) {
	h.writeJSON(ctx, status, adminErrorBody{Error: msg, Field: field})
}

func (h *API) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) { query.WriteJSON(ctx, status, v) }

// fail maps a service error to its status: invalid 400 (naming the field),
// not found 404, conflict 409, not loaded 503, storage and anything else
// 500.
func (h *API) fail(ctx *fasthttp.RequestCtx, err error) {
	var (
		inv *service.InvalidError
		fe  *policy.FieldError
		nf  *service.NotFoundError
		cf  *service.ConflictError
		pe  *service.PreconditionError
		um  *unsupportedMediaError
		se  *service.StoreError
		rc  *service.RevisionConflictError
		un  *service.UnavailableError
	)
	switch {
	case errors.As(err, &inv):
		h.adminError(ctx, fasthttp.StatusBadRequest, err.Error(), inv.Field())
	case errors.As(err, &fe):
		h.adminError(ctx, fasthttp.StatusBadRequest, err.Error(), fe.Field)
	case errors.As(err, &nf):
		h.adminError(ctx, fasthttp.StatusNotFound, err.Error(), "")
	case errors.As(err, &cf):
		h.adminError(ctx, fasthttp.StatusConflict, err.Error(), "")
	case errors.As(err, &rc):
		ctx.Response.Header.Set("Tollgate-Fleet-Revision", strconv.FormatUint(rc.Current, 10))
		h.adminError(ctx, fasthttp.StatusConflict, err.Error(), "")
	case errors.As(err, &un):
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		h.adminError(ctx, fasthttp.StatusServiceUnavailable, err.Error(), "")
	case errors.As(err, &um):
		h.adminError(ctx, fasthttp.StatusUnsupportedMediaType, err.Error(), "Content-Type")
	case errors.As(err, &pe):
		h.adminError(ctx, fasthttp.StatusPreconditionFailed, err.Error(), "If-Match")
	case errors.As(err, &se):
		h.adminError(ctx, fasthttp.StatusInternalServerError, err.Error()+" (nothing was changed)", "")
	case !h.svc.Ready():
		h.adminError(ctx, fasthttp.StatusServiceUnavailable, err.Error(), "")
	default:
		h.adminError(ctx, fasthttp.StatusInternalServerError, err.Error(), "")
	}
}

// decodeBody decodes a JSON body with policy.DecodeStrict: one value, no
// unknown, case-folded or repeated keys, and errors that name the field
// path ("body" for the body as a whole).
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &policy.FieldError{Field: "body", Msg: "empty; a JSON object is required"}
	}
	if err := checkJSONSize(body); err != nil {
		return err
	}
	if err := policy.DecodeStrict(body, v); err != nil {
		var fe *policy.FieldError
		if errors.As(err, &fe) && fe.Field == "" {
			return &policy.FieldError{Field: "body", Msg: fe.Msg}
		}
		return err
	}
	return nil
}

// accountJSON is an account on the wire: its name, its policy fields and its
// subaccounts.
type accountJSON struct {
	Name string `json:"name"`
	policy.Account
}

type subaccountJSON struct {
	Account    string `json:"account"`
	Subaccount string `json:"subaccount"`
	policy.Policy
}

type deletedJSON struct {
	Deleted any `json:"deleted"`
}

func (h *API) listAccounts(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, err := intArg(args, "limit")
	if err != nil {
		h.fail(ctx, err)
		return
	}
	after := string(args.Peek("after"))
	var (
		list  []service.NamedAccount
		total int
	)
	if tag := string(args.Peek("tag")); tag != "" {
		list, total, err = h.svc.AccountsTagged(tag, after, limit)
	} else {
		list, total, err = h.svc.Accounts(after, limit)
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	out := struct {
		Accounts []accountJSON `json:"accounts"`
		Total    int           `json:"total"`
		Next     string        `json:"next,omitempty"`
	}{Accounts: make([]accountJSON, len(list)), Total: total}
	for i, a := range list {
		out.Accounts[i] = accountJSON{Name: a.Name, Account: a.Account}
	}
	if limit > 0 && len(list) == limit {
		out.Next = list[len(list)-1].Name
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

func intArg(args *fasthttp.Args, name string) (int, error) {
	v := args.Peek(name)
	if len(v) == 0 {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, &policy.FieldError{Field: name, Msg: fmt.Sprintf("%q is not a non-negative integer", v)}
	}
	return n, nil
}

func (h *API) account(ctx *fasthttp.RequestCtx, who service.Actor, method, name string) {
	var (
		a   policy.Account
		err error
	)
	switch method {
	case "GET":
		a, err = h.svc.Account(name)
	case "PUT":
		if err = decodeBody(ctx.PostBody(), &a); err == nil {
			a, err = h.svc.PutAccount(who, name, a)
		}
	case "PATCH":
		var patch []byte
		if patch, err = mergePatchBody(ctx); err == nil {
			a, err = h.svc.PatchAccount(who, name, patch, ifMatch(ctx))
		}
	case "DELETE":
		a, err = h.svc.DeleteAccount(who, name)
		if err == nil {
			h.writeJSON(ctx, fasthttp.StatusOK, deletedJSON{accountJSON{Name: name, Account: a}})
			return
		}
	default:
		return
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	setRevision(ctx, a)
	h.writeJSON(ctx, fasthttp.StatusOK, accountJSON{Name: name, Account: a})
}

func (h *API) subaccount(ctx *fasthttp.RequestCtx, who service.Actor, method, account, sub string) {
	var (
		p   policy.Policy
		err error
	)
	switch method {
	case "GET":
		p, err = h.svc.Subaccount(account, sub)
	case "PUT":
		if err = decodeBody(ctx.PostBody(), &p); err == nil {
			p, err = h.svc.PutSubaccount(who, account, sub, p)
		}
	case "PATCH":
		var patch []byte
		if patch, err = mergePatchBody(ctx); err == nil {
			p, err = h.svc.PatchSubaccount(who, account, sub, patch, ifMatch(ctx))
		}
	case "DELETE":
		p, err = h.svc.DeleteSubaccount(who, account, sub)
		if err == nil {
			h.writeJSON(ctx, fasthttp.StatusOK, deletedJSON{subaccountJSON{Account: account, Subaccount: sub, Policy: p}})
			return
		}
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	setRevision(ctx, p)
	h.writeJSON(ctx, fasthttp.StatusOK, subaccountJSON{Account: account, Subaccount: sub, Policy: p})
}

func (h *API) operator(ctx *fasthttp.RequestCtx, who service.Actor, method string) {
	var (
		op  policy.Operator
		err error
	)
	switch method {
	case "GET":
		op, err = h.svc.Operator()
	case "PATCH":
		var patch []byte
		if patch, err = mergePatchBody(ctx); err == nil {
			op, err = h.svc.PatchOperator(who, patch, ifMatch(ctx))
		}
	default:
		if err = decodeBody(ctx.PostBody(), &op); err == nil {
			op, err = h.svc.PutOperator(who, op)
		}
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	setRevision(ctx, op)
	h.writeJSON(ctx, fasthttp.StatusOK, op)
}

type countryStatusJSON struct {
	Country  string `json:"country"`
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
	Reason   string `json:"reason,omitempty"`
}

func (h *API) operatorCountry(ctx *fasthttp.RequestCtx, who service.Actor, method, code string) {
	var (
		cc  string
		d   policy.DisabledCountry
		err error
	)
	if method == "PUT" {
		var body struct {
			Reason string `json:"reason"`
		}
		if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
			if err := decodeBody(ctx.PostBody(), &body); err != nil {
				h.fail(ctx, err)
				return
			}
		}
		cc, d, err = h.svc.DisableCountry(who, code, body.Reason)
	} else {
		cc, d, err = h.svc.EnableCountry(who, code)
	}
	if err != nil {
		h.fail(ctx, err)
		return
	}
	c, _ := policy.LookupCountry(cc)
	out := countryStatusJSON{Country: cc, Name: c.Name, Disabled: method == "PUT", Reason: d.Reason}
	if method == "DELETE" {
		h.writeJSON(ctx, fasthttp.StatusOK, deletedJSON{out})
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

func (h *API) operatorPrefix(ctx *fasthttp.RequestCtx, who service.Actor, method, prefix string) {
	if method == "DELETE" {
		bp, err := h.svc.UnblockPrefix(who, prefix)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, deletedJSON{bp})
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		if err := decodeBody(ctx.PostBody(), &body); err != nil {
			h.fail(ctx, err)
			return
		}
	}
	bp, err := h.svc.BlockPrefix(who, prefix, body.Reason)
	if err != nil {
		h.fail(ctx, err)
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, bp)
}

func (h *API) highRisk(ctx *fasthttp.RequestCtx, who service.Actor, method string) {
	switch method {
	case "GET":
		entries, info, err := h.svc.HighRisk()
		if err != nil {
			h.fail(ctx, err)
			return
		}
		var b bytes.Buffer
		b.Grow(len(entries) * 48)
		l := policy.HighRiskList{Entries: entries, Meta: policy.HighRiskMeta{
			Version:   info.Version,
			Generated: "tollgate export of the " + info.Origin + " list (" + info.Source + ")",
		}}
		if err := policy.WriteHighRiskList(&b, l); err != nil {
			// The provenance may not fit a comment line; the entries must.
			b.Reset()
			if err := policy.WriteHighRiskCSV(&b, entries); err != nil {
				h.fail(ctx, err)
				return
			}
		}
		hdr := &ctx.Response.Header
		hdr.Set("X-Tollgate-High-Risk-Origin", info.Origin)
		hdr.Set("X-Tollgate-High-Risk-Version", info.Version)
		hdr.Set("X-Tollgate-High-Risk-Entries", strconv.Itoa(info.Entries))
		ctx.SetContentTypeBytes(ctCSV)
		ctx.SetBody(b.Bytes())
	case "PUT":
		body := ctx.PostBody()
		l, err := policy.ParseHighRiskList(bytes.NewReader(body))
		if err != nil {
			h.fail(ctx, err)
			return
		}
		info, err := h.svc.PutHighRisk(who, l, body)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, struct {
			HighRisk service.HighRiskInfo `json:"high_risk"`
		}{info})
	case "DELETE":
		info, err := h.svc.DeleteHighRisk(who)
		if err != nil {
			h.fail(ctx, err)
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, struct {
			HighRisk service.HighRiskInfo `json:"high_risk"`
		}{info})
	}
}

type countryJSON struct {
	Code        string `json:"code"`
	Name        string `json:"name"`
	CallingCode int    `json:"calling_code"`
	Region      string `json:"region"`
	Continent   string `json:"continent"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
}

func (h *API) countries(ctx *fasthttp.RequestCtx) {
	op, err := h.svc.Operator()
	if err != nil {
		h.fail(ctx, err)
		return
	}
	all := policy.Countries()
	out := struct {
		Countries []countryJSON `json:"countries"`
	}{make([]countryJSON, len(all))}
	for i, c := range all {
		out.Countries[i] = countryJSON{Code: c.Code, Name: c.Name, CallingCode: c.CallingCode, Region: c.Region, Continent: c.Continent, Status: "enabled"}
		if d, ok := op.DisabledCountries[c.Code]; ok {
			out.Countries[i].Status, out.Countries[i].Reason = "disabled", d.Reason
		}
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

func (h *API) audit(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	limit, err := intArg(args, "limit")
	if err != nil {
		h.fail(ctx, err)
		return
	}
	before, err := intArg(args, "before")
	if err != nil {
		h.fail(ctx, err)
		return
	}
	entries, err := h.svc.Audit(limit, uint64(before))
	if err != nil {
		h.fail(ctx, &service.StoreError{Err: err})
		return
	}
	out := struct {
		Entries []store.AuditEntry `json:"entries"`
		Next    uint64             `json:"next,omitempty"`
	}{Entries: entries}
	if limit > 0 && len(entries) == limit {
		out.Next = entries[len(entries)-1].ID
	}
	h.writeJSON(ctx, fasthttp.StatusOK, out)
}

func (h *API) reload(ctx *fasthttp.RequestCtx) {
	info, err := h.svc.Reload()
	if err != nil {
		field := ""
		var fe *policy.FieldError
		if errors.As(err, &fe) {
			field = fe.Field
		}
		h.adminError(ctx, fasthttp.StatusUnprocessableEntity, "reload refused, the previous policy stays in force: "+err.Error(), field)
		return
	}
	_, rd, _ := h.svc.RateDeck()
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		Reloaded bool                 `json:"reloaded"`
		HighRisk service.HighRiskInfo `json:"high_risk"`
		RateDeck service.RateDeckInfo `json:"rate_deck"`
	}{true, info, rd})
}
