package kamailio_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

// TestRESP: the shipped config with WITH_RESP asks tollgate's -resp-addr
// over ndb_redis (TGCHECK), acts on the verdict with the precise SIP code,
// and fails closed (or open with FAIL_OPEN) when tollgate is down.
func TestRESP(t *testing.T) {
	e := setup(t)
	k := e.kamailio(t, "resp", "WITH_IPAUTH", "WITH_AUTH", "WITH_RESP")
	kOpen := e.kamailio(t, "resp-open", "WITH_IPAUTH", "WITH_RESP", "FAIL_OPEN")

	t.Run("allowed call reaches the upstream and BYE passes", func(t *testing.T) {
		expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller"}))
	})
	t.Run("barred country", func(t *testing.T) {
		expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numCuba, From: "caller"}),
			403, "Barred Country", map[string]string{"X-Tollgate-Code": "2030", "X-Tollgate-Reason": "country_barred"})
	})
	t.Run("high-risk number", func(t *testing.T) {
		expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numSatellite, From: "caller"}),
			403, "Barred Number", map[string]string{"X-Tollgate-Code": "2040", "X-Tollgate-Reason": "number_barred"})
	})
	t.Run("subaccount header from a trunk", func(t *testing.T) {
		// three %s arguments: to, account, subaccount
		hdr := "X-Tollgate-Subaccount: usonly"
		expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller", Header: hdr}),
			403, "Barred Country", nil)
		expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numUS, From: "caller", Header: hdr}))
	})
	t.Run("digest user is the account", func(t *testing.T) {
		expectAnswered(t, k, e.one(t, k, ipUser, siptest.Call{Number: numAllowed, From: "alice"}, "alice", alicePass))
		expectReject(t, k, e.one(t, k, ipUser, siptest.Call{Number: numCuba, From: "alice"}, "alice", alicePass),
			403, "Barred Country", nil)
	})
	t.Run("a From user with a format directive changes nothing", func(t *testing.T) {
		// hiredis reads the command text as a printf format: "%25s" there
		// would read an argument that was never passed. The From user is
		// not sent at all
		expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "a%25s%25s"}))
		expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numCuba, From: "a%25s"}),
			403, "Barred Country", nil)
	})
	t.Run("checks arrive over RESP", func(t *testing.T) {
		r, err := http.Get(e.tg.QueryURL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		body := string(b)
		for _, want := range []string{`tollgate_decisions_total{transport="resp",verdict="allow",reason="ok"}`,
			`tollgate_decisions_total{transport="resp",verdict="reject",reason="country_barred"}`,
			`tollgate_decisions_total{transport="resp",verdict="reject",reason="number_barred"}`} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if strings.Contains(body, `tollgate_parse_errors_total{transport="resp"} 1`) {
			t.Errorf("a RESP command was malformed")
		}
	})

	if err := e.tg.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Run("sidecar stopped: fail closed", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			start := time.Now()
			c := e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller"})
			expectReject(t, k, c, 503, "Fraud Check Unavailable", map[string]string{"Retry-After": "30", "X-Tollgate-Reason": "unavailable"})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("fail-closed answer took %v", d)
			}
		}
		if !strings.Contains(k.Log(), "UNAVAILABLE (RESP transport error (no connection or timeout)); failing closed") {
			t.Errorf("fail-closed decision not logged:\n%s", k.Tail(10))
		}
	})
	t.Run("sidecar stopped: emergency still passes", func(t *testing.T) {
		expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: "911", From: "caller"}))
	})
	t.Run("sidecar stopped: FAIL_OPEN relays and logs loudly", func(t *testing.T) {
		expectAnswered(t, kOpen, e.one(t, kOpen, ipTrunk, siptest.Call{Number: numCuba, From: "caller"}))
		if !strings.Contains(kOpen.Log(), "FAIL_OPEN: relaying UNCHECKED call") {
			t.Errorf("FAIL_OPEN relay not logged:\n%s", kOpen.Tail(10))
		}
	})
}
