package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

const goBenchOutput = `goos: linux
goarch: amd64
pkg: github.com/tollgate/tollgate/matcher
cpu: Some CPU
BenchmarkDecideE164-2               	 6013603	       192.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkCompileLarge-2             	       2	 646262396 ns/op	       177.3 heap-MiB	108769040 B/op	 1765287 allocs/op
BenchmarkDecideE164-2               	 6013603	       190.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecideE164-2               	 6013603	       300.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkDecideE164-2               	 6013603	       180.0 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/tollgate/tollgate/matcher	19.610s
pkg: github.com/tollgate/tollgate/handler
BenchmarkCheckGET-2           	 1499174	       781.1 ns/op	 128.03 MB/s	       0 B/op	       0 allocs/op
BenchmarkCheckGET-2           	 1499174	       779.0 ns/op	 128.03 MB/s	       0 B/op	       0 allocs/op
`

func TestParseGoBenchMedians(t *testing.T) {
	rs, err := ParseGoBench(strings.NewReader(goBenchOutput))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Name != "DecideE164" || rs[1].Name != "CompileLarge" || rs[2].Pkg != "github.com/tollgate/tollgate/handler" {
		t.Fatalf("parsed %+v", rs)
	}
	med, lo, hi, ok := rs[0].Median("ns/op")
	if !ok || med != 191.3 || lo != 180 || hi != 300 { // even count: mean of 190.0 and 192.6
		t.Fatalf("DecideE164 ns/op: %v %v %v", med, lo, hi)
	}
	if m, _, _, _ := rs[1].Median("heap-MiB"); m != 177.3 {
		t.Fatalf("custom metric: %v", m)
	}
	if got := strings.Join(rs[2].Units, " "); got != "ns/op MB/s B/op allocs/op" {
		t.Fatalf("unit order %q", got)
	}
	if m, _, _ := median([]float64{5, 1, 3}); m != 3 {
		t.Fatalf("odd median %v", m)
	}
	var b strings.Builder
	WriteGoBenchTable(&b, rs)
	if !strings.Contains(b.String(), "| matcher | DecideE164 | 4 | 191 | 180–300 | 0 | 0 |") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestCPUCount(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "1": 1, "0-1": 2, "0,2": 2, "0-3,6": 5} {
		if got := cpuCount(in); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestGenerate checks a small generated policy: every account line passes
// the admin API's validation, the high-risk file parses as tollgate reads
// it with unique prefixes, the numbers file names generated accounts, and
// the same seed gives the same files.
func TestGenerate(t *testing.T) {
	o := GenOptions{Accounts: 500, Prefixes: 5000, Numbers: 1000, Seed: 7}
	dir := t.TempDir()
	res, err := Generate(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accounts != 500 || res.Prefixes != 5000 || res.ShippedPrefixes == 0 || res.Subaccounts == 0 {
		t.Fatalf("result %+v", res)
	}
	f, err := os.Open(res.AccountsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	modes := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Account string          `json:"account"`
			Policy  json.RawMessage `json:"policy"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		var a policy.Account
		dec := json.NewDecoder(strings.NewReader(string(l.Policy)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("%s: %v", l.Account, err)
		}
		if err := policy.ValidName(l.Account); err != nil {
			t.Fatal(err)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("%s: %v\n%s", l.Account, err, l.Policy)
		}
		if a.Countries != nil {
			modes[a.Countries.Default]++
		} else {
			modes["inherit"]++
		}
		names[l.Account] = true
	}
	if len(names) != 500 || modes["allow"] == 0 || modes["deny"] == 0 || modes["inherit"] == 0 {
		t.Fatalf("%d accounts, modes %v", len(names), modes)
	}

	hf, err := os.Open(res.HighRiskFile)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	l, err := policy.ParseHighRiskList(hf)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range l.Entries {
		if seen[e.Prefix] {
			t.Fatalf("duplicate prefix %s", e.Prefix)
		}
		seen[e.Prefix] = true
	}
	if len(l.Entries) != 5000 {
		t.Fatalf("%d high-risk entries", len(l.Entries))
	}

	nb, err := os.ReadFile(res.NumbersFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(nb)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		to, acct, ok := strings.Cut(line, ",")
		if !ok || to == "" || strings.ContainsAny(to, " \t;,") || !names[acct] {
			t.Fatalf("numbers line %q", line)
		}
		n++
	}
	if n != 1000 || len(res.Samples) == 0 || !names[res.Samples[0][1]] {
		t.Fatalf("%d numbers, samples %q", n, res.Samples)
	}

	dir2 := t.TempDir()
	if _, err := Generate(dir2, o); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"accounts.ndjson", "highrisk.csv", "numbers.txt"} {
		a, _ := os.ReadFile(dir + "/" + name)
		b, _ := os.ReadFile(dir2 + "/" + name)
		if string(a) != string(b) {
			t.Fatalf("%s differs between two runs with the same seed", name)
		}
	}
}
