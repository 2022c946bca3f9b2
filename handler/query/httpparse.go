package query

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"
)

// The epoll query loop (loop_linux.go) reads requests with parseRequest:
// a strict reader of the few request shapes a proxy sends per INVITE.
// Anything it is not sure of is not an error of its own: it says
// parseOther, and the loop hands the connection, from that request on, to
// the fasthttp server, which answers it as it always did (its 400s, 404s,
// 405s, chunked bodies, Expect, /v1/events, /ready, /metrics). So the loop
// never answers differently from fasthttp; it only answers the common
// case without fasthttp's per-connection goroutine.

// parseStatus is what parseRequest made of a buffer.
type parseStatus uint8

const (
	parseMore  parseStatus = iota // incomplete: read more
	parseOK                       // one complete request the loop serves
	parseOther                    // not for the loop: hand to fasthttp
)

// Which route a parsed request takes.
const (
	routeCheckGet uint8 = iota + 1
	routeCheckPost
	routeRPC
)

// loopMaxHeader is fasthttp's limit for the request line and headers
// (the query listener's ReadBufferSize).
const loopMaxHeader = 8 << 10

// httpReq is one request the loop serves; its slices point into the
// connection's buffer.
type httpReq struct {
	route uint8
	query []byte // after '?', GET only
	body  []byte // POST only
	// close: answer with Connection: close and close after it (an HTTP/1.1
	// request saying "close", an HTTP/1.0 one not saying "keep-alive").
	close bool
	// http10KeepAlive: an HTTP/1.0 request asking for keep-alive, which
	// fasthttp answers with Connection: keep-alive.
	http10KeepAlive bool
}

var (
	crlf2     = []byte("\r\n\r\n")
	lf2       = []byte("\n\n")
	lfcrlf    = []byte("\n\r\n")
	hdrHost   = []byte("host")
	hdrCL     = []byte("content-length")
	hdrConn   = []byte("connection")
	hdrTE     = []byte("transfer-encoding")
	hdrExpect = []byte("expect")
	hdrUpg    = []byte("upgrade")
)

// parseRequest reads the request at the start of b. n is its length
// (request line, headers and body) when st is parseOK.
func parseRequest(b []byte) (r httpReq, n int, st parseStatus) {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		if len(b) >= loopMaxHeader || bytes.Contains(b, lf2) || bytes.Contains(b, lfcrlf) {
			// too long, or headers ended by bare LFs: fasthttp's to read
			return r, 0, parseOther
		}
		return r, 0, parseMore
	}
	if end+4 > loopMaxHeader {
		return r, 0, parseOther
	}
	head := b[:end+2] // every line with its CRLF
	// Request line: METHOD SP target SP HTTP/1.x
	nl := bytes.IndexByte(head, '\n')
	if nl < 1 || head[nl-1] != '\r' {
		return r, 0, parseOther
	}
	line := head[:nl-1]
	post := false
	switch {
	case len(line) > 4 && string(line[:4]) == "GET ":
		line = line[4:]
	case len(line) > 5 && string(line[:5]) == "POST ":
		line = line[5:]
		post = true
	default:
		return r, 0, parseOther
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return r, 0, parseOther
	}
	target, ver := line[:sp], line[sp+1:]
	http10 := false
	switch string(ver) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return r, 0, parseOther
	}
	path := target
	if q := bytes.IndexByte(target, '?'); q >= 0 {
		path, r.query = target[:q], target[q+1:]
	}
	for _, c := range target {
		// Only plain printable ASCII, no fragment: anything else (and any
		// path fasthttp would normalise) is fasthttp's to read.
		if c <= ' ' || c >= 0x7f || c == '#' {
			return r, 0, parseOther
		}
	}
	switch {
	case !post && string(path) == "/v1/check":
		r.route = routeCheckGet
	case post && string(path) == "/v1/check":
		r.route = routeCheckPost
	case post && string(path) == "/rpc":
		r.route = routeRPC
	default:
		return r, 0, parseOther
	}
	if !post && len(r.query) == 0 {
		return r, 0, parseOther // fasthttp's to answer (the 400 of a missing "to")
	}
	// Headers: "Name: value" lines. The loop reads Content-Length and
	// Connection; Transfer-Encoding, Expect and Upgrade, a header folded
	// over two lines, a bare LF or a name with odd bytes send the request
	// to fasthttp.
	cl := -1
	var connClose, connKeep, host bool
	rest := head[nl+1:]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return r, 0, parseOther
		}
		h := rest[:i-1]
		rest = rest[i+1:]
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return r, 0, parseOther
		}
		name := h[:colon]
		for _, c := range name {
			if !tokenChar(c) {
				return r, 0, parseOther
			}
		}
		v := trimOWS(h[colon+1:])
		for _, c := range v {
			if c < ' ' && c != '\t' || c == 0x7f {
				return r, 0, parseOther
			}
		}
		switch {
		case bytes.EqualFold(name, hdrCL):
			if cl >= 0 || len(v) == 0 || len(v) > 9 {
				return r, 0, parseOther
			}
			cl = 0
			for _, c := range v {
				if c < '0' || c > '9' {
					return r, 0, parseOther
				}
				cl = cl*10 + int(c-'0')
			}
		case bytes.EqualFold(name, hdrConn):
			switch {
			case bytes.EqualFold(v, []byte("close")):
				connClose = true
			case bytes.EqualFold(v, []byte("keep-alive")):
				connKeep = true
			default:
				return r, 0, parseOther
			}
		case bytes.EqualFold(name, hdrHost):
			// a plain host[:port] only: fasthttp refuses an empty one and
			// reads odd ones into the URI
			if len(v) == 0 || host {
				return r, 0, parseOther
			}
			for _, c := range v {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
					return r, 0, parseOther
				}
			}
			host = true
		case bytes.EqualFold(name, hdrTE), bytes.EqualFold(name, hdrExpect), bytes.EqualFold(name, hdrUpg):
			return r, 0, parseOther
		}
	}
	if connClose && connKeep || !http10 && !host {
		// both, or an HTTP/1.1 request without Host (fasthttp's 400)
		return r, 0, parseOther
	}
	n = end + 4
	if post {
		if cl < 0 || cl > MaxRPCBody {
			return r, 0, parseOther // no length (fasthttp reads to EOF) or over the limit: fasthttp's 400
		}
		if len(b)-n < cl {
			return r, 0, parseMore
		}
		r.body = b[n : n+cl]
		n += cl
	} else if cl > 0 {
		return r, 0, parseOther // a GET with a body
	}
	if http10 {
		r.close = !connKeep
		r.http10KeepAlive = connKeep
	} else {
		r.close = connClose
	}
	return r, n, parseOK
}

