package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// replayDir makes a data dir with a few accounts, and returns a function
// deciding a query as the daemon would from it (the live decision).
func replayDir(t *testing.T) (string, func(q *matcher.Query) matcher.Verdict) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan := numplan.Default()
	m := matcher.New(plan, matcher.Options{})
	svc := service.New(m, plan, st, service.Options{})
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	who := service.Actor{Name: "test"}
	for name, doc := range map[string]string{
		"acme":  `{"home_country":"GB","countries":{"default":"allow","except":["CU"]},"high_risk":"block","block_prefixes":["+4470"]}`,
		"beta":  `{"home_country":"US","countries":{"default":"deny","except":["US","CA","GB"]},"subaccounts":{"ops":{"countries":{"default":"allow"}}}}`,
		"gamma": `{"countries":{"default":"allow"},"high_risk":"allow"}`,
	} {
		var a policy.Account
		if err := policy.DecodeStrict([]byte(doc), &a); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.PutAccount(who, name, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := svc.DisableCountry(who, "SO", "test"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// the live side: the same data file, loaded as the daemon loads it
	st2, err := store.Open(dir, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	m2 := matcher.New(plan, matcher.Options{})
	if err := service.New(m2, plan, st2, service.Options{}).Load(); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	return dir, m2.Decide
}

var cdrNumbers = []string{"+442079460000", "+447012345678", "+5372345678", "+12025550100", "+33142685300", "+252612345678",
	"+4930123456", "00442079460001", "02079460002", "911", "+882345678901", "12", "+1 202 555 0101", "+16135550100"}

func writeCDR(t testing.TB, path string, n int, rng *rand.Rand) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"connect_time", "CLD", "i_account", "sub", "ip"})
	accounts := []string{"acme", "beta", "gamma", "nobody"}
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		acct := accounts[rng.IntN(len(accounts))]
		sub := ""
		if acct == "beta" && rng.IntN(2) == 0 {
			sub = "ops"
		}
		w.Write([]string{t0.Add(time.Duration(i) * 50 * time.Millisecond).Format("2006-01-02 15:04:05"),
			cdrNumbers[rng.IntN(len(cdrNumbers))], acct, sub, fmt.Sprintf("192.0.2.%d", rng.IntN(250))})
	}
	w.Flush()
}

// TestReplayMatchesLive: every row of a generated CDR file is decided as
// the daemon decides it, one by one.
func TestReplayMatchesLive(t *testing.T) {
	dir, live := replayDir(t)
	cdr := filepath.Join(t.TempDir(), "cdr.csv")
	writeCDR(t, cdr, 3000, rand.New(rand.NewPCG(1, 2)))
	out := filepath.Join(t.TempDir(), "all.csv")
	var stdout, stderr bytes.Buffer
	code := runReplay([]string{"-data-dir", dir, "-columns", "to=CLD,account=i_account,subaccount=sub,src_ip=ip,time=connect_time",
		"-all", "-out", out, cdr}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	f, _ := os.Open(out)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3001 {
		t.Fatalf("%d rows out", len(rows))
	}
	reasons := map[string]int{}
	for _, r := range rows[1:] {
		v := live(&matcher.Query{Account: r[2], Subaccount: r[3], To: r[4], SrcIP: r[5]})
		if r[7] != v.Action.String() || r[8] != v.Reason.String() {
			t.Errorf("line %s %v: replay %s/%s, live %s/%s", r[0], r[2:6], r[7], r[8], v.Action, v.Reason)
		}
		reasons[r[8]]++
	}
	if len(reasons) < 5 {
		t.Errorf("the file exercises too few reasons: %v", reasons)
	}
	if !strings.Contains(stdout.String(), "replayed") || !strings.Contains(stdout.String(), "3000") {
		t.Errorf("summary: %s", stdout.String())
	}
}

// TestReplayChange: a proposed change lists exactly the calls it changes.
func TestReplayChange(t *testing.T) {
	dir, _ := replayDir(t)
	cdr := filepath.Join(t.TempDir(), "cdr.csv")
	os.WriteFile(cdr, []byte("to,account,time\n+33142685300,acme,2026-12-04T10:00:00Z\n+4930123456,acme,2026-12-04T10:00:01Z\n+33142685301,gamma,1796378402\n"), 0o644)
	change := filepath.Join(t.TempDir(), "change.json")
	os.WriteFile(change, []byte(`{"edits":[{"method":"PUT","path":"/v1/operator/countries/FR","body":{"reason":"test"}}]}`), 0o644)
	out := filepath.Join(t.TempDir(), "changed.csv")
	js := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	if code := runReplay([]string{"-data-dir", dir, "-change", change, "-out", out, "-json", js, cdr}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2,") || !strings.HasPrefix(lines[2], "4,") || !strings.Contains(lines[1], "reject,country_disabled,true") {
		t.Errorf("changed calls:\n%s", b)
	}
	if s := stdout.String(); !strings.Contains(s, "changed by the proposal") || !strings.Contains(s, "allow/ok") {
		t.Errorf("summary:\n%s", s)
	}
	if j, _ := os.ReadFile(js); !strings.Contains(string(j), `"changed": 2`) {
		t.Errorf("report: %s", j)
	}
	// usage errors name what is wrong
	for _, args := range [][]string{{"-columns", "too=x", cdr}, {"-change", filepath.Join(dir, "none.json"), cdr}, {}} {
		stderr.Reset()
		if code := runReplay(append([]string{"-data-dir", dir}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d: %s", args, code, stderr.String())
		}
	}
	os.WriteFile(cdr, []byte("number,account\n+1,acme\n"), 0o644)
	stderr.Reset()
	if code := runReplay([]string{"-data-dir", dir, cdr}, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), `-columns to=NAME`) {
		t.Errorf("missing column: exit %d: %s", code, stderr.String())
	}
}

// FuzzReplayParsers: the -columns flag and the time column never panic,
// and a mapping that parses names every field.
func FuzzReplayParsers(f *testing.F) {
	f.Add("to=CLD,account=i_account", "2026-12-04 10:00:00")
	f.Add("time=x,,=", "1796378402.5")
	f.Add("", "2026-12-04T10:00:00.123+01:00")
	f.Fuzz(func(t *testing.T, cols, ts string) {
		if m, err := parseColumns(cols); err == nil && len(m) != len(replayColumns) {
			t.Fatalf("%q: %v", cols, m)
		}
		if tm, err := parseCDRTime(ts); err == nil && tm.IsZero() {
			t.Fatalf("%q: zero time", ts)
		}
	})
}
