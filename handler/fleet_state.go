package handler

import (
	"bytes"
	"strconv"
)

// Fleet mode's shared fraud state (docs/fleet-state.md): its metrics and
// its /ready detail. Without -nats (Options.FleetState nil) nothing here
// writes anything.

// writeFleetStateMetrics adds the fleet state's lines to /metrics.
func (h *Handler) writeFleetStateMetrics(b *bytes.Buffer, gauge func(name, help string, v float64), head func(name, help, typ string), line func(name string, v float64)) {
	fs := h.opt.FleetState
	if fs == nil {
		return
	}
	st := fs.Stats()
	c := st.Counters
	gauge("tollgate_fleet_state_nodes", "Fleet mode: other nodes whose velocity counts are in this node's sums (a node silent for 5 s drops out).", float64(len(c.Nodes)))
	lag := 0.0
	for _, n := range c.Nodes {
		lag = max(lag, n.LagSeconds)
	}
	gauge("tollgate_fleet_state_lag_seconds", "Fleet mode: the largest age of another node's counts when they arrived here (clock skew included).", lag)
	head("tollgate_fleet_state_messages_total", "Fleet mode: velocity count messages by direction.", "counter")
	line(`tollgate_fleet_state_messages_total{direction="published"}`, float64(c.Published))
	line(`tollgate_fleet_state_messages_total{direction="received"}`, float64(c.Received))
	head("tollgate_fleet_state_bytes_total", "Fleet mode: velocity count bytes by direction.", "counter")
	line(`tollgate_fleet_state_bytes_total{direction="published"}`, float64(c.PublishedBytes))
	line(`tollgate_fleet_state_bytes_total{direction="received"}`, float64(c.ReceivedBytes))
	counter := func(name, help string, v uint64) {
		head(name, help, "counter")
		line(name, float64(v))
	}
	counter("tollgate_fleet_state_publish_errors_total", "Fleet mode: velocity count messages that could not be sent (the next snapshot repeats them).", c.PublishErrors)
	counter("tollgate_fleet_state_gaps_total", "Fleet mode: messages of another node found missing; each asks that node for a snapshot.", c.Gaps)
	counter("tollgate_fleet_state_stale_messages_total", "Fleet mode: messages dropped as older than one already applied.", c.Stale)
	counter("tollgate_fleet_state_name_clashes_total", "Fleet mode: count messages from another tollgate using this node's -node name (both nodes' counts are lost: rename one).", c.NameClashes)
	counter("tollgate_fleet_state_bad_messages_total", "Fleet mode: count messages refused (undecodable, or negative counts).", c.BadMessages)
	counter("tollgate_fleet_state_nodes_dropped_total", "Fleet mode: nodes whose counts dropped out of the sums after falling silent.", c.NodesDropped)
	a := st.Alerts
	head("tollgate_fleet_alerts_total", "Fleet mode: alerts by what became of them: published to the fleet's stream, duplicate (another node published it first), local (delivered by this node alone, the stream unreachable), delivered (this node's share of the stream's alerts), retried (publishes tried again).", "counter")
	for _, r := range []struct {
		name string
		v    uint64
	}{{"published", a.Published}, {"duplicate", a.Duplicates}, {"local", a.Local}, {"delivered", a.Delivered}, {"retried", a.Retries}} {
		line(`tollgate_fleet_alerts_total{result="`+r.name+`"}`, float64(r.v))
	}
	gauge("tollgate_fleet_state_streams", "Fleet mode: 1 once the alert and origin streams are set up (until then alerts are delivered locally).", b2f(st.Streams))
	head("tollgate_fleet_origin_messages_total", "Fleet mode: location history messages by direction.", "counter")
	line(`tollgate_fleet_origin_messages_total{direction="published"}`, float64(st.Origin.Published))
	line(`tollgate_fleet_origin_messages_total{direction="received"}`, float64(st.Origin.Received))
}

// fleetStateDegraded is the /ready detail of the fleet state ("" when
// whole or not in fleet mode).
func (h *Handler) fleetStateDegraded() string {
	fs := h.opt.FleetState
	if fs == nil {
		return ""
	}
	st := fs.Stats()
	if !st.Streams {
		return "fleet state: the alert and origin streams are not set up: alerts are delivered by this node alone (" +
			strconv.FormatUint(st.Alerts.Local, 10) + " so far), locations not shared"
	}
	return ""
}

// joinDetail joins two /ready details.
func joinDetail(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
