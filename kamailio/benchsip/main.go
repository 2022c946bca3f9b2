// Command benchsip drives INVITEs through Kamailio running the shipped
// kamailio/kamailio.cfg with sipp at a rising call rate and reports, for each
// case, the highest rate at which no call failed:
//
//   - relay: Kamailio relaying with no check (-A RELAY_ONLY)
//   - http:  Kamailio asking tollgate over http_client (the default)
//   - rpc:   Kamailio asking tollgate over JSON-RPC (-A WITH_JSONRPC)
//
// Every case identifies the caller by trunk address (-A WITH_IPAUTH), so pike
// is out of the way, and the account has no caps. A call succeeds only if it
// is answered 200 by the sipp upstream and its BYE is answered through the
// proxy (kamailio/sipp/uac_bench.xml). Everything runs on 127.0.0.0/8; every
// step is bounded in calls and time, and every process is stopped by pid.
//
//	go run ./kamailio/benchsip -tollgate bin/tollgate   (what `make bench-sip` runs)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

func main() {
	tgBin := flag.String("tollgate", "bin/tollgate", "tollgate binary (built from ./cmd/tollgate if missing)")
	ratesFlag := flag.String("rates", "100,200,300,400,500,600,800,1000,1200,1400,1600,1800,2000,2250,2500,2750,3000,3500,4000", "call rates (calls/s) to try, rising")
	stepDur := flag.Duration("step", 5*time.Second, "how long each rate is held")
	children := flag.Int("children", 8, "Kamailio UDP worker processes (CHILDREN)")
	cases := flag.String("cases", "relay,http,rpc", "cases to run")
	retries := flag.Int("retries", 1, "re-runs of a failed step before a case stops (noise on a shared machine)")
	keep := flag.Bool("keep", false, "keep the work directory with every log")
	shm := flag.Int("shm", 512, "Kamailio shared memory, MB")
	policy := flag.String("policy", benchPolicy, "the bench account's policy (JSON, as PUT /v1/accounts/bench): give it max_channels/max_cps to measure the caps' dialog profiles and CPS pipes too")
	var co cpuOptions
	flag.IntVar(&co.rate, "cpu-rate", 0, "CPU mode: measure CPU seconds per 1,000 calls at this fixed call rate instead of the highest rate (see cpu.go)")
	flag.IntVar(&co.calls, "cpu-calls", 3000, "CPU mode: calls measured per case and round")
	flag.IntVar(&co.warmup, "cpu-warmup", 200, "CPU mode: unmeasured calls before each measurement")
	flag.IntVar(&co.rounds, "cpu-rounds", 5, "CPU mode: rounds (cases interleaved, order rotating)")
	flag.BoolVar(&co.callgrind, "callgrind", false, "CPU mode: run Kamailio under valgrind's callgrind and report its instructions (thousands per call, user space) instead of CPU ms per 1,000 calls; use a low -cpu-rate (5)")
	flag.Parse()
	siptest.ShmMB, siptest.PkgMB = *shm, 16

	if err := siptest.CheckTools(); err != nil {
		fatal(err)
	}
	root, err := siptest.RepoRoot()
	if err != nil {
		fatal(err)
	}
	var rates []int
	for _, f := range strings.Split(*ratesFlag, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			fatal(fmt.Errorf("bad rate %q", f))
		}
		rates = append(rates, r)
	}
	wd, err := newWorkDir(*keep)
	if err != nil {
		fatal(err)
	}
	defer wd.close(os.Stdout)
	dir := wd.dir

	bin := *tgBin
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	if _, err := os.Stat(bin); err != nil {
		if bin, err = siptest.BuildTollgate(root, dir); err != nil {
			fatal(err)
		}
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		stops = nil
	}
	defer stopAll()
	fail := func(err error) { stopAll(); fatal(err) }

	tg, err := siptest.StartTollgate(bin, dir)
	if err != nil {
		fail(err)
	}
	stops = append(stops, func() { tg.Stop(5 * time.Second) })
	if err := tg.PutAccount("bench", *policy); err != nil {
		fail(err)
	}
	scen := filepath.Join(root, "kamailio", "sipp")
	uas, err := siptest.StartUAS("bench-upstream", filepath.Join(scen, "uas.xml"), "127.0.0.1", dir, false)
	if err != nil {
		fail(err)
	}
	stops = append(stops, func() { uas.Stop(3 * time.Second) })
	const trunkIP = "127.0.0.2"
	addrFile := filepath.Join(dir, "address.list")
	if err := os.WriteFile(addrFile, []byte("1 "+trunkIP+" 32 0 bench\n"), 0o644); err != nil {
		fail(err)
	}
	cfg := filepath.Join(root, "kamailio", "kamailio.cfg")

	type result struct {
		name  string
		best  int
		steps []string
	}
	// a case is relay, http or rpc with the shipped config, or
	// NAME=KIND:CFG, the defines of KIND with another config file (a
	// variant of the shipped one, to see what a part of it costs), or
	// NAME=KIND:CFG:OPTS with Kamailio command-line options (blank-
	// separated, e.g. "-x tlsf"); an empty CFG is the shipped config
	caseCfg := func(c string) (name, kind, file string, opts []string) {
		name, spec, found := strings.Cut(c, "=")
		if !found {
			return c, c, cfg, nil
		}
		kind, rest, _ := strings.Cut(spec, ":")
		file, o, _ := strings.Cut(rest, ":")
		if file == "" {
			file = cfg
		}
		return name, kind, file, strings.Fields(o)
	}
	caseDefs := func(c string) []string {
		var defs []string
		_, kind, _, _ := caseCfg(c)
		switch kind {
		case "relay":
			defs = []string{"RELAY_ONLY"}
		case "http":
		case "rpc":
			defs = []string{"WITH_JSONRPC"}
		default:
			fail(fmt.Errorf("unknown case %q", c))
		}
		if co.callgrind {
			// everything is ~50× slower under valgrind
			defs = append(defs, "TOLLGATE_RPC_TIMEOUT_MS=5000", "TOLLGATE_TIMEOUT=5")
		}
		return append(defs, "WITH_IPAUTH", "CHILDREN="+strconv.Itoa(*children), "DEBUG_LEVEL=1",
			fmt.Sprintf(`TOLLGATE_URL="%s"`, tg.QueryURL()), fmt.Sprintf(`TOLLGATE_RPC="%s"`, tg.RPCAddr),
			uas.Define("UPSTREAM"), fmt.Sprintf(`ADDRESS_FILE="%s"`, addrFile))
	}
	if co.rate > 0 {
		if co.callgrind {
			co.cgDir = filepath.Join(dir, "callgrind")
			if err := os.MkdirAll(co.cgDir, 0o755); err != nil {
				fail(err)
			}
			siptest.KamailioWrap = []string{"valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=" + filepath.Join(co.cgDir, "cg.%p")}
			siptest.KamailioStartWait = 2 * time.Minute
		}
		cs := strings.Split(*cases, ",")
		var names []string
		res := map[string][]cpuCase{}
		for _, c := range cs {
			name, _, _, _ := caseCfg(c)
			names = append(names, name)
		}
		for round := 0; round < co.rounds; round++ {
			for i := range cs {
				c := cs[(i+round)%len(cs)]
				name, _, file, opts := caseCfg(c)
				r, err := runCPUCase(name, caseDefs(c), file, opts, dir, scen, trunkIP, tg.Pid(), co, round)
				if err != nil {
					fail(err)
				}
				fmt.Printf("  round %d %-6s Kamailio %.0f ms (workers %.0f, events %.0f, rpc-io %.0f, other %.0f; kernel %.0f), tollgate %.0f ms CPU per 1,000 calls, all calls ok: %v\n",
					round+1, name, r.kamMS, r.roleMS["workers"], r.roleMS["events"], r.roleMS["rpc-io"], r.roleMS["other"], r.kamSysMS, r.tgMS, r.ok)
				res[name] = append(res[name], r)
				time.Sleep(time.Second) // the upstream's transactions drain
			}
		}
		reportCPU(names, res, co, *children)
		return
	}
	var results []result
	for _, cs := range strings.Split(*cases, ",") {
		defs := caseDefs(cs)
		c, _, file, opts := caseCfg(cs)
		k, err := siptest.StartKamailioArgs("bench-"+c, file, dir, opts, defs...)
		if err != nil {
			fail(err)
		}
		res := result{name: c}
		fmt.Printf("== %s (kamailio %s)\n", c, strings.Join(defs[:len(defs)-4], " "))
		for _, rate := range rates {
			ok := false
			for try := 0; try <= *retries && !ok; try++ {
				secs := stepDur.Seconds()
				n := int(float64(rate) * secs)
				u := siptest.UAC{
					Name: fmt.Sprintf("bench-%s-%d-%d", c, rate, try), Scenario: filepath.Join(scen, "uac_bench.xml"),
					SrcIP: trunkIP, Target: k.Addr, Calls: []siptest.Call{{Number: "+442079460123", From: "bench"}},
					Count: n, Rate: float64(rate), HoldMS: 0, RecvTimeoutMS: 3000, TimeoutS: int(secs) + 15,
					StatFile: true, Dir: dir, Extra: []string{"-max_socket", "2048"},
				}
				start := time.Now()
				r, err := u.Run(context.Background())
				el := time.Since(start)
				if err != nil {
					fail(err)
				}
				succ, failed := statCounts(r.StatCSV)
				ok = r.ExitCode == 0 && failed == 0 && succ == n
				line := fmt.Sprintf("  %5d calls/s: %d calls, %d ok, %d failed, %.1fs", rate, n, succ, failed, el.Seconds())
				if !ok && try < *retries {
					line += " (retrying)"
				}
				fmt.Println(line)
				res.steps = append(res.steps, line)
			}
			if !ok {
				break
			}
			res.best = rate
		}
		k.Stop(5 * time.Second)
		if n := strings.Count(k.Log(), " ERROR: "); n > 0 {
			fmt.Printf("  kamailio logged %d ERROR lines (see %s)\n", n, wd.point(k.LogPath))
		}
		results = append(results, res)
		// let the upstream's transactions and dialogs drain
		time.Sleep(2 * time.Second)
	}

	fmt.Printf("\nhighest call rate with no failed call (%s per step, CHILDREN=%d, %d cores, sipp UAC+UAS, Kamailio and tollgate on one machine):\n",
		*stepDur, *children, runtime.NumCPU())
	var relay int
	for _, r := range results {
		if r.name == "relay" {
			relay = r.best
		}
	}
	for _, r := range results {
		ratio := ""
		if relay > 0 && r.name != "relay" {
			ratio = fmt.Sprintf("  (%.0f%% of relay-only)", 100*float64(r.best)/float64(relay))
		}
		fmt.Printf("  %-6s %5d calls/s%s\n", r.name, r.best, ratio)
	}
	if relay > 0 && relay == rates[len(rates)-1] {
		fmt.Println("  note: relay-only passed the highest rate tried; raise -rates for its real ceiling")
	}
}

