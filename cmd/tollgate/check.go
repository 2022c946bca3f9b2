package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

// Exit codes of `tollgate check`, so scripts can branch on the verdict.
const (
	exitAllow  = 0
	exitReject = 1
	exitUsage  = 2
	exitScreen = 3
	exitError  = 4
)

// checkResult is the verdict object of the wire contract, decoded for
// printing; local and daemon answers go through the same JSON.
type checkResult struct {
	Verdict     string `json:"verdict"`
	Reason      string `json:"reason"`
	Code        int    `json:"code"`
	SIPCode     int    `json:"sip_code"`
	SIPReason   string `json:"sip_reason"`
	Message     string `json:"message"`
	Country     string `json:"country"`
	E164        string `json:"e164"`
	Account     string `json:"account"`
	Rule        string `json:"rule"`
	MaxChannels int    `json:"max_channels"`
	MaxCPS      int    `json:"max_cps"`
	// only for an account with account-wide caps
	AccountMaxChannels int `json:"account_max_channels"`
	AccountMaxCPS      int `json:"account_max_cps"`
	// only when the number carried a routing number
	DecidedBy string `json:"decided_by"`
	RN        string `json:"rn"`
}

// runCheck implements `tollgate check`. It opens the data file read-only.
// bbolt lets one process write or any number read, so while the daemon runs
// the file is locked: check then asks the daemon itself (its query address is
// in the run file), which answers from exactly the policy in force.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tollgate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var q matcher.Query
	var dataDir, hrFile, rdFile string
	var asJSON bool
	fs.StringVar(&q.Account, "account", "", "account tag as the proxy sends it")
	fs.StringVar(&q.Subaccount, "subaccount", "", "subaccount")
	fs.StringVar(&q.From, "from", "", "caller's number")
	fs.StringVar(&q.SrcIP, "src-ip", "", "caller's source IP")
	fs.StringVar(&q.CallID, "call-id", "", "SIP Call-ID")
	fs.StringVar(&dataDir, "data-dir", "./data", "the daemon's data dir")
	fs.StringVar(&hrFile, "high-risk-file", "", "the daemon's -high-risk-file, if it uses one")
	fs.StringVar(&rdFile, "rate-deck-file", "", "the daemon's -rate-deck-file, if it uses one")
	fs.BoolVar(&asJSON, "json", false, "print the verdict object as the query API returns it")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate check --account A [--subaccount S] [--from F] [--src-ip IP] NUMBER\n\n"+
			"Prints the verdict, its reason and code, the destination and the rule that decided.\n"+
			"Exit status: 0 allow, 1 reject, 3 screen, 2 usage error, 4 other error.\n"+
			"TOLLGATE_DATA_DIR, TOLLGATE_HIGH_RISK_FILE and TOLLGATE_RATE_DECK_FILE apply as for the daemon.\n\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the number.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitUsage
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]*string{"data-dir": &dataDir, "high-risk-file": &hrFile, "rate-deck-file": &rdFile} {
		if v, ok := os.LookupEnv(envName(name)); ok && !set[name] {
			*p = v
		}
	}
	switch {
	case len(pos) == 0:
		fmt.Fprintln(stderr, "tollgate check: missing NUMBER (the dialled number, e.g. +4930123456)")
		return exitUsage
	case len(pos) > 1:
		fmt.Fprintf(stderr, "tollgate check: unexpected argument %q: one NUMBER only\n", pos[1])
		return exitUsage
	}
	q.To = pos[0]
	if q.SrcIP != "" {
		if _, err := netip.ParseAddr(q.SrcIP); err != nil {
			fmt.Fprintf(stderr, "tollgate check: --src-ip %q: not an IP address (e.g. 203.0.113.7 or 2001:db8::1)\n", q.SrcIP)
			return exitUsage
		}
	}
	for _, f := range []struct{ flag, v string }{{"--account", q.Account}, {"--subaccount", q.Subaccount}} {
		if f.v != "" {
			if err := policy.ValidName(f.v); err != nil {
				fmt.Fprintf(stderr, "tollgate check: %s %q: no account can have this name: %v\n", f.flag, f.v, err)
				return exitUsage
			}
		}
	}

	res, via, err := checkLocal(dataDir, hrFile, rdFile, &q)
	if errors.Is(err, store.ErrLocked) {
		res, via, err = checkDaemon(dataDir, &q)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tollgate check:", err)
		return exitError
	}
	if asJSON {
		fmt.Fprintln(stdout, string(res))
	} else {
		var r checkResult
		if err := json.Unmarshal(res, &r); err != nil {
			fmt.Fprintln(stderr, "tollgate check: unreadable answer:", err)
			return exitError
		}
		printResult(stdout, &r, via)
	}
	var r checkResult
	json.Unmarshal(res, &r)
	switch r.Verdict {
	case "allow":
		return exitAllow
	case "screen":
		return exitScreen
	default:
		return exitReject
	}
}

