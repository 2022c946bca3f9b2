package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/velocity"
)

// CountsSubject carries every node's counts batches (core NATS: the counts
// are absolute, so nothing needs keeping; a receiver that sees a gap in a
// node's sequence asks that node for a full snapshot at once, and every
// node sends one every CountSyncOptions.Snapshot anyway).
const CountsSubject = "tollgate.fleet.counts"

// CountsSyncSubject asks for a full snapshot now (syncRequest): a node
// that starts asks every node, so that it knows the fleet's sums within a
// round trip; a receiver that missed a message asks its sender.
const CountsSyncSubject = "tollgate.fleet.counts.sync"

// maxBatchBytes bounds one message (NATS' default max_payload is 1 MB).
const maxBatchBytes = 256 << 10

// CountSyncOptions configure fleet-wide counters.
type CountSyncOptions struct {
	// NC is the fleet connection; Node names this tollgate (unique in the
	// fleet).
	NC   *nats.Conn
	Node string
	// Engine is the velocity engine whose counts are published and which
	// gets the other nodes' sums.
	Engine *velocity.Engine
	// Interval is how often changed scopes are published (default 100 ms):
	// the batching part of the staleness bound.
	Interval time.Duration
	// Snapshot is how often every non-zero scope is published whatever
	// changed (default 30 s): the repair of last resort.
	Snapshot time.Duration
	// Heartbeat is how often a node with nothing to say says so (default
	// 1 s), so that the others know it is alive and see any gap.
	Heartbeat time.Duration
	// Recheck is how often the scopes without news are looked at again
	// for counts that changed by themselves, windows rolling over (default
	// 1 s, the finest bucket).
	Recheck time.Duration
	// Timeout is how long a node may stay silent before its counts drop
	// out of the sums (default 5 × Heartbeat).
	Timeout time.Duration
	Logger  zerolog.Logger
	// Now is the clock (tests); time.Now if nil.
	Now func() time.Time
}

// countsBatch is one counts message.
type countsBatch struct {
	Node string `json:"node"`
	// Epoch identifies the sending process, Seq orders its messages: a
	// message older than one already applied is dropped.
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// At is the sender's clock (unix nanoseconds), for the staleness
	// metric.
	At int64 `json:"at"`
	// Snap is non-zero on the parts of a full snapshot; Last marks its
	// final part, after which the receiver forgets the scopes of the node
	// the snapshot did not carry.
	Snap   uint64            `json:"snap,omitempty"`
	Last   bool              `json:"last,omitempty"`
	Scopes []velocity.Counts `json:"scopes,omitempty"`
}

type scopeKey struct{ account, sub string }

type nodeState struct {
	epoch, seq uint64
	heard      time.Time
	lagNanos   int64
	scopes     map[scopeKey]velocity.Counts
	// snap collects the scopes of a full snapshot in progress.
	snap     uint64
	snapSeen map[scopeKey]struct{}
}

// CountSync publishes this node's velocity counts and installs the other
// nodes' sums in the engine. Create it with StartCountSync.
type CountSync struct {
	opt   CountSyncOptions
	epoch uint64
	seq   atomic.Uint64

	mu    sync.Mutex
	nodes map[string]*nodeState

	subs   []*nats.Subscription
	syncRq atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}

	published, publishedBytes, publishErrs atomic.Uint64
	received, receivedBytes, stale         atomic.Uint64
	dropped, badMsgs, gaps, resyncs, clash atomic.Uint64
}

// CountSyncStats are the counters' figures, for /metrics and /v1/fleet.
type CountSyncStats struct {
	Published, PublishedBytes, PublishErrors uint64
	Received, ReceivedBytes                  uint64
	// Stale counts messages dropped as older than one applied.
	Stale uint64
	// NodesDropped counts nodes whose counts dropped out after Timeout.
	NodesDropped uint64
	BadMessages  uint64
	// Gaps counts messages found missing (each asks for a snapshot);
	// SnapshotRequests counts the snapshots this node asked for.
	Gaps, SnapshotRequests uint64
	// NameClashes counts messages from another process using this node's
	// name (a misconfiguration that hides both nodes' counts).
	NameClashes uint64
	// Nodes are the other nodes heard from, by name.
	Nodes []NodeCounts
}

// NodeCounts is what this node holds of another.
type NodeCounts struct {
	Node   string    `json:"node"`
	Heard  time.Time `json:"last_heard"`
	Scopes int       `json:"scopes"`
	// LagSeconds is how old its last message was when it arrived (clock
	// skew included).
	LagSeconds float64 `json:"lag_seconds"`
}

