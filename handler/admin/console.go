package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The operator console (docs/console.md): static pages embedded in the
// binary, served on the admin listener under /console/, calling the same
// admin API as curl does. A browser signs in with an admin token and gets a
// session cookie; the admin API then takes that cookie (plus the session's
// CSRF token in a header on every write) in place of the bearer token, so a
// change made in the console goes through the same routes, service calls and
// audit log, under the name of the token that signed in.

//go:embed console
var consoleFiles embed.FS

const (
	// ConsoleCookie is the session cookie's name.
	ConsoleCookie = "tollgate_console"
	// ConsoleCSRFHeader carries the session's CSRF token on every request
	// that is not a GET or HEAD.
	ConsoleCSRFHeader = "X-CSRF-Token"
	// ConsoleIdleTimeout ends a session nobody used for this long.
	ConsoleIdleTimeout = 30 * time.Minute
	// ConsoleMaxAge ends a session this long after its sign-in, used or not.
	ConsoleMaxAge = 12 * time.Hour
	// maxConsoleSessions bounds the sessions held: a sign-in beyond it ends
	// the least recently used one.
	maxConsoleSessions = 1024
)

// ConsoleRoutes are the console's own routes on the admin listener, served
// before the admin credentials are checked (docs/console.md).
var ConsoleRoutes = []string{"GET /console/", "POST /console/session", "GET /console/session", "DELETE /console/session"}

// consoleSession is one signed-in browser.
type consoleSession struct {
	name    string // the admin token's name: the audit log's "who"
	csrf    string
	created time.Time
	seen    time.Time
}

// consoleSessions holds the sessions in memory: a restart signs everyone
// out, and a token removed from the configuration takes its sessions with it
// at that restart.
type consoleSessions struct {
	mu sync.Mutex
	m  map[string]*consoleSession
}

