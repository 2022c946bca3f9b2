package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

// MaxEvents bounds the events of one request (a POST /v1/events body or a
// JSON-RPC "event" batch).
const MaxEvents = 500

// maxEventDuration bounds an ended call's duration: a week.
const maxEventDuration = 7 * 24 * time.Hour

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
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, &policy.FieldError{Field: "body", Msg: "empty; a JSON object or array of call events is required"}
	}
	var raw []json.RawMessage
	single := body[0] == '{'
	if single {
		raw = []json.RawMessage{body}
	} else if err := json.Unmarshal(body, &raw); err != nil {
		return nil, jsonFieldError(err)
	}
	if len(raw) == 0 {
		return nil, &policy.FieldError{Field: "body", Msg: "no events"}
	}
	if len(raw) > MaxEvents {
		return nil, &policy.FieldError{Field: "body", Msg: fmt.Sprintf("%d events, more than %d", len(raw), MaxEvents)}
	}
	out := make([]velocity.Event, 0, len(raw))
	for i, r := range raw {
		prefix := ""
		if !single {
			prefix = fmt.Sprintf("events[%d].", i)
		}
		ev, err := decodeEvent(r, prefix)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// eventFields are the members of a call event, which like the check
// fields may not be given twice.
var eventFields = [...]string{"event", "call_id", "account", "subaccount", "to", "time", "duration"}

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

func decodeEvent(b []byte, prefix string) (velocity.Event, error) {
	var ev velocity.Event
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		fe := jsonFieldError(err).(*policy.FieldError)
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
func (h *Handler) applyEvents(evs []velocity.Event) EventResults {
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
func (h *Handler) events(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		h.jsonError(ctx, fasthttp.StatusMethodNotAllowed, "call events are POSTed")
		return
	}
	if h.vel == nil {
		h.jsonError(ctx, fasthttp.StatusServiceUnavailable, "velocity counters are not enabled in this process")
		return
	}
	evs, err := DecodeEvents(ctx.PostBody())
	if err != nil {
		h.met.parseErrors[tHTTP].Add(1)
		field := ""
		if fe, ok := err.(*policy.FieldError); ok {
			field = fe.Field
		}
		h.writeJSON(ctx, fasthttp.StatusBadRequest, adminErrorBody{Error: err.Error(), Field: field})
		return
	}
	h.writeJSON(ctx, fasthttp.StatusOK, h.applyEvents(evs))
}
