package query

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// respCmd encodes args as hiredis sends a command: an array of bulk strings.
func respCmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func TestReadRESPCommand(t *testing.T) {
	long := strings.Repeat("x", MaxRESPBulk+1)
	tests := []struct {
		name, in string
		args     []string
		err      error // a respProtoError, io.EOF or io.ErrUnexpectedEOF
	}{
		{"ping", respCmd("PING"), []string{"PING"}, nil},
		{"check", respCmd("TGCHECK", "to", "+44 20", "account", "acme"), []string{"TGCHECK", "to", "+44 20", "account", "acme"}, nil},
		{"empty bulk", respCmd("TGCHECK", "to", ""), []string{"TGCHECK", "to", ""}, nil},
		{"binary", respCmd("PING", "a\r\nb\x00"), []string{"PING", "a\r\nb\x00"}, nil},
		{"inline command", "PING\r\n", nil, errRESPNotArray},
		{"zero array", "*0\r\n", nil, errRESPArrayLen},
		{"negative array", "*-1\r\n", nil, errRESPArrayLen},
		{"array too long", fmt.Sprintf("*%d\r\n", MaxRESPArgs+1), nil, errRESPArrayLen},
		{"array length not a number", "*x\r\n", nil, errRESPArrayLen},
		{"array length too many digits", "*00000000001\r\n", nil, errRESPArrayLen},
		{"array length no LF", "*1\rX", nil, errRESPCRLF},
		{"not a bulk", "*1\r\n:1\r\n", nil, errRESPNotBulk},
		{"null bulk", "*1\r\n$-1\r\n", nil, errRESPBulkLen},
		{"bulk too long", respCmd(long), nil, errRESPBulkLen},
		{"command too large", respCmd(append([]string{"PING"}, strings.Split(strings.Repeat(strings.Repeat("y", MaxRESPBulk)+" ", 5), " ")[:5]...)...), nil, errRESPTooLarge},
		{"bulk without CRLF", "*1\r\n$4\r\nPINGxx", nil, errRESPCRLF},
		{"bulk short", "*1\r\n$4\r\nPI", nil, io.ErrUnexpectedEOF},
		{"nothing", "", nil, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			var args [MaxRESPArgs][]byte
			n, err := ReadRESPCommand(bufio.NewReader(strings.NewReader(tc.in)), &buf, &args)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range args[:n] {
				got = append(got, string(a))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.args) || n != len(tc.args) {
				t.Fatalf("got %q, want %q", got, tc.args)
			}
		})
	}
}

func TestRESPCommands(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		args []string
		want string // the reply, or its prefix when it ends in "…"
	}{
		{"ping", []string{"PING"}, "+PONG\r\n"},
		{"ping lower case", []string{"ping"}, "+PONG\r\n"},
		{"ping message", []string{"PING", "hi"}, "$2\r\nhi\r\n"},
		{"ping arity", []string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n"},
		{"select 0", []string{"SELECT", "0"}, "+OK\r\n"},
		{"select 1", []string{"SELECT", "1"}, "-ERR DB index is out of range…"},
		{"select arity", []string{"SELECT"}, "-ERR wrong number of arguments for 'select' command\r\n"},
		{"unknown", []string{"GET", "k"}, "-ERR unknown command 'GET' (tollgate answers TGCHECK, PING, SELECT 0, QUIT)\r\n"},
		{"unknown name sanitised", []string{"A'B\r\nC"}, "-ERR unknown command 'A?B??C'…"},
		{"allowed", []string{"TGCHECK", "to", "+442071234567", "account", "acme", "src_ip", "192.0.2.1"}, "$42\r\nallow|ok|1000|200|OK|+442071234567|0|0|0|0\r\n"},
		{"invalid number", []string{"tgcheck", "to", "abc", "account", "acme"}, "…reject|invalid_number|2010|484|Address Incomplete||0|0|0|0\r\n"},
		{"json", []string{"TGCHECK", "to", "+442071234567", "format", "json"}, `…{"verdict":"allow"`},
		{"unknown field ignored", []string{"TGCHECK", "to", "+442071234567", "x", "y"}, "…allow|ok|"},
		{"no to", []string{"TGCHECK", "account", "acme"}, "-ERR missing required field \"to\"\r\n"},
		{"no value", []string{"TGCHECK", "to"}, "-ERR TGCHECK takes field value pairs\r\n"},
		{"twice", []string{"TGCHECK", "to", "1", "to", "2"}, "-ERR field \"to\" given more than once\r\n"},
		{"too long", []string{"TGCHECK", "to", strings.Repeat("1", MaxFieldLen+1)}, "-ERR field \"to\" is longer than 256 bytes\r\n"},
		{"bad account", []string{"TGCHECK", "to", "1", "account", "a b"}, "-ERR field \"account\" is not a name…"},
		{"bad src_ip", []string{"TGCHECK", "to", "1", "src_ip", "nowhere"}, "-ERR field \"src_ip\" …"},
		{"bad format", []string{"TGCHECK", "to", "1", "format", "xml"}, "-ERR field \"format\" must be given once…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args [][]byte
			for _, a := range tc.args {
				args = append(args, []byte(a))
			}
			out, quit := e.h.respCommand(nil, args)
			if quit {
				t.Fatal("quit")
			}
			got, want := string(out), tc.want
			switch {
			case strings.HasPrefix(want, "…"):
				if !strings.Contains(got, want[len("…"):]) {
					t.Fatalf("got %q, want it to contain %q", got, want)
				}
			case strings.HasSuffix(want, "…"):
				if !strings.HasPrefix(got, strings.TrimSuffix(want, "…")) {
					t.Fatalf("got %q, want %q…", got, want)
				}
			default:
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			if strings.HasPrefix(got, "$") {
				// the bulk length is the body's
				hdr, body, _ := strings.Cut(got, "\r\n")
				if fmt.Sprintf("$%d", len(body)-2) != hdr {
					t.Fatalf("bulk header %q for a body of %d bytes", hdr, len(body)-2)
				}
			} else if strings.Count(got, "\r\n") != 1 || !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("an error or status reply is one line: %q", got)
			}
		})
	}
	if n := e.h.met.parseErrors[tRESP].Load(); n != 7 {
		t.Errorf("parse errors counted: %d, want 7", n)
	}
}

