package query

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// startLimitedRPC serves the TCP JSON-RPC listener on a free loopback port
// behind the connection limits lim.
func startLimitedRPC(t *testing.T, e *env, lim ConnLimits) (string, *Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := e.h.Limit(raw, ListenerRPC, lim)
	s := e.h.NewRPCServer()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return raw.Addr().String(), ln
}

// dialFrom connects from a chosen loopback address (127.0.0.0/8 is all
// local on Linux), so one test can play several hosts.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// flood opens n connections from src that never send a byte, and waits
// until the listener has taken them all in (admitted or refused).
func flood(t *testing.T, ln *Listener, src, addr string, n int) {
	t.Helper()
	m := ln.met
	before := m.accepted.Load() + m.refused.Load()
	for i := 0; i < n; i++ {
		dialFrom(t, src, addr)
	}
	waitFor(t, func() bool { return m.accepted.Load()+m.refused.Load() >= before+uint64(n) })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// netstringCheck sends one check on c and returns the verdict's reason,
// failing the test if no reply comes.
func netstringCheck(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	if _, err := c.Write([]byte(netstring(checkReq(7, "+5355512345", "")))); err != nil {
		t.Fatalf("writing a check: %v", err)
	}
	_, reason, code := rpcResult(t, readNetstringReply(t, br))
	if code != 0 {
		t.Fatalf("check answered with error %v", code)
	}
	return reason
}

func limits(max, reserve, perSource int, trusted ...string) ConnLimits {
	l := ConnLimits{Max: max, Reserve: reserve, PerSource: perSource}
	for _, p := range trusted {
		l.Trusted = append(l.Trusted, netip.MustParsePrefix(p))
	}
	return l
}

// TestConnFloodSameSource: far more idle connections than the cap, from
// the proxy's own address; the oldest idle ones are closed to make room,
// so a new check is answered and the listener never holds more than Max.
func TestConnFloodSameSource(t *testing.T) {
	e := newEnv(t)
	addr, ln := startLimitedRPC(t, e, limits(8, 2, 3, "127.0.0.0/8"))
	flood(t, ln, "127.0.0.1", addr, 40)
	if open := ln.met.open.Load(); open > 8 {
		t.Errorf("%d connections open, cap 8", open)
	}
	c := dialFrom(t, "127.0.0.1", addr)
	if r := netstringCheck(t, c, bufio.NewReader(c)); r == "" {
		t.Error("no verdict")
	}
	if shed := ln.met.shed.Load(); shed < 32 {
		t.Errorf("shed %d idle connections, want at least 32", shed)
	}
	var m bytes.Buffer
	e.h.WriteConnMetrics(&m)
	contains(t, "metrics", m.Bytes(), `tollgate_connections_shed_total{listener="rpc"}`, `tollgate_connections{listener="rpc"}`)
}

// TestConnFloodKeepsProxies: hosts outside the proxy set flood the
// listener (one host with many connections, then many hosts); a proxy's
// connection opened before the flood keeps working and a new proxy
// connection gets in: the flood is capped per source and cannot take the
// reserve or displace a proxy.
func TestConnFloodKeepsProxies(t *testing.T) {
	e := newEnv(t)
	addr, ln := startLimitedRPC(t, e, limits(10, 4, 3, "127.0.0.1/32"))
	proxy := dialFrom(t, "127.0.0.1", addr)
	pbr := bufio.NewReader(proxy)
	netstringCheck(t, proxy, pbr)
	flood(t, ln, "127.0.0.2", addr, 30) // one host: at most 3
	ln.mu.Lock()
	n2 := ln.src[netip.MustParseAddr("127.0.0.2")].n
	ln.mu.Unlock()
	if n2 > 3 {
		t.Errorf("one untrusted host holds %d connections, cap 3", n2)
	}
	for i := 3; i < 12; i++ { // many hosts: at most Max-Reserve in all
		flood(t, ln, "127.0.0."+Itoa(i), addr, 3)
	}
	ln.mu.Lock()
	untrusted := ln.untrusted
	ln.mu.Unlock()
	if untrusted > 6 {
		t.Errorf("untrusted hosts hold %d connections, cap 10-4", untrusted)
	}
	netstringCheck(t, proxy, pbr) // the proxy's idle connection survived
	for i := 0; i < 3; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		netstringCheck(t, c, bufio.NewReader(c))
	}
}

// TestConnFloodFairAmongProxies: one proxy address floods; another proxy's
// idle connection is not the one given up, since the flooding source holds
// the most.
func TestConnFloodFairAmongProxies(t *testing.T) {
	e := newEnv(t)
	addr, ln := startLimitedRPC(t, e, limits(6, 1, 6, "127.0.0.0/8"))
	b := dialFrom(t, "127.0.0.20", addr)
	bbr := bufio.NewReader(b)
	netstringCheck(t, b, bbr)
	flood(t, ln, "127.0.0.1", addr, 50)
	netstringCheck(t, b, bbr)
}

