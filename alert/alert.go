// Package alert delivers what the velocity counters find: every alert is
// logged, counted for /metrics (by kind and level, both closed sets), kept
// in a short in-memory history for the admin API, and POSTed to each
// configured webhook as JSON signed with an HMAC-SHA256 of the body.
// Deliveries run on their own goroutines with a bounded queue per webhook
// (the oldest alert is dropped, and counted, when it is full) and
// exponential back-off between retries, so nothing here ever waits on a
// decision's path or lets a dead receiver hold memory.
package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Alert types.
const (
	TypeThreshold = "threshold" // a velocity measure or the daily spend crossed a level
	TypeLockdown  = "lockdown"  // international calls of a scope were locked
	TypeUnlock    = "unlock"    // an operator lifted a lockdown
)

// Levels. Info is for unlocks.
const (
	LevelWarning  = "warning"
	LevelCritical = "critical"
	LevelInfo     = "info"
)

// Kinds besides the velocity measures (policy.MeasureNames).
const (
	KindDailySpend = "daily_spend"
	KindLockdown   = "lockdown"
	KindUnlock     = "unlock"
)

// Kinds is every kind an alert can have, in metric order: the velocity
// measures, the daily spend, lockdown and unlock.
var Kinds = []string{"calls_per_minute", "calls_per_window", "concurrent_calls", "sequential_calls", "call_duration",
	"blocked_attempts", KindDailySpend, KindLockdown, KindUnlock}

// Levels is every level, in metric order.
var Levels = []string{LevelWarning, LevelCritical, LevelInfo}

