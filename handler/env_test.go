package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/origin/geotest"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

const testToken = "s3cret-token-for-tests"

// env is a complete sidecar in memory: a store in a temp dir, the service,
// and both HTTP servers on fasthttp in-memory listeners.
type env struct {
	t      *testing.T
	dir    string
	st     *store.Store
	m      *matcher.Matcher
	svc    *service.Service
	h      *Handler
	logs   *bytes.Buffer
	query  *fasthttp.Client
	admin  *fasthttp.Client
	qln    *fasthttputil.InmemoryListener
	aln    *fasthttputil.InmemoryListener
	hrFile string
	vel    *velocity.Engine
	alerts *alert.Dispatcher
	clk    *testClock
	orig   *origin.Checker
	geo    *origin.GeoIP
}

// geoNets is the Geo-IP database of handler tests (useGeo): 127.2/16 and
// 2001:db8::/32 are in the US, 81.2.69/24 in GB.
var geoNets = []geotest.Net{{CIDR: "127.2.0.0/16", Country: "US"}, {CIDR: "2001:db8::/32", Country: "US"}, {CIDR: "81.2.69.0/24", Country: "GB"}}

// useGeo puts the test database in force.
func (e *env) useGeo() {
	e.t.Helper()
	if err := geotest.Write(e.geo.Path(), geoNets...); err != nil {
		e.t.Fatal(err)
	}
	if err := e.geo.Reload(); err != nil {
		e.t.Fatal(err)
	}
}

