package fleet

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/velocity"
)

// stateServer starts an in-process nats-server with JetStream on a free
// 127.0.0.1 port and a temporary store, stopped at the end of the test.
func stateServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// stateConn connects to s; the connection closes at the end of the test.
func stateConn(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// notes is a Notifier keeping every alert.
type notes struct {
	mu     sync.Mutex
	alerts []alert.Alert
}

func (n *notes) Notify(a alert.Alert) {
	n.mu.Lock()
	n.alerts = append(n.alerts, a)
	n.mu.Unlock()
}

func (n *notes) all() []alert.Alert {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]alert.Alert(nil), n.alerts...)
}

// stateNode is one tollgate's decision side: a matcher over a velocity
// engine, as the service wires them.
type stateNode struct {
	name string
	e    *velocity.Engine
	m    *matcher.Matcher
	n    *notes
}

var statePlan = numplan.Default()

// newStateNode builds a node with the accounts given as admin-API JSON.
func newStateNode(t testing.TB, name string, accounts map[string]string, opt velocity.Options) *stateNode {
	t.Helper()
	set := &policy.Set{Accounts: map[string]policy.Account{}}
	for acc, doc := range accounts {
		var a policy.Account
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			t.Fatalf("account %s: %v", acc, err)
		}
		set.Accounts[acc] = a
	}
	nd := &stateNode{name: name, n: &notes{}}
	if opt.Notifier == nil {
		opt.Notifier = nd.n
	}
	if opt.Interval == 0 {
		opt.Interval = 20 * time.Millisecond
	}
	nd.e = velocity.New(opt)
	nd.m = matcher.New(statePlan, matcher.Options{Velocity: nd.e})
	snap, err := matcher.CompileFrom(nd.m.Snapshot(), set, statePlan)
	if err != nil {
		t.Fatal(err)
	}
	nd.m.Swap(snap)
	if err := nd.e.Sync(set); err != nil {
		t.Fatal(err)
	}
	return nd
}

func (nd *stateNode) call(account, to string) matcher.Verdict {
	return nd.m.Decide(&matcher.Query{To: to, Account: account})
}

// eventually polls cond every 10 ms until it holds or the generous
// deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
