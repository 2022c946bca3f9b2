package service

import (
	"reflect"
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
			if p.entries()[0].Prefix != "+882" {
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
