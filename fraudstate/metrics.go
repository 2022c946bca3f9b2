package fraudstate

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the fraud state writer's families for /metrics.
func (w *Writer) WriteMetrics(out io.Writer) {
	p := promtext.New(out)
	st := w.Stats()
	p.Head("tollgate_state_flushes_total", "Writes of the fraud state to the data file, by result (ok, failed: kept for the next one).", "counter")
	p.Label1("tollgate_state_flushes_total", "result", "ok", st.Flushes)
	p.Label1("tollgate_state_flushes_total", "result", "failed", st.Failures)
	p.Counter("tollgate_state_records_written_total", "Fraud state records written or deleted.", float64(st.Records))
	last := 0.0
	if !st.LastFlush.IsZero() {
		last = float64(st.LastFlush.UnixNano()) / 1e9
	}
	p.Gauge("tollgate_state_last_flush_timestamp_seconds", "When the fraud state was last written: what a kill -9 now would keep.", last)
	p.Gauge("tollgate_state_flush_seconds", "How long the last write of the fraud state took.", st.LastDuration.Seconds())
	p.Gauge("tollgate_state_pending_records", "Records queued for the next write of the fraud state (alerts, webhook deliveries).", float64(st.Pending))
}
