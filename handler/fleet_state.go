package handler

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/alert"
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
	counter("tollgate_fleet_alerts_history_fallbacks_total", "Fleet mode: GET /v1/alerts answered with this node's alerts (\"source\":\"local\") because the fleet's alert stream could not be read.", h.fleetAlertFallbacks.Load())
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

// fleetAlertsLimit bounds one GET /v1/alerts in fleet mode (each alert is
// one read of the stream), and is the default; fleetAlertsTimeout bounds
// the reads, so that a slow or cut-off NATS answers with the local list.
const (
	fleetAlertsLimit   = 200
	fleetAlertsTimeout = 2 * time.Second
)

// fleetAlerts serves GET /v1/alerts in fleet mode: the fleet's latest
// alerts from its stream ("source":"fleet"), or, when the stream cannot be
// read in time, this node's list ("source":"local") with the reason in
// "degraded", a log line and tollgate_fleet_alerts_history_fallbacks_total.
func (h *Handler) fleetAlerts(ctx *fasthttp.RequestCtx, limit int) {
	if limit <= 0 || limit > fleetAlertsLimit {
		limit = fleetAlertsLimit
	}
	rctx, cancel := context.WithTimeout(context.Background(), fleetAlertsTimeout)
	list, err := h.opt.FleetState.RecentAlerts(rctx, limit)
	cancel()
	if err == nil {
		if list == nil {
			list = []alert.Alert{}
		}
		h.writeJSON(ctx, fasthttp.StatusOK, struct {
			Alerts []alert.Alert `json:"alerts"`
			Source string        `json:"source"`
		}{list, "fleet"})
		return
	}
	h.fleetAlertFallbacks.Add(1)
	h.log.Warn().Err(err).Msg("GET /v1/alerts: the fleet's alert stream cannot be read: answering with this node's alerts")
	local := []alert.Alert{}
	if h.alerts != nil {
		local = h.alerts.Recent(limit)
	}
	h.writeJSON(ctx, fasthttp.StatusOK, struct {
		Alerts   []alert.Alert `json:"alerts"`
		Source   string        `json:"source"`
		Degraded string        `json:"degraded"`
	}{local, "local", "the fleet's alert history cannot be read (" + err.Error() + "): these are the alerts this node delivered or kept"})
}
