// Command bench is `make bench`: it runs the Go benchmarks of the matcher,
// the numbering plan and the handler (medians of -count runs), then
// generates a large policy (100,000 accounts, 1,000,000 high-risk
// prefixes), loads it with `tollgate import`, starts bin/tollgate on free
// loopback ports and measures it with bin/tollgate-loadtest — closed-loop
// throughput per transport, latency at a fixed open-loop rate, RSS — against
// nginx returning a constant 200 of the same size, in the same run, on the
// same CPU budget. Everything it starts it stops by pid, on every exit path.
//
// The report (Markdown) goes to stdout and, with -out, to a file; progress
// goes to stderr. docs/benchmarks.md explains every choice.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options are the driver's flags.
type Options struct {
	Tollgate, Loadtest, Nginx string
	Work                      string
	Keep                      bool
	GenOnly                   bool
	Gen                       GenOptions
	GoBench                   bool
	GoCount                   int
	GoPkgs                    string
	// GoFleet is the fleet benchmarks' pattern (run apart: each iteration
	// is a second of simulated traffic, the setup tens of seconds).
	GoFleet                 string
	GoFleetCount            int
	Load                    bool
	Rounds, OpenRounds      int
	ClosedDur, OpenDur      time.Duration
	Warmup                  time.Duration
	Conns                   int
	Rate                    float64
	OpenTransports          string
	ServerCPUs, ClientCPUs  string
	NginxWorkers            int
	ReadyTimeout            time.Duration
	RSSStored               bool
	Soak                    time.Duration
	RSSStartMax, RSSSoakMax float64
	QuietMax                float64
	QuietWait, QuietBudget  time.Duration
	Out                     string
	// Writes runs the admin-write experiment (runWrites).
	Writes               bool
	WriteRate, CheckRate float64
	WriteDur             time.Duration
	WriteRounds          int
}

func parseOptions(args []string) (*Options, error) {
	o := &Options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.Tollgate, "tollgate", "bin/tollgate", "the tollgate binary")
	fs.StringVar(&o.Loadtest, "loadtest", "bin/tollgate-loadtest", "the load tester binary")
	fs.StringVar(&o.Nginx, "nginx", "nginx", "the nginx binary (the reference)")
	fs.StringVar(&o.Work, "work", "", "working directory for the generated files and the data dir (default: a new temporary directory, removed at the end)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the working directory")
	fs.BoolVar(&o.GenOnly, "gen-only", false, "only generate the policy and workload into -work and import them into -work/data (for bench/wrk-ratio.sh and bench/footprint.sh); implies -keep")
	fs.IntVar(&o.Gen.Accounts, "accounts", 100_000, "accounts to generate")
	fs.IntVar(&o.Gen.Prefixes, "prefixes", 1_000_000, "high-risk prefixes to generate (the shipped list included)")
	fs.IntVar(&o.Gen.Numbers, "numbers", 50_000, "lines of the loadtest numbers file")
	fs.Uint64Var(&o.Gen.Seed, "seed", 1, "seed of everything generated")
	fs.BoolVar(&o.GoBench, "go", true, "run the Go benchmarks")
	fs.IntVar(&o.GoCount, "go-count", 5, "go test -count for the Go benchmarks")
	fs.StringVar(&o.GoPkgs, "go-pkgs", "./matcher/ ./numplan/ ./handler/query/ ./velocity/ ./origin/", "packages whose benchmarks run")
	fs.StringVar(&o.GoFleet, "go-fleet", "Fleet20", "fleet benchmarks run apart with -benchtime 3x (./fleet/, -bench pattern; empty: none)")
	fs.IntVar(&o.GoFleetCount, "go-fleet-count", 3, "go test -count for the fleet benchmarks")
	fs.BoolVar(&o.Load, "load", true, "run the load tests against tollgate and nginx")
	fs.IntVar(&o.Rounds, "rounds", 3, "rounds of the closed-loop measurements (targets interleaved within a round; medians reported)")
	fs.IntVar(&o.OpenRounds, "open-rounds", 5, "rounds of the open-loop measurements (p99 is the figure a shared machine disturbs most)")
	fs.DurationVar(&o.ClosedDur, "closed-duration", 5*time.Second, "measured period of one closed-loop run")
	fs.DurationVar(&o.OpenDur, "open-duration", 8*time.Second, "measured period of one open-loop run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured warm-up before every run")
	fs.IntVar(&o.Conns, "conns", 64, "closed loop: connections (the same for tollgate and nginx)")
	fs.Float64Var(&o.Rate, "rate", 20_000, "open loop: requests per second")
	fs.StringVar(&o.OpenTransports, "open-transports", "http-get,rpc-netstring", "tollgate transports measured in open loop (nginx is measured with http-get)")
	fs.StringVar(&o.ServerCPUs, "server-cpus", "0", "CPUs (taskset -c list) for tollgate and nginx; empty: no pinning")
	fs.StringVar(&o.ClientCPUs, "client-cpus", "1", "CPUs (taskset -c list) for the load tester; empty: no pinning")
	fs.IntVar(&o.NginxWorkers, "nginx-workers", 0, "nginx worker_processes (0: as many as -server-cpus lists, else the CPU count)")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 3*time.Minute, "how long tollgate may take to load and answer /ready")
	fs.DurationVar(&o.Soak, "soak", 0, "after the rounds, hold -rate open-loop http-get checks on tollgate this long, then read its RSS (0: no soak)")
	fs.Float64Var(&o.RSSStartMax, "rss-start-max", 200, "the RSS-after-start check: VmRSS after start must stay under this many MB (10^6 bytes)")
	fs.Float64Var(&o.RSSSoakMax, "rss-soak-max", 250, "the RSS-after-soak check: VmRSS after -soak must stay under this many MB")
	fs.BoolVar(&o.RSSStored, "rss-stored", true, "also measure RSS after start with the high-risk list stored in the data file instead of -high-risk-file")
	fs.Float64Var(&o.QuietMax, "quiet-max", 0.3, "before each run, wait until other processes use at most this many cores (the machine is shared)")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 20*time.Second, "longest wait for -quiet-max before a run goes ahead anyway")
	fs.DurationVar(&o.QuietBudget, "quiet-budget", 60*time.Second, "longest time all the waits for -quiet-max may add up to (keeps the whole run bounded)")
	fs.StringVar(&o.Out, "out", "", "also write the report to this file")
	fs.BoolVar(&o.Writes, "writes", false, "measure checks while a writer PUTs accounts on the admin API (with -go=false -load=false to run only this)")
	fs.Float64Var(&o.WriteRate, "write-rate", 50, "-writes: account PUTs per second")
	fs.Float64Var(&o.CheckRate, "check-rate", 10_000, "-writes: open-loop checks per second")
	fs.DurationVar(&o.WriteDur, "write-duration", 10*time.Second, "-writes: measured period of one run")
	fs.IntVar(&o.WriteRounds, "write-rounds", 3, "-writes: rounds, each a run without and a run with writes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags]   (make bench)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.GenOnly {
		if o.Work == "" {
			return nil, errors.New("-gen-only needs -work")
		}
		o.Keep, o.GoBench, o.Load, o.Writes = true, false, true, false
	}
	if runtime.NumCPU() < 2 {
		o.ServerCPUs, o.ClientCPUs = "", ""
	}
	if o.NginxWorkers <= 0 {
		o.NginxWorkers = cpuCount(o.ServerCPUs)
	}
	if o.Rounds < 1 || o.OpenRounds < 1 || o.GoCount < 1 || o.WriteRounds < 1 {
		return nil, errors.New("-rounds, -open-rounds, -write-rounds and -go-count must be at least 1")
	}
	if o.WriteRate <= 0 || o.CheckRate <= 0 {
		return nil, errors.New("-write-rate and -check-rate must be positive")
	}
	return o, nil
}

