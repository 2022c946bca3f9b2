package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Load modes accepted by -mode.
const (
	modeOpen   = "open"
	modeClosed = "closed"
)

// runConfig is what the scheduler needs.
type runConfig struct {
	mode     string
	rate     float64 // open loop: requests per second
	conns    int     // workers, each with at most one request in flight
	duration time.Duration
	warmup   time.Duration
	requests uint64 // cap on measured requests, 0 = none
	timeout  time.Duration
	runID    string    // Call-ID prefix
	progress io.Writer // nil: no progress lines

	// observe, when set, sees every request (tests use it to check the
	// accounting request by request).
	observe func(observation)
}

// observation describes one finished request.
type observation struct {
	seq      uint64
	sched    time.Time // open loop: the scheduled send time
	sent     time.Time
	done     time.Time
	latency  time.Duration // what went into the histogram
	measured bool
	kind     errKind
}

// tally counts occurrences of short strings (verdicts, reasons) without
// allocating for keys it has already seen.
type tally map[string]*uint64

// maxTallyKeys bounds the distinct keys of a tally; the rest go to "(other)".
const maxTallyKeys = 64

func (t tally) add(k []byte, n uint64) {
	if p := t[string(k)]; p != nil {
		*p += n
		return
	}
	key := string(k)
	if len(t) >= maxTallyKeys {
		key = "(other)"
		if p := t[key]; p != nil {
			*p += n
			return
		}
	}
	v := n
	t[key] = &v
}

func (t tally) merge(o tally) {
	for k, p := range o {
		t.add([]byte(k), *p)
	}
}

// counts flattens a tally.
func (t tally) counts() map[string]uint64 {
	m := make(map[string]uint64, len(t))
	for k, p := range t {
		m[k] = *p
	}
	return m
}

// stats is what the measured requests add up to.
type stats struct {
	lat, lag Histogram
	requests uint64 // measured requests that finished (answered or failed)
	errs     [numErrKinds]uint64
	late     uint64 // open loop: sent behind schedule because every worker was busy
	status   map[int]uint64
	rpcCodes map[int]uint64
	verdicts tally
	reasons  tally
	byClass  [numClasses]tally // verdict (or error kind) per workload class
	lastDone time.Time
}

func newStats() *stats {
	s := &stats{status: map[int]uint64{}, rpcCodes: map[int]uint64{}, verdicts: tally{}, reasons: tally{}}
	for i := range s.byClass {
		s.byClass[i] = tally{}
	}
	return s
}

func (s *stats) errors() uint64 {
	var n uint64
	for _, v := range s.errs[1:] {
		n += v
	}
	return n
}

func (s *stats) merge(o *stats) {
	s.lat.Merge(&o.lat)
	s.lag.Merge(&o.lag)
	s.requests += o.requests
	for i, v := range o.errs {
		s.errs[i] += v
	}
	s.late += o.late
	for k, v := range o.status {
		s.status[k] += v
	}
	for k, v := range o.rpcCodes {
		s.rpcCodes[k] += v
	}
	s.verdicts.merge(o.verdicts)
	s.reasons.merge(o.reasons)
	for i := range s.byClass {
		s.byClass[i].merge(o.byClass[i])
	}
	if o.lastDone.After(s.lastDone) {
		s.lastDone = o.lastDone
	}
}

// shard is a lock-protected stats shared by a few workers.
type shard struct {
	mu sync.Mutex
	s  *stats
}

const numShards = 8

func (sh *shard) record(cls class, o *outcome, lat, lag time.Duration, late bool, done time.Time) {
	sh.mu.Lock()
	s := sh.s
	s.requests++
	s.lat.Record(int64(lat))
	if lag >= 0 {
		s.lag.Record(int64(lag))
	}
	if late {
		s.late++
	}
	if o.status != 0 {
		s.status[o.status]++
	}
	if o.kind == errNone {
		s.verdicts.add(o.verdict, 1)
		if o.reason != nil {
			s.reasons.add(o.reason, 1)
		}
		s.byClass[cls].add(o.verdict, 1)
	} else {
		s.errs[o.kind]++
		if o.kind == errRPC {
			s.rpcCodes[o.rpcCode]++
		}
		s.byClass[cls].add(errKindKeys[o.kind], 1)
	}
	if done.After(s.lastDone) {
		s.lastDone = done
	}
	sh.mu.Unlock()
}

