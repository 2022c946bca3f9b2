package fleet

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/velocity"
)

// fleet20Rate is BenchmarkFleet20's checks per second over the 20 nodes
// (go test … -args -fleet20-rate N): the 20,000 by default; a
// lower rate shows the staleness when a shared machine cannot give the
// process the CPU 20,000 need.
var fleet20Rate = flag.Int("fleet20-rate", 20_000, "BenchmarkFleet20: checks per second over the 20 nodes (a multiple of 100)")

// benchSet parses the accounts once, so that twenty nodes share one
// parsed policy (compiling it is per node, as in a real fleet).
func benchSet(b *testing.B, accounts map[string]string) *policy.Set {
	b.Helper()
	set := &policy.Set{Accounts: make(map[string]policy.Account, len(accounts))}
	for acc, doc := range accounts {
		var a policy.Account
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			b.Fatalf("account %s: %v", acc, err)
		}
		set.Accounts[acc] = a
	}
	return set
}

// newSetNode is newStateNode over an already parsed policy.
func newSetNode(b *testing.B, name string, set *policy.Set, opt velocity.Options) *stateNode {
	b.Helper()
	nd := &stateNode{name: name, n: &notes{}}
	opt.Notifier = nd.n
	nd.e = velocity.New(opt)
	nd.m = matcher.New(statePlan, matcher.Options{Velocity: nd.e})
	snap, err := matcher.CompileFrom(nd.m.Snapshot(), set, statePlan)
	if err != nil {
		b.Fatal(err)
	}
	nd.m.Swap(snap)
	if err := nd.e.Sync(set); err != nil {
		b.Fatal(err)
	}
	return nd
}

