package fleettest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

var (
	tgOnce sync.Once
	tgBin  string
	tgErr  error
)

// Tollgate builds ./cmd/tollgate once per test binary (into a temporary
// dir removed when the process ends is not possible from a helper, so it
// goes under the user cache dir, replaced on every build).
func Tollgate(tb testing.TB) string {
	tb.Helper()
	tgOnce.Do(func() {
		root, err := siptest.RepoRoot()
		if err != nil {
			tgErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tollgate-fleet-bin")
		if err != nil {
			tgErr = err
			return
		}
		tgBin, tgErr = siptest.BuildTollgate(root, dir)
	})
	if tgErr != nil {
		tb.Fatal(tgErr)
	}
	return tgBin
}

// Node is a tollgate process of a fleet test: siptest's Tollgate with its
// node name and what it takes to restart it on the same data dir.
type Node struct {
	*siptest.Tollgate
	Name  string
	Dir   string
	Bin   string
	Extra []string
}

// StartNode starts a tollgate named name with -nats urls on a data dir
// under dir (kept across Restart), and stops it when the test ends.
func StartNode(tb testing.TB, dir, name, urls string, extra ...string) *Node {
	tb.Helper()
	n := &Node{Name: name, Dir: filepath.Join(dir, name), Bin: Tollgate(tb),
		Extra: append([]string{"-nats", urls, "-node", name, "-log-level", "info"}, extra...)}
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := n.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Stop() })
	return n
}

// Start (re)starts the process on its data dir (new ports).
func (n *Node) Start() error {
	t, err := siptest.StartTollgate(n.Bin, n.Dir, n.Extra...)
	if err != nil {
		return err
	}
	n.Tollgate = t
	return nil
}

// Stop ends the process (SIGTERM, then SIGKILL after 5 s).
func (n *Node) Stop() {
	if n.Tollgate != nil {
		n.Proc.Stop(5 * time.Second)
	}
}

// Fleet is GET /v1/fleet as this node answers it.
type Fleet struct {
	Node      string `json:"node"`
	Connected bool   `json:"connected"`
	Synced    bool   `json:"synced"`
	Seeded    bool   `json:"seeded"`
	Revision  uint64 `json:"revision"`
	Applied   uint64 `json:"applied_revision"`
	Nodes     []struct {
		Node    string `json:"node"`
		Applied uint64 `json:"applied_revision"`
		Live    bool   `json:"live"`
	} `json:"nodes"`
}

// Fleet asks the node for GET /v1/fleet.
func (n *Node) Fleet() (Fleet, error) {
	var f Fleet
	st, b, err := n.Admin("GET", "/v1/fleet", "", nil)
	if err != nil {
		return f, err
	}
	if st != 200 {
		return f, fmt.Errorf("GET /v1/fleet: %d %s", st, b)
	}
	return f, json.Unmarshal(b, &f)
}

// Do sends an admin request and returns the status, body and headers.
func (n *Node) Do(method, path, body string) (int, string, http.Header) {
	req, _ := http.NewRequest(method, "http://"+n.AdminAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+n.Token)
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp.Header
}

// Seed runs `tollgate fleet seed` on dataDir against urls.
func Seed(tb testing.TB, dataDir, urls string, extra ...string) (string, error) {
	tb.Helper()
	args := append([]string{"fleet", "seed", "-data-dir", dataDir, "-nats", urls, "-node", "seed"}, extra...)
	out, err := exec.Command(Tollgate(tb), args...).CombinedOutput()
	return string(out), err
}

// Eventually polls cond every 20 ms until it holds or timeout passes;
// it returns how long it took, or fails the test with what.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
