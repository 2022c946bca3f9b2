package handler

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/handler/query"
)

// startRPC serves the TCP JSON-RPC listener on a free loopback port.
func startRPC(t *testing.T, e *env) (string, *RPCServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	return ln.Addr().String(), s
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func netstring(s string) string { return strconv.Itoa(len(s)) + ":" + s + "," }

// readNetstringReply reads one netstring reply.
func readNetstringReply(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var buf []byte
	p, err := query.ReadNetstring(br, &buf)
	if err != nil {
		t.Fatalf("reading a netstring reply: %v", err)
	}
	return string(p)
}

func checkReq(id int, to, account string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"check","params":{"to":%q,"account":%q},"id":%d}`, to, account, id)
}

func rpcResult(t *testing.T, reply string) (id float64, reason string, code float64) {
	t.Helper()
	var r struct {
		ID     float64
		Result map[string]any
		Error  *struct{ Code float64 }
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	if r.Error != nil {
		return r.ID, "", r.Error.Code
	}
	return r.ID, r.Result["reason"].(string), 0
}

// Kamailio's janssonrpcc: netstrings, many requests on one connection,
// including one split across writes and two in one write.
func TestNetstringFraming(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	addr, _ := startRPC(t, e)
	c := dial(t, addr)
	br := bufio.NewReader(c)

	io.WriteString(c, netstring(checkReq(1, "+14155550123", "acme")))
	if id, reason, _ := rpcResult(t, readNetstringReply(t, br)); id != 1 || reason != "ok" {
		t.Fatalf("1: %v %s", id, reason)
	}
	// Split mid-length and mid-payload.
	ns := netstring(checkReq(2, "+5355512345", "acme"))
	for _, part := range []string{ns[:1], ns[1:5], ns[5:40], ns[40:]} {
		io.WriteString(c, part)
		time.Sleep(5 * time.Millisecond)
	}
	if id, reason, _ := rpcResult(t, readNetstringReply(t, br)); id != 2 || reason != "country_barred" {
		t.Fatalf("2: %v %s", id, reason)
	}
	// Two frames in one write, then a JSON-RPC error that keeps the
	// connection, then a notification (no reply), then a batch.
	io.WriteString(c, netstring(checkReq(3, "+447012345678", "acme"))+netstring(checkReq(4, "+442071234567", "acme"))+
		netstring(`{"jsonrpc":"2.0","method":"nope","id":5}`)+
		netstring(`{"jsonrpc":"2.0","method":"check","params":{"to":"1"}}`)+
		netstring(`[`+checkReq(6, "+14155550123", "")+`,`+checkReq(7, "+5355512345", "acme")+`]`))
	if id, reason, _ := rpcResult(t, readNetstringReply(t, br)); id != 3 || reason != "number_barred" {
		t.Fatalf("3: %v %s", id, reason)
	}
	if id, reason, _ := rpcResult(t, readNetstringReply(t, br)); id != 4 || reason != "ok" {
		t.Fatalf("4: %v %s", id, reason)
	}
	if id, _, code := rpcResult(t, readNetstringReply(t, br)); id != 5 || code != -32601 {
		t.Fatalf("5: %v %v", id, code)
	}
	batch := readNetstringReply(t, br)
	if !strings.HasPrefix(batch, `[{"jsonrpc":"2.0","result":{"verdict":"allow"`) || !strings.Contains(batch, `"reason":"country_barred"`) || !strings.HasSuffix(batch, `"id":7}]`) {
		t.Fatalf("batch reply %s", batch)
	}
	// A parse error inside a well-framed netstring is answered; the
	// connection stays usable.
	io.WriteString(c, netstring(`{"jsonrpc":`))
	if _, _, code := rpcResult(t, readNetstringReply(t, br)); code != -32700 {
		t.Fatalf("parse error code %v", code)
	}
	io.WriteString(c, netstring(checkReq(8, "+14155550123", "")))
	if id, _, _ := rpcResult(t, readNetstringReply(t, br)); id != 8 {
		t.Fatal("connection unusable after a JSON-RPC error")
	}
	met := e.q("GET", "/metrics", "").body
	contains(t, "metrics", met, `tollgate_decisions_total{transport="tcp_netstring",verdict="allow",reason="ok"} 4`,
		`tollgate_request_duration_seconds_count{transport="tcp_netstring"} 9`, "tollgate_tcp_connections 1")
}

// A broken frame cannot be resynchronised: the server answers a parse error
// in netstring framing and closes.
func TestNetstringBrokenFraming(t *testing.T) {
	e := newEnv(t)
	addr, _ := startRPC(t, e)
	for _, tc := range []struct{ name, send, msg string }{
		{"letter in length", "12x:", "expected a length"},
		{"length too long", "1234567890:", "expected a length"},
		{"no comma", "2:{}X", "not followed by ','"},
		{"over the limit", "70000:", "larger than 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, tc.send)
			br := bufio.NewReader(c)
			reply := readNetstringReply(t, br)
			if _, _, code := rpcResult(t, reply); code != -32700 || !strings.Contains(reply, tc.msg) {
				t.Fatalf("reply %s", reply)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("connection not closed: %v", err)
			}
		})
	}
}

// OpenSIPS's jsonrpc: one bare JSON object, one reply, then the server
// closes.
func TestBareJSONFraming(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	addr, _ := startRPC(t, e)
	cases := []struct {
		name  string
		parts []string
		check func(t *testing.T, reply string)
	}{
		{"one write", []string{checkReq(1, "+5355512345", "acme")}, func(t *testing.T, r string) {
			if id, reason, _ := rpcResult(t, r); id != 1 || reason != "country_barred" {
				t.Fatalf("%s", r)
			}
		}},
		{"split with braces in strings", []string{" \n{\"jsonrpc\":\"2.0\",\"method\":\"check\",", "\"params\":{\"to\":\"+14155550123\",\"call_id\":\"}{\\\"x\"},", "\"id\":2}"}, func(t *testing.T, r string) {
			if id, reason, _ := rpcResult(t, r); id != 2 || reason != "ok" {
				t.Fatalf("%s", r)
			}
		}},
		{"batch", []string{`[` + checkReq(3, "+14155550123", "") + `]`}, func(t *testing.T, r string) {
			if !strings.HasPrefix(r, `[{"jsonrpc":"2.0","result"`) {
				t.Fatalf("%s", r)
			}
		}},
		{"invalid params", []string{`{"jsonrpc":"2.0","method":"check","params":{},"id":4}`}, func(t *testing.T, r string) {
			if _, _, code := rpcResult(t, r); code != -32602 {
				t.Fatalf("%s", r)
			}
		}},
		{"not JSON", []string{`hello`}, func(t *testing.T, r string) {
			if _, _, code := rpcResult(t, r); code != -32700 {
				t.Fatalf("%s", r)
			}
		}},
		{"unbalanced then EOF", []string{`{"jsonrpc":"2.0"]`}, func(t *testing.T, r string) {
			if _, _, code := rpcResult(t, r); code != -32700 {
				t.Fatalf("%s", r)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			for _, p := range tc.parts {
				io.WriteString(c, p)
				time.Sleep(5 * time.Millisecond)
			}
			if tc.name == "unbalanced then EOF" {
				c.(*net.TCPConn).CloseWrite()
			}
			all, err := io.ReadAll(c) // the server closes after its reply
			if err != nil {
				t.Fatal(err)
			}
			reply := strings.TrimSuffix(string(all), "\n")
			if strings.Contains(reply, "\n") {
				t.Fatalf("more than one reply: %q", all)
			}
			tc.check(t, reply)
		})
	}
	// A notification gets no reply: the connection is just closed.
	c := dial(t, addr)
	io.WriteString(c, `{"jsonrpc":"2.0","method":"check","params":{"to":"1"}}`)
	if all, _ := io.ReadAll(c); len(all) != 0 {
		t.Fatalf("notification answered: %s", all)
	}
	// Over the size limit: refused, closed.
	c = dial(t, addr)
	go func() { io.WriteString(c, `{"x":"`+strings.Repeat("a", MaxRPCBody+10)+`"}`) }()
	all, _ := io.ReadAll(c)
	if _, _, code := rpcResult(t, strings.TrimSpace(string(all))); code != -32600 {
		t.Fatalf("oversized: %s", all)
	}
}

// Idle netstring connections are closed after the idle timeout; a frame
// that stalls half-way is cut after the frame timeout.
func TestRPCTimeouts(t *testing.T) {
	e := newEnv(t, func(_ *serviceOptions, o *Options) {
		o.RPCIdleTimeout = 200 * time.Millisecond
		o.RPCFrameTimeout = 200 * time.Millisecond
	})
	addr, _ := startRPC(t, e)
	c := dial(t, addr)
	io.WriteString(c, netstring(checkReq(1, "+14155550123", "")))
	br := bufio.NewReader(c)
	readNetstringReply(t, br)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle connection closed after %v", d)
	}
	c = dial(t, addr)
	io.WriteString(c, "50:{\"jsonrpc\"")
	if _, err := bufio.NewReader(c).ReadByte(); err != io.EOF {
		t.Fatalf("stalled frame: %v", err)
	}
}

// Shutdown closes idle connections at once and lets a request in flight
// finish.
func TestRPCShutdown(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := e.h.NewRPCServer()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	idle := dial(t, ln.Addr().String())
	io.WriteString(idle, netstring(checkReq(1, "+14155550123", "")))
	ibr := bufio.NewReader(idle)
	readNetstringReply(t, ibr)

	busy := dial(t, ln.Addr().String())
	req := netstring(checkReq(2, "+14155550123", ""))
	io.WriteString(busy, req[:10]) // a frame in progress
	time.Sleep(50 * time.Millisecond)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	io.WriteString(busy, req[10:])
	bbr := bufio.NewReader(busy)
	if id, _, _ := rpcResult(t, readNetstringReply(t, bbr)); id != 2 {
		t.Fatal("request in flight not answered")
	}
	if _, err := bbr.ReadByte(); err != io.EOF {
		t.Fatalf("connection kept after shutdown: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("listener still accepting")
	}
}

// A persistent client may connect long before its first request: the first
// byte waits for the idle timeout, not the frame timeout.
func TestRPCQuietStart(t *testing.T) {
	e := newEnv(t, func(_ *serviceOptions, o *Options) {
		o.RPCIdleTimeout = 5 * time.Second
		o.RPCFrameTimeout = 100 * time.Millisecond
	})
	addr, _ := startRPC(t, e)
	c := dial(t, addr)
	time.Sleep(400 * time.Millisecond)
	io.WriteString(c, netstring(checkReq(1, "+14155550123", "")))
	if id, reason, _ := rpcResult(t, readNetstringReply(t, bufio.NewReader(c))); id != 1 || reason != "ok" {
		t.Fatalf("first request after a quiet start: %v %s", id, reason)
	}
}
