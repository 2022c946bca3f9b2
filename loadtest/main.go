// Command tollgate-loadtest measures the tollgate sidecar over the wire: it
// sends "may this account call this number?" queries over HTTP GET, HTTP POST,
// JSON-RPC over HTTP, JSON-RPC over netstring TCP or JSON-RPC over plain TCP,
// either at a fixed rate on a timeline (open loop, latency counted from each
// request's scheduled time, so a stall is charged to every request it
// delayed) or back to back on N connections (closed loop, for the maximum
// throughput). See docs/loadtest.md.
//
// Run it as `go run ./loadtest` or build it with `make` as
// bin/tollgate-loadtest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options holds the parsed command line.
type options struct {
	transport    string
	addr         string
	rpcAddr      string
	mode         string
	rate         float64
	conns        int
	duration     time.Duration
	warmup       time.Duration
	requests     uint64
	timeout      time.Duration
	wl           workloadConfig
	json         bool
	quiet        bool
	minRateRatio float64
	maxErrors    float64
	sloP99       time.Duration
	maxBehind    float64
	allowRemote  bool
	printN       int
}

// Exit statuses.
const (
	exitPass   = 0 // every threshold met
	exitFail   = 1 // a threshold missed (rate, errors) or nothing answered
	exitConfig = 2 // bad flags, refused target, unreadable workload
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the tool and returns its exit status.
func realMain(args []string, stdout, stderr io.Writer) int {
	opt, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitPass
		}
		fmt.Fprintln(stderr, "tollgate-loadtest:", err)
		return exitConfig
	}
	wl, err := buildWorkload(opt.wl)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate-loadtest: workload:", err)
		return exitConfig
	}
	if opt.printN > 0 {
		printWorkload(stdout, wl, opt.printN)
		return exitPass
	}
	target := opt.rpcAddr
	if usesHTTP(opt.transport) {
		target = opt.addr
	}
	if err := checkTarget(target, opt.allowRemote); err != nil {
		fmt.Fprintln(stderr, "tollgate-loadtest:", err)
		return exitConfig
	}
	tr, err := newTransport(opt.transport, target, opt.conns, opt.timeout)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate-loadtest:", err)
		return exitConfig
	}
	defer tr.close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := runConfig{
		mode:     opt.mode,
		rate:     opt.rate,
		conns:    opt.conns,
		duration: opt.duration,
		warmup:   opt.warmup,
		requests: opt.requests,
		timeout:  opt.timeout,
		runID:    fmt.Sprintf("lt%08x", rand.Uint32()),
	}
	if !opt.quiet {
		cfg.progress = stderr
		if opt.mode == modeOpen {
			fmt.Fprintf(stderr, "tollgate-loadtest: %s → %s, open loop at %g req/s, %d conns, %s (+%s warm-up)\n",
				opt.transport, target, opt.rate, opt.conns, opt.duration, opt.warmup)
		} else {
			fmt.Fprintf(stderr, "tollgate-loadtest: %s → %s, closed loop, %d conns, %s (+%s warm-up)\n",
				opt.transport, target, opt.conns, opt.duration, opt.warmup)
		}
	}
	res := run(ctx, cfg, tr, wl)
	sum := summarize(res, opt.transport, target, wl, thresholds{minRateRatio: opt.minRateRatio, maxErrors: opt.maxErrors, sloP99: opt.sloP99, maxBehind: opt.maxBehind})
	if opt.json {
		if err := sum.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "tollgate-loadtest:", err)
			return exitConfig
		}
	} else {
		sum.writeText(stdout)
	}
	if !sum.Pass {
		return exitFail
	}
	return exitPass
}

