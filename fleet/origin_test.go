package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/tollgate/tollgate/origin"
)

type originNode struct {
	st *origin.State
	c  *origin.Checker
	o  *Origin
}

func startOriginNode(t *testing.T, srv *server.Server, node string) *originNode {
	t.Helper()
	nc, js := stateConn(t, srv)
	st := origin.NewState(origin.StateOptions{})
	o, err := StartOrigin(context.Background(), OriginOptions{NC: nc, JS: js, Node: node, State: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return &originNode{st: st, c: origin.NewChecker(nil, st), o: o}
}

// A caller who changes proxy is judged against where it last called from
// on any proxy: the location-change screen holds across nodes, and a node
// that starts later loads the history from the stream.
func TestOriginLocationAcrossNodes(t *testing.T) {
	srv := stateServer(t)
	op, err := origin.CompileOperator(origin.OperatorSpec{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := op.Account(origin.AccountSpec{ChangeMinutes: 10, ChangeBy: "ip"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := startOriginNode(t, srv, "n1"), startOriginNode(t, srv, "n2")
	call := func(n *originNode, ip string) origin.Outcome {
		return n.c.Check(origin.Input{Account: "acme", SrcIP: ip, Rules: r})
	}
	if o := call(a, "192.0.2.1"); o.Action != origin.Allow {
		t.Fatalf("first call: %v", o.Action)
	}
	eventually(t, "node 2 learns the last call", func() bool { return b.o.Stats().Received >= 1 })
	if o := call(b, "198.51.100.7"); o.Action != origin.Screen || o.Rule != origin.RuleLocationChange {
		t.Fatalf("other proxy, other address: %v %v, want a location-change screen", o.Action, o.Rule)
	}
	c := startOriginNode(t, srv, "n3") // starts after the call
	eventually(t, "node 3 loads the history", func() bool { return c.o.Stats().Received >= 1 })
	if o := call(c, "203.0.113.9"); o.Action != origin.Screen || o.Rule != origin.RuleLocationChange {
		t.Fatalf("a node started later: %v %v, want a location-change screen", o.Action, o.Rule)
	}
	// the same address on another node is no change
	if o := call(b, "192.0.2.1"); o.Action != origin.Allow {
		t.Fatalf("same address on node 2: %v %v", o.Action, o.Rule)
	}
	// a late or repeated message changes nothing: merging an older call
	// does not move the history back
	old := origin.Location{Account: "acme", IP: "198.51.100.7", IPAt: time.Now().Add(-time.Minute)}
	if err := a.st.MergeLocation(old); err != nil {
		t.Fatal(err)
	}
	if o := call(a, "192.0.2.1"); o.Action != origin.Allow {
		t.Fatalf("an old location moved the history back: %v %v", o.Action, o.Rule)
	}
	if err := a.st.MergeLocation(origin.Location{Account: "acme", Country: "XYZ"}); err == nil {
		t.Fatal("a bad country was merged")
	}
	if err := a.st.MergeLocation(origin.Location{Account: "acme", IP: "198.51.100.7", IPAt: time.Now().Add(time.Hour)}); err == nil {
		t.Fatal("a location an hour ahead was merged")
	}
}
