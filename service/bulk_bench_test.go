package service

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkBulkPatch1000of100k changes the country rule of 1,000 of
// 100,000 accounts: "bulk" is one BulkPatch (one commit, one snapshot
// swap), "single" the same change as 1,000 PatchAccount calls (what a
// script of GET+PUT does, minus the HTTP). One op is the whole change.
// 10,000 high-risk prefixes: the list does not enter an account write.
func BenchmarkBulkPatch1000of100k(b *testing.B) {
	svc, _ := largeService(b, 100_000, 10_000)
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("acct-%06d", 1+i*100) // spread over the shards
	}
	patches := [][]byte{
		[]byte(`{"countries":{"default":"allow","except":["CU","KP","DE"]}}`),
		[]byte(`{"countries":{"default":"allow","except":["CU","KP","FR"]}}`),
	}
	k := 0 // alternates the patch across runs too, so each op changes all
	b.Run("bulk", func(b *testing.B) {
		runtime.GC()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			res, err := svc.BulkPatch(admin, Selection{Accounts: names}, patches[k%2], false)
			k++
			if err != nil || len(res.Changed) != len(names) {
				b.Fatalf("%v changed %d", err, len(res.Changed))
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	})
	b.Run("single", func(b *testing.B) {
		runtime.GC()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			for _, n := range names {
				if _, err := svc.PatchAccount(admin, n, patches[k%2], ""); err != nil {
					b.Fatal(err)
				}
			}
			k++
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	})
}
