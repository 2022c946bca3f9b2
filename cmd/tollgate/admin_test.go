package main

import (
	"bytes"
	"encoding/json"
	"github.com/tollgate/tollgate/handler"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// adminRun runs `tollgate admin ARGS` in process against a daemon's data
// dir and returns the exit status, stdout and stderr.
func adminRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runAdmin(args, &out, &errb)
	return code, out.String(), errb.String()
}

func clearAdminEnv(t *testing.T) {
	for _, k := range []string{"TOLLGATE_ADMIN_TOKEN", "TOLLGATE_ADMIN_TOKEN_FILE", "TOLLGATE_ADMIN_ADDR", "TOLLGATE_DATA_DIR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func TestAdminCLI(t *testing.T) {
	clearAdminEnv(t)
	dir := t.TempDir()
	d := startDaemon(t, dir)
	dd := "-data-dir=" + dir
	want := func(code int, out, errs string, wantCode int, wants ...string) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, out, errs)
		}
		for _, w := range wants {
			if !strings.Contains(out+errs, w) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", w, out, errs)
			}
		}
	}

	c, o, e := adminRun(t, "accounts", "set", "acme", `{"countries":{"default":"allow","except":["CU"]},"tags":["retail"],"max_cps":20,"velocity":{"rules":[{"name":"long","call_duration":{"critical":86400}}]}}`, dd)
	want(c, o, e, 0, `"name": "acme"`, `"max_cps": 20`)
	c, o, e = adminRun(t, "accounts", "set", dd, "globex", `{"home_country":"US","tags":["retail"]}`)
	want(c, o, e, 0, `"name": "globex"`)
	// patch keeps what it does not name; flags after the arguments.
	c, o, e = adminRun(t, "accounts", "patch", "acme", `{"max_channels":10}`, dd)
	want(c, o, e, 0, `"max_channels": 10`, `"max_cps": 20`, `"name": "long"`)
	c, o, e = adminRun(t, "accounts", "patch", "acme", `{"max_cps":1}`, dd, "-if-match", `"stale"`)
	want(c, o, e, 1, "412", "revision")
	c, o, e = adminRun(t, "accounts", "patch", "acme", `{"max_cps":-1}`, dd)
	want(c, o, e, 1, "400", "field max_cps")
	c, o, e = adminRun(t, "accounts", "get", "acme", dd)
	want(c, o, e, 0, "revision \"", `"tags": [`)
	c, o, e = adminRun(t, "accounts", "list", dd)
	want(c, o, e, 0, "ACCOUNT", "acme", "allow all except CU", "retail", "2 of 2 accounts")
	c, o, e = adminRun(t, "accounts", "list", dd, "-tag", "retail", "-limit", "1", "-json")
	var list struct {
		Accounts []map[string]any `json:"accounts"`
		Total    int              `json:"total"`
	}
	if err := json.Unmarshal([]byte(o), &list); err != nil || c != 0 || len(list.Accounts) != 1 || list.Total != 2 {
		t.Fatalf("list -json: %d %v %s %s", c, err, o, e)
	}

	// bulk: all or nothing, one account named.
	c, o, e = adminRun(t, "bulk", "-tag", "retail", `{"countries":{"except":["CU","KP"]}}`, dd)
	want(c, o, e, 1, `account "globex": countries.default`)
	c, o, e = adminRun(t, "bulk", `{"max_cps":7}`, "-tag", "retail", dd, "-dry-run")
	want(c, o, e, 0, "matched 2 accounts; would change (dry run, nothing written) 2")
	c, o, e = adminRun(t, "bulk", `{"max_cps":7}`, "-accounts", "acme,globex", dd)
	want(c, o, e, 0, "matched 2 accounts; changed 2")
	c, o, e = adminRun(t, "bulk", `{"max_cps":7}`, dd)
	want(c, o, e, 2, "exactly one of -tag, -all, -accounts or -accounts-file")

	// lock, locks, unlock, alerts, audit.
	c, o, e = adminRun(t, "lock", "acme", "-reason", "card test", dd)
	want(c, o, e, 0, "locked acme")
	c, o, e = adminRun(t, "locks", dd)
	want(c, o, e, 0, "ACCOUNT", "acme", "card test", "manual")
	c, o, e = adminRun(t, "unlock", dd, "acme")
	want(c, o, e, 0, "unlocked acme")
	c, o, e = adminRun(t, "alerts", dd)
	want(c, o, e, 0, "KIND", "lockdown")
	c, o, e = adminRun(t, "audit", "-limit", "50", dd)
	want(c, o, e, 0, "ACTION", "account.patch", "accounts.bulk_patch", "lock")

	// stats after some traffic.
	d.query("/v1/check?account=acme&to=%2B5355512345")
	d.query("/v1/check?account=acme&to=%2B14155550123")
	c, o, e = adminRun(t, "stats", dd)
	want(c, o, e, 0, "2 decisions", "VERDICT", "reject", "COUNTRY", "CU", "acme")
	c, o, e = adminRun(t, "stats", "-window", "7d", dd)
	want(c, o, e, 1, "400", "field window")

	// high-risk export and import, with the progress bar drawn as on a
	// terminal.
	csv := filepath.Join(t.TempDir(), "hr.csv")
	c, o, e = adminRun(t, "high-risk", "export", "-o", csv, dd)
	want(c, o, e, 0, "wrote ", csv)
	defer func(f func(io.Writer) bool) { isTerminal = f }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	c, o, e = adminRun(t, "high-risk", "import", csv, dd)
	want(c, o, e, 0, "high-risk list replaced", "uploading [", "100%")

	// Missing and wrong arguments say what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"accounts", "get"}, "missing NAME (the account)"},
		{[]string{"accounts", "patch", "acme"}, "missing PATCH (JSON, @FILE or -)"},
		{[]string{"lock"}, "missing ACCOUNT"},
		{[]string{"accounts"}, "one of: list, get, set, patch, delete"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"accounts", "get", "a", "b"}, `unexpected argument "b"`},
		{[]string{"accounts", "get", "bad name"}, `account "bad name"`},
		{[]string{"audit", "-limit", "x"}, `-limit "x"`},
		{nil, "missing COMMAND"},
	} {
		c, o, e := adminRun(t, append(tc.args, dd)...)
		want(c, o, e, 2, tc.want)
	}

	// The token: the environment wins; a wrong one is the daemon's 401.
	t.Setenv("TOLLGATE_ADMIN_TOKEN", "wrong-token-0123456789")
	c, o, e = adminRun(t, "locks", dd)
	want(c, o, e, 1, "401")
	t.Setenv("TOLLGATE_ADMIN_TOKEN", d.token)
	t.Setenv("TOLLGATE_ADMIN_ADDR", d.info.AdminAddr)
	c, o, e = adminRun(t, "locks", "-data-dir", t.TempDir())
	want(c, o, e, 0, "ACCOUNT")
	clearAdminEnv(t)
	c, o, e = adminRun(t, "locks", "-data-dir", t.TempDir())
	want(c, o, e, 2, "no admin token")
}

