package service

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the service's families for /metrics: policy loads,
// storage errors, and the high-risk list and rate deck in force (labelled
// by where they come from, a closed set).
func (s *Service) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	st := s.Stats()
	p.Head("tollgate_reloads_total", "Policy loads and reloads (start, SIGHUP, POST /v1/reload), by result.", "counter")
	p.Label1("tollgate_reloads_total", "result", "success", st.Success)
	p.Label1("tollgate_reloads_total", "result", "failure", st.Failure)
	p.Gauge("tollgate_reload_success", "1 if the last load or reload succeeded, 0 if it was refused.", promtext.Bool(st.LastOK))
	var last float64
	if !st.LastSuccess.IsZero() {
		last = float64(st.LastSuccess.UnixNano()) / 1e9
	}
	p.Gauge("tollgate_reload_last_success_timestamp_seconds", "When the last successful load or reload happened.", last)
	p.Counter("tollgate_store_errors_total", "Admin writes that failed in storage (answered 500, nothing applied).", float64(st.StoreErrors))
	if info, err := s.HighRiskInfo(); err == nil {
		p.Head("tollgate_high_risk_list", "Entries of the high-risk list in force, labelled by where it comes from (file, stored, builtin).", "gauge")
		p.Label1("tollgate_high_risk_list", "origin", info.Origin, uint64(info.Entries))
	}
	if _, rd, err := s.RateDeck(); err == nil {
		p.Head("tollgate_rate_deck", "Prefixes of the rate deck in force, labelled by where it comes from (file, stored, none).", "gauge")
		p.Label1("tollgate_rate_deck", "origin", rd.Origin, uint64(rd.Entries))
	}
}
