package query

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// MaxEvents bounds the events of one request (a POST /v1/events body or a
// JSON-RPC "event" batch).
const MaxEvents = 500

// maxEventDuration bounds an ended call's duration in DecodeEvents: a week
// (the longest -max-call-duration). The query listener refuses anything
// longer than its own -max-call-duration.
const maxEventDuration = 7 * 24 * time.Hour

// EventClockSkew is how far in the future an event's time may be (a
// proxy's clock a little ahead of ours): such a time is taken as now;
// anything later is refused as absurd.
const EventClockSkew = 60 * time.Second

// Causes of refused call events, the bounded label of
// tollgate_events_refused_total.
const (
	refusedToken    = iota // no or wrong events token (or, without one, a peer off the loopback)
	refusedDuration        // duration longer than -max-call-duration
	refusedFuture          // time beyond EventClockSkew in the future
	numRefused
)

var refusedNames = [numRefused]string{"token", "duration", "future"}

// eventLimits are what makes an event absurd.
type eventLimits struct {
	maxDuration time.Duration
	now         time.Time
}

// eventJSON is one call event on the wire. Every field is read leniently
// (a string or a number) because proxies build these from script
// variables; unknown members are ignored so a config may send more.
type eventJSON struct {
	Event      json.RawMessage `json:"event"`
	CallID     json.RawMessage `json:"call_id"`
	Account    json.RawMessage `json:"account"`
	Subaccount json.RawMessage `json:"subaccount"`
	To         json.RawMessage `json:"to"`
	Time       json.RawMessage `json:"time"`
	Duration   json.RawMessage `json:"duration"`
	Proxy      json.RawMessage `json:"proxy"`
	Dialog     *dialogJSON     `json:"dialog"`
}

// dialogJSON is how the proxy finds the call's dialog to end it.
type dialogJSON struct {
	FromTag json.RawMessage `json:"from_tag"`
	ToTag   json.RawMessage `json:"to_tag"`
	ID      json.RawMessage `json:"id"`
}

// EventResults is the answer to a batch of events.
type EventResults struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Ignored    int `json:"ignored"`
}

// DecodeEvents reads call events: one JSON object or an array of them
// (at most MaxEvents). It is all-or-nothing: any invalid event is a
// *policy.FieldError naming it ("events[3].duration", or "duration" for a
// single object) and no event is returned.
func DecodeEvents(body []byte) ([]velocity.Event, error) {
	evs, _, err := decodeEvents(body, eventLimits{maxDuration: maxEventDuration, now: time.Now()})
	return evs, err
}

// decodeEvents is DecodeEvents under limits; cause is the refusal cause
// (an index of refusedNames) of an absurd event, -1 for any other error.
func decodeEvents(body []byte, lim eventLimits) ([]velocity.Event, int, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, -1, &policy.FieldError{Field: "body", Msg: "empty; a JSON object or array of call events is required"}
	}
	var raw []json.RawMessage
	single := body[0] == '{'
	if single {
		raw = []json.RawMessage{body}
	} else if err := json.Unmarshal(body, &raw); err != nil {
		return nil, -1, JSONFieldError(err)
	}
	if len(raw) == 0 {
		return nil, -1, &policy.FieldError{Field: "body", Msg: "no events"}
	}
	if len(raw) > MaxEvents {
		return nil, -1, &policy.FieldError{Field: "body", Msg: fmt.Sprintf("%d events, more than %d", len(raw), MaxEvents)}
	}
	out := make([]velocity.Event, 0, len(raw))
	for i, r := range raw {
		prefix := ""
		if !single {
			prefix = fmt.Sprintf("events[%d].", i)
		}
		ev, cause, err := decodeEvent(r, prefix, lim)
		if err != nil {
			return nil, cause, err
		}
		out = append(out, ev)
	}
	return out, -1, nil
}

// eventFields are the members of a call event, which like the check
// fields may not be given twice.
var eventFields = [...]string{"event", "call_id", "account", "subaccount", "to", "time", "duration", "proxy", "dialog"}

