package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tollgate/tollgate/alert"
)

func startAlerts(t *testing.T, srv *server.Server, node string, d alert.Notifier) *Alerts {
	t.Helper()
	_, js := stateConn(t, srv)
	a, err := StartAlerts(context.Background(), AlertsOptions{JS: js, Node: node, Deliver: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func delivered(ns []*notes) []alert.Alert {
	var out []alert.Alert
	for _, n := range ns {
		out = append(out, n.all()...)
	}
	return out
}

// The same alert raised by three nodes (each with its own value, time and
// message) is delivered once over the fleet, with its key; another alert
// is another delivery.
func TestAlertsOncePerFleet(t *testing.T) {
	srv := stateServer(t)
	var ns []*notes
	var as []*Alerts
	for i := 0; i < 3; i++ {
		n := &notes{}
		ns, as = append(ns, n), append(as, startAlerts(t, srv, fmt.Sprintf("n%d", i+1), n))
	}
	for i, a := range as {
		a.Notify(alert.Alert{Time: time.Now(), Type: alert.TypeThreshold, Level: alert.LevelCritical, Kind: "calls_per_minute",
			Account: "acme", Rule: "burst", Value: float64(30 + i), Threshold: 30, Action: "lockdown",
			Message: fmt.Sprintf("acme: calls_per_minute %d reached the critical level 30", 30+i)})
	}
	eventually(t, "one delivery", func() bool { return len(delivered(ns)) == 1 })
	as[1].Notify(alert.Alert{Type: alert.TypeThreshold, Level: alert.LevelWarning, Kind: "calls_per_minute", Account: "acme", Rule: "burst"})
	eventually(t, "two deliveries", func() bool { return len(delivered(ns)) == 2 })
	eventually(t, "all published", func() bool {
		var p, d uint64
		for _, a := range as {
			p, d = p+a.Stats().Published, d+a.Stats().Duplicates
		}
		return p == 2 && d == 2
	})
	time.Sleep(200 * time.Millisecond) // nothing more may come
	got := delivered(ns)
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	for _, a := range got {
		if a.IdempotencyKey == "" || a.IdempotencyKey != a.ID || a.IdempotencyKey != AlertKey(a) {
			t.Fatalf("delivery without the fleet key: %+v", a)
		}
	}
	if got[0].IdempotencyKey == got[1].IdempotencyKey {
		t.Fatal("two alerts share a key")
	}
	h, err := as[2].Recent(context.Background(), 10)
	if err != nil || len(h) != 2 || h[0].Level != alert.LevelWarning {
		t.Fatalf("history %+v, %v", h, err)
	}
}

// The history is a stream: it survives a restart of the NATS server, and
// an alert delivered before the restart is not delivered again.
func TestAlertsHistorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	n := &notes{}
	a := startAlerts(t, srv, "n1", n)
	a.Notify(alert.Alert{Type: alert.TypeLockdown, Level: alert.LevelCritical, Kind: alert.KindLockdown, Account: "acme", By: "tollgate"})
	eventually(t, "delivery", func() bool { return len(n.all()) == 1 })
	a.Close()
	srv.Shutdown()
	srv.WaitForShutdown()

	srv2, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv2.Start()
	if !srv2.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}
	t.Cleanup(srv2.Shutdown)
	n2 := &notes{}
	b := startAlerts(t, srv2, "n1", n2)
	h, err := b.Recent(context.Background(), 10)
	if err != nil || len(h) != 1 || h[0].Kind != alert.KindLockdown || h[0].Account != "acme" {
		t.Fatalf("history after restart %+v, %v", h, err)
	}
	time.Sleep(300 * time.Millisecond)
	if len(n2.all()) != 0 {
		t.Fatalf("delivered again after restart: %+v", n2.all())
	}
}
