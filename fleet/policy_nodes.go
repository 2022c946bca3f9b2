package fleet

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Heartbeat is how often a node publishes its applied revision when
// nothing changes; LiveAfter is how long a node may stay silent and still
// count as live (for ?wait=all and GET /v1/fleet).
const (
	Heartbeat = time.Second
	LiveAfter = 5 * Heartbeat
)

// NodeStatus is what a node publishes about itself in NodesBucket.
type NodeStatus struct {
	Node    string    `json:"node"`
	Applied uint64    `json:"applied_revision"`
	Synced  bool      `json:"synced"`
	Time    time.Time `json:"time"`
	Started time.Time `json:"started"`
}

// NodeInfo is one node as GET /v1/fleet shows it.
type NodeInfo struct {
	Node       string    `json:"node"`
	Applied    uint64    `json:"applied_revision"`
	Lag        uint64    `json:"lag"`
	Synced     bool      `json:"synced"`
	Live       bool      `json:"live"`
	LastHeard  time.Time `json:"last_heard"`
	SilentSecs float64   `json:"silent_seconds"`
	Self       bool      `json:"self,omitempty"`
}

// FleetInfo is GET /v1/fleet: this node's view of the fleet.
type FleetInfo struct {
	Node         string     `json:"node"`
	Connected    bool       `json:"connected"`
	Synced       bool       `json:"synced"`
	Seeded       bool       `json:"seeded"`
	StaleSeconds float64    `json:"stale_seconds"`
	Revision     uint64     `json:"revision"`
	Applied      uint64     `json:"applied_revision"`
	Nodes        []NodeInfo `json:"nodes"`
}

// nodeView is the nodes bucket as this node last saw it.
type nodeView struct {
	mu    sync.Mutex
	cond  *sync.Cond
	nodes map[string]NodeStatus
	heard map[string]time.Time // local receive time: immune to clock skew
}

func newNodeView() *nodeView {
	v := &nodeView{nodes: map[string]NodeStatus{}, heard: map[string]time.Time{}}
	v.cond = sync.NewCond(&v.mu)
	return v
}

func (v *nodeView) set(s NodeStatus) {
	v.mu.Lock()
	v.nodes[s.Node] = s
	v.heard[s.Node] = time.Now()
	v.mu.Unlock()
	v.cond.Broadcast()
}

func (v *nodeView) drop(node string) {
	v.mu.Lock()
	delete(v.nodes, node)
	delete(v.heard, node)
	v.mu.Unlock()
	v.cond.Broadcast()
}

// signal asks the publisher to send this node's status now.
func (p *Policy) signal() {
	select {
	case p.pubNow <- struct{}{}:
	default:
	}
}

// publishLoop publishes this node's status on every applied change
// (coalesced) and every Heartbeat, and watches every node's.
func (p *Policy) publishLoop(ctx context.Context) {
	tk := time.NewTicker(Heartbeat)
	defer tk.Stop()
	var w jetstream.KeyWatcher
	var updates <-chan jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			if w != nil {
				w.Stop()
			}
			return
		case <-tk.C:
		case <-p.pubNow:
		case e, ok := <-updates:
			if !ok {
				w, updates = nil, nil
				continue
			}
			switch {
			case e == nil:
			case e.Operation() == jetstream.KeyValuePut:
				var s NodeStatus
				if json.Unmarshal(e.Value(), &s) == nil && s.Node != "" {
					p.view.set(s)
				}
			default: // a node left
				p.view.drop(e.Key())
			}
			continue
		}
		if !p.ready.Load() || !p.c.Connected() {
			continue
		}
		if w == nil {
			var err error
			if w, err = p.nodes.WatchAll(ctx); err == nil {
				updates = w.Updates()
			}
		}
		// a node catching up reports 0: it holds ?wait=all up until it
		// is in step, rather than claim a revision half applied
		s := NodeStatus{Node: p.c.Node, Synced: p.Synced(), Time: time.Now().UTC(), Started: p.started.UTC()}
		if s.Synced {
			s.Applied = p.applied.Load()
		}
		b, _ := json.Marshal(s)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.nodes.Put(cctx, p.c.Node, b)
		cancel()
		if err == nil {
			p.view.set(s)
		}
	}
}

