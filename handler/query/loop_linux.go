//go:build linux

package query

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/matcher"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// Loop is the query listener's epoll transport (-query-loop=epoll):
// DefaultLoops(GOMAXPROCS) event loops (one per P but one), each locked to
// its OS thread, reading the connections
// epoll reports ready (level-triggered) and answering every complete
// request in what it read with one write — no goroutine per connection,
// no scheduler wake-up per request. It serves GET and POST /v1/check and
// POST /rpc through the same decoders, decide and encoder as the fasthttp
// handler; a connection whose next request is anything else (another path
// or method, chunked, Expect, a malformed request) is handed, from that
// request on, to the fasthttp server through Fallback, which answers it as
// it always did. Connections are admitted by the listener's ConnLimits
// (per-source caps, trusted ranges, displacing the least recently active
// idle one) like fasthttp's.
type Loop struct {
	h     *Server
	ln    *Listener
	loops []*evLoop
	fb    *chanListener
	next  int

	readTimeout, writeTimeout, idleTimeout time.Duration

	closing  atomic.Bool
	open     atomic.Int64 // connections the loops hold
	handoffs atomic.Uint64
	done     chan struct{}
	once     sync.Once
}

// LoopConfig are the loop's timeouts; zero takes the fasthttp query
// server's (5 s read, 5 s write, 2 min idle).
type LoopConfig struct {
	Loops                                  int // default DefaultLoops(GOMAXPROCS)
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// LoopSupported says whether this build has the epoll loop.
const LoopSupported = true

// NewLoop builds the epoll transport over ln (already limited by Limit).
// Serve the fasthttp query server on l.Fallback() alongside it.
func (h *Server) NewLoop(ln *Listener, cfg LoopConfig) (*Loop, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = DefaultLoops(runtime.GOMAXPROCS(0))
	}
	l := &Loop{h: h, ln: ln, fb: newChanListener(ln.Addr()), done: make(chan struct{}),
		readTimeout: def(cfg.ReadTimeout, 5*time.Second), writeTimeout: def(cfg.WriteTimeout, 5*time.Second),
		idleTimeout: def(cfg.IdleTimeout, 2*time.Minute)}
	for i := 0; i < cfg.Loops; i++ {
		e, err := newEvLoop(l)
		if err != nil {
			for _, o := range l.loops {
				o.closeFDs()
			}
			return nil, err
		}
		l.loops = append(l.loops, e)
	}
	h.met.loopHandoffs.Store(&l.handoffs)
	return l, nil
}

// DefaultLoops is the number of loops for procs Ps: one fewer than the
// Ps, and at least one. A loop holds its P all the time (locked thread),
// so with a loop on every P the scheduler sees no idle P whenever a loop
// blocks in epoll_wait, and sysmon retakes that P after 20 µs and keeps
// waking every 20 µs to do it again: on two cores that was ~15% of the
// daemon's CPU under wrk and ~0.2 context switches per check (issue 17,
// fourth pass). With one P left free, sysmon leaves a blocked loop its P
// and backs off to 10 ms, and the free P runs everything else (accepts,
// the fasthttp fallback, the admin listener, the GC's workers).
func DefaultLoops(procs int) int {
	if procs <= 2 {
		return 1
	}
	return procs - 1
}

func def(d, v time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return v
}

// Fallback is the listener the fasthttp query server serves: it accepts
// the connections the loops hand over.
func (l *Loop) Fallback() net.Listener { return l.fb }

// Serve accepts connections until Shutdown and runs the loops. It returns
// nil after Shutdown.
func (l *Loop) Serve() error {
	for _, e := range l.loops {
		go e.run()
	}
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return nil
			}
			return err
		}
		lc, ok := c.(*limitedConn)
		if !ok {
			c.Close()
			continue
		}
		if err := l.adopt(lc); err != nil {
			lc.Close()
			l.h.log.Debug().Err(err).Msg("query loop: connection not adopted")
		}
	}
}

