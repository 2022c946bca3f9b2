// Package cow is a persistent (copy-on-write) map from names to values for
// state that readers hold while one writer changes it: the compiled accounts
// of a policy snapshot, the velocity engine's scopes. The keys are spread
// over 256 shards by a hash; a change copies the shard table (256 pointers)
// and the one shard it touches, so replacing one account among 100,000
// copies about 400 entries, and every map derived from another shares all
// its untouched shards with it. A Map is never changed once built, so any
// number of goroutines may read it without a lock while a new one is made.
package cow

import (
	"hash/maphash"
	"iter"
	"maps"
	"reflect"
)

// Shards is the number of shards: enough that one shard of 100,000 keys is
// a few hundred entries, few enough that copying the shard table costs
// nothing next to copying a shard.
const Shards = 256

// seed is one per process: every Map of the process shards the same way, so
// a Builder can reuse the shards of the Map it edits.
var seed = maphash.MakeSeed()

func shardOf(k string) uint8 { return uint8(maphash.String(seed, k)) }

// ShardOf is the shard k is in (0 to Shards-1), the same for every Map of
// the process: keys in one shard are copied together by a change to any of
// them. For tests of structural sharing.
func ShardOf(k string) int { return int(shardOf(k)) }

type shards[V any] [Shards]map[string]V

// Map is an immutable map. The zero Map is empty and ready to use. Copying
// a Map copies a pointer and a length.
type Map[V any] struct {
	sh *shards[V]
	n  int
}

// Get returns the value of k. It allocates nothing and takes no lock: the
// query path calls it.
func (m Map[V]) Get(k string) (v V, ok bool) {
	if m.sh == nil {
		return v, false
	}
	v, ok = m.sh[shardOf(k)][k]
	return v, ok
}

// Len is the number of keys.
func (m Map[V]) Len() int { return m.n }

// All iterates over every key and value, in no particular order.
func (m Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m.sh == nil {
			return
		}
		for _, s := range m.sh {
			for k, v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// With returns m with k set to v; m is unchanged.
func (m Map[V]) With(k string, v V) Map[V] {
	b := m.Edit()
	b.Set(k, v)
	return b.Map()
}

// Without returns m without k; m is unchanged.
func (m Map[V]) Without(k string) Map[V] {
	b := m.Edit()
	b.Delete(k)
	return b.Map()
}

// SharesShard reports whether m and o hold the very same shard for k: true
// when a change to other keys left k's shard alone. For tests of structural
// sharing.
func (m Map[V]) SharesShard(o Map[V], k string) bool {
	if m.sh == nil || o.sh == nil {
		return false
	}
	i := shardOf(k)
	a, b := m.sh[i], o.sh[i]
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	// Two maps are the same object when a write through one shows in the
	// other; compare their identities without writing.
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Builder makes a new Map from an old one (or from nothing) with any number
// of changes: the first change to a shard copies it, later ones to the same
// shard edit the copy. The Map it edits is never changed.
type Builder[V any] struct {
	sh    *shards[V]
	n     int
	owned [Shards / 64]uint64 // shards this builder copied (or made) and may edit
	hint  int                 // initial size of a new shard
	done  bool
}

// Edit starts a Builder from m.
func (m Map[V]) Edit() *Builder[V] {
	b := &Builder[V]{sh: new(shards[V]), n: m.n}
	if m.sh != nil {
		*b.sh = *m.sh
	}
	return b
}

// NewBuilder starts an empty Map expected to hold about n keys. A shard
// starts sized for its share of them and no more: a Go map's table is a
// power of two, so a quarter more made every shard of 100,000 keys (390
// each) twice the size it needed (1,024 slots instead of 512, 6.5 MB
// instead of 3.3 for the 256 shards). The few shards that get more than
// their share grow.
func NewBuilder[V any](n int) *Builder[V] {
	return &Builder[V]{sh: new(shards[V]), hint: n / Shards}
}

// shard returns k's shard, copied first if this builder does not own it.
func (b *Builder[V]) shard(k string) map[string]V {
	if b.done {
		panic("cow: Builder used after Map")
	}
	i := shardOf(k)
	if b.owned[i/64]&(1<<(i%64)) == 0 {
		old := b.sh[i]
		s := make(map[string]V, max(len(old)+1, b.hint))
		maps.Copy(s, old)
		b.sh[i] = s
		b.owned[i/64] |= 1 << (i % 64)
	}
	return b.sh[i]
}

// Get returns the value of k as the builder has it.
func (b *Builder[V]) Get(k string) (v V, ok bool) {
	v, ok = b.sh[shardOf(k)][k]
	return v, ok
}

// Set sets k to v.
func (b *Builder[V]) Set(k string, v V) {
	s := b.shard(k)
	if _, ok := s[k]; !ok {
		b.n++
	}
	s[k] = v
}

// Delete removes k.
func (b *Builder[V]) Delete(k string) {
	if _, ok := b.sh[shardOf(k)][k]; !ok {
		return
	}
	delete(b.shard(k), k)
	b.n--
}

// Map returns the built Map. The builder must not be used afterwards: the
// Map now owns the shards it copied.
func (b *Builder[V]) Map() Map[V] {
	b.done = true
	return Map[V]{sh: b.sh, n: b.n}
}