// checkLocal decides from the data file, compiled exactly as the daemon
// compiles it, with the stored lockdowns applied (the velocity counters of
// a daemon that is not running are gone, its lockdowns are not).
func checkLocal(dataDir, hrFile, rdFile string, q *matcher.Query) ([]byte, string, error) {
	st, err := store.Open(dataDir, store.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		return nil, "", err
	}
	defer st.Close()
	plan := numplan.Default()
	vel := velocity.New(velocity.Options{})
	m := matcher.New(plan, matcher.Options{Velocity: vel})
	svc := service.New(m, plan, st, service.Options{HighRiskFile: hrFile, RateDeckFile: rdFile, Velocity: vel})
	if err := svc.Load(); err != nil {
		return nil, "", err
	}
	v := m.Decide(q)
	return handler.AppendVerdict(nil, &v), "data file " + st.Path(), nil
}

// checkDaemon asks the daemon that holds the data file, through its query
// API, at the address it recorded in the run file.
func checkDaemon(dataDir string, q *matcher.Query) ([]byte, string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, runFile))
	if err != nil {
		return nil, "", fmt.Errorf("the data file is locked by a running tollgate, and its run file cannot be read (%v)", err)
	}
	var ri runInfo
	if err := json.Unmarshal(b, &ri); err != nil || ri.QueryAddr == "" {
		return nil, "", fmt.Errorf("the data file is locked by a running tollgate, and its run file %s is unreadable", filepath.Join(dataDir, runFile))
	}
	addr := ri.QueryAddr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	v := url.Values{}
	v.Set("to", q.To)
	for k, s := range map[string]string{"account": q.Account, "subaccount": q.Subaccount, "from": q.From, "src_ip": q.SrcIP, "call_id": q.CallID} {
		if s != "" {
			v.Set(k, s)
		}
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/v1/check?" + v.Encode())
	if err != nil {
		return nil, "", fmt.Errorf("the data file is locked by the running tollgate (pid %d), which did not answer at %s: %v", ri.PID, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode == http.StatusBadRequest {
		var e struct{ Error string }
		json.Unmarshal(body, &e)
		return nil, "", fmt.Errorf("refused: %s", e.Error)
	}
	return body, fmt.Sprintf("running daemon (pid %d, %s)", ri.PID, addr), nil
}

func printResult(w io.Writer, r *checkResult, via string) {
	or := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	fmt.Fprintf(w, "verdict:  %s\n", r.Verdict)
	fmt.Fprintf(w, "reason:   %s (code %d, SIP %d %s)\n", r.Reason, r.Code, r.SIPCode, r.SIPReason)
	fmt.Fprintf(w, "message:  %s\n", r.Message)
	fmt.Fprintf(w, "country:  %s\n", or(r.Country))
	fmt.Fprintf(w, "e164:     %s\n", or(r.E164))
	fmt.Fprintf(w, "account:  %s\n", or(r.Account))
	fmt.Fprintf(w, "rule:     %s\n", r.Rule)
	caps := func(n int) string {
		if n == 0 {
			return "none"
		}
		return fmt.Sprint(n)
	}
	fmt.Fprintf(w, "caps:     max_channels %s, max_cps %s\n", caps(r.MaxChannels), caps(r.MaxCPS))
	if r.AccountMaxChannels != 0 || r.AccountMaxCPS != 0 {
		fmt.Fprintf(w, "account:  account_max_channels %s, account_max_cps %s (the account and its subaccounts together)\n",
			caps(r.AccountMaxChannels), caps(r.AccountMaxCPS))
	}
	if r.DecidedBy != "" {
		fmt.Fprintf(w, "rn:       %s (decided by %s)\n", or(r.RN), r.DecidedBy)
	}
	fmt.Fprintf(w, "answered: from the %s\n", via)
}
