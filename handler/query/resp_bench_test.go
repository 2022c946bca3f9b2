package query

import (
	"bufio"
	"strings"
	"testing"
)

// BenchmarkRESPCheck is one TGCHECK as Kamailio's WITH_RESP sends it, read
// from a connection's buffered reader, decided and encoded into the
// connection's reply buffer (what a warm RESP connection does per call,
// without the socket).
func BenchmarkRESPCheck(b *testing.B) {
	h := benchHandler(b)
	in := respCmd("TGCHECK", "to", "+14155550123", "account", "acme", "src_ip", "203.0.113.7",
		"from", "alice", "call_id", "a84b4c76e66710@pc33.example.com")
	r := strings.NewReader(in)
	br := bufio.NewReaderSize(r, 4<<10)
	var buf, out []byte
	var args [MaxRESPArgs][]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		n, err := ReadRESPCommand(br, &buf, &args)
		if err != nil {
			b.Fatal(err)
		}
		out, _ = h.respCommand(out[:0], args[:n])
	}
	if !strings.HasPrefix(string(out), "$") {
		b.Fatalf("%q", out)
	}
}
