package kamailio_test

// End-to-end tests of kamailio/kamailio.cfg: a real tollgate (built from this
// repository), real Kamailio processes running the shipped config with -A
// defines only, and sipp as callers and as the carrier, all on 127.0.0.0/8
// with free ports. Every process is stopped by pid when the test ends.
//
// kamailio and sipp must be installed (`make test` installs them when it runs
// as root); if they are missing the tests fail with the apt-get command.
// Set TOLLGATE_BIN to use an already built tollgate instead of building one.

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

// Loopback source addresses: Linux answers on all of 127.0.0.0/8, so each
// role gets its own source IP and bans never leak from one test to another.
const (
	ipTrunk    = "127.0.0.2" // trunk "trunk1" in the address file
	ipScanner  = "127.0.0.3" // floods, gets pike-banned
	ipGuesser  = "127.0.0.4" // wrong digest passwords, gets banned
	ipChan     = "127.0.0.5" // trunk "chan2": max_channels 2
	ipCPS      = "127.0.0.6" // trunk "cps5": max_cps 5
	ipUser     = "127.0.0.7" // digest user alice
	ipBystand  = "127.0.0.9" // untrusted, never floods: must keep getting answers
	ipFromUser = "127.0.0.10"
	ipBurstH   = "127.0.0.11" // trunk "burst-http": velocity rules, over http_client
	ipBurstR   = "127.0.0.12" // trunk "burst-rpc": velocity rules, over JSON-RPC
)

const (
	numAllowed   = "+442079460123" // GB
	numCuba      = "+5372345678"   // CU: barred for trunk1
	numSatellite = "+881631234567" // +881 on the high-risk list
	numUS        = "+12125550123"
	realm        = "tollgate"
	alicePass    = "alice-s3cret"
)

type env struct {
	dir      string
	cfg      string
	scenario string // kamailio/sipp
	tg       *siptest.Tollgate
	upstream *siptest.UAS
	screen   *siptest.UAS
	addrFile string
	dbDir    string
	procs    []interface{ Stop(time.Duration) error }
	mu       sync.Mutex
	n        int
}

func (e *env) track(p interface{ Stop(time.Duration) error }) {
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
}

func (e *env) name(prefix string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return fmt.Sprintf("%s-%02d", prefix, e.n)
}

func requireTools(t *testing.T) {
	t.Helper()
	if err := siptest.CheckTools(); err != nil {
		t.Fatal(err)
	}
}

func cfgPath(t *testing.T) (root, cfg string) {
	t.Helper()
	root, err := siptest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root, filepath.Join(root, "kamailio", "kamailio.cfg")
}

// Every combination of the switches must pass `kamailio -c`.
func TestConfigCheckEverySwitchCombination(t *testing.T) {
	requireTools(t)
	_, cfg := cfgPath(t)
	switches := []string{"WITH_AUTH", "WITH_IPAUTH", "WITH_JSONRPC", "FAIL_OPEN", "WITH_PROMETHEUS", "WITH_CONTROL"}
	for mask := 0; mask < 1<<len(switches); mask++ {
		var defs []string
		for i, s := range switches {
			if mask&(1<<i) != 0 {
				defs = append(defs, s)
			}
		}
		// site settings overridden the documented way, string defines quoted
		defs = append(defs, "LISTEN=udp:127.0.0.1:5999", `UPSTREAM="sip:127.0.0.1:5998"`,
			`TOLLGATE_URL="http://127.0.0.1:1"`, `TOLLGATE_RPC="127.0.0.1:2"`)
		name := strings.Join(defs[:len(defs)-4], "+")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			out, err := siptest.CheckConfig(cfg, defs...)
			if err != nil {
				t.Fatalf("kamailio -c %v: %v\n%s", defs, err, out)
			}
		})
	}
	// and with no -A at all
	if out, err := siptest.CheckConfig(cfg); err != nil {
		t.Fatalf("kamailio -c with no defines: %v\n%s", err, out)
	}
}

