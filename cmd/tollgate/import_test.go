package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/store"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runImportArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runImport(args, &out, &errb)
	return code, out.String(), errb.String()
}

// storeState reads the accounts and the audit log of a data dir.
func storeState(t *testing.T, dir string) (map[string]json.RawMessage, []store.AuditEntry) {
	t.Helper()
	st, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	set, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	accts := map[string]json.RawMessage{}
	for name, a := range set.Accounts {
		b, _ := json.Marshal(a)
		accts[name] = b
	}
	audit, err := st.Audit(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return accts, audit
}

const goodImport = `{"account":"acme","policy":` + acme + `}

{"account":"globex","policy":{"home_country":"gb","countries":{"default":"allow","except":["cu","region:melanesia"]},"block_prefixes":["0044 70"],"subaccounts":{"sales":{"high_risk":"allow"}}}}
{"account":"initech","policy":{}}
`

func TestImport(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, t.TempDir(), "accounts.ndjson", goodImport)

	code, out, errs := runImportArgs("-data-dir", dir, "-who", "ops", file)
	if code != 0 || !strings.Contains(out, "imported 3 accounts (3 new, 0 replaced)") || !strings.Contains(out, "audit entry 1") {
		t.Fatalf("good file: %d\n%s\n%s", code, out, errs)
	}
	accts, audit := storeState(t, dir)
	if len(accts) != 3 || len(audit) != 1 {
		t.Fatalf("after import: %d accounts, %d audit entries", len(accts), len(audit))
	}
	// Stored canonical, as a PUT stores it.
	if g := string(accts["globex"]); !strings.Contains(g, `"home_country":"GB"`) || !strings.Contains(g, `"+4470"`) || !strings.Contains(g, `"sales":{"high_risk":"allow"}`) {
		t.Fatalf("globex stored as %s", g)
	}
	e := audit[0]
	var after map[string]json.RawMessage
	if err := json.Unmarshal(e.After, &after); err != nil || len(after) != 3 || e.Who != "ops" || e.Action != "accounts.import" ||
		string(e.Before) != "null" || !strings.HasPrefix(e.Remote, "file:"+file+" sha256:") {
		t.Fatalf("audit entry: %+v (after: %v)", e, err)
	}

	// The daemon's own decision path sees the imported policy.
	var cout, cerr bytes.Buffer
	if c := runCheck([]string{"--data-dir", dir, "--account", "acme", "+5355512345"}, &cout, &cerr); c != exitReject ||
		!strings.Contains(cout.String(), "country_barred") {
		t.Fatalf("check after import: %d\n%s%s", c, cout.String(), cerr.String())
	}

	// Replacing an account without "subaccounts" keeps them, as PUT does;
	// the audit entry holds the account as it was.
	file2 := writeFile(t, t.TempDir(), "more.ndjson", `{"account":"globex","policy":{"home_country":"DE"}}`+"\n"+`{"account":"hooli","policy":{"max_cps":5}}`)
	if code, out, errs := runImportArgs("-data-dir", dir, file2); code != 0 || !strings.Contains(out, "(1 new, 1 replaced)") || !strings.Contains(out, "4 accounts in all") {
		t.Fatalf("second import: %d\n%s\n%s", code, out, errs)
	}
	accts, audit = storeState(t, dir)
	if g := string(accts["globex"]); !strings.Contains(g, `"home_country":"DE"`) || !strings.Contains(g, `"sales"`) || strings.Contains(g, "+4470") {
		t.Fatalf("globex after replace: %s", g)
	}
	if len(audit) != 2 || !strings.Contains(string(audit[0].Before), `"globex"`) || strings.Contains(string(audit[0].Before), "hooli") ||
		audit[0].Who != "import" {
		t.Fatalf("second audit entry: %+v", audit[0])
	}
}

