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
	den := filepath.Join(dir, "denies.csv")
	write := func(body string) {
		if err := os.WriteFile(cur, []byte(policy.HighRiskHeader+"\n"+body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("+4470,GB,irsf,test source\n")

	if err := run(out, den, cur, "", false, io.Discard); err == nil || !strings.Contains(err.Error(), "pass -version") {
		t.Fatalf("first run without -version: %v", err)
	}
	if err := run(out, den, cur, "2026.1.1-1", false, io.Discard); err == nil {
		t.Fatal("accepted a malformed version")
	}
	if err := run(out, den, cur, "2026.11.22-1", false, io.Discard); err != nil {
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
	if err := run(out, den, cur, "", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); string(again) != string(first) {
		t.Fatal("regeneration changed the file")
	}
	if err := run(out, den, cur, "", true, io.Discard); err != nil {
		t.Fatalf("-check on a fresh file: %v", err)
	}

	// Changed inputs: a new version is required, and -check reports staleness.
	write("+4470,GB,irsf,test source\n+4476,GB,irsf,another\n")
	if err := run(out, den, cur, "", true, io.Discard); err == nil {
		t.Fatal("-check passed a stale file")
	}
	if err := run(out, den, cur, "", false, io.Discard); err == nil || !strings.Contains(err.Error(), "entries of "+out+" changed") {
		t.Fatalf("changed entries without -version: %v", err)
	}
	if err := run(out, den, cur, "2026.11.22-2", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if v := policy.HighRiskVersion(strings.NewReader(mustRead(t, out))); v != "2026.11.22-2" {
		t.Fatalf("version %q", v)
	}

	// A row naming a whole country goes to the recommended denies, not the
	// list; changing the denies alone also needs a new version.
	write("+4470,GB,irsf,test source\n+4476,GB,irsf,another\n+222,MR,irsf,fcc\n")
	if err := run(out, den, cur, "", false, io.Discard); err == nil || !strings.Contains(err.Error(), "entries of "+den+" changed") {
		t.Fatalf("changed denies without -version: %v", err)
	}
	if err := run(out, den, cur, "2026.11.22-3", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if hr := mustRead(t, out); strings.Contains(hr, "+222") || !strings.Contains(hr, "+4476,GB,irsf") {
		t.Errorf("high-risk list:\n%s", hr)
	}
	if d := mustRead(t, den); !strings.HasSuffix(d, policy.HighRiskHeader+"\n+222,MR,irsf,fcc\n") || !strings.HasPrefix(d, "# version: 2026.11.22-3\n# generated: by go run ./cmd/genhighrisk from ") {
		t.Errorf("denies:\n%s", d)
	}

	// A bad curated row fails generation and leaves the output alone.
	write("+4470,XX,irsf,bad country\n")
	before := mustRead(t, out)
	if err := run(out, den, cur, "2026.11.22-4", false, io.Discard); err == nil || !strings.Contains(err.Error(), `line 2: country "XX" unknown`) {
		t.Fatalf("bad curated row: %v", err)
	}
	if mustRead(t, out) != before {
		t.Fatal("output changed after a failed run")
	}
	// So does a row covering several countries, or part of a country's
	// area codes named as if it were the whole country.
	for body, want := range map[string]string{
		"+1,US,irsf,all of NANP\n":   "several countries",
		"+18,US,irsf,too wide\n":     "covers all of",
		"+1809,DO,irsf,part of DO\n": "+18001 +1829 +1849 is missing",
		"+223,MR,irsf,wrong\n":       "+223 is ML, listed as MR",
	} {
		write(body)
		if err := run(out, den, cur, "2026.11.22-4", false, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
		if mustRead(t, out) != before {
			t.Fatalf("%q: output changed after a failed run", body)
		}
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