// The shipped example address file and db_text table load, and the identity
// mode is logged at start-up.
func TestShippedExamplesLoad(t *testing.T) {
	requireTools(t)
	root, cfg := cfgPath(t)
	dir := t.TempDir()
	k, err := siptest.StartKamailio("examples", cfg, dir, "WITH_IPAUTH", "WITH_AUTH", "CHILDREN=1",
		fmt.Sprintf(`DBURL="text://%s"`, filepath.Join(root, "kamailio", "dbtext")))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop(5 * time.Second)
	log := k.Log()
	for _, want := range []string{"identity from trunk source address", "identity from digest authentication"} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log lacks %q", want)
		}
	}
	for _, bad := range []string{"ERROR", "CRITICAL"} {
		if strings.Contains(log, bad) {
			t.Errorf("start-up log has %s:\n%s", bad, k.Tail(30))
		}
	}

	// and the test-only mode says so
	k2, err := siptest.StartKamailio("fromuser", cfg, dir, "CHILDREN=1")
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Stop(5 * time.Second)
	if !strings.Contains(k2.Log(), "TEST-ONLY identity mode") {
		t.Errorf("From-user mode not logged as test-only:\n%s", k2.Tail(20))
	}
}

// setup starts tollgate (with extra flags) and the UASes, and writes the
// identity files.
func setup(t *testing.T, tollgateFlags ...string) *env {
	t.Helper()
	requireTools(t)
	root, cfg := cfgPath(t)
	e := &env{dir: t.TempDir(), cfg: cfg, scenario: filepath.Join(root, "kamailio", "sipp")}
	t.Cleanup(func() {
		for i := len(e.procs) - 1; i >= 0; i-- {
			e.procs[i].Stop(5 * time.Second)
		}
		if t.Failed() {
			// keep the logs of a failed run where a human can read them
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("tollgate-kamailio-test-%d", time.Now().Unix()))
			if err := os.Rename(e.dir, keep); err == nil {
				t.Logf("logs kept in %s", keep)
				os.MkdirAll(e.dir, 0o755) // so t.TempDir cleanup does not complain
			}
		}
	})

	bin := os.Getenv("TOLLGATE_BIN")
	if bin == "" {
		var err error
		if bin, err = siptest.BuildTollgate(root, e.dir); err != nil {
			t.Fatal(err)
		}
	}
	tg, err := siptest.StartTollgate(bin, e.dir, tollgateFlags...)
	if err != nil {
		t.Fatal(err)
	}
	e.tg = tg
	e.track(tg)

	accounts := map[string]string{
		"trunk1": `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block"}`,
		"chan2":  `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block","max_channels":2}`,
		"cps5":   `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block","max_cps":5}`,
		"alice":  `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block"}`,
		"bob":    `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block"}`,
	}
	for name, body := range accounts {
		if err := tg.PutAccount(name, body); err != nil {
			t.Fatal(err)
		}
	}
	// a subaccount of trunk1 that may only call the US
	if st, b, err := tg.Admin("PUT", "/v1/accounts/trunk1/subaccounts/usonly", "application/json",
		[]byte(`{"countries":{"default":"deny","except":["US"]}}`)); err != nil || st != 200 {
		t.Fatalf("PUT subaccount: %d %s %v", st, b, err)
	}
	// +881 must be on the high-risk list; the shipped list has it, make sure
	if st, body, err := tg.Check("to=%2B881631234567&account=trunk1"); err != nil || !strings.Contains(body, "number_barred") {
		csv := "prefix,country,category,source\n+881,001,satellite,kamailio edge test\n"
		if st2, b, err2 := tg.Admin("PUT", "/v1/high-risk", "text/csv", []byte(csv)); err2 != nil || st2 != 200 {
			t.Fatalf("+881 not barred (%d %s %v) and PUT /v1/high-risk failed: %d %s %v", st, body, err, st2, b, err2)
		}
	}

	// identity sources for the test: the trunks, and alice in db_text
	e.addrFile = filepath.Join(e.dir, "address.list")
	addr := fmt.Sprintf("# test trunks\n1 %s 32 0 trunk1\n1 %s 32 0 chan2\n1 %s 32 0 cps5\n1 %s 32 0 burst-http\n1 %s 32 0 burst-rpc\n",
		ipTrunk, ipChan, ipCPS, ipBurstH, ipBurstR)
	if err := os.WriteFile(e.addrFile, []byte(addr), 0o644); err != nil {
		t.Fatal(err)
	}
	e.dbDir = filepath.Join(e.dir, "dbtext")
	os.MkdirAll(e.dbDir, 0o755)
	ha1 := func(u, p string) string { return fmt.Sprintf("%x", md5.Sum([]byte(u+":"+realm+":"+p))) }
	os.WriteFile(filepath.Join(e.dbDir, "version"), []byte("id(int,auto) table_name(string) table_version(int) \n0:version:1\n0:subscriber:7\n"), 0o644)
	os.WriteFile(filepath.Join(e.dbDir, "subscriber"), []byte(
		"id(int,auto) username(string) domain(string,null) password(string,null) ha1(string) ha1b(string,null) \n"+
			"1:alice:"+realm+"::"+ha1("alice", alicePass)+":\n"+
			"2:bob:"+realm+"::"+ha1("bob", "bob-pass")+":\n"), 0o644)

	if e.upstream, err = siptest.StartUAS("upstream", filepath.Join(e.scenario, "uas.xml"), "127.0.0.1", e.dir, true); err != nil {
		t.Fatal(err)
	}
	e.track(e.upstream)
	if e.screen, err = siptest.StartUAS("screen", filepath.Join(e.scenario, "uas.xml"), "127.0.0.1", e.dir, true); err != nil {
		t.Fatal(err)
	}
	e.track(e.screen)
	return e
}