// Info is this node's view of the fleet, for GET /v1/fleet. Nodes silent
// for an hour are left out.
func (p *Policy) Info() FleetInfo {
	head := p.head.Load()
	if p.Synced() && p.kv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if st, err := p.kv.Status(ctx); err == nil {
			if si, ok := st.(*jetstream.KeyValueBucketStatus); ok && si.StreamInfo().State.LastSeq > head {
				head = si.StreamInfo().State.LastSeq
			}
		}
		cancel()
	}
	fi := FleetInfo{Node: p.c.Node, Connected: p.c.Connected(), Synced: p.Synced(), Seeded: p.seeded.Load(),
		StaleSeconds: p.Stale().Seconds(), Revision: head, Applied: p.applied.Load(), Nodes: []NodeInfo{}}
	now := time.Now()
	p.view.mu.Lock()
	for name, s := range p.view.nodes {
		heard := p.view.heard[name]
		silent := now.Sub(heard)
		if silent > time.Hour {
			continue
		}
		ni := NodeInfo{Node: name, Applied: s.Applied, Synced: s.Synced, Live: silent <= LiveAfter, LastHeard: s.Time,
			SilentSecs: silent.Round(time.Millisecond).Seconds(), Self: name == p.c.Node}
		if head > s.Applied {
			ni.Lag = head - s.Applied
		}
		fi.Nodes = append(fi.Nodes, ni)
	}
	p.view.mu.Unlock()
	sort.Slice(fi.Nodes, func(i, j int) bool { return fi.Nodes[i].Node < fi.Nodes[j].Node })
	return fi
}

// WaitAll waits (up to timeout) until every live node has applied rev,
// and returns the live nodes that have and those that have not. A node
// silent for longer than LiveAfter does not hold the answer up; it is
// returned in silent (heard within the hour, as GET /v1/fleet lists it),
// so a script is not told "every node" while one is out of reach.
func (p *Policy) WaitAll(rev uint64, timeout time.Duration) (done, pending, silent []string) {
	deadline := time.Now().Add(timeout)
	// a timer wakes the waiter at the deadline
	t := time.AfterFunc(timeout, func() { p.view.cond.Broadcast() })
	defer t.Stop()
	p.view.mu.Lock()
	defer p.view.mu.Unlock()
	for {
		done, pending, silent = done[:0], pending[:0], silent[:0]
		now := time.Now()
		for name, s := range p.view.nodes {
			if quiet := now.Sub(p.view.heard[name]); quiet > LiveAfter {
				if quiet <= time.Hour && s.Applied < rev {
					silent = append(silent, name)
				}
				continue
			}
			if s.Applied >= rev {
				done = append(done, name)
			} else {
				pending = append(pending, name)
			}
		}
		if len(pending) == 0 || !now.Before(deadline) {
			sort.Strings(done)
			sort.Strings(pending)
			sort.Strings(silent)
			return done, pending, silent
		}
		p.view.cond.Wait()
	}
}

// Counters are the policy's counters for /metrics.
type Counters struct {
	Applied, Errors uint64
	Pending         int
}

// Counters returns changes applied from other nodes, records refused, and
// changes held while NATS is away.
func (p *Policy) Counters() Counters {
	p.mu.Lock()
	n := len(p.pending)
	p.mu.Unlock()
	return Counters{Applied: p.appliedN.Load(), Errors: p.applyErrs.Load(), Pending: n}
}

// Connected reports whether a NATS server is reachable.
func (p *Policy) Connected() bool { return p.c.Connected() }
