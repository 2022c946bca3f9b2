package query

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/valyala/fasthttp"
)

// benchHandler is a query handler over a realistic snapshot: the shipped
// high-risk list and an account with country rules and prefix lists.
func benchHandler(b *testing.B) *Server {
	b.Helper()
	hr, err := matcher.DefaultHighRisk()
	if err != nil {
		b.Fatal(err)
	}
	us, deny := "US", policy.Deny
	allow := []string{"+4420"}
	block := []string{"+4470"}
	mc := 160
	set := &policy.Set{
		Accounts: map[string]policy.Account{"acme": {Policy: policy.Policy{
			HomeCountry: &us, Countries: &policy.CountryRule{Default: deny, Except: []string{"US", "CA"}},
			AllowPrefixes: &allow, BlockPrefixes: &block, MaxChannels: &mc,
		}}},
		HighRisk: hr,
	}
	snap, err := matcher.Compile(set, plan)
	if err != nil {
		b.Fatal(err)
	}
	m := matcher.New(plan, matcher.Options{})
	m.Swap(snap)
	// A real logger writing to io.Discard, so rejected calls pay for their
	// log line as in production.
	return New(m, Options{Logger: zerolog.New(io.Discard)})
}

func benchCtx(b *testing.B, h *Server, method string, uri, body []byte) {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod(method)
	b.ReportAllocs()
	b.SetBytes(int64(len(uri) + len(body)))
	for b.Loop() {
		// A fresh URI each time, so the query string is parsed again as
		// for a new request.
		ctx.Request.SetRequestURIBytes(uri)
		if body != nil {
			ctx.Request.SetBodyRaw(body)
		}
		ctx.Response.Reset()
		h.query(ctx)
	}
	if ctx.Response.StatusCode() >= 400 && ctx.Response.StatusCode() != 403 {
		b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// BenchmarkCheckGETCompact is BenchmarkCheckGET answered in the compact
// format (format=compact).
func BenchmarkCheckGETCompact(b *testing.B) {
	h := benchHandler(b)
	benchCtx(b, h, "GET", []byte("/v1/check?to=%2B14155550123&account=acme&src_ip=203.0.113.7&call_id=a84b4c76e66710%40pc33.example.com&format=compact"), nil)
}

// BenchmarkCheckGET is the hot path: GET /v1/check decoded, decided and
// encoded on a reused RequestCtx, as fasthttp's server reuses them.
func BenchmarkCheckGET(b *testing.B) {
	benchCtx(b, benchHandler(b), "GET", []byte("/v1/check?to=%2B14155550123&account=acme&call_id=a84b4c76e66710%40pc33.example.com&src_ip=192.0.2.10"), nil)
}

// BenchmarkCheckGETReject is a rejected call: the same plus its log line
// (zerolog encodes it without allocating; here it goes to io.Discard).
func BenchmarkCheckGETReject(b *testing.B) {
	benchCtx(b, benchHandler(b), "GET", []byte("/v1/check?to=%2B5355512345&account=acme"), nil)
}

// BenchmarkCheckGETRejectSampled is the same flood with tollgate's default
// log sampling: after the burst the line is counted, not written.
func BenchmarkCheckGETRejectSampled(b *testing.B) {
	h := benchHandler(b)
	h.sampler = newLogSampler(DefaultLogBurst, DefaultLogInterval, nil)
	benchCtx(b, h, "GET", []byte("/v1/check?to=%2B5355512345&account=acme"), nil)
}

// BenchmarkCheckPOST is POST /v1/check with a JSON body.
func BenchmarkCheckPOST(b *testing.B) {
	benchCtx(b, benchHandler(b), "POST", []byte("/v1/check"),
		[]byte(`{"to":"+14155550123","account":"acme","call_id":"a84b4c76e66710@pc33.example.com","src_ip":"192.0.2.10"}`))
}

// BenchmarkCheckPOSTEscaped has JSON escapes, decoded into a pooled buffer.
func BenchmarkCheckPOSTEscaped(b *testing.B) {
	benchCtx(b, benchHandler(b), "POST", []byte("/v1/check"), []byte(`{"to":"\u002b14155550123","account":"acme"}`))
}

// BenchmarkCheckGETSrcIP6Port is BenchmarkCheckGET with the source address
// as "[v6]:port", the longest form src_ip validation reads.
func BenchmarkCheckGETSrcIP6Port(b *testing.B) {
	benchCtx(b, benchHandler(b), "GET", []byte("/v1/check?to=%2B14155550123&account=acme&call_id=a84b4c76e66710%40pc33.example.com&src_ip=%5B2001%3Adb8%3A%3A10%5D%3A5060"), nil)
}

// BenchmarkRPCHTTP is JSON-RPC over HTTP.
func BenchmarkRPCHTTP(b *testing.B) {
	benchCtx(b, benchHandler(b), "POST", []byte("/rpc"),
		[]byte(`{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","account":"acme"},"id":42}`))
}

// BenchmarkRPCNetstring is one netstring request through the TCP path's
// reader and encoder (no socket: the frame is read from memory).
func BenchmarkRPCNetstring(b *testing.B) {
	h := benchHandler(b)
	payload := `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","account":"acme"},"id":42}`
	frame := []byte(netstring(payload))
	src := &repeatReader{data: frame}
	br := bufio.NewReader(src)
	var in, out []byte
	var sc scratch
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		p, err := ReadNetstring(br, &in)
		if err != nil {
			b.Fatal(err)
		}
		out, _ = h.rpc(out[:0], p, tNetstring, &sc)
	}
}

// query is what handler.Handler.Query does on the query listener: these
// endpoints, and 404 for what is not one of them.
func (h *Server) query(ctx *fasthttp.RequestCtx) {
	if !h.Serve(ctx) {
		JSONError(ctx, fasthttp.StatusNotFound, "no such endpoint")
	}
}

// repeatReader yields data over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// BenchmarkServeGET runs fasthttp's whole server loop (request parsing,
// keep-alive, response writing) over a connection that delivers b.N
// pipelined GETs from memory: what one keep-alive connection from a proxy
// costs per request, without the kernel.
func BenchmarkServeGET(b *testing.B) {
	h := benchHandler(b)
	s := h.HTTPServer(h.query)
	req := []byte("GET /v1/check?to=%2B14155550123&account=acme HTTP/1.1\r\nHost: tollgate\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	c := &memConn{r: &limitedRepeat{data: req, left: b.N * len(req)}}
	if err := s.ServeConn(c); err != nil && err != io.EOF {
		b.Fatal(err)
	}
}

// BenchmarkServeGETLimited is BenchmarkServeGET over a connection admitted
// by the connection limiter: its Read and idle marking cost no allocation.
func BenchmarkServeGETLimited(b *testing.B) {
	h := benchHandler(b)
	s := h.HTTPServer(h.query)
	l := h.Limit(nil, ListenerQuery, DefaultConnLimits(100))
	req := []byte("GET /v1/check?to=%2B14155550123&account=acme HTTP/1.1\r\nHost: tollgate\r\n\r\n")
	lc := l.admit(&memConn{r: &limitedRepeat{data: req, left: b.N * len(req)}})
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.ServeConn(lc); err != nil && err != io.EOF {
		b.Fatal(err)
	}
}

type limitedRepeat struct {
	data []byte
	off  int
	left int
}

func (r *limitedRepeat) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+r.left)], r.data[r.off:])
		n += c
		r.left -= c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// memConn is a net.Conn reading from r and discarding writes.
