package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

// The CPU mode (-cpu-rate): instead of the highest call rate, which swings
// with whatever else the machine runs, it measures what each case costs in
// CPU seconds at one fixed rate well under saturation. Per round the cases
// run in a rotating order, each with a fresh Kamailio: a warm-up, then
// -cpu-calls calls at -cpu-rate, during which it reads the CPU time
// (utime+stime, /proc/PID/stat) of every Kamailio process (the process
// group of the one it started) and of tollgate. CPU time does not count the
// time a process waited for a core, so the figure holds on a busy machine
// where a rate does not.

// cpuCase is one case's measurement in one round.
type cpuCase struct {
	kamMS, tgMS float64 // CPU milliseconds per 1,000 calls
	ok          bool    // every call answered 200 and its BYE 200
}

// clkTck is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Kamailio's Debian package builds for).
const clkTck = 100

// groupCPU sums the CPU time of every process whose process group is pgid.
func groupCPU(pgid int) (time.Duration, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var ticks int64
	found := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil || len(f) < 15 {
			continue // gone meanwhile
		}
		if pg, _ := strconv.Atoi(f[4]); pg != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[13], 10, 64)
		s, _ := strconv.ParseInt(f[14], 10, 64)
		ticks += u + s
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no process in group %d", pgid)
	}
	return time.Duration(ticks) * time.Second / clkTck, nil
}

// procStat splits /proc/PID/stat into its fields, numbered from 0 as in
// proc(5) less one (f[0] pid, f[1] comm, f[4] pgrp, f[13] utime, f[14]
// stime); comm may hold spaces.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return append([]string{strings.Fields(s[:i])[0], s[strings.IndexByte(s, '(') : i+1]}, strings.Fields(s[i+1:])...), nil
}

// cpuOptions are the CPU mode's flags.
type cpuOptions struct {
	rate, calls, warmup, rounds int
}

// runCPUCase starts Kamailio for one case, warms it up and measures.
func runCPUCase(c string, defs []string, cfg, dir, scen, trunkIP string, tgPid int, o cpuOptions, round int) (cpuCase, error) {
	k, err := siptest.StartKamailio(fmt.Sprintf("cpu-%s-%d", c, round), cfg, dir, defs...)
	if err != nil {
		return cpuCase{}, err
	}
	defer k.Stop(5 * time.Second)
	run := func(name string, n int) (bool, error) {
		secs := float64(n) / float64(o.rate)
		u := siptest.UAC{
			Name: name, Scenario: filepath.Join(scen, "uac_bench.xml"),
			SrcIP: trunkIP, Target: k.Addr, Calls: []siptest.Call{{Number: "+442079460123", From: "bench"}},
			Count: n, Rate: float64(o.rate), HoldMS: 0, RecvTimeoutMS: 3000, TimeoutS: int(secs) + 15,
			StatFile: true, Dir: dir, Extra: []string{"-max_socket", "2048"},
		}
		r, err := u.Run(context.Background())
		if err != nil {
			return false, err
		}
		succ, failed := statCounts(r.StatCSV)
		return r.ExitCode == 0 && failed == 0 && succ == n, nil
	}
	if _, err := run(fmt.Sprintf("cpu-%s-%d-warmup", c, round), o.warmup); err != nil {
		return cpuCase{}, err
	}
	pg := k.Pid() // siptest starts every process in a group of its own
	k0, err := groupCPU(pg)
	if err != nil {
		return cpuCase{}, err
	}
	t0, err := groupCPU(tgPid)
	if err != nil {
		return cpuCase{}, err
	}
	ok, err := run(fmt.Sprintf("cpu-%s-%d", c, round), o.calls)
	if err != nil {
		return cpuCase{}, err
	}
	k1, err := groupCPU(pg)
	if err != nil {
		return cpuCase{}, err
	}
	t1, _ := groupCPU(tgPid)
	per := 1000 / float64(o.calls)
	return cpuCase{kamMS: float64(k1-k0) / 1e6 * per, tgMS: float64(t1-t0) / 1e6 * per, ok: ok}, nil
}

// medianSpread is the median, min and max of v.
func medianSpread(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

// reportCPU prints the CPU mode's table: per case, Kamailio's and
// tollgate's CPU milliseconds per 1,000 calls (median, min–max over the
// rounds), and each checking case's extra Kamailio CPU over relay-only,
// computed per round and then the median taken.
func reportCPU(cases []string, res map[string][]cpuCase, o cpuOptions, children int) {
	fmt.Printf("\nCPU per 1,000 calls at %d calls/s (%d calls a round, %d rounds, CHILDREN=%d; a call is INVITE, ACK, BYE; median [min–max]):\n",
		o.rate, o.calls, o.rounds, children)
	fmt.Printf("  %-6s %-28s %-28s %s\n", "case", "Kamailio CPU ms", "tollgate CPU ms", "rounds all calls ok")
	for _, c := range cases {
		var kam, tg []float64
		ok := 0
		for _, r := range res[c] {
			kam, tg = append(kam, r.kamMS), append(tg, r.tgMS)
			if r.ok {
				ok++
			}
		}
		km, kl, kh := medianSpread(kam)
		tm, tl, th := medianSpread(tg)
		fmt.Printf("  %-6s %-28s %-28s %d/%d\n", c, fmt.Sprintf("%.0f [%.0f–%.0f]", km, kl, kh), fmt.Sprintf("%.0f [%.0f–%.0f]", tm, tl, th), ok, len(res[c]))
	}
	relay := res["relay"]
	for _, c := range cases {
		if c == "relay" || len(relay) == 0 {
			continue
		}
		var extra []float64
		for i, r := range res[c] {
			if i < len(relay) && relay[i].kamMS > 0 {
				extra = append(extra, (r.kamMS-relay[i].kamMS)/relay[i].kamMS)
			}
		}
		m, lo, hi := medianSpread(extra)
		fmt.Printf("ratio: %s check adds %+.0f%% [%+.0f%%…%+.0f%%] to Kamailio's CPU per call (per-round ratios over relay-only)\n", c, 100*m, 100*lo, 100*hi)
	}
}
