package origin

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the origin checks' counters for /metrics: labels are
// origin rules, actions and causes (closed sets); no account, number or
// address ever becomes a label. degraded is whether origin rules in force
// read the origin country while no Geo-IP database is (Degraded, which
// needs the snapshot in force).
func (c *Checker) WriteMetrics(w io.Writer, degraded bool) {
	p := promtext.New(w)
	p.Head("tollgate_origin_checks_total", "Origin checks of calls the destination rules allowed, by the origin rule that applied and its action (allow, screen, reject).", "counter")
	c.Outcomes(func(r Rule, a Action, n uint64) {
		if n == 0 && r != RuleZone {
			return // keep the exposition short; zone rows are always there
		}
		p.Label2("tollgate_origin_checks_total", "rule", r.String(), "action", a.String(), n)
	})
	st := c.State().Counters()
	p.Head("tollgate_screenings_total", "Screening IVR results reported through the admin API, by result.", "counter")
	p.Label1("tollgate_screenings_total", "result", "passed", st.ScreeningsPassed)
	p.Label1("tollgate_screenings_total", "result", "failed", st.ScreeningsFailed)
	p.Counter("tollgate_quarantines_total", "Accounts quarantined after too many failed screenings.", float64(st.Quarantines))
	p.Counter("tollgate_quarantine_releases_total", "Quarantines lifted by an operator.", float64(st.Releases))
	p.Head("tollgate_unblock_code_checks_total", "Service unblock code verifications, by result (verified, wrong; lockouts counts the lock-outs they caused).", "counter")
	p.Label1("tollgate_unblock_code_checks_total", "result", "verified", st.CodesVerified)
	p.Label1("tollgate_unblock_code_checks_total", "result", "wrong", st.CodesWrong)
	p.Counter("tollgate_unblock_code_lockouts_total", "Unblock code verifications locked out after too many wrong codes.", float64(st.CodeLockouts))
	p.Gauge("tollgate_origin_accounts", "Accounts with origin state (calling history, screening, home, unblock code).", float64(st.Accounts))
	g := c.Geo()
	tab := g.Table()
	loaded, ranges := 0.0, 0.0
	if tab != nil {
		loaded, ranges = 1, float64(tab.Info.Ranges)
	}
	p.Gauge("tollgate_geoip_loaded", "1 when a Geo-IP database is in force, 0 otherwise (every origin is then unknown).", loaded)
	p.Gauge("tollgate_origin_degraded", "1 when origin rules read the origin country but no Geo-IP database is in force: every origin is unknown and gets the unknown action.", promtext.Bool(degraded))
	p.Head("tollgate_origin_unknown_total", "Origin checks that met an unknown origin, by cause (missing, invalid, no_geoip, not_in_database).", "counter")
	c.Unknowns(func(cause UnknownCause, n uint64) {
		p.Label1("tollgate_origin_unknown_total", "cause", cause.String(), n)
	})
	p.Gauge("tollgate_geoip_ranges", "Address ranges of the Geo-IP database in force.", ranges)
	ok, refused := g.Loads()
	p.Head("tollgate_geoip_loads_total", "Geo-IP database loads, by result (ok, refused: the file in force stays).", "counter")
	p.Label1("tollgate_geoip_loads_total", "result", "ok", ok)
	p.Label1("tollgate_geoip_loads_total", "result", "refused", refused)
}
