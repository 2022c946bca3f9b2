//go:build linux

package query

import (
	"testing"
	"time"
)

// benchLoopAnswer is the epoll loop's work for one check, the socket
// calls aside: the answer to r (decode, decide, encode, the head) appended
// to the loop's output buffer, as evLoop.serve makes it.
func benchLoopAnswer(b *testing.B, r httpReq) {
	h := benchHandler(b)
	var args []byte
	var body, out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = h.loopAnswer(out[:0], &r, time.Now(), true, &args, &body)
	}
}

// BenchmarkLoopAnswerGET: an allowed GET check (the wrk workload's shape).
func BenchmarkLoopAnswerGET(b *testing.B) {
	benchLoopAnswer(b, httpReq{route: routeCheckGet, query: []byte("to=%2B14155550123&account=acme")})
}

// BenchmarkLoopAnswerGETReject: a refused GET check, with its log line.
func BenchmarkLoopAnswerGETReject(b *testing.B) {
	benchLoopAnswer(b, httpReq{route: routeCheckGet, query: []byte("to=%2B5355512345&account=acme")})
}

// BenchmarkLoopAnswerPOST: an allowed JSON check.
func BenchmarkLoopAnswerPOST(b *testing.B) {
	benchLoopAnswer(b, httpReq{route: routeCheckPost, body: []byte(`{"to":"+14155550123","account":"acme"}`)})
}
