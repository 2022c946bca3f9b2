package service

import (
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkDisableCountry100k is one admin change of the operator settings
// that keeps the default policy (a country disabled, with a new reason each
// time), start to finish, with 100,000 accounts and 1,000,000 high-risk
// prefixes loaded: the matcher compiles the top level again and reuses
// every account, the velocity engine re-syncs every account and keeps
// them all.
func BenchmarkDisableCountry100k(b *testing.B) {
	svc, _ := largeService(b, 100_000, 1_000_000)
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, _, err := svc.DisableCountry(admin, "KP", "bench "+strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}
