package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/velocity"
)

// benchAccounts are n accounts with a velocity rule and a channel cap.
func benchAccounts(n int) map[string]string {
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("acc%06d", i)] = `{"home_country":"GB","max_channels":50,"velocity":{"rules":[{"name":"r",` +
			`"calls_per_minute":{"warning":1000000},"calls_per_window":{"warning":1000000},"concurrent_calls":{"warning":1000}}]}}`
	}
	return m
}

// BenchmarkDecideFleet is Decide on node 1 of a fleet while nodes 2 and 3
// call the same accounts as fast as they can and every node syncs its
// counts (fleet), against a lone node (solo). Decide must stay
// allocation-free: the fleet's part is one atomic load and a type check.
func BenchmarkDecideFleet(b *testing.B) {
	acc := benchAccounts(1000)
	q := &matcher.Query{To: numFR, Account: "acc000007"}
	b.Run("solo", func(b *testing.B) {
		nd := newStateNode(b, "solo", acc, velocity.Options{Interval: 250 * time.Millisecond})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if nd.m.Decide(q).Reason != matcher.ReasonOK {
				b.Fatal("refused")
			}
		}
	})
	// remote sums installed, no network: what the fleet adds to Decide
	// itself (B/op here is Decide's alone)
	b.Run("remote", func(b *testing.B) {
		nd := newStateNode(b, "n1", acc, velocity.Options{Interval: 250 * time.Millisecond})
		rem := velocity.SumCounts([]velocity.Counts{{Account: "acc000007", Live: 2, Own: 2,
			Rules: []velocity.RuleCounts{{Name: "r"}}}})
		if !nd.e.SetRemote("acc000007", "", rem) {
			b.Fatal("no scope")
		}
		if v := nd.m.Decide(q); v.MaxChannels != 48 {
			b.Fatalf("share %d", v.MaxChannels)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if nd.m.Decide(q).Reason != matcher.ReasonOK {
				b.Fatal("refused")
			}
		}
	})
	// B/op and allocs/op here are the whole process's: nodes 2 and 3
	// deciding 20,000 calls a second and the three nodes' sync allocate
	// beside node 1's Decide (which the remote case shows allocates
	// nothing: the sync only swaps the scope's remote pointer)
	b.Run("fleet", func(b *testing.B) {
		srv := stateServer(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var nodes []*stateNode
		for i := 1; i <= 3; i++ {
			nd := newStateNode(b, fmt.Sprintf("n%d", i), acc, velocity.Options{Interval: 250 * time.Millisecond})
			nc, _ := stateConn(b, srv)
			c, err := StartCountSync(CountSyncOptions{NC: nc, Node: nd.name, Engine: nd.e})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			go nd.e.Run(ctx)
			nodes = append(nodes, nd)
		}
		// nodes 2 and 3 hold a live call of the account and keep calling
		// every account: node 1 has remote sums to read, and every node
		// publishes changed scopes every 100 ms
		names := make([]string, 1000)
		for i := range names {
			names[i] = fmt.Sprintf("acc%06d", i)
		}
		for _, nd := range nodes[1:] {
			nd.e.Apply(velocity.Event{Kind: velocity.Answered, CallID: nd.name, Account: "acc000007", To: numFR})
		}
		var wg sync.WaitGroup
		for _, nd := range nodes[1:] {
			wg.Add(1)
			go func(nd *stateNode) {
				defer wg.Done()
				// 10,000 calls a second on each: 20,000 over the two,
				// spread over the 1,000 accounts
				next := time.Now()
				for i := 0; ctx.Err() == nil; i++ {
					nd.call(names[i%len(names)], numFR)
					if i%100 == 99 {
						next = next.Add(10 * time.Millisecond)
						time.Sleep(time.Until(next))
					}
				}
			}(nd)
		}
		eventually(b, "remote channels on node 1", func() bool { return nodes[0].m.Decide(q).MaxChannels == 48 })
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if v := nodes[0].m.Decide(q); v.Reason != matcher.ReasonOK {
				b.Fatalf("refused: %s %s", v.Reason, v.RuleString())
			}
		}
		b.StopTimer()
		cancel()
		wg.Wait()
	})
}

