package fleet

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/velocity"
)

// StateOptions configure the fleet's shared fraud state: the velocity
// counts (Counters), the alerts (Alerts) and the location history
// (Origin).
type StateOptions struct {
	// Conn is the fleet connection (NATS may be down: the parts start
	// when it comes up).
	Conn *Conn
	// Engine is this node's velocity engine.
	Engine *velocity.Engine
	// Origin is the origin checker's state (nil: no origin sharing).
	Origin *origin.State
	// Deliver is the local alert dispatcher that gets this node's share of
	// the fleet's alerts, and every alert while the stream is unreachable.
	Deliver alert.Notifier
	// Counters tunes the counts' intervals (its connection fields are
	// filled from Conn).
	Counters CountSyncOptions
	Logger   zerolog.Logger
}

// State is the fleet's shared fraud state on one node. It is the
// alert.Notifier the engine's alerts must go to (after the teardown, which
// must see every lockdown on every node).
type State struct {
	opt      StateOptions
	Counters *CountSync

	mu     sync.Mutex
	alerts atomic.Pointer[Alerts]
	origin *Origin
	cancel context.CancelFunc
	done   chan struct{}
	// local counts alerts delivered by this node alone because the
	// stream was not set up yet (NATS down since the start).
	local atomic.Uint64
}

// StateStats are the figures of every part, for /metrics and /v1/fleet.
type StateStats struct {
	Counters CountSyncStats
	Alerts   AlertsStats
	Origin   OriginStats
	// Streams is true once the alert and origin streams are set up.
	Streams bool
}

// StartState starts the counts at once (core NATS subscriptions survive a
// server being down) and sets up the alert and origin streams as soon as
// JetStream answers, retrying in the background: a node that starts while
// NATS is down still starts. Until then its alerts are delivered locally,
// with their fleet key.
func StartState(opt StateOptions) (*State, error) {
	if opt.Conn == nil || opt.Conn.NC == nil || opt.Engine == nil || opt.Deliver == nil {
		return nil, errors.New("fleet state: a connection, an engine and a dispatcher are required")
	}
	s := &State{opt: opt, done: make(chan struct{})}
	co := opt.Counters
	co.NC, co.Node, co.Engine, co.Logger = opt.Conn.NC, opt.Conn.Node, opt.Engine, opt.Logger
	var err error
	if s.Counters, err = StartCountSync(co); err != nil {
		return nil, err
	}
	// back from an outage: ask every node for its counts now
	opt.Conn.OnChange(func(up bool) {
		if up {
			s.Counters.Resync()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.setup(ctx)
	return s, nil
}

// setup creates the streams, retrying until it succeeds or ctx ends.
func (s *State) setup(ctx context.Context) {
	defer close(s.done)
	wait := 250 * time.Millisecond
	for {
		if err := s.trySetup(ctx); err == nil {
			return
		} else if ctx.Err() == nil {
			s.opt.Logger.Warn().Err(err).Dur("retry_in", wait).
				Msg("fleet state: streams not set up yet: alerts are delivered by this node alone, locations not shared")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (s *State) trySetup(ctx context.Context) error {
	c := s.opt.Conn
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.alerts.Load() == nil {
		a, err := StartAlerts(tctx, AlertsOptions{JS: c.JS, Node: c.Node, Replicas: c.Replicas, Deliver: s.opt.Deliver, Logger: s.opt.Logger})
		if err != nil {
			return err
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			a.Close()
			return ctx.Err()
		}
		s.alerts.Store(a)
		s.mu.Unlock()
	}
	if s.opt.Origin != nil {
		o, err := StartOrigin(tctx, OriginOptions{NC: c.NC, JS: c.JS, Node: c.Node, State: s.opt.Origin, Replicas: c.Replicas, Logger: s.opt.Logger})
		if err != nil {
			return err
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			o.Close()
			return ctx.Err()
		}
		s.origin = o
		s.mu.Unlock()
	}
	s.opt.Logger.Info().Msg("fleet state: alert and origin streams set up")
	return nil
}

// Notify implements alert.Notifier: the alert goes to the fleet's stream,
// or, before the stream is set up, to the local dispatcher with its fleet
// key.
func (s *State) Notify(a alert.Alert) {
	if al := s.alerts.Load(); al != nil {
		al.Notify(a)
		return
	}
	key := AlertKey(a)
	a.ID, a.IdempotencyKey = key, key
	s.local.Add(1)
	s.opt.Deliver.Notify(a)
}

// ErrNoAlertStream is RecentAlerts' answer before the alert stream is set
// up (NATS down since the start).
var ErrNoAlertStream = errors.New("fleet alerts: the alert stream is not set up yet")

// RecentAlerts returns up to n of the fleet's latest alerts (every node's,
// as the alert stream holds them), newest first, for GET /v1/alerts. It
// fails rather than wait when NATS is unreachable; ctx bounds the reads.
func (s *State) RecentAlerts(ctx context.Context, n int) ([]alert.Alert, error) {
	a := s.alerts.Load()
	if a == nil {
		return nil, ErrNoAlertStream
	}
	return a.Recent(ctx, n)
}

// Stats returns every part's figures.
func (s *State) Stats() StateStats {
	st := StateStats{Counters: s.Counters.Stats()}
	if a := s.alerts.Load(); a != nil {
		st.Alerts = a.Stats()
		st.Streams = true
	}
	st.Alerts.Local += s.local.Load()
	s.mu.Lock()
	if s.origin != nil {
		st.Origin = s.origin.Stats()
	} else if s.opt.Origin != nil {
		st.Streams = false
	}
	s.mu.Unlock()
	return st
}

// Close stops every part.
func (s *State) Close() {
	s.cancel()
	<-s.done
	s.Counters.Close()
	s.mu.Lock()
	o := s.origin
	s.mu.Unlock()
	if o != nil {
		o.Close()
	}
	if a := s.alerts.Load(); a != nil {
		a.Close()
	}
}

// Conn is the fleet connection the policy runs on, for the fraud state to
// share it.
func (p *Policy) Conn() *Conn { return p.c }

// Switch is an alert.Notifier whose target can change while alerts flow:
// the daemon points it at the local dispatcher, then, in fleet mode, at the
// fleet's State once that has started.
type Switch struct{ to atomic.Pointer[notifierBox] }

type notifierBox struct{ n alert.Notifier }

// Set makes n the target.
func (s *Switch) Set(n alert.Notifier) { s.to.Store(&notifierBox{n}) }

// Notify implements alert.Notifier.
func (s *Switch) Notify(a alert.Alert) {
	if b := s.to.Load(); b != nil {
		b.n.Notify(a)
	}
}
