package origin

import (
	"fmt"
	"strings"
	"testing"
)

// Overlapping networks (nested CIDRs) become start points: a nested network
// wins within its span (of two starting together, the narrower), the
// enclosing one resumes after it, gaps are unknown, and a range ending at
// the last address opens nothing after it. The same for both widths.
func TestBuildRangesNested(t *testing.T) {
	X, Y, Z, W, V := packCC("DE"), packCC("FR"), packCC("NL"), packCC("GB"), packCC("IT")
	const want = "0:IT 6:DE 10:FR 15:NL 16:FR 21:DE 101: 200:GB"
	show := func(starts []string, codes []cc) string {
		var b strings.Builder
		for i := range starts {
			fmt.Fprintf(&b, " %s:%s", starts[i], codes[i])
		}
		return strings.TrimSpace(b.String())
	}
	// listed out of order, as a sort must put them right
	s4, c4 := build4([]geoRange4{{200, ^uint32(0), W}, {10, 20, Y}, {0, 100, X}, {15, 15, Z}, {0, 5, V}})
	var got4 []string
	for _, s := range s4 {
		got4 = append(got4, fmt.Sprint(s))
	}
	if got := show(got4, c4); got != want {
		t.Errorf("v4: %s\nwant %s", got, want)
	}
	max6 := u128{^uint64(0), ^uint64(0)}
	s6, c6 := build6([]geoRange6{{u128{0, 200}, max6, W}, {u128{0, 10}, u128{0, 20}, Y}, {u128{}, u128{0, 100}, X}, {u128{0, 15}, u128{0, 15}, Z}, {u128{}, u128{0, 5}, V}})
	var got6 []string
	for _, s := range s6 {
		got6 = append(got6, fmt.Sprint(s.lo))
	}
	if got := show(got6, c6); got != want {
		t.Errorf("v6: %s\nwant %s", got, want)
	}
}
