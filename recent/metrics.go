package recent

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the ring's families for /metrics.
func (r *Ring) WriteMetrics(w io.Writer) {
	p := promtext.New(w)
	held := min(r.Written(), uint64(r.Size()))
	p.Head("tollgate_recent_queries", "Check queries held in the recent-traffic ring (at most -recent-size; older than -recent-max-age are ignored by replays).", "gauge")
	p.UintLine("tollgate_recent_queries", held)
	p.Head("tollgate_recent_written_total", "Check queries ever written to the recent-traffic ring.", "counter")
	p.UintLine("tollgate_recent_written_total", r.Written())
	p.Head("tollgate_recent_lapped_total", "Check queries not recorded because a writer one lap of the ring behind still held their slot.", "counter")
	p.UintLine("tollgate_recent_lapped_total", r.Lapped())
	if r == nil {
		return
	}
	p.Head("tollgate_recent_names", "Names (accounts, subaccounts, dialled strings with no E.164 form) in the recent-traffic ring's intern table (at most 262,143).", "gauge")
	p.UintLine("tollgate_recent_names", r.names.count())
	p.Head("tollgate_recent_names_refused_total", "Names not interned because the table was full (or the name longer than 255 bytes): their queries are kept without them and skipped by what-if replays.", "counter")
	p.UintLine("tollgate_recent_names_refused_total", r.names.refused.Load())
}
