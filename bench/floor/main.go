//go:build linux

// Command floor is issue 17's floor measurement: the cheapest a Go server can
// answer a constant check response, served (a) by fasthttp with the query
// listener's options and (b) by a raw epoll event loop (one loop per P,
// locked to its thread, level-triggered, no goroutine per connection). It
// takes tollgate's command-line flags so bench/wrk-ratio.sh can start it as
// TOLLGATE (FLOOR=fasthttp|epoll picks the server, FLOOR_LOOPS the epoll
// server's loop count); only -query-addr is used.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

var body = []byte(`{"verdict":"allow","reason":"allowed","code":0,"sip_code":200,"sip_reason":"OK","message":"call allowed","country":"GB","e164":"+447700990403","account":"acct-004702","rule":"no rule matched","max_channels":0,"max_cps":0}`)

func main() {
	addr := ""
	for i, a := range os.Args {
		if a == "-query-addr" && i+1 < len(os.Args) {
			addr = os.Args[i+1]
		}
	}
	if addr == "" {
		fmt.Fprintln(os.Stderr, "-query-addr needed")
		os.Exit(2)
	}
	switch os.Getenv("FLOOR") {
	case "epoll":
		serveEpoll(addr)
	default:
		serveFast(addr)
	}
}

func serveFast(addr string) {
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		NoDefaultDate: true, NoDefaultServerHeader: true, NoDefaultContentType: true,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
		ReadBufferSize: 8 << 10, WriteBufferSize: 4 << 10,
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		panic(err)
	}
	panic(s.Serve(ln))
}

func serveEpoll(addr string) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		panic(err)
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	sa := &unix.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := unix.Bind(lfd, sa); err != nil {
		panic(err)
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		panic(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	resp = append(resp, body...)
	// FLOOR_LOOPS: how many loops (default GOMAXPROCS), to compare a loop
	// on every P with the daemon's one per P but one.
	n := runtime.GOMAXPROCS(0)
	if v, err := strconv.Atoi(os.Getenv("FLOOR_LOOPS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < n; i++ {
		go loop(lfd, resp)
	}
	select {}
}

type conn struct {
	in  []byte
	out []byte
}

func loop(lfd int, resp []byte) {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		panic(err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(lfd)}); err != nil {
		panic(err)
	}
	conns := map[int32]*conn{}
	evs := make([]unix.EpollEvent, 256)
	buf := make([]byte, 8<<10)
	for {
		k, err := unix.EpollWait(ep, evs, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			panic(err)
		}
		for _, ev := range evs[:k] {
			fd := ev.Fd
			if int(fd) == lfd {
				for {
					nfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
					conns[int32(nfd)] = &conn{}
					unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, nfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(nfd)})
				}
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			m, err := unix.Read(int(fd), buf)
			if m <= 0 {
				if err == unix.EAGAIN {
					continue
				}
				unix.Close(int(fd))
				delete(conns, fd)
				continue
			}
			in := buf[:m]
			if len(c.in) > 0 {
				c.in = append(c.in, in...)
				in = c.in
			}
			out := c.out[:0]
			for {
				i := bytes.Index(in, []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				out = append(out, resp...)
				in = in[i+4:]
			}
			c.in = append(c.in[:0], in...)
			if len(out) > 0 {
				if _, err := unix.Write(int(fd), out); err != nil {
					unix.Close(int(fd))
					delete(conns, fd)
					continue
				}
			}
			c.out = out
		}
	}
}