// benchPolicy is the bench account's policy by default: every test number
// allowed, no caps (so no dialog profile and no CPS pipe).
const benchPolicy = `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block"}`

// statCounts reads the last line of a sipp -trace_stat CSV: the cumulative
// SuccessfulCall(C) and FailedCall(C) columns.
func statCounts(path string) (succ, failed int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, -1
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, -1
	}
	head := strings.Split(lines[0], ";")
	last := strings.Split(lines[len(lines)-1], ";")
	for i, h := range head {
		if i >= len(last) {
			break
		}
		v, _ := strconv.Atoi(strings.TrimSpace(last[i]))
		switch strings.TrimSpace(h) {
		case "SuccessfulCall(C)":
			succ = v
		case "FailedCall(C)":
			failed = v
		}
	}
	return succ, failed
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-sip:", err)
	os.Exit(1)
}

// workDir is the benchmark's scratch directory. It is removed at the end
// unless -keep was given or a printed line pointed into it (point): a report
// must never send the reader to a log that is already gone.
type workDir struct {
	dir  string
	keep bool
}

func newWorkDir(keep bool) (*workDir, error) {
	dir, err := os.MkdirTemp("", "tollgate-bench-sip-")
	if err != nil {
		return nil, err
	}
	if keep {
		fmt.Println("work directory:", dir)
	}
	return &workDir{dir: dir, keep: keep}, nil
}

// point marks path, a file in the directory, as shown to the reader, so the
// directory is kept; it returns path.
func (w *workDir) point(path string) string {
	w.keep = true
	return path
}

// close removes the directory, or says where it was kept.
func (w *workDir) close(out io.Writer) {
	if w.keep {
		fmt.Fprintf(out, "logs kept in %s (remove it when done)\n", w.dir)
		return
	}
	os.RemoveAll(w.dir)
}
