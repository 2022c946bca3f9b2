package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/teardown"
)

// binary is the tollgate binary built once for the process tests.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func tollgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "tollgate")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// daemon is a tollgate process started by a test, on free loopback ports.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	logs    *syncBuf
	info    runInfo
	token   string
	done    chan struct{}
	exitErr error
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	d := tryStart(t, dir, args...)
	if err := d.waitReady(); err != nil {
		d.kill()
		t.Fatalf("daemon did not become ready: %v\n%s", err, d.logs.String())
	}
	return d
}

func tryStart(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	return tryStartUnder(t, nil, dir, args...)
}

// tryStartUnder starts the daemon as the last argument of the command
// wrapper (e.g. prlimit with its options), which must exec it in place.
func tryStartUnder(t *testing.T, wrapper []string, dir string, args ...string) *daemon {
	t.Helper()
	bin := tollgateBinary(t)
	all := append([]string{"-data-dir", dir, "-query-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-rpc-addr", "127.0.0.1:0", "-drain-delay", "0s"}, args...)
	d := &daemon{t: t, dir: dir, logs: &syncBuf{}, done: make(chan struct{})}
	if len(wrapper) > 0 {
		all = append(append(wrapper[1:len(wrapper):len(wrapper)], bin), all...)
		bin = wrapper[0]
	}
	d.cmd = exec.Command(bin, all...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	d.cmd.Env = cleanEnv()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exitErr = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.kill)
	return d
}

// cleanEnv drops TOLLGATE_* so the developer's environment cannot change
// what a test starts.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOLLGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady waits for this process's run file (a stale one from a killed
// process has another pid) and for /ready to answer 200.
func (d *daemon) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("exited: %v", d.exitErr)
		default:
		}
		b, err := os.ReadFile(filepath.Join(d.dir, runFile))
		if err == nil && json.Unmarshal(b, &d.info) == nil && d.info.PID == d.cmd.Process.Pid {
			if r, err := http.Get("http://" + d.info.QueryAddr + "/ready"); err == nil {
				r.Body.Close()
				if r.StatusCode == 200 {
					tok, err := os.ReadFile(filepath.Join(d.dir, tokenFile))
					if err == nil {
						d.token = strings.TrimSpace(string(tok))
					}
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timeout")
}

// kill stops the process by its pid with SIGKILL, as a crash would.
func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

func (d *daemon) signal(s syscall.Signal) {
	if err := syscall.Kill(d.cmd.Process.Pid, s); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) wait(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.exitErr
	case <-time.After(timeout):
		d.t.Fatalf("daemon did not exit within %v\n%s", timeout, d.logs.String())
		return nil
	}
}

func (d *daemon) admin(method, path, body string) (int, string) {
	d.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+d.info.AdminAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	return d.send(req)
}

func (d *daemon) query(path string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.info.QueryAddr+path, nil)
	return d.send(req)
}

