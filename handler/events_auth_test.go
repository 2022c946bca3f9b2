package handler

import (
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// from returns a query client whose in-memory connections come from addr
// (nothing leaves the process).
func (e *env) from(addr string) *fasthttp.Client {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	return &fasthttp.Client{Dial: func(string) (net.Conn, error) { return e.qln.DialWithLocalAddr(a) }}
}

const victimJSON = `{"home_country":"GB","velocity":{"rules":[{"name":"long","call_duration":{"critical":86400}}]}}`

// Call events are authenticated (issue 11 item 10): without -events-token
// only local peers may send them; absurd events are refused whoever sends
// them, and every refusal is counted.
func TestEventsWithoutTokenLocalOnly(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/victim", `{"home_country":"GB"}`)
	ev := `{"event":"answered","call_id":"c1","account":"victim","to":"+33142685300"}`
	remote := do(t, e.from("192.0.2.7:5060"), "POST", "/v1/events", "", []byte(ev))
	if remote.status != 401 || !strings.Contains(string(remote.body), "only from the loopback without -events-token") {
		t.Fatalf("remote peer without a token: %d %s", remote.status, remote.body)
	}
	if st := e.vel.Stats(); st.LiveCalls != 0 {
		t.Fatalf("refused event applied: %+v", st)
	}
	// the token is not a way round it: none is configured
	if r := do(t, e.from("192.0.2.7:5060"), "POST", "/v1/events", "anything-at-all-123", []byte(ev)); r.status != 401 {
		t.Fatalf("remote peer with a token nobody configured: %d %s", r.status, r.body)
	}
	if r := do(t, e.from("127.0.0.1:5060"), "POST", "/v1/events", "", []byte(ev)); r.status != 200 {
		t.Fatalf("loopback peer: %d %s", r.status, r.body)
	}
	if r := do(t, e.from("[::1]:5060"), "POST", "/v1/events", "", []byte(`{"event":"answered","call_id":"c2","account":"victim"}`)); r.status != 200 {
		t.Fatalf("v6 loopback peer: %d %s", r.status, r.body)
	}
	// JSON-RPC over HTTP from afar: -32001, and a notification is dropped
	rpc := `{"jsonrpc":"2.0","method":"event","params":{"event":"answered","call_id":"c3","account":"victim"},"id":5}`
	r := do(t, e.from("192.0.2.7:5060"), "POST", "/rpc", "", []byte(rpc))
	if !strings.Contains(string(r.body), `"code":-32001`) {
		t.Fatalf("rpc event from afar: %s", r.body)
	}
	do(t, e.from("192.0.2.7:5060"), "POST", "/rpc", "", []byte(strings.Replace(rpc, `,"id":5`, "", 1)))
	if st := e.vel.Stats(); st.LiveCalls != 2 {
		t.Fatalf("live calls %d, want 2 (only the loopback's)", st.LiveCalls)
	}
	contains(t, "metrics", e.q("GET", "/metrics", "").body, `tollgate_events_refused_total{cause="token"} 4`)
}

// A forged end of a week-long call is refused whoever sends it, so it
// cannot lock a victim at its spend limit; so is a time far in the future.
func TestAbsurdEventsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/victim", victimJSON)
	now := e.clk.Now()
	for _, c := range []struct{ body, field, msg string }{
		{`{"event":"ended","call_id":"f1","account":"victim","to":"+5355512345","duration":604800}`, "duration", "longer than the longest call (-max-call-duration 4h0m0s)"},
		{`{"event":"ended","call_id":"f2","account":"victim","to":"+5355512345","duration":14401}`, "duration", "-max-call-duration"},
		{`[{"event":"answered","call_id":"f3","account":"victim"},{"event":"ended","call_id":"f3","account":"victim","time":` + itoa(int(now.Unix())+7200) + `}]`, "events[1].time", "in the future"},
		{`{"event":"answered","call_id":"f4","account":"victim","time":"` + now.Add(61e9).Format("2006-01-02T15:04:05Z07:00") + `"}`, "time", "in the future"},
	} {
		r := e.q("POST", "/v1/events", c.body)
		if r.status != 400 || !strings.Contains(string(r.body), `"field":"`+c.field+`"`) || !strings.Contains(string(r.body), c.msg) {
			t.Errorf("%s: %d %s", c.body, r.status, r.body)
		}
	}
	// a proxy clock a little ahead is fine, and a real 4 h call is
	if r := e.q("POST", "/v1/events", `[{"event":"answered","call_id":"ok1","account":"victim","time":`+itoa(int(now.Unix())+30)+`},{"event":"ended","call_id":"ok2","account":"victim","to":"+441614960000","duration":14400}]`); r.status != 200 {
		t.Fatalf("plausible events: %d %s", r.status, r.body)
	}
	e.vel.Evaluate()
	if _, reason := e.verdict("to=%2B33142685300&account=victim"); reason != "ok" {
		t.Fatalf("victim after forged events: %s", reason)
	}
	contains(t, "metrics", e.q("GET", "/metrics", "").body,
		`tollgate_events_refused_total{cause="duration"} 2`, `tollgate_events_refused_total{cause="future"} 2`)
}

