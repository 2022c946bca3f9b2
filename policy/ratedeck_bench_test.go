package policy

import (
	"bytes"
	"strconv"
	"testing"
)

// BenchmarkParseRateDeck parses a 100,000-line deck.
func BenchmarkParseRateDeck(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(RateDeckHeader + "\n")
	for i := 0; i < 100_000; i++ {
		buf.WriteString("+" + strconv.Itoa(1_000_000+i) + ",0." + strconv.Itoa(1000+i%9000) + ",USD\n")
	}
	body := buf.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseRateDeck(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