// kamailio starts the shipped config with the common site defines plus extra.
func (e *env) kamailio(t *testing.T, name string, extra ...string) *siptest.Kamailio {
	t.Helper()
	return e.kamailioAt(t, e.tg, name, extra...)
}

// kamailioAt is kamailio with tg as its tollgate (fleet tests: one
// tollgate per proxy).
func (e *env) kamailioAt(t *testing.T, tg *siptest.Tollgate, name string, extra ...string) *siptest.Kamailio {
	t.Helper()
	defs := []string{
		"CHILDREN=4",
		fmt.Sprintf(`TOLLGATE_URL="%s"`, tg.QueryURL()),
		fmt.Sprintf(`TOLLGATE_RPC="%s"`, tg.RPCAddr),
		e.upstream.Define("UPSTREAM"),
		e.screen.Define("SCREEN_URI"),
		fmt.Sprintf(`ADDRESS_FILE="%s"`, e.addrFile),
		fmt.Sprintf(`DBURL="text://%s"`, e.dbDir),
	}
	k, err := siptest.StartKamailio(name, e.cfg, e.dir, append(defs, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.track(k)
	return k
}

type callOpts struct {
	name      string // sipp run name (files in e.dir); generated when empty
	src       string
	calls     []siptest.Call
	count     int
	rate      float64
	holdMS    int
	auth      [2]string
	recvTO    int
	timeout   int
	noRetrans bool
	scenario  string   // file in kamailio/sipp; default uac.xml (uac_auth.xml with auth)
	extra     []string // more sipp arguments
}

func (e *env) run(t *testing.T, k *siptest.Kamailio, o callOpts) *siptest.Result {
	t.Helper()
	res, err := e.runE(k, o)
	if err != nil {
		t.Fatalf("sipp: %v", err)
	}
	return res
}

// runE is run for goroutines other than the test's own.
func (e *env) runE(k *siptest.Kamailio, o callOpts) (*siptest.Result, error) {
	sc := filepath.Join(e.scenario, "uac.xml")
	if o.auth[0] != "" {
		sc = filepath.Join(e.scenario, "uac_auth.xml")
	}
	if o.scenario != "" {
		sc = filepath.Join(e.scenario, o.scenario)
	}
	if o.recvTO == 0 {
		o.recvTO = 3000
	}
	if o.timeout == 0 {
		o.timeout = 15
	}
	if o.holdMS == 0 {
		o.holdMS = 100
	}
	if o.name == "" {
		o.name = e.name("uac")
	}
	u := siptest.UAC{
		Name: o.name, Scenario: sc, SrcIP: o.src, Target: k.Addr, Calls: o.calls, Count: o.count,
		Rate: o.rate, HoldMS: o.holdMS, RecvTimeoutMS: o.recvTO, TimeoutS: o.timeout,
		AuthUser: o.auth[0], AuthPass: o.auth[1], Trace: true, NoRetrans: o.noRetrans, Dir: e.dir, Extra: o.extra,
	}
	return u.Run(context.Background())
}

// one runs a single call and returns its result.
func (e *env) one(t *testing.T, k *siptest.Kamailio, src string, c siptest.Call, auth ...string) *siptest.CallResult {
	t.Helper()
	o := callOpts{src: src, calls: []siptest.Call{c}}
	if len(auth) == 2 {
		o.auth = [2]string{auth[0], auth[1]}
	}
	res := e.run(t, k, o)
	if len(res.Order) != 1 {
		t.Fatalf("expected one call, sipp logged %d\n%s", len(res.Order), res.Output)
	}
	return res.Calls[res.Order[0]]
}

func expectAnswered(t *testing.T, k *siptest.Kamailio, c *siptest.CallResult) {
	t.Helper()
	f := c.Final()
	if f == nil || f.Code != 200 {
		t.Fatalf("call %s: want 200 from the upstream, got %+v\n%s", c.CallID, f, k.Tail(15))
	}
	if bye := c.ByeStatus(); bye != 200 {
		t.Fatalf("call %s: BYE through the proxy got %d, want 200", c.CallID, bye)
	}
}

func expectReject(t *testing.T, k *siptest.Kamailio, c *siptest.CallResult, code int, reason string, hdrs map[string]string) {
	t.Helper()
	f := c.Final()
	if f == nil || f.Code != code || f.Reason != reason {
		t.Fatalf("call %s: want %d %q, got %+v\n%s", c.CallID, code, reason, f, k.Tail(15))
	}
	for h, v := range hdrs {
		if got := f.Headers[strings.ToLower(h)]; got != v {
			t.Errorf("call %s: header %s = %q, want %q", c.CallID, h, got, v)
		}
	}
}

func TestEdge(t *testing.T) {
	e := setup(t)

	promAddr := fmt.Sprintf("127.0.0.1:%d", siptest.MustFreePort("tcp", "127.0.0.1"))
	kHTTP := e.kamailio(t, "http", "WITH_IPAUTH", "WITH_AUTH", "WITH_PROMETHEUS", "PROM_LISTEN=tcp:"+promAddr)
	kRPC := e.kamailio(t, "rpc", "WITH_IPAUTH", "WITH_AUTH", "WITH_JSONRPC")
	kOpen := e.kamailio(t, "failopen", "FAIL_OPEN") // From-user identity (test-only mode)

	for _, tr := range []struct {
		name string
		k    *siptest.Kamailio
	}{{"http_client", kHTTP}, {"jsonrpc", kRPC}} {
		k := tr.k
		t.Run(tr.name, func(t *testing.T) {
			t.Run("allowed call reaches the upstream and BYE passes", func(t *testing.T) {
				expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller"}))
			})
			t.Run("barred country", func(t *testing.T) {
				expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numCuba, From: "caller"}),
					403, "Barred Country", map[string]string{"X-Tollgate-Code": "2030", "X-Tollgate-Reason": "country_barred"})
			})
			t.Run("high-risk number", func(t *testing.T) {
				expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numSatellite, From: "caller"}),
					403, "Barred Number", map[string]string{"X-Tollgate-Code": "2040", "X-Tollgate-Reason": "number_barred"})
			})
			t.Run("subaccount header from a trunk", func(t *testing.T) {
				hdr := "X-Tollgate-Subaccount: usonly"
				expectReject(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller", Header: hdr}),
					403, "Barred Country", nil)
				expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: numUS, From: "caller", Header: hdr}))
			})
			t.Run("digest user is the account", func(t *testing.T) {
				expectAnswered(t, k, e.one(t, k, ipUser, siptest.Call{Number: numAllowed, From: "alice"}, "alice", alicePass))
				expectReject(t, k, e.one(t, k, ipUser, siptest.Call{Number: numCuba, From: "alice"}, "alice", alicePass),
					403, "Barred Country", nil)
			})
			t.Run("unauthenticated caller is challenged", func(t *testing.T) {
				expectReject(t, k, e.one(t, k, ipBystand, siptest.Call{Number: numAllowed, From: "trunk1"}),
					407, "Proxy Authentication Required", nil)
			})
			t.Run("emergency call", func(t *testing.T) {
				expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: "112", From: "caller"}))
			})
			t.Run("channel cap", func(t *testing.T) { testChannelCap(t, e, k) })
			t.Run("CPS cap", func(t *testing.T) { testCPSCap(t, e, k) })
		})
	}

	t.Run("From-user identity (test-only mode)", func(t *testing.T) {
		expectReject(t, kOpen, e.one(t, kOpen, ipFromUser, siptest.Call{Number: numCuba, From: "trunk1"}),
			403, "Barred Country", map[string]string{"X-Tollgate-Code": "2030"})
		// the subaccount header is not trusted from an unauthenticated caller
		expectAnswered(t, kOpen, e.one(t, kOpen, ipFromUser, siptest.Call{Number: numAllowed, From: "trunk1", Header: "X-Tollgate-Subaccount: usonly"}))
	})

	t.Run("pike flood bans the source", func(t *testing.T) { testPikeFlood(t, e, kHTTP) })
	t.Run("digest failures ban the source", func(t *testing.T) { testAuthBan(t, e, kHTTP) })
	t.Run("prometheus metrics of auth failures and bans", func(t *testing.T) {
		// what deploy/prometheus/tollgate-alerts.yml's auth-failure alert reads
		resp, err := http.Get("http://" + promAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`kamailio_tollgate_auth_failures{ip="` + ipGuesser + `"} 3`,
			`kamailio_tollgate_bans{cause="auth"} 1`, `kamailio_tollgate_bans{cause="pike"} 1`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("metrics lack %s:\n%s", want, b)
			}
		}
		if r, err := http.Get("http://" + promAddr + "/other"); err != nil || r.StatusCode != 404 {
			t.Errorf("another path: %v %v", r, err)
		}
	})
	t.Run("the carrier's address is never flood-banned", func(t *testing.T) {
		// UPSTREAM's host: a callee's BYEs and re-INVITEs come from there
		for i := 0; i < 120; i++ {
			if code, err := siptest.Options(e.upstream.IP, kHTTP.Addr, 2*time.Second); err != nil || code != 200 {
				t.Fatalf("request %d from the upstream's address: %d %v", i, code, err)
			}
		}
	})

	// the sidecar goes away
	if err := e.tg.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []struct {
		name string
		k    *siptest.Kamailio
	}{{"http_client", kHTTP}, {"jsonrpc", kRPC}} {
		k := tr.k
		t.Run(tr.name+"/sidecar stopped: fail closed", func(t *testing.T) {
			start := time.Now()
			c := e.one(t, k, ipTrunk, siptest.Call{Number: numAllowed, From: "caller"})
			expectReject(t, k, c, 503, "Fraud Check Unavailable", map[string]string{"Retry-After": "30", "X-Tollgate-Reason": "unavailable"})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("fail-closed answer took %v", d)
			}
			if !strings.Contains(k.Log(), "failing closed") {
				t.Error("fail-closed decision not logged")
			}
		})
		t.Run(tr.name+"/sidecar stopped: emergency still passes", func(t *testing.T) {
			expectAnswered(t, k, e.one(t, k, ipTrunk, siptest.Call{Number: "911", From: "caller"}))
		})
	}
	t.Run("failopen/sidecar stopped: FAIL_OPEN relays and logs loudly", func(t *testing.T) {
		expectAnswered(t, kOpen, e.one(t, kOpen, ipFromUser, siptest.Call{Number: numCuba, From: "trunk1"}))
		if !strings.Contains(kOpen.Log(), "FAIL_OPEN: relaying UNCHECKED call") {
			t.Errorf("FAIL_OPEN relay not logged:\n%s", kOpen.Tail(10))
		}
	})
}

