package handler

import (
	"fmt"
	"strings"
	"testing"
)

func list(n int, elem string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

func subs(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"s%d":{}`, i)
	}
	return b.String() + "}"
}

// TestAdminListLimits: an account with a list over its limit is a 400
// naming the field, refused while the body is walked (a truncated body
// past the limit says so rather than "truncated JSON"); subaccounts are
// bounded per account whichever route adds them.
func TestAdminListLimits(t *testing.T) {
	e := newEnv(t)
	body := `{"allow_prefixes":` + list(10001, `"+1"`)
	r := e.a("PUT", "/v1/accounts/acme", body)
	if r.status != 400 || r.json(t)["field"] != "allow_prefixes" || !strings.Contains(string(r.body), "more than 10000 entries") {
		t.Errorf("10,001 prefixes, truncated: %d %s", r.status, r.body)
	}
	r = e.a("PUT", "/v1/accounts/acme", `{"subaccounts":`+subs(1001)+`}`)
	if r.status != 400 || r.json(t)["field"] != "subaccounts" {
		t.Errorf("1,001 subaccounts: %d %s", r.status, r.body)
	}
	e.mustA("PUT", "/v1/accounts/acme", `{"subaccounts":`+subs(1000)+`}`)
	r = e.a("PUT", "/v1/accounts/acme/subaccounts/one-more", `{}`)
	if r.status != 400 || r.json(t)["field"] != "subaccounts" || !strings.Contains(string(r.body), "1001 subaccounts") {
		t.Errorf("the 1,001st subaccount: %d %s", r.status, r.body)
	}
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/s999", `{"max_channels":3}`) // replacing one is fine
}

func TestAccountPrefixTotal(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString(`{"subaccounts":{`)
	for i := 0; i < 11; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"s%d":{"block_prefixes":%s}`, i, list(10000, `"+1"`)) // counted as given
	}
	b.WriteString(`}}`)
	r := e.a("PUT", "/v1/accounts/acme", b.String())
	if r.status != 400 || r.json(t)["field"] != "subaccounts" || !strings.Contains(string(r.body), "110000 allow and block prefixes") {
		t.Errorf("110,000 prefixes: %d %.300s", r.status, r.body)
	}
}
