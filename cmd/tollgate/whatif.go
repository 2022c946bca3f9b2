package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tollgate/tollgate/whatif"
)

// runWhatIfCmd dispatches the subcommands of issue #16. `tollgate admin
// what-if FILE` is runWhatIf under the admin CLI: call
// runWhatIf(args, stdout, stderr) from its table.
func runWhatIfCmd(name string, args []string, stdout, stderr io.Writer) int {
	if name == "replay" {
		return runReplay(args, stdout, stderr)
	}
	return runWhatIf(args, stdout, stderr)
}

// runWhatIf is `tollgate what-if change.json`: POST /v1/what-if to the
// running daemon (found through the run file in the data dir, or -admin)
// and print its report.
func runWhatIf(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tollgate what-if", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dataDir, admin, token string
	var asJSON bool
	var examples int
	fs.StringVar(&dataDir, "data-dir", "./data", "the daemon's data dir: its run file gives the admin address, its admin.token the token")
	fs.StringVar(&admin, "admin", "", "the admin API's base URL (default: from the data dir's run file)")
	fs.StringVar(&token, "token", "", "admin bearer token (default: TOLLGATE_TOKEN, else the data dir's admin.token)")
	fs.BoolVar(&asJSON, "json", false, "print the report as the API answers it")
	fs.IntVar(&examples, "examples", 0, "changed calls to show (default 20)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate what-if [flags] change.json\n\n"+
			"Replays the daemon's recent traffic against the policy in force plus the change in change.json\n"+
			"({\"edits\":[{\"method\":\"PUT\",\"path\":\"/v1/operator/countries/CU\",\"body\":{\"reason\":\"fraud\"}}]})\n"+
			"and prints which verdicts it would change. Nothing is applied.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if v, ok := os.LookupEnv("TOLLGATE_DATA_DIR"); ok && dataDir == "./data" {
		dataDir = v
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "tollgate what-if:", err)
		return exitUsage
	}
	if examples > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			fmt.Fprintf(stderr, "tollgate what-if: %s: %v\n", fs.Arg(0), err)
			return exitUsage
		}
		m["examples"], _ = json.Marshal(examples)
		body, _ = json.Marshal(m)
	}
	if admin == "" {
		if admin, err = adminURL(dataDir); err != nil {
			fmt.Fprintln(stderr, "tollgate what-if:", err)
			return exitError
		}
	}
	if token == "" {
		token = os.Getenv("TOLLGATE_TOKEN")
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, tokenFile))
		if err != nil {
			fmt.Fprintf(stderr, "tollgate what-if: no -token, no TOLLGATE_TOKEN and no %s: %v\n", filepath.Join(dataDir, tokenFile), err)
			return exitUsage
		}
		token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequest("POST", strings.TrimRight(admin, "/")+"/v1/what-if", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "tollgate what-if:", err)
		return exitUsage
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate what-if:", err)
		return exitError
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintln(stderr, "tollgate what-if:", err)
		return exitError
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "tollgate what-if: %s: %s", resp.Status, out)
		return exitError
	}
	if asJSON {
		stdout.Write(out)
		return 0
	}
	var rep whatif.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		fmt.Fprintln(stderr, "tollgate what-if: unreadable answer:", err)
		return exitError
	}
	printReport(stdout, &rep, true)
	if len(rep.Examples) > 0 {
		fmt.Fprintln(stdout, "\nexamples")
		for _, x := range rep.Examples {
			fmt.Fprintf(stdout, "%s  %s%s  %s  %s/%s -> %s/%s\n", x.Time.Format(time.RFC3339), x.Account, subSuffix(x.Subaccount), x.To,
				x.Before.Verdict, x.Before.Reason, x.After.Verdict, x.After.Reason)
		}
	}
	return 0
}

func subSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

// adminURL is the running daemon's admin API, from its run file.
func adminURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, runFile))
	if err != nil {
		return "", fmt.Errorf("no running tollgate found in %s (%v); give -admin http://HOST:PORT", dataDir, err)
	}
	var ri runInfo
	if err := json.Unmarshal(b, &ri); err != nil || ri.AdminAddr == "" {
		return "", fmt.Errorf("the run file %s is unreadable; give -admin", filepath.Join(dataDir, runFile))
	}
	addr := ri.AdminAddr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + addr, nil
}
