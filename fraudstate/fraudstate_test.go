package fraudstate

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// mem is a Backend in memory that can be told to fail.
type mem struct {
	mu   sync.Mutex
	m    [NumKinds]map[string]string
	fail bool
	n    int // batches written
}

func (b *mem) WriteState(batch *Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail {
		return errors.New("disk full")
	}
	b.n++
	for k := Kind(0); k < NumKinds; k++ {
		if b.m[k] == nil {
			b.m[k] = map[string]string{}
		}
		batch.Each(k, func(key string, val []byte) error {
			if val == nil {
				delete(b.m[k], key)
			} else {
				b.m[k][key] = string(val)
			}
			return nil
		})
	}
	return nil
}

func (b *mem) LoadState(k Kind, fn func(string, []byte) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, v := range b.m[k] {
		if err := fn(key, []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// source puts its next records at every Collect.
type source struct{ next map[string]string }

func (s *source) Collect(b *Batch) {
	for k, v := range s.next {
		if v == "" {
			b.Delete(Scopes, k)
		} else {
			b.Put(Scopes, k, []byte(v))
		}
	}
	s.next = nil
}

// The last write of a key in a batch wins (a delivery queued and taken
// before the flush leaves nothing); a failed write keeps its records for
// the next flush, under anything newer.
func TestWriterBatches(t *testing.T) {
	be := &mem{}
	w := NewWriter(be, Options{})
	src := &source{}
	w.AddSource(src)
	w.Put(Webhooks, "d1", []byte("x"))
	w.Delete(Webhooks, "d1")
	w.Put(Alerts, "a1", []byte("1"))
	src.next = map[string]string{"acme": "s1"}
	if err := w.Flush(); err != nil || be.n != 1 || len(be.m[Webhooks]) != 0 || be.m[Alerts]["a1"] != "1" || be.m[Scopes]["acme"] != "s1" {
		t.Fatalf("first flush: %v %+v", err, be.m)
	}
	if w.Flush(); be.n != 1 {
		t.Fatal("an empty flush wrote a batch")
	}
	be.fail = true
	src.next = map[string]string{"acme": "s2", "other": "o1"}
	w.Put(Alerts, "a2", []byte("2"))
	if err := w.Flush(); err == nil || w.Stats().Failures != 1 || w.Stats().Pending != 3 {
		t.Fatalf("failed flush: %v %+v", err, w.Stats())
	}
	be.fail = false
	src.next = map[string]string{"other": ""} // newer than the failed batch's "o1"
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if be.m[Scopes]["acme"] != "s2" || be.m[Alerts]["a2"] != "2" {
		t.Fatalf("the failed batch was lost: %+v", be.m)
	}
	if _, ok := be.m[Scopes]["other"]; ok {
		t.Fatalf("an older write of the failed batch won over a newer delete: %+v", be.m)
	}
}

// Restore feeds each kind to its loader, scopes before calls; refused
// records are deleted at the next flush.
func TestRestore(t *testing.T) {
	be := &mem{}
	be.m[Scopes] = map[string]string{"acme": "ok", "gone": "ok"}
	be.m[Calls] = map[string]string{"c1": "ok"}
	w := NewWriter(be, Options{})
	var order []string
	r, err := Restore(be, w, [NumKinds]Loader{
		Scopes: func(key string, _ []byte) error {
			order = append(order, "scope")
			if key == "gone" {
				return errors.New("no such account")
			}
			return nil
		},
		Calls: func(string, []byte) error { order = append(order, "call"); return nil },
	})
	if err != nil || r.Loaded[Scopes] != 1 || r.Refused[Scopes] != 1 || r.Loaded[Calls] != 1 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "scopes gone: no such account") {
		t.Fatalf("%+v %v", r, err)
	}
	if strings.Join(order, ",") != "scope,scope,call" {
		t.Errorf("order %v", order)
	}
	w.Flush()
	if _, ok := be.m[Scopes]["gone"]; ok || be.m[Scopes]["acme"] != "ok" {
		t.Errorf("after the flush: %+v", be.m[Scopes])
	}
}
