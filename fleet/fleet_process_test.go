package fleet_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/fleet/fleettest"
)

const (
	acmeUS   = `{"home_country":"US","countries":{"default":"deny","except":["US","CA"]},"max_channels":160}`
	acmeUSGB = `{"home_country":"US","countries":{"default":"deny","except":["US","CA","GB"]},"max_channels":160}`
	toGB     = "to=%2B442071234567&account=acme"
)

// seedDir makes a single-node data dir holding acme (US and CA only).
func seedDir(t *testing.T, dir string) string {
	t.Helper()
	d := filepath.Join(dir, "seed-data")
	f := filepath.Join(dir, "accounts.ndjson")
	if err := os.WriteFile(f, []byte(`{"account":"acme","policy":`+acmeUS+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := execTollgate(t, "import", "-data-dir", d, f); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	return d
}

func checkStatus(n *fleettest.Node, query string) int {
	st, _, err := n.Check(query)
	if err != nil {
		return 0
	}
	return st
}

// TestFleetPolicy runs a 3-server NATS cluster and three tollgates with
// -nats and walks the failure table: propagation, locks, one server
// killed, the cluster stopped, a restart on the cache, convergence.
func TestFleetPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three nats-servers and three tollgates")
	}
	dir := t.TempDir()
	c := fleettest.StartCluster(t, dir, 3)
	urls := c.URLs()

	// seeding: a refused write before, the explicit command, a refused
	// second seed
	sd := seedDir(t, dir)
	n1 := fleettest.StartNode(t, dir, "n1", urls)
	fleettest.Eventually(t, 20*time.Second, "n1 watching the bucket", func() bool { f, err := n1.Fleet(); return err == nil && f.Synced })
	if st, body, _ := n1.Do("PUT", "/v1/accounts/acme", acmeUS); st != 503 || !strings.Contains(body, "not seeded") {
		t.Fatalf("write to an unseeded fleet: %d %s", st, body)
	}
	if out, err := fleettest.Seed(t, sd, urls); err != nil || !strings.Contains(out, "seeded tollgate_policy") {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	if out, err := fleettest.Seed(t, sd, urls); err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("second seed not refused: %v\n%s", err, out)
	}
	// n2 ran alone before: its cache holds an account the fleet does not
	stray := filepath.Join(dir, "stray.ndjson")
	if err := os.WriteFile(stray, []byte(`{"account":"stray","policy":`+acmeUS+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := execTollgate(t, "import", "-data-dir", filepath.Join(dir, "n2", "tollgate-data"), stray); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	n2 := fleettest.StartNode(t, dir, "n2", urls)
	n3 := fleettest.StartNode(t, dir, "n3", urls)
	nodes := []*fleettest.Node{n1, n2, n3}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s's log, last lines:\n%s", n.Name, n.Proc.Tail(60))
			}
		}
	})
	fleettest.Eventually(t, 20*time.Second, "n2 dropped the account the fleet does not hold", func() bool {
		st, _, _ := n2.Do("GET", "/v1/accounts/stray", "")
		return st == 404
	})
	for _, n := range nodes {
		fleettest.Eventually(t, 20*time.Second, n.Name+" has the seeded acme", func() bool { return checkStatus(n, toGB) == 403 })
	}

	t.Run("write on n1 answered by n2 and n3", func(t *testing.T) {
		st, body, hdr := n1.Do("PUT", "/v1/accounts/acme?wait=all", acmeUSGB)
		if st != 200 {
			t.Fatalf("PUT ?wait=all: %d %s", st, body)
		}
		if got := hdr.Get("Tollgate-Fleet-Applied"); got != "n1,n2,n3" {
			t.Errorf("Tollgate-Fleet-Applied %q, want n1,n2,n3 (pending %q)", got, hdr.Get("Tollgate-Fleet-Pending"))
		}
		for _, n := range nodes[1:] {
			fleettest.Eventually(t, time.Second, n.Name+" allows GB", func() bool { return checkStatus(n, toGB) == 200 })
		}
		f, err := n2.Fleet()
		if err != nil || len(f.Nodes) != 3 {
			t.Fatalf("GET /v1/fleet on n2: %+v %v", f, err)
		}
	})

	t.Run("stale write refused with 409", func(t *testing.T) {
		// n2 and n3 write the same account at once: one wins, the
		// other gets 409 or, if it came second and saw the first, 200 —
		// never two 200s from the same revision (no lost update)
		type res struct {
			st   int
			body string
		}
		out := make(chan res, 2)
		for _, n := range []*fleettest.Node{n2, n3} {
			go func(n *fleettest.Node) {
				st, body, _ := n.Do("PUT", "/v1/operator/prefixes/%2B88299", `{"reason":"from `+n.Name+`"}`)
				out <- res{st, body}
			}(n)
		}
		a, b := <-out, <-out
		for _, r := range []res{a, b} {
			if r.st != 200 && r.st != 409 {
				t.Fatalf("concurrent operator writes: %d %s", r.st, r.body)
			}
			if r.st == 409 && !strings.Contains(r.body, "changed on another node") {
				t.Fatalf("409 without the reason: %s", r.body)
			}
		}
		// every node ends with the same operator settings
		var want string
		for _, n := range nodes {
			fleettest.Eventually(t, 5*time.Second, n.Name+" operator converged", func() bool {
				st, body, _ := n.Do("GET", "/v1/operator", "")
				if st != 200 {
					return false
				}
				if want == "" {
					want = body
				}
				return body == want
			})
		}
	})

	t.Run("template and an account on it reach every node", func(t *testing.T) {
		tmpl := `{"description":"GB only","home_country":"GB","countries":{"default":"deny","except":["GB"]}}`
		if st, body, _ := n2.Do("PUT", "/v1/templates/gb-only", tmpl); st != 200 {
			t.Fatalf("PUT /v1/templates/gb-only: %d %s", st, body)
		}
		if st, body, _ := n2.Do("PUT", "/v1/accounts/shop?wait=all", `{"template":"gb-only"}`); st != 200 {
			t.Fatalf("PUT /v1/accounts/shop: %d %s", st, body)
		}
		for _, n := range nodes {
			fleettest.Eventually(t, 2*time.Second, n.Name+" decides shop by its template", func() bool {
				return checkStatus(n, "to=%2B442071234567&account=shop") == 200 &&
					checkStatus(n, "to=%2B33142685300&account=shop") == 403
			})
		}
	})

	t.Run("bulk change of 50 accounts lands whole on every node", func(t *testing.T) {
		names := make([]string, 50)
		for i := range names {
			names[i] = fmt.Sprintf("bulk%d", i)
			if st, body, _ := n1.Do("PUT", "/v1/accounts/"+names[i], `{"max_channels":5}`); st != 200 {
				t.Fatalf("PUT %s: %d %s", names[i], st, body)
			}
		}
		sel, _ := json.Marshal(names)
		st, body, hdr := n3.Do("PATCH", "/v1/accounts?wait=all", `{"select":{"accounts":`+string(sel)+`},"patch":{"max_channels":7}}`)
		if st != 200 || !strings.Contains(body, `"unchanged":0`) {
			t.Fatalf("bulk PATCH: %d %s", st, body)
		}
		if hdr.Get("Tollgate-Fleet-Pending") != "" {
			t.Fatalf("bulk PATCH ?wait=all answered with nodes pending: %s", hdr.Get("Tollgate-Fleet-Pending"))
		}
		// ?wait=all waited for the batch's last revision: every node has
		// every account, no polling
		for _, n := range nodes {
			for _, name := range names {
				if st, body, _ := n.Do("GET", "/v1/accounts/"+name, ""); st != 200 || !strings.Contains(body, `"max_channels":7`) {
					t.Fatalf("%s after the bulk change, %s: %d %s", n.Name, name, st, body)
				}
			}
		}
	})

	t.Run("high-risk list through the Object Store", func(t *testing.T) {
		csv := "# version: fleet-test-1\nprefix,country,category,source\n+4470,GB,premium_rate,fleet test\n"
		st, body, hdr := n3.Do("PUT", "/v1/high-risk?wait=all&wait_timeout=20s", csv)
		if st != 200 {
			t.Fatalf("PUT /v1/high-risk: %d %s", st, body)
		}
		// a node silent (5 s without a heartbeat on a loaded machine) is
		// not waited for: it is named, and gets longer below
		applied, silent := hdr.Get("Tollgate-Fleet-Applied"), hdr.Get("Tollgate-Fleet-Silent")
		t.Logf("applied %q, silent %q", applied, silent)
		for _, n := range nodes {
			wait := 2 * time.Second
			if !strings.Contains(","+applied+",", ","+n.Name+",") {
				if !strings.Contains(","+silent+",", ","+n.Name+",") {
					t.Fatalf("%s neither applied nor silent: applied %q, silent %q", n.Name, applied, silent)
				}
				wait = 20 * time.Second
			}
			fleettest.Eventually(t, wait, n.Name+" has the list", func() bool {
				st, _, _ := n.Check("to=%2B447012345678&account=acme")
				_, meta, _ := n.Do("GET", "/metrics", "")
				return st == 403 && strings.Contains(meta, `tollgate_high_risk_list{origin="stored"} 1`)
			})
		}
		if st, body, _ := n1.Do("DELETE", "/v1/high-risk", ""); st != 200 {
			t.Fatalf("DELETE /v1/high-risk: %d %s", st, body)
		}
		for _, n := range nodes {
			fleettest.Eventually(t, 2*time.Second, n.Name+" back on the shipped list", func() bool {
				_, meta, _ := n.Do("GET", "/metrics", "")
				return strings.Contains(meta, `tollgate_high_risk_list{origin="builtin"}`)
			})
		}
	})

	t.Run("lock on n1 holds on n2, unlock on n3 lifts it everywhere", func(t *testing.T) {
		if st, body, _ := n1.Do("PUT", "/v1/accounts/acme/lock", `{"reason":"fraud burst"}`); st != 200 {
			t.Fatalf("lock: %d %s", st, body)
		}
		// GET .../lock answers 200 locked or not: read "locked"
		for _, n := range nodes[1:] {
			fleettest.Eventually(t, 5*time.Second, n.Name+" locked", func() bool {
				st, body, _ := n.Do("GET", "/v1/accounts/acme/lock", "")
				return st == 200 && strings.Contains(body, `"locked":true`)
			})
		}
		if st := checkStatus(n2, toGB); st != 403 {
			t.Fatalf("international call on n2 while locked: %d", st)
		}
		if st, body, _ := n3.Do("DELETE", "/v1/accounts/acme/lock", `{"reason":"customer called"}`); st != 200 {
			t.Fatalf("unlock: %d %s", st, body)
		}
		for _, n := range nodes {
			fleettest.Eventually(t, 2*time.Second, n.Name+" unlocked", func() bool { return checkStatus(n, toGB) == 200 })
		}
	})

	t.Run("one NATS server killed: writes and decisions go on", func(t *testing.T) {
		c.Servers[0].Kill()
		fleettest.Eventually(t, 20*time.Second, "a write with one server down", func() bool {
			st, _, _ := n2.Do("PUT", "/v1/operator/countries/KP", `{"reason":"sanctions"}`)
			return st == 200
		})
		for _, n := range nodes {
			fleettest.Eventually(t, 5*time.Second, n.Name+" has KP disabled", func() bool {
				st, _, _ := n.Check("to=%2B85021234567&account=acme")
				return st == 403 && checkStatus(n, "to=%2B14155550123&account=acme") == 200
			})
		}
		if err := c.Servers[0].Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NATS down: decisions from the snapshot, writes 503, restart from cache, converge", func(t *testing.T) {
		c.StopAll()
		for _, n := range nodes {
			fleettest.Eventually(t, 10*time.Second, n.Name+" refuses writes", func() bool {
				st, _, _ := n.Do("PUT", "/v1/accounts/beta", acmeUS)
				return st == 503
			})
			if st := checkStatus(n, toGB); st != 200 {
				t.Fatalf("%s decision while NATS is down: %d", n.Name, st)
			}
			st, body, _ := n.Do("GET", "/ready", "")
			if st != 200 || !strings.Contains(body, `"fleet":`) {
				t.Fatalf("%s /ready while NATS is down: %d %s", n.Name, st, body)
			}
		}
		_, metrics, _ := n1.Do("GET", "/metrics", "")
		if !strings.Contains(metrics, "tollgate_policy_stale_seconds ") || strings.Contains(metrics, "tollgate_policy_stale_seconds 0\n") {
			t.Fatalf("stale metric while NATS is down:\n%s", grepLines(metrics, "tollgate_policy_stale"))
		}
		// a lock taken while partitioned holds here and reaches the
		// others once NATS is back
		if st, body, _ := n2.Do("PUT", "/v1/accounts/acme/lock", `{"reason":"partitioned lock"}`); st != 200 {
			t.Fatalf("lock while NATS is down: %d %s", st, body)
		}
		n3.Stop()
		if err := n3.Start(); err != nil {
			t.Fatal(err)
		}
		if st := checkStatus(n3, toGB); st != 200 {
			t.Fatalf("n3 restarted while NATS is down does not serve its cache: %d", st)
		}
		if err := c.StartAll(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(60 * time.Second); err != nil {
			t.Fatal(err)
		}
		fleettest.Eventually(t, 30*time.Second, "a write after NATS returned", func() bool {
			st, _, _ := n1.Do("PUT", "/v1/accounts/beta", acmeUS)
			return st == 200
		})
		for _, n := range nodes {
			fleettest.Eventually(t, 10*time.Second, n.Name+" has beta and the partitioned lock", func() bool {
				st, _, _ := n.Do("GET", "/v1/accounts/beta", "")
				lst, lock, _ := n.Do("GET", "/v1/accounts/acme/lock", "")
				return st == 200 && lst == 200 && strings.Contains(lock, `"locked":true`)
			})
		}
	})
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

func execTollgate(tb testing.TB, args ...string) (string, error) {
	out, err := exec.Command(fleettest.Tollgate(tb), args...).CombinedOutput()
	return string(out), err
}
