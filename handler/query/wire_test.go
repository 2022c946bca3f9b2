package query

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestQueryWireHeaders pins the query listener's answer on the wire: the
// status line, Content-Type and Content-Length, and nothing else — no
// Server and no Date header, which no proxy reads (issue 17 dropped them
// from the per-check work) — over a real keep-alive TCP connection, for
// each kind of answer.
func TestQueryWireHeaders(t *testing.T) {
	h := benchHandler(&testing.B{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := h.HTTPServer(func(ctx *fasthttp.RequestCtx) { h.Serve(ctx) })
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	post := func(path, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	for _, tc := range []struct {
		name, req string
		status    string
		bodyHas   string
	}{
		{"allow", "GET /v1/check?to=%2B14155550123&account=acme HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 200 OK", `"verdict":"allow"`},
		{"reject", "GET /v1/check?to=%2B5355512345&account=acme HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 403 Forbidden", `"verdict":"reject"`},
		{"malformed", "GET /v1/check?account=acme HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 400 Bad Request", `"error":`},
		{"post", post("/v1/check", `{"to":"+14155550123","account":"acme"}`), "HTTP/1.1 200 OK", `"verdict":"allow"`},
		{"rpc", post("/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`), "HTTP/1.1 200 OK", `"jsonrpc":"2.0"`},
	} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if l == "\r\n" {
				break
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
		}
		if len(lines) != 3 || lines[0] != tc.status || lines[1] != "Content-Type: application/json" || !strings.HasPrefix(lines[2], "Content-Length: ") {
			t.Fatalf("%s: header %q, want the status line, Content-Type and Content-Length only", tc.name, lines)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(lines[2], "Content-Length: "))
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(body), tc.bodyHas) {
			t.Fatalf("%s: body %s", tc.name, body)
		}
	}
	// The answer still parses as HTTP for an ordinary client.
	resp, err := http.Get("http://" + ln.Addr().String() + "/v1/check?to=%2B14155550123&account=acme")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Server") != "" || resp.Header.Get("Date") != "" {
		t.Fatalf("net/http reads %d %v", resp.StatusCode, resp.Header)
	}
}