// errKindKeys are the per-class tally keys of failures.
var errKindKeys = func() (k [numErrKinds][]byte) {
	for i := range k {
		k[i] = []byte("error:" + errKindNames[i])
	}
	return
}()

// runResult is everything the summary needs.
type runResult struct {
	cfg          runConfig
	start        time.Time
	measureStart time.Time
	stopped      time.Time // when the last worker finished
	expected     uint64    // open loop: measured requests that were due
	stats        *stats
	interrupted  bool
}

// window is the measured period the achieved rate is computed over.
func (r *runResult) window() time.Duration {
	w := r.stats.lastDone.Sub(r.measureStart)
	if r.cfg.mode == modeOpen && r.cfg.rate > 0 {
		// At least the span the schedule covered, so a run that keeps up
		// reports the target rate, not more.
		if sched := time.Duration(float64(r.expected) / r.cfg.rate * 1e9); sched > w {
			w = sched
		}
	}
	if w <= 0 {
		w = time.Nanosecond
	}
	return w
}

// runner executes one load run.
type runner struct {
	cfg   runConfig
	tr    transport
	wl    *workload
	next  atomic.Uint64 // next slot / request sequence number
	taken atomic.Uint64 // closed loop: measured requests claimed
	shard [numShards]shard
	done  atomic.Uint64 // all finished requests, warm-up included (progress)
	fails atomic.Uint64 // all failed requests, warm-up included (progress)

	start, measureStart, end, hardStop time.Time
	warmupSlots, totalSlots            uint64
}

// slotOffset is when slot i is scheduled, relative to the start.
func (r *runner) slotOffset(i uint64) time.Duration {
	return time.Duration(float64(i) * 1e9 / r.cfg.rate)
}

// run executes the load described by cfg against tr and returns the
// measurements. It returns when every worker has stopped: at the end of the
// schedule (plus at most -timeout for requests in flight), at the request
// cap, or when ctx is cancelled.
func run(ctx context.Context, cfg runConfig, tr transport, wl *workload) *runResult {
	r := &runner{cfg: cfg, tr: tr, wl: wl}
	for i := range r.shard {
		r.shard[i].s = newStats()
	}
	r.start = time.Now()
	if cfg.mode == modeOpen {
		r.warmupSlots = uint64(math.Ceil(cfg.warmup.Seconds() * cfg.rate))
		measured := uint64(cfg.duration.Seconds() * cfg.rate)
		if measured == 0 {
			measured = 1
		}
		if cfg.requests > 0 && cfg.requests < measured {
			measured = cfg.requests
		}
		r.totalSlots = r.warmupSlots + measured
		r.measureStart = r.start.Add(r.slotOffset(r.warmupSlots))
		r.end = r.start.Add(r.slotOffset(r.totalSlots))
		r.hardStop = r.end.Add(cfg.timeout)
	} else {
		r.measureStart = r.start.Add(cfg.warmup)
		r.end = r.measureStart.Add(cfg.duration)
	}

	var wg sync.WaitGroup
	for w := range cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := tr.newClient()
			defer cl.close()
			sh := &r.shard[w%numShards]
			if cfg.mode == modeOpen {
				r.openWorker(ctx, cl, sh)
			} else {
				r.closedWorker(ctx, cl, sh)
			}
		}()
	}
	finished := make(chan struct{})
	var progressDone chan struct{}
	if cfg.progress != nil {
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			r.progressLoop(finished)
		}()
	}
	wg.Wait()
	close(finished)
	if progressDone != nil {
		<-progressDone
	}

	res := &runResult{cfg: cfg, start: r.start, measureStart: r.measureStart, stopped: time.Now(),
		stats: newStats(), interrupted: ctx.Err() != nil}
	for i := range r.shard {
		res.stats.merge(r.shard[i].s)
	}
	if cfg.mode == modeOpen {
		res.expected = r.totalSlots - r.warmupSlots
		if res.interrupted {
			// Only what was due before the interruption.
			due := uint64(0)
			if el := res.stopped.Sub(r.start); el > 0 {
				due = uint64(el.Seconds()*cfg.rate) + 1
			}
			due = min(max(due, r.warmupSlots), r.totalSlots)
			res.expected = due - r.warmupSlots
		}
	}
	return res
}

