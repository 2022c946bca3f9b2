package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// errKind classifies a failed request.
type errKind uint8

const (
	errNone          errKind = iota
	errConnect               // could not connect (refused, unreachable, dial timeout)
	errTimeout               // no (complete) answer within -timeout
	errIO                    // connection reset or closed mid-request
	errHTTPStatus            // HTTP status other than 200/202/403
	errBadBody               // answer is not the expected JSON (or broken framing)
	errRPC                   // JSON-RPC error object instead of a result
	errVerdictStatus         // body verdict disagrees with the HTTP status
	numErrKinds
)

var errKindNames = [numErrKinds]string{
	"", "connect", "timeout", "io", "http_status", "bad_body", "rpc_error", "verdict_status_mismatch",
}

func (k errKind) String() string { return errKindNames[k] }

// outcome is the result of one request. verdict and reason point into the
// client's buffers and are valid until its next do.
type outcome struct {
	kind    errKind
	status  int // HTTP status, 0 for raw TCP
	rpcCode int // JSON-RPC error code when kind == errRPC
	verdict []byte
	reason  []byte
	// done, when set, is when the answer was complete; the client may do
	// more work after that (plain TCP waits for the server's close).
	done time.Time
}

// transport is one of the wire targets; it hands out a client per worker.
type transport interface {
	newClient() client
	close()
}

// client sends one check at a time.
type client interface {
	do(c *call, id callID, deadline time.Time) outcome
	close()
}

// Transport names accepted by -transport.
const (
	transportHTTPGet      = "http-get"
	transportHTTPPost     = "http-post"
	transportRPCHTTP      = "rpc-http"
	transportRPCNetstring = "rpc-netstring"
	transportRPCTCP       = "rpc-tcp"
)

var transportNames = []string{transportHTTPGet, transportHTTPPost, transportRPCHTTP, transportRPCNetstring, transportRPCTCP}

// usesHTTP reports whether the transport talks to the query (HTTP) address.
func usesHTTP(name string) bool {
	return name == transportHTTPGet || name == transportHTTPPost || name == transportRPCHTTP
}

// newTransport builds the named transport for addr with up to conns
// connections.
func newTransport(name, addr string, conns int, timeout time.Duration) (transport, error) {
	switch name {
	case transportHTTPGet, transportHTTPPost, transportRPCHTTP:
		return newHTTPTransport(name, addr, conns, timeout), nil
	case transportRPCNetstring:
		return &tcpTransport{addr: addr, netstring: true}, nil
	case transportRPCTCP:
		return &tcpTransport{addr: addr}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", name)
}

// connectError marks a dial failure.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		return nil, &connectError{os.ErrDeadlineExceeded}
	}
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, &connectError{err}
	}
	return c, nil
}

// classify maps a transport error to its kind.
func classify(err error) errKind {
	var ce *connectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, fasthttp.ErrDialTimeout):
		return errConnect
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, errNetstring):
		return errBadBody
	}
	return errIO
}

// statusVerdict is the verdict the contract attaches to an HTTP status.
func statusVerdict(status int) string {
	switch status {
	case 200:
		return "allow"
	case 202:
		return "screen"
	case 403:
		return "reject"
	}
	return ""
}

// httpTransport drives the query API over HTTP/1.1 keep-alive connections.
type httpTransport struct {
	name string
	hc   *fasthttp.HostClient
	uri  []byte // scheme://addr/path, plus "?" for GET
}

func newHTTPTransport(name, addr string, conns int, timeout time.Duration) *httpTransport {
	path := "/v1/check"
	if name == transportRPCHTTP {
		path = "/rpc"
	}
	uri := "http://" + addr + path
	if name == transportHTTPGet {
		uri += "?"
	}
	return &httpTransport{
		name: name,
		uri:  []byte(uri),
		hc: &fasthttp.HostClient{
			Addr:     addr,
			Name:     "tollgate-loadtest",
			MaxConns: conns,
			// Every failure must be seen: no silent retries.
			MaxIdemponentCallAttempts: 1,
			RetryIfErr: func(*fasthttp.Request, int, error) (bool, bool) {
				return false, false
			},
			MaxConnWaitTimeout:     timeout,
			MaxIdleConnDuration:    30 * time.Second,
			DisablePathNormalizing: true,
			DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
				return dial(addr, timeout)
			},
		},
	}
}

func (t *httpTransport) newClient() client {
	req := fasthttp.AcquireRequest()
	if t.name == transportHTTPGet {
		req.Header.SetMethod(fasthttp.MethodGet)
	} else {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetRequestURIBytes(t.uri)
	}
	return &httpClient{t: t, req: req, resp: fasthttp.AcquireResponse()}
}

func (t *httpTransport) close() { t.hc.CloseIdleConnections() }

// httpClient is one worker's request/response pair and buffer.
type httpClient struct {
	t    *httpTransport
	req  *fasthttp.Request
	resp *fasthttp.Response
	buf  []byte
	rpc  uint64
}

