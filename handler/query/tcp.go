package query

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RPCServer serves JSON-RPC 2.0 over TCP in the two framings SIP proxies
// use, told apart by a connection's first byte:
//
//   - a digit: netstrings ("len:payload,"), as Kamailio's janssonrpcc sends;
//     the connection stays open for any number of requests.
//   - anything else ('{', '[' or whitespace): one bare JSON value, as
//     OpenSIPS's jsonrpc module sends; the reply is written and the
//     connection closed, as that client expects.
type RPCServer struct {
	h *Server

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*rpcConn]struct{}
	closing atomic.Bool
	wg      sync.WaitGroup
}

// NewRPCServer returns a TCP JSON-RPC server answering with h.
func (h *Server) NewRPCServer() *RPCServer {
	return &RPCServer{h: h, conns: make(map[*rpcConn]struct{})}
}

// rpcConn is one connection's reusable state: after the first request, a
// connection reads, decides and writes without allocating.
type rpcConn struct {
	c    net.Conn
	br   *bufio.Reader
	in   []byte
	out  []byte
	sc   scratch
	busy atomic.Bool
}

var rpcConnPool = sync.Pool{New: func() any {
	return &rpcConn{br: bufio.NewReaderSize(nil, 4<<10), in: make([]byte, 0, 4<<10), out: make([]byte, 0, 4<<10)}
}}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("tollgate: RPC server closed")

// Serve accepts connections on ln until Shutdown.
func (s *RPCServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
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
			// Anything else (out of descriptors, a connection reset
			// before it was accepted) passes: back off and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.h.met.conns[ListenerRPC].acceptErrors.Add(1)
			s.h.log.Debug().Err(err).Dur("retry_in", backoff).Msg("rpc accept")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		rc := rpcConnPool.Get().(*rpcConn)
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
		s.h.met.tcpConns.Add(1)
		s.h.met.tcpAccepted.Add(1)
		go s.serveConn(rc)
	}
}

// Shutdown stops accepting, lets requests in progress finish and closes
// idle connections; after ctx expires it closes the rest.
func (s *RPCServer) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
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

func (s *RPCServer) serveConn(rc *rpcConn) {
	defer func() {
		rc.c.Close()
		s.mu.Lock()
		delete(s.conns, rc)
		s.mu.Unlock()
		s.h.met.tcpConns.Add(-1)
		rc.c = nil
		rc.br.Reset(nil)
		rc.sc.release()
		rc.busy.Store(false)
		if cap(rc.in) <= MaxRPCBody+16 && cap(rc.out) <= 4*MaxRPCBody {
			rpcConnPool.Put(rc)
		}
		s.wg.Done()
	}()
	rc.sc.local = localPeer(rc.c.RemoteAddr())
	// A persistent client (janssonrpcc) may connect long before its first
	// request, so the first byte gets the idle timeout, not the frame one.
	rc.c.SetReadDeadline(time.Now().Add(s.h.opt.RPCIdleTimeout))
	if s.closing.Load() {
		return
	}
	first, err := rc.br.Peek(1)
	if err != nil {
		return
	}
	if first[0] >= '0' && first[0] <= '9' {
		s.netstrings(rc)
		return
	}
	rc.c.SetReadDeadline(time.Now().Add(s.h.opt.RPCFrameTimeout))
	s.bareJSON(rc)
}

// netstrings serves "len:payload," frames until the client closes, stays
// idle too long, breaks the framing, or the server shuts down.
func (s *RPCServer) netstrings(rc *rpcConn) {
	h := s.h
	for {
		rc.c.SetReadDeadline(time.Now().Add(h.opt.RPCIdleTimeout))
		if s.closing.Load() {
			return
		}
		if _, err := rc.br.ReadByte(); err != nil {
			return // EOF, idle timeout or shutdown between frames
		}
		rc.busy.Store(true)
		rc.c.SetReadDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
		rc.br.UnreadByte()
		payload, err := ReadNetstring(rc.br, &rc.in)
		if err != nil {
			if fe, ok := err.(framingError); ok {
				s.replyFramingError(rc, string(fe))
			}
			return
		}
		start := time.Now()
		// Reserve room for the longest length prefix, encode the payload
		// after it, then write the prefix right-aligned in front of it.
		const reserve = 11
		out := append(rc.out[:0], "00000000000"...)
		out, replied := h.rpc(out, payload, tNetstring, &rc.sc)
		if replied {
			var lb [reserve]byte
			l := strconv.AppendInt(lb[:0], int64(len(out)-reserve), 10)
			l = append(l, ':')
			p := reserve - len(l)
			copy(out[p:], l)
			out = append(out, ',')
			// Observed before the write, so a client that reads its reply
			// and then scrapes /metrics always sees this request counted.
			h.observeSince(tNetstring, start)
			rc.c.SetWriteDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
			if _, err := rc.c.Write(out[p:]); err != nil {
				rc.out = out
				return
			}
		} else {
			h.observeSince(tNetstring, start)
		}
		rc.out = out
		rc.busy.Store(false)
		markIdle(rc.c)
	}
}