// TestConnFloodSparesRequestInProgress: a connection whose request has
// started (some bytes sent, no reply yet) is never the one displaced.
func TestConnFloodSparesRequestInProgress(t *testing.T) {
	e := newEnv(t)
	addr, ln := startLimitedRPC(t, e, limits(4, 1, 4, "127.0.0.0/8"))
	c := dialFrom(t, "127.0.0.1", addr)
	req := netstring(checkReq(1, "+5355512345", ""))
	c.Write([]byte(req[:10]))
	waitFor(t, func() bool {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		src := ln.src[netip.MustParseAddr("127.0.0.1")]
		if src == nil {
			return false // not accepted yet
		}
		for c := src.head; c != nil; c = c.next {
			if c.busy.Load() {
				return true
			}
		}
		return false
	})
	flood(t, ln, "127.0.0.1", addr, 20)
	c.Write([]byte(req[10:]))
	br := bufio.NewReader(c)
	if _, reason, _ := rpcResult(t, readNetstringReply(t, br)); reason == "" {
		t.Error("no verdict for the request in progress")
	}
}

// TestConnLimitHTTP: the query listener (fasthttp) behind the limits keeps
// answering /v1/check over a new connection after an idle flood.
func TestConnLimitHTTP(t *testing.T) {
	e := newEnv(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := e.h.Limit(raw, ListenerQuery, limits(8, 2, 3, "127.0.0.0/8"))
	qs := e.h.HTTPServer(e.h.query)
	go qs.Serve(ln)
	t.Cleanup(func() { qs.Shutdown() })
	addr := raw.Addr().String()
	// keep-alive connections that made one request and went idle
	for i := 0; i < 20; i++ {
		c := dialFrom(t, "127.0.0.1", addr)
		c.Write([]byte("GET /v1/check?to=%2B14155550123 HTTP/1.1\r\nHost: x\r\n\r\n"))
		br := bufio.NewReader(c)
		if l, err := br.ReadString('\n'); err != nil || !strings.Contains(l, "200") {
			t.Fatalf("check %d: %q %v", i, l, err)
		}
	}
	flood(t, ln, "127.0.0.1", addr, 30)
	c := dialFrom(t, "127.0.0.1", addr)
	c.Write([]byte("GET /v1/check?to=%2B5355512345 HTTP/1.1\r\nHost: x\r\n\r\n"))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(l, "HTTP/1.1 ") {
		t.Fatalf("check after the flood: %q %v", l, err)
	}
	if open := ln.met.open.Load(); open > 8 {
		t.Errorf("%d connections open, cap 8", open)
	}
}

// TestConnSlowlorisOutsideProxies: connections that send a byte and stall
// (a request in progress, never displaced) from hosts outside the proxy
// set fill at most the unreserved part; the rest are refused, and a proxy
// still gets in and is answered.
func TestConnSlowlorisOutsideProxies(t *testing.T) {
	e := newEnv(t)
	addr, ln := startLimitedRPC(t, e, limits(8, 2, 8, "127.0.0.1/32"))
	m := ln.met
	src := netip.MustParseAddr("127.0.0.2")
	allBusy := func() bool { // every open connection of src has its byte read
		ln.mu.Lock()
		defer ln.mu.Unlock()
		s := ln.src[src]
		if s == nil {
			return true
		}
		for c := s.head; c != nil; c = c.next {
			if !c.busy.Load() {
				return false
			}
		}
		return true
	}
	for i := 0; i < 20; i++ {
		c := dialFrom(t, "127.0.0.2", addr)
		c.Write([]byte("9"))
		waitFor(t, func() bool { return m.accepted.Load()+m.refused.Load() >= uint64(i+1) && allBusy() })
	}
	if m.refused.Load() < 14 {
		t.Errorf("refused %d of 20 stalled connections, want at least 14 (6 fit)", m.refused.Load())
	}
	c := dialFrom(t, "127.0.0.1", addr)
	netstringCheck(t, c, bufio.NewReader(c))
}

// TestConnLimitsClone: every field survives Clone and no reference-typed
// field shares memory with the original.
func TestConnLimitsClone(t *testing.T) {
	l := limits(10, 2, 3, "127.0.0.0/8", "10.0.0.0/8")
	c := l.Clone()
	if !reflect.DeepEqual(l, c) {
		t.Fatalf("Clone changed the value: %+v -> %+v", l, c)
	}
	v, w := reflect.ValueOf(l), reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			if !f.IsNil() && (f.Kind() != reflect.Slice || f.Len() > 0) && f.UnsafePointer() == w.Field(i).UnsafePointer() {
				t.Errorf("field %s shares memory", v.Type().Field(i).Name)
			}
		case reflect.Int, reflect.Bool, reflect.String:
		default:
			t.Errorf("field %s (%s): teach Clone and this test about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	c.Trusted[0] = netip.MustParsePrefix("192.0.2.0/24")
	if l.Trusted[0].String() != "127.0.0.0/8" {
		t.Error("changing the clone changed the original")
	}
}
