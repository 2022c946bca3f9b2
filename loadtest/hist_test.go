package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistBucketsCoverAndBound(t *testing.T) {
	check := func(v int64) {
		t.Helper()
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("value %d: index %d out of range", v, i)
		}
		lo, w := histBounds(i)
		if v < lo || v-lo >= w {
			t.Fatalf("value %d: bucket %d is [%d, %d+%d)", v, i, lo, lo, w)
		}
		if v >= histExact && float64(w) > float64(lo)/histHalf {
			t.Fatalf("value %d: bucket width %d wider than 1/%d of %d", v, w, histHalf, lo)
		}
	}
	for v := int64(0); v < 70_000; v++ {
		check(v)
	}
	for s := 8; s < 63; s++ {
		p := int64(1) << s
		for _, d := range []int64{-2, -1, 0, 1, 2} {
			check(p + d)
		}
	}
	check(math.MaxInt64)
	// Adjacent buckets must be contiguous.
	for i := 1; i < histBuckets; i++ {
		plo, pw := histBounds(i - 1)
		lo, _ := histBounds(i)
		if plo+pw != lo {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i-1, plo+pw, i, lo)
		}
	}
}

func TestHistQuantilesAgainstSortedReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	dists := map[string]func() int64{
		"exact-range": func() int64 { return rng.Int64N(256) },
		"log-uniform 1ns..100s": func() int64 {
			return int64(math.Exp(rng.Float64() * math.Log(1e11)))
		},
		"exponential ~100µs": func() int64 { return int64(rng.ExpFloat64() * 100e3) },
		"bimodal with stalls": func() int64 {
			if rng.IntN(1000) == 0 {
				return 200e6 + rng.Int64N(1e6)
			}
			return 50e3 + rng.Int64N(30e3)
		},
		"constant": func() int64 { return 123_457 },
	}
	qs := []float64{0.0001, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1}
	for name, gen := range dists {
		for _, n := range []int{1, 7, 1000, 200_000} {
			var h Histogram
			vals := make([]int64, n)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if h.Min() != vals[0] || h.Max() != vals[n-1] {
				t.Errorf("%s n=%d: min/max %d/%d, want exact %d/%d", name, n, h.Min(), h.Max(), vals[0], vals[n-1])
			}
			for _, q := range qs {
				ref := vals[quantileRank(q, uint64(n))-1]
				got := h.Quantile(q)
				if math.Abs(float64(got-ref)) > float64(ref)*HistRelativeError {
					t.Errorf("%s n=%d q=%g: got %d, reference %d (error %.4f%% > %.4f%%)", name, n, q, got, ref,
						100*math.Abs(float64(got-ref))/float64(ref), 100*HistRelativeError)
				}
			}
		}
	}
}

func TestHistMergeAndSince(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b, all Histogram
	for range 5000 {
		v := rng.Int64N(1e9)
		a.Record(v)
		all.Record(v)
	}
	snap := a
	var later []int64
	for range 3000 {
		v := 1e6 + rng.Int64N(1e7)
		b.Record(v)
		a.Record(v)
		all.Record(v)
		later = append(later, v)
	}
	var m Histogram
	m.Merge(&snap)
	m.Merge(&b)
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() {
		t.Fatalf("merge: count/min/max %d/%d/%d, want %d/%d/%d", m.Count(), m.Min(), m.Max(), all.Count(), all.Min(), all.Max())
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		if m.Quantile(q) != all.Quantile(q) {
			t.Errorf("merge q=%g: %d != %d", q, m.Quantile(q), all.Quantile(q))
		}
	}
	var d Histogram
	a.since(&snap, &d)
	if d.Count() != uint64(len(later)) {
		t.Fatalf("since: count %d, want %d", d.Count(), len(later))
	}
	slices.Sort(later)
	for _, q := range []float64{0.5, 0.99} {
		ref := later[quantileRank(q, uint64(len(later)))-1]
		if got := d.Quantile(q); math.Abs(float64(got-ref)) > float64(ref)*HistRelativeError {
			t.Errorf("since q=%g: %d, reference %d", q, got, ref)
		}
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.5) != 0 {
		t.Fatal("reset histogram not empty")
	}
	a.Record(-5)
	if a.Min() != 0 {
		t.Fatal("negative value not clamped to 0")
	}
}
