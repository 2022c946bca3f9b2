package matcher

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated docs and golden files")

// verdictTable renders the verdict table that docs/verdicts.md carries, so
// the doc cannot drift from the code.
func verdictTable() string {
	var b strings.Builder
	b.WriteString("| reason | code | verdict | SIP response | message |\n|---|---|---|---|---|\n")
	for r := Reason(0); r < numReasons; r++ {
		in := r.Info()
		action := r.Verdict().String()
		fmt.Fprintf(&b, "| `%s` | %d | %s | %d %s | %s |\n", in.Name, in.Code, action, in.SIPCode, in.SIPReason, in.Message)
	}
	return b.String()
}

const tableBegin, tableEnd = "<!-- verdict-table:begin -->\n", "<!-- verdict-table:end -->"

func TestVerdictDoc(t *testing.T) {
	const path = "../docs/verdicts.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: table markers missing", path)
	}
	want := doc[:i+len(tableBegin)] + verdictTable() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale: run go test ./matcher -run TestVerdictDoc -update", path)
}

func TestReasonsDistinct(t *testing.T) {
	names, codes := map[string]bool{}, map[int]bool{}
	for r := Reason(0); r < numReasons; r++ {
		in := r.Info()
		if in.Name == "" || names[in.Name] || codes[in.Code] {
			t.Errorf("reason %d: empty or duplicate name/code %+v", r, in)
		}
		names[in.Name], codes[in.Code] = true, true
	}
}
