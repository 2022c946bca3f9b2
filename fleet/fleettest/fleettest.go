// Package fleettest runs real NATS servers for fleet tests: the
// nats-server pinned in go.mod, built once from the module cache and
// cached, started as a JetStream cluster on free 127.0.0.1 ports, each
// server killed and restarted by its pid. Nothing here talks to anything
// but the loopback.
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
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

// module is the server's module path; its version is go.mod's.
const module = "github.com/nats-io/nats-server/v2"

var (
	buildMu sync.Mutex
	built   string
)

// Binary returns the path of a nats-server built from the version go.mod
// pins. The binary is cached under the user cache dir by version, so only
// the first test run on a machine pays for the build (about a minute on two
// cores); a build in flight elsewhere is waited for through a lock file.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if built != "" {
		return built
	}
	root, err := siptest.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	ver, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		tb.Fatalf("go list -m %s: %v", module, err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tollgate-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "nats-server-"+strings.TrimSpace(string(ver)))
	if _, err := os.Stat(bin); err == nil {
		built = bin
		return bin
	}
	// one build per machine: other test binaries wait on the lock
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		tb.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		built = bin
		return bin
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, module)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", module, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		tb.Fatal(err)
	}
	built = bin
	return bin
}

// Server is one nats-server of a Cluster.
type Server struct {
	Name                   string
	Port, Cluster, Monitor int
	Dir                    string // store dir and config
	bin                    string
	proc                   *siptest.Proc
}

// URL is the client URL of the server.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// Pid is the running process's id (0 when stopped).
func (s *Server) Pid() int {
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.Pid()
}

// Running reports whether the process is up.
func (s *Server) Running() bool { return s.Pid() != 0 }

// Log is what the server has logged so far.
func (s *Server) Log() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Log()
}

// Kill ends the server with SIGKILL, as a crash or a pulled cable would.
func (s *Server) Kill() {
	if s.proc != nil && !s.proc.Exited() {
		syscall.Kill(s.proc.Pid(), syscall.SIGKILL)
		<-s.proc.Done()
	}
}

// Stop ends the server with SIGTERM (up to 5 s), then SIGKILL.
func (s *Server) Stop() {
	if s.proc != nil {
		s.proc.Stop(5 * time.Second)
	}
}

// Start (re)starts the server on its ports and store dir.
func (s *Server) Start() error {
	if s.Running() {
		return nil
	}
	p, err := siptest.Start("nats-"+s.Name, filepath.Join(s.Dir, "server.log"), s.bin, "-c", filepath.Join(s.Dir, "server.conf"))
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// Healthy reports whether the server answers /healthz with JetStream ready
// (its meta leader known and its streams current).
func (s *Server) Healthy() bool {
	c := http.Client{Timeout: 500 * time.Millisecond}
	r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.Monitor))
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == 200
}

// Cluster is a JetStream cluster of nats-servers on 127.0.0.1.
type Cluster struct {
	Servers []*Server
}

// URLs is every server's client URL, comma-separated (the -nats flag).
func (c *Cluster) URLs() string {
	u := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		u[i] = s.URL()
	}
	return strings.Join(u, ",")
}

// StopAll stops every server.
func (c *Cluster) StopAll() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

// StartAll starts every stopped server.
func (c *Cluster) StartAll() error {
	for _, s := range c.Servers {
		if err := s.Start(); err != nil {
			return err
		}
	}
	return nil
}

// WaitHealthy waits (up to timeout) for every running server to report
// JetStream healthy.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, running := true, 0
		for _, s := range c.Servers {
			if s.Running() {
				running++
				if !s.Healthy() {
					ok = false
				}
			}
		}
		// healthy servers can still refuse a replicated bucket ("no
		// suitable peers for placement") until the meta leader has heard
		// from every peer: wait for that too
		if ok && (running < 2 || c.metaCurrent(running)) {
			return nil
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, s := range c.Servers {
				fmt.Fprintf(&b, "--- %s (running %v, healthy %v)\n%s\n", s.Name, s.Running(), s.Healthy(), tail(s.Log(), 15))
			}
			return fmt.Errorf("NATS cluster not healthy after %v:\n%s", timeout, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metaCurrent reports whether a running server is the JetStream meta
// leader with running-1 current, online peers (its /jsz).
func (c *Cluster) metaCurrent(running int) bool {
	hc := http.Client{Timeout: 500 * time.Millisecond}
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		r, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", s.Monitor))
		if err != nil {
			continue
		}
		var z struct {
			Meta struct {
				Leader   string `json:"leader"`
				Replicas []struct {
					Current bool `json:"current"`
					Offline bool `json:"offline"`
				} `json:"replicas"`
			} `json:"meta_cluster"`
		}
		err = json.NewDecoder(r.Body).Decode(&z)
		r.Body.Close()
		if err != nil || z.Meta.Leader != s.Name {
			continue
		}
		current := 0
		for _, p := range z.Meta.Replicas {
			if p.Current && !p.Offline {
				current++
			}
		}
		return current >= running-1
	}
	return false
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// StartCluster starts n nats-servers with JetStream as one cluster on free
// loopback ports under dir, waits until they are healthy, and stops them
// when the test ends. n = 1 runs a single server without a cluster block.
func StartCluster(tb testing.TB, dir string, n int) *Cluster {
	tb.Helper()
	bin := Binary(tb)
	c := &Cluster{}
	for i := 0; i < n; i++ {
		s := &Server{Name: fmt.Sprintf("n%d", i+1), bin: bin, Dir: filepath.Join(dir, fmt.Sprintf("nats%d", i+1))}
		s.Port = siptest.MustFreePort("tcp", "127.0.0.1")
		s.Cluster = siptest.MustFreePort("tcp", "127.0.0.1")
		s.Monitor = siptest.MustFreePort("tcp", "127.0.0.1")
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n}\n",
			s.Name, s.Port, s.Monitor, filepath.Join(s.Dir, "js"))
		if n > 1 {
			var routes []string
			for _, o := range c.Servers {
				if o != s {
					routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.Cluster))
				}
			}
			conf += fmt.Sprintf("cluster {\n  name: tollgate-test\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", s.Cluster, strings.Join(routes, ", "))
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "server.conf"), []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(c.StopAll)
	if err := c.StartAll(); err != nil {
		tb.Fatal(err)
	}
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		tb.Fatal(err)
	}
	return c
}