// N calls up on an account capped at N channels: call N+1 is refused with
// 503 Channel Limit Reached, and once they hang up a call passes again.
func testChannelCap(t *testing.T, e *env, k *siptest.Kamailio) {
	const capN = 2
	var wg sync.WaitGroup
	held := make([]*siptest.Result, capN)
	errs := make([]error, capN)
	logs := make([]string, capN)
	for i := 0; i < capN; i++ {
		name := e.name("held")
		logs[i] = filepath.Join(e.dir, name+"-messages.log")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			held[i], errs[i] = e.runE(k, callOpts{name: name, src: ipChan, calls: []siptest.Call{{Number: numAllowed, From: "pbx"}}, holdMS: 6000})
		}(i)
	}
	// wait until both are answered (sipp's message logs show their 200s), at
	// most 4 s; they are held for 6 s
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		answered := 0
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "SIP/2.0 200 OK") {
				answered++
			}
		}
		if answered == capN {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	over := e.one(t, k, ipChan, siptest.Call{Number: numAllowed, From: "pbx"})
	wg.Wait()
	for i, r := range held {
		if errs[i] != nil {
			t.Fatalf("held call %d: %v", i, errs[i])
		}
		if r == nil || len(r.Order) != 1 {
			t.Fatalf("held call %d did not run", i)
		}
		expectAnswered(t, k, r.Calls[r.Order[0]])
	}
	expectReject(t, k, over, 503, "Channel Limit Reached", nil)
	// the channels were released by the BYEs
	expectAnswered(t, k, e.one(t, k, ipChan, siptest.Call{Number: numAllowed, From: "pbx"}))
}

