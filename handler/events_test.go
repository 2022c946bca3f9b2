package handler

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

func TestDecodeEvents(t *testing.T) {
	evs, err := DecodeEvents([]byte(`[
		{"event":"answered","call_id":"c1","account":"acme","subaccount":"sales","to":"+33142685300","time":1772445600},
		{"event":"ended","call_id":"c1","account":1234,"to":"+33142685300","time":"2026-03-02T10:05:00Z","duration":"300.5","extra":true},
		{"event":"ended","call_id":"c2","account":"acme","subaccount":null}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []velocity.Event{
		{Kind: velocity.Answered, CallID: "c1", Account: "acme", Subaccount: "sales", To: "+33142685300", Time: time.Unix(1772445600, 0).UTC(), Duration: -1},
		{Kind: velocity.Ended, CallID: "c1", Account: "1234", To: "+33142685300", Time: time.Date(2026, 3, 2, 10, 5, 0, 0, time.UTC), Duration: 300500 * time.Millisecond},
		{Kind: velocity.Ended, CallID: "c2", Account: "acme", Duration: -1},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("got  %+v\nwant %+v", evs, want)
	}
	if evs, err := DecodeEvents([]byte(` {"event":"ended","call_id":"x","account":"a","duration":0} `)); err != nil || len(evs) != 1 || evs[0].Duration != 0 {
		t.Errorf("single object: %+v %v", evs, err)
	}
	// the proxy and the dialog: what a teardown needs; unknown members
	// (a control URL among them) are ignored, never used
	evs, err = DecodeEvents([]byte(`{"event":"answered","call_id":"c9","account":"acme","proxy":"edge-1.lon",` +
		`"dialog":{"from_tag":"ft9","to_tag":"tt9","id":1234,"url":"http://203.0.113.9/RPC"},"control_url":"http://203.0.113.9/RPC"}`))
	wantD := velocity.Event{Kind: velocity.Answered, CallID: "c9", Account: "acme", Duration: -1, Proxy: "edge-1.lon",
		Dialog: velocity.Dialog{FromTag: "ft9", ToTag: "tt9", ID: "1234"}}
	if err != nil || len(evs) != 1 || !reflect.DeepEqual(evs[0], wantD) {
		t.Errorf("proxy and dialog: %+v %v", evs, err)
	}
	if evs, err := DecodeEvents([]byte(`{"event":"answered","call_id":"c9","account":"acme","proxy":null,"dialog":null}`)); err != nil || evs[0].Proxy != "" || evs[0].Dialog != (velocity.Dialog{}) {
		t.Errorf("null proxy and dialog: %+v %v", evs, err)
	}
	many := "[" + strings.Repeat(`{"event":"ended","call_id":"x","account":"a"},`, MaxEvents) + `{"event":"ended","call_id":"x","account":"a"}]`
	for _, c := range []struct{ in, field, msg string }{
		{``, "body", "empty"},
		{`[]`, "body", "no events"},
		{`[1`, "body", "malformed JSON"},
		{`"x"`, "body", "expected"},
		{many, "body", "more than 500"},
		{`{"event":"ringing","call_id":"x","account":"a"}`, "event", `"ringing"`},
		{`{"call_id":"x","account":"a"}`, "event", "required"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":"ended","account":"a"}]`, "events[1].call_id", "required"},
		{`{"event":"ended","call_id":"x"}`, "account", "required"},
		{`{"event":"ended","call_id":["x"],"account":"a"}`, "call_id", "must be a string"},
		{`{"event":"ended","call_id":"x","account":"a","to":"` + strings.Repeat("1", 257) + `"}`, "to", "longer than 256"},
		{`{"event":"ended","call_id":"x","account":"a","time":"yesterday"}`, "time", "neither unix seconds"},
		{`{"event":"ended","call_id":"x","account":"a","time":-5}`, "time", "plausible"},
		{`{"event":"ended","call_id":"x","account":"a","time":true}`, "time", "unix seconds"},
		{`{"event":"ended","call_id":"x","account":"a","duration":-1}`, "duration", "between 0 and"},
		{`{"event":"ended","call_id":"x","account":"a","duration":"long"}`, "duration", "between 0 and"},
		{`{"event":"ended","call_id":"x","account":"a","duration":{}}`, "duration", "number of seconds"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":1,"call_id":"x","account":"a"}]`, "events[1].event", `"1"`},
		{`[{"event":"ended","call_id":"x","account":"a"},"no"]`, "events[1]", "expected"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"http://203.0.113.9:5071/RPC"}`, "proxy", "not a proxy id"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"edge 1"}`, "proxy", "not a proxy id"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":"edge1","proxy":"edge9"}`, "proxy", "more than once"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{},"dialog":{"from_tag":"f"}}`, "dialog", "more than once"},
		{`{"event":"answered","call_id":"x","account":"a","proxy":{"url":"http://x"}}`, "proxy", "must be a string"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":"ft;tt"}`, "dialog", "expected"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{"from_tag":["a"]}}`, "dialog.from_tag", "must be a string"},
		{`{"event":"answered","call_id":"x","account":"a","dialog":{"to_tag":"` + strings.Repeat("t", 257) + `"}}`, "dialog.to_tag", "longer than 256"},
		{`[{"event":"ended","call_id":"x","account":"a"},{"event":"answered","call_id":"x","account":"a","dialog":{"id":true}}]`, "events[1].dialog.id", "must be a string"},
	} {
		evs, err := DecodeEvents([]byte(c.in))
		var fe *policy.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) || evs != nil {
			t.Errorf("%.60s: %v (field %q), want %s: …%s…", c.in, err, fieldOf(err), c.field, c.msg)
		}
	}
}

func fieldOf(err error) string {
	var fe *policy.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// FuzzDecodeEvents: no input panics; an error never comes with events; what
// is accepted is within the limits and survives a re-encode.
func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{
		`{"event":"answered","call_id":"c1","account":"acme","to":"+33142685300","time":1772445600}`,
		`[{"event":"ended","call_id":"c1","account":1,"duration":"1.5","time":"2026-03-02T10:05:00Z"}]`,
		`[]`, `{`, `[{"event":"ended"}]`, `{"event":"ended","call_id":"\u0000","account":"a","duration":1e3}`,
		`{"event":"answered","call_id":"c1","account":"a","proxy":"edge1","dialog":{"from_tag":"f","to_tag":"t","id":"1"}}`,
		`{"event":"answered","call_id":"c1","account":"a","proxy":"http://x/","dialog":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeEvents(b)
		if err != nil {
			if evs != nil || fieldOf(err) == "" {
				t.Fatalf("error %v (no field?) with events %v", err, evs)
			}
			return
		}
		if len(evs) == 0 || len(evs) > MaxEvents {
			t.Fatalf("%d events", len(evs))
		}
		var again []map[string]any
		for _, ev := range evs {
			if ev.CallID == "" || ev.Account == "" || len(ev.To) > MaxFieldLen || ev.Duration > maxEventDuration ||
				(ev.Kind == velocity.Answered && ev.Duration != -1) || (ev.Proxy != "" && !teardown.ValidID(ev.Proxy)) ||
				len(ev.Dialog.FromTag) > MaxFieldLen || len(ev.Dialog.ToTag) > MaxFieldLen || len(ev.Dialog.ID) > MaxFieldLen {
				t.Fatalf("accepted %+v", ev)
			}
			m := map[string]any{"event": velocity.EventKindNames[ev.Kind], "call_id": ev.CallID, "account": ev.Account,
				"subaccount": ev.Subaccount, "to": ev.To, "proxy": ev.Proxy,
				"dialog": map[string]string{"from_tag": ev.Dialog.FromTag, "to_tag": ev.Dialog.ToTag, "id": ev.Dialog.ID}}
			if !ev.Time.IsZero() {
				m["time"] = ev.Time.Format(time.RFC3339Nano)
			}
			if ev.Duration >= 0 {
				m["duration"] = ev.Duration.Seconds()
			}
			again = append(again, m)
		}
		b2, _ := json.Marshal(again)
		evs2, err := DecodeEvents(b2)
		if err != nil || len(evs2) != len(evs) {
			t.Fatalf("re-encoded events refused: %v\n%s", err, b2)
		}
		for i := range evs {
			if evs[i].CallID != evs2[i].CallID || evs[i].Kind != evs2[i].Kind || !evs[i].Time.Equal(evs2[i].Time) ||
				evs[i].Proxy != evs2[i].Proxy || evs[i].Dialog != evs2[i].Dialog {
				t.Fatalf("round trip changed %+v into %+v", evs[i], evs2[i])
			}
		}
	})
}

// The events endpoint and the JSON-RPC "event" method feed the engine: live
// calls, concurrency, duplicates, unknown accounts, and a lockdown from a
// concurrency rule that the next check sees.
func TestEventsEndpointAndRPC(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","velocity":{"rules":[{"name":"parallel","concurrent_calls":{"warning":2,"critical":3}}]}}`)
	r := e.q("POST", "/v1/events", `[{"event":"answered","call_id":"c1","account":"acme","to":"+33142685300"},
		{"event":"answered","call_id":"c2","account":"acme","to":"+33142685301"},
		{"event":"answered","call_id":"c2","account":"acme","to":"+33142685301"},
		{"event":"answered","call_id":"c9","account":"stranger","to":"+33142685301"}]`)
	if r.status != 200 || string(r.body) != `{"accepted":2,"duplicates":1,"ignored":1}`+"\n" {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	// a bad batch changes nothing
	r = e.q("POST", "/v1/events", `[{"event":"answered","call_id":"c3","account":"acme"},{"event":"hungup","call_id":"c4","account":"acme"}]`)
	if r.status != 400 || !strings.Contains(string(r.body), `"field":"events[1].event"`) {
		t.Fatalf("bad batch: %d %s", r.status, r.body)
	}
	if st := e.vel.Stats(); st.LiveCalls != 2 {
		t.Fatalf("live %d after a refused batch", st.LiveCalls)
	}
	if r := e.q("GET", "/v1/events", ""); r.status != 405 || r.hdr["Allow"] != "POST" {
		t.Errorf("GET /v1/events: %d %v", r.status, r.hdr)
	}

	// the third call over JSON-RPC, as a notification over netstring TCP
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := e.h.NewRPCServer()
	go rs.Serve(ln)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	defer rs.Shutdown(sctx)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	note := `{"jsonrpc":"2.0","method":"event","params":{"event":"answered","call_id":"c3","account":"acme","to":"+4930123456"}}`
	req := `{"jsonrpc":"2.0","method":"event","params":[{"event":"answered","call_id":"c4","account":"acme","to":"+4930123457"}],"id":7}`
	io.WriteString(c, netstring(note)+netstring(req))
	br := bufio.NewReader(c)
	got, err := readNetstring(br, new([]byte))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"jsonrpc":"2.0","result":{"accepted":1,"duplicates":0,"ignored":0},"id":7}` {
		t.Fatalf("rpc reply %s", got)
	}
	if st := e.vel.Stats(); st.LiveCalls != 4 || st.Events[velocity.Answered][velocity.Accepted] != 4 {
		t.Fatalf("after rpc: %+v", st)
	}
	e.vel.Evaluate() // 4 are up: critical
	if _, reason := e.verdict("to=%2B33142685300&account=acme"); reason != "international_locked" {
		t.Fatalf("after the critical level: %s", reason)
	}
	if _, reason := e.verdict("to=%2B441614960000&account=acme"); reason != "ok" {
		t.Fatalf("domestic after the lockdown: %s", reason)
	}
	// invalid params with an id get -32602
	r = e.q("POST", "/rpc", `{"jsonrpc":"2.0","method":"event","params":{"event":"x"},"id":1}`)
	if !strings.Contains(string(r.body), `"code":-32602`) || !strings.Contains(string(r.body), `event: \"x\" is not`) {
		t.Errorf("bad event over rpc: %s", r.body)
	}
	r = e.q("POST", "/rpc", `{"jsonrpc":"2.0","method":"event","params":"x","id":1}`)
	if !strings.Contains(string(r.body), `"code":-32602`) {
		t.Errorf("string params: %s", r.body)
	}
	// metrics
	m := e.q("GET", "/metrics", "")
	contains(t, "metrics", m.body, `tollgate_call_events_total{event="answered",result="accepted"} 4`,
		`tollgate_call_events_total{event="answered",result="duplicate"} 1`, `tollgate_call_events_total{event="answered",result="ignored"} 1`,
		`tollgate_live_calls 4`, `tollgate_lockdowns_total{trigger="automatic"} 1`, `tollgate_locked_scopes 1`,
		`tollgate_alerts_total{kind="concurrent_calls",level="critical"} 1`, `tollgate_alerts_total{kind="lockdown",level="critical"} 1`,
		`tollgate_decisions_total{transport="http",verdict="reject",reason="international_locked"} 1`)
	for _, l := range strings.Split(string(m.body), "\n") {
		if strings.Contains(l, `"acme"`) || strings.Contains(l, "+33") {
			t.Errorf("an account or number became a label: %s", l)
		}
	}
}