// repeatedMember returns the first of names that object b (valid JSON)
// holds twice at its top level, "" if none: encoding/json would silently
// keep the last.
func repeatedMember(b []byte, names []string) string {
	s := scanner{b: b}
	s.ws()
	if s.i >= len(b) || b[s.i] != '{' {
		return ""
	}
	s.i++
	var seen uint64
	for {
		s.ws()
		if s.i >= len(b) || b[s.i] != '"' {
			return ""
		}
		ks, ke, esc, e := s.str()
		if !e.ok() {
			return ""
		}
		key := b[ks:ke]
		if esc {
			key = unescape(nil, key)
		}
		for i, n := range names {
			if string(key) == n {
				if seen&(1<<i) != 0 {
					return n
				}
				seen |= 1 << i
			}
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ':' {
			return ""
		}
		s.i++
		s.ws()
		if e := s.value(1); !e.ok() {
			return ""
		}
		s.ws()
		if s.i >= len(b) || b[s.i] != ',' {
			return ""
		}
		s.i++
	}
}

func decodeEvent(b []byte, prefix string, lim eventLimits) (velocity.Event, int, error) {
	ev, err := decodeEventFields(b, prefix)
	if err != nil {
		return ev, -1, err
	}
	bad := func(field, msg string, args ...any) error {
		return &policy.FieldError{Field: prefix + field, Msg: fmt.Sprintf(msg, args...)}
	}
	if ev.Duration > lim.maxDuration {
		return ev, refusedDuration, bad("duration", "%v is longer than the longest call (-max-call-duration %v)", ev.Duration, lim.maxDuration)
	}
	if !ev.Time.IsZero() && ev.Time.After(lim.now) {
		if ev.Time.Sub(lim.now) > EventClockSkew {
			return ev, refusedFuture, bad("time", "%s is %v in the future (more than the %v allowed for clock skew)",
				ev.Time.Format(time.RFC3339), ev.Time.Sub(lim.now).Round(time.Second), EventClockSkew)
		}
		ev.Time = time.Time{} // a little ahead: now
	}
	return ev, -1, nil
}

func decodeEventFields(b []byte, prefix string) (velocity.Event, error) {
	var ev velocity.Event
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		fe := JSONFieldError(err).(*policy.FieldError)
		if fe.Field == "body" && prefix != "" {
			fe.Field = prefix[:len(prefix)-1]
		} else if fe.Field != "body" {
			fe.Field = prefix + fe.Field
		}
		return ev, fe
	}
	bad := func(field, msg string, args ...any) error {
		return &policy.FieldError{Field: prefix + field, Msg: fmt.Sprintf(msg, args...)}
	}
	if f := repeatedMember(b, eventFields[:]); f != "" {
		return ev, bad(f, "given more than once")
	}
	text := func(field string, v json.RawMessage, required bool) (string, error) {
		s, ok := jsonText(v)
		switch {
		case !ok:
			return "", bad(field, "must be a string")
		case s == "" && required:
			return "", bad(field, "required")
		case len(s) > MaxFieldLen:
			return "", bad(field, "longer than %d bytes", MaxFieldLen)
		}
		return s, nil
	}
	kind, err := text("event", j.Event, true)
	if err != nil {
		return ev, err
	}
	switch kind {
	case "answered":
		ev.Kind = velocity.Answered
	case "ended":
		ev.Kind = velocity.Ended
	default:
		return ev, bad("event", "%q is not \"answered\" or \"ended\"", kind)
	}
	if ev.CallID, err = text("call_id", j.CallID, true); err != nil {
		return ev, err
	}
	if ev.Account, err = text("account", j.Account, true); err != nil {
		return ev, err
	}
	if ev.Subaccount, err = text("subaccount", j.Subaccount, false); err != nil {
		return ev, err
	}
	if ev.To, err = text("to", j.To, false); err != nil {
		return ev, err
	}
	if t, ok := jsonText(j.Time); !ok {
		return ev, bad("time", "must be unix seconds or an RFC 3339 time")
	} else if t != "" {
		if secs, err := strconv.ParseFloat(t, 64); err == nil {
			if secs < 0 || secs > 1e11 || math.IsNaN(secs) {
				return ev, bad("time", "%s is not a plausible unix time", t)
			}
			ev.Time = time.Unix(0, int64(secs*1e9)).UTC()
		} else if ev.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return ev, bad("time", "%q is neither unix seconds nor an RFC 3339 time", t)
		}
	}
	if ev.Proxy, err = text("proxy", j.Proxy, false); err != nil {
		return ev, err
	}
	if ev.Proxy != "" && !teardown.ValidID(ev.Proxy) {
		// a name from tollgate's -proxy-control, never an address
		return ev, bad("proxy", "%q is not a proxy id (1-%d of A-Z a-z 0-9 . _ -)", ev.Proxy, teardown.MaxIDLen)
	}
	if d := j.Dialog; d != nil {
		if ev.Dialog.FromTag, err = text("dialog.from_tag", d.FromTag, false); err != nil {
			return ev, err
		}
		if ev.Dialog.ToTag, err = text("dialog.to_tag", d.ToTag, false); err != nil {
			return ev, err
		}
		if ev.Dialog.ID, err = text("dialog.id", d.ID, false); err != nil {
			return ev, err
		}
	}
	ev.Duration = -1
	if d, ok := jsonText(j.Duration); !ok {
		return ev, bad("duration", "must be a number of seconds")
	} else if d != "" && ev.Kind == velocity.Ended {
		secs, err := strconv.ParseFloat(d, 64)
		if err != nil || secs < 0 || math.IsNaN(secs) || secs > maxEventDuration.Seconds() {
			return ev, bad("duration", "%q is not a number of seconds between 0 and %d", d, int(maxEventDuration.Seconds()))
		}
		ev.Duration = time.Duration(secs * float64(time.Second))
	}
	return ev, nil
}

