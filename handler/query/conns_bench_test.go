package query

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// BenchmarkIdleConnMemory reports what one idle connection costs the
// process (heap and goroutine stacks in use, per connection, the test's
// own client ends included) on the query (fasthttp) and RPC listeners,
// after each connection made one request and went idle: the basis of the
// default connection caps. Run with -benchtime 2000x (b.N connections).
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, kind := range []string{"query", "rpc"} {
		b.Run(kind, func(b *testing.B) {
			h := benchHandler(b)
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ln := h.Limit(raw, ListenerQuery, DefaultConnLimits(b.N+16))
			var req string
			if kind == "query" {
				qs := h.HTTPServer(h.query)
				go qs.Serve(ln)
				defer qs.Shutdown()
				req = "GET /v1/check?to=%2B14155550123 HTTP/1.1\r\nHost: x\r\n\r\n"
			} else {
				rs := h.NewRPCServer()
				go rs.Serve(ln)
				defer rs.Shutdown(context.Background())
				p := `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`
				req = Itoa(len(p)) + ":" + p + ","
			}
			measure := func() uint64 {
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				return m.HeapInuse + m.StackInuse
			}
			before := measure()
			conns := make([]net.Conn, 0, b.N)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, req)
				if _, err := bufio.NewReaderSize(c, 16).Peek(1); err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			b.StopTimer()
			time.Sleep(100 * time.Millisecond) // let the servers finish writing and go idle
			after := measure()
			if open := ln.met.open.Load(); open != int64(b.N) {
				b.Fatalf("%d connections open, want %d", open, b.N)
			}
			b.ReportMetric(float64(after-before)/float64(b.N), "B/idle-conn")
		})
	}
}
