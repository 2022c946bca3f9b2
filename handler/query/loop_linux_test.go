//go:build linux

package query

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// loopPair serves h twice: by the fasthttp query server alone (fast) and
// by the epoll loop with that server as its fallback (loop).
type loopPair struct {
	fast, loop string
	l          *Loop
	loopDone   chan error
}

func startLoopPair(t *testing.T, h *Server, lim ConnLimits) *loopPair {
	t.Helper()
	handle := func(ctx *fasthttp.RequestCtx) {
		if !h.Serve(ctx) {
			JSONError(ctx, fasthttp.StatusNotFound, "no such endpoint")
		}
	}
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := h.HTTPServer(handle)
	go fs.Serve(fln)
	t.Cleanup(func() { fs.Shutdown() })

	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	qs := h.HTTPServer(handle)
	l, err := h.NewLoop(h.Limit(lln, ListenerQuery, lim), LoopConfig{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	go qs.Serve(l.Fallback())
	p := &loopPair{fast: fln.Addr().String(), loop: lln.Addr().String(), l: l, loopDone: make(chan error, 1)}
	go func() { p.loopDone <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
		qs.ShutdownWithContext(ctx)
	})
	return p
}

// exchange writes req (in pieces of step bytes, 0: at once), half-closes
// and reads everything the server sends until it closes.
func exchange(t *testing.T, addr, req string, step int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if step <= 0 {
		step = len(req)
	}
	for i := 0; i < len(req); i += step {
		if _, err := io.WriteString(c, req[i:min(i+step, len(req))]); err != nil {
			break // the server may close early (Connection: close)
		}
		if step < len(req) {
			time.Sleep(time.Millisecond) // separate reads, not a timing assertion
		}
	}
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	return string(out)
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n"
}

func postReq(path, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// TestLoopWireMatchesFasthttp sends the same bytes to the fasthttp query
// server and to the epoll loop and wants the same bytes back: the loop's
// own answers, and those it hands to fasthttp.
func TestLoopWireMatchesFasthttp(t *testing.T) {
	h := benchHandler(&testing.B{})
	p := startLoopPair(t, h, DefaultConnLimits(64))
	allow := "/v1/check?to=%2B14155550123&account=acme"
	reject := "/v1/check?to=%2B5355512345&account=acme"
	big := strings.Repeat("x", MaxCheckBody+10)
	for _, tc := range []struct{ name, req string }{
		{"get allow", get(allow)},
		{"get reject", get(reject)},
		{"get no to", get("/v1/check?account=acme")},
		{"get no query", get("/v1/check")},
		{"get two to", get("/v1/check?to=1&to=2")},
		{"get plus as space", get("/v1/check?to=+14155550123&account=acme")},
		{"get bad name", get("/v1/check?to=%2B14155550123&account=a%20b")},
		{"post allow", postReq("/v1/check", `{"to":"+14155550123","account":"acme"}`)},
		{"get compact", get(allow + "&format=compact")},
		{"get compact reject", get(reject + "&format=compact")},
		{"get bad format", get(allow + "&format=xml")},
		{"post compact", postReq("/v1/check", `{"to":"+14155550123","account":"acme","format":"compact"}`)},
		{"rpc compact", postReq("/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","format":"compact"},"id":1}`)},
		{"post bad json", postReq("/v1/check", `{"to":`)},
		{"post over check limit", postReq("/v1/check", `{"to":"+1","x":"`+big+`"}`)},
		{"rpc", postReq("/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`)},
		{"rpc notification", postReq("/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"}}`)},
		{"rpc batch", postReq("/rpc", `[{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1},{"jsonrpc":"2.0","method":"nope","id":2}]`)},
		{"rpc garbage", postReq("/rpc", `xyz`)},
		{"pipelined", get(allow) + get(reject) + postReq("/v1/check", `{"to":"+14155550123"}`) + get(allow)},
		{"pipelined with handover", get(allow) + get("/health") + get(reject)},
		{"pipelined with 404", get(allow) + get("/nope") + get(allow)},
		{"http/1.0", "GET " + allow + " HTTP/1.0\r\n\r\n" + get(allow)},
		{"http/1.0 keep-alive", "GET " + allow + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get(reject)},
		{"connection close", "GET " + allow + " HTTP/1.1\r\nConnection: close\r\n\r\n" + get(reject)},
		{"connection Close", "GET " + allow + " HTTP/1.1\r\nCONNECTION: Close\r\n\r\n"},
		{"lower-case headers", "POST /v1/check HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}"},
		{"head", "HEAD " + allow + " HTTP/1.1\r\n\r\n"},
		{"put", "PUT /v1/check HTTP/1.1\r\nContent-Length: 0\r\n\r\n"},
		{"get rpc", get("/rpc")},
		{"events", postReq("/v1/events", `{}`)},
		{"chunked", "POST /v1/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"to\r\n14\r\n\":\"+14155550123\"}  \r\n0\r\n\r\n"},
		{"expect", "POST /v1/check HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}"},
		{"bare lf", "GET " + allow + " HTTP/1.1\nHost: t\n\n"},
		{"folded header", "GET " + allow + " HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"two lengths", "POST /v1/check HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"},
		{"get with body", "GET " + allow + " HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}" + get(allow)},
		{"absolute uri", "GET http://t" + allow + " HTTP/1.1\r\n\r\n"},
		{"escaped path", get("/v1/%63heck?to=%2B14155550123")},
		{"dot path", get("/v1/./check?to=%2B14155550123")},
		{"fragment", get(allow + "#x")},
		{"header too large", "GET " + allow + " HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n"},
		{"body too large", "POST /rpc HTTP/1.1\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("a", 70000)},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
		{"garbage", "\x00\x01\x02 hello\r\n\r\n"},
		{"partial", "GET " + allow + " HTTP/1.1\r\nHo"},
	} {
		want := exchange(t, p.fast, tc.req, 0)
		got := exchange(t, p.loop, tc.req, 0)
		if got != want {
			t.Errorf("%s: the loop answers\n%q\nfasthttp\n%q", tc.name, got, want)
		}
		if tc.name == "pipelined" || tc.name == "pipelined with handover" || tc.name == "rpc" || tc.name == "get compact" {
			if got := exchange(t, p.loop, tc.req, 7); got != want {
				t.Errorf("%s, 7 bytes at a time: the loop answers\n%q\nfasthttp\n%q", tc.name, got, want)
			}
		}
	}
}

// TestLoopConnLimits: the loop's connections obey the listener's limits:
// a source at its cap has its least recently active idle connection
// displaced by a new one, which is served.
func TestLoopConnLimits(t *testing.T) {
	h := benchHandler(&testing.B{})
	lim := ConnLimits{Max: 8, PerSource: 2, Reserve: 1, Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	p := startLoopPair(t, h, lim)
	req := get("/v1/check?to=%2B14155550123&account=acme")
	dial := func() (net.Conn, any) {
		c, err := net.Dial("tcp", p.loop)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, nil
	}
	ask := func(c net.Conn) {
		t.Helper()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		var buf [4096]byte
		n, err := c.Read(buf[:])
		if err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 OK")) {
			t.Fatalf("answer %q, %v", buf[:n], err)
		}
	}
	a, _ := dial()
	ask(a)
	b, _ := dial()
	ask(b)
	c, _ := dial()
	ask(c)
	if got := h.met.conns[ListenerQuery].shed.Load(); got != 1 {
		t.Fatalf("shed %d, want 1", got)
	}
	// one of a and b was closed to make room; the other still answers
	served := 0
	for _, x := range []net.Conn{a, b} {
		io.WriteString(x, req)
		var buf [4096]byte
		if n, err := x.Read(buf[:]); err == nil && bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 OK")) {
			served++
		}
	}
	if served != 1 {
		t.Fatalf("%d of the first two connections still served, want 1", served)
	}
	ask(c)
}

// TestLoopShutdown: Shutdown closes idle connections, answers a request in
// flight with Connection: close, and Serve returns nil.
func TestLoopShutdown(t *testing.T) {
	h := benchHandler(&testing.B{})
	p := startLoopPair(t, h, DefaultConnLimits(64))
	idle, err := net.Dial("tcp", p.loop)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, get("/v1/check?to=%2B14155550123"))
	var buf [4096]byte
	if _, err := idle.Read(buf[:]); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Dial("tcp", p.loop)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	half := get("/v1/check?to=%2B14155550123")
	io.WriteString(busy, half[:10])
	for p.l.open.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	for h.met.conns[ListenerQuery].open.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- p.l.Shutdown(context.Background()) }()
	if n, err := idle.Read(buf[:]); err != io.EOF {
		t.Fatalf("idle connection: %q, %v; want EOF", buf[:n], err)
	}
	io.WriteString(busy, half[10:])
	out, _ := io.ReadAll(busy)
	if !strings.Contains(string(out), "Connection: close\r\n") || !strings.HasPrefix(string(out), "HTTP/1.1 200") {
		t.Fatalf("request in flight answered %q", out)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-p.loopDone; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestLoopAnswerAllocs: the loop's answer to a check allocates nothing.
func TestLoopAnswerAllocs(t *testing.T) {
	h := benchHandler(&testing.B{})
	var args []byte
	var body, out []byte
	get := httpReq{route: routeCheckGet, query: []byte("to=%2B14155550123&account=acme")}
	post := httpReq{route: routeCheckPost, body: []byte(`{"to":"+14155550123","account":"acme"}`)}
	rej := httpReq{route: routeCheckGet, query: []byte("to=%2B5355512345&account=acme")}
	rpc := httpReq{route: routeRPC, body: []byte(`{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`)}
	now := time.Now()
	for _, r := range []*httpReq{&get, &post, &rej, &rpc} {
		for range 3 {
			out = h.loopAnswer(out[:0], r, now, true, &args, &body)
		}
		if r == &rej {
			continue // a refused call writes its log line (zerolog: no allocation, but sampled state)
		}
		if n := testing.AllocsPerRun(100, func() { out = h.loopAnswer(out[:0], r, now, true, &args, &body) }); n != 0 {
			t.Errorf("route %d: %.1f allocations per answer", r.route, n)
		}
	}
}

// TestLoopBackpressure: thousands of pipelined checks, read while they are
// still being written, so the loop's answers outgrow the socket buffers and
// wait for EPOLLOUT; every answer arrives, in order, as fasthttp sends them.
func TestLoopBackpressure(t *testing.T) {
	h := benchHandler(&testing.B{})
	p := startLoopPair(t, h, DefaultConnLimits(64))
	var req strings.Builder
	const n = 5000
	for i := range n {
		if i%2 == 0 {
			req.WriteString(get("/v1/check?to=%2B14155550123&account=acme"))
		} else {
			req.WriteString(get("/v1/check?to=%2B5355512345&account=acme"))
		}
	}
	run := func(addr string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			io.WriteString(c, req.String())
			c.(*net.TCPConn).CloseWrite()
		}()
		out, _ := io.ReadAll(c)
		return string(out)
	}
	want, got := run(p.fast), run(p.loop)
	if k := strings.Count(got, "HTTP/1.1 "); k != n || got != want {
		t.Fatalf("the loop sent %d answers (%d bytes), fasthttp %d (%d bytes)", k, len(got), strings.Count(want, "HTTP/1.1 "), len(want))
	}
}

// TestDefaultLoops: the loops leave one P free (at least one loop), and
// NewLoop without a count takes DefaultLoops of GOMAXPROCS.
func TestDefaultLoops(t *testing.T) {
	for _, tc := range []struct{ procs, want int }{
		{1, 1}, {2, 1}, {3, 2}, {4, 3}, {8, 7}, {64, 63},
	} {
		if got := DefaultLoops(tc.procs); got != tc.want {
			t.Errorf("DefaultLoops(%d) = %d, want %d", tc.procs, got, tc.want)
		}
	}
	h := benchHandler(&testing.B{})
	for _, procs := range []int{1, 2, 4} {
		old := runtime.GOMAXPROCS(procs)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			runtime.GOMAXPROCS(old)
			t.Fatal(err)
		}
		l, err := h.NewLoop(h.Limit(ln, ListenerQuery, DefaultConnLimits(8)), LoopConfig{})
		runtime.GOMAXPROCS(old)
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		if got, want := len(l.loops), DefaultLoops(procs); got != want {
			t.Errorf("GOMAXPROCS %d: %d loops, want %d", procs, got, want)
		}
		for _, e := range l.loops {
			e.closeFDs()
		}
		ln.Close()
	}
}
