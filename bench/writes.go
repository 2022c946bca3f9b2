package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/policy"
)

// writerResult is what the admin writer loop did during one run.
type writerResult struct {
	sent, failed int
	lat          []time.Duration // of the successful PUTs
	wall         time.Duration
	behind       int // PUTs that went out more than one interval late
	firstErr     string
}

func (w *writerResult) rate() float64 { return float64(w.sent-w.failed) / w.wall.Seconds() }

func (w *writerResult) pct(p float64) time.Duration {
	if len(w.lat) == 0 {
		return 0
	}
	s := slices.Clone(w.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// writeAccounts PUTs one account at a time on the admin API at rate per
// second (an open-loop schedule, one request in flight: the service
// serialises writes anyway) until stop is closed. Each PUT replaces a
// generated account with a policy that differs from the one before it.
func writeAccounts(adminAddr, token string, accounts int, rate float64, seed uint64, stop <-chan struct{}) *writerResult {
	r := rand.New(rand.NewPCG(seed, 0x77726974))
	client := &http.Client{Timeout: 10 * time.Second}
	res := &writerResult{}
	homes := []string{"US", "GB", "DE", "FR", "NL"}
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	for i := 0; ; i++ {
		due := t0.Add(time.Duration(i) * interval)
		select {
		case <-stop:
			res.wall = time.Since(t0)
			return res
		case <-time.After(time.Until(due)):
		}
		if time.Since(due) > interval {
			res.behind++
		}
		home := homes[r.IntN(len(homes))]
		a := policy.Account{Policy: policy.Policy{HomeCountry: &home, MaxChannels: ptrInt(10 + i%300), MaxCPS: ptrInt(1 + i%20),
			Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{home, "continent:EU", "nanp"}}}}
		body, _ := json.Marshal(a)
		name := fmt.Sprintf("acct-%06d", 1+r.IntN(accounts))
		req, _ := http.NewRequest("PUT", "http://"+adminAddr+"/v1/accounts/"+name, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		res.sent++
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("PUT %s: %s: %s", name, resp.Status, b)
			}
		}
		if err != nil {
			res.failed++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			continue
		}
		res.lat = append(res.lat, time.Since(start))
	}
}

func ptrInt(n int) *int { return &n }

// writeRun is one open-loop check run, with or without the writer.
type writeRun struct {
	writes bool
	check  *runResult
	writer *writerResult
	rssKB  int64 // VmRSS right after the run
}

// runWrites is -writes: with the large policy loaded, open-loop checks at
// -check-rate with and without a writer PUTting accounts at -write-rate on
// the admin API, interleaved over -write-rounds rounds, VmRSS after every
// run. It answers "does a write stall the query path, and does memory
// stay flat under writes".
func runWrites(r *report, o *Options) (err error) {
	work := o.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "tollgate-bench-writes-"); err != nil {
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
	logf("writes: generating %d accounts, %d high-risk prefixes, %d numbers in %s", o.Gen.Accounts, o.Gen.Prefixes, o.Gen.Numbers, work)
	gen, err := Generate(work, o.Gen)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	dataDir := filepath.Join(work, "data")
	os.RemoveAll(dataDir)
	if imp, err := exec.Command(o.Tollgate, "import", "-data-dir", dataDir, "-who", "bench", gen.AccountsFile).CombinedOutput(); err != nil {
		return fmt.Errorf("tollgate import: %v\n%s", err, imp)
	}
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
	srv := serverProc{pid: tg.proc.Pid()}
	t := target{server: "tollgate", transport: "http-get", addr: tg.queryAddr, rpcAddr: tg.rpcAddr}
	co := *o
	co.Rate, co.OpenDur = o.CheckRate, o.WriteDur

	var runs []*writeRun
	for round := 0; round < o.WriteRounds; round++ {
		for i := 0; i < 2; i++ {
			wr := &writeRun{writes: (i+round)%2 == 1}
			waited, before := waitQuiet(o, srv.pid)
			logf("round %d/%d: %.0f checks/s, writes %v (other load %.2f cores, waited %s)", round+1, o.WriteRounds, o.CheckRate, wr.writes, before, waited.Round(100*time.Millisecond))
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if wr.writes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wr.writer = writeAccounts(tg.adminAddr, tg.token, gen.Accounts, o.WriteRate, o.Gen.Seed+uint64(round), stop)
				}()
			}
			res, err := runLoadtest(&co, t, "open", srv, gen.NumbersFile)
			close(stop)
			wg.Wait()
			if err != nil {
				return err
			}
			wr.check = res
			wr.rssKB, _, _ = ProcStatus(srv.pid)
			logf("  p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, errors %d, server %.2f CPU, RSS %s", res.Latency.P50, res.Latency.P99, res.Latency.P999, res.Errors, res.serverCPU, mib(wr.rssKB))
			if w := wr.writer; w != nil {
				logf("  writes: %d sent, %d failed, %.1f/s, p50 %s, p99 %s, max %s %s", w.sent, w.failed, w.rate(), w.pct(0.5), w.pct(0.99), w.pct(1), w.firstErr)
			}
			runs = append(runs, wr)
		}
	}
	rssEnd, hwmEnd, _ := ProcStatus(srv.pid)
	writeWritesReport(r, o, tg, runs, rssEnd, hwmEnd)
	return nil
}

