package kamailio_test

// End to end of issue 14's fleet caps: two Kamailio proxies, each with its
// own tollgate, the two tollgates one fleet over a nats-server; account
// chan2 has max_channels 2. Two calls held through proxy A, a third
// through proxy B is refused: tollgate B knows of A's two channels from A's
// call events and its share of the cap is nothing.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/fleet/fleettest"
	"github.com/tollgate/tollgate/kamailio/siptest"
)

func TestFleetChannelCapTwoProxies(t *testing.T) {
	requireTools(t)
	bin := fleettest.Tollgate(t)
	t.Setenv("TOLLGATE_BIN", bin) // setup's tollgate is the same build
	dir := t.TempDir()
	c := fleettest.StartCluster(t, dir, 1)
	urls := c.URLs()
	// a fleet's bucket takes writes once seeded: seed it with chan2 from
	// a single node's data file, then setup writes its accounts through
	// node A
	seed := filepath.Join(dir, "seed")
	nd := filepath.Join(dir, "chan2.ndjson")
	os.WriteFile(nd, []byte(`{"account":"chan2","policy":{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block","max_channels":2}}`+"\n"), 0o644)
	if out, err := exec.Command(bin, "import", "-data-dir", seed, nd).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := fleettest.Seed(t, seed, urls, "-nats-replicas", "1"); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	fleetFlags := []string{"-nats", urls, "-nats-replicas", "1"}
	e := setup(t, append([]string{"-node", "a"}, fleetFlags...)...)
	tgB, err := siptest.StartTollgate(bin, filepath.Join(e.dir, "b"), append([]string{"-node", "b"}, fleetFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.track(tgB)
	const q = "to=%2B442079460123&account=chan2"
	fleettest.Eventually(t, 20*time.Second, "tollgate b has chan2 from the fleet", func() bool {
		_, body, err := tgB.Check(q)
		return err == nil && strings.Contains(body, `"max_channels":2`)
	})
	kA := e.kamailio(t, "fleet-a", "WITH_IPAUTH")
	kB := e.kamailioAt(t, tgB, "fleet-b", "WITH_IPAUTH")

	// two calls held through proxy A
	var wg sync.WaitGroup
	held := make([]*siptest.Result, 2)
	errs := make([]error, 2)
	for i := range held {
		name := e.name("fleet-held")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			held[i], errs[i] = e.runE(kA, callOpts{name: name, src: ipChan, calls: []siptest.Call{{Number: numAllowed, From: "pbx"}}, holdMS: 8000})
		}(i)
	}
	// B's share goes to nothing once A's answers reach it (A's events,
	// A's counts over NATS)
	fleettest.Eventually(t, 6*time.Second, "tollgate b refuses chan2 with channel_limit", func() bool {
		_, body, err := tgB.Check(q)
		return err == nil && strings.Contains(body, `"reason":"fleet_channel_limit"`)
	})
	over := e.one(t, kB, ipChan, siptest.Call{Number: numAllowed, From: "pbx"})
	wg.Wait()
	for i, r := range held {
		if errs[i] != nil {
			t.Fatalf("held call %d: %v", i, errs[i])
		}
		if r == nil || len(r.Order) != 1 {
			t.Fatalf("held call %d did not run", i)
		}
		expectAnswered(t, kA, r.Calls[r.Order[0]])
	}
	expectReject(t, kB, over, 503, "Channel Limit Reached", map[string]string{"X-Tollgate-Reason": "fleet_channel_limit", "X-Tollgate-Code": "2080"})
	// the held calls ended: B's share is the whole cap again
	fleettest.Eventually(t, 6*time.Second, "tollgate b's share back to 2", func() bool {
		_, body, err := tgB.Check(q)
		return err == nil && strings.Contains(body, `"max_channels":2`) && strings.Contains(body, `"reason":"ok"`)
	})
	expectAnswered(t, kB, e.one(t, kB, ipChan, siptest.Call{Number: numAllowed, From: "pbx"}))
}