func TestImportBadLineWritesNothing(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, t.TempDir(), "good.ndjson", goodImport)
	if code, _, errs := runImportArgs("-data-dir", dir, file); code != 0 {
		t.Fatal(errs)
	}
	before, auditBefore := storeState(t, dir)

	cases := []struct {
		name, body, want string
	}{
		{"country", `{"account":"a1","policy":{"max_cps":3}}` + "\n\n" + `{"account":"a2","policy":{"home_country":"XX"}}`,
			`bad.ndjson:3: account "a2": policy.home_country: unknown country code "XX"`},
		{"unknown field", `{"account":"a1","policy":{"max_cps":3,"colour":"red"}}`,
			`bad.ndjson:1: account "a1": policy.colour: unknown field`},
		{"type", `{"account":"a1","policy":{"max_cps":"3"}}`,
			`bad.ndjson:1: account "a1": policy.max_cps: expected int, got JSON string`},
		{"selector", `{"account":"a1","policy":{"countries":{"default":"deny","except":["US","continent:XX"]}}}`,
			`bad.ndjson:1: account "a1": policy.countries.except[1]: unknown continent "XX"`},
		{"duplicate", `{"account":"acme","policy":{}}` + "\n" + `{"account":"acme","policy":{"max_cps":1}}`,
			`bad.ndjson:2: account "acme" is already on line 1`},
		{"name", `{"account":"a b","policy":{}}`, `bad.ndjson:1: account "a b": bad name`},
		{"dots", `{"account":"..","policy":{}}`, `bad.ndjson:1: account "..": bad name`},
		{"subaccounts", `{"account":"a1","policy":{"subaccounts":{` + manySubs(1001) + `}}}`, `bad.ndjson:1: account "a1": policy.subaccounts: 1001 subaccounts`},
		{"no policy", `{"account":"a1"}`, `bad.ndjson:1: account "a1": policy: required`},
		{"not json", `{"account":"a1","policy":{}}` + "\n" + `account=a1`, `bad.ndjson:2: malformed JSON`},
		{"two objects", `{"account":"a1","policy":{}} {"account":"a2","policy":{}}`, `bad.ndjson:1: unexpected data after the JSON object`},
		{"top-level field", `{"account":"a1","policy":{},"subaccount":"x"}`, `bad.ndjson:1: subaccount: unknown field`},
		{"empty", "\n\n", `no accounts in the file`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := writeFile(t, t.TempDir(), "bad.ndjson", c.body)
			code, out, errs := runImportArgs("-data-dir", dir, bad)
			if code != exitError || out != "" || !strings.Contains(errs, c.want) || !strings.Contains(errs, "nothing was written") {
				t.Fatalf("exit %d\nstdout %q\nstderr %s\nwant %q", code, out, errs, c.want)
			}
			// Nothing written into a fresh dir either: not even a data file.
			fresh := filepath.Join(t.TempDir(), "data")
			if code, _, _ := runImportArgs("-data-dir", fresh, bad); code != exitError {
				t.Fatal("fresh dir: accepted")
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Fatalf("fresh dir created: %v", err)
			}
		})
	}
	// Every error is listed, up to a limit, each with its line.
	var b strings.Builder
	for i := 0; i < 15; i++ {
		b.WriteString(`{"account":"x","policy":{"max_cps":-1}}` + "\n")
	}
	bad := writeFile(t, t.TempDir(), "bad.ndjson", b.String())
	_, _, errs := runImportArgs("-data-dir", dir, bad)
	if !strings.Contains(errs, "bad.ndjson:1: account \"x\": policy.max_cps") || !strings.Contains(errs, "bad.ndjson:2: account \"x\"") ||
		!strings.Contains(errs, "stopped reading at line 10 after 10 errors") {
		t.Fatalf("many errors:\n%s", errs)
	}

	after, auditAfter := storeState(t, dir)
	if len(after) != len(before) || len(auditAfter) != len(auditBefore) {
		t.Fatalf("a refused import changed the store: %d→%d accounts, %d→%d audit entries", len(before), len(after), len(auditBefore), len(auditAfter))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Fatalf("account %s changed: %s → %s", k, v, after[k])
		}
	}
}

func TestImportRefusedWhileDataFileHeld(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	file := writeFile(t, t.TempDir(), "accounts.ndjson", goodImport)
	code, _, errs := runImportArgs("-data-dir", dir, file)
	if code != exitError || !strings.Contains(errs, "locked") || !strings.Contains(errs, "stop the daemon first") {
		t.Fatalf("import while held: %d %s", code, errs)
	}
}

func TestImportDryRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	file := writeFile(t, t.TempDir(), "accounts.ndjson", goodImport)
	code, out, errs := runImportArgs("-data-dir", dir, "-dry-run", file)
	if code != 0 || !strings.Contains(out, "dry run: would import 3 accounts") {
		t.Fatalf("dry run: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dry run created the data dir: %v", err)
	}
	if code, _, _ := runImportArgs("-data-dir", dir); code != exitUsage {
		t.Fatalf("no file: %d", code)
	}
}

func manySubs(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"s%d":{}`, i)
	}
	return b.String()
}

// TestImportProgress: on a terminal, reading the file draws a bar to 100%;
// elsewhere (the other tests) nothing is drawn.
func TestImportProgress(t *testing.T) {
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	dir := t.TempDir()
	f := writeFile(t, dir, "a.ndjson", `{"account":"acme","policy":{"max_cps":3}}`+"\n")
	code, out, errs := runImportArgs("-data-dir", filepath.Join(dir, "d"), f)
	if code != 0 || !strings.Contains(errs, "reading "+f+" [##############################] 100%") {
		t.Fatalf("%d\n%s\n%s", code, out, errs)
	}
}
