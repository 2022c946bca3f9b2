package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEQuickStart follows the README's quick start word for word (issue
// 11 item 8): its shell block runs against a fresh daemon whose data dir is
// ./data, only the fixed ports swapped for the test's free ones, and prints
// exactly the output the README shows.
func TestREADMEQuickStart(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "In a second terminal")
	if i < 0 {
		t.Fatal("README.md: the quick start has no second-terminal block creating an account and checking a call")
	}
	block := func(s, fence string) (string, string) {
		start := strings.Index(s, fence)
		if start < 0 {
			t.Fatalf("README.md: no %q block after the quick start's text", fence)
		}
		s = s[start+len(fence):]
		end := strings.Index(s, "```")
		return s[:end], s[end+3:]
	}
	script, rest := block(readme[i:], "```sh\n")
	want, _ := block(rest, "```\n")
	if !strings.Contains(script, "v1/accounts/") || !strings.Contains(script, "/v1/check?") {
		t.Fatalf("the quick start does not create an account and check a call:\n%s", script)
	}

	dir := t.TempDir()
	d := startDaemon(t, filepath.Join(dir, "data"))
	script = strings.NewReplacer("127.0.0.1:8081", d.info.AdminAddr, "127.0.0.1:8080", d.info.QueryAddr).Replace(script)
	cmd := exec.Command("sh", "-e", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out)
	}
	if string(out) != want {
		t.Fatalf("the quick start printed\n%s\nthe README shows\n%s", out, want)
	}
}

// TestREADMECLI runs the README's command-line block against a daemon
// whose data dir is ./data, the binary in ./bin as `make build` puts it.
func TestREADMECLI(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "The same from the command line")
	if i < 0 {
		t.Fatal("README.md: no command-line block")
	}
	s := readme[i:]
	s = s[strings.Index(s, "```sh\n")+6:]
	script := s[:strings.Index(s, "```")]
	dir := t.TempDir()
	bin := tollgateBinary(t)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "tollgate")); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, filepath.Join(dir, "data"))
	if c, body := d.admin("PUT", "/v1/accounts/acme", `{"home_country":"US","countries":{"default":"deny","except":["US","CA"]}}`); c != 200 {
		t.Fatal(c, body)
	}
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = dir
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		// check exits 1 for a rejected call, as documented.
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1 && strings.Contains(line, " check ")) {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		if !strings.Contains(string(out), "acme") && !strings.Contains(string(out), "CU") {
			t.Errorf("%s printed nothing about acme:\n%s", line, out)
		}
	}
}
