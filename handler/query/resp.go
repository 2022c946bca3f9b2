package query

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/matcher"
)

// RESPServer answers checks in the Redis protocol (RESP2) over TCP, for
// Kamailio's ndb_redis module: redis_cmd() runs in the SIP worker itself,
// with one write and one read on a persistent connection, and the reply
// (the compact verdict line as a bulk string) is read with
// $redis(r=>value), no JSON and no process hop.
//
// It speaks only what that client needs, request arrays of bulk strings:
//
//	TGCHECK field value [field value ...]  → $<compact verdict>
//	PING [message]                         → +PONG (or the message)
//	SELECT 0                               → +OK   (sent by ndb_redis on connect)
//	QUIT                                   → +OK, then the connection closes
//
// The fields are those of every other transport (to, account, subaccount,
// from, src_ip, call_id, and format: compact by default, or json); unknown
// fields are ignored, a repeated one is refused. A malformed TGCHECK or an
// unknown command gets an -ERR reply and the connection goes on; a request
// that breaks the framing (not an array of bulk strings, or over a limit)
// gets "-ERR Protocol error: …" and the connection is closed.
type RESPServer struct {
	h *Server

	mu      sync.Mutex
	lns     []net.Listener
	conns   map[*respConn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// Limits of the RESP framing.
const (
	// MaxRESPArgs bounds a command's array: TGCHECK with all seven
	// fields is 15.
	MaxRESPArgs = 32
	// MaxRESPBulk bounds one argument (a field value is at most
	// MaxFieldLen; anything longer is refused with the field's error).
	MaxRESPBulk = 1 << 10
	// MaxRESPCommand bounds one command's argument bytes together.
	MaxRESPCommand = 4 << 10
	// maxRESPPending bounds the replies to pipelined commands held before
	// they are written: past it the connection writes (and waits for the
	// client to read) before it reads more.
	maxRESPPending = 16 << 10
)

// NewRESPServer returns a RESP server answering with h.
func (h *Server) NewRESPServer() *RESPServer {
	return &RESPServer{h: h, conns: make(map[*respConn]struct{})}
}

// respConn is one connection's reusable state; after the first command it
// reads, decides and writes without allocating.
type respConn struct {
	c    net.Conn
	br   *bufio.Reader
	in   []byte // the current command's arguments, back to back
	args [MaxRESPArgs][]byte
	out  []byte // replies not yet written
	busy atomic.Bool
}

var respConnPool = sync.Pool{New: func() any {
	return &respConn{br: bufio.NewReaderSize(nil, 4<<10), in: make([]byte, 0, MaxRESPCommand), out: make([]byte, 0, 4<<10)}
}}

// Serve accepts connections on ln until Shutdown. It may serve several
// listeners at once (a TCP port and a Unix socket), each from its own call.
func (s *RESPServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() { // shut down before this listener was handed over
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.h.met.conns[ListenerRESP].acceptErrors.Add(1)
			s.h.log.Debug().Err(err).Dur("retry_in", backoff).Msg("resp accept")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		rc := respConnPool.Get().(*respConn)
		rc.c = c
		rc.br.Reset(c)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[rc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(rc)
	}
}

// Shutdown stops accepting, lets commands in progress finish and closes
// idle connections; after ctx expires it closes the rest.
func (s *RESPServer) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for _, ln := range s.lns {
		ln.Close()
	}
	for rc := range s.conns {
		if !rc.busy.Load() {
			rc.c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for rc := range s.conns {
			rc.c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (s *RESPServer) serveConn(rc *respConn) {
	defer func() {
		rc.c.Close()
		s.mu.Lock()
		delete(s.conns, rc)
		s.mu.Unlock()
		rc.c = nil
		rc.br.Reset(nil)
		rc.busy.Store(false)
		clear(rc.args[:])
		if cap(rc.out) <= 2*maxRESPPending {
			rc.out = rc.out[:0]
			respConnPool.Put(rc)
		}
		s.wg.Done()
	}()
	h := s.h
	for {
		if len(rc.out) > 0 && (rc.br.Buffered() == 0 || len(rc.out) >= maxRESPPending) {
			// every pipelined command read so far is answered: write
			rc.c.SetWriteDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
			if _, err := rc.c.Write(rc.out); err != nil {
				return
			}
			rc.out = rc.out[:0]
			rc.busy.Store(false)
			markIdle(rc.c)
		}
		if rc.br.Buffered() == 0 {
			rc.c.SetReadDeadline(time.Now().Add(h.opt.RPCIdleTimeout))
			if s.closing.Load() {
				return
			}
			if _, err := rc.br.Peek(1); err != nil {
				return // EOF, idle timeout or shutdown between commands
			}
		}
		rc.busy.Store(true)
		rc.c.SetReadDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
		n, err := ReadRESPCommand(rc.br, &rc.in, &rc.args)
		if err != nil {
			var pe respProtoError
			if errors.As(err, &pe) {
				h.met.parseErrors[tRESP].Add(1)
				rc.out = append(rc.out, "-ERR Protocol error: "...)
				rc.out = append(rc.out, pe...)
				rc.out = append(rc.out, "\r\n"...)
				rc.c.SetWriteDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
				rc.c.Write(rc.out)
			}
			return
		}
		var quit bool
		rc.out, quit = h.respCommand(rc.out, rc.args[:n])
		if quit {
			rc.c.SetWriteDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
			rc.c.Write(rc.out)
			return
		}
	}
}

// respProtoError is a request that breaks the RESP framing; the text
// follows "-ERR Protocol error: " before the connection is closed.
type respProtoError string

func (e respProtoError) Error() string { return string(e) }

const (
	errRESPNotArray = respProtoError("expected '*' (an array of bulk strings)")
	errRESPArrayLen = respProtoError("invalid multibulk length")
	errRESPNotBulk  = respProtoError("expected '$' (a bulk string)")
	errRESPBulkLen  = respProtoError("invalid bulk length")
	errRESPTooLarge = respProtoError("command larger than 4096 bytes")
	errRESPCRLF     = respProtoError("expected CRLF")
)

// ReadRESPCommand reads one command (an array of 1 to MaxRESPArgs bulk
// strings) from br. The arguments are copied into *buf (reused across
// commands; they stay valid until the next call) and args[:n] are set to
// them. A request that breaks the framing or a limit returns a
// respProtoError; I/O errors are returned as they are.
func ReadRESPCommand(br *bufio.Reader, buf *[]byte, args *[MaxRESPArgs][]byte) (n int, err error) {
	c, err := br.ReadByte()
	if err != nil {
		return 0, err
	}
	if c != '*' {
		return 0, errRESPNotArray
	}
	n, err = readRESPLen(br, MaxRESPArgs, errRESPArrayLen)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, errRESPArrayLen
	}
	if cap(*buf) < MaxRESPCommand {
		*buf = make([]byte, 0, MaxRESPCommand)
	}
	b := (*buf)[:0]
	for i := 0; i < n; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != '$' {
			return 0, errRESPNotBulk
		}
		l, err := readRESPLen(br, MaxRESPBulk, errRESPBulkLen)
		if err != nil {
			return 0, err
		}
		if l < 0 {
			return 0, errRESPBulkLen
		}
		if len(b)+l > MaxRESPCommand {
			return 0, errRESPTooLarge
		}
		start := len(b)
		b = b[:start+l]
		if _, err := io.ReadFull(br, b[start:]); err != nil {
			return 0, err
		}
		if err := readCRLF(br); err != nil {
			return 0, err
		}
		args[i] = b[start : start+l : start+l]
	}
	*buf = b
	return n, nil
}

// readRESPLen reads a decimal length (an optional '-', at most 10 digits)
// up to CRLF; over max is bad.
func readRESPLen(br *bufio.Reader, max int, bad respProtoError) (int, error) {
	n, digits, neg := 0, 0, false
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch {
		case c >= '0' && c <= '9' && digits < 10:
			n = n*10 + int(c-'0')
			digits++
		case c == '-' && digits == 0 && !neg:
			neg = true
		case c == '\r' && digits > 0:
			if err := expectByte(br, '\n'); err != nil {
				return 0, err
			}
			if neg {
				return -n, nil
			}
			if n > max {
				return 0, bad
			}
			return n, nil
		default:
			return 0, bad
		}
	}
}

func readCRLF(br *bufio.Reader) error {
	if err := expectByte(br, '\r'); err != nil {
		return err
	}
	return expectByte(br, '\n')
}

func expectByte(br *bufio.Reader, want byte) error {
	c, err := br.ReadByte()
	if err != nil {
		return err
	}
	if c != want {
		return errRESPCRLF
	}
	return nil
}

// respCommand answers one command into dst; quit says the connection is
// to be closed once the reply is written.
func (h *Server) respCommand(dst []byte, args [][]byte) (out []byte, quit bool) {
	name := args[0]
	switch {
	case asciiEqualFold(name, "TGCHECK"):
		return h.respCheck(dst, args[1:]), false
	case asciiEqualFold(name, "PING"):
		switch len(args) {
		case 1:
			return append(dst, "+PONG\r\n"...), false
		case 2:
			return appendRESPBulk(dst, args[1]), false
		}
		return appendRESPArity(dst, "ping"), false
	case asciiEqualFold(name, "SELECT"):
		if len(args) != 2 {
			return appendRESPArity(dst, "select"), false
		}
		if string(args[1]) != "0" {
			return append(dst, "-ERR DB index is out of range (tollgate serves db 0 only)\r\n"...), false
		}
		return append(dst, "+OK\r\n"...), false
	case asciiEqualFold(name, "QUIT"):
		return append(dst, "+OK\r\n"...), true
	}
	dst = append(dst, "-ERR unknown command '"...)
	dst = appendRESPErrText(dst, name, 32)
	return append(dst, "' (tollgate answers TGCHECK, PING, SELECT 0, QUIT)\r\n"...), false
}

// respCheck decides TGCHECK's field/value pairs and appends the verdict
// as a bulk string, or an -ERR reply saying what is wrong.
func (h *Server) respCheck(dst []byte, kv [][]byte) []byte {
	start := time.Now()
	var q matcher.Query
	f := formatCompact
	e := decodeRESPArgs(kv, &q, &f)
	if !e.ok() {
		h.met.parseErrors[tRESP].Add(1)
		dst = append(dst, "-ERR "...)
		if e.kind == errRESPOdd {
			dst = append(dst, "TGCHECK takes field value pairs"...)
		} else {
			// the JSON message without its escapes (no field value
			// goes into it, so every backslash is an escape)
			m := len(dst)
			dst = e.appendMsg(dst)
			dst = dropByte(dst, m, '\\')
		}
		dst = append(dst, "\r\n"...)
		h.observeSince(tRESP, start)
		return dst
	}
	v := h.decide(&q, tRESP, start)
	// the bulk header needs the length first: reserve room for it,
	// encode, then move the header in front (as the netstrings do)
	const reserve = 12 // "$" + up to 9 digits + CRLF
	p := len(dst)
	dst = append(dst, "            "...)
	if f == formatCompact {
		dst = AppendVerdictCompact(dst, &v)
	} else {
		dst = AppendVerdict(dst, &v)
	}
	body := len(dst) - p - reserve
	var hb [reserve]byte
	hdr := append(hb[:0], '$')
	hdr = strconv.AppendInt(hdr, int64(body), 10)
	hdr = append(hdr, '\r', '\n')
	shift := reserve - len(hdr)
	copy(dst[p+shift:], hdr)
	if shift > 0 {
		copy(dst[p:], dst[p+shift:])
		dst = dst[:len(dst)-shift]
	}
	dst = append(dst, '\r', '\n')
	h.observeSince(tRESP, start)
	return dst
}

// errRESPOdd is TGCHECK with a field and no value.
const errRESPOdd errKind = 255

// decodeRESPArgs fills q from TGCHECK's field/value pairs, with the rules
// of decodeArgs: unknown fields ignored, known ones at most once and at
// most MaxFieldLen bytes, "to" required, valid names, a src_ip that parses.
func decodeRESPArgs(kv [][]byte, q *matcher.Query, f *verdictFormat) decodeError {
	if len(kv)%2 != 0 {
		return decodeError{kind: errRESPOdd}
	}
	var seen uint8
	fmtSeen, ipSeen := false, false
	for j := 0; j < len(kv); j += 2 {
		k, v := kv[j], kv[j+1]
		i := fieldIndex(k)
		if i < 0 {
			if string(k) == formatName {
				var ok bool
				if *f, ok = parseFormat(v); !ok || fmtSeen {
					return decodeError{kind: errFormat}
				}
				fmtSeen = true
			}
			continue
		}
		if seen&(1<<i) != 0 {
			return decodeError{kind: errDuplicate, field: int8(i)}
		}
		seen |= 1 << i
		if len(v) > MaxFieldLen {
			return decodeError{kind: errTooLong, field: int8(i)}
		}
		if i == fSrcIP {
			ipSeen = true
		}
		*fieldPtr(q, i) = b2s(v)
	}
	if q.To == "" {
		return decodeError{kind: errMissingTo}
	}
	if e := checkNames(q.Account, q.Subaccount); !e.ok() {
		return e
	}
	if ipSeen {
		return checkSrcIP(q.SrcIP)
	}
	return decodeError{}
}

// appendRESPBulk appends b as a bulk string.
func appendRESPBulk(dst, b []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

func appendRESPArity(dst []byte, cmd string) []byte {
	dst = append(dst, "-ERR wrong number of arguments for '"...)
	dst = append(dst, cmd...)
	return append(dst, "' command\r\n"...)
}

// appendRESPErrText appends at most max bytes of b, with anything but
// printable ASCII (and the quote) as '?': an error line holds no CR or LF.
func appendRESPErrText(dst, b []byte, max int) []byte {
	for i, c := range b {
		if i == max {
			return append(dst, "..."...)
		}
		if c < 0x20 || c > 0x7e || c == '\'' {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// dropByte removes every c from dst[from:].
func dropByte(dst []byte, from int, c byte) []byte {
	if bytes.IndexByte(dst[from:], c) < 0 {
		return dst
	}
	w := from
	for _, x := range dst[from:] {
		if x != c {
			dst[w] = x
			w++
		}
	}
	return dst[:w]
}

// asciiEqualFold reports whether b is name in any letter case (Redis
// command names are case-insensitive); name is upper case.
func asciiEqualFold(b []byte, name string) bool {
	if len(b) != len(name) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}