// cpuCount counts the CPUs of a taskset list ("0", "0-1", "0,2"); an empty
// list means every CPU.
func cpuCount(list string) int {
	if list == "" {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		if !isRange {
			if err1 == nil {
				n++
			}
			continue
		}
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 == nil && err2 == nil && b >= a {
			n += b - a + 1
		}
	}
	return max(n, 1)
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench: %v: stopping everything started\n", s)
		StopAll()
		os.Exit(130)
	}()
	code := run(o)
	StopAll()
	os.Exit(code)
}

// report is where the Markdown report goes.
type report struct{ w io.Writer }

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(o *Options) int {
	var out io.Writer = os.Stdout
	if o.Out != "" {
		f, err := os.Create(o.Out)
		if err != nil {
			logf("%v", err)
			return 2
		}
		defer f.Close()
		out = io.MultiWriter(os.Stdout, f)
	}
	r := &report{w: out}
	failed := false
	start := time.Now()

	m := machineInfo()
	r.printf("# tollgate bench\n\n")
	r.printf("- date: %s\n", start.UTC().Format("2006-01-02 15:04 MST"))
	r.printf("- machine: %d CPUs (%s), %s RAM, kernel %s\n", runtime.NumCPU(), m["cpu"], m["mem"], m["kernel"])
	r.printf("- load average at start: %s\n", m["load"])
	r.printf("- Go: %s\n", runtime.Version())
	if o.Load {
		if v, err := exec.Command(o.Nginx, "-v").CombinedOutput(); err == nil {
			r.printf("- nginx: %s\n", strings.TrimSpace(strings.TrimPrefix(string(v), "nginx version: ")))
		}
	}
	r.printf("\n")

	if o.GoBench {
		if err := runGoBench(r, o); err != nil {
			logf("Go benchmarks: %v", err)
			r.printf("\n**Go benchmarks failed: %v**\n\n", err)
			failed = true
		}
		if o.GoFleet != "" {
			if err := runFleetBench(r, o); err != nil {
				logf("fleet benchmarks: %v", err)
				r.printf("\n**Fleet benchmarks failed: %v**\n\n", err)
				failed = true
			}
		}
	}
	if o.Load {
		if err := runLoad(r, o); err != nil {
			logf("load: %v", err)
			r.printf("\n**Load benchmark failed: %v**\n\n", err)
			failed = true
		}
	}
	if o.Writes {
		if err := runWrites(r, o); err != nil {
			logf("writes: %v", err)
			r.printf("\n**Write benchmark failed: %v**\n\n", err)
			failed = true
		}
	}
	r.printf("Total time: %s (%s of it waiting for a quiet machine); load average at the end: %s\n",
		time.Since(start).Round(time.Second), quietSpent.Round(time.Second), machineInfo()["load"])
	if failed {
		return 1
	}
	return 0
}

func runGoBench(r *report, o *Options) error {
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(o.GoCount)}
	args = append(args, strings.Fields(o.GoPkgs)...)
	return runGoTest(r, "Go benchmarks", args, o.GoCount)
}

