package handler

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// refusing is a service.Replicator that refuses every policy write with
// err, as fleet.Policy does while the fleet is away or the record moved.
type refusing struct{ err error }

func (r refusing) Replicate(ch *store.Change) error {
	if len(ch.Accounts) > 0 || ch.Operator != nil {
		return r.err
	}
	return nil
}

// TestFleetErrors: the fleet's refusals reach the client as 503 and 409,
// and nothing is applied.
func TestFleetErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		header string
		want   string
	}{
		{"unreachable", &service.UnavailableError{Msg: "fleet: NATS unreachable for 3s"}, 503, "Retry-After", "NATS unreachable"},
		{"conflict", &service.RevisionConflictError{Key: "acct.acme", Expected: 4, Current: 7}, 409, "Tollgate-Fleet-Revision", "changed on another node (revision 7, this node had applied 4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.svc.SetReplicator(refusing{tc.err})
			r := e.a("PUT", "/v1/accounts/acme", `{"max_channels":5}`)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.want) || r.hdr[tc.header] == "" {
				t.Fatalf("%d %s %v, want %d with %s", r.status, r.body, r.hdr, tc.status, tc.header)
			}
			if r := e.a("GET", "/v1/accounts/acme", ""); r.status != 404 {
				t.Fatalf("the refused account was applied: %d %s", r.status, r.body)
			}
			if r := e.a("GET", "/v1/audit", ""); strings.Contains(string(r.body), "account.put") {
				t.Fatalf("the refused write was audited: %s", r.body)
			}
		})
	}
}

// TestFleetOff: without -nats, GET /v1/fleet says fleet mode is off, and
// writes carry no fleet headers.
func TestFleetOff(t *testing.T) {
	e := newEnv(t)
	if r := e.a("GET", "/v1/fleet", ""); r.status != 404 || !strings.Contains(string(r.body), "fleet mode is off") {
		t.Fatalf("GET /v1/fleet: %d %s", r.status, r.body)
	}
	if r := e.a("PUT", "/v1/fleet", ""); r.status != 405 {
		t.Fatalf("PUT /v1/fleet: %d %s", r.status, r.body)
	}
	r := e.mustA("PUT", "/v1/accounts/acme?wait=all", `{"max_channels":5}`)
	if _, ok := r.hdr["Tollgate-Fleet-Revision"]; ok {
		t.Fatalf("fleet header without fleet mode: %v", r.hdr)
	}
}
