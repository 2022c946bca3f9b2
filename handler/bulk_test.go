package handler

import (
	"fmt"
	"strings"
	"testing"
)

func TestBulkPatch(t *testing.T) {
	e := newEnv(t)
	for i, body := range []string{
		`{"countries":{"default":"allow","except":["CU"]},"tags":["wholesale"]}`,
		`{"countries":{"default":"allow"},"tags":["wholesale","eu"],"max_cps":3}`,
		`{"countries":{"default":"allow","except":["DE"]},"tags":["wholesale"]}`,
		`{"countries":{"default":"allow"}}`,
		`{"home_country":"US"}`,
	} {
		e.mustA("PUT", fmt.Sprintf("/v1/accounts/a%d", i), body)
	}
	auditN := func() int { return strings.Count(string(e.mustA("GET", "/v1/audit", "").body), `"id":`) }
	n0 := auditN()

	// By tag: one change, one audit entry; a2 already denied DE.
	r := e.mustA("PATCH", "/v1/accounts", `{"select":{"tag":"wholesale"},"patch":{"countries":{"except":["DE"]}}}`)
	contains(t, "tag", r.body, `"matched":3`, `"changed":["a0","a1"]`, `"unchanged":1`)
	for _, a := range []string{"a0", "a1", "a2"} {
		if s, reason := e.verdict("to=%2B4930123456&account=" + a); s != 403 || reason != "country_barred" {
			t.Errorf("%s to DE after the bulk change: %d %s", a, s, reason)
		}
	}
	if s, _ := e.verdict("to=%2B4930123456&account=a3"); s != 200 {
		t.Errorf("a3 is not tagged but changed: %d", s)
	}
	if got := auditN(); got != n0+1 {
		t.Errorf("audit entries %d, want %d", got, n0+1)
	}
	contains(t, "audit", e.mustA("GET", "/v1/audit?limit=1", "").body, `"action":"accounts.bulk_patch"`, `"object":"accounts (tag:wholesale)"`, `"before":{"a0":`, `"changed":["a0","a1"]`)
	contains(t, "list by tag", e.mustA("GET", "/v1/accounts?tag=eu", "").body, `"name":"a1"`, `"total":1`)

	// All-or-nothing: a refused change changes no account.
	before := e.mustA("GET", "/v1/accounts", "").body
	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"select":{"all":true},"patch":{"max_cps":-1}}`, 400, `account \"a0\": max_cps`},
		{`{"select":{"accounts":["a3","nobody"]},"patch":{"max_cps":1}}`, 404, `account \"nobody\"`},
		{`{"select":{"tag":"x","all":true},"patch":{"max_cps":1}}`, 400, `"field":"select"`},
		{`{"select":{},"patch":{"max_cps":1}}`, 400, `"field":"select"`},
		{`{"select":{"all":true}}`, 400, `"field":"patch"`},
		{`{"select":{"all":true},"patch":[1]}`, 400, `merge patch is a JSON object`},
		{`{"select":{"tag":"nosuch"},"patch":{"max_cps":1}}`, 404, `tagged \"nosuch\"`},
		{`{"select":{"accounts":["a0","a4"]},"patch":{"tags":["bad tag"]}}`, 400, `"field":"tags[0]"`},
	} {
		r := e.a("PATCH", "/v1/accounts", tc.body)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	// One account's result invalid: a4 has no country rule, so the merged
	// rule lacks its default; a0..a3 alone would be fine.
	r = e.a("PATCH", "/v1/accounts", `{"select":{"all":true},"patch":{"countries":{"except":["FR"]}}}`)
	if r.status != 400 || !strings.Contains(string(r.body), `account \"a4\": countries.default: required`) || !strings.Contains(string(r.body), `"field":"countries.default"`) {
		t.Errorf("invalid for a4: %d %s", r.status, r.body)
	}
	if s, _ := e.verdict("to=%2B33123456789&account=a0"); s != 200 {
		t.Errorf("a0 changed by a refused bulk change: %d", s)
	}
	if after := e.mustA("GET", "/v1/accounts", "").body; string(after) != string(before) {
		t.Errorf("a refused bulk change changed accounts:\n%s\n%s", before, after)
	}

	// Dry run: reports, changes nothing, audits nothing.
	n1 := auditN()
	r = e.mustA("PATCH", "/v1/accounts", `{"select":{"accounts":["a3","a4"]},"patch":{"max_cps":7},"dry_run":true}`)
	contains(t, "dry", r.body, `"matched":2`, `"changed":["a3","a4"]`, `"dry_run":true`)
	if strings.Contains(string(e.mustA("GET", "/v1/accounts/a3", "").body), "max_cps") || auditN() != n1 {
		t.Error("a dry run changed something")
	}
}
