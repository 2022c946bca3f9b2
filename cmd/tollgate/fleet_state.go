package main

import (
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/velocity"
)

// startFleetState shares the fraud state over the fleet policy's
// connection (docs/fleet-state.md): the velocity counts, the alerts (which
// route, after the teardown, goes from the local dispatcher to the fleet's
// stream) and the origin location history. Without fleet mode it returns
// nil and a no-op stop.
func startFleetState(p *fleet.Policy, vel *velocity.Engine, orig *origin.Checker, dispatcher alert.Notifier, route *fleet.Switch, log zerolog.Logger) (*fleet.State, func(), error) {
	if p == nil {
		return nil, func() {}, nil
	}
	s, err := fleet.StartState(fleet.StateOptions{Conn: p.Conn(), Engine: vel, Origin: orig.State(), Deliver: dispatcher, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	route.Set(s)
	log.Info().Msg("fleet mode: velocity counts, alerts and origin history are shared with the fleet")
	return s, func() {
		route.Set(dispatcher) // the last alerts of the shutdown go out locally
		s.Close()
	}, nil
}