func (d *daemon) send(req *http.Request) (int, string) {
	d.t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	r, err := c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

const acme = `{"home_country":"US","countries":{"default":"deny","except":["US","CA"]},"max_channels":160}`

// TestCrashDurability: a write that returned 200 survives kill -9.
func TestCrashDurability(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	if st, body := d.admin("PUT", "/v1/accounts/acme", acme); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body := d.admin("PUT", "/v1/operator/countries/KP", `{"reason":"sanctions"}`); st != 200 {
		t.Fatalf("PUT country: %d %s", st, body)
	}
	d.kill() // SIGKILL right after the 200s: no clean close of the store

	d2 := startDaemon(t, dir)
	st, body := d2.admin("GET", "/v1/accounts/acme", "")
	if st != 200 || strings.TrimSpace(body) != `{"name":"acme","home_country":"US","countries":{"default":"deny","except":["CA","US"]},"max_channels":160}` {
		t.Fatalf("after kill -9: %d %s", st, body)
	}
	if st, body := d2.query("/v1/check?to=%2B5355512345&account=acme"); st != 403 || !strings.Contains(body, `"reason":"country_barred"`) {
		t.Fatalf("decision after restart: %d %s", st, body)
	}
	if st, body := d2.query("/v1/check?to=%2B85021234567&account=acme"); st != 403 || !strings.Contains(body, `"reason":"country_disabled"`) {
		t.Fatalf("operator setting after restart: %d %s", st, body)
	}
	if _, body := d2.admin("GET", "/v1/audit", ""); strings.Count(body, `"action"`) != 2 {
		t.Fatalf("audit after restart: %s", body)
	}
	if d2.token != d.token {
		t.Fatal("the generated token changed across restarts")
	}
}

// TestGracefulShutdown: SIGTERM turns /ready to 503 during the drain delay
// while queries are still answered, then the process exits 0, removing its
// run file and closing the store (the next start needs no recovery).
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, "-drain-delay", "1s")
	d.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if st, body := d.query("/ready"); st != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("ready while draining: %d %s", st, body)
	}
	// A fresh data dir rejects unknown accounts: the answer is a verdict.
	if st, body := d.query("/v1/check?to=%2B14155550123"); st != 403 || !strings.Contains(body, `"reason":"not_permitted"`) {
		t.Fatalf("query while draining: %d %s", st, body)
	}
	if err := d.wait(15 * time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, runFile)); !os.IsNotExist(err) {
		t.Fatalf("run file left behind: %v", err)
	}
	if !strings.Contains(d.logs.String(), `"message":"stopped"`) {
		t.Fatalf("logs: %s", d.logs.String())
	}
	startDaemon(t, dir).kill()
}

