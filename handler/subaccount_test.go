package handler

import "testing"

// unknown_subaccounts and the account-wide caps go through the admin API
// and come back in the verdict (issue 11 item 9).
func TestUnknownSubaccountAndAccountCapsAPI(t *testing.T) {
	e := newEnv(t)
	body := acmeJSON[:len(acmeJSON)-1] + `,"unknown_subaccounts":"reject","account_max_channels":200,"account_max_cps":30,"subaccounts":{"s1":{"max_channels":10}}}`
	r := e.a("PUT", "/v1/accounts/acme", body)
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	contains(t, "stored", r.body, `"unknown_subaccounts":"reject","account_max_channels":200,"account_max_cps":30,"subaccounts":{"s1":`)
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=acme&subaccount=s1", "")
	contains(t, "s1", r.body, `"reason":"ok"`, `"max_channels":10,"max_cps":20,"account_max_channels":200,"account_max_cps":30}`)
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=acme&subaccount=s99", "")
	contains(t, "s99", r.body, `"reason":"unknown_subaccount","code":2021,"sip_code":403,"sip_reason":"Unknown Subaccount"`,
		`"rule":"account acme: unknown subaccount \"s99\" refused (unknown_subaccounts=reject)"`)
	if r.status != 403 {
		t.Fatalf("s99: %d", r.status)
	}
	if r := e.a("PUT", "/v1/accounts/acme", `{"unknown_subaccounts":"known"}`); r.status != 400 {
		t.Fatalf("bad mode: %d %s", r.status, r.body)
	} else {
		contains(t, "bad mode", r.body, `"field":"unknown_subaccounts"`)
	}
	if r := e.a("PUT", "/v1/accounts/acme", `{"account_max_channels":-1}`); r.status != 400 {
		t.Fatalf("bad cap: %d %s", r.status, r.body)
	} else {
		contains(t, "bad cap", r.body, `"field":"account_max_channels"`)
	}
	// an account without account-wide caps answers as before
	e.mustA("PUT", "/v1/accounts/plain", acmeJSON)
	r = e.q("GET", "/v1/check?to=%2B14155550123&account=plain&subaccount=x", "")
	contains(t, "plain", r.body, `"reason":"ok"`, `"max_cps":20}`)
}