// adopt takes lc's descriptor out of Go's netpoller and gives it to a
// loop.
func (l *Loop) adopt(lc *limitedConn) error {
	tc, ok := lc.Conn.(*net.TCPConn)
	if !ok {
		return errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	lcn := &loopConn{fd: fd, local: tc.LocalAddr(), remote: tc.RemoteAddr()}
	tc.Close() // Go's descriptor (and its netpoller registration); ours stays
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	lc.Conn = lcn // before any other goroutine sees lc: the accept loop is the only one
	e := l.loops[l.next%len(l.loops)]
	l.next++
	c := &evConn{fd: fd, lc: lc, lcn: lcn, local: localPeer(lcn.remote)}
	l.open.Add(1)
	e.mu.Lock()
	e.pending = append(e.pending, c)
	e.mu.Unlock()
	if err := unix.EpollCtl(e.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		// the loop finds it in pending and closes it on its next wake-up
		c.dead = true
		e.wake()
	}
	return nil
}

// Shutdown stops accepting, closes idle connections, answers what is in
// flight with Connection: close and waits for the loops' connections to
// close, or for ctx (then closes them). The handed-over connections are
// the fasthttp server's to drain (its ShutdownWithContext).
func (l *Loop) Shutdown(ctx context.Context) error {
	l.closing.Store(true)
	l.ln.Close()
	for _, e := range l.loops {
		e.wake()
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var err error
	for l.open.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
	}
	l.once.Do(func() { close(l.done) })
	for _, e := range l.loops {
		e.wake()
	}
	return err
}

// loopConn is the net.Conn a limitedConn holds for a loop's connection:
// the listener's Close (displacing an idle connection) shuts the socket
// down and the loop, seeing it end, closes the descriptor. After a handover
// it is the fasthttp server's connection, reading what the loop had
// buffered first.
type loopConn struct {
	mu            sync.Mutex
	fd            int
	closed        bool
	to            net.Conn // after the handover
	prefix        []byte
	local, remote net.Addr
}

func (c *loopConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	if c.to == nil {
		return 0, net.ErrClosed
	}
	return c.to.Read(p)
}

func (c *loopConn) Write(p []byte) (int, error) {
	if c.to == nil {
		return 0, net.ErrClosed
	}
	return c.to.Write(p)
}

func (c *loopConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.to != nil {
		return c.to.Close()
	}
	if !c.closed {
		unix.Shutdown(c.fd, unix.SHUT_RDWR) // the loop sees the end and closes
	}
	return nil
}

// closeFD is the loop's close of its descriptor.
func (c *loopConn) closeFD() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		unix.Close(c.fd)
	}
	c.mu.Unlock()
}

func (c *loopConn) LocalAddr() net.Addr  { return c.local }
func (c *loopConn) RemoteAddr() net.Addr { return c.remote }
func (c *loopConn) SetDeadline(t time.Time) error {
	if c.to == nil {
		return nil
	}
	return c.to.SetDeadline(t)
}
func (c *loopConn) SetReadDeadline(t time.Time) error {
	if c.to == nil {
		return nil
	}
	return c.to.SetReadDeadline(t)
}
func (c *loopConn) SetWriteDeadline(t time.Time) error {
	if c.to == nil {
		return nil
	}
	return c.to.SetWriteDeadline(t)
}

// evConn is a loop's state for one connection.
type evConn struct {
	fd    int
	lc    *limitedConn
	lcn   *loopConn
	local bool
	in    []byte // a partial request, kept between reads
	out   []byte // an answer the socket did not take at once
	// deadline (unix ns): of the request being read (read timeout from
	// its first byte), of the idle wait, or of the pending write.
	deadline   int64
	closeAfter bool // close once out is written
	dead       bool
	waitOut    bool // registered for EPOLLOUT (not EPOLLIN)
}

type evLoop struct {
	l       *Loop
	ep, efd int
	mu      sync.Mutex
	pending []*evConn
	conns   []*evConn // by descriptor
	n       int
	buf     []byte
	query   []byte // the decoded query string of a GET check
	body    []byte
}

func newEvLoop(l *Loop) (*evLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, err
	}
	return &evLoop{l: l, ep: ep, efd: efd, buf: make([]byte, loopMaxHeader)}, nil
}

func (e *evLoop) closeFDs() {
	unix.Close(e.ep)
	unix.Close(e.efd)
}

func (e *evLoop) wake() {
	var one = [8]byte{1}
	unix.Write(e.efd, one[:])
}

// take moves the connections adopt queued into the table.
func (e *evLoop) take(now int64) {
	e.mu.Lock()
	p := e.pending
	e.pending = nil
	e.mu.Unlock()
	for _, c := range p {
		for c.fd >= len(e.conns) {
			e.conns = append(e.conns, nil)
		}
		e.conns[c.fd] = c
		e.n++
		c.deadline = now + int64(e.l.idleTimeout)
		if c.dead {
			e.close(c)
		}
	}
}