// StartCountSync subscribes to the other nodes' counts, asks them for a
// snapshot and starts publishing this node's. The engine's export is
// enabled.
func StartCountSync(opt CountSyncOptions) (*CountSync, error) {
	if opt.NC == nil || opt.Engine == nil {
		return nil, errors.New("fleet counters: a connection and an engine are required")
	}
	if opt.Node == "" {
		return nil, errors.New("fleet counters: node: a name is required")
	}
	if opt.Interval <= 0 {
		opt.Interval = 100 * time.Millisecond
	}
	if opt.Snapshot <= 0 {
		opt.Snapshot = 30 * time.Second
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = time.Second
	}
	if opt.Recheck <= 0 {
		opt.Recheck = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * opt.Heartbeat
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	c := &CountSync{opt: opt, epoch: rand.Uint64() | 1, nodes: map[string]*nodeState{}, done: make(chan struct{})}
	opt.Engine.EnableExport()
	sub, err := opt.NC.Subscribe(CountsSubject, c.onBatch)
	if err != nil {
		return nil, fmt.Errorf("fleet counters: subscribe: %w", err)
	}
	sub.SetPendingLimits(-1, 64<<20)
	c.subs = append(c.subs, sub)
	sub, err = opt.NC.Subscribe(CountsSyncSubject, func(m *nats.Msg) {
		var rq syncRequest
		if json.Unmarshal(m.Data, &rq) == nil && rq.From != opt.Node && (rq.To == "" || rq.To == opt.Node) {
			c.syncRq.Store(true)
		}
	})
	if err != nil {
		c.unsubscribe()
		return nil, fmt.Errorf("fleet counters: subscribe: %w", err)
	}
	c.subs = append(c.subs, sub)
	// the subscriptions reach the server before anything is asked (no
	// wait when NATS is down: they are sent on connect)
	if opt.NC.IsConnected() {
		_ = opt.NC.FlushTimeout(2 * time.Second)
	}
	c.askSnapshot("")
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
	return c, nil
}

func (c *CountSync) unsubscribe() {
	for _, s := range c.subs {
		_ = s.Unsubscribe()
	}
}

// Close stops publishing and receiving; the installed sums stay until the
// engine is dropped.
func (c *CountSync) Close() {
	c.cancel()
	<-c.done
	c.unsubscribe()
}

func (c *CountSync) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.opt.Interval)
	defer t.Stop()
	lastFull, lastSent, lastCheck := time.Time{}, time.Time{}, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := c.opt.Now()
		full := now.Sub(lastFull) >= c.opt.Snapshot || c.syncRq.Swap(false)
		if full {
			lastFull = now
		}
		recheck := now.Sub(lastCheck) >= c.opt.Recheck
		if recheck {
			lastCheck = now
		}
		if c.publish(full, recheck, now.Sub(lastSent) >= c.opt.Heartbeat) {
			lastSent = now
		}
		c.expire(now)
	}
}

// Publish sends this node's changed scopes now (all of them when full).
// The run loop calls it every Interval; tests and benchmarks call it
// directly.
func (c *CountSync) Publish(full bool) { c.publish(full, true, true) }

// publish sends the changed scopes (all when full; those without news
// looked at too with recheck); with nothing to send it sends an empty
// batch only when beat. It reports whether it sent.
func (c *CountSync) publish(full, recheck, beat bool) bool {
	var scopes []velocity.Counts
	c.opt.Engine.ExportCounts(full, recheck, func(ct velocity.Counts) { scopes = append(scopes, ct) })
	if len(scopes) == 0 && !full && !beat {
		return false
	}
	snap := uint64(0)
	if full {
		snap = c.seq.Load() + 1
	}
	send := func(part []velocity.Counts, last bool) {
		b := countsBatch{Node: c.opt.Node, Epoch: c.epoch, Seq: c.seq.Add(1), At: c.opt.Now().UnixNano(), Snap: snap, Last: last && full, Scopes: part}
		data, err := json.Marshal(&b)
		if err == nil {
			err = c.opt.NC.Publish(CountsSubject, data)
		}
		if err != nil {
			c.publishErrs.Add(1)
			c.opt.Logger.Warn().Err(err).Msg("fleet counters: publish failed; the next snapshot repeats it")
			return
		}
		c.published.Add(1)
		c.publishedBytes.Add(uint64(len(data)))
	}
	// parts of at most maxBatchBytes (about 100 bytes a scope with a rule)
	size, start := 0, 0
	for i := range scopes {
		size += 64 + len(scopes[i].Account) + len(scopes[i].Sub) + 60*len(scopes[i].Rules)
		if size >= maxBatchBytes {
			send(scopes[start:i+1], i == len(scopes)-1)
			start, size = i+1, 0
		}
	}
	if start < len(scopes) || len(scopes) == 0 {
		send(scopes[start:], true)
	}
	return true
}

// Resync asks every node for a full snapshot (after a reconnection).
func (c *CountSync) Resync() { c.askSnapshot("") }

// syncRequest asks node To (every node when empty) for a full snapshot.
type syncRequest struct {
	From string `json:"from"`
	To   string `json:"to,omitempty"`
}

func (c *CountSync) askSnapshot(to string) {
	data, _ := json.Marshal(syncRequest{From: c.opt.Node, To: to})
	if err := c.opt.NC.Publish(CountsSyncSubject, data); err == nil {
		c.resyncs.Add(1)
	}
}

