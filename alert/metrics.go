package alert

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the alert counters by kind and level (both closed
// sets) and the webhook deliveries, for /metrics.
func (d *Dispatcher) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	st := d.Stats()
	p.Head("tollgate_alerts_total", "Alerts raised, by kind (a velocity measure, daily_spend, lockdown, unlock) and level (warning, critical, info).", "counter")
	for k, kind := range Kinds {
		for l, level := range Levels {
			if !Combination(kind, level) {
				continue
			}
			p.Label2("tollgate_alerts_total", "kind", kind, "level", level, st.Alerts[k][l])
		}
	}
	p.Head("tollgate_webhook_deliveries_total", "Webhook delivery attempts, by result (delivered, retried, failed: given up).", "counter")
	for r, name := range ResultNames {
		p.Label1("tollgate_webhook_deliveries_total", "result", name, st.Deliveries[r])
	}
	p.Head("tollgate_webhook_dropped_total", "Alerts dropped from a full webhook queue (the oldest goes).", "counter")
	p.UintLine("tollgate_webhook_dropped_total", st.Dropped)
	p.Gauge("tollgate_webhook_queue_length", "Alerts waiting for delivery, over all webhooks.", float64(st.Queued))
}

// Combination reports whether an alert of kind can have level:
// thresholds warn or are critical, lockdowns and failed teardowns are
// critical, unlocks info.
func Combination(kind, level string) bool {
	switch kind {
	case KindLockdown, KindTeardown:
		return level == LevelCritical
	case KindUnlock, KindUnconfirmedCall:
		return level == LevelInfo
	}
	return level != LevelInfo
}
