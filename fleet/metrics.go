package fleet

import (
	"io"

	"github.com/tollgate/tollgate/promtext"
)

// WriteMetrics writes the fleet policy's families for /metrics.
func (p *Policy) WriteMetrics(w io.Writer) {
	m := promtext.New(w)
	m.Gauge("tollgate_policy_stale_seconds", "Fleet mode: how long this node's policy may have been behind the fleet's bucket (0 while it watches it).", p.Stale().Seconds())
	m.Gauge("tollgate_fleet_connected", "Fleet mode: 1 while a NATS server is reachable.", promtext.Bool(p.Connected()))
	m.Gauge("tollgate_fleet_synced", "Fleet mode: 1 while this node watches the policy bucket and has applied its current values.", promtext.Bool(p.Synced()))
	m.Gauge("tollgate_fleet_applied_revision", "Fleet mode: the policy bucket revision this node has applied.", float64(p.Applied()))
	st := p.Counters()
	m.Counter("tollgate_fleet_changes_applied_total", "Fleet mode: changes made on other nodes applied here.", float64(st.Applied))
	m.Counter("tollgate_fleet_apply_errors_total", "Fleet mode: bucket records refused here (unreadable or invalid); the policy in force stayed.", float64(st.Errors))
	m.Gauge("tollgate_fleet_pending_changes", "Fleet mode: locks and origin state changed here while NATS was away, not yet sent.", float64(st.Pending))
}

// WriteMetrics writes the fleet state's families for /metrics.
// historyFallbacks is the admin API's count of GET /v1/alerts answered
// from the local list because the stream could not be read.
func (s *State) WriteMetrics(w io.Writer, historyFallbacks uint64) {
	m := promtext.New(w)
	st := s.Stats()
	c := st.Counters
	m.Gauge("tollgate_fleet_state_nodes", "Fleet mode: other nodes whose velocity counts are in this node's sums (a node silent for 5 s drops out).", float64(len(c.Nodes)))
	lag := 0.0
	for _, n := range c.Nodes {
		lag = max(lag, n.LagSeconds)
	}
	m.Gauge("tollgate_fleet_state_lag_seconds", "Fleet mode: the largest age of another node's counts when they arrived here (clock skew included).", lag)
	m.Head("tollgate_fleet_state_messages_total", "Fleet mode: velocity count messages by direction.", "counter")
	m.Line(`tollgate_fleet_state_messages_total{direction="published"}`, float64(c.Published))
	m.Line(`tollgate_fleet_state_messages_total{direction="received"}`, float64(c.Received))
	m.Head("tollgate_fleet_state_bytes_total", "Fleet mode: velocity count bytes by direction.", "counter")
	m.Line(`tollgate_fleet_state_bytes_total{direction="published"}`, float64(c.PublishedBytes))
	m.Line(`tollgate_fleet_state_bytes_total{direction="received"}`, float64(c.ReceivedBytes))
	m.Counter("tollgate_fleet_state_publish_errors_total", "Fleet mode: velocity count messages that could not be sent (the next snapshot repeats them).", float64(c.PublishErrors))
	m.Counter("tollgate_fleet_state_gaps_total", "Fleet mode: messages of another node found missing; each asks that node for a snapshot.", float64(c.Gaps))
	m.Counter("tollgate_fleet_state_stale_messages_total", "Fleet mode: messages dropped as older than one already applied.", float64(c.Stale))
	m.Counter("tollgate_fleet_state_name_clashes_total", "Fleet mode: count messages from another tollgate using this node's -node name (both nodes' counts are lost: rename one).", float64(c.NameClashes))
	m.Counter("tollgate_fleet_state_bad_messages_total", "Fleet mode: count messages refused (undecodable, or negative counts).", float64(c.BadMessages))
	m.Counter("tollgate_fleet_state_nodes_dropped_total", "Fleet mode: nodes whose counts dropped out of the sums after falling silent.", float64(c.NodesDropped))
	a := st.Alerts
	m.Head("tollgate_fleet_alerts_total", "Fleet mode: alerts by what became of them: published to the fleet's stream, duplicate (another node published it first), local (delivered by this node alone, the stream unreachable), delivered (this node's share of the stream's alerts), retried (publishes tried again).", "counter")
	for _, r := range []struct {
		name string
		v    uint64
	}{{"published", a.Published}, {"duplicate", a.Duplicates}, {"local", a.Local}, {"delivered", a.Delivered}, {"retried", a.Retries}} {
		m.Line(`tollgate_fleet_alerts_total{result="`+r.name+`"}`, float64(r.v))
	}
	m.Counter("tollgate_fleet_alerts_history_fallbacks_total", "Fleet mode: GET /v1/alerts answered with this node's alerts (\"source\":\"local\") because the fleet's alert stream could not be read.", float64(historyFallbacks))
	m.Gauge("tollgate_fleet_state_streams", "Fleet mode: 1 once the alert and origin streams are set up (until then alerts are delivered locally).", promtext.Bool(st.Streams))
	m.Head("tollgate_fleet_origin_messages_total", "Fleet mode: location history messages by direction.", "counter")
	m.Line(`tollgate_fleet_origin_messages_total{direction="published"}`, float64(st.Origin.Published))
	m.Line(`tollgate_fleet_origin_messages_total{direction="received"}`, float64(st.Origin.Received))
}