func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	hr := filepath.Join(t.TempDir(), "hr.csv")
	os.WriteFile(hr, []byte("# version: one\nprefix,country,category,source\n+4420,GB,irsf,test\n"), 0o644)
	d := startDaemon(t, dir, "-high-risk-file", hr)
	if st, body := d.admin("PUT", "/v1/operator", `{"unknown_accounts":"default","default":{}}`); st != 200 {
		t.Fatalf("PUT operator: %d %s", st, body)
	}
	if st, _ := d.query("/v1/check?to=%2B442071234567"); st != 403 {
		t.Fatalf("file list not in force: %d", st)
	}
	if st, body := d.admin("PUT", "/v1/high-risk", "prefix,country,category,source\n"); st != 409 {
		t.Fatalf("PUT with a file: %d %s", st, body)
	}
	os.WriteFile(hr, []byte("# version: two\nprefix,country,category,source\n+4421,GB,irsf,test\n"), 0o644)
	d.signal(syscall.SIGHUP)
	waitFor(t, func() bool { st, _ := d.query("/v1/check?to=%2B442071234567"); return st == 200 })

	os.WriteFile(hr, []byte("prefix,country,category,source\n+4422,QQ,irsf,test\n"), 0o644)
	d.signal(syscall.SIGHUP)
	waitFor(t, func() bool { _, m := d.query("/metrics"); return strings.Contains(m, "tollgate_reload_success 0") })
	if st, _ := d.query("/v1/check?to=%2B442171234567"); st != 403 {
		t.Fatal("a refused reload dropped the list in force")
	}
	if !strings.Contains(d.logs.String(), "line 2") {
		t.Fatalf("refused reload not logged with its line: %s", d.logs.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}

// Each bad start-up is refused with an error that says why, and leaves the
// data file as it was.
func TestRefusedStarts(t *testing.T) {
	t.Run("foreign data file", func(t *testing.T) {
		dir := t.TempDir()
		junk := append([]byte("SQLite format 3\x00"), make([]byte, 8192)...)
		os.WriteFile(filepath.Join(dir, "tollgate.db"), junk, 0o600)
		d := tryStart(t, dir)
		if err := d.wait(10 * time.Second); err == nil {
			t.Fatal("started on a foreign file")
		}
		if !strings.Contains(d.logs.String(), "not a tollgate data file") {
			t.Fatalf("error: %s", d.logs.String())
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "tollgate.db")); !bytes.Equal(b, junk) {
			t.Fatal("the refused file was modified")
		}
	})
	t.Run("data dir in use", func(t *testing.T) {
		dir := t.TempDir()
		startDaemon(t, dir)
		d := tryStart(t, dir)
		if err := d.wait(15 * time.Second); err == nil || !strings.Contains(d.logs.String(), "another tollgate already serves this -data-dir") {
			t.Fatalf("second daemon: %v %s", err, d.logs.String())
		}
	})
	t.Run("bad high-risk file", func(t *testing.T) {
		hr := filepath.Join(t.TempDir(), "hr.csv")
		os.WriteFile(hr, []byte("prefix,country,category,source\n+1,US,nope,x\n"), 0o644)
		d := tryStart(t, t.TempDir(), "-high-risk-file", hr)
		if err := d.wait(10 * time.Second); err == nil || !strings.Contains(d.logs.String(), "line 2") {
			t.Fatalf("bad file: %v %s", err, d.logs.String())
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		d := tryStart(t, t.TempDir(), "-log-format", "xml")
		if err := d.wait(10 * time.Second); err == nil || !strings.Contains(d.logs.String(), "-log-format") {
			t.Fatalf("bad flag: %v %s", err, d.logs.String())
		}
	})
}

// The generated token is stored 0600 and its path, not the token, logged.
func TestGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	fi, err := os.Stat(filepath.Join(dir, tokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi.Mode(), err)
	}
	if len(d.token) != 64 {
		t.Fatalf("token %q", d.token)
	}
	logs := d.logs.String()
	if strings.Contains(logs, d.token) || !strings.Contains(logs, filepath.Join(dir, tokenFile)) {
		t.Fatalf("token logging: %s", logs)
	}
	// An explicit token replaces it; names reach the audit log.
	d.kill()
	d2 := startDaemon(t, dir, "-admin-token", "alice:alice-token-123456789,bob-token-123456789")
	d2.token = "alice-token-123456789"
	if st, _ := d2.admin("PUT", "/v1/accounts/x", "{}"); st != 200 {
		t.Fatal("named token refused")
	}
	d2.token = "bob-token-123456789"
	if st, body := d2.admin("GET", "/v1/audit", ""); st != 200 || !strings.Contains(body, `"who":"alice"`) {
		t.Fatalf("audit: %d %s", st, body)
	}
	d2.token = d.token
	if st, _ := d2.admin("GET", "/v1/audit", ""); st != 401 {
		t.Fatal("the generated token still works with -admin-token set")
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.admin("PUT", "/v1/accounts/acme", acme)

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runCheck(append([]string{"--data-dir", dir}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	// While the daemon holds the file, check asks it.
	code, out, errs := run("--account", "acme", "+5355512345")
	if code != exitReject || !strings.Contains(out, "verdict:  reject") || !strings.Contains(out, "country_barred (code 2030, SIP 403 Barred Country)") ||
		!strings.Contains(out, "rule:     account acme: countries deny-all-except; CU not listed") || !strings.Contains(out, "running daemon") {
		t.Fatalf("via daemon: %d\n%s\n%s", code, out, errs)
	}
	d.signal(syscall.SIGTERM)
	d.wait(15 * time.Second)

	// Without the daemon, check reads the file itself; flags after the
	// number work too.
	code, out, _ = run("+14155550123", "--account", "acme")
	if code != exitAllow || !strings.Contains(out, "e164:     +14155550123") || !strings.Contains(out, "answered: from the data file") {
		t.Fatalf("local: %d\n%s", code, out)
	}
	// the routing number and account-wide caps are shown when present
	d2dir := t.TempDir()
	d2 := startDaemon(t, d2dir)
	d2.admin("PUT", "/v1/accounts/grp", `{"home_country":"US","countries":{"default":"deny","except":["US"]},"account_max_channels":3}`)
	var out2, errb2 bytes.Buffer
	code = runCheck([]string{"--data-dir", d2dir, "--account", "grp", "+14155550123;npdi;rn=+5355512345"}, &out2, &errb2)
	if code != exitReject || !strings.Contains(out2.String(), "account:  account_max_channels 3, account_max_cps none") ||
		!strings.Contains(out2.String(), "rn:       +5355512345 (decided by rn)") {
		t.Fatalf("rn and account caps: %d\n%s\n%s", code, out2.String(), errb2.String())
	}
	// A name no account can have is a usage error, not the default policy.
	if code, _, errs := run("--account", "a b", "+5355512345"); code != exitUsage || !strings.Contains(errs, "no account can have this name") {
		t.Fatalf("bad name: %d %s", code, errs)
	}
	code, out, _ = run("--json", "--account", "acme", "--subaccount", "none", "+447012345678")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["verdict"] == nil {
		t.Fatalf("--json: %d %s", code, out)
	}
	if code, _, _ := run(); code != exitUsage {
		t.Fatalf("no number: %d", code)
	}
	var errb bytes.Buffer
	if code := runCheck([]string{"--data-dir", t.TempDir(), "+1"}, io.Discard, &errb); code != exitError || !strings.Contains(errb.String(), "does not exist") {
		t.Fatalf("missing data dir: %d %s", code, errb.String())
	}
}

func TestFlagsFromEnv(t *testing.T) {
	t.Setenv("TOLLGATE_QUERY_ADDR", "127.0.0.1:9999")
	t.Setenv("TOLLGATE_LOG_NUMBERS", "true")
	t.Setenv("TOLLGATE_ADMIN_ADDR", "127.0.0.1:7777")
	c, err := parseFlags([]string{"-admin-addr", "127.0.0.1:1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.queryAddr != "127.0.0.1:9999" || !c.logNumbers || c.adminAddr != "127.0.0.1:1" || c.rpcAddr != "127.0.0.1:8082" || c.dataDir != "./data" {
		t.Fatalf("%+v", c)
	}
	t.Setenv("TOLLGATE_DRAIN_DELAY", "soon")
	if _, err := parseFlags(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "TOLLGATE_DRAIN_DELAY") {
		t.Fatalf("bad env value: %v", err)
	}
	if _, err := parseFlags([]string{"serve"}, io.Discard); err == nil {
		t.Fatal("stray argument accepted")
	}
	for flagName, env := range map[string]string{"query-addr": "TOLLGATE_QUERY_ADDR", "high-risk-file": "TOLLGATE_HIGH_RISK_FILE", "log-format": "TOLLGATE_LOG_FORMAT"} {
		if got := envName(flagName); got != env {
			t.Errorf("envName(%s) = %s", flagName, got)
		}
	}
}

// -gc-percent defaults to 25 (not Go's 100: see docs/api.md) and refuses
// values that would make the collector run constantly or never.
func TestGCPercentFlag(t *testing.T) {
	f := func(args []string, want int, wantErr string) {
		t.Helper()
		c, err := parseFlags(args, io.Discard)
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%v: error %v, want %q", args, err, wantErr)
		case wantErr == "" && (err != nil || c.gcPercent != want):
			t.Errorf("%v: %v, gc percent %v, want %d", args, err, c, want)
		}
	}
	f(nil, 25, "")
	f([]string{"-gc-percent", "100"}, 100, "")
	f([]string{"-gc-percent", "5"}, 0, "-gc-percent 5")
	f([]string{"-gc-percent", "5000"}, 0, "-gc-percent 5000")
}

// -memory-limit is off by default, in MiB, and refuses a limit too small
// to hold any policy.
func TestMemoryLimitFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    int
		wantErr string
	}{
		{nil, 0, ""},
		{[]string{"-memory-limit", "0"}, 0, ""},
		{[]string{"-memory-limit", "180"}, 180, ""},
		{[]string{"-memory-limit", "64"}, 64, ""},
		{[]string{"-memory-limit", "63"}, 0, "-memory-limit 63"},
		{[]string{"-memory-limit", "-1"}, 0, "-memory-limit -1"},
		{[]string{"-memory-limit", "2000000"}, 0, "-memory-limit 2000000"},
		{[]string{"-memory-limit", "1G"}, 0, "memory-limit"},
	}
	for _, tt := range tests {
		c, err := parseFlags(tt.args, io.Discard)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || c.memoryLimit != tt.want):
			t.Errorf("%v: %v, memory limit %v, want %d", tt.args, err, c, tt.want)
		}
	}
}

