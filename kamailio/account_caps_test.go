package kamailio_test

// End-to-end tests of issue 11 items 9, 10 and 11 through the real Kamailio:
// an account whose subaccounts share account-wide channel caps and which
// refuses invented subaccount names, call events that carry the events
// token (and are refused without it), and a number with a routing number.

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

const (
	ipGroup   = "127.0.0.22" // trunk "group": account-wide caps, known subaccounts only
	ipGroupC  = "127.0.0.23" // trunk "groupcps": account_max_cps 5 over its subaccounts
	eventsTok = "kamailio-e2e-events-0123456789"
)

func (e *env) metrics(t *testing.T) string {
	t.Helper()
	r, err := http.Get(e.tg.QueryURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestAccountCapsEventsTokenAndRN(t *testing.T) {
	e := setup(t, "-events-token", eventsTok)
	if err := e.tg.PutAccount("group", `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"max_channels":5,`+
		`"unknown_subaccounts":"reject","account_max_channels":2,"subaccounts":{"s1":{},"s2":{}}}`); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.addrFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.tg.PutAccount("groupcps", `{"home_country":"GB","account_max_cps":5,"subaccounts":{"s1":{},"s2":{}}}`); err != nil {
		t.Fatal(err)
	}
	f.WriteString("1 " + ipGroup + " 32 0 group\n1 " + ipGroupC + " 32 0 groupcps\n")
	f.Close()
	// a sipp scenario whose R-URI carries a routing number after the number
	uac, _ := os.ReadFile(filepath.Join(e.scenario, "uac.xml"))
	rnScenario := filepath.Join(e.dir, "uac_rn.xml")
	os.WriteFile(rnScenario, []byte(strings.Replace(string(uac), "INVITE sip:[field0]@", "INVITE sip:[field0];npdi;rn="+numCuba+"@", 1)), 0o644)

	tokDef := `EVENTS_TOKEN="` + eventsTok + `"`
	kHTTP := e.kamailio(t, "caps-http", "WITH_IPAUTH", tokDef)
	kRPC := e.kamailio(t, "caps-rpc", "WITH_IPAUTH", "WITH_JSONRPC", tokDef)
	for _, tr := range []struct {
		name string
		k    *siptest.Kamailio
	}{{"http_client", kHTTP}, {"jsonrpc", kRPC}} {
		k := tr.k
		t.Run(tr.name, func(t *testing.T) {
			t.Run("invented subaccount refused", func(t *testing.T) {
				expectReject(t, k, e.one(t, k, ipGroup, siptest.Call{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s99"}),
					403, "Unknown Subaccount", map[string]string{"X-Tollgate-Code": "2021", "X-Tollgate-Reason": "unknown_subaccount"})
			})
			t.Run("account-wide channel cap over two subaccounts", func(t *testing.T) {
				testAccountChannelCap(t, e, k)
			})
			t.Run("account-wide CPS cap over two subaccounts", func(t *testing.T) {
				testAccountCPSCap(t, e, k)
			})
			t.Run("routing number decides", func(t *testing.T) {
				u := siptest.UAC{Name: e.name("rn"), Scenario: rnScenario, SrcIP: ipGroup, Target: k.Addr,
					Calls:         []siptest.Call{{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s1"}},
					RecvTimeoutMS: 3000, TimeoutS: 15, HoldMS: 100, Trace: true, Dir: e.dir}
				res, err := u.Run(context.Background())
				if err != nil || len(res.Order) != 1 {
					t.Fatalf("sipp: %v", err)
				}
				expectReject(t, k, res.Calls[res.Order[0]], 403, "Barred Country", map[string]string{"X-Tollgate-Code": "2030"})
				if !strings.Contains(k.Log(), ";npdi;rn="+numCuba+": country_barred") {
					t.Errorf("the proxy did not pass the routing number on:\n%s", k.Tail(10))
				}
			})
		})
	}

	// the events of those calls came in with the token (none refused); a
	// proxy without it is refused and counted
	m := e.metrics(t)
	if strings.Contains(m, `tollgate_call_events_total{event="ended",result="accepted"} 0`) ||
		!strings.Contains(m, `tollgate_events_refused_total{cause="token"} 0`) {
		t.Fatalf("events with the token not all accepted:\n%s", grepLines(m, "event"))
	}
	kNo := e.kamailio(t, "caps-notoken", "WITH_IPAUTH")
	expectAnswered(t, kNo, e.one(t, kNo, ipGroup, siptest.Call{Number: numAllowed, From: "pbx"}))
	poll(t, "the tokenless proxy's events refused", func() bool {
		return !strings.Contains(e.metrics(t), `tollgate_events_refused_total{cause="token"} 0`)
	})
	poll(t, "the refusal logged by the proxy", func() bool { return strings.Contains(kNo.Log(), "not delivered (HTTP 401)") })
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Two calls up, one from each subaccount, on an account capped at 2
// channels in all (each subaccount may have 5): a third is refused with 503
// Channel Limit Reached (account_channel_limit), and passes again once they
// hang up.
func testAccountChannelCap(t *testing.T, e *env, k *siptest.Kamailio) {
	var wg sync.WaitGroup
	held := make([]*siptest.Result, 2)
	errs := make([]error, 2)
	logs := make([]string, 2)
	for i, sub := range []string{"s1", "s2"} {
		name := e.name("held")
		logs[i] = filepath.Join(e.dir, name+"-messages.log")
		wg.Add(1)
		go func(i int, sub string) {
			defer wg.Done()
			held[i], errs[i] = e.runE(k, callOpts{name: name, src: ipGroup, holdMS: 6000,
				calls: []siptest.Call{{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: " + sub}}})
		}(i, sub)
	}
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		answered := 0
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "SIP/2.0 200 OK") {
				answered++
			}
		}
		if answered == 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	over := e.one(t, k, ipGroup, siptest.Call{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s1"})
	wg.Wait()
	for i, r := range held {
		if errs[i] != nil || r == nil || len(r.Order) != 1 {
			t.Fatalf("held call %d: %v", i, errs[i])
		}
		expectAnswered(t, k, r.Calls[r.Order[0]])
	}
	expectReject(t, k, over, 503, "Channel Limit Reached", map[string]string{"X-Tollgate-Reason": "account_channel_limit"})
	expectAnswered(t, k, e.one(t, k, ipGroup, siptest.Call{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s2"}))
}

// A burst at 15 calls/s for 3 s, alternating between two subaccounts that
// have no caps of their own, on an account capped at 5 CPS in all: about 5
// per second pass, the rest get 503 CPS Limit Exceeded with
// X-Tollgate-Reason: account_cps_limit (bounds as in testCPSCap).
func testAccountCPSCap(t *testing.T, e *env, k *siptest.Kamailio) {
	const c, secs = 5, 3
	n := 3 * c * secs
	res := e.run(t, k, callOpts{src: ipGroupC, count: n, rate: 3 * c, holdMS: 50, timeout: 20, calls: []siptest.Call{
		{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s1"},
		{Number: numAllowed, From: "pbx", Header: "X-Tollgate-Subaccount: s2"}}})
	ok, limited := res.CountCode(200), 0
	for _, cr := range res.Calls {
		if f := cr.Final(); f != nil && f.Code == 503 && f.Reason == "CPS Limit Exceeded" && f.Headers["x-tollgate-reason"] == "account_cps_limit" {
			limited++
		}
	}
	t.Logf("account-wide CPS cap %d, %d calls at %d/s over two subaccounts: %d answered, %d limited, finals %v", c, n, 3*c, ok, limited, res.Finals())
	if len(res.Order) != n {
		t.Fatalf("sipp placed %d calls, want %d", len(res.Order), n)
	}
	if ok < c*secs*2/3 || ok > c*(secs+2) {
		t.Errorf("%d calls answered under an account-wide %d CPS cap in a %d s burst; want about %d", ok, c, secs, c*secs)
	}
	if ok+limited != n {
		t.Errorf("answered %d + limited %d != %d calls: %v", ok, limited, n, res.Finals())
	}
}
