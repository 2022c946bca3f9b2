package handler

import (
	"strings"
	"testing"
)

// TestQueryBadName: an account or subaccount no account can have is a
// 400 (a JSON-RPC invalid-params error), never the default policy of an
// unknown account. `account=a+b` in a query string is "a b".
func TestQueryBadName(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/operator", `{"default":{"countries":{"default":"allow","except":["CU"]}}}`)
	e.mustA("PUT", "/v1/accounts/a+b", `{"countries":{"default":"deny","except":["US"]}}`)
	for _, c := range []struct {
		method, uri, body string
		status            int
		want              string
	}{
		{"GET", "/v1/check?to=%2B14155550123&account=a+b", "", 400, `field \"account\" is not a name an account can have`},
		{"GET", "/v1/check?to=%2B14155550123&account=acme&subaccount=..", "", 400, `field \"subaccount\"`},
		{"GET", "/v1/check?to=%2B14155550123&account=%C3%A9", "", 400, `field \"account\"`},
		{"POST", "/v1/check", `{"to":"+14155550123","account":"a b"}`, 400, `field \"account\"`},
		{"POST", "/v1/check", `{"to":"+14155550123","account":"."}`, 400, `field \"account\"`},
		{"POST", "/rpc", `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","account":"a b"},"id":1}`, 200, `"code":-32602,"message":"invalid params: field \"account\" is not a name`},
		// the name as meant: '+' sent as %2B
		{"GET", "/v1/check?to=%2B14155550123&account=a%2Bb", "", 200, `"account":"a+b"`},
		{"GET", "/v1/check?to=%2B14155550123&account=", "", 200, `"verdict":"allow"`},
	} {
		r := e.q(c.method, c.uri, c.body)
		if r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s %s:\n got %d %s\nwant %d …%s…", c.method, c.uri, c.body, r.status, r.body, c.status, c.want)
		}
	}
}
