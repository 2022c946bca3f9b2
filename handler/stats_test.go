package handler

import (
	"testing"
)

func TestStatsEndpoint(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	e.mustA("PUT", "/v1/operator/countries/CU", `{"reason":"fraud"}`)
	for i := 0; i < 3; i++ {
		e.verdict("to=%2B5355512345&account=acme")
	}
	e.verdict("to=%2B14155550123&account=acme")
	r := e.mustA("GET", "/v1/stats?window=1h", "")
	contains(t, "stats", r.body, `"window":"1h"`, `"verdicts":{`, `"reject":3`, `"allow":1`, `"country_disabled":3`,
		`"top_rejected_countries":[{"key":"CU","count":3}]`, `"top_rejected_prefixes":[{"key":"+53555","count":3}]`,
		`"top_blocked_accounts":[{"key":"acme","count":3}]`)
	contains(t, "24h", e.mustA("GET", "/v1/stats?window=24h", "").body, `"window":"24h"`, `"reject":3`)
	contains(t, "default", e.mustA("GET", "/v1/stats", "").body, `"window":"1h"`)
	if r := e.a("GET", "/v1/stats?window=7d", ""); r.status != 400 || r.json(t)["field"] != "window" {
		t.Errorf("7d: %d %s", r.status, r.body)
	}
}