// BenchmarkCountersExport is the publishing side per changed scope:
// finding it, reading its counts and encoding it (ns/op is per scope).
func BenchmarkCountersExport(b *testing.B) {
	const n = 1000
	nd := newStateNode(b, "n1", benchAccounts(n), velocity.Options{})
	nd.e.EnableExport()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("acc%06d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	scopes := 0
	for i := 0; i < b.N; i += n {
		b.StopTimer()
		for _, a := range names {
			nd.call(a, numFR)
		}
		b.StartTimer()
		var out []velocity.Counts
		nd.e.ExportCounts(false, false, func(c velocity.Counts) { out = append(out, c) })
		data, err := json.Marshal(&countsBatch{Node: "n1", Seq: uint64(i), Scopes: out})
		if err != nil || len(data) == 0 {
			b.Fatal(err)
		}
		scopes += len(out)
		b.ReportMetric(float64(len(data))/float64(len(out)), "bytes/scope")
	}
	if scopes < b.N {
		b.Fatalf("exported %d scopes for %d", scopes, b.N)
	}
}

// BenchmarkCountersReceive is the receiving side per scope: decoding,
// replacing the node's counts and installing the sum (ns/op is per scope).
func BenchmarkCountersReceive(b *testing.B) {
	const n = 1000
	acc := benchAccounts(n)
	src := newStateNode(b, "src", acc, velocity.Options{})
	src.e.EnableExport()
	for a := range acc {
		src.call(a, numFR)
	}
	var out []velocity.Counts
	src.e.ExportCounts(true, false, func(c velocity.Counts) { out = append(out, c) })
	dst := newStateNode(b, "dst", acc, velocity.Options{})
	c := &CountSync{opt: CountSyncOptions{Node: "dst", Engine: dst.e, Now: time.Now}, nodes: map[string]*nodeState{}}
	msgs := make([][]byte, 0, 64)
	for s := uint64(1); s <= 64; s++ {
		data, _ := json.Marshal(&countsBatch{Node: "src", Epoch: 1, Seq: s, Scopes: out})
		msgs = append(msgs, data)
	}
	b.ReportAllocs()
	b.ResetTimer()
	seq := 0
	for i := 0; i < b.N; i += n {
		if seq == len(msgs) {
			b.StopTimer()
			c.nodes = map[string]*nodeState{}
			seq = 0
			b.StartTimer()
		}
		c.onBatch(&nats.Msg{Data: msgs[seq]})
		seq++
	}
	b.StopTimer()
	if dst.e.RemoteOf("acc000001", "") == nil {
		b.Fatal("nothing installed")
	}
}

// BenchmarkSyncCPU is the sync's cost at 3 nodes: 100,000 accounts on each
// node, 20,000 checks a second spread round-robin over the nodes and the
// accounts, for one second per iteration, with the counts synced (sync) or
// not (off). cpu-ms/s is the process's CPU (user + system, all three
// nodes with their evaluators, the in-process nats-server and the traffic
// generator) per second of wall time; msgs/s the count messages the three
// nodes published; checks/s the rate reached. -benchtime 3x.
func BenchmarkSyncCPU(b *testing.B) {
	const accounts, rate = 100_000, 20_000
	acc := benchAccounts(accounts)
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
			var nodes []*stateNode
			var cs []*CountSync
			for i := 1; i <= 3; i++ {
				nd := newStateNode(b, fmt.Sprintf("n%d", i), acc, velocity.Options{Interval: 250 * time.Millisecond})
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
			b.ResetTimer()
			var cpu, wall time.Duration
			var msgs uint64
			k := 0
			for it := 0; it < b.N; it++ {
				var m0 uint64
				for _, c := range cs {
					m0 += c.Stats().Published
				}
				c0 := processCPU()
				start := time.Now()
				next := start
				for time.Since(start) < time.Second {
					for j := 0; j < rate/100; j++ { // 200 checks every 10 ms
						nodes[k%3].call(names[k%accounts], numFR)
						k++
					}
					next = next.Add(10 * time.Millisecond)
					time.Sleep(time.Until(next))
				}
				cpu += processCPU() - c0
				wall += time.Since(start)
				for _, c := range cs {
					msgs += c.Stats().Published
				}
				msgs -= m0
			}
			b.ReportMetric(float64(cpu.Milliseconds())/wall.Seconds(), "cpu-ms/s")
			b.ReportMetric(float64(msgs)/wall.Seconds(), "msgs/s")
			b.ReportMetric(float64(k)/wall.Seconds(), "checks/s")
		})
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