// Alert is one finding, as logged and as POSTed (its JSON is the webhook
// body).
type Alert struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Level      string    `json:"level"`
	Kind       string    `json:"kind"`
	Account    string    `json:"account"`
	Subaccount string    `json:"subaccount,omitempty"`
	// Rule is the velocity rule's name ("rule 1" when it has none).
	Rule   string `json:"rule,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// Value and Threshold are in Unit: calls, seconds, or the rate deck's
	// currency for the daily spend.
	Value     float64 `json:"value,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	Unit      string  `json:"unit,omitempty"`
	// Action is what the critical level did: "lockdown" or "alert".
	Action string `json:"action,omitempty"`
	CallID string `json:"call_id,omitempty"`
	// By and Reason say who locked or unlocked and why.
	By      string `json:"by,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// Notifier receives alerts; Notify must not block.
type Notifier interface {
	Notify(Alert)
}

// Options configure a Dispatcher.
type Options struct {
	// URLs are the webhook endpoints; each gets every alert.
	URLs []string
	// Secret keys the HMAC-SHA256 in X-Tollgate-Signature. Required when
	// URLs are set.
	Secret string
	Logger zerolog.Logger
	// QueueSize bounds the alerts waiting per webhook (default 1000).
	QueueSize int
	// MaxAttempts bounds the deliveries of one alert (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one up to MaxBackoff (defaults 1 s and 5 min).
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one POST (default 5 s).
	Timeout time.Duration
	// History is how many recent alerts the admin API can list (default 200).
	History int
	// Client sends the POSTs (default: a client with Timeout).
	Client *http.Client
	// Now is the clock (tests); time.Now if nil.
	Now func() time.Time
}

// Delivery results, for /metrics.
const (
	ResultDelivered = iota // 2xx
	ResultRetried          // a failed attempt that will be retried
	ResultFailed           // given up: attempts exhausted or a 4xx that retrying cannot fix
	numResults
)

// ResultNames are the metric labels of the delivery results.
var ResultNames = [numResults]string{"delivered", "retried", "failed"}

// Stats are the dispatcher's counters.
type Stats struct {
	// Alerts counts alerts by kind and level (indexes of Kinds and Levels).
	Alerts [][]uint64
	// Deliveries counts webhook attempts by result (ResultNames).
	Deliveries [numResults]uint64
	// Dropped counts alerts dropped from a full queue.
	Dropped uint64
	// Queued is the number of alerts waiting, over all webhooks.
	Queued int
	// Webhooks is the number of configured webhooks.
	Webhooks int
}

// Dispatcher logs, counts, remembers and delivers alerts.
type Dispatcher struct {
	opt    Options
	log    zerolog.Logger
	queues []*queue

	alerts     [][]atomic.Uint64
	deliveries [numResults]atomic.Uint64
	dropped    atomic.Uint64
	inflight   atomic.Int64

	histMu sync.Mutex
	hist   []Alert
	histN  int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Tollgate-Signature"

// Sign is the value of SignatureHeader for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a SignatureHeader value in constant time; receivers can use
// it as the reference implementation.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// New checks the options and starts one delivery goroutine per webhook.
// Close stops them.
func New(opt Options) (*Dispatcher, error) {
	if len(opt.URLs) > 0 && opt.Secret == "" {
		return nil, errors.New("webhooks need a secret to sign their bodies with (-webhook-secret)")
	}
	for _, u := range opt.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("webhook URL %q is not an http(s) URL", u)
		}
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 1000
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 8
	}
	if opt.Backoff <= 0 {
		opt.Backoff = time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Minute
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.History <= 0 {
		opt.History = 200
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: opt.Timeout}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	d := &Dispatcher{opt: opt, log: opt.Logger, hist: make([]Alert, opt.History)}
	d.alerts = make([][]atomic.Uint64, len(Kinds))
	for i := range d.alerts {
		d.alerts[i] = make([]atomic.Uint64, len(Levels))
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, u := range opt.URLs {
		q := &queue{url: u, max: opt.QueueSize, wake: make(chan struct{}, 1)}
		d.queues = append(d.queues, q)
		d.wg.Add(1)
		go d.deliverLoop(q)
	}
	return d, nil
}

// Close lets the webhooks take what is queued until ctx ends, then stops
// the delivery goroutines; alerts still undelivered are counted in the log.
func (d *Dispatcher) Close(ctx context.Context) error {
	for d.pending() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	n := d.pending()
	d.cancel()
	d.wg.Wait()
	if n > 0 {
		d.log.Warn().Int("alerts", n).Msg("webhook alerts not delivered before shutdown")
	}
	return nil
}

// pending is what is queued or being delivered.
func (d *Dispatcher) pending() int { return d.queuedTotal() + int(d.inflight.Load()) }

func (d *Dispatcher) queuedTotal() int {
	n := 0
	for _, q := range d.queues {
		n += q.len()
	}
	return n
}

// Notify logs, counts and queues an alert for every webhook. It never
// blocks: a full queue drops its oldest alert.
func (d *Dispatcher) Notify(a Alert) {
	if a.ID == "" {
		a.ID = newID()
	}
	if a.Time.IsZero() {
		a.Time = d.opt.Now()
	}
	a.Time = a.Time.UTC()
	d.count(a)
	d.logAlert(a)
	d.remember(a)
	if len(d.queues) == 0 {
		return
	}
	body, err := json.Marshal(a)
	if err != nil {
		d.log.Error().Err(err).Msg("alert not encodable")
		return
	}
	for _, q := range d.queues {
		if q.push(delivery{id: a.ID, typ: a.Type, body: body}) {
			d.dropped.Add(1)
			d.log.Warn().Str("webhook", q.url).Msg("webhook queue full: oldest alert dropped")
		}
	}
}

func (d *Dispatcher) count(a Alert) {
	ki, li := -1, -1
	for i, k := range Kinds {
		if k == a.Kind {
			ki = i
		}
	}
	for i, l := range Levels {
		if l == a.Level {
			li = i
		}
	}
	if ki >= 0 && li >= 0 {
		d.alerts[ki][li].Add(1)
	}
}

func (d *Dispatcher) logAlert(a Alert) {
	ev := d.log.Warn()
	switch a.Level {
	case LevelCritical:
		ev = d.log.Error()
	case LevelInfo:
		ev = d.log.Info()
	}
	ev = ev.Str("alert_id", a.ID).Str("type", a.Type).Str("alert_level", a.Level).Str("kind", a.Kind).
		Str("account", a.Account).Str("subaccount", a.Subaccount)
	if a.Rule != "" {
		ev = ev.Str("rule", a.Rule)
	}
	if a.Prefix != "" {
		ev = ev.Str("prefix", a.Prefix)
	}
	if a.Unit != "" {
		ev = ev.Float64("value", a.Value).Float64("threshold", a.Threshold).Str("unit", a.Unit)
	}
	if a.Action != "" {
		ev = ev.Str("action", a.Action)
	}
	if a.CallID != "" {
		ev = ev.Str("call_id", a.CallID)
	}
	if a.By != "" {
		ev = ev.Str("by", a.By).Str("reason", a.Reason)
	}
	ev.Msg(a.Message)
}

func (d *Dispatcher) remember(a Alert) {
	d.histMu.Lock()
	d.hist[d.histN%len(d.hist)] = a
	d.histN++
	d.histMu.Unlock()
}

// Recent returns up to n of the latest alerts, newest first (all kept if n
// <= 0).
func (d *Dispatcher) Recent(n int) []Alert {
	d.histMu.Lock()
	defer d.histMu.Unlock()
	have := min(d.histN, len(d.hist))
	if n <= 0 || n > have {
		n = have
	}
	out := make([]Alert, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, d.hist[(d.histN-1-i)%len(d.hist)])
	}
	return out
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	s := Stats{Alerts: make([][]uint64, len(Kinds)), Dropped: d.dropped.Load(), Queued: d.queuedTotal(), Webhooks: len(d.queues)}
	for i := range d.alerts {
		s.Alerts[i] = make([]uint64, len(Levels))
		for j := range d.alerts[i] {
			s.Alerts[i][j] = d.alerts[i][j].Load()
		}
	}
	for i := range d.deliveries {
		s.Deliveries[i] = d.deliveries[i].Load()
	}
	return s
}

// delivery is one alert waiting for one webhook.
type delivery struct {
	id, typ string
	body    []byte
}

// queue is a bounded FIFO that drops its oldest entry when full.
type queue struct {
	url  string
	max  int
	mu   sync.Mutex
	buf  []delivery
	wake chan struct{}
}

// push appends d and reports whether the oldest entry was dropped for it.
func (q *queue) push(d delivery) (dropped bool) {
	q.mu.Lock()
	if len(q.buf) >= q.max {
		copy(q.buf, q.buf[1:])
		q.buf = q.buf[:len(q.buf)-1]
		dropped = true
	}
	q.buf = append(q.buf, d)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

func (q *queue) pop() (delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return delivery{}, false
	}
	d := q.buf[0]
	q.buf[0] = delivery{}
	q.buf = q.buf[1:]
	return d, true
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}

func (d *Dispatcher) deliverLoop(q *queue) {
	defer d.wg.Done()
	for {
		d.inflight.Add(1)
		item, ok := q.pop()
		if !ok {
			d.inflight.Add(-1)
			select {
			case <-d.ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		d.deliver(q.url, item)
		d.inflight.Add(-1)
		if d.ctx.Err() != nil {
			return
		}
	}
}

// deliver POSTs one alert until it is accepted, refused for good, or out of
// attempts, waiting Backoff, 2×Backoff, … (at most MaxBackoff) in between.
func (d *Dispatcher) deliver(u string, item delivery) {
	wait := d.opt.Backoff
	for attempt := 1; ; attempt++ {
		status, err := d.post(u, item)
		switch {
		case err == nil && status/100 == 2:
			d.deliveries[ResultDelivered].Add(1)
			return
		case err == nil && status/100 == 4 && status != 408 && status != 429:
			d.deliveries[ResultFailed].Add(1)
			d.log.Error().Str("webhook", u).Str("alert_id", item.id).Int("status", status).Msg("webhook refused the alert; not retried")
			return
		case attempt >= d.opt.MaxAttempts:
			d.deliveries[ResultFailed].Add(1)
			d.log.Error().Str("webhook", u).Str("alert_id", item.id).Int("status", status).AnErr("error", err).
				Int("attempts", attempt).Msg("webhook delivery failed; alert given up")
			return
		}
		d.deliveries[ResultRetried].Add(1)
		d.log.Warn().Str("webhook", u).Str("alert_id", item.id).Int("status", status).AnErr("error", err).
			Int("attempt", attempt).Dur("retry_in", wait).Msg("webhook delivery failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, d.opt.MaxBackoff)
	}
}

func (d *Dispatcher) post(u string, item delivery) (int, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(item.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tollgate-alerts")
	req.Header.Set(SignatureHeader, Sign([]byte(d.opt.Secret), item.body))
	req.Header.Set("X-Tollgate-Event", item.typ)
	req.Header.Set("X-Tollgate-Delivery", item.id)
	resp, err := d.opt.Client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func newID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("t%d", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
