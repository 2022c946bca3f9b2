package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary is the result of a run; -json prints it as JSON.
type Summary struct {
	// Transport is the -transport used.
	Transport string `json:"transport"`
	// Target is the address the load went to.
	Target string `json:"target"`
	// Mode is "open" (fixed rate) or "closed" (back to back).
	Mode string `json:"mode"`
	// TargetRate is the open-loop rate asked for, in requests per second.
	TargetRate float64 `json:"target_rate,omitempty"`
	// Conns is the number of workers, each with at most one request in flight.
	Conns int `json:"conns"`
	// DurationS is the measured period asked for, in seconds.
	DurationS float64 `json:"duration_s"`
	// WarmupS is the unmeasured warm-up before it, in seconds.
	WarmupS float64 `json:"warmup_s"`
	// Workload says where the numbers came from.
	Workload string `json:"workload"`
	// Shares is the percentage of each workload class in the request pool.
	Shares map[string]float64 `json:"shares_percent"`
	// Requests counts measured requests that finished, answered or failed.
	Requests uint64 `json:"requests"`
	// Expected counts the measured requests the open-loop schedule held.
	Expected uint64 `json:"expected,omitempty"`
	// Unsent counts scheduled requests never sent because the run ended
	// (open loop).
	Unsent uint64 `json:"unsent"`
	// WindowS is the period the achieved rate is computed over, in seconds.
	WindowS float64 `json:"window_s"`
	// AchievedRate is Requests / WindowS.
	AchievedRate float64 `json:"achieved_rate"`
	// RateRatio is AchievedRate / TargetRate (open loop).
	RateRatio float64 `json:"rate_ratio,omitempty"`
	// Errors counts failed measured requests.
	Errors uint64 `json:"errors"`
	// ErrorRatio is Errors / Requests.
	ErrorRatio float64 `json:"error_ratio"`
	// ErrorsByKind splits Errors: connect, timeout, io, http_status,
	// bad_body, rpc_error, verdict_status_mismatch.
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	// HTTPStatus counts answers by HTTP status code.
	HTTPStatus map[string]uint64 `json:"http_status,omitempty"`
	// RPCErrorCodes counts JSON-RPC error answers by code.
	RPCErrorCodes map[string]uint64 `json:"rpc_error_codes,omitempty"`
	// Verdicts counts answered requests by verdict.
	Verdicts map[string]uint64 `json:"verdicts"`
	// Reasons counts answered requests by reason.
	Reasons map[string]uint64 `json:"reasons"`
	// ByClass counts verdicts (and "error:<kind>") per workload class.
	ByClass map[string]map[string]uint64 `json:"by_class"`
	// Latency is measured from the scheduled send time in open loop (see
	// the docs for the one exception) and from the send in closed loop.
	Latency Latency `json:"latency"`
	// SendLag is how late requests went out against the schedule (open loop).
	SendLag *Latency `json:"send_lag,omitempty"`
	// BehindSchedule counts requests that were picked up after their
	// scheduled time because every worker was busy (open loop).
	BehindSchedule uint64 `json:"behind_schedule"`
	// Histogram states the histogram's precision.
	Histogram string `json:"histogram"`
	// Interrupted is true when the run was stopped by a signal.
	Interrupted bool `json:"interrupted"`
	// Pass is false when a threshold was missed; the exit status is then 1.
	Pass bool `json:"pass"`
	// Failures lists the thresholds that were missed.
	Failures []string `json:"failures"`
}

// Latency is a latency distribution in microseconds.
type Latency struct {
	// Count is the number of values.
	Count uint64 `json:"count"`
	// Min is the smallest value.
	Min float64 `json:"min_us"`
	// Mean is the arithmetic mean.
	Mean float64 `json:"mean_us"`
	// P50 is the median.
	P50 float64 `json:"p50_us"`
	// P90 is the 90th percentile.
	P90 float64 `json:"p90_us"`
	// P99 is the 99th percentile.
	P99 float64 `json:"p99_us"`
	// P999 is the 99.9th percentile.
	P999 float64 `json:"p99_9_us"`
	// Max is the largest value.
	Max float64 `json:"max_us"`
}