// A burst at 3×C calls/s for 3 s on an account capped at C CPS: about C per
// second pass (tail-drop per 1 s interval; the band allows for the burst
// straddling interval edges), the rest get 503 CPS Limit Exceeded.
func testCPSCap(t *testing.T, e *env, k *siptest.Kamailio) {
	const c, secs = 5, 3
	n := 3 * c * secs
	res := e.run(t, k, callOpts{src: ipCPS, calls: []siptest.Call{{Number: numAllowed, From: "pbx"}},
		count: n, rate: 3 * c, holdMS: 50, timeout: 20})
	ok, limited := res.CountCode(200), 0
	for _, cr := range res.Calls {
		if f := cr.Final(); f != nil && f.Code == 503 && f.Reason == "CPS Limit Exceeded" {
			limited++
		}
	}
	t.Logf("CPS cap %d, %d calls at %d/s: %d answered, %d limited, finals %v", c, n, 3*c, ok, limited, res.Finals())
	if len(res.Order) != n {
		t.Fatalf("sipp placed %d calls, want %d", len(res.Order), n)
	}
	// without the cap all 45 would pass; a slow machine stretches the burst
	// over more 1 s intervals, hence the generous upper bound
	if ok < c*secs*2/3 || ok > c*(secs+2) {
		t.Errorf("%d calls answered under a %d CPS cap in a %d s burst; want about %d", ok, c, secs, c*secs)
	}
	if ok+limited != n {
		t.Errorf("answered %d + limited %d != %d calls: %v", ok, limited, n, res.Finals())
	}
}

