package recent

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordSize(t *testing.T) {
	if RecordBytes != 48 {
		t.Errorf("RecordBytes %d, want 48", RecordBytes)
	}
}

// TestGoldenV1 holds the compact record to version 1's on the same
// traffic: what version 1 held whole decodes alike; what it truncated is
// whole now; a version 1 file loads into exactly what version 1 read, and
// saving it again as version 2 changes nothing.
func TestGoldenV1(t *testing.T) {
	qs := GoldenTraffic()
	old := V1Calls(qs)
	r := New(64, 0)
	for _, q := range qs {
		r.AddQuery(q)
	}
	got := r.Calls(t0)
	if len(got) != len(qs) {
		t.Fatalf("%d calls, want %d", len(got), len(qs))
	}
	for i, q := range qs {
		if V1Fits(q) {
			if got[i] != old[i] {
				t.Errorf("query %d %+v:\n new %+v\n  v1 %+v", i, q, got[i], old[i])
			}
			continue
		}
		to := q.E164
		if to == "" {
			to = q.Dialled
		}
		if got[i].Truncated || got[i].Account != q.Account || got[i].Subaccount != q.Sub || got[i].To != to {
			t.Errorf("query %d %+v: not whole: %+v", i, q, got[i])
		}
		if !old[i].Truncated {
			t.Errorf("query %d: version 1 held it whole, V1Fits is wrong", i)
		}
	}

	dir := t.TempDir()
	p1 := filepath.Join(dir, "v1")
	if err := WriteV1File(p1, qs); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{64, 5} {
		q := New(size, 0)
		n, err := q.Load(p1)
		if err != nil {
			t.Fatal(err)
		}
		want := old[len(old)-min(size, len(old)):]
		if n != len(want) {
			t.Fatalf("size %d: loaded %d, want %d", size, n, len(want))
		}
		if got := q.Calls(t0); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("size %d: version 1 file loaded as\n%v\nwant\n%v", size, got, want)
		}
		p2 := filepath.Join(dir, fmt.Sprintf("v2-%d", size))
		if _, err := q.Save(p2); err != nil {
			t.Fatal(err)
		}
		q2 := New(size, 0)
		if _, err := q2.Load(p2); err != nil {
			t.Fatal(err)
		}
		if got := q2.Calls(t0); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("size %d: saved again as version 2 and loaded as\n%v\nwant\n%v", size, got, want)
		}
	}
}

func TestNumberPacking(t *testing.T) {
	tests := []struct {
		in     string
		packed bool
	}{
		{"+442079460000", true},
		{"+123456789012345", true},
		{"+0", true},
		{"0", true},
		{"000000000000000", true},
		{"0044207", true},
		{"+1234567890123456", false},
		{"1234567890123456", false},
		{"", false},
		{"+", false},
		{"++1", false},
		{"*98#", false},
		{"1a", false},
		{"+1 202", false},
	}
	for _, tc := range tests {
		w, ok := packNumber(tc.in)
		if ok != tc.packed {
			t.Errorf("%q: packed %v, want %v", tc.in, ok, tc.packed)
			continue
		}
		if ok {
			if got := string(appendNumber(nil, w)); got != tc.in {
				t.Errorf("%q: unpacked %q", tc.in, got)
			}
			if w>>flagsShift != 0 || w&numInterned != 0 {
				t.Errorf("%q: packed into the flag bits: %x", tc.in, w)
			}
		}
		// packed or interned, it comes back
		r := New(2, 0)
		r.Add(t0, "a", "", tc.in, nil, "", 0, 0, "")
		if c := r.Calls(t0); c[0].To != tc.in || c[0].Truncated {
			t.Errorf("%q: ring gave %+v", tc.in, c[0])
		}
	}
}