func writeWritesReport(r *report, o *Options, tg *tollgateInfo, runs []*writeRun, rssEnd, hwmEnd int64) {
	r.printf("## Checks under admin writes\n\n")
	r.printf("`%s` (pinned to CPU %s, GOMAXPROCS=%d) with %d accounts and %d high-risk prefixes; `%s` http-get open loop at %.0f checks/s for %s (+%s warm-up) on CPU %s, with and without a writer PUTting one account at a time on the admin API at %.0f/s (open-loop schedule, one PUT in flight, from the driver's process), %d rounds, the two runs of a round interleaved.\n\n",
		o.Tollgate, orAll(o.ServerCPUs), cpuCount(o.ServerCPUs), tg.accounts, tg.hrEntries, o.Loadtest, o.CheckRate, o.WriteDur, o.Warmup, orAll(o.ClientCPUs), o.WriteRate, o.WriteRounds)
	r.printf("| round | writes | checks/s | p50 µs | p99 µs | p99.9 µs | max µs | check errors | server CPU | others' CPU | PUTs/s (failed) | PUT p50 / p99 / max ms | PUTs late | VmRSS after |\n")
	r.printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	var ratios []float64
	var with, without []*runResult
	for i, x := range runs {
		c := x.check
		w := "-"
		rate, lat, late := "-", "-", "-"
		if x.writes {
			w = "yes"
			rate = fmt.Sprintf("%.1f (%d)", x.writer.rate(), x.writer.failed)
			lat = fmt.Sprintf("%.1f / %.1f / %.1f", ms(x.writer.pct(0.5)), ms(x.writer.pct(0.99)), ms(x.writer.pct(1)))
			late = fmt.Sprint(x.writer.behind)
			with = append(with, c)
		} else {
			without = append(without, c)
		}
		r.printf("| %d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %.2f | %.2f | %s | %s | %s | %s |\n", i/2+1, w, c.AchievedRate, c.Latency.P50, c.Latency.P99,
			c.Latency.P999, c.Latency.Max, c.Errors, c.serverCPU, c.otherCPU, rate, lat, late, mib(x.rssKB))
		if i%2 == 1 {
			a, b := runs[i-1], x
			if a.writes {
				a, b = b, a
			}
			ratios = append(ratios, b.check.Latency.P99/a.check.Latency.P99)
		}
	}
	slices.Sort(ratios)
	var medRatio float64
	if len(ratios) > 0 {
		medRatio, _, _ = median(ratios)
	}
	var rs []string
	for _, x := range ratios {
		rs = append(rs, fmt.Sprintf("%.2f", x))
	}
	r.printf("\nMedians: p99 %.0f µs without writes, %.0f µs with; p99 with writes / without, per round: %s (median %.2f). VmRSS after start %s, at the end %s (VmHWM %s).\n\n",
		medianOf(without, func(x *runResult) float64 { return x.Latency.P99 }), medianOf(with, func(x *runResult) float64 { return x.Latency.P99 }),
		strings.Join(rs, ", "), medRatio, mib(tg.rssStartKB), mib(rssEnd), mib(hwmEnd))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
