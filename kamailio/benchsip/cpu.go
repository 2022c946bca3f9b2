package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	kamMS, tgMS float64            // CPU milliseconds per 1,000 calls
	kamSysMS    float64            // of kamMS, in the kernel (stime)
	roleMS      map[string]float64 // kamMS split by process role (roleOf)
	ok          bool               // every call answered 200 and its BYE 200
}

// roleOf names the part of Kamailio a process is, from its description in
// `kamcmd core.psx`: the SIP workers, the call-event timer (rtimer), the
// janssonrpcc I/O process, and everything else (main, tm and dialog timers,
// ctl).
func roleOf(dsc string) string {
	switch {
	case strings.HasPrefix(dsc, "udp receiver"), strings.HasPrefix(dsc, "tcp receiver"):
		return "workers"
	case strings.HasPrefix(dsc, "RTIMER"):
		return "events"
	case strings.HasPrefix(dsc, "jsonrpc io"):
		return "rpc-io"
	}
	return "other"
}

// roles lists the roles in report order.
var roles = []string{"workers", "events", "rpc-io", "other"}

// kamRoles asks the Kamailio whose runtime directory is runDir for its
// processes (kamcmd core.psx) and returns pid -> role.
func kamRoles(runDir string) (map[int]string, error) {
	out, err := exec.Command("kamcmd", "-s", filepath.Join(runDir, "kamailio_ctl"), "core.psx").Output()
	if err != nil {
		return nil, fmt.Errorf("kamcmd core.psx: %v", err)
	}
	return parsePsx(string(out)), nil
}

// parsePsx reads kamcmd's core.psx listing ("PID: n" then "DSC: text" per
// process) into pid -> role.
func parsePsx(out string) map[int]string {
	m := map[int]string{}
	pid := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "PID:"); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		} else if v, ok := strings.CutPrefix(line, "DSC:"); ok && pid > 0 {
			m[pid] = roleOf(strings.TrimSpace(v))
			pid = 0
		}
	}
	return m
}

// clkTck is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Kamailio's Debian package builds for).
const clkTck = 100

// groupCPU sums the CPU time of every process whose process group is pgid.
func groupCPU(pgid int) (time.Duration, error) {
	per, err := groupCPUByPid(pgid)
	var d time.Duration
	for _, v := range per {
		d += v
	}
	return d, err
}

// groupCPUByPid is the CPU time of every process whose process group is
// pgid, by pid.
func groupCPUByPid(pgid int) (map[int]time.Duration, error) {
	per, _, err := groupCPUSplit(pgid)
	return per, err
}

// groupCPUSplit is groupCPUByPid and, summed over the group, the part of
// it spent in the kernel (stime).
func groupCPUSplit(pgid int) (map[int]time.Duration, time.Duration, error) {
	var sys time.Duration
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0, err
	}
	per := map[int]time.Duration{}
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
		per[pid] = time.Duration(u+s) * time.Second / clkTck
		sys += time.Duration(s) * time.Second / clkTck
	}
	if len(per) == 0 {
		return nil, 0, fmt.Errorf("no process in group %d", pgid)
	}
	return per, sys, nil
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
	// callgrind: Kamailio runs under valgrind's callgrind, and a case's
	// figures are its instructions (thousands per call, user space only:
	// no kernel time, no waiting) from callgrind dumps of the measured
	// calls alone, written to cgDir. Unlike CPU time they hardly move with
	// the machine's load.
	callgrind bool
	cgDir     string
}

// callgrindAll runs callgrind_control with op (-z: zero, -d: dump) on
// each pid, one by one (with no pid it would reach every callgrind run on
// the machine, other people's included).
func callgrindAll(op string, pids map[int]time.Duration) error {
	for pid := range pids {
		out, err := exec.Command("callgrind_control", op, strconv.Itoa(pid)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("callgrind_control %s %d: %v: %s", op, pid, err, out)
		}
	}
	return nil
}

