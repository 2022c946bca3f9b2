package handler

import (
	"strings"
	"testing"
	"time"
)

// TestOriginAdminFlow walks the screening flow through the admin API: a call
// from a new source address is screened (202), the IVR reports a pass, the
// next call goes through; failures quarantine, the unblock code lifts it.
func TestOriginAdminFlow(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"GB","origin":{"location_change_minutes":30,"location_change_by":"ip","max_failed_screenings":2}}`)
	e.mustA("PUT", "/v1/accounts/pbx", `{"home_country":"GB","origin":{"trusted_sources":["192.0.2.0/24"]}}`)
	if r := e.a("PUT", "/v1/accounts/bad", `{"origin":{"trusted_sources":["10.1.2.3/8"]}}`); r.status != 400 || !strings.Contains(string(r.body), `"field":"origin.trusted_sources[0]"`) {
		t.Fatalf("bad CIDR: %d %s", r.status, r.body)
	}
	if r := e.a("PUT", "/v1/accounts/bad", `{"origin":{"geo_profile":"nope"}}`); r.status != 400 || !strings.Contains(string(r.body), "origin.geo_profile") {
		t.Fatalf("unknown profile: %d %s", r.status, r.body)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=pbx&src_ip=10.0.0.1"); st != 403 || reason != "untrusted_source" {
		t.Fatalf("untrusted: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=pbx&src_ip=192.0.2.1"); st != 200 || reason != "ok" {
		t.Fatalf("trusted: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=acme&src_ip=192.0.2.1"); st != 200 || reason != "ok" {
		t.Fatalf("first call: %d %s", st, reason)
	}
	e.clk.Add(time.Minute)
	if st, reason := e.verdict("to=%2B33142685300&account=acme&src_ip=192.0.2.2"); st != 202 || reason != "origin_screen" {
		t.Fatalf("location change: %d %s", st, reason)
	}
	if r := e.a("POST", "/v1/accounts/acme/screening", `{"result":"maybe"}`); r.status != 400 || !strings.Contains(string(r.body), `"field":"result"`) {
		t.Fatalf("bad result: %d %s", r.status, r.body)
	}
	if r := e.a("POST", "/v1/accounts/nobody/screening", `{"result":"passed"}`); r.status != 404 {
		t.Fatalf("unknown account: %d %s", r.status, r.body)
	}
	if r := e.a("GET", "/v1/accounts/acme/screening", ""); r.status != 405 {
		t.Fatalf("GET screening: %d", r.status)
	}
	r := e.mustA("POST", "/v1/accounts/acme/screening", `{"result":"passed"}`)
	if !strings.Contains(string(r.body), `"pass_until"`) {
		t.Fatalf("%s", r.body)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=acme&src_ip=192.0.2.3"); st != 200 || reason != "ok" {
		t.Fatalf("after pass: %d %s", st, reason)
	}
	e.mustA("POST", "/v1/accounts/acme/screening", `{"result":"failed"}`)
	r = e.mustA("POST", "/v1/accounts/acme/screening", `{"result":"failed"}`)
	if !strings.Contains(string(r.body), `"quarantined":true`) {
		t.Fatalf("%s", r.body)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=acme&src_ip=192.0.2.3"); st != 403 || reason != "quarantined" {
		t.Fatalf("quarantined: %d %s", st, reason)
	}
	if st, reason := e.verdict("to=%2B441614960000&account=acme&src_ip=192.0.2.3"); st != 200 || reason != "ok" {
		t.Fatalf("domestic while quarantined: %d %s", st, reason)
	}
	if r := e.a("POST", "/v1/accounts/acme/unblock-code/verify", `{"code":"1234"}`); r.status != 404 || !strings.Contains(string(r.body), "no_code") {
		t.Fatalf("no code: %d %s", r.status, r.body)
	}
	if r := e.a("PUT", "/v1/accounts/acme/unblock-code", `{"code":"12"}`); r.status != 400 {
		t.Fatalf("short code: %d %s", r.status, r.body)
	}
	e.mustA("PUT", "/v1/accounts/acme/unblock-code", `{"code":"246810"}`)
	if r := e.a("POST", "/v1/accounts/acme/unblock-code/verify", `{"code":"111111"}`); r.status != 403 || !strings.Contains(string(r.body), `"verified":false`) {
		t.Fatalf("wrong code: %d %s", r.status, r.body)
	}
	if r := e.mustA("POST", "/v1/accounts/acme/unblock-code/verify", `{"code":"246810"}`); !strings.Contains(string(r.body), `"verified":true`) {
		t.Fatalf("%s", r.body)
	}
	if st, reason := e.verdict("to=%2B33142685300&account=acme&src_ip=192.0.2.3"); st != 200 || reason != "ok" {
		t.Fatalf("after unblock: %d %s", st, reason)
	}
	e.mustA("PUT", "/v1/accounts/acme/home-origin", `{"country":"GB"}`)
	if r := e.a("PUT", "/v1/accounts/acme/home-origin", `{"country":"XX"}`); r.status != 400 {
		t.Fatalf("bad home: %d %s", r.status, r.body)
	}
	r = e.mustA("GET", "/v1/accounts/acme/origin", "")
	if !strings.Contains(string(r.body), `"home":"GB"`) || strings.Contains(string(r.body), "pbkdf2") {
		t.Fatalf("%s", r.body)
	}
	e.mustA("DELETE", "/v1/accounts/acme/home-origin", "")
	e.mustA("DELETE", "/v1/accounts/acme/unblock-code", "")
	e.mustA("DELETE", "/v1/accounts/acme/quarantine", "")
	r = e.mustA("GET", "/v1/audit?limit=20", "")
	for _, action := range []string{"screening_passed", "screening_failed", "unblock_code_set", "unblock_code_verify", "home_set", "home_clear", "unblock_code_clear"} {
		if !strings.Contains(string(r.body), `"action":"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
	if strings.Contains(string(r.body), "246810") || strings.Contains(string(r.body), "pbkdf2") {
		t.Error("the audit log shows the code or its hash")
	}
	m := e.q("GET", "/metrics", "")
	for _, want := range []string{`tollgate_origin_checks_total{rule="untrusted",action="reject"} 1`, `tollgate_screenings_total{result="passed"} 1`,
		`tollgate_quarantines_total 1`, `tollgate_unblock_code_checks_total{result="wrong"} 1`, `tollgate_geoip_loaded 0`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m.body), "192.0.2") || strings.Contains(string(m.body), "acme") {
		t.Error("metrics carry an address or an account")
	}
}

