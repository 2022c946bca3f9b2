package cow

import (
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"
)

// check fails unless m holds exactly want.
func check(t *testing.T, what string, m Map[int], want map[string]int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("%s: Len %d, want %d", what, m.Len(), len(want))
	}
	n := 0
	for k, v := range m.All() {
		n++
		if w, ok := want[k]; !ok || w != v {
			t.Fatalf("%s: %q = %d, want %d (present %v)", what, k, v, w, ok)
		}
	}
	if n != len(want) {
		t.Fatalf("%s: All yielded %d keys, want %d", what, n, len(want))
	}
	for k, w := range want {
		if v, ok := m.Get(k); !ok || v != w {
			t.Fatalf("%s: Get(%q) = %d %v, want %d", what, k, v, ok, w)
		}
	}
}

// TestPersistent makes random changes through With, Without and Builders
// and checks after every step that every Map made before it still holds
// exactly what it held: a change that wrote into a shard another Map shares
// fails here.
func TestPersistent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type version struct {
		m    Map[int]
		want map[string]int
	}
	var m Map[int]
	want := map[string]int{}
	var history []version
	key := func() string { return "k" + strconv.Itoa(r.IntN(3000)) }
	for step := 0; step < 400; step++ {
		switch r.IntN(4) {
		case 0:
			k, v := key(), r.Int()
			m, want[k] = m.With(k, v), v
		case 1:
			k := key()
			m = m.Without(k)
			delete(want, k)
		default: // a batch, some keys twice, some deleted
			b := m.Edit()
			for i := r.IntN(50); i > 0; i-- {
				k := key()
				if r.IntN(5) == 0 {
					b.Delete(k)
					delete(want, k)
					continue
				}
				v := r.Int()
				b.Set(k, v)
				want[k] = v
				if got, ok := b.Get(k); !ok || got != v {
					t.Fatalf("builder Get(%q) = %d %v", k, got, ok)
				}
			}
			m = b.Map()
		}
		history = append(history, version{m, maps.Clone(want)})
		if step%20 == 0 {
			for i, h := range history {
				check(t, "version "+strconv.Itoa(i), h.m, h.want)
			}
		}
	}
	for i, h := range history {
		check(t, "version "+strconv.Itoa(i), h.m, h.want)
	}
}

// TestSharing checks that a one-key change copies one shard and shares the
// other 255.
func TestSharing(t *testing.T) {
	b := NewBuilder[int](10000)
	for i := 0; i < 10000; i++ {
		b.Set("acct-"+strconv.Itoa(i), i)
	}
	m := b.Map()
	m2 := m.With("acct-7", -1)
	if v, _ := m.Get("acct-7"); v != 7 {
		t.Fatalf("the old map changed: acct-7 = %d", v)
	}
	shared := 0
	for i := 0; i < 10000; i++ {
		k := "acct-" + strconv.Itoa(i)
		if m.SharesShard(m2, k) {
			shared++
			if shardOf(k) == shardOf("acct-7") {
				t.Fatalf("%s shares the changed shard", k)
			}
		}
	}
	if want := 10000 - len(m.sh[shardOf("acct-7")]); shared != want {
		t.Errorf("%d keys in shared shards, want %d", shared, want)
	}
	if m.SharesShard(m2, "acct-7") {
		t.Error("the changed shard is shared")
	}
	var zero Map[int]
	if _, ok := zero.Get("x"); ok || zero.Len() != 0 || zero.Without("x").Len() != 0 {
		t.Error("zero Map is not empty")
	}
}

func TestBuilderUsedAfterMap(t *testing.T) {
	b := NewBuilder[int](0)
	b.Set("a", 1)
	b.Map()
	defer func() {
		if recover() == nil {
			t.Error("a Builder used after Map did not panic")
		}
	}()
	b.Set("b", 2)
}

func TestGetZeroAlloc(t *testing.T) {
	m := Map[int]{}.With("acct-000001", 1)
	if n := testing.AllocsPerRun(100, func() { m.Get("acct-000001"); m.Get("nobody") }); n != 0 {
		t.Errorf("Get: %.1f allocs", n)
	}
}
