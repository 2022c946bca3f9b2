package promtext

import (
	"bytes"
	"testing"
)

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(*Writer)
		want  string
	}{
		{"gauge", func(p *Writer) { p.Gauge("g", "A gauge.", 0.5) }, "# HELP g A gauge.\n# TYPE g gauge\ng 0.5\n"},
		{"counter float", func(p *Writer) { p.Counter("c_total", "C.", 3) }, "# HELP c_total C.\n# TYPE c_total counter\nc_total 3\n"},
		{"big float is g-formatted", func(p *Writer) { p.Line("x", 2e6) }, "x 2e+06\n"},
		{"uint keeps digits", func(p *Writer) { p.UintLine("x", 2000000) }, "x 2000000\n"},
		{"one label", func(p *Writer) { p.Label1("r_total", "result", "ok", 7) }, "r_total{result=\"ok\"} 7\n"},
		{"two labels", func(p *Writer) { p.Label2("a_total", "kind", "k", "level", "l", 0) }, "a_total{kind=\"k\",level=\"l\"} 0\n"},
		{"bool", func(p *Writer) { p.Line("b", Bool(true)); p.Line("b", Bool(false)) }, "b 1\nb 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tc.write(New(&b))
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}