func (c *httpClient) do(cl *call, id callID, deadline time.Time) outcome {
	switch c.t.name {
	case transportHTTPGet:
		c.buf = appendQuery(append(c.buf[:0], c.t.uri...), cl, id)
		c.req.SetRequestURIBytes(c.buf)
	case transportHTTPPost:
		c.buf = appendCheckJSON(c.buf[:0], cl, id)
		c.req.SetBody(c.buf)
	default:
		c.rpc++
		c.buf = appendRPC(c.buf[:0], cl, id, c.rpc)
		c.req.SetBody(c.buf)
	}
	c.resp.Reset()
	if err := c.t.hc.DoDeadline(c.req, c.resp, deadline); err != nil {
		return outcome{kind: classify(err)}
	}
	status := c.resp.StatusCode()
	body := c.resp.Body()
	o := outcome{status: status}
	if c.t.name == transportRPCHTTP {
		if status != 200 {
			o.kind = errHTTPStatus
			return o
		}
		return rpcOutcome(o, body, c.rpc)
	}
	want := statusVerdict(status)
	if want == "" {
		o.kind = errHTTPStatus
		return o
	}
	verdict, reason, ok := parseCheck(body)
	switch {
	case !ok:
		o.kind = errBadBody
	case verdict == nil:
		// No verdict in the body: the status carries it.
		o.verdict, o.reason = []byte(want), reason
	case string(verdict) != want:
		o.kind = errVerdictStatus
		o.verdict = verdict
	default:
		o.verdict, o.reason = verdict, reason
	}
	return o
}

func (c *httpClient) close() {
	fasthttp.ReleaseRequest(c.req)
	fasthttp.ReleaseResponse(c.resp)
}

// rpcOutcome fills o from a JSON-RPC response body.
func rpcOutcome(o outcome, body []byte, wantID uint64) outcome {
	a, ok := parseRPC(body, wantID)
	switch {
	case !ok:
		o.kind = errBadBody
	case a.isError:
		o.kind = errRPC
		o.rpcCode = a.code
	default:
		o.verdict, o.reason = a.verdict, a.reason
	}
	return o
}

// tcpTransport speaks JSON-RPC over raw TCP: netstring-framed on a
// persistent connection per worker (Kamailio janssonrpcc), or one bare JSON
// object per connection that the server closes after its reply (OpenSIPS
// jsonrpc).
type tcpTransport struct {
	addr      string
	netstring bool
}

func (t *tcpTransport) newClient() client {
	if t.netstring {
		return &netstringClient{addr: t.addr}
	}
	return &plainClient{addr: t.addr, in: make([]byte, 0, 1024)}
}

func (t *tcpTransport) close() {}

// netstringClient keeps one connection and sends one request at a time.
type netstringClient struct {
	addr    string
	conn    net.Conn
	br      *bufio.Reader
	payload []byte
	out     []byte
	in      []byte
	rpc     uint64
}

func (c *netstringClient) fail(err error) outcome {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return outcome{kind: classify(err)}
}

func (c *netstringClient) do(cl *call, id callID, deadline time.Time) outcome {
	if c.conn == nil {
		conn, err := dial(c.addr, time.Until(deadline))
		if err != nil {
			return outcome{kind: errConnect}
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 4096)
		} else {
			c.br.Reset(conn)
		}
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return c.fail(err)
	}
	c.rpc++
	c.payload = appendRPC(c.payload[:0], cl, id, c.rpc)
	c.out = appendNetstring(c.out[:0], c.payload)
	if _, err := c.conn.Write(c.out); err != nil {
		return c.fail(err)
	}
	var err error
	c.in, err = readNetstring(c.br, c.in)
	if err != nil {
		return c.fail(err)
	}
	o := rpcOutcome(outcome{}, c.in, c.rpc)
	if o.kind == errBadBody {
		// We can no longer trust the stream position.
		c.conn.Close()
		c.conn = nil
	}
	return o
}

func (c *netstringClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// plainClient opens a connection per request, sends one JSON object and
// reads one back; the server must then close the connection.
type plainClient struct {
	addr string
	out  []byte
	in   []byte
}

func (c *plainClient) do(cl *call, id callID, deadline time.Time) outcome {
	conn, err := dial(c.addr, time.Until(deadline))
	if err != nil {
		return outcome{kind: errConnect}
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return outcome{kind: classify(err)}
	}
	c.out = appendRPC(c.out[:0], cl, id, id.seq)
	if _, err := conn.Write(c.out); err != nil {
		return outcome{kind: classify(err)}
	}
	in := c.in[:0]
	end := scanIncomplete
	for end == scanIncomplete {
		if len(in) == cap(in) {
			if len(in) >= maxNetstring {
				return outcome{kind: errBadBody}
			}
			in = append(in, 0)[:len(in)]
		}
		n, err := conn.Read(in[len(in):cap(in)])
		in = in[:len(in)+n]
		if n > 0 {
			end = objectEnd(in)
		}
		if err != nil && end == scanIncomplete {
			c.in = in
			if len(in) > 0 && errors.Is(err, io.EOF) {
				return outcome{kind: errBadBody} // closed mid-answer
			}
			return outcome{kind: classify(err)}
		}
	}
	c.in = in
	if end == scanInvalid {
		return outcome{kind: errBadBody}
	}
	o := rpcOutcome(outcome{}, in[:end], id.seq)
	o.done = time.Now()
	// The answer is complete; the server closes next. Anything else after
	// the object breaks the protocol.
	if !isBlank(in[end:]) {
		return outcome{kind: errBadBody, done: o.done}
	}
	var tail [64]byte
	for {
		n, err := conn.Read(tail[:])
		if !isBlank(tail[:n]) {
			return outcome{kind: errBadBody, done: o.done}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return o
			}
			k := classify(err)
			if k == errIO {
				return o // reset after the reply: the reply stands
			}
			return outcome{kind: k, done: o.done}
		}
	}
}

func (c *plainClient) close() {}