func latencyOf(h *Histogram) Latency {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Latency{
		Count: h.Count(),
		Min:   us(h.Min()),
		Mean:  h.Mean() / 1e3,
		P50:   us(h.Quantile(0.50)),
		P90:   us(h.Quantile(0.90)),
		P99:   us(h.Quantile(0.99)),
		P999:  us(h.Quantile(0.999)),
		Max:   us(h.Max()),
	}
}

// thresholds decide pass or fail.
type thresholds struct {
	minRateRatio float64
	maxErrors    float64
	// sloP99 is the latency objective: the measured p99 must not exceed it
	// (0: not checked).
	sloP99 time.Duration
	// maxBehind is the largest fraction of requests that may go out behind
	// schedule in open loop: past it the client, not the server, set the
	// pace, and the latencies no longer describe the target rate.
	maxBehind float64
}

// summarize turns a run's result into a Summary and applies the thresholds.
func summarize(res *runResult, transportName, target string, wl *workload, th thresholds) *Summary {
	st := res.stats
	s := &Summary{
		Transport:    transportName,
		Target:       target,
		Mode:         res.cfg.mode,
		Conns:        res.cfg.conns,
		DurationS:    res.cfg.duration.Seconds(),
		WarmupS:      res.cfg.warmup.Seconds(),
		Workload:     wl.source,
		Shares:       wl.shares,
		Requests:     st.requests,
		Errors:       st.errors(),
		ErrorsByKind: map[string]uint64{},
		Verdicts:     st.verdicts.counts(),
		Reasons:      st.reasons.counts(),
		ByClass:      map[string]map[string]uint64{},
		Latency:      latencyOf(&st.lat),
		Histogram:    HistPrecision,
		Interrupted:  res.interrupted,
		Failures:     []string{},
	}
	w := res.window()
	s.WindowS = w.Seconds()
	s.AchievedRate = float64(st.requests) / w.Seconds()
	if st.requests > 0 {
		s.ErrorRatio = float64(s.Errors) / float64(st.requests)
	}
	for k := errConnect; k < numErrKinds; k++ {
		s.ErrorsByKind[k.String()] = st.errs[k]
	}
	if len(st.status) > 0 {
		s.HTTPStatus = map[string]uint64{}
		for k, v := range st.status {
			s.HTTPStatus[strconv.Itoa(k)] = v
		}
	}
	if len(st.rpcCodes) > 0 {
		s.RPCErrorCodes = map[string]uint64{}
		for k, v := range st.rpcCodes {
			s.RPCErrorCodes[strconv.Itoa(k)] = v
		}
	}
	for c := range numClasses {
		if len(st.byClass[c]) > 0 {
			s.ByClass[c.String()] = st.byClass[c].counts()
		}
	}
	if res.cfg.mode == modeOpen {
		s.TargetRate = res.cfg.rate
		s.Expected = res.expected
		if res.expected > st.requests {
			s.Unsent = res.expected - st.requests
		}
		s.RateRatio = s.AchievedRate / res.cfg.rate
		lag := latencyOf(&st.lag)
		s.SendLag = &lag
		s.BehindSchedule = st.late
	}

	if st.requests == 0 {
		s.Failures = append(s.Failures, "no request finished")
	}
	if s.ErrorRatio > th.maxErrors {
		s.Failures = append(s.Failures, fmt.Sprintf("error ratio %.4f exceeds -max-errors %g", s.ErrorRatio, th.maxErrors))
	}
	if res.cfg.mode == modeOpen && s.RateRatio < th.minRateRatio {
		s.Failures = append(s.Failures, fmt.Sprintf("achieved %.1f req/s is %.1f%% of the target %g req/s, below -min-rate-ratio %g",
			s.AchievedRate, 100*s.RateRatio, res.cfg.rate, th.minRateRatio))
	}
	if th.sloP99 > 0 && st.requests > 0 && s.Latency.P99 > float64(th.sloP99)/1e3 {
		s.Failures = append(s.Failures, fmt.Sprintf("p99 %s exceeds the objective -slo-p99 %s", fmtUS(s.Latency.P99), th.sloP99))
	}
	if res.cfg.mode == modeOpen && st.requests > 0 {
		if r := float64(s.BehindSchedule) / float64(st.requests); r > th.maxBehind {
			s.Failures = append(s.Failures, fmt.Sprintf("%d requests (%.1f%%) went out behind schedule, above -max-behind-schedule %g: the client could not keep the rate",
				s.BehindSchedule, 100*r, th.maxBehind))
		}
	}
	s.Pass = len(s.Failures) == 0
	return s
}