// TestOriginSubaccountRoutes: a subaccount with origin settings of its own
// has its own origin state under /v1/accounts/A/subaccounts/S/; PUT
// home-origin under a policy's home_origin is refused (409) and says which
// home is in force.
func TestOriginSubaccountRoutes(t *testing.T) {
	e := newEnv(t)
	e.useGeo()
	e.mustA("PUT", "/v1/accounts/team", `{"home_country":"US","origin":{"location_change_minutes":60,"home_origin":"US"},`+
		`"subaccounts":{"alice":{"origin":{"location_change_minutes":60}},"carol":{"max_channels":2}}}`)
	if st, _ := e.verdict("to=%2B14155550123&account=team&subaccount=alice&src_ip=127.2.0.1"); st != 200 {
		t.Fatalf("alice from the US: %d", st)
	}
	e.clk.Add(time.Minute)
	// carol shares the account's state: her call from GB is the
	// account's first, alice's history is hers.
	if st, _ := e.verdict("to=%2B14155550123&account=team&subaccount=carol&src_ip=81.2.69.1"); st != 200 {
		t.Fatalf("carol from GB: %d", st)
	}
	if st, reason := e.verdict("to=%2B14155550123&account=team&subaccount=alice&src_ip=81.2.69.1"); st != 202 || reason != "origin_screen" {
		t.Fatalf("alice from GB a minute later: %d %s", st, reason)
	}
	r := e.mustA("POST", "/v1/accounts/team/subaccounts/alice/screening", `{"result":"failed"}`)
	if !strings.Contains(string(r.body), `"subaccount":"alice"`) || !strings.Contains(string(r.body), `"failed_screenings":1`) {
		t.Fatalf("%s", r.body)
	}
	if r := e.mustA("GET", "/v1/accounts/team/origin", ""); !strings.Contains(string(r.body), `"last_country":"GB"`) || !strings.Contains(string(r.body), `"failed_screenings":0`) {
		t.Fatalf("account state: %s", r.body)
	}
	if r := e.mustA("GET", "/v1/accounts/team/subaccounts/alice/origin", ""); !strings.Contains(string(r.body), `"last_country":"US"`) {
		t.Fatalf("alice's state: %s", r.body)
	}
	if r := e.mustA("GET", "/v1/accounts/team/subaccounts/carol/origin", ""); !strings.Contains(string(r.body), `"last_country":"GB"`) {
		t.Fatalf("carol's state is the account's: %s", r.body)
	}
	if r := e.a("GET", "/v1/accounts/team/subaccounts/nobody/origin", ""); r.status != 404 {
		t.Fatalf("unknown subaccount: %d %s", r.status, r.body)
	}
	r = e.mustA("GET", "/v1/audit?limit=5", "")
	if !strings.Contains(string(r.body), `"object":"accounts/team/subaccounts/alice/origin"`) {
		t.Fatalf("audit: %s", r.body)
	}
}

// TestHomeOriginPolicyWins: PUT home-origin used to answer 200 with the
// new home while the policy's home_origin stayed in force. It is refused
// (409, nothing stored) and every answer gives the home in force.
func TestHomeOriginPolicyWins(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US","origin":{"home_origin":"US","mobility":"stationary"}}`)
	r := e.a("PUT", "/v1/accounts/acme/home-origin", `{"country":"GB"}`)
	if r.status != 409 || !strings.Contains(string(r.body), "home_origin US is in force") {
		t.Fatalf("PUT home-origin under the policy's: %d %s", r.status, r.body)
	}
	if r := e.mustA("GET", "/v1/accounts/acme/origin", ""); !strings.Contains(string(r.body), `"home":"US","home_source":"policy"`) {
		t.Fatalf("home in force: %s", r.body)
	}
	if r := e.mustA("GET", "/v1/audit?limit=5", ""); strings.Contains(string(r.body), `"action":"home_set"`) {
		t.Fatalf("a refused home was audited: %s", r.body)
	}
	// Without a policy home the API's home holds, and says so.
	e.mustA("PUT", "/v1/accounts/acme", `{"home_country":"US","origin":{"mobility":"stationary"}}`)
	if r := e.mustA("PUT", "/v1/accounts/acme/home-origin", `{"country":"GB"}`); !strings.Contains(string(r.body), `"home":"GB","home_source":"set"`) {
		t.Fatalf("%s", r.body)
	}
}