// TestNamesFull: a full intern table refuses new names; their records
// are kept, flagged truncated, with every other field; names it holds go
// on working; the refusals are counted.
func TestNamesFull(t *testing.T) {
	tests := []struct {
		name     string
		maxNames int
		arena    int
		accounts []string
		whole    []bool
	}{
		{"ids", 4, 1 << 10, []string{"a", "b", "c", "d", "a", "e", "c"}, []bool{true, true, true, false, true, false, true}},
		{"bytes", 64, 8, []string{"aaaa", "bbbb", "cc", "aaaa", "bbbb"}, []bool{true, true, false, true, true}},
		{"too long", 64, 1 << 10, []string{strings.Repeat("x", MaxNameBytes+1), strings.Repeat("x", MaxNameBytes)}, []bool{false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(16, 0, tc.maxNames, tc.arena)
			for i, a := range tc.accounts {
				r.Add(t0.Add(time.Duration(i)), a, "", "", []byte("+3312345678"), "192.0.2.1", 1, 4, "FR")
			}
			refused := 0
			for i, c := range r.Calls(t0) {
				want := Call{Time: t0.Add(time.Duration(i)), To: "+3312345678", SrcIP: "192.0.2.1", Action: 1, Reason: 4, Country: "FR"}
				if tc.whole[i] {
					want.Account = tc.accounts[i]
				} else {
					want.Truncated = true
					refused++
				}
				if c != want {
					t.Errorf("call %d:\n got %+v\nwant %+v", i, c, want)
				}
			}
			if got := r.names.refused.Load(); got != uint64(refused) {
				t.Errorf("refused %d, want %d", got, refused)
			}
			var b strings.Builder
			r.WriteMetrics(&b)
			if !strings.Contains(b.String(), fmt.Sprintf("tollgate_recent_names_refused_total %d\n", refused)) {
				t.Errorf("metrics:\n%s", b.String())
			}
		})
	}
}

// TestNamesFlood: random names past the bound take no more than the
// bound; the names held before are still found.
func TestNamesFlood(t *testing.T) {
	r := newRing(1024, 0, 256, 4<<10)
	r.Add(t0, "legit", "sub", "", []byte("+1"), "", 0, 0, "")
	for i := 0; i < 100_000; i++ {
		r.Add(t0, fmt.Sprintf("flood-%d", i), fmt.Sprintf("s-%d", i), "", []byte("+1"), "", 0, 0, "")
	}
	if n := r.names.count(); n > 255 {
		t.Errorf("%d names held, bound 255", n)
	}
	if u := r.names.used.Load(); u > 4<<10+64 {
		t.Errorf("%d arena bytes reserved", u)
	}
	r.Add(t0.Add(time.Second), "legit", "sub", "", []byte("+1"), "", 0, 0, "")
	c := r.Calls(t0)
	if last := c[len(c)-1]; last.Account != "legit" || last.Subaccount != "sub" || last.Truncated {
		t.Errorf("a name held before the flood: %+v", last)
	}
}

// TestLoadCompactsNames: the table loaded holds only the names the kept
// records use.
func TestLoadCompactsNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	r := New(4, 0)
	for i := 0; i < 100; i++ {
		r.Add(t0.Add(time.Duration(i)), fmt.Sprintf("a%d", i), "s", fmt.Sprintf("*%d#", i), nil, "", 0, 0, "")
	}
	if r.names.count() != 201 {
		t.Fatalf("%d names before", r.names.count())
	}
	if _, err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	q := New(4, 0)
	if _, err := q.Load(path); err != nil {
		t.Fatal(err)
	}
	if n := q.names.count(); n != 9 {
		t.Errorf("%d names after loading 4 records, want 9", n)
	}
	if fmt.Sprint(q.Calls(t0)) != fmt.Sprint(r.Calls(t0)) {
		t.Errorf("loaded %v\nwant %v", q.Calls(t0), r.Calls(t0))
	}
}

// TestLoadV2Damaged: files whose checksum is right but whose names do
// not agree with their records are refused whole.
func TestLoadV2Damaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	r := New(4, 0)
	r.Add(t0, "acme", "sales", "", []byte("+3312345678"), "", 0, 0, "FR")
	r.Add(t0, "acme", "", "*98#", nil, "", 0, 0, "")
	if _, err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	body := good[:len(good)-sha256.Size]
	namesAt := headerLen + 2*diskRecord
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"fewer names than used", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[namesAt:], 1)
			return b[:namesAt+8+1+len("acme")]
		}},
		{"name count huge", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[namesAt:], 1<<40); return b }},
		{"name cut short", func(b []byte) []byte { return b[:len(b)-1] }},
		{"bytes after the names", func(b []byte) []byte { return append(b, 0) }},
		{"version 1 record size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 96); return b }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(append([]byte(nil), body...))
			sum := sha256.Sum256(b)
			os.WriteFile(path, append(b, sum[:]...), 0o600)
			q := New(4, 0)
			n, err := q.Load(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			if n != 0 || len(q.Calls(t0)) != 0 || q.names.count() != 0 {
				t.Errorf("a damaged file left %d records, %d names", len(q.Calls(t0)), q.names.count())
			}
		})
	}
}
