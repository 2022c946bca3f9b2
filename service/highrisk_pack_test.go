package service

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// TestPackHighRisk: the packed list gives back every entry as it was, in
// order, repeated prefixes and empty fields included.
func TestPackHighRisk(t *testing.T) {
	for name, l := range map[string][]policy.HighRiskEntry{
		"nil":   nil,
		"empty": {},
		"some": {
			{Prefix: "+882", Country: "001", Category: "satellite", Source: "itu"},
			{Prefix: "+2392", Country: "ST", Category: "premium", Source: "itu"},
			{Prefix: "+882", Country: "001", Category: "satellite", Source: "itu"},
			{Prefix: "+7", Country: "", Category: "", Source: ""},
			{Prefix: "+4470", Country: "GB", Category: "personal", Source: "ofcom"},
			{Prefix: "+2392", Country: "ST", Category: "premium", Source: "other"},
		},
		// every prefix canonical: kept packed in digits
		"canonical": {
			{Prefix: "+0", Country: "001", Category: "satellite", Source: "itu"},
			{Prefix: "+999999999999999", Country: "001", Category: "satellite", Source: "itu"},
			{Prefix: "+123456789012345", Country: "GB", Category: "irsf", Source: "ops"},
			{Prefix: "+100", Country: "US", Category: "premium", Source: "ops"},
		},
		// one prefix that does not pack (16 digits): all kept as a string
		"not packable": {
			{Prefix: "+44", Country: "GB", Category: "irsf", Source: "ops"},
			{Prefix: "+1234567890123456", Country: "GB", Category: "irsf", Source: "ops"},
		},
		"more tuples than 16 bits": manyTuples(1<<16 + 3),
	} {
		t.Run(name, func(t *testing.T) {
			p := packHighRisk(l)
			if p.len() != len(l) {
				t.Fatalf("len %d, want %d", p.len(), len(l))
			}
			got := p.entries()
			if len(l) == 0 {
				if len(got) != 0 {
					t.Fatalf("entries %v, want none", got)
				}
				return
			}
			if !reflect.DeepEqual(got, l) {
				t.Fatalf("entries\n%v\nwant\n%v", got, l)
			}
			got[0].Prefix = "+1" // the caller owns what entries returns
			if p.entries()[0].Prefix != l[0].Prefix {
				t.Fatal("entries shares its result with the packed list")
			}
		})
	}
	var nilp *packedHighRisk
	if nilp.len() != 0 || nilp.entries() != nil {
		t.Fatal("a nil packed list is not empty")
	}
}

// TestHighRiskKeptAcrossChanges: once in force, the list lives packed (the
// set holds no decoded copy), and every later compile keeps it: an
// operator change, an account change, a reload of a stored list; the
// export gives back the list as put, and a restart reads it from the store.
func TestHighRiskKeptAcrossChanges(t *testing.T) {
	dir := t.TempDir()
	f := open(t, dir, Options{})
	body := "prefix,country,category,source\n+4420,GB,irsf,ops\n+88213,001,satellite,itu\n+4471,GB,irsf,ops\n"
	l, err := policy.ParseHighRiskList(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]policy.HighRiskEntry(nil), l.Entries...)
	if _, err := f.svc.PutHighRisk(admin, l, []byte(body)); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		if f.svc.set.HighRisk != nil {
			t.Errorf("%s: the set in force holds the decoded list", step)
		}
		got, info, err := f.svc.HighRisk()
		if err != nil || info.Origin != OriginStored || info.Entries != len(want) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: export %v %+v %v, want %v", step, got, info, err, want)
		}
		if n := f.m.Snapshot().Stats().HighRisk; n != 3 {
			t.Errorf("%s: snapshot has %d high-risk prefixes, want 3", step, n)
		}
		if r := f.reason("+442071234567", ""); r != "number_barred" {
			t.Errorf("%s: +4420 call: %s, want number_barred", step, r)
		}
	}
	check("put")
	if _, err := f.svc.BlockPrefix(admin, "+999", "test"); err != nil {
		t.Fatal(err)
	}
	check("operator change")
	if _, err := f.svc.PutAccount(admin, "acme", denyAllBut("GB")); err != nil {
		t.Fatal(err)
	}
	check("account change")
	if _, err := f.svc.Reload(); err != nil {
		t.Fatal(err)
	}
	check("reload")
	f.st.Close()
	f = open(t, dir, Options{})
	check("restart")
}

