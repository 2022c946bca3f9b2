package query

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzParseRequest compares the loop's request reader with fasthttp's
// reading of the same bytes: whatever parseRequest serves itself, fasthttp
// reads as the same method, path, query, body, length and keep-alive; and
// it never claims more bytes than it was given.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET /v1/check?to=%2B14155550123&account=acme HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /v1/check?to=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /v1/check?to=1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /v1/check?to=2 HTTP/1.1\r\n\r\n",
		"POST /v1/check HTTP/1.1\r\nContent-Length: 8\r\n\r\n{\"to\":1}",
		"POST /rpc HTTP/1.1\r\ncontent-length: 2\r\nX: y\r\n\r\n{}",
		"POST /rpc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /v1/check?to=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"GET /v1/check?to=1 HTTP/1.1\r\nX-A:\t v \t\r\n\r\n",
		"GET /health HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, st := parseRequest(b)
		if st != parseOK {
			if n != 0 {
				t.Fatalf("status %d with length %d", st, n)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		var req fasthttp.Request
		rd := bytes.NewReader(b)
		br := bufio.NewReaderSize(rd, len(b)+16)
		if err := req.Read(br); err != nil {
			t.Fatalf("the loop serves %q; fasthttp refuses it: %v", b, err)
		}
		if used := len(b) - br.Buffered() - rd.Len(); used != n {
			t.Fatalf("%q: the loop reads %d bytes, fasthttp %d", b, n, used)
		}
		method, path := string(req.Header.Method()), string(req.URI().Path())
		want := map[uint8][2]string{routeCheckGet: {"GET", "/v1/check"}, routeCheckPost: {"POST", "/v1/check"}, routeRPC: {"POST", "/rpc"}}[r.route]
		if method != want[0] || path != want[1] {
			t.Fatalf("%q: the loop routes %v, fasthttp reads %s %s", b, want, method, path)
		}
		if r.route == routeCheckGet {
			if q := string(req.URI().QueryString()); q != string(r.query) {
				t.Fatalf("%q: query %q, fasthttp %q", b, r.query, q)
			}
		} else if !bytes.Equal(req.Body(), r.body) {
			t.Fatalf("%q: body %q, fasthttp %q", b, r.body, req.Body())
		}
		if req.ConnectionClose() != r.close {
			t.Fatalf("%q: close %v, fasthttp %v", b, r.close, req.ConnectionClose())
		}
		if r.http10KeepAlive && req.Header.IsHTTP11() {
			t.Fatalf("%q: an HTTP/1.0 keep-alive fasthttp reads as HTTP/1.1", b)
		}
		// The same request cut short is never served.
		for _, cut := range []int{n - 1, n / 2} {
			if _, _, st := parseRequest(b[:cut]); st == parseOK {
				t.Fatalf("%q cut at %d is served", b, cut)
			}
		}
	})
}
