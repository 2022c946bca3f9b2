package handler

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// A query field given twice is refused with a 400 (or -32602) naming it, on
// every transport (issue 11 item 13): GET used to take the first "to", POST
// JSON the last, so a proxy and tollgate could disagree on the number.
func TestDuplicateFieldsRefused(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	for _, c := range []struct{ name, method, uri, body, field string }{
		{"GET to", "GET", "/v1/check?to=%2B14155550123&to=%2B5355512345&account=acme", "", "to"},
		{"GET to, second empty", "GET", "/v1/check?to=%2B5355512345&to=&account=acme", "", "to"},
		{"GET to percent-encoded name", "GET", "/v1/check?to=%2B14155550123&t%6F=%2B5355512345", "", "to"},
		{"GET account", "GET", "/v1/check?to=%2B14155550123&account=acme&account=other", "", "account"},
		{"GET subaccount", "GET", "/v1/check?to=1&subaccount=a&subaccount=b", "", "subaccount"},
		{"GET src_ip", "GET", "/v1/check?to=1&src_ip=127.0.0.1&src_ip=127.0.0.2", "", "src_ip"},
		{"POST to", "POST", "/v1/check", `{"to":"+14155550123","account":"acme","to":"+5355512345"}`, "to"},
		{"POST to then null", "POST", "/v1/check", `{"to":"+5355512345","to":null}`, "to"},
		{"POST escaped key", "POST", "/v1/check", `{"to":"+14155550123","t\u006f":"+5355512345"}`, "to"},
		{"POST account as number", "POST", "/v1/check", `{"to":"1","account":"acme","account":1234}`, "account"},
		{"POST call_id", "POST", "/v1/check", `{"to":"1","call_id":"a","call_id":"b"}`, "call_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.q(c.method, c.uri, c.body)
			want := `{"error":"field \"` + c.field + `\" given more than once"}`
			if r.status != 400 || string(r.body) != want {
				t.Fatalf("%d %s, want 400 %s", r.status, r.body, want)
			}
		})
	}
	// Other parameters may repeat: a proxy config may send more.
	if r := e.q("GET", "/v1/check?to=%2B14155550123&x=1&x=2", ""); r.status != 200 {
		t.Fatalf("unknown parameter repeated: %d %s", r.status, r.body)
	}
	if r := e.q("POST", "/v1/check", `{"to":"+14155550123","x":1,"x":2}`); r.status != 200 {
		t.Fatalf("unknown member repeated: %d %s", r.status, r.body)
	}

	dup := `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123","account":"acme","to":"+5355512345"},"id":1}`
	wantRPC := `{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid params: field \"to\" given more than once"},"id":1}`
	if r := e.q("POST", "/rpc", dup); r.status != 200 || string(r.body) != wantRPC {
		t.Fatalf("/rpc: %d %s", r.status, r.body)
	}
	addr, _ := startRPC(t, e)
	c := dial(t, addr)
	io.WriteString(c, netstring(dup))
	if got := readNetstringReply(t, bufio.NewReader(c)); got != wantRPC {
		t.Fatalf("netstring: %s", got)
	}
	c.Close()
	c = dial(t, addr)
	io.WriteString(c, dup)
	got, _ := io.ReadAll(c)
	if strings.TrimSpace(string(got)) != wantRPC {
		t.Fatalf("bare JSON: %s", got)
	}
	c.Close()
}

// A call event's member given twice is refused too: a forged second
// "duration" must not be what counts.
func TestDuplicateEventMembersRefused(t *testing.T) {
	for _, c := range []struct{ body, field string }{
		{`{"event":"ended","call_id":"c1","account":"acme","duration":5,"duration":604800}`, "duration"},
		{`[{"event":"answered","call_id":"c1","account":"acme"},{"event":"answered","call_id":"c2","account":"acme","account":"victim"}]`, "events[1].account"},
		{`{"event":"answered","call_id":"c1","c\u0061ll_id":"c2","account":"acme"}`, "call_id"},
	} {
		_, err := DecodeEvents([]byte(c.body))
		if err == nil || !strings.HasPrefix(err.Error(), c.field+": given more than once") {
			t.Errorf("%s: %v, want %s: given more than once", c.body, err, c.field)
		}
	}
	if _, err := DecodeEvents([]byte(`{"event":"answered","call_id":"c1","account":"acme","x":1,"x":2}`)); err != nil {
		t.Errorf("unknown member repeated: %v", err)
	}
}
