package main

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func liveHeapMiB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkHighRiskListHeap measures the heap a parsed 1,000,000-entry
// high-risk file keeps alive (the list the service holds for export) as
// policy.ParseHighRiskList returns it, and with every field copied out of
// the CSV record and the repeated columns interned, as the store's decoder
// does. The difference is what the -high-risk-file path adds to RSS.
// go test -run '^$' -bench HighRiskListHeap -benchtime 1x ./bench/
func BenchmarkHighRiskListHeap(b *testing.B) {
	dir := b.TempDir()
	path := dir + "/highrisk.csv"
	if _, _, err := genHighRisk(path, GenOptions{Prefixes: 1_000_000, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	parse := func(b *testing.B) policy.HighRiskList {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		l, err := policy.ParseHighRiskList(f)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	b.Run("as-parsed", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			h0 := liveHeapMiB()
			l := parse(b)
			b.ReportMetric(liveHeapMiB()-h0, "kept-MiB")
			runtime.KeepAlive(l)
		}
	})
	b.Run("fields-copied", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			h0 := liveHeapMiB()
			l := parse(b)
			in := map[string]string{}
			intern := func(s string) string {
				if v, ok := in[s]; ok {
					return v
				}
				s = strings.Clone(s)
				in[s] = s
				return s
			}
			for j := range l.Entries {
				e := &l.Entries[j]
				e.Prefix = strings.Clone(e.Prefix)
				e.Country, e.Category, e.Source = intern(e.Country), intern(e.Category), intern(e.Source)
			}
			in = nil
			b.ReportMetric(liveHeapMiB()-h0, "kept-MiB")
			runtime.KeepAlive(l)
		}
	})
}