// TestProposeKeepsHighRisk: a proposed operator change is compiled with the
// high-risk list in force, although the set in force holds it packed only.
func TestProposeKeepsHighRisk(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	want := f.m.Snapshot().Stats().HighRisk
	if want == 0 {
		t.Fatal("the shipped list is empty")
	}
	op := f.svc.set.Operator.Clone()
	op.BlockedPrefixes = append(op.BlockedPrefixes, policy.BlockedPrefix{Prefix: "+999", Reason: "test"})
	p, err := f.svc.Propose([]Edit{{Method: "PUT", Path: "/v1/operator", Body: mustJSON(op)}})
	if err != nil {
		t.Fatal(err)
	}
	if n := p.NextSnap.Stats().HighRisk; n != want {
		t.Fatalf("proposed snapshot has %d high-risk prefixes, the one in force %d", n, want)
	}
}

func manyTuples(n int) []policy.HighRiskEntry {
	l := make([]policy.HighRiskEntry, n)
	for i := range l {
		l[i] = policy.HighRiskEntry{Prefix: "+" + strconv.Itoa(100000+i), Country: "GB", Category: "irsf", Source: "src " + strconv.Itoa(i)}
	}
	return l
}

// Which form the packed list takes: digits while every prefix packs, 16-bit
// tuple indexes while they fit.
func TestPackHighRiskForms(t *testing.T) {
	tests := []struct {
		name           string
		l              []policy.HighRiskEntry
		digits, meta16 bool
	}{
		{"canonical", []policy.HighRiskEntry{{Prefix: "+44"}, {Prefix: "+1"}}, true, true},
		{"one not canonical", []policy.HighRiskEntry{{Prefix: "+44"}, {Prefix: "44"}}, false, true},
		{"many tuples", manyTuples(1<<16 + 1), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := packHighRisk(tt.l)
			if (p.digits != nil) != tt.digits || (p.meta16 != nil) != tt.meta16 {
				t.Fatalf("digits %v meta16 %v, want %v %v", p.digits != nil, p.meta16 != nil, tt.digits, tt.meta16)
			}
			if !reflect.DeepEqual(p.entries(), tt.l) {
				t.Fatal("entries differ")
			}
		})
	}
}

func TestPackDigits(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"+1", true}, {"+0", true}, {"+000", true}, {"+999999999999999", true},
		{"", false}, {"+", false}, {"1", false}, {"+12a", false}, {"+1234567890123456", false}, {"++1", false},
	}
	for _, tt := range tests {
		v, ok := packDigits(tt.in)
		if ok != tt.ok {
			t.Errorf("packDigits(%q) ok %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if ok {
			if got := string(appendDigits(nil, v)); got != tt.in {
				t.Errorf("packDigits(%q) unpacks to %q", tt.in, got)
			}
		}
	}
}

// FuzzPackDigits: whatever packs unpacks to itself, and two different
// prefixes never pack alike.
func FuzzPackDigits(f *testing.F) {
	for _, s := range []string{"+1", "+44", "+999999999999999", "+0", "+", "x"} {
		f.Add(s, "+1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, oka := packDigits(a)
		vb, okb := packDigits(b)
		if oka {
			if got := string(appendDigits(nil, va)); got != a {
				t.Fatalf("packDigits(%q) unpacks to %q", a, got)
			}
		}
		if oka && okb && va == vb && a != b {
			t.Fatalf("%q and %q pack alike", a, b)
		}
	})
}