func (c *CountSync) onBatch(m *nats.Msg) {
	var b countsBatch
	if err := json.Unmarshal(m.Data, &b); err != nil || b.Node == "" {
		c.badMsgs.Add(1)
		return
	}
	if b.Node == c.opt.Node {
		if b.Epoch != c.epoch {
			// another process calls itself by this node's name: each
			// would take the other's counts for its own echo and drop
			// them, and the fleet would count neither's
			c.clash.Add(1)
			c.opt.Logger.Error().Str("node", b.Node).Msg("fleet counters: another tollgate uses this node's -node name: its counts are ignored; give every tollgate its own name")
		}
		return
	}
	for i := range b.Scopes {
		if !b.Scopes[i].Valid() {
			c.badMsgs.Add(1)
			c.opt.Logger.Warn().Str("node", b.Node).Msg("fleet counters: a batch with negative counts dropped")
			return
		}
	}
	c.received.Add(1)
	c.receivedBytes.Add(uint64(len(m.Data)))
	now := c.opt.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[b.Node]
	if n == nil {
		n = &nodeState{scopes: map[scopeKey]velocity.Counts{}}
		c.nodes[b.Node] = n
	}
	switch {
	case n.epoch != b.Epoch:
		// a new process of that node: what the old one said goes at the
		// end of its first snapshot
		n.epoch, n.seq, n.snap = b.Epoch, 0, 0
	case b.Seq <= n.seq:
		c.stale.Add(1)
		return
	case b.Seq != n.seq+1 && b.Snap == 0:
		// a message of that node was lost: what it said is repaired by a
		// full snapshot, asked for now rather than at its next
		c.gaps.Add(1)
		if c.opt.NC != nil {
			go c.askSnapshot(b.Node)
		}
	}
	n.seq, n.heard, n.lagNanos = b.Seq, now, now.UnixNano()-b.At
	dirty := map[scopeKey]struct{}{}
	if b.Snap != 0 && b.Snap != n.snap {
		n.snap, n.snapSeen = b.Snap, map[scopeKey]struct{}{}
	}
	for _, sc := range b.Scopes {
		k := scopeKey{sc.Account, sc.Sub}
		dirty[k] = struct{}{}
		if b.Snap != 0 && n.snapSeen != nil {
			n.snapSeen[k] = struct{}{}
		}
		if sc.Zero() {
			delete(n.scopes, k)
		} else {
			n.scopes[k] = sc
		}
	}
	if b.Last && b.Snap == n.snap && n.snapSeen != nil {
		for k := range n.scopes {
			if _, ok := n.snapSeen[k]; !ok {
				delete(n.scopes, k)
				dirty[k] = struct{}{}
			}
		}
		n.snap, n.snapSeen = 0, nil
	}
	c.install(dirty)
}

// install recomputes the sums of the dirty scopes and installs them.
// Called with mu held.
func (c *CountSync) install(dirty map[scopeKey]struct{}) {
	var cs []velocity.Counts
	for k := range dirty {
		cs = cs[:0]
		for _, n := range c.nodes {
			if sc, ok := n.scopes[k]; ok {
				cs = append(cs, sc)
			}
		}
		c.opt.Engine.SetRemote(k.account, k.sub, velocity.SumCounts(cs))
	}
}

// expire drops the nodes silent for longer than Timeout.
func (c *CountSync) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, n := range c.nodes {
		if now.Sub(n.heard) <= c.opt.Timeout {
			continue
		}
		delete(c.nodes, name)
		c.dropped.Add(1)
		c.opt.Logger.Warn().Str("node", name).Dur("silent", now.Sub(n.heard)).
			Msg("fleet counters: node silent: its counts drop out of the fleet's sums")
		dirty := make(map[scopeKey]struct{}, len(n.scopes))
		for k := range n.scopes {
			dirty[k] = struct{}{}
		}
		c.install(dirty)
	}
}

// Stats returns the figures.
func (c *CountSync) Stats() CountSyncStats {
	st := CountSyncStats{Published: c.published.Load(), PublishedBytes: c.publishedBytes.Load(), PublishErrors: c.publishErrs.Load(),
		Received: c.received.Load(), ReceivedBytes: c.receivedBytes.Load(), Stale: c.stale.Load(), NodesDropped: c.dropped.Load(),
		BadMessages: c.badMsgs.Load(), Gaps: c.gaps.Load(), SnapshotRequests: c.resyncs.Load(),
		NameClashes: c.clash.Load()}
	c.mu.Lock()
	for name, n := range c.nodes {
		st.Nodes = append(st.Nodes, NodeCounts{Node: name, Heard: n.heard, Scopes: len(n.scopes), LagSeconds: float64(n.lagNanos) / 1e9})
	}
	c.mu.Unlock()
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Node < st.Nodes[j].Node })
	return st
}
