package teardown

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the teardowns' counters for /metrics: results and
// RPC outcomes are closed sets; no account, call or proxy becomes a label.
func (t *Teardown) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	st := t.Stats()
	p.Head("tollgate_teardown_triggers_total", "Lockdowns (and, with -teardown-on-spend, daily-spend criticals) that asked for the live international calls of a scope to be ended.", "counter")
	p.UintLine("tollgate_teardown_triggers_total", st.Triggers)
	p.Head("tollgate_teardown_calls_total", "Live calls a teardown looked at, by result: ended, not_found (the proxy had no such dialog), gone (its end arrived first), refused (the proxy answered with another error), failed (no answer after -teardown-attempts; alerted), no_proxy (the call's proxy id is not in -proxy-control), no_dialog (its events lacked the dialog's identifiers), domestic (left up), dropped (queue full).", "counter")
	for r, name := range ResultNames {
		p.Label1("tollgate_teardown_calls_total", "result", name, st.Calls[r])
	}
	p.Head("tollgate_teardown_rpcs_total", "Requests to the proxies' control interfaces, by result: ok, error (the proxy answered with an error), failed (no usable answer: refused, timeout, HTTP error).", "counter")
	for r, name := range RPCResultNames {
		p.Label1("tollgate_teardown_rpcs_total", "result", name, st.RPCs[r])
	}
	p.Gauge("tollgate_teardown_pending", "Calls queued for a teardown or in a request to their proxy.", float64(st.Pending))
}