// An untrusted source sending faster than pike allows is banned: after the
// flood, and after pike's own block would have ended, it gets no reply at
// all, while another untrusted source is still answered.
func testPikeFlood(t *testing.T, e *env, k *siptest.Kamailio) {
	res := e.run(t, k, callOpts{src: ipScanner, calls: []siptest.Call{{Number: numAllowed, From: "scan"}},
		count: 150, rate: 100, recvTO: 1000, timeout: 10, noRetrans: true})
	answered := len(res.Order) - res.NoReply()
	t.Logf("flood: %d INVITEs, %d answered before the ban", len(res.Order), answered)
	if res.NoReply() == 0 {
		t.Fatalf("no request of the flood went unanswered: %v", res.Finals())
	}
	if !strings.Contains(k.Log(), "pike flood from "+ipScanner) {
		t.Errorf("ban not logged")
	}
	// pike itself unblocks at the next quiet 2 s interval; the htable ban lasts
	time.Sleep(4500 * time.Millisecond)
	later := e.run(t, k, callOpts{src: ipScanner, calls: []siptest.Call{{Number: numAllowed, From: "scan"}}, recvTO: 1500, timeout: 5})
	if later.NoReply() != 1 {
		t.Fatalf("banned source got a reply after the flood: %v", later.Finals())
	}
	if code, err := siptest.Options(ipScanner, k.Addr, 700*time.Millisecond); err == nil {
		t.Fatalf("banned source got %d to an OPTIONS", code)
	}
	if code, err := siptest.Options(ipBystand, k.Addr, 2*time.Second); err != nil || code != 200 {
		t.Fatalf("another source was not answered: %d %v", code, err)
	}
}