// With -events-token every transport needs one of the tokens, wherever
// the event comes from.
func TestEventsToken(t *testing.T) {
	const tok, tok2 = "kamailio-0123456789abcdef", "opensips-0123456789abcdef"
	e := newEnv(t, withEventTokens(tok, tok2))
	e.mustA("PUT", "/v1/accounts/victim", `{"home_country":"GB"}`)
	ev := `{"event":"answered","call_id":"%s","account":"victim"}`
	one := func(id string) string { return strings.Replace(ev, "%s", id, 1) }
	for _, c := range []struct {
		name, token, body string
		status            int
	}{
		{"none", "", one("n1"), 401},
		{"wrong", "kamailio-0123456789abcdeX", one("n2"), 401},
		{"prefix of a token", "kamailio", one("n3"), 401},
		{"in the wrapper, wrong", "", `{"token":"nope-nope-nope-nope","events":[` + one("n4") + `]}`, 401},
		{"wrapper without token", "", `{"events":[` + one("n5") + `]}`, 401},
		{"wrapper token null", "", `{"token":null,"events":` + one("n6") + `}`, 401},
		{"header", tok, one("a1"), 200},
		{"second token", tok2, one("a2"), 200},
		{"in the wrapper", "", `{"token":"` + tok + `","events":[` + one("a3") + `,` + one("a4") + `]}`, 200},
		{"wrapper, single event", "", `{"token":"` + tok2 + `","events":` + one("a5") + `}`, 200},
		{"wrapper, token twice", "", `{"token":"x","token":"` + tok + `","events":[` + one("n7") + `]}`, 400},
	} {
		if r := do(t, e.query, "POST", "/v1/events", c.token, []byte(c.body)); r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
	}
	if st := e.vel.Stats(); st.LiveCalls != 5 {
		t.Fatalf("live calls %d, want the 5 authenticated", st.LiveCalls)
	}
	r := e.q("POST", "/rpc", `{"jsonrpc":"2.0","method":"event","params":[`+one("r1")+`],"id":1}`)
	if !strings.Contains(string(r.body), `"code":-32001,"message":"unauthorized: missing or wrong events token`) {
		t.Fatalf("rpc without token: %s", r.body)
	}
	r = e.q("POST", "/rpc", `{"jsonrpc":"2.0","method":"event","params":{"token":"`+tok+`","events":[`+one("r2")+`]},"id":2}`)
	if !strings.Contains(string(r.body), `"result":{"accepted":1`) {
		t.Fatalf("rpc with token: %s", r.body)
	}
	contains(t, "metrics", e.q("GET", "/metrics", "").body, `tollgate_events_refused_total{cause="token"} 7`)
}

// An answer dated a week back followed by an end without a duration is as
// absurd as a week-long duration: the call counts -max-call-duration at
// most, so the pair cannot lock a victim either.
func TestBackdatedAnswerCapped(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/victim", victimJSON)
	weekAgo := itoa(int(e.clk.Now().Unix()) - 604800)
	r := e.q("POST", "/v1/events", `[{"event":"answered","call_id":"b1","account":"victim","to":"+5355512345","time":`+weekAgo+`},`+
		`{"event":"ended","call_id":"b1","account":"victim"}]`)
	if r.status != 200 {
		t.Fatalf("events: %d %s", r.status, r.body)
	}
	e.vel.Evaluate()
	if _, reason := e.verdict("to=%2B33142685300&account=victim"); reason != "ok" {
		t.Fatalf("victim after a backdated answer: %s", reason)
	}
}