// parseFlags parses and validates the command line.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("tollgate-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate-loadtest [flags]   (or: go run ./loadtest [flags])\n\n")
		fmt.Fprintf(stderr, "Loads a tollgate sidecar on loopback and reports throughput, errors, verdicts and latency.\n")
		fmt.Fprintf(stderr, "Exit status: 0 pass, 1 a threshold was missed, 2 bad flags or refused target.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.transport, "transport", transportHTTPGet, "wire target: "+strings.Join(transportNames, ", "))
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "query API (HTTP) address, for http-get, http-post and rpc-http")
	fs.StringVar(&o.rpcAddr, "rpc-addr", "127.0.0.1:8082", "JSON-RPC TCP address, for rpc-netstring and rpc-tcp")
	fs.StringVar(&o.mode, "mode", modeOpen, "open (fixed -rate on a timeline) or closed (-conns requests back to back)")
	fs.Float64Var(&o.rate, "rate", 1000, "open loop: requests per second")
	fs.IntVar(&o.conns, "conns", 0, "workers/connections, each with one request in flight (0: open loop max(64, rate×5ms), closed loop 64)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured period (after the warm-up)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before the measured period, not counted")
	fs.Uint64Var(&o.requests, "requests", 0, "stop after this many measured requests (0: no cap; -duration still applies)")
	fs.DurationVar(&o.timeout, "timeout", time.Second, "per-request timeout (connect + send + answer)")
	fs.StringVar(&o.wl.numbersFile, "numbers", "", "file of numbers to call, one per line, optional account as second column (comma or whitespace); replaces -mix")
	fs.StringVar(&o.wl.mix, "mix", DefaultMix, "generated workload: class=weight,… with classes domestic, intl, barred, highrisk, invalid, random, emergency")
	fs.StringVar(&o.wl.barred, "barred", DefaultBarred, "country calling codes used by the barred class, comma-separated")
	fs.IntVar(&o.wl.accounts, "accounts", 1000, "accounts drawn uniformly from <prefix>000001…")
	fs.StringVar(&o.wl.accountPrefix, "account-prefix", "acct-", "account name prefix")
	fs.IntVar(&o.wl.subaccounts, "subaccounts", 0, "if > 0, add subaccount sub-1…sub-N to each request")
	fs.IntVar(&o.wl.pool, "pool", 20000, "generated requests in the pool the load cycles through (the mix shares are exact over the pool)")
	fs.Uint64Var(&o.wl.seed, "seed", 1, "seed of the generated workload")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.Float64Var(&o.minRateRatio, "min-rate-ratio", 0.95, "open loop: fail (exit 1) when achieved/target rate is below this")
	fs.Float64Var(&o.maxErrors, "max-errors", 0.001, "fail (exit 1) when the fraction of failed requests exceeds this")
	fs.DurationVar(&o.sloP99, "slo-p99", time.Millisecond, "the latency objective: fail (exit 1) when the measured p99 exceeds it (0: not checked)")
	fs.Float64Var(&o.maxBehind, "max-behind-schedule", 0.01, "open loop: fail (exit 1) when more than this fraction of requests went out behind schedule")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a target that is not loopback (127.0.0.0/8, ::1, localhost)")
	fs.IntVar(&o.printN, "print-workload", 0, "print the first N requests of the workload and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case !validTransport(o.transport):
		return nil, fmt.Errorf("-transport %q: want one of %s", o.transport, strings.Join(transportNames, ", "))
	case o.mode != modeOpen && o.mode != modeClosed:
		return nil, fmt.Errorf("-mode %q: want open or closed", o.mode)
	case o.mode == modeOpen && !(o.rate > 0 && o.rate <= 10_000_000):
		return nil, fmt.Errorf("-rate %g: want 0 < rate ≤ 10000000", o.rate)
	case o.conns < 0 || o.conns > 100_000:
		return nil, fmt.Errorf("-conns %d: want 0 (auto) to 100000", o.conns)
	case o.duration <= 0:
		return nil, fmt.Errorf("-duration must be positive")
	case o.warmup < 0:
		return nil, fmt.Errorf("-warmup must not be negative")
	case o.timeout <= 0:
		return nil, fmt.Errorf("-timeout must be positive")
	case !(o.minRateRatio >= 0 && o.minRateRatio <= 1):
		return nil, fmt.Errorf("-min-rate-ratio %g: want 0…1", o.minRateRatio)
	case !(o.maxErrors >= 0 && o.maxErrors <= 1):
		return nil, fmt.Errorf("-max-errors %g: want 0…1", o.maxErrors)
	case o.sloP99 < 0:
		return nil, fmt.Errorf("-slo-p99 %v: want 0 (not checked) or more", o.sloP99)
	case !(o.maxBehind >= 0 && o.maxBehind <= 1):
		return nil, fmt.Errorf("-max-behind-schedule %g: want 0…1", o.maxBehind)
	case o.printN < 0:
		return nil, fmt.Errorf("-print-workload must not be negative")
	}
	if o.conns == 0 {
		o.conns = 64
		if o.mode == modeOpen {
			// Enough workers that the slots due during one late timer
			// wake-up (≈1ms) plus a few service times find an idle one.
			o.conns = min(max(64, int(math.Ceil(o.rate*0.005))), 10_000)
		}
	}
	return o, nil
}

func validTransport(name string) bool {
	for _, n := range transportNames {
		if n == name {
			return true
		}
	}
	return false
}

// checkTarget refuses targets outside loopback unless allowRemote: the tool
// is for measuring a local sidecar, not for loading someone else's server.
func checkTarget(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("target %q: %v", addr, err)
	}
	if port == "" {
		return fmt.Errorf("target %q: missing port", addr)
	}
	if allowRemote {
		return nil
	}
	if isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("target %q is not loopback (127.0.0.0/8, ::1, localhost); pass -allow-remote to load it anyway", addr)
}

// isLoopbackHost reports whether host is a loopback IP literal or
// "localhost" that resolves only to loopback addresses.
func isLoopbackHost(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if !strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, "localhost")
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}

// printWorkload prints the first n requests of the pool.
func printWorkload(w io.Writer, wl *workload, n int) {
	fmt.Fprintf(w, "# %s; %d requests in the pool\n", wl.source, len(wl.calls))
	fmt.Fprintf(w, "# class\tto\taccount\tsubaccount\tfrom\tsrc_ip\n")
	for i := 0; i < n && i < len(wl.calls); i++ {
		c := &wl.calls[i]
		sub := c.subaccount
		if sub == "" {
			sub = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.class, c.to, c.account, sub, c.from, c.srcIP)
	}
}
