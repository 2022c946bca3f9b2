package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

func TestLocksAndRateDeck(t *testing.T) {
	s, dir := openTemp(t)
	if l, err := s.Locks(); err != nil || len(l) != 0 {
		t.Fatalf("fresh locks %v %v", l, err)
	}
	if d, m, err := s.RateDeck(); err != nil || d != nil || m.Stored {
		t.Fatalf("fresh deck %v %+v %v", d, m, err)
	}
	deck := policy.RateDeck{Currency: "GBP", Entries: []policy.RateEntry{{Prefix: "+44", Micro: 12_000}, {Prefix: "+88216", Micro: 1_200_000}}}
	up := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	id, err := s.Commit(&Change{
		Audit:    AuditEntry{Action: "lock", Object: "accounts/acme/lock"},
		Locks:    map[string]json.RawMessage{"acme": json.RawMessage(`{"account":"acme","by":"ops"}`), "acme/sales": json.RawMessage(`{"x":1}`)},
		RateDeck: &RateDeckRecord{Deck: deck, Version: "v1", Source: "api:ops", Updated: up},
	})
	if err != nil || id == 0 {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Change{Locks: map[string]json.RawMessage{"acme/sales": nil}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Change{Locks: map[string]json.RawMessage{"bad": json.RawMessage(`{nope`)}}); err == nil {
		t.Error("invalid lock JSON stored")
	}
	check := func(s *Store) {
		t.Helper()
		l, err := s.Locks()
		if err != nil || len(l) != 1 || string(l["acme"]) != `{"account":"acme","by":"ops"}` {
			t.Errorf("locks %v %v", l, err)
		}
		d, m, err := s.RateDeck()
		if err != nil || d == nil || !reflect.DeepEqual(*d, deck) {
			t.Fatalf("deck %+v %v", d, err)
		}
		if !m.Stored || m.Version != "v1" || m.Source != "api:ops" || m.Count != 2 || m.Currency != "GBP" || !m.Updated.Equal(up) {
			t.Errorf("deck meta %+v", m)
		}
	}
	check(s)
	s.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(ro)
	ro.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Commit(&Change{DropRateDeck: true}); err != nil {
		t.Fatal(err)
	}
	if d, m, err := s2.RateDeck(); err != nil || d != nil || m.Stored {
		t.Errorf("after drop %v %+v %v", d, m, err)
	}
}

// A version 1 file written before locks and rate decks existed is older,
// not damaged: it gets them, empty, when it is sealed.
func TestOlderFileGetsNewBuckets(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	os.WriteFile(path, src, 0o600)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		for _, b := range addedBuckets {
			if tx.Bucket(b) == nil {
				continue // added after version 1 was replaced
			}
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()

	rw, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("writable open of an older file: %v", err)
	}
	if l, err := rw.Locks(); err != nil || len(l) != 0 {
		t.Errorf("locks %v %v", l, err)
	}
	if d, _, err := rw.RateDeck(); err != nil || d != nil {
		t.Errorf("deck %v %v", d, err)
	}
	if set, err := rw.Load(); err != nil || len(set.Accounts) != 2 {
		t.Errorf("load %v", err)
	}
	if _, err := rw.Commit(&Change{Locks: map[string]json.RawMessage{"acme": json.RawMessage(`{}`)}}); err != nil {
		t.Errorf("lock in an upgraded file: %v", err)
	}
	rw.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if l, err := ro.Locks(); err != nil || len(l) != 1 {
		t.Errorf("locks after upgrade %v %v", l, err)
	}
}