// writeJSON prints s as indented JSON.
func (s *Summary) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// sortedCounts renders "k v  k v" with the largest counts first.
func sortedCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func fmtUS(us float64) string { return fmtDur(int64(us * 1e3)) }

// writeText prints the human-readable summary.
func (s *Summary) writeText(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	if s.Mode == modeOpen {
		p("%s → %s  open loop at %g req/s, %d conns, %gs measured after %gs warm-up",
			s.Transport, s.Target, s.TargetRate, s.Conns, s.DurationS, s.WarmupS)
	} else {
		p("%s → %s  closed loop, %d conns, %gs measured after %gs warm-up",
			s.Transport, s.Target, s.Conns, s.DurationS, s.WarmupS)
	}
	shares := make([]string, 0, len(s.Shares))
	for k, v := range s.Shares {
		shares = append(shares, fmt.Sprintf("%s %.4g%%", k, v))
	}
	slices.Sort(shares)
	p("workload   %s (%s)", s.Workload, strings.Join(shares, ", "))
	line := fmt.Sprintf("requests   %d in %.3fs = %.1f req/s", s.Requests, s.WindowS, s.AchievedRate)
	if s.Mode == modeOpen {
		line += fmt.Sprintf(" (%.2f%% of target; %d scheduled, %d unsent)", 100*s.RateRatio, s.Expected, s.Unsent)
	}
	p("%s", line)
	kinds := make(map[string]uint64)
	for k, v := range s.ErrorsByKind {
		if v > 0 {
			kinds[k] = v
		}
	}
	p("errors     %d (%.4f%%)  %s", s.Errors, 100*s.ErrorRatio, sortedCounts(kinds))
	if len(s.HTTPStatus) > 0 {
		p("status     %s", sortedCounts(s.HTTPStatus))
	}
	if len(s.RPCErrorCodes) > 0 {
		p("rpc errors %s", sortedCounts(s.RPCErrorCodes))
	}
	p("verdicts   %s", sortedCounts(s.Verdicts))
	p("reasons    %s", sortedCounts(s.Reasons))
	classes := make([]string, 0, len(s.ByClass))
	for k := range s.ByClass {
		classes = append(classes, k)
	}
	slices.Sort(classes)
	for _, c := range classes {
		p("  %-9s %s", c, sortedCounts(s.ByClass[c]))
	}
	l := s.Latency
	origin := "from the send"
	if s.Mode == modeOpen {
		origin = "from the scheduled send time"
	}
	p("latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (min %s, mean %s; %s)",
		fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max), fmtUS(l.Min), fmtUS(l.Mean), origin)
	if s.SendLag != nil {
		g := s.SendLag
		p("send lag   p50 %s  p99 %s  max %s; behind schedule (all workers busy): %d",
			fmtUS(g.P50), fmtUS(g.P99), fmtUS(g.Max), s.BehindSchedule)
	}
	p("histogram  %s", s.Histogram)
	if s.Interrupted {
		p("note       interrupted before the end")
	}
	if s.Pass {
		p("result     PASS")
	} else {
		p("result     FAIL: %s", strings.Join(s.Failures, "; "))
	}
}
