package handler

import (
	"bufio"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stationaryUS is issue 11's account: at home in the US, stationary, a
// 60-minute location-change period.
const stationaryUS = `{"home_country":"US","origin":{"mobility":"stationary","home_origin":"US","location_change_minutes":60}}`

// TestSrcIPForms: every query transport reads src_ip as proxies send it
// and refuses, naming the field, what is not an address. A refused value
// used to become "unknown", which erased the location history and let a
// stationary account's call through.
func TestSrcIPForms(t *testing.T) {
	e := newEnv(t)
	e.useGeo()
	e.mustA("PUT", "/v1/accounts/acme", stationaryUS)
	addr, _ := startRPC(t, e)
	type want struct {
		status int    // HTTP status of GET/POST /v1/check
		reason string // the verdict's reason when accepted
		err    string // the error message when refused
	}
	for _, c := range []struct {
		src  any // a string, or a JSON number
		want want
	}{
		{"127.2.0.1", want{200, "ok", ""}},
		{"127.2.0.1:5060", want{200, "ok", ""}},
		{"[2001:db8::1]:5060", want{200, "ok", ""}},
		{"[2001:db8::1]", want{200, "ok", ""}},
		{" 127.2.0.1", want{200, "ok", ""}},
		{"127.2.0.1 \t", want{200, "ok", ""}},
		{"2001:db8::1%eth0", want{200, "ok", ""}},
		{"::ffff:127.2.0.1", want{200, "ok", ""}},
		{"81.2.69.1", want{202, "origin_screen", ""}},    // GB: abroad
		{"fe80::1%eth0", want{202, "origin_screen", ""}}, // link-local: unknown origin
		{"abc", want{400, "", `field "src_ip" is not an IP address`}},
		{"127.0.0.256", want{400, "", `field "src_ip" is not an IP address`}},
		{"1.2.3", want{400, "", `field "src_ip" is not an IP address`}},
		{"127.2.0.1:99999", want{400, "", `field "src_ip" has a port`}},
		{"127.2.0.1%eth0", want{400, "", `field "src_ip" has a zone`}},
		{"[127.2.0.1]:5060", want{400, "", `field "src_ip" is not an IP address`}},
		{"", want{400, "", `field "src_ip" is empty`}},
		{"  ", want{400, "", `field "src_ip" is empty`}},
		{json.Number("1270201"), want{400, "", `field "src_ip" must be a string`}},
	} {
		name, _ := json.Marshal(c.src)
		t.Run(string(name), func(t *testing.T) {
			params, _ := json.Marshal(map[string]any{"to": "+14155550123", "account": "acme", "src_ip": c.src})
			check := func(transport string, status int, body []byte) {
				t.Helper()
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatalf("%s: %q: %v", transport, body, err)
				}
				if c.want.err != "" {
					msg, _ := m["error"].(string)
					if status != 400 || !strings.Contains(msg, c.want.err) {
						t.Fatalf("%s: %d %s, want 400 %q", transport, status, body, c.want.err)
					}
					if _, isNum := c.src.(json.Number); !isNum && m["field"] != "src_ip" {
						t.Fatalf("%s: no field: %s", transport, body)
					}
					return
				}
				if status != c.want.status || m["reason"] != c.want.reason {
					t.Fatalf("%s: %d %s, want %d %s", transport, status, body, c.want.status, c.want.reason)
				}
			}
			if s, ok := c.src.(string); ok {
				r := e.q("GET", "/v1/check?to=%2B14155550123&account=acme&src_ip="+url.QueryEscape(s), "")
				check("GET", r.status, r.body)
			}
			r := e.q("POST", "/v1/check", string(params))
			check("POST", r.status, r.body)

			req := `{"jsonrpc":"2.0","method":"check","params":` + string(params) + `,"id":7}`
			rpcCheck := func(transport, reply string) {
				t.Helper()
				var m struct {
					Result map[string]any
					Error  *struct {
						Code    int
						Message string
					}
				}
				if err := json.Unmarshal([]byte(reply), &m); err != nil {
					t.Fatalf("%s: %q: %v", transport, reply, err)
				}
				if c.want.err != "" {
					if m.Error == nil || m.Error.Code != -32602 || !strings.Contains(m.Error.Message, c.want.err) {
						t.Fatalf("%s: %s, want -32602 %q", transport, reply, c.want.err)
					}
					return
				}
				if m.Error != nil || m.Result["reason"] != c.want.reason {
					t.Fatalf("%s: %s, want %s", transport, reply, c.want.reason)
				}
			}
			rr := e.q("POST", "/rpc", req)
			rpcCheck("JSON-RPC over HTTP", string(rr.body))

			conn := dial(t, addr)
			conn.Write([]byte(netstring(req)))
			rpcCheck("netstring TCP", readNetstringReply(t, bufio.NewReader(conn)))
			conn.Close()

			conn = dial(t, addr)
			conn.Write([]byte(req))
			b, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			rpcCheck("plain TCP", string(b))
		})
	}
	// Missing and null are "no source address": an unknown origin, which a
	// stationary account's rules cannot place: screened, not allowed.
	for _, q := range []string{"to=%2B14155550123&account=acme"} {
		if st, reason := e.verdict(q); st != 202 || reason != "origin_screen" {
			t.Fatalf("no src_ip: %d %s", st, reason)
		}
	}
	r := e.q("POST", "/v1/check", `{"to":"+14155550123","account":"acme","src_ip":null}`)
	if r.status != 202 {
		t.Fatalf("null src_ip: %d %s", r.status, r.body)
	}
	m := e.q("GET", "/metrics", "")
	for _, want := range []string{`tollgate_origin_unknown_total{cause="missing"} 2`, `tollgate_origin_unknown_total{cause="not_in_database"} 5`,
		`tollgate_origin_unknown_total{cause="invalid"} 0`, `tollgate_origin_degraded 0`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestUnknownOriginKeepsHistory is issue 11's second bypass end to end: a
// stationary account at home in the US; a call from GB is screened; an
// unreadable or missing source address must neither erase the history nor
// pass the stationary rule, and the next GB call is screened again.
func TestUnknownOriginKeepsHistory(t *testing.T) {
	e := newEnv(t)
	e.useGeo()
	e.mustA("PUT", "/v1/accounts/acme", stationaryUS)
	call := func(src string) (int, string) {
		t.Helper()
		q := "to=%2B14155550123&account=acme"
		if src != "-" {
			q += "&src_ip=" + url.QueryEscape(src)
		}
		return e.verdict(q)
	}
	if st, reason := call("127.2.0.1"); st != 200 {
		t.Fatalf("at home: %d %s", st, reason)
	}
	e.clk.Add(time.Minute)
	for _, src := range []string{"abc", "127.0.0.256", "1.2.3", ""} {
		if st, _ := call(src); st != 400 {
			t.Fatalf("%q: %d, want 400", src, st)
		}
	}
	for _, src := range []string{"-", "fe80::1%eth0", "10.0.0.1"} {
		if st, reason := call(src); st != 202 || reason != "origin_screen" {
			t.Fatalf("%q: %d %s, want 202", src, st, reason)
		}
	}
	if st, _ := call("81.2.69.1"); st != 202 {
		t.Fatalf("GB after unknown origins: %d", st)
	}
	r := e.mustA("GET", "/v1/accounts/acme/origin", "")
	if !strings.Contains(string(r.body), `"last_country":"US"`) {
		t.Fatalf("history lost: %s", r.body)
	}
}

// TestRedialAfterScreen is issue 11's first bypass end to end, in both
// location_change_by modes: a screened call, failed, is not the account's
// last call, so redialling from GB meets the same screen.
func TestRedialAfterScreen(t *testing.T) {
	for _, by := range []string{"country", "ip"} {
		t.Run(by, func(t *testing.T) {
			e := newEnv(t)
			e.useGeo()
			e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US","origin":{"home_origin":"US","location_change_minutes":60,"location_change_by":"`+by+`"}}`)
			if st, reason := e.verdict("to=%2B14155550123&account=acme&src_ip=127.2.0.1"); st != 200 {
				t.Fatalf("at home: %d %s", st, reason)
			}
			e.clk.Add(time.Minute)
			for i := 0; i < 3; i++ {
				if st, reason := e.verdict("to=%2B14155550123&account=acme&src_ip=81.2.69.1"); st != 202 || reason != "origin_screen" {
					t.Fatalf("call %d from GB: %d %s", i+1, st, reason)
				}
				if i == 0 {
					e.mustA("POST", "/v1/accounts/acme/screening", `{"result":"failed"}`)
				}
				e.clk.Add(time.Minute)
			}
			// A passed screening makes GB the account's location.
			e.mustA("POST", "/v1/accounts/acme/screening", `{"result":"passed"}`)
			e.clk.Add(2 * time.Hour) // past the pass window and the period
			if st, reason := e.verdict("to=%2B14155550123&account=acme&src_ip=81.2.69.1"); st != 200 {
				t.Fatalf("after the period: %d %s", st, reason)
			}
		})
	}
}

// TestNoGeoIPDatabase: without -geoip-db every origin is unknown: a strict
// profile's unknown: reject rejects, the operator's country blocklist
// screens (it cannot be applied), and /ready and a gauge say the origin
// checks are degraded. They used to allow everything.
func TestNoGeoIPDatabase(t *testing.T) {
	e := newEnv(t)
	if r := e.q("GET", "/ready", ""); r.status != 200 || strings.Contains(string(r.body), "degraded") {
		t.Fatalf("ready without origin rules: %d %s", r.status, r.body)
	}
	e.mustA("PUT", "/v1/operator", `{"geo_profiles":{"strict":{"zones":[{"name":"home","action":"allow","countries":["US"]}],"default":"reject","unknown":"reject"}},`+
		`"source_blocklist":{"countries":["GB"]}}`)
	e.mustA("PUT", "/v1/accounts/strict", `{"home_country":"US","origin":{"geo_profile":"strict"}}`)
	e.mustA("PUT", "/v1/accounts/plain", `{"home_country":"US"}`)
	if st, reason := e.verdict("to=%2B14155550123&account=strict&src_ip=81.2.69.1"); st != 403 || reason != "origin_rejected" {
		t.Fatalf("strict profile without a database: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B14155550123&account=plain&src_ip=81.2.69.1"); st != 202 || reason != "origin_screen" {
		t.Fatalf("country blocklist without a database: %d %s", st, reason)
	}
	r := e.q("GET", "/ready", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"degraded":{"origin":"no Geo-IP database`) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	m := e.q("GET", "/metrics", "")
	for _, want := range []string{"tollgate_origin_degraded 1", `tollgate_origin_unknown_total{cause="no_geoip"} 2`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// With the database in force, the same calls are decided by country.
	e.useGeo()
	if st, reason := e.verdict("to=%2B14155550123&account=strict&src_ip=127.2.0.1"); st != 200 {
		t.Fatalf("strict from the US: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B14155550123&account=plain&src_ip=81.2.69.1"); st != 403 || reason != "source_blocked" {
		t.Fatalf("blocked country: %d %s", st, reason)
	}
	if r := e.q("GET", "/ready", ""); strings.Contains(string(r.body), "degraded") {
		t.Fatalf("still degraded: %s", r.body)
	}
}