func (e *evLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	evs := make([]unix.EpollEvent, 128)
	lastSweep := time.Now().UnixNano()
	for {
		// Poll first without telling the scheduler (the descriptors are
		// non-blocking, and a zero timeout returns at once); block, as a
		// system call the scheduler knows of, only when nothing is ready.
		k, err := epollPoll(e.ep, evs)
		if k == 0 && err == nil {
			k, err = unix.EpollWait(e.ep, evs, 1000)
		}
		if err != nil && err != unix.EINTR {
			e.l.h.log.Error().Err(err).Msg("query loop: epoll_wait failed")
			return
		}
		nowT := time.Now()
		now := nowT.UnixNano()
		for _, ev := range evs[:max(k, 0)] {
			fd := int(ev.Fd)
			if fd == e.efd {
				var b [8]byte
				unix.Read(e.efd, b[:])
				e.take(now)
				continue
			}
			if fd >= len(e.conns) || e.conns[fd] == nil {
				e.take(now)
				if fd >= len(e.conns) || e.conns[fd] == nil {
					continue
				}
			}
			c := e.conns[fd]
			if ev.Events&unix.EPOLLOUT != 0 && len(c.out) > 0 {
				e.flush(c, now)
				if c.dead || len(c.out) > 0 {
					continue
				}
				if len(c.in) > 0 {
					e.serve(c, nil, nowT)
					continue
				}
			}
			if len(c.out) > 0 {
				// an answer is still being written: read nothing more
				// until it is (the answers would mix)
				if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					e.close(c)
				}
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				e.read(c, nowT)
			}
		}
		closing := e.l.closing.Load()
		if closing || now-lastSweep >= int64(time.Second) {
			lastSweep = now
			e.sweep(now, closing)
		}
		select {
		case <-e.l.done:
			e.take(now)
			for _, c := range e.conns {
				if c != nil {
					e.close(c)
				}
			}
			e.closeFDs()
			return
		default:
		}
	}
}

// sweep closes the connections past their deadline and, while shutting
// down, the idle ones.
func (e *evLoop) sweep(now int64, closing bool) {
	for _, c := range e.conns {
		if c == nil {
			continue
		}
		if now > c.deadline || closing && len(c.in) == 0 && len(c.out) == 0 {
			e.close(c)
		}
	}
}

func (e *evLoop) close(c *evConn) {
	if e.conns[c.fd] == c {
		e.conns[c.fd] = nil
		e.n--
	}
	c.dead = true
	c.lcn.closeFD()
	c.lc.Close()
	e.l.open.Add(-1)
}

// read reads what the socket has and answers every complete request in it.
func (e *evLoop) read(c *evConn, now time.Time) {
	n, err := rawRead(c.fd, e.buf)
	if n <= 0 {
		if n < 0 && (err == unix.EAGAIN || err == unix.EINTR) {
			return
		}
		if n == 0 && len(c.in) > 0 && len(c.out) == 0 {
			// the peer ended in the middle of a request: fasthttp's 400
			e.handoff(c, c.in, nil)
			return
		}
		e.close(c)
		return
	}
	lc := c.lc
	lc.lastRx.Store(lc.lastRx.Load() + 1) // its one reader is the only writer
	if !lc.busy.Load() {
		lc.busy.Store(true)
	}
	if len(c.in) == 0 {
		c.deadline = now.UnixNano() + int64(e.l.readTimeout) // a request starts
	}
	e.serve(c, e.buf[:n], now)
}

// serve answers the complete requests in c.in followed by data, keeps a
// partial one, and writes the answers with one write.
func (e *evLoop) serve(c *evConn, data []byte, now time.Time) {
	in := data
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		in = c.in
	}
	out := c.out[:0]
	closing := e.l.closing.Load()
	for len(in) > 0 && !c.closeAfter {
		r, n, st := parseRequest(in)
		if st == parseMore {
			break
		}
		if st == parseOther {
			e.handoff(c, in, out)
			return
		}
		if closing {
			r.close = true
		}
		out = e.l.h.loopAnswer(out, &r, now, c.local, &e.query, &e.body)
		in = in[n:]
		if r.close {
			c.closeAfter = true
		}
	}
	// keep the partial request (copied: data is the loop's buffer)
	if c.closeAfter {
		in = nil
	}
	if len(c.in) > 0 {
		c.in = append(c.in[:0], in...)
	} else if len(in) > 0 {
		c.in = append(c.in[:0], in...)
	}
	c.out = out
	nowNs := now.UnixNano()
	if len(c.in) == 0 {
		markIdle(c.lc)
		c.deadline = nowNs + int64(e.l.idleTimeout)
	}
	if len(out) > 0 {
		e.flush(c, nowNs)
	} else if c.closeAfter {
		e.close(c)
	}
}

