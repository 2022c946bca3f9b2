package fleet

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/velocity"
)

// StateOptions configure the fleet's shared fraud state: the velocity
// counts (Counters), the alerts (Alerts) and the location history
// (Origin). The connection fields are those of the fleet's Conn.
type StateOptions struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Node     string
	Replicas int
	// Engine is this node's velocity engine.
	Engine *velocity.Engine
	// Origin is the origin checker's state (nil: no origin sharing).
	Origin *origin.State
	// Deliver is the local alert dispatcher that gets this node's share of
	// the fleet's alerts.
	Deliver alert.Notifier
	// Counters tunes the counts' intervals (its connection fields are
	// filled from these).
	Counters CountersOptions
	Logger   zerolog.Logger
}

// State is the fleet's shared fraud state on one node. Its Alerts is the
// alert.Notifier the engine's alerts must go to (after the teardown, which
// must see every lockdown on every node).
type State struct {
	Counters *Counters
	Alerts   *Alerts
	Origin   *Origin
}

// StateStats are the figures of every part, for /metrics and /v1/fleet.
type StateStats struct {
	Counters CountersStats
	Alerts   AlertsStats
	Origin   OriginStats
}

// StartState starts the three parts. On error nothing is left running.
func StartState(ctx context.Context, opt StateOptions) (*State, error) {
	if opt.NC == nil || opt.JS == nil || opt.Engine == nil || opt.Deliver == nil {
		return nil, errors.New("fleet state: a connection, a JetStream context, an engine and a dispatcher are required")
	}
	s := &State{}
	var err error
	s.Alerts, err = StartAlerts(ctx, AlertsOptions{JS: opt.JS, Node: opt.Node, Replicas: opt.Replicas, Deliver: opt.Deliver, Logger: opt.Logger})
	if err != nil {
		return nil, err
	}
	if opt.Origin != nil {
		s.Origin, err = StartOrigin(ctx, OriginOptions{NC: opt.NC, JS: opt.JS, Node: opt.Node, State: opt.Origin, Replicas: opt.Replicas, Logger: opt.Logger})
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	co := opt.Counters
	co.NC, co.Node, co.Engine, co.Logger = opt.NC, opt.Node, opt.Engine, opt.Logger
	if s.Counters, err = StartCounters(co); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Stats returns every part's figures.
func (s *State) Stats() StateStats {
	var st StateStats
	if s.Counters != nil {
		st.Counters = s.Counters.Stats()
	}
	if s.Alerts != nil {
		st.Alerts = s.Alerts.Stats()
	}
	if s.Origin != nil {
		st.Origin = s.Origin.Stats()
	}
	return st
}

// Close stops every part.
func (s *State) Close() {
	if s.Counters != nil {
		s.Counters.Close()
	}
	if s.Origin != nil {
		s.Origin.Close()
	}
	if s.Alerts != nil {
		s.Alerts.Close()
	}
}
