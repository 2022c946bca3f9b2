package query

import (
	"strconv"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/velocity"
)

// JSON-RPC 2.0 error codes (section 5.1 of the specification).
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	// rpcUnauthorized (in the range JSON-RPC leaves to servers): a call
	// event without the events token.
	rpcUnauthorized = -32001
)

// rpcRequest is the envelope of one JSON-RPC request, as spans of the
// payload: nothing is copied.
type rpcRequest struct {
	id        []byte // raw JSON of the id; nil when absent (a notification)
	method    []byte // raw string content (may hold escapes)
	methodEsc bool
	params    []byte // raw JSON of params; nil when absent
	version   []byte // raw string content of "jsonrpc"
	hasMethod bool
	badMethod bool // method present but not a string
	badID     bool // id present but not a string, number or null
	badVer    bool // jsonrpc present but not a string
}

// parseEnvelope reads one request object. A syntax error is returned as
// such (-32700); everything else about the envelope is judged by the caller.
func parseEnvelope(b []byte, r *rpcRequest) decodeError {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return decodeError{kind: errNotObject}
	}
	s.i++
	s.ws()
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		return s.end()
	}
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] != '"' {
			return s.syntax()
		}
		ks, ke, _, e := s.str()
		if !e.ok() {
			return e
		}
		key := b[ks:ke]
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return s.syntax()
		}
		s.i++
		s.ws()
		vs := s.i
		if e := s.value(1); !e.ok() {
			return e
		}
		val := b[vs:s.i]
		switch string(key) {
		case "jsonrpc":
			if val[0] == '"' {
				r.version = val[1 : len(val)-1]
			} else {
				r.badVer = true
			}
		case "method":
			r.hasMethod = true
			if val[0] == '"' {
				r.method = val[1 : len(val)-1]
				for _, c := range r.method {
					if c == '\\' {
						r.methodEsc = true
					}
				}
			} else {
				r.badMethod = true
			}
		case "params":
			r.params = val
		case "id":
			switch c := val[0]; {
			case c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 'n':
				r.id = val
			default:
				r.id, r.badID = nullID, true
			}
		}
		s.ws()
		if s.i >= len(b) {
			return s.syntax()
		}
		if b[s.i] == '}' {
			s.i++
			return s.end()
		}
		if b[s.i] != ',' {
			return s.syntax()
		}
		s.i++
	}
}

// end accepts only whitespace after the top-level value.
func (s *scanner) end() decodeError {
	s.ws()
	if s.i != len(s.b) {
		return s.syntax()
	}
	return decodeError{}
}

var nullID = []byte("null")

// appendRPCError appends a JSON-RPC error response. msg is plain text
// (escaped here); detail, when set, is a decodeError message appended to it.
func appendRPCError(dst []byte, id []byte, code int, msg string, detail decodeError) []byte {
	if id == nil {
		id = nullID
	}
	dst = append(dst, `{"jsonrpc":"2.0","error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"message":`...)
	if detail.kind == errNone {
		dst = AppendJSONString(dst, msg)
	} else {
		dst = append(dst, '"')
		dst = append(dst, msg...) // plain ASCII, no quotes
		dst = detail.appendMsg(dst)
		dst = append(dst, '"')
	}
	dst = append(dst, `},"id":`...)
	dst = append(dst, id...)
	return append(dst, '}')
}

// rpc answers a JSON-RPC payload, a single request or a batch, appending the
// reply to dst. replied is false when there is nothing to send (only
// notifications), in which case the transport sends nothing (TCP) or 204
// (HTTP).
func (h *Server) rpc(dst, payload []byte, t transport, sc *scratch) (out []byte, replied bool) {
	s := scanner{b: payload}
	s.ws()
	if s.i < len(payload) && payload[s.i] == '[' {
		return h.rpcBatch(dst, payload, t, sc)
	}
	return h.rpcOne(dst, payload, t, sc)
}

func (h *Server) rpcBatch(dst, payload []byte, t transport, sc *scratch) ([]byte, bool) {
	// Validate the whole text first: a batch that is not JSON is one parse
	// error, not a partial answer.
	v := scanner{b: payload}
	v.ws()
	if e := v.value(0); !e.ok() {
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, nil, rpcParseError, "parse error: ", e), true
	}
	if e := v.end(); !e.ok() {
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, nil, rpcParseError, "parse error: ", e), true
	}
	s := scanner{b: payload}
	s.ws()
	s.i++ // '['
	start := len(dst)
	dst = append(dst, '[')
	n, replies := 0, 0
	for {
		s.ws()
		if s.b[s.i] == ']' {
			break
		}
		es := s.i
		s.value(1) // already validated
		elem := payload[es:s.i]
		n++
		mark := len(dst)
		if replies > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if n > maxBatch {
			h.met.parseErrors[t].Add(1)
			dst, ok = appendRPCError(dst, nil, rpcInvalidRequest, "invalid request: batch larger than "+strconv.Itoa(maxBatch)+" requests", decodeError{}), true
		} else {
			dst, ok = h.rpcOne(dst, elem, t, sc)
		}
		if ok {
			replies++
		} else {
			dst = dst[:mark]
		}
		s.ws()
		if s.b[s.i] == ',' {
			s.i++
		}
	}
	if n == 0 {
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst[:start], nil, rpcInvalidRequest, "invalid request: empty batch", decodeError{}), true
	}
	if replies == 0 {
		return dst[:start], false
	}
	return append(dst, ']'), true
}

var (
	methodCheck = []byte("check")
	methodEvent = []byte("event")
)

