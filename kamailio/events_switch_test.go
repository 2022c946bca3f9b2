package kamailio_test

// The call events' switch of kamailio.cfg: WITHOUT_CALL_EVENTS sends
// tollgate no call events while the channel caps still apply; without it
// tollgate hears of every call.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

func TestCallEventSwitchesCheck(t *testing.T) {
	requireTools(t)
	_, cfg := cfgPath(t)
	for _, defs := range [][]string{
		{"WITHOUT_CALL_EVENTS"},
		{"WITH_JSONRPC", "WITHOUT_CALL_EVENTS"},
		{"WITH_JSONRPC", "WITHOUT_CALL_EVENTS", "WITH_CONTROL", "WITH_PROMETHEUS", "WITH_AUTH"},
		{"RELAY_ONLY", "BENCH_TRACK"},
		{"RELAY_ONLY", "BENCH_TRACK", "WITHOUT_CALL_EVENTS", "BENCH_CHANS=5", "BENCH_CPS=5"},
	} {
		if out, err := siptest.CheckConfig(cfg, append([]string{"WITH_IPAUTH"}, defs...)...); err != nil {
			t.Errorf("kamailio -c with %v: %v\n%s", defs, err, out)
		}
	}
}

func TestCallEventSwitches(t *testing.T) {
	e := setup(t)
	const account = "chan2" // ipChan's trunk, max_channels 2

	// The cases share tollgate and the account: none but the last may let
	// tollgate hear of a call, the last one must.
	for _, tc := range []struct {
		name      string
		defs      []string
		events    bool // tollgate hears of the call
		checkCaps bool // the channel cap still applies
	}{
		{"jsonrpc WITHOUT_CALL_EVENTS", []string{"WITH_JSONRPC", "WITHOUT_CALL_EVENTS"}, false, true},
		{"http_client WITHOUT_CALL_EVENTS", []string{"WITHOUT_CALL_EVENTS"}, false, true},
		{"jsonrpc with events", []string{"WITH_JSONRPC"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defs := append([]string{
				"CHILDREN=4", "WITH_IPAUTH",
				fmt.Sprintf(`TOLLGATE_URL="%s"`, e.tg.QueryURL()),
				fmt.Sprintf(`TOLLGATE_RPC="%s"`, e.tg.RPCAddr),
				e.upstream.Define("UPSTREAM"),
				e.screen.Define("SCREEN_URI"),
				fmt.Sprintf(`ADDRESS_FILE="%s"`, e.addrFile),
			}, tc.defs...)
			k, err := siptest.StartKamailio(e.name("evsw"), e.cfg, e.dir, defs...)
			if err != nil {
				t.Fatal(err)
			}
			e.track(k)

			done := make(chan error, 1)
			go func() {
				res, err := e.runE(k, callOpts{src: ipChan, calls: []siptest.Call{{Number: numAllowed, From: "pbx"}}, holdMS: 2000})
				if err == nil && (len(res.Order) != 1 || res.CountCode(200) != 1) {
					err = fmt.Errorf("held call: %v", res.Finals())
				}
				done <- err
			}()
			if tc.events {
				poll(t, "the answered event", func() bool { return e.velocity(t, account).LiveCalls == 1 })
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if tc.events {
				poll(t, "the ended event", func() bool { v := e.velocity(t, account); return v.LiveCalls == 0 && v.PeakToday == 1 })
			} else {
				// ten times EVENT_FLUSH_MS: an event sent would be in
				time.Sleep(time.Second)
				if v := e.velocity(t, account); v.LiveCalls != 0 || v.PeakToday != 0 {
					t.Fatalf("tollgate heard of the call: %+v", v)
				}
			}
			if strings.Contains(k.Log(), "call events not delivered") {
				t.Errorf("call events not delivered:\n%s", k.Tail(10))
			}
			if tc.checkCaps {
				testChannelCap(t, e, k)
			}
			k.Stop(5 * time.Second)
		})
	}
}