func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // never returns an error on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *consoleSessions) create(name string, now time.Time) (id string, sess consoleSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*consoleSession)
	}
	s.expireLocked(now)
	if len(s.m) >= maxConsoleSessions {
		oldest := ""
		for k, v := range s.m {
			if oldest == "" || v.seen.Before(s.m[oldest].seen) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	id = randomID()
	p := &consoleSession{name: name, csrf: randomID(), created: now, seen: now}
	s.m[id] = p
	return id, *p
}

func (s *consoleSessions) expireLocked(now time.Time) {
	for k, v := range s.m {
		if v.expired(now) {
			delete(s.m, k)
		}
	}
}

func (v *consoleSession) expired(now time.Time) bool {
	return now.Sub(v.seen) > ConsoleIdleTimeout || now.Sub(v.created) > ConsoleMaxAge
}

// expires is when the session ends if it is not used again.
func (v *consoleSession) expires() time.Time {
	idle, max := v.seen.Add(ConsoleIdleTimeout), v.created.Add(ConsoleMaxAge)
	if max.Before(idle) {
		return max
	}
	return idle
}

// get returns the live session of id and marks it used.
func (s *consoleSessions) get(id string, now time.Time) (consoleSession, bool) {
	if id == "" {
		return consoleSession{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.m[id]
	if !ok {
		return consoleSession{}, false
	}
	if p.expired(now) {
		delete(s.m, id)
		return consoleSession{}, false
	}
	p.seen = now
	return *p, true
}

func (s *consoleSessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// sessionAuth returns the name of the token whose console session the
// request's cookie holds, or "" and, when the session is live but the
// request may not use it, why.
//
// SameSite=Strict keeps the cookie from other sites, but a page on another
// port of the same host is the same site, so it is not all: a request a
// browser marks as coming from elsewhere (Sec-Fetch-Site other than
// same-origin or none) is refused whatever its method; a GET or HEAD then
// needs the cookie only (no other origin can read the answer), except the
// admin listener's GET /v1/check, which counts in the velocity counters;
// that GET and every other method need the session's CSRF token in
// X-CSRF-Token, and the writes an Origin header naming this listener.
func (h *API) sessionAuth(hdr *fasthttp.RequestHeader) (name, refusal string) {
	id := string(hdr.Cookie(ConsoleCookie))
	if id == "" {
		return "", ""
	}
	sess, ok := h.console.get(id, time.Now())
	if !ok {
		return "", ""
	}
	if why := foreignFetch(hdr); why != "" {
		return "", why
	}
	m := string(hdr.Method())
	read := m == "GET" || m == "HEAD"
	if read && !isAdminCheck(hdr.RequestURI()) {
		return sess.name, ""
	}
	if tok := hdr.Peek(ConsoleCSRFHeader); len(tok) == 0 || subtle.ConstantTimeCompare(tok, []byte(sess.csrf)) != 1 {
		return "", "missing or wrong CSRF token (" + ConsoleCSRFHeader + "): a console session's writes carry the token GET /console/session answers"
	}
	if !read && !sameOrigin(hdr) {
		return "", "the Origin header is missing or is not this listener: console writes are accepted from the console's own pages only"
	}
	return sess.name, ""
}

// foreignFetch says why a request the browser marks as sent from another
// origin (Sec-Fetch-Site other than same-origin, or none for one the user
// typed) may not use a console session, or "".
func foreignFetch(hdr *fasthttp.RequestHeader) string {
	if site := string(hdr.Peek("Sec-Fetch-Site")); site != "" && site != "same-origin" && site != "none" {
		return "a console session's requests are accepted from the console's own pages only (Sec-Fetch-Site: " + site + ")"
	}
	return ""
}

// isAdminCheck says whether a request URI is GET /v1/check's.
func isAdminCheck(uri []byte) bool {
	p := b2s(uri)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p == "/v1/check"
}

// sameOrigin says whether the request's Origin is the listener it was sent
// to (scheme-less: the Host must match, as a proxy in front may terminate
// TLS).
func sameOrigin(hdr *fasthttp.RequestHeader) bool {
	o := string(hdr.Peek("Origin"))
	host := string(hdr.Host())
	if o == "" || host == "" {
		return false
	}
	rest, ok := strings.CutPrefix(o, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(o, "https://")
	}
	return ok && rest == host
}

// authHeader is the name of the caller a request's headers authenticate, by
// bearer token or by console session, or "".
func (h *API) authHeader(hdr *fasthttp.RequestHeader) string {
	if name := h.authName(hdr.Peek(fasthttp.HeaderAuthorization)); name != "" {
		return name
	}
	name, _ := h.sessionAuth(hdr)
	return name
}

// refuseAuth answers a request that carried no usable credentials: 403 when
// it came with a live console session but without its CSRF token or from
// another origin, 401 otherwise. Both count as authentication failures.
func (h *API) refuseAuth(ctx *fasthttp.RequestCtx, suffix string) {
	h.met.authFail.Add(1)
	if _, why := h.sessionAuth(&ctx.Request.Header); why != "" {
		h.adminError(ctx, fasthttp.StatusForbidden, why+suffix, "")
		return
	}
	ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="tollgate"`)
	h.adminError(ctx, fasthttp.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <token>)"+suffix, "")
}

// consoleSessionJSON answers GET and POST /console/session.
type consoleSessionJSON struct {
	Name    string    `json:"name"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

// consoleRoute serves /console/... : the pages without credentials, the
// session endpoints with theirs. It reports whether the path was its own.
func (h *API) consoleRoute(ctx *fasthttp.RequestCtx) bool {
	p := string(ctx.Path())
	if p == "/console" {
		ctx.Redirect("/console/", fasthttp.StatusFound)
		return true
	}
	rest, ok := strings.CutPrefix(p, "/console/")
	if !ok {
		return false
	}
	if rest == "session" {
		h.consoleSession(ctx)
		return true
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		h.adminError(ctx, fasthttp.StatusMethodNotAllowed, string(ctx.Method())+" not allowed here; use GET, HEAD", "")
		return true
	}
	if rest == "" {
		rest = "index.html"
	}
	b, err := fs.ReadFile(consoleFiles, path.Join("console", path.Clean("/"+rest)))
	if err != nil {
		h.adminError(ctx, fasthttp.StatusNotFound, "no such console file", "")
		return true
	}
	hdr := &ctx.Response.Header
	switch path.Ext(rest) {
	case ".html":
		hdr.SetContentType("text/html; charset=utf-8")
	case ".js":
		hdr.SetContentType("text/javascript; charset=utf-8")
	case ".css":
		hdr.SetContentType("text/css; charset=utf-8")
	default:
		hdr.SetContentType("application/octet-stream")
	}
	consoleSecurityHeaders(hdr)
	hdr.Set(fasthttp.HeaderCacheControl, "no-cache")
	ctx.SetBody(b)
	return true
}

// consoleSecurityHeaders keep the pages to their own scripts and origin and
// out of other sites' frames.
func consoleSecurityHeaders(hdr *fasthttp.ResponseHeader) {
	hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
}

// consoleSession serves /console/session: POST signs in with the bearer
// token in Authorization (no body), GET says who is signed in and hands the
// page its CSRF token, DELETE signs out.
func (h *API) consoleSession(ctx *fasthttp.RequestCtx) {
	hdr := &ctx.Request.Header
	now := time.Now()
	consoleSecurityHeaders(&ctx.Response.Header)
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store")
	switch string(ctx.Method()) {
	case "POST":
		name := h.authName(hdr.Peek(fasthttp.HeaderAuthorization))
		if name == "" {
			h.refuseAuth(ctx, "")
			return
		}
		if o := hdr.Peek("Origin"); len(o) > 0 && !sameOrigin(hdr) {
			h.adminError(ctx, fasthttp.StatusForbidden, "the Origin header is not this listener: sign in from the console's own page", "")
			return
		}
		if old := hdr.Cookie(ConsoleCookie); len(old) > 0 {
			h.console.remove(string(old)) // a new sign-in gets a new id
		}
		id, sess := h.console.create(name, now)
		h.setSessionCookie(ctx, id, false)
		h.log.Info().Str("who", name).Str("remote", ctx.RemoteIP().String()).Msg("console sign-in")
		h.writeJSON(ctx, fasthttp.StatusOK, consoleSessionJSON{Name: sess.name, CSRF: sess.csrf, Expires: sess.expires().UTC()})
	case "GET":
		if why := foreignFetch(hdr); why != "" {
			h.adminError(ctx, fasthttp.StatusForbidden, why, "")
			return
		}
		sess, ok := h.console.get(string(hdr.Cookie(ConsoleCookie)), now)
		if !ok {
			h.adminError(ctx, fasthttp.StatusUnauthorized, "not signed in", "")
			return
		}
		h.writeJSON(ctx, fasthttp.StatusOK, consoleSessionJSON{Name: sess.name, CSRF: sess.csrf, Expires: sess.expires().UTC()})
	case "DELETE":
		name, why := h.sessionAuth(hdr)
		if name == "" {
			h.met.authFail.Add(1)
			if why == "" {
				why = "not signed in"
				h.adminError(ctx, fasthttp.StatusUnauthorized, why, "")
				return
			}
			h.adminError(ctx, fasthttp.StatusForbidden, why, "")
			return
		}
		h.console.remove(string(hdr.Cookie(ConsoleCookie)))
		h.setSessionCookie(ctx, "", true)
		h.log.Info().Str("who", name).Str("remote", ctx.RemoteIP().String()).Msg("console sign-out")
		h.writeJSON(ctx, fasthttp.StatusOK, struct {
			SignedOut bool `json:"signed_out"`
		}{true})
	default:
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, POST, DELETE")
		h.adminError(ctx, fasthttp.StatusMethodNotAllowed, string(ctx.Method())+" not allowed here; use GET, POST, DELETE", "")
	}
}

// setSessionCookie sets (or, with clear, deletes) the session cookie:
// HttpOnly so no script reads it, SameSite=Strict so no other site's page
// sends it, Secure when the request came over TLS or through a TLS proxy
// (X-Forwarded-Proto: https). It carries no expiry: the
// session's expiry is kept on the server.
func (h *API) setSessionCookie(ctx *fasthttp.RequestCtx, id string, clear bool) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(ConsoleCookie)
	c.SetValue(id)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	// Behind a TLS reverse proxy the browser speaks HTTPS. A client that
	// claims it falsely only gets a cookie its browser will not send back
	// over plain HTTP.
	c.SetSecure(ctx.IsTLS() || strings.EqualFold(string(ctx.Request.Header.Peek("X-Forwarded-Proto")), "https"))
	if clear {
		c.SetExpire(fasthttp.CookieExpireDelete)
	}
	ctx.Response.Header.SetCookie(c)
}