// openWorker takes the next slot of the timeline, waits for its scheduled
// time, sends, and records the latency from the scheduled time whenever the
// worker itself was late — that is, when every worker was busy waiting for
// the target (a stall), so the stall is charged to every request it delayed.
// When the worker was idle and merely woke up late (Go timers can overshoot
// by up to about a millisecond), the wake-up delay is the load generator's,
// not the target's, and latency is measured from the actual send; that delay
// is reported separately as send lag.
func (r *runner) openWorker(ctx context.Context, cl client, sh *shard) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		i := r.next.Add(1) - 1
		if i >= r.totalSlots {
			return
		}
		sched := r.start.Add(r.slotOffset(i))
		claim := time.Now()
		if claim.After(r.hardStop) {
			return
		}
		if d := sched.Sub(claim); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		sent := time.Now()
		c := &r.wl.calls[i%uint64(len(r.wl.calls))]
		o := cl.do(c, callID{r.cfg.runID, i}, sent.Add(r.cfg.timeout))
		done := o.done
		if done.IsZero() {
			done = time.Now()
		}
		late := claim.After(sched)
		origin := sent
		if late {
			origin = sched
		}
		measured := i >= r.warmupSlots
		r.finish(sh, i, c.class, &o, origin, sched, sent, done, late, measured)
	}
}

// closedWorker sends back to back, one request in flight.
func (r *runner) closedWorker(ctx context.Context, cl client, sh *shard) {
	for ctx.Err() == nil {
		sent := time.Now()
		if !sent.Before(r.end) {
			return
		}
		measured := !sent.Before(r.measureStart)
		if measured && r.cfg.requests > 0 && r.taken.Add(1) > r.cfg.requests {
			return
		}
		i := r.next.Add(1) - 1
		c := &r.wl.calls[i%uint64(len(r.wl.calls))]
		o := cl.do(c, callID{r.cfg.runID, i}, sent.Add(r.cfg.timeout))
		done := o.done
		if done.IsZero() {
			done = time.Now()
		}
		r.finish(sh, i, c.class, &o, sent, time.Time{}, sent, done, false, measured)
	}
}

func (r *runner) finish(sh *shard, i uint64, cls class, o *outcome, origin, sched, sent, done time.Time, late, measured bool) {
	r.done.Add(1)
	if o.kind != errNone {
		r.fails.Add(1)
	}
	lat := done.Sub(origin)
	if measured {
		lag := time.Duration(-1)
		if !sched.IsZero() {
			lag = sent.Sub(sched)
		}
		sh.record(cls, o, lat, lag, late, done)
	}
	if r.cfg.observe != nil {
		r.cfg.observe(observation{seq: i, sched: sched, sent: sent, done: done, latency: lat, measured: measured, kind: o.kind})
	}
}

// progressLoop prints one line a second until finished is closed.
func (r *runner) progressLoop(finished <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var cur, prev, last Histogram
	var prevDone, prevFails uint64
	prevT := r.start
	for {
		select {
		case <-finished:
			return
		case now := <-tick.C:
			cur.Reset()
			var late uint64
			for i := range r.shard {
				sh := &r.shard[i]
				sh.mu.Lock()
				cur.Merge(&sh.s.lat)
				late += sh.s.late
				sh.mu.Unlock()
			}
			done, fails := r.done.Load(), r.fails.Load()
			rate := float64(done-prevDone) / now.Sub(prevT).Seconds()
			cur.since(&prev, &last)
			phase := ""
			if now.Before(r.measureStart) {
				phase = " (warm-up)"
			}
			line := fmt.Sprintf("[%5.1fs]%s %8.0f req/s  errors %d (+%d)", now.Sub(r.start).Seconds(), phase, rate, fails, fails-prevFails)
			if cur.Count() > 0 {
				line += fmt.Sprintf("  p99 %s (last 1s %s)  n=%d", fmtDur(cur.Quantile(0.99)), fmtDur(last.Quantile(0.99)), cur.Count())
			}
			if r.cfg.mode == modeOpen {
				line += fmt.Sprintf("  behind schedule %d", late)
			}
			fmt.Fprintln(r.cfg.progress, line)
			prev = cur
			prevDone, prevFails, prevT = done, fails, now
		}
	}
}

// fmtDur formats nanoseconds compactly with about four significant digits.
func fmtDur(ns int64) string {
	d := float64(ns)
	switch {
	case ns < 1000:
		return fmt.Sprintf("%dns", ns)
	case ns < 1_000_000:
		return fmt.Sprintf("%.1fµs", d/1e3)
	case ns < 1_000_000_000:
		return fmt.Sprintf("%.2fms", d/1e6)
	}
	return fmt.Sprintf("%.3fs", d/1e9)
}