// flush writes c.out; what the socket does not take waits for EPOLLOUT
// (and reading stops until it is written).
func (e *evLoop) flush(c *evConn, now int64) {
	buf, off := c.out, 0
	for off < len(buf) {
		n, err := rawWrite(c.fd, buf[off:])
		if n > 0 {
			off += n
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		e.close(c)
		return
	}
	if off < len(buf) {
		if off > 0 || c.deadline < now {
			c.deadline = now + int64(e.l.writeTimeout)
		}
		// keep what is left apart: the loop reuses buf's array for the
		// next answers
		c.out = append([]byte(nil), buf[off:]...)
		if !c.waitOut {
			c.waitOut = true
			unix.EpollCtl(e.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(c.fd)}) // not RDHUP: level-triggered, it would spin
		}
		return
	}
	c.out = buf[:0]
	if c.closeAfter {
		e.close(c)
		return
	}
	if c.waitOut {
		c.waitOut = false
		unix.EpollCtl(e.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)})
	}
}

// handoff gives c to the fasthttp server from the request at the start of
// in: the answers in out are written first, then fasthttp reads in and
// the rest of the connection.
func (e *evLoop) handoff(c *evConn, in, out []byte) {
	e.conns[c.fd] = nil
	e.n--
	unix.EpollCtl(e.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	prefix := append([]byte(nil), in...)
	pend := append([]byte(nil), out...)
	c.in, c.out = nil, nil
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a descriptor of its own in Go's netpoller
	f.Close()
	c.lcn.mu.Lock()
	c.lcn.closed = true // f.Close closed the loop's descriptor
	if err == nil {
		c.lcn.to = nc
		c.lcn.prefix = prefix
	}
	c.lcn.mu.Unlock()
	e.l.open.Add(-1)
	if err != nil {
		c.lc.Close()
		return
	}
	e.l.handoffs.Add(1)
	go func() {
		if len(pend) > 0 {
			nc.SetWriteDeadline(time.Now().Add(e.l.writeTimeout))
			if _, err := nc.Write(pend); err != nil {
				c.lc.Close()
				return
			}
			nc.SetWriteDeadline(time.Time{})
		}
		if !e.l.fb.give(c.lc) {
			c.lc.Close()
		}
	}()
}

// loopAnswer appends the whole HTTP answer to r, as the fasthttp handler
// writes it; query is the loop's scratch for a GET check's decoded query
// string, body for the answer's body.
func (h *Server) loopAnswer(out []byte, r *httpReq, at time.Time, local bool, query *[]byte, body *[]byte) []byte {
	b := (*body)[:0]
	status := fasthttp.StatusOK
	t := tHTTP
	ct := ctJSON
	switch r.route {
	case routeCheckGet, routeCheckPost:
		var q matcher.Query
		var e decodeError
		var f verdictFormat
		var sc scratch
		if r.route == routeCheckGet {
			e = decodeQuery(r.query, query, &q, &f)
		} else if len(r.body) > MaxCheckBody {
			e = decodeError{kind: errBodyTooLarge, off: MaxCheckBody}
		} else {
			e = decodeObject(r.body, &q, &f, &sc)
		}
		if e.ok() {
			v := h.decide(&q, tHTTP, at)
			status = v.Action.HTTPStatus()
			if f == formatCompact {
				ct = ctText
				b = AppendVerdictCompact(b, &v)
			} else {
				b = AppendVerdict(b, &v)
			}
		} else {
			h.met.parseErrors[tHTTP].Add(1)
			status = fasthttp.StatusBadRequest
			b = appendErrorBody(b, e)
		}
		sc.release()
		if !e.ok() {
			*body = b
			out = appendHead(out, status, r, ct, len(b))
			return append(out, b...)
		}
	default: // routeRPC
		t = tHTTPRPC
		sc := scratch{local: local}
		var replied bool
		b, replied = h.rpc(b, r.body, tHTTPRPC, &sc)
		sc.release()
		if !replied {
			status = fasthttp.StatusNoContent // notifications only
		}
	}
	*body = b
	out = appendHead(out, status, r, ct, len(b))
	out = append(out, b...)
	h.met.latency[t].observe(time.Since(at))
	return out
}

// The loop's descriptors are non-blocking: their reads, writes and
// zero-timeout polls return at once, so they go to the kernel without the
// scheduler's entersyscall/exitsyscall (as the runtime's own netpoller
// does).

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

func epollPoll(ep int, evs []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		if e == unix.EINTR {
			return 0, nil
		}
		return 0, e
	}
	return int(n), nil
}