// Without a velocity engine, events are refused, not lost silently.
func TestEventsWithoutVelocity(t *testing.T) {
	h := New(newBareMatcher(), nil, Options{Logger: zerolog.Nop()})
	ctx := newCtx("POST", "/v1/events", []byte(`{"event":"ended","call_id":"x","account":"a"}`))
	h.Query(ctx)
	if ctx.Response.StatusCode() != 503 {
		t.Errorf("status %d", ctx.Response.StatusCode())
	}
	ctx = newCtx("POST", "/rpc", []byte(`{"jsonrpc":"2.0","method":"event","params":{},"id":1}`))
	h.Query(ctx)
	if !strings.Contains(string(ctx.Response.Body()), "not enabled") {
		t.Errorf("rpc: %s", ctx.Response.Body())
	}
}

// With the velocity engine behind the matcher, a check still allocates
// nothing.
func TestCheckAllocsWithVelocity(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need a build without -race")
	}
	set := &policy.Set{Accounts: map[string]policy.Account{"acme": {Policy: policy.Policy{
		HomeCountry: ptrTo("US"), MaxCPS: ptrTo(100),
		Velocity: &policy.Velocity{Rules: []policy.VelocityRule{{CallsPerMinute: &policy.Threshold{Critical: 1_000_000}, SequentialCalls: &policy.Threshold{Critical: 100_000}}}},
	}}}}
	snap, err := matcher.Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	vel := velocity.New(velocity.Options{})
	m := matcher.New(plan, matcher.Options{Velocity: vel})
	m.Swap(snap)
	vel.Sync(set)
	h := New(m, nil, Options{Logger: zerolog.New(io.Discard), Velocity: vel})
	for _, uri := range []string{"/v1/check?to=%2B14155550123&account=acme", "/v1/check?to=%2B5355512345&account=acme"} {
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod("GET")
		b := []byte(uri)
		run := func() {
			ctx.Request.SetRequestURIBytes(b)
			ctx.Response.Reset()
			h.Query(ctx)
		}
		run()
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %.1f allocations", uri, n)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
