package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/alert"
)

// Alerts in fleet mode. Every node evaluates the fleet's sums, so every node
// raises the same alert within the staleness bound. Each publishes it to the
// AlertsStream with a Nats-Msg-Id that is the same on every node (AlertKey):
// the stream keeps one copy per Dedupe window, and one durable consumer
// shared by all nodes hands each stored alert to exactly one node's
// dispatcher, which logs it and POSTs the webhooks with the key as the
// Idempotency-Key. The stream is the fleet's alert history and survives
// restarts of tollgates and of NATS servers (file storage, Replicas).
const (
	AlertsStream   = "TOLLGATE_ALERTS"
	AlertsSubject  = "tollgate.alerts"
	AlertsConsumer = "webhook"
)

// AlertsOptions configure fleet-wide alerts.
type AlertsOptions struct {
	JS   jetstream.JetStream
	Node string
	// Replicas of the stream (default 1; the fleet's -nats-replicas).
	Replicas int
	// Deliver gets each fleet alert once over the fleet (the local
	// alert.Dispatcher); it must not block.
	Deliver alert.Notifier
	// MaxAge is how long the history keeps alerts (default 30 days).
	MaxAge time.Duration
	// Dedupe is the window within which the same alert from several nodes
	// is one alert (default 1 minute: far above the staleness bound, below
	// any re-arm a rule can make).
	Dedupe time.Duration
	Logger zerolog.Logger
}

// Alerts is an alert.Notifier that makes every alert one alert of the
// fleet. Create it with StartAlerts.
type Alerts struct {
	opt    AlertsOptions
	stream jetstream.Stream
	cons   jetstream.ConsumeContext
	queue  chan alert.Alert
	done   chan struct{}
	// mu guards queue's closing: Notify holds it shared.
	mu      sync.RWMutex
	stopped bool

	published, duplicates, local, delivered, retries atomic.Uint64
}

// AlertsStats are the figures of fleet alerts, for /metrics.
type AlertsStats struct {
	// Published counts alerts stored in the stream by this node;
	// Duplicates those another node had stored first.
	Published, Duplicates uint64
	// Local counts alerts delivered by this node alone because the
	// stream could not be reached (NATS down): a degraded state.
	Local uint64
	// Delivered counts fleet alerts this node's dispatcher took from the
	// shared consumer.
	Delivered uint64
	// Retries counts publishes tried again (the stream slow to answer).
	Retries uint64
}

// StartAlerts creates (or updates) the stream and the shared consumer and
// starts taking this node's share of the deliveries.
func StartAlerts(ctx context.Context, opt AlertsOptions) (*Alerts, error) {
	if opt.JS == nil || opt.Deliver == nil {
		return nil, errors.New("fleet alerts: a JetStream context and a dispatcher are required")
	}
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 30 * 24 * time.Hour
	}
	if opt.Dedupe <= 0 {
		opt.Dedupe = time.Minute
	}
	st, err := opt.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: AlertsStream, Subjects: []string{AlertsSubject + ".>"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, Replicas: opt.Replicas, MaxAge: opt.MaxAge, Duplicates: opt.Dedupe,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet alerts: stream %s: %w", AlertsStream, err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: AlertsConsumer, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy, MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet alerts: consumer %s: %w", AlertsConsumer, err)
	}
	a := &Alerts{opt: opt, stream: st, queue: make(chan alert.Alert, 1024), done: make(chan struct{})}
	a.cons, err = cons.Consume(a.take)
	if err != nil {
		return nil, fmt.Errorf("fleet alerts: consume: %w", err)
	}
	go a.run()
	return a, nil
}

