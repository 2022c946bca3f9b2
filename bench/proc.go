package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a child process the driver started; it is stopped by its pid.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// procs are the children still running, for cleanup on any exit path.
var procs struct {
	sync.Mutex
	m map[*Proc]bool
}

// StartProc starts argv (prefixed with `taskset -c cpus` when cpus is set;
// taskset execs, so the pid is the program's) with its output going to the
// given writers. The child gets SIGKILL if the driver dies first.
func StartProc(name, cpus string, env []string, stdout, stderr io.Writer, argv ...string) (*Proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	procs.Lock()
	if procs.m == nil {
		procs.m = map[*Proc]bool{}
	}
	procs.m[p] = true
	procs.Unlock()
	go func() {
		p.err = cmd.Wait()
		procs.Lock()
		delete(procs.m, p)
		procs.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the child to exit and returns its error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop sends sig to the child's pid and waits up to timeout for it to exit,
// then kills it.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// StopAll stops every child still running, by pid.
func StopAll() {
	procs.Lock()
	list := make([]*Proc, 0, len(procs.m))
	for p := range procs.m {
		list = append(list, p)
	}
	procs.Unlock()
	for _, p := range list {
		fmt.Fprintf(os.Stderr, "bench: stopping %s (pid %d)\n", p.Name, p.Pid())
		p.Stop(syscall.SIGTERM, 10*time.Second)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ProcStatus reads the kB values VmRSS and VmHWM of a process.
func ProcStatus(pid int) (rssKB, hwmKB int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rssKB = n
		case "VmHWM":
			hwmKB = n
		}
	}
	return rssKB, hwmKB, sc.Err()
}

// clkTck is the kernel's USER_HZ, the unit of /proc/PID/stat times; it is
// 100 on every Linux architecture Go runs on.
const clkTck = 100

// CPUTime is the user+system CPU time of pid and, when withChildren, of
// its live child processes (nginx's workers), read from /proc.
func CPUTime(pid int, withChildren bool) time.Duration {
	total := statTicks(pid)
	if withChildren {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			c, err := strconv.Atoi(e.Name())
			if err != nil || c == pid {
				continue
			}
			if ppid, ok := statPPid(c); ok && ppid == pid {
				total += statTicks(c)
			}
		}
	}
	return time.Duration(total) * time.Second / clkTck
}

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func statTicks(pid int) int64 {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	// After the name: state(0) ppid(1) … utime(11) stime(12).
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func statPPid(pid int) (int, bool) {
	f := statFields(pid)
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// machineInfo describes the machine for the report.
func machineInfo() map[string]string {
	m := map[string]string{}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && k == "MemTotal" {
				f := strings.Fields(v)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					m["mem"] = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m["load"] = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	return m
}

// SystemBusy is the CPU time all CPUs spent on anything but idle and I/O
// wait since boot, from /proc/stat, with the share of it the hypervisor
// took (steal).
func SystemBusy() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	ticks := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return time.Duration(ticks) * time.Second / clkTck, time.Duration(v[7]) * time.Second / clkTck
}

// OtherLoad is the CPU, in cores, that processes other than the ones named
// by pid used over d (the machine is shared).
func OtherLoad(d time.Duration, pids ...int) float64 {
	b0, _ := SystemBusy()
	var own0 time.Duration
	for _, p := range pids {
		own0 += CPUTime(p, true)
	}
	time.Sleep(d)
	b1, _ := SystemBusy()
	var own1 time.Duration
	for _, p := range pids {
		own1 += CPUTime(p, true)
	}
	return max(0, ((b1-b0)-(own1-own0)).Seconds()/d.Seconds())
}
