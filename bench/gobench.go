package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// BenchResult is one Go benchmark's samples, metric by metric, over the
// -count runs.
type BenchResult struct {
	Pkg, Name string
	// Units in the order the benchmark prints them (ns/op, B/op, …).
	Units   []string
	Samples map[string][]float64
}

// Median returns the median of the unit's samples (the mean of the middle
// two for an even count) and the smallest and largest sample.
func (b *BenchResult) Median(unit string) (med, lo, hi float64, ok bool) {
	s := b.Samples[unit]
	if len(s) == 0 {
		return 0, 0, 0, false
	}
	med, lo, hi = median(s)
	return med, lo, hi, true
}

func median(s []float64) (med, lo, hi float64) {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	n := len(c)
	if n%2 == 1 {
		med = c[n/2]
	} else {
		med = (c[n/2-1] + c[n/2]) / 2
	}
	return med, c[0], c[n-1]
}

// ParseGoBench reads `go test -bench` output and groups the samples by
// package and benchmark (the -GOMAXPROCS suffix dropped), in order of first
// appearance.
func ParseGoBench(r io.Reader) ([]*BenchResult, error) {
	var out []*BenchResult
	byKey := map[string]*BenchResult{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// name, iterations, then value/unit pairs.
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		key := pkg + " " + name
		b := byKey[key]
		if b == nil {
			b = &BenchResult{Pkg: pkg, Name: strings.TrimPrefix(name, "Benchmark"), Samples: map[string][]float64{}}
			byKey[key] = b
			out = append(out, b)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: value %q: %v", line, f[i], err)
			}
			unit := f[i+1]
			if _, seen := b.Samples[unit]; !seen {
				b.Units = append(b.Units, unit)
			}
			b.Samples[unit] = append(b.Samples[unit], v)
		}
	}
	return out, sc.Err()
}

// shortPkg is the last element of an import path.
func shortPkg(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// fmtNum prints a metric value with sensible precision.
func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1e6:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// WriteGoBenchTable prints one row per benchmark: the median of each unit,
// ns/op with its range over the runs.
func WriteGoBenchTable(w io.Writer, rs []*BenchResult) {
	fmt.Fprintln(w, "| package | benchmark | runs | ns/op median | ns/op min–max | B/op | allocs/op | other (median) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---|")
	for _, b := range rs {
		med, lo, hi, _ := b.Median("ns/op")
		bop, _, _, _ := b.Median("B/op")
		aop, _, _, _ := b.Median("allocs/op")
		var other []string
		for _, u := range b.Units {
			if u == "ns/op" || u == "B/op" || u == "allocs/op" {
				continue
			}
			m, _, _, _ := b.Median(u)
			other = append(other, fmtNum(m)+" "+u)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s–%s | %s | %s | %s |\n", shortPkg(b.Pkg), b.Name, len(b.Samples["ns/op"]),
			fmtNum(med), fmtNum(lo), fmtNum(hi), fmtNum(bop), fmtNum(aop), strings.Join(other, ", "))
	}
}