// jsonText reads a JSON string, number or null as text ("" for null or
// absent); ok is false for anything else.
func jsonText(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return "", true
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case c == '-' || (c >= '0' && c <= '9'):
		return string(v), true
	}
	return "", false
}

// applyEvents hands decoded events to the velocity engine.
func (h *Server) applyEvents(evs []velocity.Event) EventResults {
	var r EventResults
	for _, ev := range evs {
		switch h.vel.Apply(ev) {
		case velocity.Accepted:
			r.Accepted++
		case velocity.Duplicate:
			r.Duplicates++
		default:
			r.Ignored++
		}
	}
	return r
}

// events serves POST /v1/events: call events from the proxies.
func (h *Server) events(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		h.jsonError(ctx, fasthttp.StatusMethodNotAllowed, "call events are POSTed")
		return
	}
	if h.vel == nil {
		h.jsonError(ctx, fasthttp.StatusServiceUnavailable, "velocity counters are not enabled in this process")
		return
	}
	body, token, hasToken, err := unwrapEvents(ctx.PostBody())
	if err == nil && !hasToken {
		token, hasToken = bearer(ctx)
	}
	if err == nil && !h.eventsAuthorized(token, hasToken, localPeer(ctx.RemoteAddr())) {
		h.met.eventsRefused[refusedToken].Add(1)
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="tollgate-events"`)
		h.writeJSON(ctx, fasthttp.StatusUnauthorized, errorBody{Error: h.eventsAuthMessage()})
		return
	}
	var evs []velocity.Event
	cause := -1
	if err == nil {
		evs, cause, err = h.decodeEvents(body)
	}
	if err != nil {
		h.met.parseErrors[tHTTP].Add(1)
		if cause >= 0 {
			h.met.eventsRefused[cause].Add(1)
		}
		field := ""
		if fe, ok := err.(*policy.FieldError); ok {
			field = fe.Field
		}
		h.writeJSON(ctx, fasthttp.StatusBadRequest, errorBody{Error: err.Error(), Field: field})
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, h.applyEvents(evs))
}

// decodeEvents decodes events under this handler's limits.
func (h *Server) decodeEvents(body []byte) ([]velocity.Event, int, error) {
	return decodeEvents(body, eventLimits{maxDuration: h.opt.MaxCallDuration, now: h.now()})
}

// unwrapEvents reads the authenticated form of an events payload,
// {"token":"…","events":[…] or {…}}: it returns the events and the token.
// Any other payload (one event or an array) is returned as it is, without
// a token.
func unwrapEvents(b []byte) (events []byte, token string, hasToken bool, err error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '{' {
		return b, "", false, nil
	}
	var w struct {
		Token  json.RawMessage `json:"token"`
		Events json.RawMessage `json:"events"`
	}
	if json.Unmarshal(t, &w) != nil || w.Events == nil {
		return b, "", false, nil // an event (or malformed: DecodeEvents says how)
	}
	if f := repeatedMember(t, []string{"token", "events"}); f != "" {
		return nil, "", false, &policy.FieldError{Field: f, Msg: "given more than once"}
	}
	if w.Token != nil && string(w.Token) != "null" {
		if err := json.Unmarshal(w.Token, &token); err != nil {
			return nil, "", false, &policy.FieldError{Field: "token", Msg: "must be a string"}
		}
		hasToken = true
	}
	return w.Events, token, hasToken, nil
}

// bearer is the token of an Authorization: Bearer header.
func bearer(ctx *fasthttp.RequestCtx) (string, bool) {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(string(auth[:len(prefix)]), prefix) {
		return "", false
	}
	return string(bytes.TrimSpace(auth[len(prefix):])), true
}

// localPeer reports whether a request came over the loopback (or a local
// transport with no IP address: a Unix socket, an in-memory pipe).
func localPeer(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	}
	return true
}

// eventsAuthorized decides whether call events may be applied. With
// -events-token every request must carry one of the tokens (compared in
// constant time, all of them); without one only a local peer may send
// events, since one forged "ended" can lock any customer.
func (h *Server) eventsAuthorized(token string, hasToken, local bool) bool {
	if len(h.evTokens) == 0 {
		return local
	}
	if !hasToken {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	ok := false
	for _, t := range h.evTokens {
		if subtle.ConstantTimeCompare(sum[:], t.Sum[:]) == 1 {
			ok = true
		}
	}
	return ok
}

func (h *Server) eventsAuthMessage() string {
	if len(h.evTokens) == 0 {
		return "call events are accepted only from the loopback without -events-token; set -events-token and send it (Authorization: Bearer, or {\"token\":…,\"events\":[…]})"
	}
	return "missing or wrong events token (Authorization: Bearer <token>, or {\"token\":…,\"events\":[…]})"
}