// runFleetBench runs the simulated fleet (BenchmarkFleet20: 20 nodes, CPU,
// messages, bytes and staleness; docs/benchmarks.md#fleet).
func runFleetBench(r *report, o *Options) error {
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", o.GoFleet, "-benchtime", "3x", "-count", strconv.Itoa(o.GoFleetCount), "./fleet/"}
	return runGoTest(r, "Fleet benchmarks", args, o.GoFleetCount)
}

// runGoTest runs `go args…` and reports its benchmarks' medians.
func runGoTest(r *report, title string, args []string, count int) error {
	logf("go %s", strings.Join(args, " "))
	t0 := time.Now()
	cmd := exec.Command("go", args...)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runErr := cmd.Run()
	results, err := ParseGoBench(&buf)
	if err != nil {
		return err
	}
	r.printf("## %s\n\n`go %s` (%s), medians of %d runs:\n\n", title, strings.Join(args, " "), time.Since(t0).Round(time.Second), count)
	WriteGoBenchTable(r.w, results)
	r.printf("\n")
	if runErr != nil {
		return fmt.Errorf("go test: %v", runErr)
	}
	if len(results) == 0 {
		return errors.New("no benchmark results")
	}
	return nil
}

// target is one thing the load tester measures.
type target struct {
	server    string // "tollgate" or "nginx"
	transport string
	addr      string // HTTP address
	rpcAddr   string
}

func (t target) String() string { return t.server + " " + t.transport }

// Summary is the part of tollgate-loadtest's -json summary the report uses.
type Summary struct {
	Transport      string            `json:"transport"`
	Mode           string            `json:"mode"`
	Conns          int               `json:"conns"`
	Requests       uint64            `json:"requests"`
	Unsent         uint64            `json:"unsent"`
	AchievedRate   float64           `json:"achieved_rate"`
	RateRatio      float64           `json:"rate_ratio"`
	Errors         uint64            `json:"errors"`
	ErrorsByKind   map[string]uint64 `json:"errors_by_kind"`
	Verdicts       map[string]uint64 `json:"verdicts"`
	Reasons        map[string]uint64 `json:"reasons"`
	BehindSchedule uint64            `json:"behind_schedule"`
	Latency        struct {
		P50  float64 `json:"p50_us"`
		P90  float64 `json:"p90_us"`
		P99  float64 `json:"p99_us"`
		P999 float64 `json:"p99_9_us"`
		Max  float64 `json:"max_us"`
	} `json:"latency"`
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures"`
}

// runResult is one load-tester run with the CPU the server and the client
// used meanwhile (in cores: 1.0 is one CPU busy for the whole run).
type runResult struct {
	Summary
	serverCPU, clientCPU float64
	// otherCPU is what everything else on the machine used meanwhile, in
	// cores: the machine is shared, and a busy neighbour shows here.
	otherCPU float64
	// quietWait is how long the run waited for the machine to calm down.
	quietWait time.Duration
	exit      int
}

// servers maps a server name to its pid and whether its CPU time includes
// child processes (nginx's workers).
type serverProc struct {
	pid      int
	children bool
}

// waitQuiet waits, at most o.QuietWait, until processes other than ours
// use no more than o.QuietMax cores, so a neighbour's burst of work does
// not land in a measurement.
func waitQuiet(o *Options, pids ...int) (time.Duration, float64) {
	t0 := time.Now()
	for {
		other := OtherLoad(500*time.Millisecond, pids...)
		waited := time.Since(t0)
		if other <= o.QuietMax || waited >= o.QuietWait || quietSpent+waited >= o.QuietBudget {
			quietSpent += waited
			return waited, other
		}
	}
}

// quietSpent is the time waitQuiet has waited so far in this run.
var quietSpent time.Duration