type memConn struct{ r io.Reader }

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// TestCheckAllocs pins the zero-allocation promise in the ordinary test run
// (benchmarks are not run by `make test`).
func TestCheckAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a build without -race")
	}
	h := benchHandler(&testing.B{})
	for _, tc := range []struct {
		name, method, uri, body string
	}{
		{"GET", "GET", "/v1/check?to=%2B14155550123&account=acme&call_id=x%40y", ""},
		{"GET reject", "GET", "/v1/check?to=%2B5355512345&account=acme", ""},
		{"GET invalid number", "GET", "/v1/check?to=0800-CALL-NOW-PLEASE-0123456789&account=acme", ""},
		{"GET national", "GET", "/v1/check?to=4155550123&account=acme", ""},
		{"POST", "POST", "/v1/check", `{"to":"+14155550123","account":"acme"}`},
		{"POST escaped", "POST", "/v1/check", `{"to":"\u002b14155550123","account":"acme"}`},
		{"RPC", "POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`},
		{"GET malformed", "GET", "/v1/check?account=acme", ""},
		{"GET compact", "GET", "/v1/check?to=%2B14155550123&account=acme&format=compact", ""},
		{"GET compact reject", "GET", "/v1/check?to=%2B5355512345&account=acme&format=compact", ""},
		{"RPC compact", "POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","format":"compact"},"id":1}`},
	} {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod(tc.method)
		uri, body := []byte(tc.uri), []byte(tc.body)
		run := func() {
			ctx.Request.SetRequestURIBytes(uri)
			if tc.body != "" {
				ctx.Request.SetBodyRaw(body)
			}
			ctx.Response.Reset()
			h.query(ctx)
		}
		run()
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %.1f allocations per request, want 0", tc.name, n)
		}
	}
}

var plan = numplan.Default()

func netstring(s string) string { return strconv.Itoa(len(s)) + ":" + s + "," }