// Three wrong digest passwords from one source ban it: the third is not
// answered and neither is anything after it.
func testAuthBan(t *testing.T, e *env, k *siptest.Kamailio) {
	for i := 1; i <= 3; i++ {
		c := e.one(t, k, ipGuesser, siptest.Call{Number: numAllowed, From: "bob"}, "bob", "wrong-guess")
		var n407 int
		for _, r := range c.Responses {
			if r.Code == 407 {
				n407++
			}
		}
		switch {
		case i < 3 && n407 != 2:
			t.Fatalf("attempt %d: want challenge then re-challenge, got %d 407s", i, n407)
		case i == 3 && (n407 != 1 || c.Final().Code != 407):
			// the first INVITE is challenged; the failed answer gets nothing
			t.Fatalf("attempt 3: want only the first challenge, got %+v", c.Responses)
		}
	}
	if !strings.Contains(k.Log(), "3 failed digest attempts from "+ipGuesser) {
		t.Errorf("auth ban not logged")
	}
	if code, err := siptest.Options(ipGuesser, k.Addr, 700*time.Millisecond); err == nil {
		t.Fatalf("banned source got %d to an OPTIONS", code)
	}
	// even the right password does not help now
	c := e.one(t, k, ipGuesser, siptest.Call{Number: numAllowed, From: "bob"}, "bob", "bob-pass")
	if len(c.Responses) != 0 {
		t.Fatalf("banned source got answers: %+v", c.Responses)
	}
	// and a correct user elsewhere is unaffected
	expectAnswered(t, k, e.one(t, k, ipUser, siptest.Call{Number: numAllowed, From: "alice"}, "alice", alicePass))
}

// A sidecar that accepts connections and never answers: both transports give
// up within their timeouts and fail closed, and Kamailio keeps answering.
func TestSidecarHangs(t *testing.T) {
	requireTools(t)
	_, cfg := cfgPath(t)
	dir := t.TempDir()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var hmu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hmu.Lock()
			held = append(held, c) // read nothing, answer nothing
			hmu.Unlock()
		}
	}()
	defer func() {
		hmu.Lock()
		for _, c := range held {
			c.Close()
		}
		hmu.Unlock()
	}()

	addrFile := filepath.Join(dir, "address.list")
	os.WriteFile(addrFile, []byte("1 "+ipTrunk+" 32 0 trunk1\n"), 0o644)
	hang := ln.Addr().String()
	common := []string{"WITH_IPAUTH", "CHILDREN=2", fmt.Sprintf(`ADDRESS_FILE="%s"`, addrFile),
		fmt.Sprintf(`TOLLGATE_URL="http://%s"`, hang), fmt.Sprintf(`TOLLGATE_RPC="%s"`, hang)}
	root, _ := siptest.RepoRoot()
	scen := filepath.Join(root, "kamailio", "sipp")

	for _, tc := range []struct {
		name     string
		defs     []string
		min, max time.Duration
	}{
		{"http_client", nil, 900 * time.Millisecond, 3 * time.Second},                          // TOLLGATE_TIMEOUT=1 s
		{"jsonrpc", []string{"WITH_JSONRPC"}, 150 * time.Millisecond, 1500 * time.Millisecond}, // 200 ms
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := siptest.StartKamailio("hang-"+tc.name, cfg, dir, append(common, tc.defs...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Stop(5 * time.Second)
			u := siptest.UAC{Name: "hang-" + tc.name, Scenario: filepath.Join(scen, "uac.xml"), SrcIP: ipTrunk,
				Target: k.Addr, Calls: []siptest.Call{{Number: numAllowed, From: "caller"}}, RecvTimeoutMS: 5000,
				TimeoutS: 10, Trace: true, Dir: dir, HoldMS: 100}
			start := time.Now()
			res, err := u.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if len(res.Order) != 1 {
				t.Fatalf("no call logged\n%s", res.Output)
			}
			expectReject(t, k, res.Calls[res.Order[0]], 503, "Fraud Check Unavailable", map[string]string{"Retry-After": "30"})
			if took < tc.min || took > tc.max {
				t.Errorf("fail-closed answer after %v, want between %v and %v", took, tc.min, tc.max)
			}
			// and the proxy still answers
			if code, err := siptest.Options(ipBystand, k.Addr, 2*time.Second); err != nil || code != 200 {
				t.Errorf("OPTIONS after the hung query: %d %v", code, err)
			}
		})
	}
}
