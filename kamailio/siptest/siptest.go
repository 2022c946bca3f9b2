// Package siptest runs the real processes the Kamailio edge config is proven
// against — tollgate, Kamailio with kamailio/kamailio.cfg and sipp — on
// 127.0.0.0/8 with free ports, and reads what sipp saw. It is shared by the
// end-to-end tests in kamailio/ and by the bench-sip driver.
//
// Every process is started in its own process group and stopped by pid
// (SIGTERM to the group, SIGKILL after a grace period).
package siptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Packages are the Debian packages the edge needs, and AptCommand installs them.
var Packages = []string{"kamailio", "kamailio-utils-modules", "kamailio-extra-modules", "sip-tester"}

// AptCommand is the exact command that installs every package the tests need.
var AptCommand = "apt-get update && apt-get install -y " + strings.Join(Packages, " ")

// ModuleDir is where Debian installs Kamailio's modules.
const ModuleDir = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

// CheckTools reports, with the apt-get command that fixes it, whether
// kamailio, sipp and the modules the config loads are installed.
func CheckTools() error {
	var missing []string
	for _, bin := range []string{"kamailio", "sipp"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		// the module packages: http_client (utils), jansson + janssonrpcc (extra)
		dir := ModuleDir
		for _, m := range []string{"http_client.so", "jansson.so", "janssonrpcc.so", "pike.so", "dialog.so", "pipelimit.so", "permissions.so", "db_text.so", "auth_db.so"} {
			if _, err := os.Stat(dir); err != nil {
				break // not a Debian layout: let Kamailio itself complain
			}
			if _, err := os.Stat(filepath.Join(dir, m)); err != nil {
				missing = append(missing, "kamailio module "+m)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: install with (as root)\n\n    %s\n\n(`make test` runs this itself when it runs as root)",
			strings.Join(missing, ", "), AptCommand)
	}
	return nil
}

// RepoRoot is the directory holding go.mod, found from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var portMu sync.Mutex
var handedOut = map[int]bool{}

// FreePort binds ip:0 on network ("tcp" or "udp"), releases it and returns
// the port. Ports already handed out by this process are not reused, and the
// port is checked free on the other transport too (SIP and JSON-RPC listeners
// may use either).
func FreePort(network, ip string) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for tries := 0; tries < 50; tries++ {
		var port int
		switch network {
		case "udp":
			c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
			if err != nil {
				return 0, err
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
			if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
				l.Close()
			} else {
				continue
			}
		default:
			l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
			if err != nil {
				return 0, err
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
			if c, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port))); err == nil {
				c.Close()
			} else {
				continue
			}
		}
		// sipp also binds its media port and port+2 near 6000; our ports come
		// from the ephemeral range, so they do not collide with those.
		if handedOut[port] {
			continue
		}
		handedOut[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free %s port on %s", network, ip)
}

// MustFreePort is FreePort that panics; for harness code where a failure is fatal.
func MustFreePort(network, ip string) int {
	p, err := FreePort(network, ip)
	if err != nil {
		panic(err)
	}
	return p
}

// Proc is a process started by this package.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	waitErr error
	logFile *os.File
}

// Start runs bin with args in its own process group, stdout and stderr to
// logPath, stdin from /dev/null.
func Start(name, logPath, bin string, args ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{}), logFile: f}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs
// the group. It is safe to call more than once.
func (p *Proc) Stop(grace time.Duration) error {
	if p == nil || p.Cmd == nil || p.Cmd.Process == nil {
		return nil
	}
	pid := p.Cmd.Process.Pid
	if !p.Exited() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	}
	// children that outlived their parent in the same group (Kamailio forks)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// Log returns what the process has written so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the process log.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- tollgate

// BuildTollgate builds ./cmd/tollgate from the repository into outDir.
func BuildTollgate(root, outDir string) (string, error) {
	bin := filepath.Join(outDir, "tollgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tollgate")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/tollgate: %v\n%s", err, out)
	}
	return bin, nil
}

// Tollgate is a running sidecar.
type Tollgate struct {
	*Proc
	QueryAddr, AdminAddr, RPCAddr string
	Token                         string
	DataDir                       string
}

