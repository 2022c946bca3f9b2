package handler

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/velocity"
)

// keptAlerts is the local dispatcher of a fleet node in this test.
type keptAlerts struct {
	mu sync.Mutex
	n  int
}

func (k *keptAlerts) Notify(alert.Alert) { k.mu.Lock(); k.n++; k.mu.Unlock() }

// fleetNode starts a fleet.State for node on the server at url.
func fleetNode(t *testing.T, url, node string) *fleet.State {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	conn, err := fleet.NewConn(nc, node, 1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fleet.StartState(fleet.StateOptions{Conn: conn, Engine: velocity.New(velocity.Options{}), Deliver: &keptAlerts{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// startNATS runs a JetStream nats-server on a free loopback port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv
}

// TestFleetAlertHistory: in fleet mode GET /v1/alerts lists the fleet's
// alerts from the stream, so an alert raised on node 1 is listed on node 2
// (newest first, limit kept); with NATS gone it answers at once with this
// node's list, marked "source":"local" with a "degraded" reason, counted in
// /metrics.
func TestFleetAlertHistory(t *testing.T) {
	srv := startNATS(t)
	defer srv.Shutdown()
	st1 := fleetNode(t, srv.ClientURL(), "n1")
	st2 := fleetNode(t, srv.ClientURL(), "n2")
	e2 := newEnv(t, func(_ *service.Options, o *Options) { o.FleetState = st2 })
	for _, st := range []*fleet.State{st1, st2} {
		deadline := time.Now().Add(15 * time.Second)
		for !st.Stats().Streams {
			if time.Now().After(deadline) {
				t.Fatal("streams not set up")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// raised on node 1 only
	st1.Notify(alert.Alert{Type: alert.TypeLockdown, Level: alert.LevelCritical, Kind: alert.KindLockdown, Account: "acme", By: "tollgate",
		Message: "international calls of acme locked automatically"})
	st1.Notify(alert.Alert{Type: alert.TypeUnlock, Level: alert.LevelInfo, Kind: alert.KindUnlock, Account: "acme", By: "ops", Reason: "checked"})
	type list struct {
		Alerts   []alert.Alert `json:"alerts"`
		Source   string        `json:"source"`
		Degraded string        `json:"degraded"`
	}
	get := func(uri string) list {
		t.Helper()
		r := e2.mustA("GET", uri, "")
		var l list
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
		return l
	}
	deadline := time.Now().Add(15 * time.Second)
	var l list
	for l = get("/v1/alerts"); len(l.Alerts) < 2; l = get("/v1/alerts") {
		if time.Now().After(deadline) {
			t.Fatalf("node 2 lists %+v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l.Source != "fleet" || l.Degraded != "" || len(l.Alerts) != 2 || l.Alerts[0].Type != alert.TypeUnlock || l.Alerts[1].Type != alert.TypeLockdown ||
		l.Alerts[1].Account != "acme" || l.Alerts[1].IdempotencyKey == "" {
		t.Fatalf("node 2's fleet history %+v", l)
	}
	if l := get("/v1/alerts?limit=1"); len(l.Alerts) != 1 || l.Alerts[0].Type != alert.TypeUnlock {
		t.Fatalf("limit=1: %+v", l)
	}
	if r := e2.a("GET", "/v1/alerts?limit=x", ""); r.status != 400 {
		t.Fatalf("limit=x: %d %s", r.status, r.body)
	}
	srv.Shutdown()
	start := time.Now()
	l = get("/v1/alerts")
	if l.Source != "local" || !strings.Contains(l.Degraded, "cannot be read") || l.Alerts == nil {
		t.Fatalf("with NATS down: %+v", l)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the fallback took %s", d)
	}
	if r := e2.q("GET", "/metrics", ""); !strings.Contains(string(r.body), "tollgate_fleet_alerts_history_fallbacks_total 1") {
		t.Fatalf("no fallback metric:\n%s", r.body)
	}
}
