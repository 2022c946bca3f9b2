package kamailio_test

// End-to-end test of the teardown: Kamailio with WITH_CONTROL serves its
// JSON-RPC on a loopback TCP port, its call events name it (PROXY_ID) and
// carry each dialog's tags, and tollgate (-proxy-control) ends the live
// international calls of an account the moment a lockdown locks it: both
// the caller and the carrier get a BYE from the proxy, and the domestic call
// stays up until the caller hangs up.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

func TestTeardownOnLockdown(t *testing.T) {
	ctl := fmt.Sprintf("127.0.0.1:%d", siptest.MustFreePort("tcp", "127.0.0.1"))
	e := setup(t, "-velocity-interval", "50ms", "-proxy-control", "edge-a=kamailio:http://"+ctl+"/RPC")
	k := e.kamailio(t, "teardown", "WITH_IPAUTH", "WITH_CONTROL", "CONTROL_LISTEN=tcp:"+ctl, `PROXY_ID="edge-a"`)
	const account = "burst-http" // the trunk at ipBurstH
	// two concurrent calls to France are critical: the second answer locks
	if err := e.tg.PutAccount(account, `{"home_country":"GB","countries":{"default":"allow"},"high_risk":"block",`+
		`"velocity":{"rules":[{"name":"france","prefix":"+33","concurrent_calls":{"critical":2}}]}}`); err != nil {
		t.Fatal(err)
	}

	// a forged event cannot name an address for tollgate to send to
	resp, err := http.Post(e.tg.QueryURL()+"/v1/events", "application/json", strings.NewReader(
		`{"event":"answered","call_id":"forged","account":"`+account+`","to":"+33142685399","proxy":"http://127.0.0.1:1/RPC"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"field":"proxy"`) {
		t.Fatalf("forged proxy URL: %d %s", resp.StatusCode, b)
	}

	// the domestic call first, then two to France, all held by the callers
	res := e.run(t, k, callOpts{src: ipBurstH, scenario: "uac_held.xml", rate: 5, timeout: 30, calls: []siptest.Call{
		{Number: numGB, From: "pbx"}, {Number: numFrance, From: "pbx"}, {Number: "+33142685301", From: "pbx"}}, count: 3})
	if len(res.Order) != 3 || res.CountCode(200) != 3 {
		t.Fatalf("calls: %v\n%s\n%s", res.Finals(), res.Output, k.Tail(20))
	}
	var locked struct {
		Lock struct {
			Automatic bool      `json:"automatic"`
			Rule      string    `json:"rule"`
			Time      time.Time `json:"time"`
		} `json:"lock"`
	}
	st, lb, err := e.tg.Admin("GET", "/v1/accounts/"+account+"/lock", "", nil)
	lock := &locked.Lock
	if err != nil || st != 200 || json.Unmarshal(lb, &locked) != nil || !lock.Automatic || lock.Rule != "france" {
		t.Fatalf("lock: %d %s %v", st, lb, err)
	}
	carrier, err := siptest.ParseMessageLog(e.upstream.MsgLog)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range res.Order {
		c := res.Calls[id]
		to := "?"
		if f := c.Final(); f != nil {
			to = f.Headers["to"]
		}
		callerBye, callerGot := c.Received("BYE")
		var carrierBye siptest.Request
		carrierGot := false
		if cc := carrier.Calls[id]; cc != nil {
			carrierBye, carrierGot = cc.Received("BYE")
		}
		if i == 0 {
			// domestic: up until the caller hung up after 8 s
			if callerGot || c.ByeStatus() != 200 || !carrierGot || carrierBye.At.Sub(lock.Time) < 5*time.Second {
				t.Errorf("domestic call %s (%s): caller got BYE %v, its own BYE answered %d, carrier BYE at lock+%v",
					id, to, callerGot, c.ByeStatus(), carrierBye.At.Sub(lock.Time))
			}
			continue
		}
		if !callerGot || !carrierGot || c.ByeStatus() != 0 {
			t.Errorf("international call %s (%s): BYE to caller %v, to carrier %v, caller's own BYE %d\n%s",
				id, to, callerGot, carrierGot, c.ByeStatus(), k.Tail(20))
			continue
		}
		dc, dk := callerBye.At.Sub(lock.Time), carrierBye.At.Sub(lock.Time)
		t.Logf("call %d torn down: BYE at the caller lock+%v, at the carrier lock+%v", i, dc.Round(time.Millisecond), dk.Round(time.Millisecond))
		if dc > time.Second || dk > time.Second || dc < 0 || dk < 0 {
			t.Errorf("call %s: BYEs at lock+%v (caller) and lock+%v (carrier), want within a second of the lock", id, dc, dk)
		}
	}
	// tollgate counted both teardowns and the domestic call left up; the
	// proxy reported every end
	var m string
	defer func() {
		if t.Failed() {
			t.Logf("metrics:\n%s", linesStartingWith(m, "tollgate_teardown", "tollgate_live_calls", "tollgate_call_events"))
		}
	}()
	pollNoFatal(t, "the teardown metrics", func() bool {
		resp, err := http.Get(e.tg.QueryURL() + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m = string(b)
		return strings.Contains(m, `tollgate_teardown_calls_total{result="ended"} 2`+"\n") &&
			strings.Contains(m, `tollgate_teardown_calls_total{result="domestic"} 1`+"\n") &&
			strings.Contains(m, `tollgate_teardown_rpcs_total{result="ok"} 2`+"\n") &&
			strings.Contains(m, "\ntollgate_live_calls 0\n")
	})
	t.Logf("tollgate's log of the teardown:\n%s", grepLines(e.tg.Log(), `"teardown: `))
}

// linesStartingWith keeps the lines of s that start with one of the prefixes.
func linesStartingWith(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// pollNoFatal is poll that reports a timeout with t.Errorf, so deferred
// diagnostics still run.
func pollNoFatal(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
