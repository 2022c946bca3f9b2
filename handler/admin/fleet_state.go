package admin

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/alert"
)

// Fleet mode's shared fraud state (docs/fleet-state.md): its metrics and
// its /ready detail. Without -nats (Options.FleetState nil) nothing here
// writes anything.

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
func (h *API) fleetAlerts(ctx *fasthttp.RequestCtx, limit int) {
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
