package query

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ListenerKind names a listener in the connection metrics; the set is
// closed, so it is a bounded label.
type ListenerKind uint8

// The listeners whose connections are capped.
const (
	ListenerQuery ListenerKind = iota // HTTP query API (/v1/check, /rpc)
	ListenerRPC                       // JSON-RPC over TCP (netstrings, bare JSON)
	ListenerAdmin                     // admin API
	numListeners
)

var listenerNames = [numListeners]string{"query", "rpc", "admin"}

// ConnLimits bound one listener's connections, so that a flood of idle
// connections can neither use up the process's file descriptors (and make
// accept fail) nor lock the proxies out.
type ConnLimits struct {
	// Max is the most connections the listener holds. A connection
	// arriving when it is full takes the place of the least recently
	// active idle one (see Listener); with none idle it is closed at once.
	Max int
	// PerSource is the most connections one source address outside
	// Trusted may hold, so one host cannot take the listener.
	PerSource int
	// Reserve is the part of Max only Trusted sources may use: however
	// many other hosts connect, the proxies find this many slots.
	Reserve int
	// Trusted are the proxies' addresses (loopback by default). They are
	// bounded only by Max; among several, a new connection displaces one
	// of the source holding the most, so one cannot starve another.
	Trusted []netip.Prefix
}

// Clone returns a copy that shares no memory with l (Limit keeps one, so
// the caller's slice can change afterwards without effect).
func (l ConnLimits) Clone() ConnLimits {
	l.Trusted = slices.Clone(l.Trusted)
	return l
}

