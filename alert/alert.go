// Package alert delivers what the velocity counters find: every alert is
// logged, counted for /metrics (by kind and level, both closed sets), kept
// in a short history for the admin API, and POSTed to each configured
// webhook as JSON signed with an HMAC-SHA256 of the body, with an
// idempotency key the receiver can deduplicate on. Deliveries run on their
// own goroutines with a bounded queue per webhook (the oldest alert is
// dropped, and counted, when it is full) and exponential back-off between
// retries, so nothing here ever waits on a decision's path or lets a dead
// receiver hold memory.
//
// With a Journal (the fraud state writer) the history and every queued
// delivery are durable: a delivery is journalled when it is queued and
// deleted once the receiver took it (or it was given up), so after a
// restart — kill -9 included — the history is back and every delivery not
// acknowledged is sent again with the same key: at least once.
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
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/policy"
)

// Alert types.
const (
	TypeThreshold = "threshold" // a velocity measure or the daily spend crossed a level
	TypeLockdown  = "lockdown"  // international calls of a scope were locked
	TypeUnlock    = "unlock"    // an operator lifted a lockdown
	TypeCall      = "call"      // something about one call (its end never came)
	TypeTeardown  = "teardown"  // a live call of a locked scope could not be ended
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
	// KindUnconfirmedCall is a call whose end never came, booked from its
	// answer to when it was last heard of.
	KindUnconfirmedCall = "unconfirmed_call"
	// KindRangeAccounts is the operator-wide range velocity: many accounts
	// calling into one number range. Its alerts name no account.
	KindRangeAccounts = "range_accounts"
	// KindTeardown is a live call of a locked scope that could not be ended.
	KindTeardown = "teardown"
)

// Kinds is every kind an alert can have, in metric order: the velocity
// measures, the daily spend, lockdown and unlock, an unconfirmed call, the
// range velocity and a failed teardown.
var Kinds = []string{"calls_per_minute", "calls_per_window", "concurrent_calls", "sequential_calls", "call_duration",
	"blocked_attempts", "distinct_destinations", "distinct_countries", "sequential_range_calls", "short_calls",
	"invalid_numbers", "locked_attempts", KindDailySpend, KindLockdown, KindUnlock, KindUnconfirmedCall, KindRangeAccounts, KindTeardown}

// Levels is every level, in metric order.
var Levels = []string{LevelWarning, LevelCritical, LevelInfo}

// Alert is one finding, as logged and as POSTed (its JSON is the webhook
// body).
type Alert struct {
	ID string `json:"id"`
	// IdempotencyKey is the same in every delivery of the alert, retries
	// and restarts included (also sent as the Idempotency-Key header):
	// receivers deduplicate on it. The ID unless set.
	IdempotencyKey string    `json:"idempotency_key"`
	Time           time.Time `json:"time"`
	Type           string    `json:"type"`
	Level          string    `json:"level"`
	Kind           string    `json:"kind"`
	Account        string    `json:"account"`
	Subaccount     string    `json:"subaccount,omitempty"`
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
	// Unconfirmed marks an alert about a call whose end never came.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
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
	// Journal, when set, makes the history and the queued deliveries
	// durable (see Restore).
	Journal Journal
}