// AlertKey is the fleet-wide identity of an alert: what it is about, not
// the values or times one node saw. Two nodes raising the same level of
// the same measure of the same rule of the same scope produce the same key.
func AlertKey(a alert.Alert) string {
	h := sha256.New()
	reason := ""
	if a.By != "" && a.By != "tollgate" {
		reason = a.Reason // an operator's lock or unlock: its words are its identity
	}
	for _, f := range []string{a.Type, a.Level, a.Kind, a.Account, a.Subaccount, a.Rule, a.Prefix, a.Action, a.CallID, a.By, reason} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return "tg-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Notify implements alert.Notifier: it queues the alert for the stream and
// never blocks.
func (a *Alerts) Notify(al alert.Alert) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !a.stopped {
		select {
		case a.queue <- al:
			return
		default:
		}
	}
	a.opt.Logger.Error().Str("kind", al.Kind).Msg("fleet alerts: queue full or closed: alert delivered locally")
	a.deliverLocal(al)
}

func (a *Alerts) deliverLocal(al alert.Alert) {
	key := AlertKey(al)
	al.ID, al.IdempotencyKey = key, key
	a.local.Add(1)
	a.opt.Deliver.Notify(al)
}

func (a *Alerts) run() {
	defer close(a.done)
	for al := range a.queue {
		key := AlertKey(al)
		al.ID, al.IdempotencyKey = key, key
		if al.Time.IsZero() {
			al.Time = time.Now()
		}
		al.Time = al.Time.UTC()
		body, err := json.Marshal(al)
		if err != nil {
			continue
		}
		subj := AlertsSubject + "." + strings.ReplaceAll(al.Type, ".", "_")
		ack, err := a.publish(subj, body, key)
		switch {
		case err != nil:
			// nothing fails open silently: the alert goes out from this
			// node, with the fleet's key so that a receiver that gets it
			// again from another node can tell
			a.opt.Logger.Warn().Err(err).Str("key", key).Msg("fleet alerts: stream unreachable: alert delivered locally")
			a.deliverLocal(al)
		case ack.Duplicate:
			a.duplicates.Add(1)
		default:
			a.published.Add(1)
		}
	}
}

// publish stores one alert, retrying while the connection is up for up to
// 15 s: the Msg-Id makes a retry of a publish that did land harmless, and
// a local delivery is the last resort, for NATS being away.
func (a *Alerts) publish(subj string, body []byte, key string) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(15 * time.Second)
	wait := 100 * time.Millisecond
	for {
		m := &nats.Msg{Subject: subj, Data: body, Header: nats.Header{}}
		m.Header.Set("Tollgate-Node", a.opt.Node)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ack, err := a.opt.JS.PublishMsg(ctx, m, jetstream.WithMsgID(key))
		cancel()
		if err == nil || time.Now().After(deadline) || !a.opt.JS.Conn().IsConnected() {
			return ack, err
		}
		a.retries.Add(1)
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// take hands one stored alert to this node's dispatcher.
func (a *Alerts) take(m jetstream.Msg) {
	var al alert.Alert
	if err := json.Unmarshal(m.Data(), &al); err != nil {
		a.opt.Logger.Error().Err(err).Msg("fleet alerts: undecodable alert dropped")
		_ = m.Term()
		return
	}
	a.opt.Deliver.Notify(al) // the dispatcher journals and retries its webhooks
	a.delivered.Add(1)
	_ = m.Ack()
}

// Recent returns up to n of the fleet's latest alerts, newest first, from
// the stream.
func (a *Alerts) Recent(ctx context.Context, n int) ([]alert.Alert, error) {
	if nc := a.opt.JS.Conn(); nc != nil && !nc.IsConnected() {
		// a request would wait for the reconnection: say so at once
		return nil, errors.New("fleet alerts: NATS unreachable")
	}
	info, err := a.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []alert.Alert
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && len(out) < n; seq-- {
		m, err := a.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		var al alert.Alert
		if json.Unmarshal(m.Data, &al) == nil {
			out = append(out, al)
		}
	}
	return out, nil
}

// Stats returns the figures.
func (a *Alerts) Stats() AlertsStats {
	return AlertsStats{Published: a.published.Load(), Duplicates: a.duplicates.Load(), Local: a.local.Load(),
		Delivered: a.delivered.Load(), Retries: a.retries.Load()}
}

// Close stops taking deliveries and publishes what is queued (each with
// the publish timeout).
func (a *Alerts) Close() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	close(a.queue)
	a.mu.Unlock()
	<-a.done
	a.cons.Stop()
}