// tokenChar is an RFC 9110 token character.
func tokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// appendHead appends the status line and headers fasthttp's query server
// writes for an answer of n bytes of type ct (a 204 has no Content-Length).
func appendHead(out []byte, status int, r *httpReq, ct []byte, n int) []byte {
	if h := cachedHead(status, ct); h != nil {
		out = append(out, h...)
	} else {
		out = appendStatusType(out, status, ct)
	}
	if status != fasthttp.StatusNoContent {
		out = append(out, "Content-Length: "...)
		out = appendInt(out, n)
		out = append(out, "\r\n"...)
	}
	switch {
	case r.close:
		out = append(out, "Connection: close\r\n"...)
	case r.http10KeepAlive:
		out = append(out, "Connection: keep-alive\r\n"...)
	}
	return append(out, "\r\n"...)
}

// appendStatusType appends the status line and the Content-Type header.
func appendStatusType(out []byte, status int, ct []byte) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, fasthttp.StatusMessage(status)...)
	out = append(out, "\r\n"...)
	out = append(out, "Content-Type: "...)
	out = append(out, ct...)
	return append(out, "\r\n"...)
}

// headStatuses are the statuses a check or an RPC call answers with; their
// status line and Content-Type are encoded once (heads).
var headStatuses = [...]int{fasthttp.StatusOK, fasthttp.StatusAccepted, fasthttp.StatusForbidden,
	fasthttp.StatusBadRequest, fasthttp.StatusNoContent}

var heads = func() (t [len(headStatuses)][2][]byte) {
	for i, st := range headStatuses {
		t[i][0] = appendStatusType(nil, st, ctJSON)
		t[i][1] = appendStatusType(nil, st, ctText)
	}
	return t
}()

// cachedHead is appendStatusType's bytes for status and ct from heads, nil
// if they are not there.
func cachedHead(status int, ct []byte) []byte {
	k := 0
	switch {
	case string(ct) == string(ctJSON):
	case string(ct) == string(ctText):
		k = 1
	default:
		return nil
	}
	for i, st := range headStatuses {
		if st == status {
			return heads[i][k]
		}
	}
	return nil
}

// appendInt is strconv.AppendInt for the small numbers of an answer
// (lengths, caps), without its general path below 100,000.
func appendInt(dst []byte, n int) []byte {
	if n < 0 || n >= 100000 {
		return strconv.AppendInt(dst, int64(n), 10)
	}
	if n < 10 {
		return append(dst, byte('0'+n))
	}
	var b [5]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, b[i:]...)
}
