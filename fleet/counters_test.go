package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/velocity"
)

const (
	numFR = "+33142685300"
	numDE = "+4930123456"
)

// fleetOf starts n nodes with the accounts, each publishing its counts on
// its own connection to s and evaluating its rules.
func fleetOf(t *testing.T, n int, accounts map[string]string, copt CountSyncOptions) ([]*stateNode, []*CountSync) {
	t.Helper()
	srv := stateServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var nodes []*stateNode
	var cs []*CountSync
	for i := 0; i < n; i++ {
		nd := newStateNode(t, fmt.Sprintf("n%d", i+1), accounts, velocity.Options{})
		nc, _ := stateConn(t, srv)
		o := copt
		o.NC, o.Node, o.Engine = nc, nd.name, nd.e
		c, err := StartCountSync(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		go nd.e.Run(ctx)
		nodes, cs = append(nodes, nd), append(cs, c)
	}
	return nodes, cs
}

func measure(t *testing.T, nd *stateNode, account, m string) int {
	t.Helper()
	st, err := nd.e.State(account)
	if err != nil {
		t.Fatal(err)
	}
	return st.Rules[0].Measures[m].Value
}

// Every node sees the fleet's sum of every summable measure.
func TestCountersFleetSum(t *testing.T) {
	acc := map[string]string{"acme": `{"home_country":"GB","velocity":{"rules":[{"name":"all",` +
		`"calls_per_minute":{"warning":1000,"critical":2000},"calls_per_window":{"warning":1000},` +
		`"blocked_attempts":{"warning":1000},"concurrent_calls":{"warning":1000}}]}}`}
	nodes, _ := fleetOf(t, 3, acc, CountSyncOptions{})
	for i, nd := range nodes {
		for k := 0; k <= i; k++ { // 1, 2 and 3 calls: a sum of 6
			if v := nd.call("acme", numFR); v.Reason != matcher.ReasonOK {
				t.Fatalf("%s: %s", nd.name, v.Reason)
			}
		}
		nd.e.Apply(velocity.Event{Kind: velocity.Answered, CallID: nd.name + "-c", Account: "acme", To: numFR})
	}
	for _, nd := range nodes {
		eventually(t, nd.name+" sums", func() bool {
			return measure(t, nd, "acme", "calls_per_minute") == 6 && measure(t, nd, "acme", "calls_per_window") == 6 &&
				measure(t, nd, "acme", "concurrent_calls") == 3
		})
	}
	// a call ends on node 1: every node's concurrent sum drops to 2
	nodes[0].e.Apply(velocity.Event{Kind: velocity.Ended, CallID: "n1-c", Account: "acme", To: numFR, Duration: time.Second})
	for _, nd := range nodes {
		eventually(t, nd.name+" concurrent 2", func() bool { return measure(t, nd, "acme", "concurrent_calls") == 2 })
	}
}

// publishBatch sends a hand-made batch as node "x" would.
func publishBatch(t *testing.T, nc *nats.Conn, b countsBatch) {
	t.Helper()
	data, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(CountsSubject, data); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A repeated, duplicated or late message replaces what it says, never adds
// to it; a silent node drops out after the timeout.
func TestCountersReplaceNotAdd(t *testing.T) {
	acc := map[string]string{"acme": `{"home_country":"GB","max_channels":10}`}
	srv := stateServer(t)
	nd := newStateNode(t, "n1", acc, velocity.Options{})
	nc, _ := stateConn(t, srv)
	c, err := StartCountSync(CountSyncOptions{NC: nc, Node: "n1", Engine: nd.e, Snapshot: 200 * time.Millisecond, Heartbeat: 100 * time.Millisecond, Timeout: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	x, _ := stateConn(t, srv)
	own := func() int { ch, _, _ := nd.e.Scope("acme", "").(matcher.FleetScope).RemoteUse(); return ch }
	four := countsBatch{Node: "x", Epoch: 7, Seq: 1, Scopes: []velocity.Counts{{Account: "acme", Live: 4, Own: 4}}}
	for i := 0; i < 3; i++ { // the same message three times
		publishBatch(t, x, four)
	}
	eventually(t, "remote 4", func() bool { return own() == 4 })
	three := four
	three.Seq, three.Scopes = 2, []velocity.Counts{{Account: "acme", Live: 3, Own: 3}}
	publishBatch(t, x, three)
	publishBatch(t, x, four) // late: seq 1 after seq 2
	eventually(t, "remote 3", func() bool { return own() == 3 })
	eventually(t, "stale message counted", func() bool { return c.Stats().Stale >= 3 })
	if got := own(); got != 3 {
		t.Fatalf("remote channels %d after a late message, want 3", got)
	}
	if v := nd.call("acme", numFR); v.MaxChannels != 7 {
		t.Fatalf("max_channels share %d, want 10-3", v.MaxChannels)
	}
	// forged negative counts are refused whole
	publishBatch(t, x, countsBatch{Node: "x", Epoch: 7, Seq: 3, Scopes: []velocity.Counts{{Account: "acme", Live: -50, Own: -50}}})
	eventually(t, "a bad message counted", func() bool { return c.Stats().BadMessages == 1 })
	if got := own(); got != 3 {
		t.Fatalf("remote channels %d after negative counts, want 3", got)
	}
	// another process using n1's name is reported
	publishBatch(t, x, countsBatch{Node: "n1", Epoch: 99, Seq: 1})
	eventually(t, "a name clash counted", func() bool { return c.Stats().NameClashes == 1 })
	// a full snapshot without the scope forgets it
	publishBatch(t, x, countsBatch{Node: "x", Epoch: 7, Seq: 3, Snap: 3, Last: true})
	eventually(t, "remote 0 after a snapshot", func() bool { return own() == 0 })
	publishBatch(t, x, countsBatch{Node: "x", Epoch: 7, Seq: 4, Scopes: []velocity.Counts{{Account: "acme", Live: 5, Own: 5}}})
	eventually(t, "remote 5", func() bool { return own() == 5 })
	// a gap in x's sequence: n1 asks x for a snapshot at once
	asks, err := x.SubscribeSync(CountsSyncSubject)
	if err != nil {
		t.Fatal(err)
	}
	x.Flush()
	publishBatch(t, x, countsBatch{Node: "x", Epoch: 7, Seq: 9, Scopes: []velocity.Counts{{Account: "acme", Live: 5, Own: 5}}})
	m, err := asks.NextMsg(15 * time.Second)
	if err != nil {
		t.Fatal("no snapshot request after a gap:", err)
	}
	var rq syncRequest
	if json.Unmarshal(m.Data, &rq) != nil || rq.From != "n1" || rq.To != "x" {
		t.Fatalf("snapshot request %s", m.Data)
	}
	// x goes silent: it drops out after the timeout
	eventually(t, "x dropped", func() bool { return own() == 0 && c.Stats().NodesDropped == 1 })
}

// The node share of max_channels: the cap minus the channels live on the
// other nodes; none left refuses with channel_limit. Over the fleet, live
// channels never exceed the cap once the counts have arrived.
func TestCountersChannelShare(t *testing.T) {
	acc := map[string]string{"acme": `{"home_country":"GB","max_channels":2,"account_max_channels":3,"subaccounts":{"s1":{}}}`}
	nodes, _ := fleetOf(t, 2, acc, CountSyncOptions{})
	a, b := nodes[0], nodes[1]
	if v := b.call("acme", numFR); v.Reason != matcher.ReasonOK || v.MaxChannels != 2 || v.AccountMaxChannels != 3 {
		t.Fatalf("before: %s max_channels %d account %d", v.Reason, v.MaxChannels, v.AccountMaxChannels)
	}
	a.e.Apply(velocity.Event{Kind: velocity.Answered, CallID: "c1", Account: "acme", To: numFR})
	eventually(t, "share 1", func() bool { v := b.call("acme", numFR); return v.MaxChannels == 1 && v.AccountMaxChannels == 2 })
	a.e.Apply(velocity.Event{Kind: velocity.Answered, CallID: "c2", Account: "acme", To: numDE})
	eventually(t, "channel_limit", func() bool { return b.call("acme", numFR).Reason == matcher.ReasonChannelLimit })
	v := b.call("acme", numFR)
	if v.Action != matcher.Reject || v.Reason.Info().SIPCode != 503 || v.RuleString() == "" {
		t.Fatalf("refusal %+v", v)
	}
	// node a's own share is the whole cap: its proxy counts its own calls
	if v := a.call("acme", numFR); v.Reason != matcher.ReasonOK || v.MaxChannels != 2 {
		t.Fatalf("node a: %s %d", v.Reason, v.MaxChannels)
	}
	// the subaccount's own cap is untouched (its channels are its own),
	// the account-wide one shared: 3 - 2 on a
	if v := b.m.Decide(&matcher.Query{To: numFR, Account: "acme", Subaccount: "s1"}); v.Reason != matcher.ReasonOK || v.AccountMaxChannels != 1 || v.MaxChannels != 2 {
		t.Fatalf("subaccount: %s max %d account %d", v.Reason, v.MaxChannels, v.AccountMaxChannels)
	}
	a.e.Apply(velocity.Event{Kind: velocity.Answered, CallID: "c3", Account: "acme", Subaccount: "s1", To: numDE})
	eventually(t, "account_channel_limit", func() bool {
		return b.m.Decide(&matcher.Query{To: numFR, Account: "acme", Subaccount: "s1"}).Reason == matcher.ReasonAccountChannelLimit
	})
	a.e.Apply(velocity.Event{Kind: velocity.Ended, CallID: "c1", Account: "acme", To: numFR, Duration: time.Second})
	a.e.Apply(velocity.Event{Kind: velocity.Ended, CallID: "c3", Account: "acme", Subaccount: "s1", To: numDE, Duration: time.Second})
	eventually(t, "share back to 1", func() bool { v := b.call("acme", numFR); return v.Reason == matcher.ReasonOK && v.MaxChannels == 1 })
}
