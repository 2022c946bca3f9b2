package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

func TestRunVersioning(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, "curated.csv")
	out := filepath.Join(dir, "highrisk.csv")
	write := func(body string) {
		if err := os.WriteFile(cur, []byte(policy.HighRiskHeader+"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("+4470,GB,irsf,test source\n")

	if err := run(out, cur, "", false, io.Discard); err == nil || !strings.Contains(err.Error(), "pass -version") {
		t.Fatalf("first run without -version: %v", err)
	}
	if err := run(out, cur, "2026.1.1-1", false, io.Discard); err == nil {
		t.Fatal("accepted a malformed version")
	}
	if err := run(out, cur, "2026.11.22-1", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), "# version: 2026.11.22-1\n# generated: by go run ./cmd/genhighrisk from libphonenumber ") {
		t.Fatalf("header:\n%.200s", first)
	}

	// Unchanged inputs: the version is kept and the bytes are identical.
	if err := run(out, cur, "", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); string(again) != string(first) {
		t.Fatal("regeneration changed the file")
	}
	if err := run(out, cur, "", true, io.Discard); err != nil {
		t.Fatalf("-check on a fresh file: %v", err)
	}

	// Changed inputs: a new version is required, and -check reports staleness.
	write("+4470,GB,irsf,test source\n+4476,GB,irsf,another\n")
	if err := run(out, cur, "", true, io.Discard); err == nil {
		t.Fatal("-check passed a stale file")
	}
	if err := run(out, cur, "", false, io.Discard); err == nil || !strings.Contains(err.Error(), "entries changed") {
		t.Fatalf("changed entries without -version: %v", err)
	}
	if err := run(out, cur, "2026.11.22-2", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if v := policy.HighRiskVersion(strings.NewReader(mustRead(t, out))); v != "2026.11.22-2" {
		t.Fatalf("version %q", v)
	}

	// A bad curated row fails generation and leaves the output alone.
	write("+4470,XX,irsf,bad country\n")
	before := mustRead(t, out)
	if err := run(out, cur, "2026.11.22-3", false, io.Discard); err == nil || !strings.Contains(err.Error(), `line 2: country "XX" unknown`) {
		t.Fatalf("bad curated row: %v", err)
	}
	if mustRead(t, out) != before {
		t.Fatal("output changed after a failed run")
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
