package handler

import (
	"strconv"
	"time"
)

// The /ready details of fleet mode (docs/fleet.md, docs/fleet-state.md):
// without -nats (Options.Fleet, FleetState nil) there are none.

// fleetDegraded is the /ready detail of a node out of step with the fleet
// ("" when in step or not in fleet mode). /ready stays 200: the node
// serves its last applied policy, which is what the proxies need.
func (h *Handler) fleetDegraded() string {
	f := h.opt.Fleet
	if f == nil {
		return ""
	}
	if err := f.Writable(); err != nil {
		return err.Error() + "; policy stale for " + f.Stale().Round(time.Second).String()
	}
	return ""
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