// rpcOne answers one request object.
func (h *Server) rpcOne(dst, payload []byte, t transport, sc *scratch) ([]byte, bool) {
	var r rpcRequest
	if e := parseEnvelope(payload, &r); !e.ok() {
		h.met.parseErrors[t].Add(1)
		if e.kind == errNotObject {
			// Valid JSON that is not an object is an invalid request;
			// anything else is a parse error, located by the validator.
			v := scanner{b: payload}
			v.ws()
			if v.i == len(payload) {
				e = decodeError{kind: errEmpty}
			} else if ve := v.value(0); !ve.ok() {
				e = ve
			} else if ve := v.end(); !ve.ok() {
				e = ve
			} else {
				return appendRPCError(dst, nil, rpcInvalidRequest, "invalid request: a request must be a JSON object", decodeError{}), true
			}
		}
		return appendRPCError(dst, nil, rpcParseError, "parse error: ", e), true
	}
	switch {
	case r.badID:
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, nil, rpcInvalidRequest, `invalid request: "id" must be a string, a number or null`, decodeError{}), true
	case r.badVer || string(r.version) != "2.0":
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, r.id, rpcInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`, decodeError{}), true
	case !r.hasMethod || r.badMethod:
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, r.id, rpcInvalidRequest, `invalid request: "method" must be a string`, decodeError{}), true
	}
	method := r.method
	if r.methodEsc {
		sc.ensure(len(payload))
		sc.b = unescape(sc.b[:0], method)
		method = sc.b
	}
	if string(method) == string(methodEvent) {
		return h.rpcEvent(dst, &r, t, sc)
	}
	if string(method) != string(methodCheck) {
		if r.id == nil {
			return dst, false
		}
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, r.id, rpcMethodNotFound, `method not found: the methods are "check" and "event"`, decodeError{}), true
	}
	if r.params == nil || r.params[0] != '{' {
		if r.id == nil {
			return dst, false
		}
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, r.id, rpcInvalidParams, `invalid params: params must be an object with at least "to"`, decodeError{}), true
	}
	if r.id == nil {
		// A notification asks for no answer; deciding it would change nothing.
		return dst, false
	}
	var q matcher.Query
	var f verdictFormat
	if e := decodeObject(r.params, &q, &f, sc); !e.ok() {
		h.met.parseErrors[t].Add(1)
		return appendRPCError(dst, r.id, rpcInvalidParams, "invalid params: ", e), true
	}
	v := h.decide(&q, t, time.Time{})
	dst = append(dst, `{"jsonrpc":"2.0","result":`...)
	if f == formatCompact {
		// a JSON string as it is: the compact line needs no escaping
		dst = append(dst, '"')
		dst = AppendVerdictCompact(dst, &v)
		dst = append(dst, '"')
	} else {
		dst = AppendVerdict(dst, &v)
	}
	dst = append(dst, `,"id":`...)
	dst = append(dst, r.id...)
	return append(dst, '}'), true
}

// rpcEvent answers the "event" method: params are one call event or an
// array of them, as POST /v1/events takes. As a notification (the usual
// way: fire and forget) the events are applied and nothing is answered.
func (h *Server) rpcEvent(dst []byte, r *rpcRequest, t transport, sc *scratch) ([]byte, bool) {
	if h.vel == nil {
		if r.id == nil {
			return dst, false
		}
		return appendRPCError(dst, r.id, rpcMethodNotFound, `method not found: velocity counters are not enabled in this process`, decodeError{}), true
	}
	if r.params == nil || (r.params[0] != '{' && r.params[0] != '[') {
		h.met.parseErrors[t].Add(1)
		if r.id == nil {
			return dst, false
		}
		return appendRPCError(dst, r.id, rpcInvalidParams, `invalid params: params must be a call event or an array of them`, decodeError{}), true
	}
	params, token, hasToken, err := unwrapEvents(r.params)
	if err == nil && !h.eventsAuthorized(token, hasToken, sc.local) {
		h.met.eventsRefused[refusedToken].Add(1)
		if r.id == nil {
			h.log.Warn().Str("transport", transportNames[t]).Msg("call event notification refused: " + h.eventsAuthMessage())
			return dst, false
		}
		return appendRPCError(dst, r.id, rpcUnauthorized, "unauthorized: "+h.eventsAuthMessage(), decodeError{}), true
	}
	var evs []velocity.Event
	cause := -1
	if err == nil {
		evs, cause, err = h.decodeEvents(params)
	}
	if err != nil {
		h.met.parseErrors[t].Add(1)
		if cause >= 0 {
			h.met.eventsRefused[cause].Add(1)
		}
		if r.id == nil {
			h.log.Warn().Err(err).Str("transport", transportNames[t]).Msg("call event notification refused")
			return dst, false
		}
		return appendRPCError(dst, r.id, rpcInvalidParams, "invalid params: "+err.Error(), decodeError{}), true
	}
	res := h.applyEvents(evs)
	if r.id == nil {
		return dst, false
	}
	dst = append(dst, `{"jsonrpc":"2.0","result":{"accepted":`...)
	dst = strconv.AppendInt(dst, int64(res.Accepted), 10)
	dst = append(dst, `,"duplicates":`...)
	dst = strconv.AppendInt(dst, int64(res.Duplicates), 10)
	dst = append(dst, `,"ignored":`...)
	dst = strconv.AppendInt(dst, int64(res.Ignored), 10)
	dst = append(dst, `},"id":`...)
	dst = append(dst, r.id...)
	return append(dst, '}'), true
}

// observeSince records a TCP request's latency.
func (h *Server) observeSince(t transport, start time.Time) {
	h.met.latency[t].observe(time.Since(start))
}
