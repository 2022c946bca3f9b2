package query

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

// env is the query transports alone over a compiled snapshot: the
// built-in high-risk list and no account (package handler's tests drive
// the assembled handler, configured through the admin API).
type env struct {
	t *testing.T
	h *Server
}

func newEnv(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	hr, err := matcher.DefaultHighRisk()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := matcher.Compile(&policy.Set{HighRisk: hr}, plan)
	if err != nil {
		t.Fatal(err)
	}
	m := matcher.New(plan, matcher.Options{})
	m.Swap(snap)
	o := Options{Logger: zerolog.Nop()}
	for _, f := range opts {
		f(&o)
	}
	return &env{t: t, h: New(m, o)}
}

// readNetstringReply reads one netstring reply.
func readNetstringReply(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var buf []byte
	p, err := ReadNetstring(br, &buf)
	if err != nil {
		t.Fatalf("reading a netstring reply: %v", err)
	}
	return string(p)
}

func checkReq(id int, to, account string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"check","params":{"to":%q,"account":%q},"id":%d}`, to, account, id)
}

func rpcResult(t *testing.T, reply string) (id float64, reason string, code float64) {
	t.Helper()
	var r struct {
		ID     float64
		Result map[string]any
		Error  *struct{ Code float64 }
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	if r.Error != nil {
		return r.ID, "", r.Error.Code
	}
	return r.ID, r.Result["reason"].(string), 0
}

func contains(t *testing.T, what string, got []byte, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(string(got), w) {
			t.Errorf("%s: %q does not contain %q", what, got, w)
		}
	}
}
