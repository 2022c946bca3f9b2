package handler

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/handler/query"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/velocity"
	"github.com/valyala/fasthttp"
)

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
	got, err := query.ReadNetstring(br, new([]byte))
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
