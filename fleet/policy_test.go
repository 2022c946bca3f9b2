package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/fleet/fleettest"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

func TestEncName(t *testing.T) {
	for in, want := range map[string]string{
		"acme":       "acme",
		"a-b_c":      "a-b_c",
		"a.b":        "=612e62",
		"x@y":        "=784079",
		"acme/sales": "=61636d652f73616c6573",
	} {
		if got := encName(in); got != want {
			t.Errorf("encName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRecordRoundTrip: every kind of change comes back from its records
// as it went in.
func TestRecordRoundTrip(t *testing.T) {
	acme := &policy.Account{AccountMaxChannels: 10}
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	unlockAfter, _ := json.Marshal(map[string]any{"unlocked": true, "by": "ops", "reason": "called", "until": until})
	for _, tc := range []struct {
		name string
		ch   store.Change
	}{
		{"account", store.Change{Accounts: map[string]*policy.Account{"acme": acme}}},
		{"account dotted", store.Change{Accounts: map[string]*policy.Account{"a.b": acme}}},
		{"account deleted", store.Change{Accounts: map[string]*policy.Account{"acme": nil}}},
		{"template", store.Change{Templates: map[string]*policy.Template{"retail-eu": {Description: "EU retail", AccountMaxChannels: 20}}}},
		{"template deleted", store.Change{Templates: map[string]*policy.Template{"retail-eu": nil}}},
		{"operator", store.Change{Operator: &policy.Operator{UnknownAccounts: policy.UnknownReject}}},
		{"high-risk", store.Change{HighRisk: &store.HighRiskList{Entries: []policy.HighRiskEntry{{Prefix: "+88299", Country: "GB", Category: "premium_rate", Source: "t"}},
			Version: "v1", Source: "api:t", Updated: until}}},
		{"high-risk dropped", store.Change{DropHighRisk: true}},
		{"rate deck dropped", store.Change{DropRateDeck: true}},
		{"lock", store.Change{Locks: map[string]json.RawMessage{"acme/sales": json.RawMessage(`{"account":"acme","subaccount":"sales"}`)}}},
		{"unlock", store.Change{Audit: store.AuditEntry{Who: "ops", After: unlockAfter}, Locks: map[string]json.RawMessage{"acme": nil}}},
		{"origin", store.Change{Origin: map[string]json.RawMessage{"acme": json.RawMessage(`{"home":"US"}`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := recordsOf(&tc.ch, "n1", "id1")
			if err != nil || len(recs) != 1 {
				t.Fatalf("recordsOf: %d records, %v", len(recs), err)
			}
			r := recs[0]
			if !validKey(r.key) {
				t.Fatalf("key %q is not a valid KV key", r.key)
			}
			b, _ := json.Marshal(r.rec)
			var back record
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, unlocks, err := changeOf(&back, func(name string) ([]byte, error) {
				if name != r.rec.Doc {
					return nil, errors.New("wrong document " + name)
				}
				return r.doc, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := tc.ch
			want.Audit.ID = 0
			if want.HighRisk != nil {
				want.HighRisk.Updated = want.HighRisk.Updated.UTC()
			}
			if !reflect.DeepEqual(mustJ(got), mustJ(&want)) {
				t.Fatalf("round trip:\n got %s\nwant %s", mustJ(got), mustJ(&want))
			}
			if tc.name == "unlock" {
				u := unlocks["acme"]
				if u.By != "ops" || u.Reason != "called" || !u.Until.Equal(until) {
					t.Fatalf("unlock lost its grace: %+v", u)
				}
			}
		})
	}
}

func mustJ(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// validKey is nats.go's rule for KV keys.
func validKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-/_=.", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzChangeOf: whatever a bucket holds, reading it back never panics,
// and an account record that decodes has a valid name.
func FuzzChangeOf(f *testing.F) {
	f.Add([]byte(`{"kind":"account","name":"acme","data":{"home_country":"US"}}`))
	f.Add([]byte(`{"kind":"lock","name":"acme","unlock":{"by":"x"}}`))
	f.Add([]byte(`{"kind":"high_risk","data":{"version":"1"},"doc":"d"}`))
	f.Add([]byte(`{"kind":"operator","data":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		if json.Unmarshal(b, &r) != nil {
			return
		}
		ch, _, err := changeOf(&r, func(string) ([]byte, error) { return []byte("prefix,country,category,source\n"), nil })
		if err != nil || ch == nil {
			return
		}
		for name := range ch.Accounts {
			if policy.ValidName(name) != nil {
				t.Fatalf("account %q accepted", name)
			}
		}
	})
}

// TestReplicateConflict: a write built on a revision another node has
// replaced is refused with the current revision, and nothing is written.
func TestReplicateConflict(t *testing.T) {
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
	ch := func() *store.Change {
		return &store.Change{Accounts: map[string]*policy.Account{"acme": {AccountMaxChannels: 10}}, Audit: store.AuditEntry{Action: "account.put"}}
	}
	// not seeded, not watching: refused as unavailable
	var un *service.UnavailableError
	if err := p.Replicate(ch()); !errors.As(err, &un) {
		t.Fatalf("unsynced write: %v, want UnavailableError", err)
	}
	p.synced.Store(true)
	p.seeded.Store(true)
	if err := p.Replicate(ch()); err != nil {
		t.Fatalf("first write: %v", err)
	}
	first := p.revs["acct.acme"]
	// another node writes acme; this node has not seen it
	other, _ := json.Marshal(record{Kind: kindAccount, Name: "acme", Node: "n2", Data: json.RawMessage(`{"home_country":"GB"}`)})
	rev2, err := p.kv.Put(ctx, "acct.acme", other)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Replicate(ch())
	var rc *service.RevisionConflictError
	if !errors.As(err, &rc) || rc.Expected != first || rc.Current != rev2 || rc.Key != "acct.acme" {
		t.Fatalf("stale write: %v (%+v), want a conflict at %d/%d", err, rc, first, rev2)
	}
	e, err := p.kv.Get(ctx, "acct.acme")
	if err != nil || e.Revision() != rev2 {
		t.Fatalf("the other node's write was overwritten: %v %v", e, err)
	}
	// once this node has seen it, the write goes through
	p.setRev("acct.acme", rev2)
	if err := p.Replicate(ch()); err != nil {
		t.Fatalf("write after catching up: %v", err)
	}
	// a lock is never refused, even while NATS is away: held, then sent
	nc.Close()
	lock := &store.Change{Locks: map[string]json.RawMessage{"acme": json.RawMessage(`{"account":"acme"}`)}}
	if err := p.Replicate(lock); err != nil {
		t.Fatalf("lock while disconnected: %v", err)
	}
	if p.Counters().Pending != 1 {
		t.Fatalf("pending %d, want the lock held", p.Counters().Pending)
	}
}

// TestSeedForce: seeding a bucket that holds a policy is refused; with
// force, the file's records replace the bucket's and the others become
// tombstones.
func TestSeedForce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a nats-server")
	}
	cl := fleettest.StartCluster(t, t.TempDir(), 1)
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, _ := NewConn(nc, "seeder", 1)
	open := func(accounts ...string) *store.Store {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		ch := &store.Change{Accounts: map[string]*policy.Account{}, Audit: store.AuditEntry{Action: "account.put"}}
		for _, a := range accounts {
			ch.Accounts[a] = &policy.Account{AccountMaxChannels: 2}
		}
		if _, err := st.Commit(ch); err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx := context.Background()
	res, err := Seed(ctx, c, open("acme", "beta"), "one", false)
	if err != nil || res.Records != 3 { // operator + 2 accounts
		t.Fatalf("first seed: %+v %v", res, err)
	}
	if _, err := Seed(ctx, c, open("acme"), "two", false); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second seed: %v, want ErrNotEmpty", err)
	}
	res, err = Seed(ctx, c, open("acme"), "two", true)
	if err != nil || res.Records != 2 || res.Tombstones != 1 {
		t.Fatalf("forced seed: %+v %v", res, err)
	}
	kv, _ := c.JS.KeyValue(ctx, PolicyBucket)
	e, err := kv.Get(ctx, accountKey("beta"))
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if json.Unmarshal(e.Value(), &r) != nil || r.Data != nil || r.Kind != kindAccount {
		t.Fatalf("beta after the forced seed is not a tombstone: %s", e.Value())
	}
}

// TestWaitAllSilent: a node silent past LiveAfter does not hold ?wait=all
// up, and is named when it had not applied the write when last heard.
func TestWaitAllSilent(t *testing.T) {
	p := &Policy{view: newNodeView()}
	now := time.Now()
	for name, st := range map[string]struct {
		applied uint64
		quiet   time.Duration
	}{
		"live-done":   {7, 0},
		"silent-old":  {6, LiveAfter + time.Second},
		"silent-done": {7, LiveAfter + time.Second},
		"gone":        {1, 2 * time.Hour},
	} {
		p.view.nodes[name] = NodeStatus{Node: name, Applied: st.applied}
		p.view.heard[name] = now.Add(-st.quiet)
	}
	done, pending, silent := p.WaitAll(7, time.Second)
	if !reflect.DeepEqual(done, []string{"live-done"}) || len(pending) != 0 || !reflect.DeepEqual(silent, []string{"silent-old"}) {
		t.Fatalf("WaitAll(7) = done %v, pending %v, silent %v", done, pending, silent)
	}
	p.view.nodes["live-late"] = NodeStatus{Node: "live-late", Applied: 6}
	p.view.heard["live-late"] = now
	done, pending, _ = p.WaitAll(7, 50*time.Millisecond)
	if !reflect.DeepEqual(done, []string{"live-done"}) || !reflect.DeepEqual(pending, []string{"live-late"}) {
		t.Fatalf("WaitAll(7) with a live laggard = done %v, pending %v", done, pending)
	}
}

// flakyDocs fails its first reads the way a loaded cluster does.
type flakyDocs struct {
	jetstream.ObjectStore
	fails int
	reads int
}

func (f *flakyDocs) GetBytes(ctx context.Context, name string, _ ...jetstream.GetObjectOpt) ([]byte, error) {
	f.reads++
	if f.reads <= f.fails {
		return nil, context.DeadlineExceeded
	}
	if name == "missing" {
		return nil, jetstream.ErrObjectNotFound
	}
	return []byte("body of " + name), nil
}

// TestDocRetries: a document read that fails for a passing reason is
// tried again (the record would otherwise be skipped for good); a missing
// document is not.
func TestDocRetries(t *testing.T) {
	f := &flakyDocs{fails: 2}
	p := &Policy{docs: f, log: zerolog.Nop()}
	if b, err := p.doc("list"); err != nil || string(b) != "body of list" || f.reads != 3 {
		t.Fatalf("doc after two failed reads: %q %v, %d reads", b, err, f.reads)
	}
	f.reads, f.fails = 0, 0
	if _, err := p.doc("missing"); !errors.Is(err, jetstream.ErrObjectNotFound) || f.reads != 1 {
		t.Fatalf("missing doc: %v after %d reads", err, f.reads)
	}
}
