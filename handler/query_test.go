package handler

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/handler/query"
	"github.com/valyala/fasthttp"
)

// verdictKeys is the wire contract's flat object, in order.
var verdictKeys = []string{"verdict", "reason", "code", "sip_code", "sip_reason", "message", "country", "e164", "account", "rule", "max_channels", "max_cps"}

// keysInOrder returns the top-level keys of a JSON object in document order.
func keysInOrder(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestCheckVerdicts(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	e.mustA("PUT", "/v1/operator/countries/KP", `{"reason":"sanctions"}`)

	cases := []struct {
		name    string
		method  string
		uri     string
		body    string
		status  int
		want    map[string]any
		ruleHas string
	}{
		{"GET allow", "GET", "/v1/check?to=%2B14155550123&account=acme", "", 200,
			map[string]any{"verdict": "allow", "reason": "ok", "code": 1000.0, "sip_code": 200.0, "country": "US", "e164": "+14155550123", "account": "acme", "max_channels": 160.0, "max_cps": 20.0},
			"account acme: countries deny-all-except; US listed"},
		{"GET country barred", "GET", "/v1/check?to=%2B5355512345&account=acme&call_id=abc%40host&src_ip=192.0.2.1&from=%2B14155550000", "", 403,
			map[string]any{"verdict": "reject", "reason": "country_barred", "code": 2030.0, "sip_code": 403.0, "sip_reason": "Barred Country", "country": "CU"},
			"CU not listed"},
		{"GET block prefix", "GET", "/v1/check?to=%2B447012345678&account=acme", "", 403,
			map[string]any{"reason": "number_barred", "code": 2040.0}, "block prefix +4470"},
		{"GET allow prefix beats deny-all", "GET", "/v1/check?to=%2B442071234567&account=acme", "", 200,
			map[string]any{"reason": "ok", "country": "GB"}, "allow prefix +4420"},
		{"GET national format with home country", "GET", "/v1/check?to=4155550123&account=acme", "", 200,
			map[string]any{"e164": "+14155550123"}, ""},
		{"GET invalid number is a verdict", "GET", "/v1/check?to=not-a-number&account=acme", "", 403,
			map[string]any{"verdict": "reject", "reason": "invalid_number", "code": 2010.0, "sip_code": 484.0, "e164": ""}, "invalid number"},
		{"GET operator disabled country", "GET", "/v1/check?to=%2B85021234567", "", 403,
			map[string]any{"reason": "country_disabled", "country": "KP"}, "sanctions"},
		{"GET unknown account gets the default", "GET", "/v1/check?to=%2B5355512345&account=nobody", "", 200,
			map[string]any{"reason": "ok", "account": "nobody", "max_channels": 0.0}, "default policy"},
		{"GET unencoded plus", "GET", "/v1/check?to=+5355512345&account=acme", "", 403,
			map[string]any{"reason": "country_barred", "e164": "+5355512345"}, ""},
		{"GET unknown parameters ignored", "GET", "/v1/check?to=%2B14155550123&foo=bar", "", 200, map[string]any{"reason": "ok"}, ""},
		{"POST allow", "POST", "/v1/check", `{"to":"+14155550123","account":"acme","call_id":"x@y"}`, 200,
			map[string]any{"verdict": "allow", "account": "acme"}, ""},
		{"POST escapes decoded", "POST", "/v1/check", `{"to":"\u002b5355512345","account":"ac\u006de","extra":{"nested":[1,2,{"a":null}]}}`, 403,
			map[string]any{"reason": "country_barred", "account": "acme"}, ""},
		{"POST numeric account and nulls", "POST", "/v1/check", `{"to":14155550123,"account":null,"subaccount":null}`, 200,
			map[string]any{"e164": "+14155550123", "account": ""}, ""},
		{"POST escaped key", "POST", "/v1/check", `{"\u0074o":"+5355512345","account":"acme"}`, 403,
			map[string]any{"reason": "country_barred"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.q(tc.method, tc.uri, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.hdr["Content-Type"]; ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			keys := keysInOrder(t, r.body)
			if strings.Join(keys, ",") != strings.Join(verdictKeys, ",") {
				t.Errorf("keys %v, want %v", keys, verdictKeys)
			}
			m := r.json(t)
			for k, want := range tc.want {
				if m[k] != want {
					t.Errorf("%s = %#v, want %#v", k, m[k], want)
				}
			}
			if rule, _ := m["rule"].(string); !strings.Contains(rule, tc.ruleHas) {
				t.Errorf("rule %q does not contain %q", rule, tc.ruleHas)
			}
		})
	}
	// One log line per rejected call, none per allowed call; the number
	// masked by default.
	logs := e.logText()
	if n := strings.Count(logs, `"message":"call rejected"`); n != 7 {
		t.Errorf("%d rejection log lines, want 7:\n%s", n, logs)
	}
	if strings.Contains(logs, "5355512345") || !strings.Contains(logs, `"number":"+53555xxxxx"`) {
		t.Errorf("number not masked in logs:\n%s", logs)
	}
	for _, w := range []string{`"account":"acme"`, `"country":"CU"`, `"reason":"country_barred"`, `"rule":"account acme: countries deny-all-except; CU not listed"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("log lacks %s", w)
		}
	}
}

func TestLogNumbers(t *testing.T) {
	e := newEnv(t, func(_ *serviceOptions, o *Options) { o.LogNumbers = true })
	e.q("GET", "/v1/check?to=%2B5355512345&account=x", "")
	e.mustA("PUT", "/v1/operator/countries/CU", "")
	e.q("GET", "/v1/check?to=%2B5355512345&account=x", "")
	if !strings.Contains(e.logText(), `"number":"+5355512345"`) {
		t.Errorf("full number not logged with LogNumbers:\n%s", e.logText())
	}
}

func TestCheckMalformed(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("a", query.MaxFieldLen+1)
	cases := []struct {
		name   string
		method string
		uri    string
		body   string
		status int
		err    string
	}{
		{"GET no to", "GET", "/v1/check?account=acme", "", 400, `missing required field "to"`},
		{"GET empty to", "GET", "/v1/check?to=", "", 400, `missing required field "to"`},
		{"GET long account", "GET", "/v1/check?to=1&account=" + long, "", 400, `field "account" is longer than 256 bytes`},
		{"GET long to", "GET", "/v1/check?to=" + long, "", 400, `field "to" is longer than 256 bytes`},
		{"GET long call_id", "GET", "/v1/check?to=1&call_id=" + long, "", 400, `field "call_id" is longer than 256 bytes`},
		{"POST bad JSON", "POST", "/v1/check", `{"to":"+1415",}`, 400, "malformed JSON at byte 14"},
		{"POST truncated", "POST", "/v1/check", `{"to":"+1415`, 400, "malformed JSON at byte"},
		{"POST trailing garbage", "POST", "/v1/check", `{"to":"+1"} x`, 400, "malformed JSON at byte 12"},
		{"POST not an object", "POST", "/v1/check", `["+14155550123"]`, 400, "the body must be a JSON object"},
		{"POST empty body", "POST", "/v1/check", ``, 400, "empty request body"},
		{"POST no to", "POST", "/v1/check", `{"account":"acme"}`, 400, `missing required field "to"`},
		{"POST to not a string", "POST", "/v1/check", `{"to":{"n":1}}`, 400, `field "to" must be a string`},
		{"POST to is true", "POST", "/v1/check", `{"to":true}`, 400, `field "to" must be a string`},
		{"POST long field", "POST", "/v1/check", `{"to":"1","src_ip":"` + long + `"}`, 400, `field "src_ip" is longer than 256 bytes`},
		{"POST bad escape", "POST", "/v1/check", `{"to":"\x"}`, 400, "malformed JSON"},
		{"POST control char", "POST", "/v1/check", "{\"to\":\"1\n\"}", 400, "malformed JSON"},
		{"POST too deep", "POST", "/v1/check", `{"to":"1","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, 400, "nested too deeply"},
		{"POST over the check limit", "POST", "/v1/check", `{"to":"1","pad":"` + strings.Repeat("x", MaxCheckBody) + `"}`, 400, "request body larger than 4096 bytes"},
		{"PUT not allowed", "PUT", "/v1/check", `{}`, 405, "use GET or POST"},
		{"unknown path", "GET", "/v2/check", "", 404, "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.q(tc.method, tc.uri, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			m := r.json(t)
			if len(m) != 1 || !strings.Contains(m["error"].(string), tc.err) {
				t.Fatalf("body %s, want {\"error\": …%s…}", r.body, tc.err)
			}
		})
	}
	// A body over the server's limit is refused from its Content-Length,
	// before it is read, with the same error shape.
	c, err := e.qln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", MaxRPCBody+1)
	var res fasthttp.Response
	if err := res.Read(bufio.NewReader(c)); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != 400 || string(res.Body()) != `{"error":"request body larger than 65536 bytes"}` {
		t.Fatalf("over the server limit: %d %s", res.StatusCode(), res.Body())
	}

	met := e.q("GET", "/metrics", "")
	contains(t, "metrics", met.body, `tollgate_parse_errors_total{transport="http"} `)
	if strings.Contains(string(met.body), `tollgate_parse_errors_total{transport="http"} 0`) {
		t.Error("parse errors not counted")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t)
	if r := e.q("GET", "/health", ""); r.status != 200 || string(r.body) != `{"status":"ok"}` {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	r := e.q("GET", "/ready", "")
	if r.status != 200 {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	if m := r.json(t); m["ready"] != true || m["canary"].(map[string]any)["verdict"] != "allow" {
		t.Fatalf("ready body %s", r.body)
	}
	e.q("GET", "/v1/check?to=%2B14155550123", "")
	e.q("GET", "/v1/check?to=x", "")
	e.q("POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`)
	met := e.q("GET", "/metrics", "")
	if met.status != 200 || !strings.HasPrefix(met.hdr["Content-Type"], "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %v", met.status, met.hdr)
	}
	contains(t, "metrics", met.body,
		`tollgate_decisions_total{transport="http",verdict="allow",reason="ok"} 1`,
		`tollgate_decisions_total{transport="http",verdict="reject",reason="invalid_number"} 1`,
		`tollgate_decisions_total{transport="http_rpc",verdict="allow",reason="ok"} 1`,
		`tollgate_request_duration_seconds_bucket{transport="http",le="+Inf"} 2`,
		`tollgate_request_duration_seconds_count{transport="http_rpc"} 1`,
		`tollgate_reloads_total{result="success"} 1`,
		"tollgate_reload_success 1",
		"tollgate_store_errors_total 0",
		"tollgate_national_cache_hits_total ",
		"tollgate_national_cache_hit_ratio ",
		"tollgate_snapshot_accounts 0",
		"tollgate_snapshot_high_risk_prefixes ",
		`tollgate_high_risk_list{origin="builtin"} `,
		"tollgate_ready 1",
		"# TYPE tollgate_request_duration_seconds histogram",
	)
	// Metrics carry no account or number: label values are closed sets.
	if strings.Contains(string(met.body), "14155550123") {
		t.Error("a number leaked into /metrics")
	}
	// The admin listener serves the same operational endpoints, unauthenticated.
	if r := do(t, e.admin, "GET", "/ready", "", nil); r.status != 200 {
		t.Fatalf("admin ready: %d", r.status)
	}
	e.h.SetDraining()
	r = e.q("GET", "/ready", "")
	if r.status != 503 || r.json(t)["reason"] != "draining" {
		t.Fatalf("draining ready: %d %s", r.status, r.body)
	}
	if r := e.q("GET", "/v1/check?to=%2B14155550123", ""); r.status != 200 {
		t.Fatalf("draining must still answer queries in flight: %d", r.status)
	}
}

func TestReadyBeforeLoad(t *testing.T) {
	m := newBareMatcher()
	h := New(m, nil, Options{})
	ctx := newCtx("GET", "/ready", nil)
	h.Query(ctx)
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "no policy loaded") {
		t.Fatalf("ready before load: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func TestRPCOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	cases := []struct {
		name   string
		body   string
		status int
		want   []string
	}{
		{"result", `{"jsonrpc":"2.0","method":"check","params":{"to":"+5355512345","account":"acme"},"id":7}`, 200,
			[]string{`{"jsonrpc":"2.0","result":{"verdict":"reject","reason":"country_barred"`, `"max_cps":20},"id":7}`}},
		{"string id and key order", `{"id":"abc-1","params":{"to":"+14155550123"},"method":"check","jsonrpc":"2.0"}`, 200,
			[]string{`"result":{"verdict":"allow"`, `,"id":"abc-1"}`}},
		{"null id", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":null}`, 200, []string{`"id":null}`}},
		{"parse error", `{"jsonrpc":"2.0","method":"check",`, 200,
			[]string{`{"jsonrpc":"2.0","error":{"code":-32700,"message":"parse error: malformed JSON at byte 34"},"id":null}`}},
		{"empty", ``, 200, []string{`"code":-32700`, "empty request body"}},
		{"not an object", `42`, 200, []string{`"code":-32600`, "a request must be a JSON object"}},
		{"no jsonrpc", `{"method":"check","params":{"to":"1"},"id":1}`, 200, []string{`"code":-32600`, `\"jsonrpc\" must be \"2.0\"`, `"id":1}`}},
		{"wrong version", `{"jsonrpc":"1.0","method":"check","params":{"to":"1"},"id":1}`, 200, []string{`"code":-32600`}},
		{"method not a string", `{"jsonrpc":"2.0","method":1,"id":1}`, 200, []string{`"code":-32600`, `\"method\" must be a string`}},
		{"object id", `{"jsonrpc":"2.0","method":"check","params":{"to":"1"},"id":{}}`, 200, []string{`"code":-32600`, `"id":null}`}},
		{"unknown method", `{"jsonrpc":"2.0","method":"dial","params":{"to":"1"},"id":2}`, 200,
			[]string{`{"jsonrpc":"2.0","error":{"code":-32601,"message":"method not found: the methods are \"check\" and \"event\""},"id":2}`}},
		{"params missing", `{"jsonrpc":"2.0","method":"check","id":3}`, 200, []string{`"code":-32602`}},
		{"params array", `{"jsonrpc":"2.0","method":"check","params":["+1"],"id":3}`, 200, []string{`"code":-32602`, "params must be an object"}},
		{"params without to", `{"jsonrpc":"2.0","method":"check","params":{"account":"acme"},"id":4}`, 200,
			[]string{`"code":-32602,"message":"invalid params: missing required field \"to\""`, `"id":4}`}},
		{"params field too long", `{"jsonrpc":"2.0","method":"check","params":{"to":"1","account":"` + strings.Repeat("a", 300) + `"},"id":4}`, 200,
			[]string{`"code":-32602`, `field \"account\" is longer than 256 bytes`}},
		{"batch", `[{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1},` +
			`{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"}},` +
			`{"jsonrpc":"2.0","method":"nope","id":2}, 5]`, 200,
			[]string{`[{"jsonrpc":"2.0","result":{"verdict":"allow"`, `"id":1},{"jsonrpc":"2.0","error":{"code":-32601`, `"id":2},{"jsonrpc":"2.0","error":{"code":-32600`}},
		{"empty batch", `[]`, 200, []string{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid request: empty batch"},"id":null}`}},
		{"broken batch", `[{"jsonrpc":"2.0"`, 200, []string{`"code":-32700`}},
		{"notification", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"}}`, 204, nil},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"check","params":{"to":"1"}}]`, 204, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.q("POST", "/rpc", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 204 {
				if len(r.body) != 0 {
					t.Fatalf("notification answered: %s", r.body)
				}
				return
			}
			var v any
			if err := json.Unmarshal(r.body, &v); err != nil {
				t.Fatalf("reply is not JSON: %v: %s", err, r.body)
			}
			contains(t, "reply", r.body, tc.want...)
		})
	}
	if r := e.q("GET", "/rpc", ""); r.status != 405 {
		t.Fatalf("GET /rpc: %d", r.status)
	}
}

// A flood of refused calls for one account writes a few lines and counts the
// rest; another account's refusal still shows, and the next interval writes
// again with the count of what was left out, plus one summary line.
func TestRejectLogSampled(t *testing.T) {
	e := newEnv(t, func(_ *serviceOptions, o *Options) { o.LogRejectBurst = 3; o.LogRejectInterval = time.Minute })
	// the sampler reads Options.Now, the env's clock: 2026-03-02 10:00 UTC,
	// the start of a sampling interval
	e.mustA("PUT", "/v1/operator/countries/CU", "")
	for i := 0; i < 1000; i++ {
		if r := e.q("GET", "/v1/check?to=%2B5355512345&account=flood", ""); r.status != 403 {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
	}
	e.q("GET", "/v1/check?to=%2B5355512345&account=other", "")
	e.q("GET", "/v1/check?to=%2B5355512345&account=flood&subaccount=s1", "")
	logs := e.logText()
	if n := strings.Count(logs, `"account":"flood","subaccount":"","country":"CU","reason":"country_disabled"`); n != 3 {
		t.Errorf("%d lines for account flood, want the burst of 3:\n%s", n, lastLines(logs, 6))
	}
	for _, w := range []string{`"account":"other"`, `"account":"flood","subaccount":"s1"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("the refusal with %s is not logged", w)
		}
	}
	e.clk.Add(time.Minute)
	e.q("GET", "/v1/check?to=%2B5355512345&account=flood", "")
	logs = e.logText()
	if !strings.Contains(logs, `"suppressed":997,"interval":60000,"message":"refused-call log lines suppressed"`) {
		t.Errorf("no summary of the 997 suppressed lines:\n%s", lastLines(logs, 3))
	}
	if !strings.Contains(logs, `"suppressed":997,"message":"call rejected"`) {
		t.Errorf("the next line of account flood does not carry its 997 suppressed lines:\n%s", lastLines(logs, 3))
	}
	if n := strings.Count(logs, `"message":"call rejected"`); n != 6 {
		t.Errorf("%d call lines in all, want 3+1+1+1", n)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
