package fleet_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet/fleettest"
)

// hooks is a webhook receiver on 127.0.0.1 keeping every delivery.
type hooks struct {
	mu   sync.Mutex
	got  []alert.Alert
	keys []string
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var a alert.Alert
	if json.Unmarshal(b, &a) == nil {
		h.mu.Lock()
		h.got = append(h.got, a)
		h.keys = append(h.keys, r.Header.Get("Idempotency-Key"))
		h.mu.Unlock()
	}
	w.WriteHeader(204)
}

// count returns the deliveries by type/level/kind.
func (h *hooks) count() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string]int{}
	for _, a := range h.got {
		m[a.Type+"/"+a.Level+"/"+a.Kind]++
	}
	return m
}

const (
	burstPolicy = `{"home_country":"GB","velocity":{"rules":[{"name":"burst","calls_per_minute":{"critical":30}}]}}`
	toFR        = "to=%2B33142685300&account=burst"
)

// TestFleetStateProcesses: three tollgates on a 3-server NATS cluster. A
// burst split round-robin over them, 12 calls each (under the threshold on
// any one), locks the account on all three at the fleet's 30, with exactly
// one webhook per alert; an unlock on node 3 restores calls on all.
func TestFleetStateProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three nats-servers and three tollgates")
	}
	dir := t.TempDir()
	c := fleettest.StartCluster(t, dir, 3)
	urls := c.URLs()
	h := &hooks{}
	srv := httptest.NewServer(h)
	defer srv.Close()

	sd := filepath.Join(dir, "seed-data")
	f := filepath.Join(dir, "burst.ndjson")
	if err := os.WriteFile(f, []byte(`{"account":"burst","policy":`+burstPolicy+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := execTollgate(t, "import", "-data-dir", sd, f); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := fleettest.Seed(t, sd, urls); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	hook := []string{"-webhook-url", srv.URL, "-webhook-secret", "fleet-state-test-secret"}
	var nodes []*fleettest.Node
	for _, name := range []string{"n1", "n2", "n3"} {
		nodes = append(nodes, fleettest.StartNode(t, dir, name, urls, hook...))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s log:\n%s", n.Name, n.Tail(40))
			}
		}
	})
	for _, n := range nodes {
		fleettest.Eventually(t, 20*time.Second, n.Name+" has burst", func() bool { return checkStatus(n, toFR) == 200 })
	}
	// the three checks above count: 33 more make 36
	for i := 0; i < 33; i++ {
		n := nodes[i%3]
		if st := checkStatus(n, toFR); st != 200 && st != 403 {
			t.Fatalf("check %d on %s: %d", i, n.Name, st)
		}
	}
	for _, n := range nodes {
		fleettest.Eventually(t, 10*time.Second, n.Name+" locked", func() bool {
			_, body, _ := n.Check(toFR)
			return strings.Contains(body, "international_locked")
		})
	}
	fleettest.Eventually(t, 10*time.Second, "the critical and the lockdown webhooks", func() bool {
		m := h.count()
		return m["threshold/critical/calls_per_minute"] == 1 && m["lockdown/critical/lockdown"] == 1
	})

	// an unlock on node 3 restores calls on all three
	if st, body, _ := nodes[2].Do("DELETE", "/v1/accounts/burst/lock", `{"reason":"checked with the customer"}`); st != 200 {
		t.Fatalf("unlock on n3: %d %s", st, body)
	}
	for _, n := range nodes {
		fleettest.Eventually(t, 10*time.Second, n.Name+" unlocked", func() bool { return checkStatus(n, toFR) == 200 })
	}
	fleettest.Eventually(t, 10*time.Second, "the unlock webhook", func() bool { return h.count()["unlock/info/unlock"] == 1 })
	time.Sleep(2 * time.Second) // a second delivery of any alert would come within this
	m := h.count()
	if m["threshold/critical/calls_per_minute"] != 1 || m["lockdown/critical/lockdown"] != 1 || m["unlock/info/unlock"] != 1 {
		h.mu.Lock()
		for i, a := range h.got {
			t.Logf("delivered %s/%s key %s by %q reason %q", a.Type, a.Kind, h.keys[i], a.By, a.Reason)
		}
		h.mu.Unlock()
		for _, n := range nodes {
			r, err := http.Get(n.QueryURL() + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "tollgate_fleet_alerts_total") {
					t.Logf("%s %s", n.Name, l)
				}
			}
		}
		t.Fatalf("webhooks %v, want one of each", m)
	}
	h.mu.Lock()
	for i, a := range h.got {
		if h.keys[i] == "" || h.keys[i] != a.IdempotencyKey {
			t.Errorf("delivery %d without its fleet key: header %q body %q", i, h.keys[i], a.IdempotencyKey)
		}
	}
	h.mu.Unlock()
	// every node counts the fleet's calls: GET velocity on n1 shows the sum
	st, body, _ := nodes[0].Do("GET", "/v1/accounts/burst/velocity", "")
	if st != 200 || !strings.Contains(body, `"calls_per_minute"`) {
		t.Fatalf("velocity on n1: %d %s", st, body)
	}
	var vs struct {
		Rules []struct {
			Measures map[string]struct{ Value int } `json:"measures"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(body), &vs); err != nil || len(vs.Rules) == 0 || vs.Rules[0].Measures["calls_per_minute"].Value < 36 {
		t.Fatalf("n1's calls_per_minute is not the fleet's (>= 36): %s", body)
	}
}
