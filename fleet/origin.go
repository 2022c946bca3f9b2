package fleet

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/origin"
)

// The fleet's location history: one subject per account in a stream that
// keeps the last message of each (a last-value table), so a node that
// starts, or comes back, loads every account's last call from it, and
// every node follows the others' calls as they come.
const (
	OriginStream  = "TOLLGATE_ORIGIN"
	OriginSubject = "tollgate.origin"
)

// OriginOptions configure the fleet's shared origin state.
type OriginOptions struct {
	NC   *nats.Conn
	JS   jetstream.JetStream
	Node string
	// State is the origin checker's state: its moved accounts are
	// published, the fleet's merged into it.
	State *origin.State
	// Replicas of the stream (default 1).
	Replicas int
	// MaxAge is how long an account's last call is kept (default 24 h,
	// longer than any location_change_minutes).
	MaxAge time.Duration
	// Interval is how often moved accounts are published (default 100 ms).
	Interval time.Duration
	Logger   zerolog.Logger
}

// Origin publishes this node's location changes and merges the fleet's.
type Origin struct {
	opt    OriginOptions
	cons   jetstream.ConsumeContext
	cancel context.CancelFunc
	done   chan struct{}

	published, publishErrs, received, bad atomic.Uint64
}

// OriginStats are the figures of the shared origin state.
type OriginStats struct {
	Published, PublishErrors, Received, BadMessages uint64
}

type originMsg struct {
	Node string          `json:"node"`
	Loc  origin.Location `json:"location"`
}

// OriginSubjectOf is the subject of an account's location (its name in
// hex: any name is a valid token).
func OriginSubjectOf(account string) string {
	return OriginSubject + "." + hex.EncodeToString([]byte(account))
}

// StartOrigin creates (or updates) the stream, loads the fleet's locations
// into the state and follows them, and starts publishing this node's.
func StartOrigin(ctx context.Context, opt OriginOptions) (*Origin, error) {
	if opt.NC == nil || opt.JS == nil || opt.State == nil {
		return nil, errors.New("fleet origin: a connection, a JetStream context and the origin state are required")
	}
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = 24 * time.Hour
	}
	if opt.Interval <= 0 {
		opt.Interval = 100 * time.Millisecond
	}
	if _, err := opt.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: OriginStream, Subjects: []string{OriginSubject + ".*"}, Retention: jetstream.LimitsPolicy,
		Storage: jetstream.FileStorage, Replicas: opt.Replicas, MaxAge: opt.MaxAge, MaxMsgsPerSubject: 1,
	}); err != nil {
		return nil, fmt.Errorf("fleet origin: stream %s: %w", OriginStream, err)
	}
	cons, err := opt.JS.OrderedConsumer(ctx, OriginStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	if err != nil {
		return nil, fmt.Errorf("fleet origin: consumer: %w", err)
	}
	o := &Origin{opt: opt, done: make(chan struct{})}
	opt.State.EnableExport()
	if o.cons, err = cons.Consume(o.take); err != nil {
		return nil, fmt.Errorf("fleet origin: consume: %w", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	go o.run(cctx)
	return o, nil
}

func (o *Origin) take(m jetstream.Msg) {
	var om originMsg
	if err := json.Unmarshal(m.Data(), &om); err != nil {
		o.bad.Add(1)
		return
	}
	o.received.Add(1)
	if err := o.opt.State.MergeLocation(om.Loc); err != nil {
		o.bad.Add(1)
		o.opt.Logger.Warn().Err(err).Str("node", om.Node).Msg("fleet origin: location refused")
	}
}

func (o *Origin) run(ctx context.Context) {
	defer close(o.done)
	t := time.NewTicker(o.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			o.Publish()
			return
		case <-t.C:
			o.Publish()
		}
	}
}

// Publish sends the locations that moved since the last call (the run
// loop calls it every Interval).
func (o *Origin) Publish() {
	o.opt.State.ExportLocations(func(l origin.Location) {
		data, err := json.Marshal(originMsg{Node: o.opt.Node, Loc: l})
		if err == nil {
			err = o.opt.NC.Publish(OriginSubjectOf(l.Account), data)
		}
		if err != nil {
			o.publishErrs.Add(1)
			return
		}
		o.published.Add(1)
	})
}

// Stats returns the figures.
func (o *Origin) Stats() OriginStats {
	return OriginStats{Published: o.published.Load(), PublishErrors: o.publishErrs.Load(), Received: o.received.Load(), BadMessages: o.bad.Load()}
}

// Close stops publishing (after a last publish) and following.
func (o *Origin) Close() {
	o.cancel()
	<-o.done
	o.cons.Stop()
}
