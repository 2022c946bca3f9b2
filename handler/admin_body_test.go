package handler

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawAdmin sends head (request line and headers, without the blank line),
// then nothing more: the client stalls before its body. It returns the
// status line and the body of what the server answers.
func rawAdmin(t *testing.T, e *env, head string) (int, string) {
	t.Helper()
	c, err := e.aln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) // the old code waited 60 s for the body
	if _, err := io.WriteString(c, head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: no answer before the body was sent: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// TestAdminBodyNotReadBeforeToken: a request whose token is missing or
// wrong is answered 401 from its headers, without waiting for (or
// reading) its body, however the body is framed; an authorised body over
// its route's limit is answered 413 the same way.
func TestAdminBodyNotReadBeforeToken(t *testing.T) {
	e := newEnv(t)
	big := "Content-Length: 200000000"
	for _, c := range []struct {
		head   string
		status int
		want   string
	}{
		{"PUT /v1/high-risk HTTP/1.1\r\nHost: x\r\n" + big, 401, "body was not read"},
		{"PUT /v1/high-risk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\n" + big, 401, "bearer token"},
		{"PUT /v1/accounts/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", 401, "bearer token"},
		{"PUT /v1/accounts/acme HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n" + big, 401, "bearer token"},
		{"POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", 401, "bearer token"},
		{"PUT /v1/high-risk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\n" + big, 413, "167772160 bytes"},
		{"PUT /v1/high-risk HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: Bearer " + testToken + "\r\n" + big, 413, "167772160 bytes"},
		{"PUT /v1/accounts/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\nContent-Length: 16777217", 413, "16777216 bytes"},
		{"PUT /v1/accounts/acme/lock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken + "\r\nContent-Length: 65537", 413, "65536 bytes"},
	} {
		status, body := rawAdmin(t, e, c.head)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%q:\n got %d %s\nwant %d …%s…", c.head, status, body, c.status, c.want)
		}
	}
}

// TestAdminChunkedOverLimit: a chunked body is refused with 413 once it
// passes its route's limit, not read to its end.
func TestAdminChunkedOverLimit(t *testing.T) {
	e := newEnv(t)
	c, err := e.aln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "PUT /v1/accounts/acme/lock HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk := strings.Repeat("x", 32<<10)
	for i := 0; i < 3; i++ { // 96 KiB, then the client stalls
		io.WriteString(c, "8000\r\n"+chunk+"\r\n")
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 413 {
		t.Errorf("status %d, want 413", r.StatusCode)
	}
}

// TestAdminBodyWithinLimit: the limits leave legitimate writes alone.
func TestAdminBodyWithinLimit(t *testing.T) {
	e := newEnv(t)
	e.mustA("PUT", "/v1/accounts/acme", `{"max_channels":10}`)
	e.mustA("PUT", "/v1/accounts/acme/subaccounts/s1", `{"max_channels":5}`)
	if r := e.a("GET", "/v1/accounts/acme", ""); r.status != 200 {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	if r := doRawAuth(t, e, "GET", "/health", ""); r.status != 200 {
		t.Errorf("/health without a token: %d", r.status)
	}
}

// TestAdminExpectContinueAuthorised: an authorised body sent after
// "100 Continue" (curl does this above 1 MB) is read and applied.
func TestAdminExpectContinueAuthorised(t *testing.T) {
	e := newEnv(t)
	c, err := e.aln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := `{"max_channels":7}`
	io.WriteString(c, "PUT /v1/accounts/acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\nExpect: 100-continue\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n")
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || !strings.Contains(l, "100 Continue") {
		t.Fatalf("interim answer %q, %v", l, err)
	}
	br.ReadString('\n') // the blank line after 100 Continue
	io.WriteString(c, body)
	r, err := http.ReadResponse(br, nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("%v %v", r, err)
	}
	if got := e.a("GET", "/v1/accounts/acme", ""); !strings.Contains(string(got.body), `"max_channels":7`) {
		t.Errorf("not applied: %s", got.body)
	}
}
