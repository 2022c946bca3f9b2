// Package promtext writes the Prometheus text exposition format (version
// 0.0.4) by hand, for the packages that own tollgate's metrics: each of
// them writes its own families through a Writer (WriteMetrics), and the
// handler's /metrics concatenates them. No client library, no registry:
// labels come only from closed sets the writing package knows.
package promtext

import (
	"io"
	"strconv"
)

// Writer writes families and samples to an io.Writer. Write errors are
// ignored: the target is an in-memory buffer.
type Writer struct {
	w   io.Writer
	num [32]byte
}

// New returns a Writer on w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// S writes s as is.
func (p *Writer) S(s string) { _, _ = io.WriteString(p.w, s) }

// Head writes the HELP and TYPE lines of a family.
func (p *Writer) Head(name, help, typ string) {
	p.S("# HELP ")
	p.S(name)
	p.S(" ")
	p.S(help)
	p.S("\n# TYPE ")
	p.S(name)
	p.S(" ")
	p.S(typ)
	p.S("\n")
}

// Float writes v as Prometheus reads it (shortest 'g' form).
func (p *Writer) Float(v float64) { _, _ = p.w.Write(strconv.AppendFloat(p.num[:0], v, 'g', -1, 64)) }

// Uint writes v in decimal.
func (p *Writer) Uint(v uint64) { _, _ = p.w.Write(strconv.AppendUint(p.num[:0], v, 10)) }

// Line writes one sample: series is the name with its labels, if any.
func (p *Writer) Line(series string, v float64) {
	p.S(series)
	p.S(" ")
	p.Float(v)
	p.S("\n")
}

// UintLine writes one sample with an integer value.
func (p *Writer) UintLine(series string, v uint64) {
	p.S(series)
	p.S(" ")
	p.Uint(v)
	p.S("\n")
}

// Label1 writes the sample name{key="val"} v.
func (p *Writer) Label1(name, key, val string, v uint64) {
	p.S(name)
	p.S("{")
	p.S(key)
	p.S(`="`)
	p.S(val)
	p.S(`"} `)
	p.Uint(v)
	p.S("\n")
}

// Label2 writes the sample name{k1="v1",k2="v2"} v.
func (p *Writer) Label2(name, k1, v1, k2, v2 string, v uint64) {
	p.S(name)
	p.S("{")
	p.S(k1)
	p.S(`="`)
	p.S(v1)
	p.S(`",`)
	p.S(k2)
	p.S(`="`)
	p.S(v2)
	p.S(`"} `)
	p.Uint(v)
	p.S("\n")
}

// Gauge writes a one-sample gauge family.
func (p *Writer) Gauge(name, help string, v float64) {
	p.Head(name, help, "gauge")
	p.Line(name, v)
}

// Counter writes a one-sample counter family. Its value is written as a
// float, as Line does, which is what the handler always wrote for these.
func (p *Writer) Counter(name, help string, v float64) {
	p.Head(name, help, "counter")
	p.Line(name, v)
}

// Bool is 1 for true, 0 for false.
func Bool(x bool) float64 {
	if x {
		return 1
	}
	return 0
}
