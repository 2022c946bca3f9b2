package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docExample is one "$ curl …" line of docs/api.md and the output shown
// under it.
type docExample struct {
	line     int
	cmd      string
	want     string
	from, to int // the lines of want in the file
}

// docExamples returns the curl examples of the fenced blocks of a
// Markdown file, in order: a command is a line starting "$ curl" (with
// its continuation lines), its output the lines up to the next "$ " or
// the fence.
func docExamples(t *testing.T, path string, skipped *int) []docExample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []docExample
	lines := strings.Split(string(b), "\n")
	in, skip := false, false
	var cur *docExample
	flush := func() {
		if cur != nil {
			cur.want = strings.TrimRight(cur.want, "\n")
			out = append(out, *cur)
			cur = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "<!-- not run:") {
			skip = true // the next block only illustrates; the comment says what it needs
			continue
		}
		if strings.HasPrefix(l, "```") {
			flush()
			if in {
				skip = false
			}
			in = !in
			continue
		}
		if !in || skip {
			if skip && runnable(l) {
				*skipped++
			}
			continue
		}
		if strings.HasPrefix(l, "$ ") {
			flush()
			if !runnable(l) {
				continue
			}
			cmd := strings.TrimPrefix(l, "$ ")
			start := i + 1
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = cmd[:len(cmd)-1] + "\n" + lines[i]
			}
			cur = &docExample{line: start, cmd: cmd, from: i + 1, to: i + 1}
			continue
		}
		if cur != nil {
			cur.want += l + "\n"
			if l != "" {
				cur.to = i + 1
			}
		}
	}
	flush()
	return out
}

// volatile are the parts of an answer that differ from run to run: times,
// ids, durations, digests of what was uploaded at a given moment.
var volatile = []struct {
	re  *regexp.Regexp
	sub string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "TIME"},
	{regexp.MustCompile(`"(id|next|audit_id|pid)":\d+`), `"$1":N`},
	{regexp.MustCompile(`"id":"[^"]*"`), `"id":"ID"`},
	{regexp.MustCompile(`"idempotency_key":"[^"]*"`), `"idempotency_key":"KEY"`},
	{regexp.MustCompile(`(?m)^Date: .*GMT\r?$`), "Date: DATE"},
	{regexp.MustCompile(`"(uptime_seconds|compile_ms|build_ms|age_seconds)":[0-9.]+`), `"$1":N`},
}

func normalize(s string) string {
	s = strings.ReplaceAll(s, "\r", "") // curl -i prints the headers with CRLF
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.sub)
	}
	return strings.TrimSpace(s)
}

// TestAPIDocExamples runs every curl example of docs/api.md, in order,
// against one fresh daemon (the documented ports 8080 and 8081 swapped for
// its free ones, $T its token), and compares what each prints with what
// the docs show, times and ids aside.
func TestAPIDocExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	skipped := 0
	ex := docExamples(t, filepath.Join("..", "..", "docs", "api.md"), &skipped)
	if len(ex) < 20 {
		t.Fatalf("only %d curl examples found in docs/api.md", len(ex))
	}
	dir := t.TempDir()
	geo := filepath.Join(dir, "country.mmdb") // the docs' origin example: 175.16.199.0/24 is CN
	writeCountryDB(t, geo, "175.16.199.0/24", "CN")
	d := startDaemon(t, filepath.Join(dir, "data"), "-geoip-db", geo)
	ports := strings.NewReplacer("127.0.0.1:8081", d.info.AdminAddr, "127.0.0.1:8080", d.info.QueryAddr)
	failed := 0
	update := os.Getenv("TOLLGATE_DOCS_UPDATE") != "" // rewrite the docs' outputs (review the diff!)
	fixes := map[int]string{}
	for _, e := range ex {
		cmd := exec.Command("bash", "-c", ports.Replace(e.cmd))
		cmd.Dir = dir
		cmd.Env = append(cleanEnv(), "T="+d.token)
		out, _ := cmd.CombinedOutput()
		if got, want := normalize(string(out)), normalize(e.want); !matches(got, want) {
			failed++
			if update && !strings.Contains(e.want, "…") {
				fixes[e.from] = strings.TrimRight(strings.ReplaceAll(string(out), "\r", ""), "\n") + "\x00" + strconv.Itoa(e.to)
			}
			t.Errorf("docs/api.md:%d: %s\nprinted:\n%s\ndocs show:\n%s", e.line, e.cmd, got, want)
		}
	}
	if len(fixes) > 0 {
		path := filepath.Join("..", "..", "docs", "api.md")
		b, _ := os.ReadFile(path)
		lines := strings.Split(string(b), "\n")
		var outl []string
		for i := 0; i < len(lines); i++ {
			if f, ok := fixes[i]; ok {
				text, to, _ := strings.Cut(f, "\x00")
				end, _ := strconv.Atoi(to)
				outl = append(outl, text)
				i = end - 1
				continue
			}
			outl = append(outl, lines[i])
		}
		os.WriteFile(path, []byte(strings.Join(outl, "\n")), 0o644)
	}
	t.Logf("%d examples run, %d differ; %d in blocks marked \"not run\"", len(ex), failed, skipped)
}

// matches compares an answer with the docs' text, where "…" in the docs
// stands for anything (an abridged answer).
func matches(got, want string) bool {
	if !strings.Contains(want, "…") {
		return got == want
	}
	parts := strings.Split(want, "…")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("(?s)^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

// runnable: the example lines the test runs — curl against the daemon, and
// the printf and cat that make and show the files it uploads.
func runnable(l string) bool {
	for _, p := range []string{"$ curl ", "$ printf ", "$ cat "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