// TestCommandLine: the binary's -h lists every command, help and version
// work, check validates --src-ip and names what is missing, and import
// takes its flags after the file.
func TestCommandLine(t *testing.T) {
	bin := tollgateBinary(t)
	run := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	_, out := run("-h")
	for _, c := range commands {
		if !strings.Contains(out, "tollgate "+c.name) || !strings.Contains(out, c.summary) {
			t.Errorf("tollgate -h does not list %s:\n%s", c.name, out)
		}
	}
	if !strings.Contains(out, "-query-addr") {
		t.Error("tollgate -h lacks the daemon's flags")
	}
	if c, out := run("help"); c != 0 || !strings.Contains(out, "tollgate admin") || !strings.Contains(out, "-query-addr") {
		t.Errorf("help: %d %s", c, out)
	}
	if c, out := run("help", "admin"); c != 0 || !strings.Contains(out, "accounts patch") {
		t.Errorf("help admin: %d %s", c, out)
	}
	if c, out := run("help", "nothing"); c != 2 || !strings.Contains(out, `no command "nothing"`) {
		t.Errorf("help nothing: %d %s", c, out)
	}
	for _, args := range [][]string{{"-version"}, {"version"}, {"--version"}} {
		if c, out := run(args...); c != 0 || !strings.HasPrefix(out, "tollgate ") {
			t.Errorf("%v: %d %s", args, c, out)
		}
	}
	if c, out := run("frob"); c == 0 || !strings.Contains(out, `"frob": not a command`) {
		t.Errorf("frob: %d %s", c, out)
	}
	dir := t.TempDir()
	if c, out := run("check", "--account", "acme", "--data-dir", dir, "--src-ip", "300.1.2.3", "+4930123456"); c != 2 || !strings.Contains(out, `--src-ip "300.1.2.3": not an IP address`) {
		t.Errorf("check --src-ip: %d %s", c, out)
	}
	if c, out := run("check", "--account", "acme", "--data-dir", dir); c != 2 || !strings.Contains(out, "missing NUMBER") {
		t.Errorf("check without a number: %d %s", c, out)
	}
	if c, out := run("import", "--data-dir", dir); c != 2 || !strings.Contains(out, "missing FILE") {
		t.Errorf("import without a file: %d %s", c, out)
	}
	f := filepath.Join(dir, "a.ndjson")
	os.WriteFile(f, []byte(`{"account":"acme","policy":{"max_cps":3}}`+"\n"), 0o644)
	if c, out := run("import", f, "-data-dir", filepath.Join(dir, "d"), "-dry-run"); c != 0 || !strings.Contains(out, "dry run") {
		t.Errorf("import with flags after the file: %d %s", c, out)
	}
}

// TestAdminCLIRoutes: every admin command calls a route of the admin
// API's table (handler.AdminRoutes), which the docs test checks against
// docs/api.md.
func TestAdminCLIRoutes(t *testing.T) {
	routes := map[string]bool{}
	for _, r := range handler.AdminRoutes() {
		routes[r.Method+" "+r.Pattern] = true
	}
	for _, c := range adminCmds {
		if !routes[c.api] {
			t.Errorf("tollgate admin %s calls %q, which is not an admin route", c.words, c.api)
		}
	}
}
