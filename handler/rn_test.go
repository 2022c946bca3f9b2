package handler

import "testing"

// The verdict of a number with a routing number says which decided (issue
// 11 item 11); without one the object is as it was.
func TestVerdictRoutingNumber(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	r := e.q("GET", "/v1/check?to=%2B14155550123;npdi;rn=%2B5355512345&account=acme", "")
	contains(t, "rn verdict", r.body, `"reason":"country_barred"`, `"e164":"+5355512345"`, `"rule":"routing number: account acme:`, `"max_cps":20,"decided_by":"rn","rn":"+5355512345"}`)
	if r.status != 403 {
		t.Fatalf("status %d", r.status)
	}
	r = e.q("POST", "/v1/check", `{"to":"+14155550123;rn=+14155550124","account":"acme"}`)
	contains(t, "rn allowed", r.body, `"reason":"ok"`, `"e164":"+14155550123"`, `"decided_by":"to","rn":"+14155550124"}`)
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=acme", "")
	if got := keysInOrder(t, r.body); got[len(got)-1] != "max_cps" {
		t.Fatalf("no routing number, keys %v", got)
	}
}
