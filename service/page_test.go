package service

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"testing"
)

func TestFirstAfter(t *testing.T) {
	m := map[string]int{}
	var all []string
	r := rand.New(rand.NewSource(1))
	for _, i := range r.Perm(1000) {
		n := fmt.Sprintf("a%04d", i)
		m[n] = i
		all = append(all, n)
	}
	sort.Strings(all)
	want := func(after string, limit int) []string {
		var out []string
		for _, n := range all {
			if n > after && (limit <= 0 || len(out) < limit) {
				out = append(out, n)
			}
		}
		return out
	}
	for _, tc := range []struct {
		after string
		limit int
	}{
		{"", 0}, {"", 1}, {"", 50}, {"", 999}, {"", 1000}, {"", 5000},
		{"a0499", 50}, {"a0499", 0}, {"a0998", 50}, {"a0999", 50}, {"b", 50}, {"a0500~", 3}, {"0", 10},
	} {
		got := firstAfter(m, tc.after, tc.limit)
		if w := want(tc.after, tc.limit); !slices.Equal(got, w) {
			t.Errorf("after %q limit %d: got %d names %v…, want %d", tc.after, tc.limit, len(got), got[:min(3, len(got))], len(w))
		}
	}
}

// BenchmarkFirstAfter is one page of 51 of 100,000 account names, as the
// console asks for them.
func BenchmarkFirstAfter(b *testing.B) {
	m := map[string]struct{}{}
	for i := 0; i < 100000; i++ {
		m[fmt.Sprintf("acct%06d", i)] = struct{}{}
	}
	for _, after := range []string{"", "acct050000", "acct099950"} {
		b.Run("heap/after="+after, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				firstAfter(m, after, 51)
			}
		})
		// The listing before firstAfter: every name after the cursor
		// sorted, then cut to the page.
		b.Run("sortall/after="+after, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				firstAfter(m, after, 0)
			}
		})
	}
}
