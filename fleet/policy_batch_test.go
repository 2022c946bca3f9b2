package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tollgate/tollgate/fleet/fleettest"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// TestReplicateBatch: a change of many accounts is written whole or not
// at all. Clean, all 50 land with consecutive revisions; with one of them
// changed underneath by another node, the write is a conflict naming that
// account and none of the 50 is changed; over the server's batch limit it
// is refused before anything is written.
func TestReplicateBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a nats-server")
	}
	cl := fleettest.StartCluster(t, t.TempDir(), 1)
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, err := NewConn(nc, "n1", 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{c: c, revs: map[string]uint64{}, own: map[string]int{}, pending: map[string][]byte{}, view: newNodeView(), started: time.Now()}
	ctx := context.Background()
	if err := p.bind(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.JS.Stream(ctx, policyStream)
	if err != nil || !st.CachedInfo().Config.AllowAtomicPublish || !p.atomic.Load() {
		t.Fatalf("atomic publish not enabled on %s: %v", policyStream, err)
	}
	p.synced.Store(true)
	p.seeded.Store(true)
	bulk := func(n, maxCh int) *store.Change {
		ch := &store.Change{Accounts: map[string]*policy.Account{}, Audit: store.AuditEntry{Action: "accounts.bulk_patch"}}
		for i := 0; i < n; i++ {
			ch.Accounts[fmt.Sprintf("a%d", i)] = &policy.Account{AccountMaxChannels: maxCh}
		}
		return ch
	}
	revsOf := func() map[string]uint64 {
		out := map[string]uint64{}
		for i := 0; i < 50; i++ {
			key := accountKey(fmt.Sprintf("a%d", i))
			if e, err := p.kv.Get(ctx, key); err == nil {
				out[key] = e.Revision()
			}
		}
		return out
	}

	if err := p.Replicate(bulk(50, 10)); err != nil {
		t.Fatalf("clean bulk change: %v", err)
	}
	before := revsOf()
	if len(before) != 50 {
		t.Fatalf("clean bulk change: %d of 50 records in the bucket", len(before))
	}
	lo, hi := ^uint64(0), uint64(0)
	for key, rev := range before {
		if p.revs[key] != rev {
			t.Fatalf("%s: this node recorded revision %d, the bucket has %d", key, p.revs[key], rev)
		}
		lo, hi = min(lo, rev), max(hi, rev)
	}
	if hi-lo != 49 || p.LastWritten() != hi {
		t.Fatalf("revisions %d..%d, last written %d: want 50 consecutive, the last one reported", lo, hi, p.LastWritten())
	}

	// another node changes a17; this node has not seen it
	other, _ := json.Marshal(record{Kind: kindAccount, Name: "a17", Node: "n2", Data: json.RawMessage(`{"account_max_channels":99}`)})
	rev17, err := p.kv.Put(ctx, accountKey("a17"), other)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Replicate(bulk(50, 20))
	var rc *service.RevisionConflictError
	if !errors.As(err, &rc) || rc.Key != accountKey("a17") || rc.Current != rev17 || rc.Expected != before[accountKey("a17")] {
		t.Fatalf("bulk change over a changed record: %v (%+v), want a conflict on acct.a17 at %d", err, rc, rev17)
	}
	after := revsOf()
	for key, rev := range before {
		want := rev
		if key == accountKey("a17") {
			want = rev17
		}
		if after[key] != want {
			t.Fatalf("%s: revision %d after the refused change, want %d: the change was half-applied", key, after[key], want)
		}
	}
	if len(p.own) != 1 { // the first change's, no watcher runs here
		t.Fatalf("the refused change's write id left behind: %v", p.own)
	}

	// caught up, the same change goes through whole
	p.setRev(accountKey("a17"), rev17)
	if err := p.Replicate(bulk(50, 20)); err != nil {
		t.Fatalf("bulk change after catching up: %v", err)
	}
	for key, rev := range revsOf() {
		if rev <= after[key] {
			t.Fatalf("%s not rewritten by the accepted change", key)
		}
	}

	// over the server's limit (1000 records by default): refused, 400
	var inv *service.InvalidError
	err = p.Replicate(bulk(1001, 30))
	if !errors.As(err, &inv) || inv.Field() != "body" || !strings.Contains(err.Error(), "split the bulk change") || !strings.Contains(err.Error(), "at most 1000") {
		t.Fatalf("1001-record change: %v, want a 400 saying to split it", err)
	}
	if e, err := p.kv.Get(ctx, accountKey("a999")); err == nil {
		t.Fatalf("a999 written by a refused change (revision %d)", e.Revision())
	}

	// a server without atomic batches (older than 2.12): refused, 503,
	// never written one by one
	p.atomic.Store(false)
	var un *service.UnavailableError
	err = p.Replicate(bulk(50, 40))
	if !errors.As(err, &un) || !strings.Contains(err.Error(), "2.12") {
		t.Fatalf("bulk change without atomic batches: %v, want a 503 naming the server version", err)
	}
	for key, rev := range revsOf() {
		if p.revs[key] != rev {
			t.Fatalf("%s written (revision %d) by a change refused for want of atomic batches", key, rev)
		}
	}
	if err := p.Replicate(&store.Change{Accounts: map[string]*policy.Account{"a1": {AccountMaxChannels: 41}}, Audit: store.AuditEntry{Action: "account.put"}}); err != nil {
		t.Fatalf("single-record change without atomic batches: %v", err)
	}
}
