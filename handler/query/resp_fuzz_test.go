package query

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// FuzzRESP feeds arbitrary bytes to the RESP reader and answers every
// command it reads, as a connection does: nothing panics, no command is
// over the limits, every reply is one well-formed RESP reply, and the
// reader stops at the first framing error.
//
//	go test ./handler/query -run '^$' -fuzz FuzzRESP -fuzztime 30s
func FuzzRESP(f *testing.F) {
	for _, s := range []string{
		respCmd("PING"),
		respCmd("SELECT", "0") + respCmd("TGCHECK", "to", "+442071234567", "account", "acme", "src_ip", "192.0.2.1"),
		respCmd("TGCHECK", "to", "abc", "format", "json"),
		respCmd("TGCHECK", "to"),
		respCmd("QUIT"),
		"*1\r\n$-1\r\n",
		"*2\r\n$4\r\nPING\r\n$99999\r\n",
		"PING\r\n",
		"*99999999999\r\n",
	} {
		f.Add([]byte(s))
	}
	h := newEnv(&testing.T{}).h
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		var args [MaxRESPArgs][]byte
		for {
			n, err := ReadRESPCommand(br, &buf, &args)
			if err != nil {
				var pe respProtoError
				if errors.As(err, &pe) && bytes.ContainsAny([]byte(pe), "\r\n") {
					t.Fatalf("protocol error text with a line break: %q", pe)
				}
				return
			}
			if n < 1 || n > MaxRESPArgs {
				t.Fatalf("%d arguments", n)
			}
			total := 0
			for _, a := range args[:n] {
				if len(a) > MaxRESPBulk {
					t.Fatalf("argument of %d bytes", len(a))
				}
				total += len(a)
			}
			if total > MaxRESPCommand {
				t.Fatalf("command of %d bytes", total)
			}
			out, quit := h.respCommand(nil, args[:n])
			checkRESPReply(t, out)
			if quit {
				return
			}
		}
	})
}

// checkRESPReply fails unless out is exactly one status, error or bulk reply.
func checkRESPReply(t *testing.T, out []byte) {
	t.Helper()
	line, rest, ok := bytes.Cut(out, []byte("\r\n"))
	if !ok || len(line) == 0 {
		t.Fatalf("reply without a line: %q", out)
	}
	switch line[0] {
	case '+', '-':
		if len(rest) != 0 || bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("status or error reply not one line: %q", out)
		}
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 0 || len(rest) != n+2 || !bytes.HasSuffix(rest, []byte("\r\n")) {
			t.Fatalf("bulk reply malformed: %q", out)
		}
	default:
		t.Fatalf("not a reply: %q", out)
	}
}