// LoopbackSources is the default Trusted set: proxies on the same host.
var LoopbackSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// DefaultConnLimits sizes a listener's limits from the descriptors it may
// use: the reserve is an eighth, one untrusted source an eighth of the
// rest (at least 1 each).
func DefaultConnLimits(max int) ConnLimits {
	max = maxInt(max, 2)
	res := maxInt(max/8, 1)
	return ConnLimits{Max: max, Reserve: res, PerSource: maxInt((max-res)/8, 1), Trusted: LoopbackSources}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// connMetrics are one listener's connection counters.
type connMetrics struct {
	open                                  atomic.Int64
	accepted, shed, refused, acceptErrors atomic.Uint64
}

// Listener caps the connections of a net.Listener (see ConnLimits) and
// never ends on a transient accept error: it backs off (5 ms doubling to
// 1 s), counts the error and logs at most one line every 10 s, so running
// out of descriptors slows accepting down instead of taking the daemon down.
//
// When a connection needs a slot, the one given up is the least recently
// active idle connection of the source holding the most connections
// (sources outside Trusted first, and only those when the newcomer is
// itself outside Trusted; the newcomer's own source when it is at its
// PerSource cap). "Idle" means no byte received since the last reply was
// sent: a connection in the middle of a request is never cut. A
// half-sent request is ended by the read timeouts instead.
type Listener struct {
	inner net.Listener
	lim   ConnLimits
	h     *Server
	met   *connMetrics
	kind  ListenerKind

	tick     atomic.Uint64 // a new connection's first lastRx: bumped on every admission
	closed   atomic.Bool
	lastLog  atomic.Int64
	errs     atomic.Uint64 // accept errors since the last log line
	lastFull atomic.Int64  // when "full" was last logged

	mu        sync.Mutex
	total     int
	untrusted int
	src       map[netip.Addr]*connSource
}

// connSource is one remote address's connections, least recently active
// first (lazily: see victim).
type connSource struct {
	addr       netip.Addr
	trusted    bool
	n          int
	head, tail *limitedConn
}

// limitedConn is an accepted connection. lastRx changes on every read (the
// listener's tick at admission, then counted up by the connection's own
// reads: no cache line shared by every connection is written per request);
// placed is lastRx when it took its place in the list.
type limitedConn struct {
	net.Conn
	l          *Listener
	src        *connSource
	prev, next *limitedConn
	placed     uint64
	lastRx     atomic.Uint64
	busy       atomic.Bool // bytes received since the last reply
	gone       bool        // removed from the lists (under l.mu)
	once       sync.Once
}

// Limit wraps ln with the limits lim, counted under kind in /metrics.
func (h *Server) Limit(ln net.Listener, kind ListenerKind, lim ConnLimits) *Listener {
	lim = lim.Clone()
	if lim.Max <= 0 {
		lim.Max = 1
	}
	if lim.Reserve >= lim.Max {
		lim.Reserve = lim.Max - 1
	}
	if lim.PerSource <= 0 || lim.PerSource > lim.Max-lim.Reserve {
		lim.PerSource = lim.Max - lim.Reserve
	}
	return &Listener{inner: ln, lim: lim, h: h, met: &h.met.conns[kind], kind: kind, src: make(map[netip.Addr]*connSource)}
}

// Limits returns a copy of the limits in force.
func (l *Listener) Limits() ConnLimits { return l.lim.Clone() }

// Addr is the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting; connections already accepted stay open.
func (l *Listener) Close() error {
	l.closed.Store(true)
	return l.inner.Close()
}

// Accept returns the next connection within the limits. It returns an
// error only once the listener is closed.
func (l *Listener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection") {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.acceptError(err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// acceptError counts err and logs it, at most once every 10 s per
// listener with the number of errors since the last line.
func (l *Listener) acceptError(err error, backoff time.Duration) {
	l.met.acceptErrors.Add(1)
	n := l.errs.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(10*time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.errs.Add(-n)
	l.h.log.Error().Err(err).Str("listener", listenerNames[l.kind]).Uint64("errors", n).Dur("retry_in", backoff).
		Msg("accept failed; retrying (is the descriptor limit too low? see -max-conns)")
}

// logFull says, at most once a minute per listener, that the listener or a
// source is at its cap; the counters have the totals.
func (l *Listener) logFull(src netip.Addr, trusted bool, what string) {
	now := time.Now().UnixNano()
	last := l.lastFull.Load()
	if now-last < int64(time.Minute) || !l.lastFull.CompareAndSwap(last, now) {
		return
	}
	l.h.log.Warn().Str("listener", listenerNames[l.kind]).Str("source", src.String()).Bool("proxy_source", trusted).
		Int("max_conns", l.lim.Max).Int("max_conns_per_source", l.lim.PerSource).
		Msg("connection limit reached: " + what + " (see tollgate_connections_shed_total, _refused_total; logged once a minute)")
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{} // in-memory listeners in tests: one source
}

func (l *Listener) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return true
	}
	for _, p := range l.lim.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// admit finds c a slot, displacing an idle connection if need be, or
// closes it and returns nil.
func (l *Listener) admit(c net.Conn) *limitedConn {
	addr := remoteAddr(c)
	l.mu.Lock()
	s := l.src[addr]
	if s == nil {
		s = &connSource{addr: addr, trusted: l.trusted(addr)}
	}
	var victim *limitedConn
	full := false
	switch {
	case !s.trusted && s.n >= l.lim.PerSource:
		full, victim = true, s.victim()
	case !s.trusted && l.untrusted >= l.lim.Max-l.lim.Reserve, l.total >= l.lim.Max:
		full = true
		if u := l.largest(false); u != nil {
			victim = u.victim()
		}
		if victim == nil && s.trusted {
			if t := l.largest(true); t != nil {
				victim = t.victim()
			}
		}
	}
	if full && victim == nil {
		l.mu.Unlock()
		l.met.refused.Add(1)
		l.logFull(addr, s.trusted, "refused: no idle connection to displace")
		c.Close()
		return nil
	}
	if victim != nil {
		l.remove(victim)
	}
	if s.n == 0 {
		l.src[addr] = s
	}
	lc := &limitedConn{Conn: c, l: l, src: s}
	lc.placed = l.tick.Add(1)
	lc.lastRx.Store(lc.placed)
	s.pushBack(lc)
	s.n++
	l.total++
	if !s.trusted {
		l.untrusted++
	}
	l.mu.Unlock()
	if victim != nil {
		l.met.shed.Add(1)
		victim.Conn.Close() // its server sees the read fail and lets it go
		l.logFull(addr, s.trusted, "the least recently active idle connection was closed to make room")
	}
	l.met.accepted.Add(1)
	l.met.open.Add(1)
	return lc
}

// largest returns the source with the most connections among the trusted
// or the untrusted ones. It walks the sources: it runs only when the
// listener is full.
func (l *Listener) largest(trusted bool) *connSource {
	var best *connSource
	for _, s := range l.src {
		if s.trusted == trusted && (best == nil || s.n > best.n) {
			best = s
		}
	}
	return best
}

// victim returns the source's least recently active idle connection, or
// nil. The list is kept in order lazily: a connection read from since it
// was placed goes to the back when the walk meets it (amortised O(1)).
func (s *connSource) victim() *limitedConn {
	for k := 0; k < 2*s.n && s.head != nil; k++ { // twice: a first pass may only reorder
		c := s.head
		if rx := c.lastRx.Load(); rx != c.placed || c.busy.Load() {
			c.placed = rx
			s.unlink(c)
			s.pushBack(c)
			continue
		}
		return c
	}
	return nil
}

func (s *connSource) pushBack(c *limitedConn) {
	c.prev, c.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = c
	} else {
		s.head = c
	}
	s.tail = c
}

func (s *connSource) unlink(c *limitedConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		s.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		s.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// remove takes c out of the counts (under l.mu); idempotent.
func (l *Listener) remove(c *limitedConn) {
	if c.gone {
		return
	}
	c.gone = true
	s := c.src
	s.unlink(c)
	s.n--
	l.total--
	if !s.trusted {
		l.untrusted--
	}
	if s.n == 0 {
		delete(l.src, s.addr)
	}
	l.met.open.Add(-1)
}

// Read marks the connection active.
func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRx.Store(c.lastRx.Load() + 1) // its one reader is the only writer
		if !c.busy.Load() {
			c.busy.Store(true)
		}
	}
	return n, err
}

// Close frees the connection's slot.
func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.remove(c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// markIdle records that a connection's request has been answered: until
// its next byte it may be displaced.
func markIdle(c net.Conn) {
	if lc, ok := c.(*limitedConn); ok && lc.busy.Load() {
		lc.busy.Store(false)
	}
}

// ConnState feeds fasthttp's connection states to markIdle.
func ConnState(c net.Conn, st fasthttp.ConnState) {
	if st == fasthttp.StateIdle {
		markIdle(c)
	}
}
