package cow

import (
	"fmt"
	"testing"
)

func bigMap(n int) Map[*int] {
	b := NewBuilder[*int](n)
	for i := 0; i < n; i++ {
		b.Set(fmt.Sprintf("acct-%06d", i), new(int))
	}
	return b.Map()
}

// BenchmarkGet is the query path's lookup of an account among 100,000.
func BenchmarkGet(b *testing.B) {
	m := bigMap(100_000)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct-%06d", i*97)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := m.Get(keys[i&1023]); !ok {
			b.Fatal("missing")
		}
	}
}

// BenchmarkGetPlainMap is BenchmarkGet against a plain map, for comparison.
func BenchmarkGetPlainMap(b *testing.B) {
	m := make(map[string]*int, 100_000)
	for i := 0; i < 100_000; i++ {
		m[fmt.Sprintf("acct-%06d", i)] = new(int)
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("acct-%06d", i*97)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := m[keys[i&1023]]; !ok {
			b.Fatal("missing")
		}
	}
}

// BenchmarkWith100k replaces one key among 100,000.
func BenchmarkWith100k(b *testing.B) {
	m := bigMap(100_000)
	v := new(int)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m = m.With(fmt.Sprintf("acct-%06d", i%100_000), v)
	}
}