// BenchmarkFleet20 simulates a 20-node fleet in one process: 20 velocity
// engines with their matchers, each with its own NATS connection and
// CountSync (sync) or none (off), on one in-process nats-server; 100,000
// accounts on every node; checks spread round-robin over the nodes and the
// accounts at -fleet20-rate (20,000 a second by default: 1,000 per node), for one
// second per iteration. Metrics:
//   - cpu-ms/s: the process's CPU (getrusage user + system: the 20 nodes,
//     their evaluators, the nats-server, the traffic generator and the
//     staleness prober) per second of wall time; cpu-ms/s/node is that over
//     20 (the sync's cost per node is sync's minus off's, over 20);
//   - msgs/s and pub-B/s: count messages and bytes the nodes published;
//     recv-B/s: the bytes delivered to them (each message reaches 19);
//   - stale-p50-ms, stale-p99-ms: from a call answered on a random node i
//     to its channel being in the remote sum installed on a random other
//     node j (the prober stamps the answer and polls j every 0.5 ms);
//   - checks/s: the rate reached.
//
// -benchtime 3x; the setup (20 × 100,000 accounts compiled) takes tens of
// seconds and is not timed.
func BenchmarkFleet20(b *testing.B) {
	const nodesN, accounts = 20, 100_000
	rate := max(*fleet20Rate/100*100, 100)
	acc := benchAccounts(accounts)
	acc["probe"] = `{"max_channels":1000}`
	set := benchSet(b, acc)
	names := make([]string, accounts)
	for i := range names {
		names[i] = fmt.Sprintf("acc%06d", i)
	}
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "sync"
		}
		b.Run(name, func(b *testing.B) {
			srv := stateServer(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			nodes := make([]*stateNode, 0, nodesN)
			var cs []*CountSync
			for i := 1; i <= nodesN; i++ {
				nd := newSetNode(b, "n"+strconv.Itoa(i), set, velocity.Options{Interval: 250 * time.Millisecond})
				if on {
					nc, _ := stateConn(b, srv)
					c, err := StartCountSync(CountSyncOptions{NC: nc, Node: nd.name, Engine: nd.e})
					if err != nil {
						b.Fatal(err)
					}
					defer c.Close()
					cs = append(cs, c)
				}
				go nd.e.Run(ctx)
				nodes = append(nodes, nd)
			}
			if on {
				// every node hears every other before the clock starts
				eventually(b, "20 nodes heard", func() bool {
					for _, c := range cs {
						if len(c.Stats().Nodes) != nodesN-1 {
							return false
						}
					}
					return true
				})
			}
			// the prober: a call answered on node i, timed until node j's
			// installed sum holds it, then ended, timed until it is gone
			var stale []time.Duration
			probeDone := make(chan struct{})
			pctx, pcancel := context.WithCancel(ctx)
			defer pcancel()
			go func() {
				defer close(probeDone)
				if !on {
					return
				}
				seq := 0
				for pctx.Err() == nil {
					i := rand.IntN(nodesN)
					j := (i + 1 + rand.IntN(nodesN-1)) % nodesN
					seq++
					id := "probe-" + strconv.Itoa(seq)
					for _, kind := range []velocity.EventKind{velocity.Answered, velocity.Ended} {
						want := 1
						if kind == velocity.Ended {
							want = 0
						}
						t0 := time.Now()
						nodes[i].e.Apply(velocity.Event{Kind: kind, CallID: id, Account: "probe", To: numFR})
						for pctx.Err() == nil {
							r := nodes[j].e.RemoteOf("probe", "")
							if (r == nil && want == 0) || (r != nil && r.Live == want) {
								stale = append(stale, time.Since(t0))
								break
							}
							if time.Since(t0) > 10*time.Second {
								break // lost: the missing sample shows in the count
							}
							time.Sleep(500 * time.Microsecond)
						}
					}
					time.Sleep(50 * time.Millisecond)
				}
			}()
			b.ResetTimer()
			var cpu, wall time.Duration
			var msgs, pubB, recvB uint64
			k := 0
			for it := 0; it < b.N; it++ {
				var m0, p0, r0 uint64
				for _, c := range cs {
					st := c.Stats()
					m0, p0, r0 = m0+st.Published, p0+st.PublishedBytes, r0+st.ReceivedBytes
				}
				c0 := processCPU()
				start := time.Now()
				next := start
				for time.Since(start) < time.Second {
					for j := 0; j < rate/100; j++ { // 200 checks every 10 ms
						if v := nodes[k%nodesN].call(names[k%accounts], numFR); v.Reason != matcher.ReasonOK {
							b.Fatalf("refused: %s %s", v.Reason, v.RuleString())
						}
						k++
					}
					next = next.Add(10 * time.Millisecond)
					time.Sleep(time.Until(next))
				}
				cpu += processCPU() - c0
				wall += time.Since(start)
				for _, c := range cs {
					st := c.Stats()
					msgs, pubB, recvB = msgs+st.Published, pubB+st.PublishedBytes, recvB+st.ReceivedBytes
				}
				msgs, pubB, recvB = msgs-m0, pubB-p0, recvB-r0
			}
			b.StopTimer()
			pcancel()
			<-probeDone
			cpuMS := float64(cpu.Microseconds()) / 1000 / wall.Seconds()
			b.ReportMetric(cpuMS, "cpu-ms/s")
			b.ReportMetric(cpuMS/nodesN, "cpu-ms/s/node")
			b.ReportMetric(float64(msgs)/wall.Seconds(), "msgs/s")
			b.ReportMetric(float64(pubB)/wall.Seconds(), "pub-B/s")
			b.ReportMetric(float64(recvB)/wall.Seconds(), "recv-B/s")
			b.ReportMetric(float64(k)/wall.Seconds(), "checks/s")
			if on {
				// none at all: no count crossed the fleet in the whole run
				// (each probe waits up to 10 s); a saturated machine gives
				// few, and stale-samples says how many
				if len(stale) == 0 {
					b.Fatal("no staleness sample: no count reached another node")
				}
				sort.Slice(stale, func(x, y int) bool { return stale[x] < stale[y] })
				q := func(p float64) float64 { return float64(stale[int(p*float64(len(stale)-1))].Microseconds()) / 1000 }
				b.ReportMetric(q(0.50), "stale-p50-ms")
				b.ReportMetric(q(0.99), "stale-p99-ms")
				b.ReportMetric(float64(len(stale)), "stale-samples")
			}
		})
	}
}
