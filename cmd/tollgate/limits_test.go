package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestConnCaps(t *testing.T) {
	for _, c := range []struct {
		nofile            uint64
		maxConns          int
		query, rpc, admin int
		err               string
	}{
		{nofile: 256, query: 70, rpc: 70, admin: 17},
		{nofile: 1024, query: 358, rpc: 358, admin: 89},
		{nofile: 1 << 20, query: 4096, rpc: 4096, admin: 256},
		{nofile: 1 << 20, maxConns: 50000, query: 50000, rpc: 50000, admin: 256},
		{nofile: 1024, maxConns: 500, err: "-max-conns 500"},
		{nofile: 76, err: "too low"},
		{nofile: 77, query: 3, rpc: 3, admin: 1},
	} {
		q, r, a, err := connCaps(c.nofile, c.maxConns)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("connCaps(%d, %d) = %v, want an error with %q", c.nofile, c.maxConns, err, c.err)
			}
			continue
		}
		if err != nil || q != c.query || r != c.rpc || a != c.admin {
			t.Errorf("connCaps(%d, %d) = %d, %d, %d, %v; want %d, %d, %d", c.nofile, c.maxConns, q, r, a, err, c.query, c.rpc, c.admin)
		}
		if err == nil && uint64(q+r+a)+fdHeadroom > c.nofile {
			t.Errorf("connCaps(%d): %d+%d+%d connections do not leave the headroom", c.nofile, q, r, a)
		}
	}
}

func TestParseSources(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.0/8,::1":         "[127.0.0.0/8 ::1/128]",
		" 10.0.0.5 , 10.1.0.0/16": "[10.0.0.5/32 10.1.0.0/16]",
		"::ffff:10.0.0.5":         "[10.0.0.5/32]",
		"10.0.0.9/8":              "[10.0.0.0/8]",
	} {
		got, err := parseSources(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseSources(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseSources("10.0.0.5,proxy1"); err == nil || !strings.Contains(err.Error(), `"proxy1"`) {
		t.Errorf("a host name: %v", err)
	}
}

// TestIdleFloodLowNoFile runs the daemon with a 256-descriptor limit and
// opens 300 idle connections to each of its query and RPC listeners: more
// than the limit. The daemon must stay up and answer a check on each.
// (Before the caps, the query listener's accept failed with EMFILE and the
// daemon exited.)
func TestIdleFloodLowNoFile(t *testing.T) {
	prl, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	d := tryStartUnder(t, []string{prl, "--nofile=256:256"}, t.TempDir())
	if err := d.waitReady(); err != nil {
		t.Fatalf("daemon did not become ready: %v\n%s", err, d.logs.String())
	}
	before := checkLatency(t, d.info.QueryAddr)
	rssBefore := vmRSS(t, d.cmd.Process.Pid)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, addr := range []string{d.info.RPCAddr, d.info.QueryAddr} {
		for i := 0; i < 300; i++ {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("connection %d to %s: %v", i, addr, err)
			}
			conns = append(conns, c)
		}
	}
	select {
	case <-d.done:
		t.Fatalf("daemon exited under the flood: %v\n%s", d.exitErr, d.logs.String())
	default:
	}
	c, err := net.DialTimeout("tcp", d.info.RPCAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := `{"jsonrpc":"2.0","method":"check","params":{"to":"+14155550123"},"id":1}`
	fmt.Fprintf(c, "%d:%s,", len(req), req)
	br := bufio.NewReader(c)
	var n int
	_, err = fmt.Fscanf(br, "%d:", &n)
	buf := make([]byte, max(n, 0)+1)
	if err == nil {
		_, err = io.ReadFull(br, buf)
	}
	reply := string(buf)
	// A fresh data dir refuses unknown accounts (unknown_accounts: reject),
	// so the answer is that verdict: what matters is that there is one.
	if err != nil || !strings.Contains(reply, `"reason":"not_permitted"`) {
		t.Fatalf("RPC check after the flood: %q, %v\n%s", reply, err, d.logs.String())
	}
	if code, body := d.query("/v1/check?to=%2B14155550123"); code != 403 || !strings.Contains(body, `"not_permitted"`) {
		t.Fatalf("HTTP check after the flood: %d %s", code, body)
	}
	after := checkLatency(t, d.info.QueryAddr)
	t.Logf("%d idle connections opened against a 256-descriptor limit; 200 HTTP checks over keep-alive before the flood: %s; after: %s; VmRSS %d -> %d KiB",
		len(conns), before, after, rssBefore, vmRSS(t, d.cmd.Process.Pid))
	_, m := d.query("/metrics")
	for _, want := range []string{`tollgate_connections_shed_total{listener="rpc"}`, `tollgate_connections_shed_total{listener="query"}`} {
		if !strings.Contains(m, want) || strings.Contains(m, want+" 0\n") {
			t.Errorf("metrics: %s missing or zero", want)
		}
	}
	if !strings.Contains(d.logs.String(), `"open_file_limit":256`) {
		t.Errorf("the start line does not log the limit:\n%s", d.logs.String())
	}
}

// checkLatency times 200 HTTP checks over one keep-alive connection: the
// figure for docs/benchmarks.md (logged, never asserted).
func checkLatency(t *testing.T, addr string) string {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	var lat []time.Duration
	for i := 0; i < 200; i++ {
		t0 := time.Now()
		r, err := hc.Get("http://" + addr + "/v1/check?to=%2B14155550123")
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return fmt.Sprintf("p50 %v, p99 %v, max %v", lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

// vmRSS reads a process's resident set size in KiB from /proc.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestUnauthenticatedUploadNotRead: six unauthenticated 200 MB uploads to
// the daemon (the audit's case: RSS went from 22 MB to 1.06 GB) are each
// answered 401 from their headers and their connections closed, so the
// uploads stop early. RSS before and after is logged for
// docs/benchmarks.md, not asserted.
func TestUnauthenticatedUploadNotRead(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	before := vmRSS(t, d.cmd.Process.Pid)
	chunk := make([]byte, 1<<20)
	sent := 0
	for i := 0; i < 6; i++ {
		c, err := net.DialTimeout("tcp", d.info.AdminAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "PUT /v1/high-risk HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 200<<20)
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || r.StatusCode != 401 {
			t.Fatalf("upload %d: %v %v", i, r, err)
		}
		for j := 0; j < 200; j++ { // the client goes on sending regardless
			n, err := c.Write(chunk)
			sent += n
			if err != nil {
				break
			}
		}
		c.Close()
	}
	after := vmRSS(t, d.cmd.Process.Pid)
	if sent >= 6*200<<20 {
		t.Errorf("the server took all %d bytes", sent)
	}
	t.Logf("6 unauthenticated 200 MB uploads: 401 from the headers; %d MB of the 1200 MB could be written before the server closed; VmRSS %d -> %d KiB", sent>>20, before, after)
}
