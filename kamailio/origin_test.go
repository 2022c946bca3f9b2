package kamailio_test

// End-to-end test of the origin checks through the real Kamailio: tollgate
// runs with a Geo-IP database built by the test (nothing is downloaded) in
// which the roaming trunk's loopback address is in Nigeria; its geo profile
// screens Nigeria, so its call is relayed to the screening IVR (a sipp UAS
// on SCREEN_URI); the IVR reports a pass through the admin API and the next
// call goes to the carrier.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/kamailio/siptest"
	"github.com/tollgate/tollgate/origin/geotest"
)

const ipRoamer = "127.0.0.21" // trunk "roamer": origin checks, 127.0.0.21 is in NG in the test database

// writeGeoDB writes a GeoLite2-Country-shaped database: 127.0.0.21 in NG,
// the rest of 127/8 in GB.
func writeGeoDB(t *testing.T, path string) {
	t.Helper()
	// broad first: the /32 replaces its part of the /8
	if err := geotest.Write(path, geotest.Net{CIDR: "127.0.0.0/8", Country: "GB"}, geotest.Net{CIDR: ipRoamer + "/32", Country: "NG"}); err != nil {
		t.Fatal(err)
	}
}

// received reports whether a sipp UAS's message log holds an INVITE of the
// call.
func received(t *testing.T, u *siptest.UAS, callID string) bool {
	t.Helper()
	b, err := os.ReadFile(u.MsgLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "Call-ID: "+callID) || strings.Contains(string(b), "Call-ID:"+callID)
}

func TestOriginScreening(t *testing.T) {
	db := filepath.Join(t.TempDir(), "country.mmdb")
	writeGeoDB(t, db)
	e := setup(t, "-geoip-db", db)
	if st, b, err := e.tg.Admin("PUT", "/v1/operator", "application/json",
		[]byte(`{"geo_profiles":{"std":{"zones":[{"name":"watch","action":"screen","countries":["NG"]}]}}}`)); err != nil || st != 200 {
		t.Fatalf("PUT operator: %d %s %v", st, b, err)
	}
	if err := e.tg.PutAccount("roamer", `{"home_country":"GB","countries":{"default":"allow"},"high_risk":"block",`+
		`"origin":{"geo_profile":"std","screening_pass_minutes":30}}`); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.addrFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "1 %s 32 0 roamer\n", ipRoamer)
	f.Close()
	k := e.kamailio(t, "origin", "WITH_IPAUTH")

	// The trunk of another account, from a GB address, still reaches the carrier.
	c := e.one(t, k, ipTrunk, siptest.Call{Number: numGB, From: "pbx"})
	expectAnswered(t, k, c)
	if !received(t, e.upstream, c.CallID) {
		t.Fatalf("call %s from GB did not reach the carrier", c.CallID)
	}

	// From NG: screened, relayed to the IVR with the reason headers.
	c = e.one(t, k, ipRoamer, siptest.Call{Number: numGB, From: "pbx"})
	expectAnswered(t, k, c)
	if !received(t, e.screen, c.CallID) || received(t, e.upstream, c.CallID) {
		t.Fatalf("call %s from NG was not relayed to the screening IVR only\n%s", c.CallID, k.Tail(15))
	}
	if !strings.Contains(k.Log(), "tollgate: screening account 'roamer'") {
		t.Errorf("no screening line in the Kamailio log\n%s", k.Tail(15))
	}
	if _, body, _ := e.tg.Check("to=%2B442079460123&account=roamer&src_ip=" + ipRoamer); !strings.Contains(body, `"origin_screen"`) ||
		!strings.Contains(body, `origin NG in zone \"watch\" of geo profile \"std\": screen`) {
		t.Fatalf("verdict: %s", body)
	}

	// The IVR reports the pass; the next call goes to the carrier.
	if st, b, err := e.tg.Admin("POST", "/v1/accounts/roamer/screening", "application/json", []byte(`{"result":"passed"}`)); err != nil || st != 200 {
		t.Fatalf("screening report: %d %s %v", st, b, err)
	}
	c = e.one(t, k, ipRoamer, siptest.Call{Number: numGB, From: "pbx"})
	expectAnswered(t, k, c)
	if !received(t, e.upstream, c.CallID) || received(t, e.screen, c.CallID) {
		t.Fatalf("call %s after the pass did not go to the carrier\n%s", c.CallID, k.Tail(15))
	}
	st, b, _ := e.tg.Admin("GET", "/v1/audit?limit=3", "", nil)
	if st != 200 || !strings.Contains(string(b), `"action":"screening_passed"`) {
		t.Errorf("audit: %d %s", st, b)
	}
}