func runLoadtest(o *Options, t target, mode string, srv serverProc, numbers string) (*runResult, error) {
	args := []string{o.Loadtest, "-transport", t.transport, "-addr", t.addr, "-mode", mode, "-numbers", numbers,
		"-warmup", o.Warmup.String(), "-json", "-quiet"}
	if t.rpcAddr != "" {
		args = append(args, "-rpc-addr", t.rpcAddr)
	}
	if mode == "closed" {
		args = append(args, "-conns", strconv.Itoa(o.Conns), "-duration", o.ClosedDur.String())
	} else {
		args = append(args, "-rate", strconv.FormatFloat(o.Rate, 'f', -1, 64), "-duration", o.OpenDur.String())
	}
	var stdout, stderr bytes.Buffer
	dur := o.ClosedDur
	if mode == "open" {
		dur = o.OpenDur
	}
	t0 := time.Now()
	p, err := StartProc("tollgate-loadtest", o.ClientCPUs, nil, &stdout, &stderr, args...)
	if err != nil {
		return nil, err
	}
	// The server's CPU time is sampled over the measured period, less a
	// margin at each end for the load tester's start-up and the timers.
	margin := min(100*time.Millisecond, dur/10)
	window := dur - 2*margin
	type cpuSample struct{ server, client, other time.Duration }
	cpuc := make(chan cpuSample, 1)
	go func() {
		time.Sleep(time.Until(t0.Add(o.Warmup + margin)))
		s0, c0 := CPUTime(srv.pid, srv.children), CPUTime(p.Pid(), false)
		b0, _ := SystemBusy()
		time.Sleep(time.Until(t0.Add(o.Warmup + margin + window)))
		s1, c1 := CPUTime(srv.pid, srv.children), CPUTime(p.Pid(), false)
		b1, _ := SystemBusy()
		cpuc <- cpuSample{server: s1 - s0, client: c1 - c0, other: (b1 - b0) - (s1 - s0) - (c1 - c0)}
	}()
	werr := p.Wait()
	wall := time.Since(t0)
	cs := <-cpuc
	res := &runResult{serverCPU: cs.server.Seconds() / window.Seconds(), otherCPU: max(0, cs.other.Seconds()/window.Seconds())}
	if ps := p.Cmd.ProcessState; ps != nil {
		res.clientCPU = (ps.UserTime() + ps.SystemTime()).Seconds() / wall.Seconds()
		res.exit = ps.ExitCode()
	}
	if res.exit == 2 || (werr != nil && res.exit != 1) {
		return nil, fmt.Errorf("%s %s: %v\n%s", t, mode, werr, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &res.Summary); err != nil {
		return nil, fmt.Errorf("%s %s: unreadable summary: %v\n%s\n%s", t, mode, err, stdout.String(), stderr.String())
	}
	return res, nil
}

// tollgateInfo is what the report says about the running daemon.
type tollgateInfo struct {
	proc                   *Proc
	queryAddr, rpcAddr     string
	adminAddr, token       string
	ready                  time.Duration
	compile                string
	accounts, hrEntries    int
	rssStartKB, hwmStartKB int64
	logPath                string
}

func runLoad(r *report, o *Options) (err error) {
	work := o.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "tollgate-bench-"); err != nil {
			return err
		}
		if !o.Keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	for _, b := range []string{o.Tollgate, o.Loadtest} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%v (run `make build` first)", err)
		}
	}
	nginxPath, err := exec.LookPath(o.Nginx)
	if err != nil {
		return fmt.Errorf("nginx not found (%v): install the Debian package nginx-light (make bench-deps)", err)
	}

	// 1. The policy.
	logf("generating %d accounts, %d high-risk prefixes, %d numbers in %s", o.Gen.Accounts, o.Gen.Prefixes, o.Gen.Numbers, work)
	t0 := time.Now()
	gen, err := Generate(work, o.Gen)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	genTime := time.Since(t0)
	dataDir := filepath.Join(work, "data")
	os.RemoveAll(dataDir)
	t0 = time.Now()
	imp, err := exec.Command(o.Tollgate, "import", "-data-dir", dataDir, "-who", "bench", gen.AccountsFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tollgate import: %v\n%s", err, imp)
	}
	impTime := time.Since(t0)
	dbSize := fileSize(filepath.Join(dataDir, "tollgate.db"))

	r.printf("## Policy and workload\n\n")
	r.printf("Generated with seed %d in %s:\n\n", o.Gen.Seed, genTime.Round(100*time.Millisecond))
	r.printf("- %d accounts with %d subaccounts (`accounts.ndjson`, %.1f MB): 9 home countries, 60%% allow-all-except 1–6 barred countries or regions, 25%% deny-all-except (continents, regions, `nanp`), 10%% allow prefixes, 14%% block prefixes, 5%% high-risk opt-in, caps on most\n",
		gen.Accounts, gen.Subaccounts, float64(fileSize(gen.AccountsFile))/1e6)
	r.printf("- %d unique high-risk prefixes (`-high-risk-file`, %.1f MB): the %d shipped entries plus synthetic ranges over 50 calling codes\n",
		gen.Prefixes, float64(fileSize(gen.HighRiskFile))/1e6, gen.ShippedPrefixes)
	r.printf("- %d requests (`-numbers`, each with one of the generated accounts), classes %s, sent cyclically\n", o.Gen.Numbers, classSummary())
	r.printf("- `tollgate import`: %s (%s); data file %.1f MB\n\n", impTime.Round(100*time.Millisecond), strings.TrimSpace(string(imp)), float64(dbSize)/1e6)
	if o.GenOnly {
		return nil
	}

	// 2. tollgate.
	tg, err := startTollgate(o, work, dataDir, gen.HighRiskFile)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping tollgate (pid %d)", tg.proc.Pid())
		tg.proc.Stop(syscall.SIGTERM, 20*time.Second)
		if e := tg.proc.Wait(); e != nil && err == nil {
			err = fmt.Errorf("tollgate exited with %v (log: %s)", e, tg.logPath)
		}
	}()
	var sample []byte
	for _, s := range gen.Samples {
		if sample, err = httpGet("http://" + tg.queryAddr + "/v1/check?to=" + strings.Replace(s[0], "+", "%2B", 1) + "&account=" + s[1]); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("no allowed call among %d domestic samples: %w", len(gen.Samples), err)
	}

	// 3. nginx.
	ng, err := startNginx(o, nginxPath, work, sample)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping nginx (pid %d)", ng.proc.Pid())
		ng.proc.Stop(syscall.SIGQUIT, 10*time.Second)
	}()

	gomax := cpuCount(o.ServerCPUs)
	r.printf("## Setup\n\n")
	r.printf("- tollgate: `%s` pinned to CPU %s with GOMAXPROCS=%d, default log level (one JSON line per rejected call, to a file); ready %s after start (snapshot compile %s, %d accounts, %d high-risk entries)\n",
		o.Tollgate, orAll(o.ServerCPUs), gomax, tg.ready.Round(100*time.Millisecond), tg.compile, tg.accounts, tg.hrEntries)
	r.printf("- nginx: %d worker process(es) pinned to CPU %s, `return 200` of a constant JSON body of %d bytes (a real tollgate answer: `%s`), keep-alive, access log off\n",
		o.NginxWorkers, orAll(o.ServerCPUs), len(sample), sample)
	r.printf("- load: `%s` pinned to CPU %s, the same numbers file for every target; closed loop %d connections, %s (+%s warm-up); open loop %.0f req/s, %s (+%s warm-up); %d closed-loop and %d open-loop rounds, targets interleaved within a round, each run waiting (at most %s, %s in all) for other processes to use under %.2f cores\n\n",
		o.Loadtest, orAll(o.ClientCPUs), o.Conns, o.ClosedDur, o.Warmup, o.Rate, o.OpenDur, o.Warmup, o.Rounds, o.OpenRounds, o.QuietWait, o.QuietBudget, o.QuietMax)

	tgSrv := serverProc{pid: tg.proc.Pid()}
	ngSrv := serverProc{pid: ng.proc.Pid(), children: true}
	srvOf := func(t target) serverProc {
		if t.server == "nginx" {
			return ngSrv
		}
		return tgSrv
	}
	ngT := target{server: "nginx", transport: "http-get", addr: ng.addr}
	closedTargets := []target{ngT}
	for _, tr := range []string{"http-get", "http-post", "rpc-http", "rpc-netstring", "rpc-tcp"} {
		closedTargets = append(closedTargets, target{server: "tollgate", transport: tr, addr: tg.queryAddr, rpcAddr: tg.rpcAddr})
	}
	openTargets := []target{ngT}
	for _, tr := range strings.Split(o.OpenTransports, ",") {
		if tr = strings.TrimSpace(tr); tr != "" {
			openTargets = append(openTargets, target{server: "tollgate", transport: tr, addr: tg.queryAddr, rpcAddr: tg.rpcAddr})
		}
	}

	closed := map[string][]*runResult{}
	open := map[string][]*runResult{}
	for round := 0; round < max(o.Rounds, o.OpenRounds); round++ {
		for i := range closedTargets {
			if round >= o.Rounds {
				break
			}
			t := closedTargets[(i+round)%len(closedTargets)]
			waited, before := waitQuiet(o, tgSrv.pid, ngSrv.pid)
			logf("round %d/%d: closed loop %s (other load %.2f cores, waited %s)", round+1, o.Rounds, t, before, waited.Round(100*time.Millisecond))
			res, err := runLoadtest(o, t, "closed", srvOf(t), gen.NumbersFile)
			if err != nil {
				return err
			}
			res.quietWait = waited
			logf("  %.0f req/s, p99 %.0f µs, errors %d, server %.2f CPU, client %.2f CPU, others %.2f CPU", res.AchievedRate, res.Latency.P99, res.Errors, res.serverCPU, res.clientCPU, res.otherCPU)
			closed[t.String()] = append(closed[t.String()], res)
		}
		for i := range openTargets {
			if round >= o.OpenRounds {
				break
			}
			t := openTargets[(i+round)%len(openTargets)]
			waited, before := waitQuiet(o, tgSrv.pid, ngSrv.pid)
			logf("round %d/%d: open loop %.0f/s %s (other load %.2f cores, waited %s)", round+1, o.OpenRounds, o.Rate, t, before, waited.Round(100*time.Millisecond))
			res, err := runLoadtest(o, t, "open", srvOf(t), gen.NumbersFile)
			if err != nil {
				return err
			}
			res.quietWait = waited
			logf("  %.0f req/s, p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, errors %d, server %.2f CPU, others %.2f CPU", res.AchievedRate, res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Errors, res.serverCPU, res.otherCPU)
			open[t.String()] = append(open[t.String()], res)
		}
	}
	rssEnd, hwmEnd, _ := ProcStatus(tg.proc.Pid())
	var soak *runResult
	var rssSoak, hwmSoak int64
	if o.Soak > 0 {
		so := *o
		so.OpenDur = o.Soak
		t := target{server: "tollgate", transport: "http-get", addr: tg.queryAddr, rpcAddr: tg.rpcAddr}
		logf("soak: open loop %.0f/s %s for %s", o.Rate, t, o.Soak)
		if soak, err = runLoadtest(&so, t, "open", tgSrv, gen.NumbersFile); err != nil {
			return err
		}
		rssSoak, hwmSoak, _ = ProcStatus(tg.proc.Pid())
		logf("  %.0f req/s, errors %d, server %.2f CPU; VmRSS %s", soak.AchievedRate, soak.Errors, soak.serverCPU, mib(rssSoak))
	}
	ng.proc.Stop(syscall.SIGQUIT, 10*time.Second)
	tg.proc.Stop(syscall.SIGTERM, 20*time.Second)
	if err := tg.proc.Wait(); err != nil {
		return fmt.Errorf("tollgate exited with %v (log: %s)", err, tg.logPath)
	}
	var stored *tollgateInfo
	if o.RSSStored {
		if stored, err = rssWithStoredList(o, work, dataDir, gen.HighRiskFile); err != nil {
			return err
		}
	}

	writeClosed(r, o, closedTargets, closed)
	writeOpen(r, o, openTargets, open)
	writeRatios(r, o, closedTargets, openTargets, closed, open)

	r.printf("## tollgate memory\n\n| when | VmRSS | VmHWM (peak) |\n|---|---:|---:|\n")
	r.printf("| after start (ready, %d accounts, %d high-risk prefixes) | %s | %s |\n", tg.accounts, tg.hrEntries, mib(tg.rssStartKB), mib(tg.hwmStartKB))
	r.printf("| after the load | %s | %s |\n", mib(rssEnd), mib(hwmEnd))
	if soak != nil {
		r.printf("| after a soak of %s at %.0f checks/s (http-get, %.0f achieved, %d errors) | %s | %s |\n", o.Soak, o.Rate, soak.AchievedRate, soak.Errors, mib(rssSoak), mib(hwmSoak))
	}
	if stored != nil {
		r.printf("| after start, the same list stored in the data file (`PUT /v1/high-risk`) instead of `-high-risk-file` | %s | %s |\n", mib(stored.rssStartKB), mib(stored.hwmStartKB))
	}
	r.printf("\n")
	writeRatioLines(r, o, closed, tg.rssStartKB, rssSoak)

	if rs := closed["tollgate http-get"]; len(rs) > 0 {
		writeVerdicts(r, rs[0])
	}
	return nil
}

