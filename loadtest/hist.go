package main

import (
	"math"
	"math/bits"
)

// The histogram is HDR-style log-linear: values below histExact are counted
// exactly; above that, every power-of-two range [2^k, 2^(k+1)) is split into
// histHalf equal buckets, so a bucket is never wider than 1/histHalf of its
// lower bound. Quantiles are reported as the bucket midpoint (clamped to the
// exact min/max), which bounds the relative error by 1/histExact.
const (
	histSubBits = 8
	histExact   = 1 << histSubBits // values 0..histExact-1 are exact
	histHalf    = histExact / 2    // buckets per power of two above histExact
	// histBuckets covers every non-negative int64.
	histBuckets = (64-histSubBits)*histHalf + histHalf

	// HistRelativeError is the worst-case relative error of a quantile read
	// from a Histogram (1/256 ≈ 0.39%); min and max are exact.
	HistRelativeError = 1.0 / histExact
)

// HistPrecision is the one-line statement of the histogram's precision used in
// the summary and the docs.
const HistPrecision = "log-linear histogram, 128 buckets per power of two, exact below 256ns: quantiles within 0.39% relative error, min/max exact"

// Histogram is a log-linear latency histogram of non-negative int64 values
// (nanoseconds). The zero value is empty and ready to use. It is not safe for
// concurrent use.
type Histogram struct {
	counts   [histBuckets]uint64
	total    uint64
	sum      float64
	min, max int64
	lo, hi   int // range of indices that may be non-zero (valid when total > 0)
}

func histIndex(v int64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits
	return shift*histHalf + int(uint64(v)>>uint(shift))
}

// histBounds returns the lowest value and the width of bucket idx.
func histBounds(idx int) (lo, width int64) {
	if idx < histExact {
		return int64(idx), 1
	}
	shift := idx/histHalf - 1
	sub := idx - shift*histHalf
	return int64(sub) << uint(shift), int64(1) << uint(shift)
}

// Record adds one value; negative values count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := histIndex(v)
	h.counts[i]++
	if h.total == 0 {
		h.min, h.max, h.lo, h.hi = v, v, i, i
	} else {
		if v < h.min {
			h.min = v
		}
		if v > h.max {
			h.max = v
		}
		if i < h.lo {
			h.lo = i
		}
		if i > h.hi {
			h.hi = i
		}
	}
	h.total++
	h.sum += float64(v)
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min returns the smallest recorded value (0 when empty).
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest recorded value (0 when empty).
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the arithmetic mean of the recorded values (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// quantileRank is the 1-based nearest rank of quantile q among n values.
func quantileRank(q float64, n uint64) uint64 {
	r := uint64(math.Ceil(q*float64(n) - 1e-9))
	if r < 1 {
		r = 1
	}
	if r > n {
		r = n
	}
	return r
}

// Quantile returns the value at quantile q (0 < q ≤ 1, nearest rank), within
// HistRelativeError of the exact answer; 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q >= 1 {
		return h.max
	}
	rank := quantileRank(q, h.total)
	var cum uint64
	for i := h.lo; i <= h.hi; i++ {
		cum += h.counts[i]
		if cum >= rank {
			lo, w := histBounds(i)
			v := lo + w/2
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i := o.lo; i <= o.hi; i++ {
		h.counts[i] += o.counts[i]
	}
	if h.total == 0 {
		h.min, h.max, h.lo, h.hi = o.min, o.max, o.lo, o.hi
	} else {
		h.min = min(h.min, o.min)
		h.max = max(h.max, o.max)
		h.lo = min(h.lo, o.lo)
		h.hi = max(h.hi, o.hi)
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset empties the histogram.
func (h *Histogram) Reset() {
	if h.total > 0 {
		clear(h.counts[h.lo : h.hi+1])
	}
	h.total, h.sum, h.min, h.max, h.lo, h.hi = 0, 0, 0, 0, 0, 0
}

// since returns a histogram of the values recorded in h after the snapshot
// prev was taken (prev must be an earlier copy of h). Min and max are
// approximated by the bounds of the occupied buckets.
func (h *Histogram) since(prev *Histogram, out *Histogram) {
	out.Reset()
	if h.total == 0 || h.total == prev.total {
		return
	}
	first := true
	for i := h.lo; i <= h.hi; i++ {
		var p uint64
		if prev.total > 0 && i >= prev.lo && i <= prev.hi {
			p = prev.counts[i]
		}
		c := h.counts[i] - p
		if c == 0 {
			continue
		}
		out.counts[i] = c
		lo, w := histBounds(i)
		if first {
			out.lo, out.min = i, lo
			first = false
		}
		out.hi, out.max = i, lo+w-1
	}
	out.total = h.total - prev.total
	out.sum = h.sum - prev.sum
	out.min = max(out.min, h.min)
	out.max = min(out.max, h.max)
}