// Journal keeps records durably, written behind in batches
// (fraudstate.Writer); Kick asks for the next batch now.
type Journal interface {
	Put(k fraudstate.Kind, key string, val []byte)
	Delete(k fraudstate.Kind, key string)
	Kick()
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
	// histKeys are the journal's keys of hist's alerts.
	histKeys []string
	histN    int
	seq      atomic.Uint64 // orders the journal's keys within a nanosecond

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
	d := &Dispatcher{opt: opt, log: opt.Logger, hist: make([]Alert, opt.History), histKeys: make([]string, opt.History)}
	d.alerts = make([][]atomic.Uint64, len(Kinds))
	for i := range d.alerts {
		d.alerts[i] = make([]atomic.Uint64, len(Levels))
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, u := range opt.URLs {
		h := sha256.Sum256([]byte(u))
		tag := hex.EncodeToString(h[:4])
		for _, o := range d.queues {
			if o.url == u {
				tag += fmt.Sprintf("-%d", len(d.queues)) // the same URL twice: two journal keys
			}
		}
		q := &queue{url: u, tag: tag, max: opt.QueueSize, wake: make(chan struct{}, 1)}
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
	if a.IdempotencyKey == "" {
		a.IdempotencyKey = a.ID
	}
	if a.Time.IsZero() {
		a.Time = d.opt.Now()
	}
	a.Time = a.Time.UTC()
	d.count(a)
	d.logAlert(a)
	body, err := json.Marshal(a)
	if err != nil {
		d.log.Error().Err(err).Msg("alert not encodable")
		return
	}
	key := fmt.Sprintf("%016x.%06x.%s", uint64(a.Time.UnixNano()), d.seq.Add(1)&0xffffff, a.ID)
	d.remember(a, key, body)
	for i, q := range d.queues {
		dl := delivery{id: a.ID, key: a.IdempotencyKey, typ: a.Type, body: body, jkey: key + "." + q.tag}
		d.journal(dl, q.url)
		if old, dropped := q.push(dl); dropped {
			d.dropped.Add(1)
			d.unjournal(old)
			d.log.Warn().Str("webhook", q.url).Int("webhook_index", i).Msg("webhook queue full: oldest alert dropped")
		}
	}
	if d.opt.Journal != nil {
		d.opt.Journal.Kick()
	}
}

// queuedRecord is a delivery as journalled.
type queuedRecord struct {
	URL  string          `json:"url"`
	ID   string          `json:"id"`
	Key  string          `json:"key"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

func (d *Dispatcher) journal(dl delivery, url string) {
	if d.opt.Journal == nil {
		return
	}
	b, err := json.Marshal(queuedRecord{URL: url, ID: dl.id, Key: dl.key, Type: dl.typ, Body: dl.body})
	if err == nil {
		d.opt.Journal.Put(fraudstate.Webhooks, dl.jkey, b)
	}
}

// unjournal forgets a delivery that is done: taken, refused or given up.
func (d *Dispatcher) unjournal(dl delivery) {
	if d.opt.Journal != nil && dl.jkey != "" {
		d.opt.Journal.Delete(fraudstate.Webhooks, dl.jkey)
	}
}

// RestoreAlert puts a journalled alert back into the history (call it for
// the stored alerts in key order, before any new alert).
func (d *Dispatcher) RestoreAlert(key string, val []byte) error {
	var a Alert
	if err := policy.DecodeStrict(val, &a); err != nil {
		return err
	}
	if a.ID == "" {
		return errors.New("alert without id")
	}
	d.remember(a, key, nil)
	return nil
}

// RestoreDelivery queues a journalled delivery again for its webhook, with
// the same idempotency key. A delivery to a URL no longer configured is
// refused (and so dropped from the journal).
func (d *Dispatcher) RestoreDelivery(key string, val []byte) error {
	var r queuedRecord
	if err := policy.DecodeStrict(val, &r); err != nil {
		return err
	}
	if r.ID == "" || !json.Valid(r.Body) {
		return errors.New("delivery without id or body")
	}
	for _, q := range d.queues {
		if q.url == r.URL {
			dl := delivery{id: r.ID, key: r.Key, typ: r.Type, body: r.Body, jkey: key}
			if old, dropped := q.push(dl); dropped {
				d.dropped.Add(1)
				d.unjournal(old)
			}
			return nil
		}
	}
	return fmt.Errorf("webhook %s is no longer configured: delivery of alert %s dropped", r.URL, r.ID)
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

// remember keeps a in the history; with a journal, body (when not nil) is
// journalled under key and the alert it pushes out of the history is
// deleted.
func (d *Dispatcher) remember(a Alert, key string, body []byte) {
	d.histMu.Lock()
	i := d.histN % len(d.hist)
	old := d.histKeys[i]
	d.hist[i], d.histKeys[i] = a, key
	d.histN++
	d.histMu.Unlock()
	if j := d.opt.Journal; j != nil {
		if old != "" {
			j.Delete(fraudstate.Alerts, old)
		}
		if body != nil {
			j.Put(fraudstate.Alerts, key, body)
		}
	}
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
	key     string // the idempotency key
	jkey    string // the journal's key
	body    []byte
}

// queue is a bounded FIFO that drops its oldest entry when full.
type queue struct {
	url  string
	tag  string // a short hash of url, in journal keys
	max  int
	mu   sync.Mutex
	buf  []delivery
	wake chan struct{}
}

// push appends d and reports whether the oldest entry was dropped for it.
func (q *queue) push(d delivery) (old delivery, dropped bool) {
	q.mu.Lock()
	if len(q.buf) >= q.max {
		old = q.buf[0]
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
	return old, dropped
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
		if d.deliver(q.url, item) {
			d.unjournal(item)
		}
		d.inflight.Add(-1)
		if d.ctx.Err() != nil {
			return
		}
	}
}

// deliver POSTs one alert until it is accepted, refused for good, or out of
// attempts, waiting Backoff, 2×Backoff, … (at most MaxBackoff) in between.
// done is false when it stopped because the dispatcher closed: the
// delivery stays journalled for the next start.
func (d *Dispatcher) deliver(u string, item delivery) (done bool) {
	wait := d.opt.Backoff
	for attempt := 1; ; attempt++ {
		status, err := d.post(u, item)
		switch {
		case err == nil && status/100 == 2:
			d.deliveries[ResultDelivered].Add(1)
			return true
		case err == nil && status/100 == 4 && status != 408 && status != 429:
			d.deliveries[ResultFailed].Add(1)
			d.log.Error().Str("webhook", u).Str("alert_id", item.id).Int("status", status).Msg("webhook refused the alert; not retried")
			return true
		case d.ctx.Err() != nil:
			return false // closing: delivered after the next start
		case attempt >= d.opt.MaxAttempts:
			d.deliveries[ResultFailed].Add(1)
			d.log.Error().Str("webhook", u).Str("alert_id", item.id).Int("status", status).AnErr("error", err).
				Int("attempts", attempt).Msg("webhook delivery failed; alert given up")
			return true
		}
		d.deliveries[ResultRetried].Add(1)
		d.log.Warn().Str("webhook", u).Str("alert_id", item.id).Int("status", status).AnErr("error", err).
			Int("attempt", attempt).Dur("retry_in", wait).Msg("webhook delivery failed; retrying")
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return false
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
	if item.key != "" {
		req.Header.Set("Idempotency-Key", item.key)
	}
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