func orAll(cpus string) string {
	if cpus == "" {
		return "any (not pinned)"
	}
	return cpus
}

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }

func httpGet(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, nil
}

func startTollgate(o *Options, work, dataDir, hrFile string) (*tollgateInfo, error) {
	logPath := filepath.Join(work, "tollgate.log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own descriptor
	env := []string{"GOMAXPROCS=" + strconv.Itoa(cpuCount(o.ServerCPUs))}
	token := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	args := []string{o.Tollgate, "-data-dir", dataDir,
		"-query-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-rpc-addr", "127.0.0.1:0",
		"-admin-token", "bench:" + token, "-drain-delay", "0s"}
	if hrFile != "" {
		args = append(args, "-high-risk-file", hrFile)
	}
	t0 := time.Now()
	p, err := StartProc("tollgate", o.ServerCPUs, env, lf, lf, args...)
	if err != nil {
		return nil, err
	}
	tg := &tollgateInfo{proc: p, logPath: logPath, token: token}
	logf("started tollgate (pid %d), waiting for /ready", p.Pid())
	deadline := t0.Add(o.ReadyTimeout)
	for {
		if p.Exited() {
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("tollgate exited before it was ready: %v\n%s", p.Wait(), tail(b, 2000))
		}
		if time.Now().After(deadline) {
			p.Stop(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("tollgate not ready after %s", o.ReadyTimeout)
		}
		if tg.queryAddr == "" {
			var ri struct {
				PID       int    `json:"pid"`
				QueryAddr string `json:"query_addr"`
				AdminAddr string `json:"admin_addr"`
				RPCAddr   string `json:"rpc_addr"`
			}
			if b, err := os.ReadFile(filepath.Join(dataDir, "tollgate.run.json")); err == nil && json.Unmarshal(b, &ri) == nil && ri.PID == p.Pid() {
				tg.queryAddr, tg.adminAddr, tg.rpcAddr = ri.QueryAddr, ri.AdminAddr, ri.RPCAddr
			}
		}
		if tg.queryAddr != "" {
			if _, err := httpGet("http://" + tg.queryAddr + "/ready"); err == nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tg.ready = time.Since(t0)
	tg.rssStartKB, tg.hwmStartKB, _ = ProcStatus(p.Pid())
	if b, err := os.ReadFile(logPath); err == nil {
		for _, line := range bytes.Split(b, []byte("\n")) {
			var l struct {
				Msg      string  `json:"message"`
				Accounts int     `json:"accounts"`
				HR       int     `json:"high_risk_entries"`
				Compile  float64 `json:"compile"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "tollgate started" {
				tg.accounts, tg.hrEntries = l.Accounts, l.HR
				// zerolog writes durations in milliseconds by default.
				tg.compile = (time.Duration(l.Compile * float64(time.Millisecond))).Round(10 * time.Millisecond).String()
			}
		}
	}
	logf("tollgate ready in %s at %s (rpc %s), RSS %s", tg.ready.Round(100*time.Millisecond), tg.queryAddr, tg.rpcAddr, mib(tg.rssStartKB))
	return tg, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// rssWithStoredList measures tollgate's RSS after start when the same
// high-risk list is stored in the data file rather than read from
// -high-risk-file: it uploads the list through the admin API, restarts, and
// reads VmRSS once ready.
func rssWithStoredList(o *Options, work, dataDir, hrFile string) (*tollgateInfo, error) {
	logf("RSS with the high-risk list stored: uploading it through the admin API")
	tg, err := startTollgate(o, work, dataDir, "")
	if err != nil {
		return nil, err
	}
	body, err := os.ReadFile(hrFile)
	if err != nil {
		tg.proc.Stop(syscall.SIGTERM, 20*time.Second)
		return nil, err
	}
	req, _ := http.NewRequest("PUT", "http://"+tg.adminAddr+"/v1/high-risk", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tg.token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("PUT /v1/high-risk: %s: %s", resp.Status, b)
		}
	}
	tg.proc.Stop(syscall.SIGTERM, 20*time.Second)
	if werr := tg.proc.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("tollgate exited with %v", werr)
	}
	if err != nil {
		return nil, err
	}
	tg, err = startTollgate(o, work, dataDir, "")
	if err != nil {
		return nil, err
	}
	tg.proc.Stop(syscall.SIGTERM, 20*time.Second)
	return tg, tg.proc.Wait()
}

// nginxInfo is the running reference server.
type nginxInfo struct {
	proc *Proc
	addr string
}

// nginxConf is the reference: one constant answer, no logging per request,
// keep-alive without a request limit (fasthttp has none either).
const nginxConf = `# generated by go run ./bench
daemon off;
master_process on;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server_tokens off;
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp;
    fastcgi_temp_path %s/tmp;
    uwsgi_temp_path %s/tmp;
    scgi_temp_path %s/tmp;
    server {
        listen 127.0.0.1:%d;
        default_type application/json;
        location / {
            return 200 '%s';
        }
    }
}
`

func startNginx(o *Options, bin, work string, body []byte) (*nginxInfo, error) {
	if bytes.ContainsAny(body, "'\\$\n") {
		return nil, fmt.Errorf("the sample answer %q cannot go into an nginx string as is", body)
	}
	dir := filepath.Join(work, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "nginx.conf")
		c := fmt.Sprintf(nginxConf, o.NginxWorkers, dir, dir, dir, dir, dir, dir, dir, port, body)
		if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
			return nil, err
		}
		var stderr bytes.Buffer
		p, err := StartProc("nginx", o.ServerCPUs, nil, &stderr, &stderr, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		for i := 0; i < 50 && !p.Exited(); i++ {
			if b, err := httpGet("http://" + addr + "/v1/check"); err == nil {
				if !bytes.Equal(b, body) {
					p.Stop(syscall.SIGQUIT, 5*time.Second)
					return nil, fmt.Errorf("nginx answers %q, not the sample", b)
				}
				logf("nginx (pid %d, %d workers) at %s", p.Pid(), o.NginxWorkers, addr)
				return &nginxInfo{proc: p, addr: addr}, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		p.Stop(syscall.SIGQUIT, 5*time.Second)
		el, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		lastErr = fmt.Errorf("nginx did not come up: %s %s", stderr.String(), tail(el, 1000))
	}
	return nil, lastErr
}

// cpuPerReq is the server's CPU time per answered request, in µs.
func cpuPerReq(x *runResult) float64 {
	if x.AchievedRate == 0 {
		return 0
	}
	return x.serverCPU * 1e6 / x.AchievedRate
}

// maxOf returns the largest f over the runs.
func maxOf(rs []*runResult, f func(*runResult) float64) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

// medianOf returns the median of f over the runs.
func medianOf(rs []*runResult, f func(*runResult) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	m, _, _ := median(v)
	return m
}

func rates(rs []*runResult) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.FormatFloat(r.AchievedRate, 'f', 0, 64)
	}
	return strings.Join(s, ", ")
}

func errorsOf(rs []*runResult) string {
	var n, total uint64
	kinds := map[string]uint64{}
	for _, r := range rs {
		n += r.Errors
		total += r.Requests
		for k, v := range r.ErrorsByKind {
			kinds[k] += v
		}
	}
	if n == 0 {
		return "0"
	}
	var ks []string
	for k, v := range kinds {
		if v > 0 {
			ks = append(ks, fmt.Sprintf("%s %d", k, v))
		}
	}
	sort.Strings(ks)
	return fmt.Sprintf("%d of %d (%s)", n, total, strings.Join(ks, ", "))
}

func writeClosed(r *report, o *Options, ts []target, res map[string][]*runResult) {
	r.printf("## Closed loop: maximum throughput, %d connections\n\n", o.Conns)
	r.printf("| target | req/s median | req/s per round | p50 µs | p99 µs | p99.9 µs | server CPU | server CPU µs/req | client CPU | others' CPU (max) | errors |\n")
	r.printf("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, t := range ts {
		rs := res[t.String()]
		r.printf("| %s | %.0f | %s | %.0f | %.0f | %.0f | %.2f | %.1f | %.2f | %.2f | %s |\n", t, medianOf(rs, func(x *runResult) float64 { return x.AchievedRate }), rates(rs),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P50 }), medianOf(rs, func(x *runResult) float64 { return x.Latency.P99 }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P999 }),
			medianOf(rs, func(x *runResult) float64 { return x.serverCPU }), medianOf(rs, cpuPerReq),
			medianOf(rs, func(x *runResult) float64 { return x.clientCPU }), maxOf(rs, func(x *runResult) float64 { return x.otherCPU }), errorsOf(rs))
	}
	r.printf("\nServer CPU is in cores over the measured period (1.00 = one CPU busy throughout; for nginx, master and workers), and per request; client CPU is the load tester's; others' CPU is everything else on the machine over the measured period (the largest over the rounds). Medians over the rounds. A server well under its CPU budget while the client is near 1.00 means the load tester, not the server, set the rate.\n\n")
}

func writeOpen(r *report, o *Options, ts []target, res map[string][]*runResult) {
	r.printf("## Open loop: latency at %.0f requests/s\n\n", o.Rate)
	r.printf("Latency from each request's scheduled send time (no coordinated omission): medians over the rounds, each round's p99, and the round with the lowest p99.\n\n")
	r.printf("| target | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | p99 per round | best round p99 / p99.9 µs | behind schedule | server CPU | others' CPU (max) | errors | pass |\n")
	r.printf("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|\n")
	for _, t := range ts {
		rs := res[t.String()]
		var p99s []string
		pass := 0
		var best *runResult
		for _, x := range rs {
			if best == nil || x.Latency.P99 < best.Latency.P99 {
				best = x
			}
			p99s = append(p99s, strconv.FormatFloat(x.Latency.P99, 'f', 0, 64))
			if x.Pass {
				pass++
			}
		}
		if best == nil {
			continue
		}
		r.printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %.0f / %.0f | %.0f | %.2f | %.2f | %s | %d/%d |\n", t,
			medianOf(rs, func(x *runResult) float64 { return x.AchievedRate }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P50 }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P90 }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P99 }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.P999 }),
			medianOf(rs, func(x *runResult) float64 { return x.Latency.Max }),
			strings.Join(p99s, ", "), best.Latency.P99, best.Latency.P999,
			medianOf(rs, func(x *runResult) float64 { return float64(x.BehindSchedule) }),
			medianOf(rs, func(x *runResult) float64 { return x.serverCPU }), maxOf(rs, func(x *runResult) float64 { return x.otherCPU }), errorsOf(rs), pass, len(rs))
	}
	r.printf("\n")
}

func writeRatios(r *report, o *Options, closedTs, openTs []target, closed, open map[string][]*runResult) {
	ng := closed["nginx http-get"]
	r.printf("## tollgate / nginx\n\n")
	r.printf("Ratios of each round's tollgate figure to the nginx figure of the same round; median over the rounds.\n\n")
	r.printf("| tollgate transport | closed-loop throughput vs nginx http-get | per round | server CPU per request vs nginx | per round |\n|---|---:|---|---:|---|\n")
	for _, t := range closedTs {
		if t.server != "tollgate" {
			continue
		}
		rs := closed[t.String()]
		var ratios, cpu []float64
		var s, sc []string
		for i := range rs {
			if i < len(ng) && ng[i].AchievedRate > 0 && cpuPerReq(ng[i]) > 0 {
				q := rs[i].AchievedRate / ng[i].AchievedRate
				ratios = append(ratios, q)
				s = append(s, strconv.FormatFloat(q, 'f', 2, 64))
				c := cpuPerReq(rs[i]) / cpuPerReq(ng[i])
				cpu = append(cpu, c)
				sc = append(sc, strconv.FormatFloat(c, 'f', 2, 64))
			}
		}
		if len(ratios) == 0 {
			continue
		}
		m, _, _ := median(ratios)
		mc, _, _ := median(cpu)
		r.printf("| %s | %.2f | %s | %.2f | %s |\n", t.transport, m, strings.Join(s, ", "), mc, strings.Join(sc, ", "))
	}
	ngo := open["nginx http-get"]
	r.printf("\n| tollgate transport | p99 at %.0f/s vs nginx http-get | p50 vs nginx |\n|---|---:|---:|\n", o.Rate)
	for _, t := range openTs {
		if t.server != "tollgate" {
			continue
		}
		rs := open[t.String()]
		var q99, q50 []float64
		for i := range rs {
			if i < len(ngo) && ngo[i].Latency.P99 > 0 && ngo[i].Latency.P50 > 0 {
				q99 = append(q99, rs[i].Latency.P99/ngo[i].Latency.P99)
				q50 = append(q50, rs[i].Latency.P50/ngo[i].Latency.P50)
			}
		}
		if len(q99) == 0 {
			continue
		}
		m99, _, _ := median(q99)
		m50, _, _ := median(q50)
		r.printf("| %s | %.2f | %.2f |\n", t.transport, m99, m50)
	}
	r.printf("\n")
}

func writeVerdicts(r *report, x *runResult) {
	var total uint64
	for _, n := range x.Verdicts {
		total += n
	}
	if total == 0 {
		return
	}
	r.printf("## What the workload got (tollgate http-get, closed loop, round 1)\n\n")
	keys := func(m map[string]uint64) []string {
		var k []string
		for s := range m {
			k = append(k, s)
		}
		sort.Slice(k, func(i, j int) bool { return m[k[i]] > m[k[j]] })
		return k
	}
	var v, rs []string
	for _, k := range keys(x.Verdicts) {
		v = append(v, fmt.Sprintf("%s %.1f%%", k, 100*float64(x.Verdicts[k])/float64(total)))
	}
	for _, k := range keys(x.Reasons) {
		rs = append(rs, fmt.Sprintf("%s %.1f%%", k, 100*float64(x.Reasons[k])/float64(total)))
	}
	r.printf("- verdicts: %s\n- reasons: %s\n\n", strings.Join(v, ", "), strings.Join(rs, ", "))
}

// writeRatioLines ends the load report with one line per headline figure,
// "ratio:" for the comparisons with nginx and "check:" for the memory
// limits, so `make bench` output can be read (and grepped) at a glance.
func writeRatioLines(r *report, o *Options, closed map[string][]*runResult, rssStartKB, rssSoakKB int64) {
	ng := closed["nginx http-get"]
	for _, tr := range []string{"http-get", "rpc-netstring"} {
		rs := closed["tollgate "+tr]
		var cpu, thr []float64
		for i := range rs {
			if i < len(ng) && cpuPerReq(ng[i]) > 0 && ng[i].AchievedRate > 0 {
				cpu = append(cpu, cpuPerReq(rs[i])/cpuPerReq(ng[i]))
				thr = append(thr, rs[i].AchievedRate/ng[i].AchievedRate)
			}
		}
		if len(cpu) == 0 {
			continue
		}
		mc, lc, hc := median(cpu)
		mt, lt, ht := median(thr)
		r.printf("ratio: server CPU per request, tollgate %s / nginx: %.2f [%.2f–%.2f] (target ≤ 1.00)\n", tr, mc, lc, hc)
		r.printf("ratio: closed-loop throughput, tollgate %s / nginx: %.2f [%.2f–%.2f]\n", tr, mt, lt, ht)
	}
	check := func(what string, kb int64, maxMB float64) {
		mb := float64(kb) * 1024 / 1e6
		verdict := "met"
		if mb >= maxMB {
			verdict = "NOT MET"
		}
		r.printf("check: VmRSS %s %.0f MB (%s), limit %.0f MB: %s\n", what, mb, mib(kb), maxMB, verdict)
	}
	check("after start", rssStartKB, o.RSSStartMax)
	if o.Soak > 0 {
		check(fmt.Sprintf("after a %s soak at %.0f/s", o.Soak, o.Rate), rssSoakKB, o.RSSSoakMax)
	}
	r.printf("\n")
}