// StartTollgate starts bin on free loopback ports with a data dir and admin
// token under dir, and waits until its listeners accept connections. extra
// are more flags (-webhook-url …).
func StartTollgate(bin, dir string, extra ...string) (*Tollgate, error) {
	t := &Tollgate{
		QueryAddr: fmt.Sprintf("127.0.0.1:%d", MustFreePort("tcp", "127.0.0.1")),
		AdminAddr: fmt.Sprintf("127.0.0.1:%d", MustFreePort("tcp", "127.0.0.1")),
		RPCAddr:   fmt.Sprintf("127.0.0.1:%d", MustFreePort("tcp", "127.0.0.1")),
		Token:     "test-admin-token-0123456789abcdef",
		DataDir:   filepath.Join(dir, "tollgate-data"),
	}
	if err := os.MkdirAll(t.DataDir, 0o700); err != nil {
		return nil, err
	}
	args := append([]string{"-query-addr", t.QueryAddr, "-admin-addr", t.AdminAddr, "-rpc-addr", t.RPCAddr,
		"-data-dir", t.DataDir, "-admin-token", t.Token, "-log-level", "warn"}, extra...)
	p, err := Start("tollgate", filepath.Join(dir, "tollgate.log"), bin, args...)
	if err != nil {
		return nil, err
	}
	t.Proc = p
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{t.QueryAddr, t.AdminAddr, t.RPCAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				p.Stop(2 * time.Second)
				return nil, fmt.Errorf("tollgate did not listen on %s: %v\n%s", addr, err, p.Tail(30))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return t, nil
}

// QueryURL is the base URL of the query API.
func (t *Tollgate) QueryURL() string { return "http://" + t.QueryAddr }

// Admin sends an authenticated admin request and returns status and body.
func (t *Tollgate) Admin(method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+t.AdminAddr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// PutAccount replaces account name's policy with the JSON body.
func (t *Tollgate) PutAccount(name, policyJSON string) error {
	st, b, err := t.Admin("PUT", "/v1/accounts/"+name, "application/json", []byte(policyJSON))
	if err != nil {
		return err
	}
	if st != 200 {
		return fmt.Errorf("PUT /v1/accounts/%s: %d %s", name, st, b)
	}
	return nil
}

// Check asks the query API directly (GET /v1/check) and returns status and body.
func (t *Tollgate) Check(query string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(t.QueryURL() + "/v1/check?" + query)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// ---------------------------------------------------------------- kamailio

// Kamailio is a running Kamailio.
type Kamailio struct {
	*Proc
	Port int
	Addr string // 127.0.0.1:port
}

// Memory sizes (MB) of the Kamailio processes StartKamailio runs: shared
// memory (-m) and per-process private memory (-M). Tests keep them small; the
// benchmark raises ShmMB because tm keeps every transaction for its wait timer.
var (
	ShmMB = 64
	PkgMB = 8
)

// KamailioArgs are the command-line arguments that run cfg in the
// foreground with runDir as runtime dir, ShmMB/PkgMB memory and the defines.
func KamailioArgs(cfg, runDir string, defines ...string) []string {
	args := []string{"-f", cfg, "-Y", runDir, "-DD", "-E", "-m", strconv.Itoa(ShmMB), "-M", strconv.Itoa(PkgMB)}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	// more options for every Kamailio of the tests and benchmarks, e.g.
	// TOLLGATE_KAMAILIO_OPTS="-x tlsf" (the memory manager
	// kamailio/README.md recommends)
	return append(args, strings.Fields(os.Getenv("TOLLGATE_KAMAILIO_OPTS"))...)
}

// CheckConfig runs `kamailio -c` on cfg with the defines.
func CheckConfig(cfg string, defines ...string) (string, error) {
	args := []string{"-c", "-f", cfg}
	for _, d := range defines {
		args = append(args, "-A", d)
	}
	out, err := exec.Command("kamailio", args...).CombinedOutput()
	return string(out), err
}

// StartKamailio starts cfg listening on a free UDP port of 127.0.0.1 with
// the given defines (LISTEN is added), a runtime dir under dir, and waits
// until it answers an OPTIONS.
func StartKamailio(name, cfg, dir string, defines ...string) (*Kamailio, error) {
	return StartKamailioArgs(name, cfg, dir, nil, defines...)
}

// KamailioWrap, when set, is a command Kamailio runs under (e.g. valgrind
// and its options), and KamailioStartWait how long a start may take until
// Kamailio answers OPTIONS.
var (
	KamailioWrap      []string
	KamailioStartWait = 15 * time.Second
)

// StartKamailioArgs is StartKamailio with more command-line options for
// Kamailio (e.g. -x tlsf, its shared-memory manager).
func StartKamailioArgs(name, cfg, dir string, extra []string, defines ...string) (*Kamailio, error) {
	port, err := FreePort("udp", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	runDir := filepath.Join(dir, "run-"+name)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	all := append([]string{fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port)}, defines...)
	args := append(KamailioArgs(cfg, runDir, all...), extra...)
	bin := "kamailio"
	if len(KamailioWrap) > 0 {
		bin, args = KamailioWrap[0], append(append(append([]string(nil), KamailioWrap[1:]...), "kamailio"), args...)
	}
	p, err := Start("kamailio-"+name, filepath.Join(dir, "kamailio-"+name+".log"), bin, args...)
	if err != nil {
		return nil, err
	}
	k := &Kamailio{Proc: p, Port: port, Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	deadline := time.Now().Add(KamailioStartWait)
	for {
		code, err := Options("127.0.0.1", k.Addr, 300*time.Millisecond)
		if err == nil && code == 200 {
			return k, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Stop(2 * time.Second)
			return nil, fmt.Errorf("kamailio %s did not answer OPTIONS on %s (%v)\n%s", name, k.Addr, err, p.Tail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Options sends one OPTIONS from srcIP to addr over UDP and returns the
// status code of the reply (0 and an error on timeout).
func Options(srcIP, addr string, timeout time.Duration) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(srcIP, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	lp := c.LocalAddr().(*net.UDPAddr).Port
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return 0, err
	}
	id := fmt.Sprintf("%d-%d@%s", time.Now().UnixNano(), lp, srcIP)
	msg := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=p%d\r\nTo: <sip:%s>\r\n"+
		"Call-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		addr, srcIP, lp, time.Now().UnixNano(), srcIP, lp, addr, id)
	if _, err := c.WriteTo([]byte(msg), ra); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 8192)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "SIP/2.0" {
			code, _ := strconv.Atoi(f[1])
			if code >= 200 {
				return code, nil
			}
		}
	}
}

// ---------------------------------------------------------------- sipp

// UAS is a running sipp UAS.
type UAS struct {
	*Proc
	IP     string
	Port   int
	MsgLog string
	SIPURI string // "sip:ip:port", quoted for a define by Define
}

// StartUAS starts sipp with scenario on ip and a free port. With trace,
// every message is logged to a file (MsgLog) for later inspection.
func StartUAS(name, scenario, ip, dir string, trace bool) (*UAS, error) {
	port, err := FreePort("udp", ip)
	if err != nil {
		return nil, err
	}
	u := &UAS{IP: ip, Port: port, SIPURI: fmt.Sprintf("sip:%s:%d", ip, port)}
	args := []string{"-sf", scenario, "-i", ip, "-p", strconv.Itoa(port), "-nostdin", "-bind_local",
		"-trace_err", "-error_file", filepath.Join(dir, "sipp-"+name+"-errors.log")}
	if trace {
		u.MsgLog = filepath.Join(dir, "sipp-"+name+"-messages.log")
		args = append(args, "-trace_msg", "-message_file", u.MsgLog)
	}
	p, err := Start("sipp-"+name, filepath.Join(dir, "sipp-"+name+".out"), "sipp", args...)
	if err != nil {
		return nil, err
	}
	u.Proc = p
	// wait until the UDP port is bound
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			break // bound by sipp
		}
		c.Close()
		if p.Exited() || time.Now().After(deadline) {
			p.Stop(time.Second)
			return nil, fmt.Errorf("sipp %s did not bind %s:%d\n%s", name, ip, port, p.Tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return u, nil
}

// Define is the quoted string define for a SIP URI pointing at the UAS.
func (u *UAS) Define(name string) string { return fmt.Sprintf(`%s="%s"`, name, u.SIPURI) }

// Call is one line of the injection file.
type Call struct {
	Number string // dialled number (field0)
	From   string // From user (field1)
	Header string // one extra header line (field2); "" sends "X-Test: none"
}

// UAC describes one sipp client run.
type UAC struct {
	Name          string
	Scenario      string
	SrcIP         string // local address, e.g. 127.0.0.2 (a trunk) or 127.0.0.3
	Target        string // kamailio ip:port
	Calls         []Call // injection lines, used in order and repeated
	Count         int    // total calls (-m); default len(Calls)
	Rate          float64
	RatePeriodMS  int
	HoldMS        int // -d: how long answered calls are held
	RecvTimeoutMS int
	TimeoutS      int
	Limit         int // -l: max simultaneous calls
	AuthUser      string
	AuthPass      string
	Trace         bool // log messages and parse them into the result
	StatFile      bool // write the sipp statistics CSV (for benchmarks)
	NoRetrans     bool // -nr
	Dir           string
	Extra         []string
}

// Response is a SIP response sipp received.
type Response struct {
	Code    int
	Reason  string
	Method  string // CSeq method
	CSeq    int
	Headers map[string]string // lower-cased names, first value
}

// Request is a SIP request sipp received (a BYE from the network).
type Request struct {
	Method string
	CSeq   int
	// At is when sipp logged it (its -trace_msg timestamp, local time).
	At time.Time
}

// CallResult is what one call (one Call-ID) received.
type CallResult struct {
	CallID    string
	Responses []Response
	Requests  []Request
}

// Received returns the first request of method the call received, if any.
func (c *CallResult) Received(method string) (Request, bool) {
	for _, r := range c.Requests {
		if r.Method == method {
			return r, true
		}
	}
	return Request{}, false
}

// Final is the final response to the last INVITE of the call, or nil.
func (c *CallResult) Final() *Response {
	var best *Response
	for i := range c.Responses {
		r := &c.Responses[i]
		if r.Method == "INVITE" && r.Code >= 200 && (best == nil || r.CSeq >= best.CSeq) {
			best = r
		}
	}
	return best
}

// ByeStatus is the final status of the BYE, 0 if none was answered.
func (c *CallResult) ByeStatus() int {
	for _, r := range c.Responses {
		if r.Method == "BYE" && r.Code >= 200 {
			return r.Code
		}
	}
	return 0
}

// Result is the outcome of a UAC run.
type Result struct {
	ExitCode int
	Calls    map[string]*CallResult // by Call-ID, from the message log
	Order    []string               // Call-IDs in the order they were first seen
	Sent     int                    // INVITEs with CSeq 1 sent (first attempts, retransmissions excluded)
	Output   string
	StatCSV  string
	MsgLog   string
}

// Finals counts the final responses to INVITE by "code reason"; calls with
// no final response at all are counted under "no reply".
func (r *Result) Finals() map[string]int {
	m := map[string]int{}
	for _, id := range r.Order {
		if f := r.Calls[id].Final(); f != nil {
			m[fmt.Sprintf("%d %s", f.Code, f.Reason)]++
		} else {
			m["no reply"]++
		}
	}
	return m
}

// CountCode counts calls whose final INVITE response had code.
func (r *Result) CountCode(code int) int {
	n := 0
	for _, c := range r.Calls {
		if f := c.Final(); f != nil && f.Code == code {
			n++
		}
	}
	return n
}

// NoReply counts calls that received nothing at all.
func (r *Result) NoReply() int {
	n := 0
	for _, id := range r.Order {
		if len(r.Calls[id].Responses) == 0 {
			n++
		}
	}
	return n
}

// Run runs sipp as described and waits for it (bounded by TimeoutS plus a
// margin; sipp is killed by pid if it overstays).
func (u UAC) Run(ctx context.Context) (*Result, error) {
	if u.Dir == "" {
		return nil, errors.New("UAC.Dir is required")
	}
	if u.Count == 0 {
		u.Count = len(u.Calls)
	}
	if u.TimeoutS == 0 {
		u.TimeoutS = 20
	}
	port, err := FreePort("udp", u.SrcIP)
	if err != nil {
		return nil, err
	}
	csv := filepath.Join(u.Dir, u.Name+".csv")
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for _, c := range u.Calls {
		h := c.Header
		if h == "" {
			h = "X-Test: none"
		}
		fmt.Fprintf(&b, "%s;%s;%s\n", c.Number, c.From, h)
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	res := &Result{Calls: map[string]*CallResult{}}
	args := []string{"-sf", u.Scenario, "-inf", csv, "-i", u.SrcIP, "-p", strconv.Itoa(port), "-bind_local",
		"-m", strconv.Itoa(u.Count), "-nostdin", "-timeout", strconv.Itoa(u.TimeoutS), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(u.Dir, u.Name+"-errors.log")}
	if u.Rate > 0 {
		args = append(args, "-r", strconv.FormatFloat(u.Rate, 'f', -1, 64))
	}
	if u.RatePeriodMS > 0 {
		args = append(args, "-rp", strconv.Itoa(u.RatePeriodMS))
	}
	if u.Limit > 0 {
		args = append(args, "-l", strconv.Itoa(u.Limit))
	}
	args = append(args, "-d", strconv.Itoa(u.HoldMS))
	if u.RecvTimeoutMS > 0 {
		args = append(args, "-recv_timeout", strconv.Itoa(u.RecvTimeoutMS))
	}
	if u.AuthUser != "" {
		args = append(args, "-au", u.AuthUser, "-ap", u.AuthPass)
	}
	if u.NoRetrans {
		args = append(args, "-nr")
	}
	if u.Trace {
		res.MsgLog = filepath.Join(u.Dir, u.Name+"-messages.log")
		os.Remove(res.MsgLog)
		args = append(args, "-trace_msg", "-message_file", res.MsgLog)
	}
	if u.StatFile {
		res.StatCSV = filepath.Join(u.Dir, u.Name+"-stats.csv")
		os.Remove(res.StatCSV)
		args = append(args, "-trace_stat", "-stf", res.StatCSV, "-fd", "1")
	}
	args = append(args, u.Extra...)
	args = append(args, u.Target)
	p, err := Start("sipp-"+u.Name, filepath.Join(u.Dir, u.Name+".out"), "sipp", args...)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Stop(time.Second)
		return nil, ctx.Err()
	case <-time.After(time.Duration(u.TimeoutS+10) * time.Second):
		p.Stop(time.Second)
		return nil, fmt.Errorf("sipp %s overstayed its -timeout %ds", u.Name, u.TimeoutS)
	}
	res.Output = p.Tail(60)
	if ee, ok := p.waitErr.(*exec.ExitError); ok {
		res.ExitCode = ee.ExitCode()
	} else if p.waitErr != nil {
		return nil, p.waitErr
	}
	if u.Trace {
		if err := parseMessageLog(res.MsgLog, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// ParseMessageLog reads the -trace_msg file of a sipp run (a UAC's, or a
// UAS's MsgLog) into a Result.
func ParseMessageLog(path string) (*Result, error) {
	res := &Result{Calls: map[string]*CallResult{}, MsgLog: path}
	return res, parseMessageLog(path, res)
}

// traceTime reads the timestamp sipp puts on the dashed line before each
// message ("2026-12-04\t17:46:00.123456").
func traceTime(line string) time.Time {
	ts := strings.TrimSpace(strings.TrimLeft(line, "-"))
	for _, layout := range []string{"2006-01-02\t15:04:05.999999", "2006-01-02 15:04:05.999999"} {
		if t, err := time.ParseInLocation(layout, ts, time.Local); err == nil {
			return t
		}
	}
	return time.Time{}
}

// parseMessageLog reads a sipp -trace_msg file: entries separated by dashed
// lines, each "UDP message sent|received ..." then the SIP message.
func parseMessageLog(path string, res *Result) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var entries []string
	var stamps []time.Time
	var stamp time.Time
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------------------------------------------") {
			if cur.Len() > 0 {
				entries = append(entries, cur.String())
				stamps = append(stamps, stamp)
			}
			cur.Reset()
			stamp = traceTime(line)
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		entries = append(entries, cur.String())
		stamps = append(stamps, stamp)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	seen := map[string]bool{}
	invites := map[string]bool{}
	for i, e := range entries {
		first, rest, _ := strings.Cut(e, "\n")
		received := strings.Contains(first, "received")
		sent := strings.Contains(first, "sent")
		if !received && !sent {
			continue
		}
		rest = strings.TrimLeft(rest, "\r\n")
		startLine, hdrs, _ := strings.Cut(rest, "\n")
		startLine = strings.TrimSpace(startLine)
		h := map[string]string{}
		for _, l := range strings.Split(hdrs, "\n") {
			l = strings.TrimRight(l, "\r")
			if l == "" {
				break
			}
			if k, v, ok := strings.Cut(l, ":"); ok {
				k = strings.ToLower(strings.TrimSpace(k))
				if _, dup := h[k]; !dup {
					h[k] = strings.TrimSpace(v)
				}
			}
		}
		callID := h["call-id"]
		if callID == "" {
			continue
		}
		cseqN, cseqM := 0, ""
		if f := strings.Fields(h["cseq"]); len(f) == 2 {
			cseqN, _ = strconv.Atoi(f[0])
			cseqM = f[1]
		}
		cr := res.Calls[callID]
		if cr == nil {
			cr = &CallResult{CallID: callID}
			res.Calls[callID] = cr
		}
		if !seen[callID] {
			seen[callID] = true
			res.Order = append(res.Order, callID)
		}
		if sent && strings.HasPrefix(startLine, "INVITE ") && cseqN == 1 {
			// count first attempts once per call
			if !invites[callID] {
				res.Sent++
			}
			invites[callID] = true
		}
		if received && strings.HasPrefix(startLine, "SIP/2.0 ") {
			f := strings.SplitN(startLine, " ", 3)
			code, _ := strconv.Atoi(f[1])
			reason := ""
			if len(f) == 3 {
				reason = f[2]
			}
			cr.Responses = append(cr.Responses, Response{Code: code, Reason: reason, Method: cseqM, CSeq: cseqN, Headers: h})
		} else if received {
			if m, _, ok := strings.Cut(startLine, " "); ok && m != "" {
				cr.Requests = append(cr.Requests, Request{Method: m, CSeq: cseqN, At: stamps[i]})
			}
		}
	}
	return nil
}
