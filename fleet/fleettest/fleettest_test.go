package fleettest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterSurvivesOneServer: a replicated bucket keeps taking writes
// with one of three servers killed, and the server rejoins on restart.
func TestClusterSurvivesOneServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three nats-servers")
	}
	c := StartCluster(t, t.TempDir(), 3)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	victim := c.Servers[0]
	pid := victim.Pid()
	victim.Kill()
	if victim.Running() || pid == 0 {
		t.Fatal("server still running after Kill")
	}
	// each try its own timeout: a loaded machine may take most of ctx's
	// 30 s to create the bucket (a make test beside a soak ran it out)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := kv.Put(pctx, "a", []byte("2"))
		pcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write with one server down: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer gcancel()
	e, err := kv.Get(gctx, "a")
	if err != nil || string(e.Value()) != "2" {
		t.Fatalf("after restart: %v %v", e, err)
	}
}
