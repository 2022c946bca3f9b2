package handler

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/teardown"
)

var updateGolden = flag.Bool("update-metrics-golden", false, "rewrite testdata/metrics.golden")

// metricsShape reduces a /metrics exposition to what Prometheus rules, the
// dashboard and the docs read: every HELP and TYPE line verbatim, and every
// series as its name and label pairs without the value (le bounds and
// closed-set label values included, values of the samples dropped).
// Families are kept in their order of appearance.
func metricsShape(body string) []string {
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) `)
	var out []string
	for _, l := range strings.Split(body, "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "#"):
			out = append(out, l)
		default:
			m := series.FindStringSubmatch(l)
			if m == nil {
				out = append(out, "UNPARSABLE "+l)
				continue
			}
			out = append(out, m[1])
		}
	}
	return out
}

// TestMetricsGolden: /metrics of a handler with every optional part
// (velocity, alerts, origin, fraud state, teardown, recent ring, fleet
// policy and fleet state) writes the same families, HELP and TYPE lines
// and label sets as testdata/metrics.golden, captured before the metrics
// moved into the packages that own them. Regenerate with
// -update-metrics-golden only for an intended change of the wire contract.
func TestMetricsGolden(t *testing.T) {
	srv := startNATS(t)
	defer srv.Shutdown()
	fs := fleetNode(t, srv.ClientURL(), "n1")
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	conn, err := fleet.NewConn(nc, "n1p", 1)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(_ *service.Options, o *Options) {
		o.FleetState = fs
		o.Recent = recent.New(64, time.Hour)
	})
	td, err := teardown.New(teardown.Options{Calls: e.vel, Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: "http://127.0.0.1:1/RPC"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.h.opt.Teardown = td
	e.h.opt.State = fraudstate.NewWriter(e.st, fraudstate.Options{})
	e.h.opt.Fleet = fleet.NewPolicy(conn, e.svc, zerolog.Nop())
	// traffic of fixed shape: one allowed and one rejected decision on each
	// HTTP transport, one parse error
	e.mustA("PUT", "/v1/accounts/acme", acmeJSON)
	e.q("GET", "/v1/check?account=acme&to=%2B14155550123", "")
	e.q("GET", "/v1/check?account=acme&to=%2B4915112345678", "")
	e.q("POST", "/rpc", `{"jsonrpc":"2.0","id":1,"method":"check","params":{"account":"acme","to":"+14155550123"}}`)
	e.q("GET", "/v1/check?to=", "")
	r := e.q("GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	got := strings.Join(metricsShape(string(r.body)), "\n") + "\n"
	const path = "testdata/metrics.golden"
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		gs, ws := map[string]bool{}, map[string]bool{}
		for _, l := range gl {
			gs[l] = true
		}
		for _, l := range wl {
			ws[l] = true
		}
		for _, l := range wl {
			if !gs[l] {
				t.Errorf("missing: %s", l)
			}
		}
		for _, l := range gl {
			if !ws[l] {
				t.Errorf("new: %s", l)
			}
		}
		if !t.Failed() {
			t.Errorf("same lines in another order")
		}
	}
}