// framingError is a netstring that cannot be followed; its text is the
// message of the parse error sent back before the connection is closed.
type framingError string

// Error is the message sent back in the -32700 reply.
func (e framingError) Error() string { return string(e) }

const (
	errNetstringLen   framingError = "malformed netstring: expected a length of at most 9 digits, then ':'"
	errNetstringComma framingError = "malformed netstring: payload not followed by ','"
	errNetstringLarge framingError = "malformed netstring: request larger than 65536 bytes"
)

// ReadNetstring reads one "len:payload," frame from br into *buf (grown as
// needed, reused across frames) and returns the payload. A frame that breaks
// the format returns a framingError; I/O errors are returned as they are.
func ReadNetstring(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	n, digits := 0, 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == ':' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || digits == 9 {
			return nil, errNetstringLen
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if n > MaxRPCBody {
		return nil, errNetstringLarge
	}
	if cap(*buf) < n+1 {
		*buf = make([]byte, 0, n+1)
	}
	frame := (*buf)[:n+1]
	if _, err := io.ReadFull(br, frame); err != nil {
		return nil, err
	}
	if frame[n] != ',' {
		return nil, errNetstringComma
	}
	return frame[:n], nil
}

// replyFramingError answers a connection whose framing cannot be followed with a
// parse error in its own framing, then the caller closes it: there is no way
// to find the next frame.
func (s *RPCServer) replyFramingError(rc *rpcConn, msg string) {
	s.h.met.parseErrors[tNetstring].Add(1)
	body := appendRPCError(nil, nil, rpcParseError, msg, decodeError{})
	out := strconv.AppendInt(nil, int64(len(body)), 10)
	out = append(out, ':')
	out = append(out, body...)
	out = append(out, ',')
	rc.c.SetWriteDeadline(time.Now().Add(s.h.opt.RPCFrameTimeout))
	rc.c.Write(out)
}

// bareJSON reads one JSON value, answers it and returns (closing the
// connection). The end of the value is found by tracking brackets and
// strings as bytes arrive, so a request split over several TCP segments is
// read whole and nothing after it is waited for.
func (s *RPCServer) bareJSON(rc *rpcConn) {
	h := s.h
	rc.busy.Store(true)
	var ( // the bracket tracker's state
		depth     int
		inStr     bool
		esc       bool
		started   bool
		completed bool
		tooLarge  bool
	)
	in := rc.in[:0]
	for !completed {
		c, err := rc.br.ReadByte()
		if err != nil {
			if len(in) == 0 {
				return
			}
			break // answer what arrived: it is a parse error
		}
		if len(in) == MaxRPCBody {
			tooLarge = true
			break
		}
		in = append(in, c)
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			started = true
		case c == '}' || c == ']':
			depth--
			completed = started && depth <= 0
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			if !started {
				completed = true // not a container: let the parser say why
			}
		}
	}
	rc.in = in
	start := time.Now()
	out := rc.out[:0]
	replied := true
	if tooLarge {
		h.met.parseErrors[tTCPJSON].Add(1)
		out = appendRPCError(out, nil, rpcInvalidRequest, "invalid request: larger than "+strconv.Itoa(MaxRPCBody)+" bytes", decodeError{})
	} else {
		out, replied = h.rpc(out, in, tTCPJSON, &rc.sc)
	}
	h.observeSince(tTCPJSON, start) // before the write, as in netstrings
	if replied {
		out = append(out, '\n')
		rc.c.SetWriteDeadline(time.Now().Add(h.opt.RPCFrameTimeout))
		rc.c.Write(out)
	}
	rc.out = out
}
