package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// opTimeout bounds one request to JetStream on the write path: an admin
// write waits at most this long for the bucket before it is refused.
const opTimeout = 5 * time.Second

// Policy keeps one node's policy in step with the fleet's bucket: it is
// the service's Replicator (admin writes go to the bucket first, with
// compare-and-set) and the bucket's watcher (every change, this node's own
// included, is applied through service.ApplyRemote). The query path never
// waits on it: a change is compiled and swapped in like a local one.
type Policy struct {
	c   *Conn
	svc *service.Service
	log zerolog.Logger

	kv    jetstream.KeyValue
	docs  jetstream.ObjectStore
	nodes jetstream.KeyValue

	mu      sync.Mutex
	revs    map[string]uint64 // key -> revision this node has applied
	own     map[string]int    // ids of this node's writes -> records not yet seen back
	pending map[string][]byte // state records (locks, origin) to send when connected
	audits  [][]byte          // audit entries to send when connected

	seq         atomic.Uint64 // write ids
	applied     atomic.Uint64 // the bucket revision this node has applied, in order
	head        atomic.Uint64 // the highest revision seen in the bucket
	lastWritten atomic.Uint64 // the highest revision this node wrote
	synced      atomic.Bool   // watching, initial values applied
	seeded      atomic.Bool   // the bucket holds meta.seeded
	ready       atomic.Bool   // buckets bound
	atomic      atomic.Bool   // the policy stream takes atomic batches (multi-record changes)
	syncedAt    atomic.Int64  // unix ns of the last moment in sync
	started     time.Time
	applyErrs   atomic.Uint64
	appliedN    atomic.Uint64

	wake   chan struct{} // connection changed
	pubNow chan struct{} // applied revision changed
	view   *nodeView
}

// NewPolicy ties the fleet connection to the service. Call Start, then
// svc.SetReplicator(p) is done by Start.
func NewPolicy(c *Conn, svc *service.Service, log zerolog.Logger) *Policy {
	p := &Policy{c: c, svc: svc, log: log.With().Str("node", c.Node).Str("fleet", "policy").Logger(),
		revs: map[string]uint64{}, own: map[string]int{}, pending: map[string][]byte{},
		wake: make(chan struct{}, 1), pubNow: make(chan struct{}, 1), started: time.Now(),
		view: newNodeView()}
	c.OnChange(func(bool) {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	})
	return p
}

// Start makes the service replicate through p and runs the watcher and
// the node status publisher until ctx ends.
func (p *Policy) Start(ctx context.Context) {
	p.svc.SetReplicator(p)
	go p.run(ctx)
	go p.publishLoop(ctx)
}

// bind creates (or binds) the buckets and the audit stream.
func (p *Policy) bind(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if p.kv, err = ensureKV(ctx, p.c.JS, jetstream.KeyValueConfig{Bucket: PolicyBucket, History: 5, Replicas: p.c.Replicas,
		Description: "tollgate fleet policy: one key per record (docs/fleet.md)"}); err != nil {
		return fmt.Errorf("bucket %s: %w", PolicyBucket, err)
	}
	p.atomic.Store(p.enableAtomic(ctx))
	if p.docs, err = p.c.JS.ObjectStore(ctx, DocsBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		p.docs, err = p.c.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: DocsBucket, Replicas: p.c.Replicas,
			Description: "tollgate fleet policy documents (high-risk list, rate deck)"})
	}
	if err != nil {
		return fmt.Errorf("object store %s: %w", DocsBucket, err)
	}
	if p.nodes, err = ensureKV(ctx, p.c.JS, jetstream.KeyValueConfig{Bucket: NodesBucket, History: 1, Replicas: p.c.Replicas,
		Description: "tollgate nodes: applied policy revision, last heard"}); err != nil {
		return fmt.Errorf("bucket %s: %w", NodesBucket, err)
	}
	if _, err = p.c.JS.Stream(ctx, AuditStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = p.c.JS.CreateStream(ctx, jetstream.StreamConfig{Name: AuditStream, Subjects: []string{AuditSubject + ".>"},
			Replicas: p.c.Replicas, Description: "tollgate audit log of every node"})
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", AuditStream, err)
	}
	p.ready.Store(true)
	return nil
}

// ensureKV binds a bucket, creating it when it does not exist: an
// existing bucket's settings are the operator's, never changed here.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) { // another node won the race
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	return kv, err
}

