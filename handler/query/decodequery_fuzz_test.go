package query

import (
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/valyala/fasthttp"
)

// FuzzDecodeQuery: decodeQuery reads a query string as fasthttp.Args and
// decodeArgs do — the same query fields, the same format, the same error —
// and its scratch buffer, reused, does not change the next answer.
func FuzzDecodeQuery(f *testing.F) {
	for _, s := range []string{
		"to=%2B14155550123&account=acme",
		"to=+14155550123&account=acme&format=compact",
		"to=1&to=2", "account=a&to=", "to", "=x&to=1", "&&to=1&", "to=%2", "to=%zz1&call_id=%41%62",
		"to=1&src_ip=", "to=1&src_ip=81.2.69.10:5060", "to=1&src_ip=bad", "to=1&format=xml",
		"to=1&format=json&format=json", "t%6f=1", "to=1&account=" + string(make([]byte, 300)),
		"to=1&subaccount=a%20b", "to=1&account=a+b", "to=a=b=c", "%=&to=1", "to=1&from=x&call_id=y",
	} {
		f.Add(s, "to=%2B1&account=x")
	}
	var buf []byte
	f.Fuzz(func(t *testing.T, s, next string) {
		for _, in := range []string{s, next} {
			var a fasthttp.Args
			a.ParseBytes([]byte(in))
			var q1, q2 matcher.Query
			var f1, f2 verdictFormat
			e1 := decodeArgs(&a, &q1, &f1)
			e2 := decodeQuery([]byte(in), &buf, &q2, &f2)
			if e1 != e2 || f1 != f2 || q1 != q2 {
				t.Fatalf("%q:\nArgs  %+v %v %+v\nQuery %+v %v %+v", in, e1, f1, q1, e2, f2, q2)
			}
		}
	})
}