// startRESP serves e's RESP server on a loopback port.
func startRESP(t *testing.T, e *env) (string, *RESPServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := e.h.NewRESPServer()
	done := make(chan error, 1)
	go func() { done <- s.Serve(e.h.Limit(ln, ListenerRESP, DefaultConnLimits(8))) }()
	t.Cleanup(func() {
		s.Shutdown(t.Context())
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), s
}

// readReply reads one RESP reply line (and a bulk string's body).
func readReply(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a reply: %v (got %q)", err, line)
	}
	if line[0] != '$' {
		return line
	}
	var n int
	fmt.Sscanf(line, "$%d\r\n", &n)
	body := make([]byte, n+2)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return line + string(body)
}

// TestRESPServer talks to the listener as ndb_redis does: PING and SELECT
// 0 on connect, then checks on the same connection; pipelined commands are
// answered in order; a broken frame gets a protocol error and the
// connection is closed.
func TestRESPServer(t *testing.T) {
	e := newEnv(t)
	addr, _ := startRESP(t, e)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, respCmd("PING"))
	if got := readReply(t, br); got != "+PONG\r\n" {
		t.Fatalf("PING: %q", got)
	}
	io.WriteString(c, respCmd("SELECT", "0"))
	if got := readReply(t, br); got != "+OK\r\n" {
		t.Fatalf("SELECT: %q", got)
	}
	for i := 0; i < 3; i++ {
		io.WriteString(c, respCmd("TGCHECK", "to", "+442071234567", "account", "acme"))
		if got := readReply(t, br); !strings.Contains(got, "allow|ok|1000|200|OK|+442071234567") {
			t.Fatalf("check %d: %q", i, got)
		}
	}
	// pipelined, in one write, with one answer split over two writes
	cmd := respCmd("TGCHECK", "to", "abc")
	io.WriteString(c, respCmd("PING", "1")+respCmd("TGCHECK", "to", "+442071234567")+respCmd("FOO")+cmd[:7])
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, cmd[7:])
	for i, want := range []string{"$1\r\n1\r\n", "allow|", "-ERR unknown command 'FOO'", "reject|invalid_number|"} {
		if got := readReply(t, br); !strings.Contains(got, want) {
			t.Fatalf("pipelined reply %d: %q, want %q", i, got, want)
		}
	}
	io.WriteString(c, "GET k\r\n")
	if got := readReply(t, br); got != "-ERR Protocol error: expected '*' (an array of bulk strings)\r\n" {
		t.Fatalf("inline command: %q", got)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed after a protocol error: %v", err)
	}
	// QUIT answers and closes
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	br2 := bufio.NewReader(c2)
	io.WriteString(c2, respCmd("QUIT"))
	if got := readReply(t, br2); got != "+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	if _, err := br2.ReadByte(); err != io.EOF {
		t.Fatalf("connection not closed after QUIT: %v", err)
	}
	var m bytes.Buffer
	e.h.WriteMetrics(&m)
	e.h.WriteConnMetrics(&m)
	contains(t, "metrics", m.Bytes(),
		`tollgate_decisions_total{transport="resp",verdict="allow",reason="ok"} 4`,
		`tollgate_decisions_total{transport="resp",verdict="reject",reason="invalid_number"} 1`,
		`tollgate_parse_errors_total{transport="resp"} 1`,
		`tollgate_request_duration_seconds_count{transport="resp"} 5`,
		`tollgate_connections_accepted_total{listener="resp"} 2`)
}

// TestRESPIdleTimeout: a connection with no command for RPCIdleTimeout is
// closed; one in the middle of a command gets RPCFrameTimeout.
func TestRESPIdleTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.RPCIdleTimeout = 100 * time.Millisecond
		o.RPCFrameTimeout = 100 * time.Millisecond
	})
	addr, _ := startRESP(t, e)
	for _, first := range []string{"", "*2\r\n$4\r\nPI"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, first)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("%q: read %v, want EOF", first, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%q: closed after %v", first, d)
		}
		c.Close()
	}
}

// TestRESPShutdown: Shutdown closes idle connections and Serve returns.
func TestRESPShutdown(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := e.h.NewRESPServer()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, respCmd("PING"))
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	readReply(t, br)
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
}

// TestRESPCheckNoAlloc: a check on a warm connection allocates nothing.
func TestRESPCheckNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := newEnv(t)
	in := respCmd("TGCHECK", "to", "+442071234567", "account", "acme", "src_ip", "192.0.2.1", "call_id", "a84b4c76e66710@pc33.example.com")
	r := strings.NewReader(in)
	br := bufio.NewReader(r)
	var buf, out []byte
	var args [MaxRESPArgs][]byte
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(in)
		br.Reset(r)
		n, err := ReadRESPCommand(br, &buf, &args)
		if err != nil {
			t.Fatal(err)
		}
		out, _ = e.h.respCommand(out[:0], args[:n])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per check", allocs)
	}
	if !bytes.Contains(out, []byte("allow|ok")) {
		t.Fatalf("%q", out)
	}
}
