package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool comes from Debian's prometheus package, which `make deps`
// installs; like the Kamailio tests, these fail rather than skip without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing; install it as root with: apt-get update && apt-get install -y prometheus (or run make deps)")
	}
	return p
}

// The rules pass `promtool check rules`, and their unit tests
// (tollgate-alerts_test.yml) pass `promtool test rules`.
func TestPromtool(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", filepath.Join("prometheus", "tollgate-alerts.yml")},
		{"test", "rules", filepath.Join("prometheus", "tollgate-alerts_test.yml")},
	} {
		out, err := exec.Command(pt, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The unit tests can fail: each of these plausible mistakes in an alert
// expression, written into a copy of the rules, makes `promtool test rules`
// fail.
func TestPromtoolCatchesWrongExpressions(t *testing.T) {
	pt := promtool(t)
	rules, err := os.ReadFile(filepath.Join("prometheus", "tollgate-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("prometheus", "tollgate-alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ name, old, new string }{
		{"down on any job", `expr: up{job="tollgate"} == 0 or absent(up{job="tollgate"})`, `expr: up == 0`},
		{"down without absent", `up{job="tollgate"} == 0 or absent(up{job="tollgate"})`, `up{job="tollgate"} == 0`},
		{"ready inverted", `expr: tollgate_ready == 0`, `expr: tollgate_ready == 1`},
		{"reload on the counter", `expr: tollgate_reload_success == 0`, `expr: tollgate_reloads_total{result="failure"} > 0`},
		{"latency threshold 10 ms", `le) (rate(tollgate_request_duration_seconds_bucket[5m]))) > 0.001`, `le) (rate(tollgate_request_duration_seconds_bucket[5m]))) > 0.01`},
		{"latency p50", `histogram_quantile(0.99,`, `histogram_quantile(0.5,`},
		{"latency without a traffic floor", ` and sum by (instance) (rate(tollgate_request_duration_seconds_count[5m])) > 1`, ``},
	} {
		t.Run(m.name, func(t *testing.T) {
			if !strings.Contains(string(rules), m.old) {
				t.Fatalf("the rules no longer contain %q", m.old)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "tollgate-alerts.yml"), []byte(strings.Replace(string(rules), m.old, m.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tollgate-alerts_test.yml"), tests, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(pt, "test", "rules", filepath.Join(dir, "tollgate-alerts_test.yml")).CombinedOutput()
			if err == nil {
				t.Errorf("promtool test rules passed with the mistake:\n%s", out)
			}
		})
	}
}
