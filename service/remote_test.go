package service

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// counting records what a Replicator was given.
type counting struct{ n int }

func (c *counting) Replicate(*store.Change) error { c.n++; return nil }

// TestApplyRemote: another node's changes apply through the write path
// (stored, audited, in force, locks in the engine), are not replicated
// again, and a replay changes nothing.
func TestApplyRemote(t *testing.T) {
	f := openVel(t, t.TempDir(), Options{})
	rep := &counting{}
	f.svc.SetReplicator(rep)
	acme := &policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}}
	audit := store.AuditEntry{Action: "account.put", Object: "accounts/acme", Who: "ops-n2", Time: time.Now()}
	until := f.clk.Now().Add(time.Hour).UTC()
	steps := []struct {
		name    string
		ch      store.Change
		unlocks map[string]RemoteUnlock
		applied bool
		check   func() error
	}{
		{"account", store.Change{Audit: audit, Accounts: map[string]*policy.Account{"acme": acme}}, nil, true, func() error {
			a, err := f.svc.Account("acme")
			if err != nil || a.HomeCountry == nil || *a.HomeCountry != "GB" {
				return errors.New("account not in force")
			}
			return nil
		}},
		{"replayed", store.Change{Audit: audit, Accounts: map[string]*policy.Account{"acme": acme}}, nil, false, nil},
		{"lock", store.Change{Audit: audit, Locks: map[string]json.RawMessage{"acme": mustJSON(velocity.Lock{Account: "acme", By: "ops-n2", Reason: "r"})}}, nil, true, func() error {
			if _, ok := f.vel.LockOf("acme", ""); !ok {
				return errors.New("not locked")
			}
			return nil
		}},
		{"unlock", store.Change{Audit: audit, Locks: map[string]json.RawMessage{"acme": nil}}, map[string]RemoteUnlock{"acme": {By: "ops-n3", Reason: "ok", Until: until}}, true, func() error {
			if _, ok := f.vel.LockOf("acme", ""); ok {
				return errors.New("still locked")
			}
			return nil
		}},
		{"unlock replayed", store.Change{Audit: audit, Locks: map[string]json.RawMessage{"acme": nil}}, nil, false, nil},
		{"account deleted", store.Change{Audit: audit, Accounts: map[string]*policy.Account{"acme": nil}}, nil, true, func() error {
			if _, err := f.svc.Account("acme"); err == nil {
				return errors.New("account still there")
			}
			return nil
		}},
	}
	for _, s := range steps {
		applied, err := f.svc.ApplyRemote(&s.ch, s.unlocks)
		if err != nil || applied != s.applied {
			t.Fatalf("%s: applied %v, %v; want %v", s.name, applied, err, s.applied)
		}
		if s.check != nil {
			if err := s.check(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
		}
	}
	if rep.n != 0 {
		t.Fatalf("remote changes replicated again %d times", rep.n)
	}
	es, err := f.st.Audit(0, 0)
	if err != nil || len(es) != 4 || es[0].Who != "ops-n2" {
		t.Fatalf("audit: %d entries, %v: %+v", len(es), err, es)
	}
	// an invalid account from the bucket is refused; the policy stays
	bad := &policy.Account{Policy: policy.Policy{HomeCountry: ptr("XX")}}
	var inv *InvalidError
	if _, err := f.svc.ApplyRemote(&store.Change{Accounts: map[string]*policy.Account{"evil": bad}}, nil); !errors.As(err, &inv) {
		t.Fatalf("invalid remote account: %v", err)
	}
	if _, err := f.svc.Account("evil"); err == nil {
		t.Fatal("invalid remote account applied")
	}
	// a local write goes to the replicator first
	if _, err := f.svc.PutAccount(admin, "beta", policy.Account{}); err != nil || rep.n != 1 {
		t.Fatalf("local write: %v, replicated %d", err, rep.n)
	}
}
