package recent

import (
	"testing"
	"time"
)

// BenchmarkAdd is the cost the query path pays per check: it must show
// 0 allocs/op.
func BenchmarkAdd(b *testing.B) {
	r := New(1<<20, 24*time.Hour)
	e164 := []byte("+442079460000")
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Add(now, "acct-000123", "sales", "00442079460000", e164, "192.0.2.7", 1, 4, "GB")
	}
}

// BenchmarkAddParallel has every P adding at once (slots are shared only
// through the index).
func BenchmarkAddParallel(b *testing.B) {
	r := New(1<<20, 24*time.Hour)
	e164 := []byte("+442079460000")
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Add(now, "acct-000123", "sales", "00442079460000", e164, "2001:db8::7", 1, 4, "GB")
		}
	})
}
