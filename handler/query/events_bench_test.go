package query

import (
	"strconv"
	"strings"
	"testing"
)

// BenchmarkDecodeEvents is one batch of 20 call events as the Kamailio
// config's timer process sends it.
func BenchmarkDecodeEvents(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < 20; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"event":"ended","call_id":"a84b4c76e66710-` + strconv.Itoa(i) + `@pc33.example.com","account":"acme","subaccount":"sales","to":"+33142685300","time":1795328700,"duration":62}`)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeEvents(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventsAnswered is a batch of 20 answered events carrying
// the proxy and the dialog's tags, as the Kamailio config sends them for
// tollgate's teardowns.
func BenchmarkDecodeEventsAnswered(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < 20; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"event":"answered","call_id":"a84b4c76e66710-` + strconv.Itoa(i) + `@pc33.example.com","account":"acme","subaccount":"sales","to":"+33142685300","time":1795328700,` +
			`"proxy":"edge-a","dialog":{"from_tag":"9fxced76sl","to_tag":"314159-` + strconv.Itoa(i) + `"}}`)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := DecodeEvents(body); err != nil {
			b.Fatal(err)
		}
	}
}