// testClock is the velocity engine's injected time in handler tests.
type testClock struct {
	mu chan struct{}
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{mu: make(chan struct{}, 1), t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu <- struct{}{}
	defer func() { <-c.mu }()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu <- struct{}{}
	c.t = c.t.Add(d)
	<-c.mu
}

var plan = numplan.Default()

type envOpt func(*service.Options, *Options)

func withEventTokens(tokens ...string) envOpt {
	return func(_ *service.Options, o *Options) {
		for i, t := range tokens {
			o.EventTokens = append(o.EventTokens, Token{Name: fmt.Sprintf("proxy%d", i+1), Secret: t})
		}
	}
}

func withHighRiskFile(path string) envOpt {
	return func(o *service.Options, _ *Options) { o.HighRiskFile = path }
}

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), logs: &bytes.Buffer{}}
	st, err := store.Open(e.dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	log := zerolog.New(syncWriter{e.logs})
	so := service.Options{Logger: log}
	ho := Options{Logger: log, Tokens: []Token{{Name: "ops", Secret: testToken}, {Name: "ci", Secret: "another-token-0123456789"}}}
	for _, o := range opts {
		o(&so, &ho)
	}
	e.hrFile = so.HighRiskFile
	e.clk = newTestClock()
	alerts, err := alert.New(alert.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.alerts = alerts
	e.vel = velocity.New(velocity.Options{
		Now:      e.clk.Now,
		Notifier: alerts,
		Resolve: func(account, sub, to string) string {
			e164, _ := e.m.Destination(&matcher.Query{To: to, Account: account, Subaccount: sub})
			return e164
		},
		Price:    func(e164 string) (int64, bool) { return e.m.Snapshot().Rate(e164) },
		Currency: func() string { return e.m.Snapshot().Currency() },
	})
	so.Velocity = e.vel
	// No database until a test writes one (e.useGeo): every origin unknown.
	e.geo = origin.NewGeoIP(filepath.Join(e.dir, "geo.mmdb"))
	e.orig = origin.NewChecker(e.geo, origin.NewState(origin.StateOptions{Now: e.clk.Now, CodeIterations: 1000}))
	so.Origin = e.orig
	e.m = matcher.New(plan, matcher.Options{Velocity: e.vel, Origin: e.orig})
	e.svc = service.New(e.m, plan, st, so)
	if err := e.svc.Load(); err != nil {
		t.Fatal(err)
	}
	ho.Velocity, ho.Alerts = e.vel, e.alerts
	if ho.Now == nil {
		ho.Now = e.clk.Now
	}
	e.h = New(e.m, e.svc, ho)
	e.qln, e.aln = fasthttputil.NewInmemoryListener(), fasthttputil.NewInmemoryListener()
	qs, as := e.h.QueryServer(), e.h.AdminServer()
	go qs.Serve(e.qln)
	go as.Serve(e.aln)
	e.query = &fasthttp.Client{Dial: func(string) (net.Conn, error) { return e.qln.Dial() }, MaxResponseBodySize: 64 << 20}
	e.admin = &fasthttp.Client{Dial: func(string) (net.Conn, error) { return e.aln.Dial() }, MaxResponseBodySize: 64 << 20}
	t.Cleanup(func() {
		qs.Shutdown()
		as.Shutdown()
		st.Close()
	})
	return e
}

// syncWriter keeps the log buffer safe for the servers' goroutines.
type syncWriter struct{ b *bytes.Buffer }

var logMu = make(chan struct{}, 1)

func (w syncWriter) Write(p []byte) (int, error) {
	logMu <- struct{}{}
	defer func() { <-logMu }()
	return w.b.Write(p)
}

func (e *env) logText() string {
	logMu <- struct{}{}
	defer func() { <-logMu }()
	return e.logs.String()
}

type resp struct {
	status int
	body   []byte
	hdr    map[string]string
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func do(t *testing.T, c *fasthttp.Client, method, uri, token string, body []byte) resp {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return doAuth(t, c, method, uri, auth, body)
}

// doRawAuth sends an admin request with the Authorization header as given.
func doRawAuth(t *testing.T, e *env, method, uri, auth string) resp {
	t.Helper()
	return doAuth(t, e.admin, method, uri, auth, nil)
}

func doAuth(t *testing.T, c *fasthttp.Client, method, uri, auth string, body []byte) resp {
	t.Helper()
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://tollgate" + uri)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.SetBody(body)
	}
	if err := c.DoTimeout(req, res, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	r := resp{status: res.StatusCode(), body: append([]byte(nil), res.Body()...), hdr: map[string]string{}}
	for k, v := range res.Header.All() {
		r.hdr[string(k)] = string(v)
	}
	return r
}

func (e *env) q(method, uri string, body string) resp {
	e.t.Helper()
	var b []byte
	if body != "" || method == "POST" {
		b = []byte(body)
	}
	return do(e.t, e.query, method, uri, "", b)
}

func (e *env) a(method, uri string, body string) resp {
	e.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return do(e.t, e.admin, method, uri, testToken, b)
}

// mustA is an admin call that must answer 200.
func (e *env) mustA(method, uri, body string) resp {
	e.t.Helper()
	r := e.a(method, uri, body)
	if r.status != 200 {
		e.t.Fatalf("%s %s: %d %s", method, uri, r.status, r.body)
	}
	return r
}

// verdict asks /v1/check and returns the status and the reason.
func (e *env) verdict(args string) (int, string) {
	e.t.Helper()
	r := e.q("GET", "/v1/check?"+args, "")
	m := r.json(e.t)
	reason, _ := m["reason"].(string)
	return r.status, reason
}

const acmeJSON = `{"home_country":"US","countries":{"default":"deny","except":["US","CA"]},"high_risk":"block",` +
	`"allow_prefixes":["+4420"],"block_prefixes":["+4470"],"max_channels":160,"max_cps":20}`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func contains(t *testing.T, what string, got []byte, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(got), w) {
			t.Errorf("%s: %q does not contain %q", what, got, w)
		}
	}
}

type serviceOptions = service.Options

func newBareMatcher() *matcher.Matcher { return matcher.New(plan, matcher.Options{}) }

// newCtx builds a RequestCtx for calling a handler directly.
func newCtx(method, uri string, body []byte) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	if body != nil {
		ctx.Request.SetBody(body)
	}
	return ctx
}

func itoa(n int) string { return strconv.Itoa(n) }