// callgrindIr reads the instruction count of pid's first dump in dir.
func callgrindIr(dir string, pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("cg.%d.1", pid)))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "summary: "); ok {
			return strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
		if v, ok := strings.CutPrefix(l, "totals: "); ok {
			return strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
	}
	return 0, fmt.Errorf("no summary in cg.%d.1", pid)
}

// runCPUCase starts Kamailio for one case, warms it up and measures.
func runCPUCase(c string, defs []string, cfg string, opts []string, dir, scen, trunkIP string, tgPid int, o cpuOptions, round int) (cpuCase, error) {
	name := fmt.Sprintf("cpu-%s-%d", c, round)
	k, err := siptest.StartKamailioArgs(name, cfg, dir, opts, defs...)
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
	roleMap, err := kamRoles(filepath.Join(dir, "run-"+name))
	if err != nil {
		return cpuCase{}, err
	}
	k0, sys0, err := groupCPUSplit(pg)
	if err != nil {
		return cpuCase{}, err
	}
	if o.callgrind {
		if err := callgrindAll("-z", k0); err != nil {
			return cpuCase{}, err
		}
	}
	t0, err := groupCPU(tgPid)
	if err != nil {
		return cpuCase{}, err
	}
	ok, err := run(fmt.Sprintf("cpu-%s-%d", c, round), o.calls)
	if err != nil {
		return cpuCase{}, err
	}
	k1, sys1, err := groupCPUSplit(pg)
	if err != nil {
		return cpuCase{}, err
	}
	if o.callgrind {
		if err := callgrindAll("-d", k0); err != nil {
			return cpuCase{}, err
		}
		for pid := range k0 {
			ir, err := callgrindIr(o.cgDir, pid)
			if err != nil {
				return cpuCase{}, err
			}
			// one "nanosecond" per instruction: the report's ms per
			// 1,000 calls then reads as thousands of instructions per call
			k1[pid] = k0[pid] + time.Duration(ir)
		}
	}
	t1, _ := groupCPU(tgPid)
	per := 1000 / float64(o.calls)
	r := cpuCase{tgMS: float64(t1-t0) / 1e6 * per, kamSysMS: float64(sys1-sys0) / 1e6 * per, roleMS: map[string]float64{}, ok: ok}
	for pid, c1 := range k1 {
		ms := float64(c1-k0[pid]) / 1e6 * per // a process that started meanwhile counts from 0
		r.kamMS += ms
		role, known := roleMap[pid]
		if !known {
			role = "other"
		}
		r.roleMS[role] += ms
	}
	return r, nil
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
	if o.callgrind {
		fmt.Println("(callgrind: every Kamailio figure below is thousands of instructions per call, user space, not CPU ms per 1,000 calls)")
	}
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
	fmt.Printf("Kamailio CPU ms per 1,000 calls by process, median [min–max]:\n  %-6s", "case")
	for _, role := range roles {
		fmt.Printf(" %-22s", role)
	}
	fmt.Println()
	for _, c := range cases {
		fmt.Printf("  %-6s", c)
		for _, role := range roles {
			var v []float64
			for _, r := range res[c] {
				v = append(v, r.roleMS[role])
			}
			m, lo, hi := medianSpread(v)
			fmt.Printf(" %-22s", fmt.Sprintf("%.0f [%.0f–%.0f]", m, lo, hi))
		}
		fmt.Println()
	}
	if !o.callgrind {
		fmt.Printf("Kamailio's CPU in the kernel (stime), ms per 1,000 calls, median [min–max]:\n")
		for _, c := range cases {
			var v []float64
			for _, r := range res[c] {
				v = append(v, r.kamSysMS)
			}
			m, lo, hi := medianSpread(v)
			fmt.Printf("  %-6s %s\n", c, fmt.Sprintf("%.0f [%.0f–%.0f]", m, lo, hi))
		}
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