// The teardown flags: the proxies' control interfaces parse into the
// configuration; a bad one is refused naming the flag.
func TestTeardownFlags(t *testing.T) {
	c, err := parseFlags([]string{"-proxy-control", "edge1=kamailio:http://127.0.0.1:5071/RPC,os1=opensips:http://10.0.0.2:8888/mi",
		"-teardown-timeout", "500ms", "-teardown-attempts", "3", "-teardown-on-spend"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: "http://127.0.0.1:5071/RPC"},
		{ID: "os1", Kind: teardown.OpenSIPS, URL: "http://10.0.0.2:8888/mi"}}
	if !reflect.DeepEqual(c.proxies, want) || c.teardownTimeout != 500*time.Millisecond || c.teardownAttempts != 3 || !c.teardownOnSpend {
		t.Fatalf("%+v", c)
	}
	if c, err := parseFlags(nil, io.Discard); err != nil || c.proxies != nil || c.teardownAttempts != 4 || c.teardownTimeout != 2*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, args := range [][]string{
		{"-proxy-control", "edge1=kamailio"},
		{"-proxy-control", "edge1=asterisk:http://x/"},
		{"-proxy-control", "e/1=kamailio:http://x/"},
		{"-teardown-attempts", "0"},
		{"-teardown-timeout", "1h"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestQueryLoopEpoll: -query-loop=epoll answers checks, hands /ready and
// /metrics to fasthttp, drains on SIGTERM like the default transport, and
// a transport it does not know is refused.
func TestQueryLoopEpoll(t *testing.T) {
	if _, err := parseFlags([]string{"-query-loop", "uring"}, io.Discard); err == nil || !strings.Contains(err.Error(), "want fasthttp or epoll") {
		t.Fatalf("-query-loop uring: %v", err)
	}
	if !handler.QueryLoopSupported {
		if _, err := parseFlags([]string{"-query-loop", "epoll"}, io.Discard); err == nil {
			t.Fatal("-query-loop epoll accepted without epoll")
		}
		t.Skip("no epoll here")
	}
	dir := t.TempDir()
	d := startDaemon(t, dir, "-query-loop", "epoll", "-drain-delay", "1s")
	if st, body := d.query("/v1/check?to=%2B14155550123"); st != 403 || !strings.Contains(body, `"reason":"not_permitted"`) {
		t.Fatalf("check: %d %s", st, body)
	}
	if st, body := d.query("/metrics"); st != 200 || !strings.Contains(body, "tollgate_query_loop_handoffs_total") ||
		!strings.Contains(body, `tollgate_decisions_total{transport="http",verdict="reject",reason="not_permitted"} 1`) {
		t.Fatalf("metrics: %d %s", st, body)
	}
	d.signal(syscall.SIGTERM)
	waitFor(t, func() bool { st, _ := d.query("/ready"); return st == 503 })
	if st, _ := d.query("/v1/check?to=%2B14155550123"); st != 403 {
		t.Fatalf("check while draining: %d", st)
	}
	if err := d.wait(15 * time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, d.logs.String())
	}
	if !strings.Contains(d.logs.String(), `"query_loop":"epoll"`) || !strings.Contains(d.logs.String(), `"message":"stopped"`) {
		t.Fatalf("logs: %s", d.logs.String())
	}
}
