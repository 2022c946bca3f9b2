package fleet_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tollgate/tollgate/fleet"
	"github.com/tollgate/tollgate/fleet/fleettest"
)

// benchFleet is one cluster and three tollgates shared by every run of
// BenchmarkPropagation (the framework calls it several times).
var (
	benchOnce  sync.Once
	benchNodes []*fleettest.Node
	benchURLs  string
	benchStop  []func()
	benchErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(benchStop) - 1; i >= 0; i-- {
		benchStop[i]()
	}
	os.Exit(code)
}

// onceTB lets the harness (which wants a testing.TB) run outside a test:
// failures become benchErr, cleanups run in TestMain.
type onceTB struct {
	testing.TB
}

func (o onceTB) Helper()                           {}
func (o onceTB) Cleanup(f func())                  { benchStop = append(benchStop, f) }
func (o onceTB) Fatal(args ...any)                 { benchErr = fmt.Errorf("%v", fmt.Sprint(args...)); panic(o) }
func (o onceTB) Fatalf(format string, args ...any) { benchErr = fmt.Errorf(format, args...); panic(o) }

func benchSetup(b *testing.B) {
	benchOnce.Do(func() {
		tb := onceTB{b}
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(onceTB); !ok {
					panic(r)
				}
			}
		}()
		dir, err := os.MkdirTemp("", "tollgate-fleet-bench")
		if err != nil {
			benchErr = err
			return
		}
		benchStop = append(benchStop, func() { os.RemoveAll(dir) })
		c := fleettest.StartCluster(tb, dir, 3)
		benchURLs = c.URLs()
		n1 := fleettest.StartNode(tb, dir, "n1", benchURLs, "-log-level", "warn")
		fleettest.Eventually(tb, 30*time.Second, "n1 synced", func() bool { f, err := n1.Fleet(); return err == nil && f.Synced })
		out, err := fleettest.Seed(tb, seedDirAt(tb, dir), benchURLs)
		if err != nil {
			benchErr = fmt.Errorf("seed: %v %s", err, out)
			return
		}
		n2 := fleettest.StartNode(tb, dir, "n2", benchURLs, "-log-level", "warn")
		n3 := fleettest.StartNode(tb, dir, "n3", benchURLs, "-log-level", "warn")
		benchNodes = []*fleettest.Node{n1, n2, n3}
		for _, n := range benchNodes {
			fleettest.Eventually(tb, 30*time.Second, n.Name+" seeded", func() bool { f, err := n.Fleet(); return err == nil && f.Synced && f.Seeded })
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
}

func seedDirAt(tb testing.TB, dir string) string {
	d := dir + "/seed-data"
	f := dir + "/accounts.ndjson"
	if err := os.WriteFile(f, []byte(`{"account":"acme","policy":`+acmeUS+"}\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := execTollgate(tb, "import", "-data-dir", d, f); err != nil {
		tb.Fatalf("import: %v %s", err, out)
	}
	return d
}

// BenchmarkPropagation measures, for a policy write on one of three
// nodes (round-robin), the time from the write's 200 to every node having
// applied it, as the nodes publish it in the tollgate_nodes bucket. It
// reports the median and 99th percentile; ns/op is the whole round trip
// (the write, then the wait).
func BenchmarkPropagation(b *testing.B) {
	if testing.Short() {
		b.Skip("runs three nats-servers and three tollgates")
	}
	benchSetup(b)
	nc, err := nats.Connect(benchURLs)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := b.Context()
	kv, err := js.KeyValue(ctx, fleet.NodesBucket)
	if err != nil {
		b.Fatal(err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	applied := map[string]uint64{}
	waitAll := func(rev uint64, deadline time.Time) bool {
		for {
			all := len(applied) >= len(benchNodes)
			for _, n := range benchNodes {
				if applied[n.Name] < rev {
					all = false
				}
			}
			if all {
				return true
			}
			select {
			case e := <-w.Updates():
				if e == nil {
					continue
				}
				var s fleet.NodeStatus
				if json.Unmarshal(e.Value(), &s) == nil {
					applied[s.Node] = s.Applied
				}
			case <-time.After(time.Until(deadline)):
				return false
			}
		}
	}
	bodies := []string{acmeUS, acmeUSGB}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := benchNodes[i%len(benchNodes)]
		st, body, hdr := n.Do("PUT", "/v1/accounts/acme", bodies[i%2])
		if st != 200 {
			b.Fatalf("PUT on %s: %d %s", n.Name, st, body)
		}
		acked := time.Now()
		rev, err := strconv.ParseUint(hdr.Get("Tollgate-Fleet-Revision"), 10, 64)
		if err != nil {
			b.Fatalf("no Tollgate-Fleet-Revision: %v", err)
		}
		if !waitAll(rev, acked.Add(10*time.Second)) {
			b.Fatalf("revision %d not applied everywhere within 10s: %v", rev, applied)
		}
		lat = append(lat, time.Since(acked))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