// run binds, watches, and starts over whenever the connection drops.
func (p *Policy) run(ctx context.Context) {
	for ctx.Err() == nil {
		if !p.c.Connected() {
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		if !p.ready.Load() {
			if err := p.bind(ctx); err != nil {
				p.log.Warn().Err(err).Msg("fleet buckets not ready; retrying")
				sleep(ctx, time.Second)
				continue
			}
		}
		p.flushPending(ctx)
		if err := p.watch(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("policy watch ended; starting again")
			sleep(ctx, 250*time.Millisecond)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// watch applies the bucket's current values, then every change, until
// the connection drops or the watcher fails.
func (p *Policy) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := p.kv.WatchAll(wctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	defer p.setSynced(false)
	initial := true
	seen := map[string]bool{}
	b := newBatch()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
			if !p.c.Connected() {
				return errors.New("lost NATS")
			}
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil { // the current values are all in
				if initial {
					p.flush(b)
					initial = false
					if p.seeded.Load() {
						p.reconcile(seen)
					} else {
						p.log.Error().Str("bucket", PolicyBucket).Msg("the fleet policy bucket is not seeded: serving this node's cached policy; admin writes refused until `tollgate fleet seed` loads it")
					}
					seen = nil
					p.setSynced(true)
				}
				continue
			}
			if seen != nil {
				seen[e.Key()] = true
			}
			if initial && p.batchAccount(e, b) {
				if len(b.accounts) >= maxBatch {
					p.flush(b)
				}
				continue
			}
			p.handle(e)
		}
	}
}

// maxBatch is how many accounts a node catching up compiles and writes
// in one transaction.
const maxBatch = 5000

// batch is accounts read from the bucket's current values, applied
// together: a node joining a fleet of 100,000 accounts writes 20
// transactions, not 100,000.
type batch struct {
	accounts map[string]*policy.Account
	revs     map[string]uint64
	single   []jetstream.KeyValueEntry // to apply one by one if the batch is refused
}

func newBatch() *batch {
	return &batch{accounts: map[string]*policy.Account{}, revs: map[string]uint64{}}
}

// batchAccount adds an account record another node wrote to b; false
// for any other entry (handle takes it).
func (p *Policy) batchAccount(e jetstream.KeyValueEntry, b *batch) bool {
	if e.Operation() != jetstream.KeyValuePut {
		return false
	}
	var r record
	if json.Unmarshal(e.Value(), &r) != nil || r.Kind != kindAccount || keyOf(&r) != e.Key() {
		return false
	}
	p.mu.Lock()
	skip := (r.ID != "" && p.own[r.ID] > 0) || p.revs[e.Key()] >= e.Revision()
	p.mu.Unlock()
	if skip {
		return false
	}
	ch, _, err := changeOf(&r, nil)
	if err != nil {
		return false // handle logs and counts it
	}
	for name, a := range ch.Accounts {
		b.accounts[name] = a
	}
	b.revs[e.Key()] = e.Revision()
	b.single = append(b.single, e)
	if e.Revision() > p.head.Load() {
		p.head.Store(e.Revision())
	}
	return true
}

// flush applies a batch in one change; if it is refused (one account
// does not validate), each record is applied on its own.
func (p *Policy) flush(b *batch) {
	if len(b.single) == 0 {
		return
	}
	n := len(b.accounts)
	ch := &store.Change{Accounts: b.accounts, Audit: store.AuditEntry{Action: "fleet.sync", Object: "accounts", Who: "fleet",
		Time: time.Now(), Before: json.RawMessage("null"), After: json.RawMessage(fmt.Sprintf(`{"accounts_read":%d}`, n))}}
	did, err := p.svc.ApplyRemote(ch, nil)
	if err != nil {
		p.log.Warn().Err(err).Int("accounts", n).Msg("catching up: the batch was refused; applying its accounts one by one")
		for _, e := range b.single {
			p.handle(e)
		}
	} else {
		if did {
			p.appliedN.Add(uint64(len(ch.Accounts)))
			p.log.Info().Int("read", n).Int("changed", len(ch.Accounts)).Msg("catching up: accounts applied from the fleet")
		}
		for key, rev := range b.revs {
			p.setRev(key, rev)
			if rev > p.applied.Load() {
				p.applied.Store(rev)
			}
		}
		p.signal()
	}
	*b = *newBatch()
}

func (p *Policy) setSynced(v bool) {
	if p.synced.Swap(v) != v {
		if v {
			p.log.Info().Uint64("revision", p.applied.Load()).Msg("policy in step with the fleet")
		}
	}
	if v {
		p.syncedAt.Store(time.Now().UnixNano())
	} else if p.syncedAt.Load() != 0 {
		// stale from now: remember the last moment in sync
		p.syncedAt.Store(time.Now().UnixNano())
	}
	p.signal()
}

// handle applies one bucket entry.
func (p *Policy) handle(e jetstream.KeyValueEntry) {
	rev, key := e.Revision(), e.Key()
	if rev > p.head.Load() {
		p.head.Store(rev)
	}
	defer func() {
		if rev > p.applied.Load() {
			p.applied.Store(rev)
		}
		p.signal()
	}()
	if e.Operation() != jetstream.KeyValuePut {
		return // purged by an operator: nothing to apply
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		p.applyErrs.Add(1)
		p.log.Error().Err(err).Str("key", key).Uint64("revision", rev).Msg("unreadable policy record skipped; the policy in force stays")
		return
	}
	if r.Kind == kindSeed {
		p.seeded.Store(true)
		p.setRev(key, rev)
		return
	}
	if want := keyOf(&r); want != "" && want != key {
		// a record whose name is not its key's: written by hand, or
		// aimed at another record than the key CAS protects
		p.applyErrs.Add(1)
		p.log.Error().Str("key", key).Str("name", r.Name).Uint64("revision", rev).Msg("policy record under the wrong key skipped; the policy in force stays")
		return
	}
	p.mu.Lock()
	mine := r.ID != "" && p.own[r.ID] > 0
	if mine {
		if p.own[r.ID]--; p.own[r.ID] <= 0 {
			delete(p.own, r.ID)
		}
	}
	known := p.revs[key] >= rev
	p.mu.Unlock()
	if mine || known {
		// this node's own write (or one it applied already): wait for
		// the write in progress to be in force before reporting it
		p.svc.Barrier()
		p.setRev(key, rev)
		return
	}
	ch, unlocks, err := changeOf(&r, p.doc)
	if err == nil && ch != nil {
		var did bool
		did, err = p.svc.ApplyRemote(ch, unlocks)
		if did {
			p.appliedN.Add(1)
		}
	}
	if err != nil {
		p.applyErrs.Add(1)
		p.log.Error().Err(err).Str("key", key).Uint64("revision", rev).Str("from", r.Node).Msg("fleet change refused; the policy in force stays")
	}
	p.setRev(key, rev)
}

func (p *Policy) setRev(key string, rev uint64) {
	p.mu.Lock()
	if rev > p.revs[key] {
		p.revs[key] = rev
	}
	p.mu.Unlock()
}

// doc reads a document from the Object Store. A read that fails for a
// reason other than the document missing (a stream leader moving, a
// request timing out on a loaded server) is tried again for up to a
// minute: the record is skipped only after that, since a skipped record
// is not applied again until it changes, and this node would go on with
// the old list while reporting the revision applied.
func (p *Policy) doc(name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wait := 100 * time.Millisecond
	for try := 1; ; try++ {
		b, err := p.docs.GetBytes(ctx, name)
		if err == nil || errors.Is(err, jetstream.ErrObjectNotFound) || ctx.Err() != nil {
			return b, err
		}
		p.log.Warn().Err(err).Str("document", name).Int("try", try).Msg("reading a fleet document failed; trying again")
		sleep(ctx, wait)
		wait = min(2*wait, 5*time.Second)
	}
}

// reconcile drops what this node holds and the bucket does not: the
// bucket is the source of truth (a node that ran alone, or missed a
// deletion before tombstones existed).
func (p *Policy) reconcile(seen map[string]bool) {
	have := p.svc.Names()
	n := 0
	drop := func(ch *store.Change) {
		ch.Audit = store.AuditEntry{Action: "fleet.reconcile", Object: "fleet", Who: "fleet", Time: time.Now()}
		if _, err := p.svc.ApplyRemote(ch, nil); err != nil {
			p.log.Error().Err(err).Msg("reconcile: dropping a record the bucket does not hold failed")
			return
		}
		n++
	}
	for name := range have.Accounts {
		if !seen[accountKey(name)] {
			drop(&store.Change{Accounts: map[string]*policy.Account{name: nil}})
		}
	}
	// after the accounts, which may have named them
	for name := range have.Templates {
		if !seen[templateKey(name)] {
			drop(&store.Change{Templates: map[string]*policy.Template{name: nil}})
		}
	}
	for scope := range have.Locks {
		if !seen[lockKey(scope)] {
			drop(&store.Change{Locks: map[string]json.RawMessage{scope: nil}})
		}
	}
	for key := range have.Origin {
		if !seen[originKey(key)] {
			drop(&store.Change{Origin: map[string]json.RawMessage{key: nil}})
		}
	}
	if n > 0 {
		p.log.Warn().Int("records", n).Msg("dropped records this node held that the fleet's bucket does not")
	}
}

// keyOf is the key a record belongs under ("" for kinds this node does
// not know).
func keyOf(r *record) string {
	switch r.Kind {
	case kindAccount:
		return accountKey(r.Name)
	case kindTemplate:
		return templateKey(r.Name)
	case kindLock:
		return lockKey(r.Name)
	case kindOrigin:
		return originKey(r.Name)
	case kindOperator:
		return keyOperator
	case kindHighRisk:
		return keyHighRisk
	case kindRateDeck:
		return keyRateDeck
	}
	return ""
}

// Leave removes this node from tollgate_nodes at shutdown, so ?wait=all
// on the others stops waiting for it at once.
func (p *Policy) Leave() {
	if !p.ready.Load() || !p.c.Connected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.nodes.Delete(ctx, p.c.Node)
}

// Replicate is the service's write path in fleet mode (service.Replicator).
func (p *Policy) Replicate(ch *store.Change) error {
	id := p.c.Node + "-" + strconv.FormatUint(p.seq.Add(1), 36) + "-" + strconv.FormatInt(p.started.UnixNano(), 36)
	recs, err := recordsOf(ch, p.c.Node, id)
	if err != nil {
		return err
	}
	var policyRecs, stateRecs []outRecord
	for _, r := range recs {
		if isPolicyKey(r.key) {
			policyRecs = append(policyRecs, r)
		} else {
			stateRecs = append(stateRecs, r)
		}
	}
	if len(policyRecs) > 0 {
		if err := p.Writable(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	p.mu.Lock()
	p.own[id] = len(recs) // each record comes back through the watcher
	p.mu.Unlock()
	for _, r := range policyRecs {
		if r.doc == nil {
			continue
		}
		if _, err := p.docs.GetInfo(ctx, r.rec.Doc); err != nil {
			if _, err := p.docs.PutBytes(ctx, r.rec.Doc, r.doc); err != nil {
				return p.writeFailed(id, &service.UnavailableError{Msg: "fleet: storing the document failed: " + err.Error() + " (nothing was changed)"})
			}
		}
	}
	if len(policyRecs) > 1 {
		// several records: one atomic batch, all stored or none
		revs, err := p.writeBatch(ctx, policyRecs, id)
		if err != nil {
			return p.writeFailed(id, err)
		}
		for i, r := range policyRecs {
			p.setRev(r.key, revs[i])
		}
		if last := revs[len(revs)-1]; last > p.lastWritten.Load() {
			p.lastWritten.Store(last)
		}
		policyRecs = nil
	}
	for _, r := range policyRecs { // one record: compare-and-set
		val, _ := json.Marshal(r.rec)
		p.mu.Lock()
		expect := p.revs[r.key]
		p.mu.Unlock()
		rev, err := p.kv.Update(ctx, r.key, val, expect)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			cur := uint64(0)
			if e, gerr := p.kv.Get(ctx, r.key); gerr == nil {
				cur = e.Revision()
			}
			return p.writeFailed(id, &service.RevisionConflictError{Key: r.key, Expected: expect, Current: cur})
		}
		if err != nil {
			return p.writeFailed(id, &service.UnavailableError{Msg: "fleet: the policy bucket did not take the write: " + err.Error()})
		}
		p.setRev(r.key, rev)
		if rev > p.lastWritten.Load() {
			p.lastWritten.Store(rev)
		}
	}
	for _, r := range stateRecs {
		val, _ := json.Marshal(r.rec)
		rev, err := uint64(0), errors.New("not connected")
		if p.c.Connected() && p.ready.Load() {
			rev, err = p.kv.Put(ctx, r.key, val)
		}
		if err != nil {
			// never refused: held here and sent when the fleet is back
			p.mu.Lock()
			p.pending[r.key] = val
			delete(p.own, id)
			p.mu.Unlock()
			p.log.Warn().Err(err).Str("key", r.key).Msg("fleet unreachable: the change holds on this node and is sent when NATS is back")
			continue
		}
		p.setRev(r.key, rev)
		if rev > p.lastWritten.Load() {
			p.lastWritten.Store(rev)
		}
	}
	p.publishAudit(ctx, &ch.Audit)
	return nil
}

// writeFailed forgets a write id: nothing of the change is in the fleet
// (one record, or one atomic batch, was refused whole).
func (p *Policy) writeFailed(id string, err error) error {
	p.mu.Lock()
	delete(p.own, id)
	p.mu.Unlock()
	return err
}

// publishAudit sends an audit entry to the audit stream, or keeps it for
// later while NATS is away (this node's data file has it in any case).
func (p *Policy) publishAudit(ctx context.Context, a *store.AuditEntry) {
	body, _ := json.Marshal(struct {
		Node string `json:"node"`
		*store.AuditEntry
	}{p.c.Node, a})
	if p.c.Connected() && p.ready.Load() {
		if _, err := p.c.JS.Publish(ctx, AuditSubject+"."+p.c.Node, body); err == nil {
			return
		}
	}
	p.mu.Lock()
	if len(p.audits) < 10000 {
		p.audits = append(p.audits, body)
	}
	p.mu.Unlock()
}

// flushPending sends the state records and audit entries held while NATS
// was away, before the watcher starts again (so they, not the bucket's
// older values, are the latest).
func (p *Policy) flushPending(ctx context.Context) {
	p.mu.Lock()
	pend, audits := p.pending, p.audits
	p.pending, p.audits = map[string][]byte{}, nil
	p.mu.Unlock()
	for key, val := range pend {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		if newer, _ := p.fleetNewer(cctx, key, val); newer {
			// another node changed this record later than this node did
			// while away (a lock after this node's unlock): the later
			// change wins, not the later arrival
			cancel()
			p.log.Warn().Str("key", key).Msg("change held while NATS was away dropped: the fleet changed the record later")
			continue
		}
		_, err := p.kv.Put(cctx, key, val)
		cancel()
		if err != nil {
			p.mu.Lock()
			if _, newer := p.pending[key]; !newer {
				p.pending[key] = val
			}
			p.mu.Unlock()
			continue
		}
		p.log.Info().Str("key", key).Msg("change held while NATS was away sent to the fleet")
	}
	for _, a := range audits {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := p.c.JS.Publish(cctx, AuditSubject+"."+p.c.Node, a)
		cancel()
		if err != nil {
			break
		}
	}
}

// fleetNewer reports whether the bucket's record under key was written
// after the held record val (by their audit times).
func (p *Policy) fleetNewer(ctx context.Context, key string, val []byte) (bool, error) {
	e, err := p.kv.Get(ctx, key)
	if err != nil {
		return false, err
	}
	var cur, mine record
	if json.Unmarshal(e.Value(), &cur) != nil || json.Unmarshal(val, &mine) != nil || cur.Audit == nil || mine.Audit == nil {
		return false, nil
	}
	return cur.Audit.Time.After(mine.Audit.Time), nil
}

// Writable says whether policy writes are taken now, and if not, why
// (a *service.UnavailableError: the admin API answers 503).
func (p *Policy) Writable() error {
	switch {
	case !p.c.Connected():
		return &service.UnavailableError{Msg: fmt.Sprintf("fleet: NATS unreachable for %s; this node serves its last applied policy and refuses policy writes so the fleet's policy does not fork (locks and unlocks still work)", p.c.DownFor().Round(time.Second))}
	case !p.synced.Load():
		return &service.UnavailableError{Msg: "fleet: catching up with the policy bucket; retry in a moment"}
	case !p.seeded.Load():
		return &service.UnavailableError{Msg: "fleet: the policy bucket " + PolicyBucket + " is not seeded; load it once with `tollgate fleet seed -data-dir DIR -nats URL` (docs/fleet.md)"}
	}
	return nil
}

// Stale is how long this node's policy may have been behind the fleet:
// 0 while it watches the bucket, else the time since it last did (since
// start if it never did).
func (p *Policy) Stale() time.Duration {
	if p.synced.Load() && p.c.Connected() {
		return 0
	}
	at := p.syncedAt.Load()
	if at == 0 {
		return time.Since(p.started)
	}
	return time.Since(time.Unix(0, at))
}

// Synced reports whether the node is watching the bucket and has applied
// its current values.
func (p *Policy) Synced() bool { return p.synced.Load() && p.c.Connected() }

// Applied is the bucket revision this node has applied.
func (p *Policy) Applied() uint64 { return p.applied.Load() }

// LastWritten is the highest bucket revision this node's writes produced.
func (p *Policy) LastWritten() uint64 { return p.lastWritten.Load() }
