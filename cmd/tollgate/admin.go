package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/policy"
)

// adminCmd is one `tollgate admin` command: its words, its arguments, what
// it does, and how.
type adminCmd struct {
	words, args, summary string
	flags                func(fs *flag.FlagSet) // its own flags, beside the common ones
	need                 []string               // names of its positional arguments, for "missing NAME"
	run                  func(c *adminClient, pos []string) error
	api                  string // the admin route it calls, a row of handler.AdminRoutes
}

// adminClient is what every admin command shares: where the daemon is, the
// token, the output and the common flags' values.
type adminClient struct {
	addr, token string
	asJSON      bool
	out, errw   io.Writer
	http        *http.Client
	f           map[string]*string
	b           map[string]*bool
}

var adminCmds []adminCmd

func init() {
	str := func(name, def, usage string) func(*flag.FlagSet) {
		return func(fs *flag.FlagSet) { fs.String(name, def, usage) }
	}
	both := func(fns ...func(*flag.FlagSet)) func(*flag.FlagSet) {
		return func(fs *flag.FlagSet) {
			for _, f := range fns {
				f(fs)
			}
		}
	}
	boolf := func(name, usage string) func(*flag.FlagSet) {
		return func(fs *flag.FlagSet) { fs.Bool(name, false, usage) }
	}
	adminCmds = []adminCmd{
		{"accounts list", "[-tag T] [-limit N]", "list accounts (all of them, a page at a time)",
			both(str("tag", "", "only accounts with this tag"), str("limit", "0", "at most this many (0: all)")), nil, adminAccountsList, "GET /v1/accounts"},
		{"accounts get", "NAME", "print one account", nil, []string{"NAME (the account)"}, adminAccountsGet, "GET /v1/accounts/{account}"},
		{"accounts set", "NAME POLICY", "create or replace an account (PUT: what POLICY leaves out is gone); POLICY is JSON, @FILE or - (stdin)",
			nil, []string{"NAME (the account)", "POLICY (JSON, @FILE or -)"}, adminAccountsSet, "PUT /v1/accounts/{account}"},
		{"accounts patch", "NAME PATCH [-if-match REV]", "change some fields of an account (a JSON merge patch: null removes a field)",
			str("if-match", "", "apply only if the account's revision (its ETag) is still this"), []string{"NAME (the account)", "PATCH (JSON, @FILE or -)"}, adminAccountsPatch, "PATCH /v1/accounts/{account}"},
		{"accounts delete", "NAME", "delete an account", nil, []string{"NAME (the account)"}, adminAccountsDelete, "DELETE /v1/accounts/{account}"},
		{"bulk", "(-tag T | -all | -accounts A,B | -accounts-file F) [-dry-run] PATCH", "apply one merge patch to many accounts, all or nothing, in one audited change",
			both(str("tag", "", "every account with this tag"), boolf("all", "every account"), str("accounts", "", "comma-separated account names"),
				str("accounts-file", "", "file of account names, one a line"), boolf("dry-run", "validate and report; change nothing")),
			[]string{"PATCH (JSON, @FILE or -)"}, adminBulk, "PATCH /v1/accounts"},
		{"lock", "ACCOUNT [-sub S] [-reason R]", "lock an account's (or subaccount's) international calls",
			both(str("sub", "", "the subaccount"), str("reason", "", "why (audited)")), []string{"ACCOUNT"}, adminLock, "PUT /v1/accounts/{account}/lock"},
		{"unlock", "ACCOUNT [-sub S] [-reason R] [-until T]", "lift a lock",
			both(str("sub", "", "the subaccount"), str("reason", "", "why (audited)"), str("until", "", "RFC 3339 time or \"midnight\": when the unlock lapses")),
			[]string{"ACCOUNT"}, adminUnlock, "DELETE /v1/accounts/{account}/lock"},
		{"locks", "", "list the locks in force", nil, nil, adminLocks, "GET /v1/locks"},
		{"alerts", "[-limit N]", "recent alerts, newest first", str("limit", "20", "how many"), nil, adminAlerts, "GET /v1/alerts"},
		{"audit", "[-limit N] [-before ID]", "the audit log, newest first",
			both(str("limit", "20", "how many"), str("before", "", "entries before this id")), nil, adminAudit, "GET /v1/audit"},
		{"stats", "[-window 1h|24h]", "what is being decided and blocked", str("window", "1h", "1h or 24h"), nil, adminStats, "GET /v1/stats"},
		{"high-risk export", "[-o FILE]", "write the high-risk list in force (CSV)", str("o", "", "file to write (default: standard output)"), nil, adminHighRiskExport, "GET /v1/high-risk"},
		{"high-risk import", "FILE", "replace the high-risk list with FILE (CSV; - for stdin)", nil, []string{"FILE (a high-risk CSV, or -)"}, adminHighRiskImport, "PUT /v1/high-risk"},
	}
}

func adminUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: tollgate admin COMMAND [ARGS] [flags]\n\ncommands:\n")
	for _, c := range adminCmds {
		fmt.Fprintf(w, "  %s %s\n      %s (%s)\n", c.words, c.args, c.summary, c.api)
	}
	fmt.Fprintf(w, `
Flags go before or after the arguments. Every command takes:
  -addr HOST:PORT   the admin listener (default: TOLLGATE_ADMIN_ADDR, else the running daemon's
                    from DATA_DIR/tollgate.run.json, else 127.0.0.1:8081)
  -data-dir D       the daemon's data dir (default TOLLGATE_DATA_DIR or ./data)
  -json             print the API's JSON instead of a table
The token is TOLLGATE_ADMIN_TOKEN (with a name:token list, the first), else the file
TOLLGATE_ADMIN_TOKEN_FILE, else DATA_DIR/admin.token (written by the daemon's first start).
Exit status: 0 done, 1 refused by the daemon (the error says why), 2 usage error, 4 other error.
`)
}

// findAdminCmd matches the longest command words at the start of args.
func findAdminCmd(args []string) (*adminCmd, []string) {
	var best *adminCmd
	n := 0
	for i := range adminCmds {
		w := strings.Fields(adminCmds[i].words)
		if len(w) <= len(args) && len(w) > n && strings.Join(args[:len(w)], " ") == adminCmds[i].words {
			best, n = &adminCmds[i], len(w)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[n:]
}

func runAdmin(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprintln(stderr, "tollgate admin: missing COMMAND (it comes first; flags after it)")
		adminUsage(stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		adminUsage(stdout)
		return 0
	}
	cmd, rest := findAdminCmd(args)
	if cmd == nil {
		var group []string
		for _, c := range adminCmds {
			if w := strings.Fields(c.words); len(w) > 1 && w[0] == args[0] {
				group = append(group, w[1])
			}
		}
		if len(group) > 0 {
			fmt.Fprintf(stderr, "tollgate admin %s: missing or unknown subcommand; one of: %s\n", args[0], strings.Join(group, ", "))
		} else {
			fmt.Fprintf(stderr, "tollgate admin: unknown command %q (see tollgate admin -h)\n", args[0])
		}
		return exitUsage
	}
	name := "tollgate admin " + cmd.words
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "admin listener HOST:PORT")
	dataDir := fs.String("data-dir", "./data", "the daemon's data dir")
	asJSON := fs.Bool("json", false, "print JSON")
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s\n\n%s.\n\n", name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	if len(pos) < len(cmd.need) {
		fmt.Fprintf(stderr, "%s: missing %s\nusage: %s %s\n", name, cmd.need[len(pos)], name, cmd.args)
		return exitUsage
	}
	if len(pos) > len(cmd.need) {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\nusage: %s %s\n", name, pos[len(cmd.need)], name, cmd.args)
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if v, ok := os.LookupEnv("TOLLGATE_DATA_DIR"); ok && !set["data-dir"] {
		*dataDir = v
	}
	c := &adminClient{asJSON: *asJSON, out: stdout, errw: stderr, http: &http.Client{Timeout: 10 * time.Minute},
		f: map[string]*string{}, b: map[string]*bool{}}
	fs.VisitAll(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case string:
				s := v
				c.f[f.Name] = &s
			case bool:
				b := v
				c.b[f.Name] = &b
			}
		}
	})
	if c.addr, err = adminAddr(*addr, *dataDir); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	if c.token, err = adminToken(*dataDir); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	if err := cmd.run(c, pos); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		var ae *apiError
		if errors.As(err, &ae) {
			return 1
		}
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitError
	}
	return 0
}

// usageError is a command line the command cannot act on.
type usageError string

func (e usageError) Error() string { return string(e) }

// apiError is the daemon's refusal: its status and its error body.
type apiError struct {
	status int
	msg    string
	field  string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.msg)
	if e.field != "" {
		s += " (field " + e.field + ")"
	}
	return s
}

// adminAddr: -addr, TOLLGATE_ADMIN_ADDR, the run file, the default.
func adminAddr(flagAddr, dataDir string) (string, error) {
	a := flagAddr
	if a == "" {
		a = os.Getenv("TOLLGATE_ADMIN_ADDR")
	}
	if a == "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, runFile)); err == nil {
			var ri runInfo
			if json.Unmarshal(b, &ri) == nil {
				a = ri.AdminAddr
			}
		}
	}
	if a == "" {
		a = "127.0.0.1:8081"
	}
	if strings.Contains(a, "://") {
		return "", fmt.Errorf("-addr %q: give HOST:PORT, without a scheme", a)
	}
	return a, nil
}

// adminToken: TOLLGATE_ADMIN_TOKEN, TOLLGATE_ADMIN_TOKEN_FILE, then the
// data dir's admin.token; the first token of a list.
func adminToken(dataDir string) (string, error) {
	if v := os.Getenv("TOLLGATE_ADMIN_TOKEN"); v != "" {
		toks, err := flagTokens("TOLLGATE_ADMIN_TOKEN", v, "admin")
		if err != nil {
			return "", err
		}
		return toks[0].Secret, nil
	}
	path := os.Getenv("TOLLGATE_ADMIN_TOKEN_FILE")
	if path == "" {
		path = filepath.Join(dataDir, tokenFile)
	}
	toks, err := fileTokens(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("no admin token: set TOLLGATE_ADMIN_TOKEN, or point -data-dir at the daemon's data dir (%s does not exist)", path)
		}
		return "", err
	}
	if len(toks) == 0 {
		return "", fmt.Errorf("no admin token in %s", path)
	}
	return toks[0].Secret, nil
}

// do sends one request and returns the body of a 2xx answer; anything else
// is an *apiError with the daemon's message.
func (c *adminClient) do(method, path string, body io.Reader, hdr map[string]string) ([]byte, http.Header, error) {
	req, err := http.NewRequest(method, "http://"+c.addr+path, body)
	if err != nil {
		return nil, nil, err
	}
	if s, ok := body.(*sizedReader); ok {
		req.ContentLength = s.n
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %v (is the daemon running? -addr or TOLLGATE_ADMIN_ADDR)", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, nil, err
	}
	if res.StatusCode/100 != 2 {
		var e struct{ Error, Field string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, nil, &apiError{status: res.StatusCode, msg: e.Error, field: e.Field}
	}
	return b, res.Header, nil
}

// readArg reads a JSON argument: inline, @FILE, or - for standard input.
func readArg(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return io.ReadAll(os.Stdin)
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	}
	return []byte(arg), nil
}

// printJSON prints a JSON answer indented, for -json and for documents.
func (c *adminClient) printJSON(b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		_, err = c.out.Write(b)
		return err
	}
	out.WriteByte('\n')
	_, err := c.out.Write(out.Bytes())
	return err
}

func (c *adminClient) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func accountPath(name string) (string, error) {
	if err := policy.ValidName(name); err != nil {
		return "", usageError(fmt.Sprintf("account %q: %v", name, err))
	}
	return "/v1/accounts/" + url.PathEscape(name), nil
}

type accountRow struct {
	Name string `json:"name"`
	policy.Account
}

func adminAccountsList(c *adminClient, _ []string) error {
	limit, err := strconv.Atoi(*c.f["limit"])
	if err != nil || limit < 0 {
		return usageError(fmt.Sprintf("-limit %q: want a whole number >= 0", *c.f["limit"]))
	}
	var all []json.RawMessage
	var rows []accountRow
	after, total := "", 0
	prog := newProgress(c.errw, "accounts")
	defer prog.done()
	for {
		page := 1000
		if limit > 0 && limit-len(rows) < page {
			page = limit - len(rows)
		}
		q := url.Values{"limit": {strconv.Itoa(page)}, "after": {after}}
		if t := *c.f["tag"]; t != "" {
			q.Set("tag", t)
		}
		b, _, err := c.do("GET", "/v1/accounts?"+q.Encode(), nil, nil)
		if err != nil {
			return err
		}
		var res struct {
			Accounts []json.RawMessage `json:"accounts"`
			Total    int               `json:"total"`
			Next     string            `json:"next"`
		}
		if err := json.Unmarshal(b, &res); err != nil {
			return err
		}
		total = res.Total
		for _, raw := range res.Accounts {
			var r accountRow
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			rows = append(rows, r)
			all = append(all, raw)
		}
		prog.set(int64(len(rows)), int64(total))
		if res.Next == "" || (limit > 0 && len(rows) >= limit) {
			break
		}
		after = res.Next
	}
	prog.done()
	if c.asJSON {
		b, _ := json.Marshal(struct {
			Accounts []json.RawMessage `json:"accounts"`
			Total    int               `json:"total"`
		}{all, total})
		return c.printJSON(b)
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{r.Name, deref(r.HomeCountry), countriesText(r.Countries), capText(r.MaxChannels), capText(r.MaxCPS),
			strconv.Itoa(len(r.Subaccounts)), strings.Join(r.Tags, ",")}
	}
	c.table("ACCOUNT\tHOME\tCOUNTRIES\tCHANNELS\tCPS\tSUBS\tTAGS", out)
	fmt.Fprintf(c.out, "%d of %d accounts\n", len(rows), total)
	return nil
}

func deref(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

func capText(p *int) string {
	if p == nil || *p == 0 {
		return "-"
	}
	return strconv.Itoa(*p)
}

func countriesText(r *policy.CountryRule) string {
	if r == nil {
		return "(default)"
	}
	if len(r.Except) == 0 {
		return string(r.Default) + " all"
	}
	return string(r.Default) + " all except " + strings.Join(r.Except, ",")
}

func adminAccountsGet(c *adminClient, pos []string) error {
	p, err := accountPath(pos[0])
	if err != nil {
		return err
	}
	b, h, err := c.do("GET", p, nil, nil)
	if err != nil {
		return err
	}
	if !c.asJSON {
		fmt.Fprintf(c.errw, "revision %s\n", h.Get("ETag"))
	}
	return c.printJSON(b)
}

func adminAccountsSet(c *adminClient, pos []string) error {
	return c.sendDoc("PUT", pos[0], pos[1], nil)
}

func adminAccountsPatch(c *adminClient, pos []string) error {
	hdr := map[string]string{"Content-Type": "application/merge-patch+json"}
	if m := *c.f["if-match"]; m != "" {
		hdr["If-Match"] = m
	}
	return c.sendDoc("PATCH", pos[0], pos[1], hdr)
}

func (c *adminClient) sendDoc(method, name, arg string, hdr map[string]string) error {
	p, err := accountPath(name)
	if err != nil {
		return err
	}
	body, err := readArg(arg)
	if err != nil {
		return err
	}
	b, _, err := c.do(method, p, bytes.NewReader(body), hdr)
	if err != nil {
		return err
	}
	return c.printJSON(b)
}

func adminAccountsDelete(c *adminClient, pos []string) error {
	p, err := accountPath(pos[0])
	if err != nil {
		return err
	}
	b, _, err := c.do("DELETE", p, nil, nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(b)
	}
	fmt.Fprintf(c.out, "deleted account %s\n", pos[0])
	return nil
}

func adminBulk(c *adminClient, pos []string) error {
	patch, err := readArg(pos[0])
	if err != nil {
		return err
	}
	var sel struct {
		Accounts []string `json:"accounts,omitempty"`
		Tag      string   `json:"tag,omitempty"`
		All      bool     `json:"all,omitempty"`
	}
	n := 0
	if t := *c.f["tag"]; t != "" {
		sel.Tag, n = t, n+1
	}
	if *c.b["all"] {
		sel.All, n = true, n+1
	}
	if l := *c.f["accounts"]; l != "" {
		sel.Accounts, n = strings.Split(l, ","), n+1
	}
	if f := *c.f["accounts-file"]; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				sel.Accounts = append(sel.Accounts, l)
			}
		}
		n++
	}
	if n != 1 {
		return usageError("name the accounts with exactly one of -tag, -all, -accounts or -accounts-file")
	}
	body, err := json.Marshal(struct {
		Select any             `json:"select"`
		Patch  json.RawMessage `json:"patch"`
		DryRun bool            `json:"dry_run,omitempty"`
	}{sel, json.RawMessage(bytes.TrimSpace(patch)), *c.b["dry-run"]})
	if err != nil {
		return usageError("PATCH is not JSON: " + err.Error())
	}
	prog := newProgress(c.errw, "bulk change")
	b, _, err := c.do("PATCH", "/v1/accounts", bytes.NewReader(body), nil)
	prog.done()
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(b)
	}
	var res struct {
		Matched   int      `json:"matched"`
		Changed   []string `json:"changed"`
		Unchanged int      `json:"unchanged"`
		DryRun    bool     `json:"dry_run"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	verb := "changed"
	if res.DryRun {
		verb = "would change (dry run, nothing written)"
	}
	fmt.Fprintf(c.out, "matched %d accounts; %s %d; %d already as the patch says\n", res.Matched, verb, len(res.Changed), res.Unchanged)
	return nil
}

func lockPath(c *adminClient, account string) (string, error) {
	p, err := accountPath(account)
	if err != nil {
		return "", err
	}
	if s := *c.f["sub"]; s != "" {
		if err := policy.ValidName(s); err != nil {
			return "", usageError(fmt.Sprintf("-sub %q: %v", s, err))
		}
		p += "/subaccounts/" + url.PathEscape(s)
	}
	return p + "/lock", nil
}

func adminLock(c *adminClient, pos []string) error {
	p, err := lockPath(c, pos[0])
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"reason": *c.f["reason"]})
	b, _, err := c.do("PUT", p, bytes.NewReader(body), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(b)
	}
	fmt.Fprintf(c.out, "locked %s\n", strings.TrimPrefix(strings.TrimSuffix(p, "/lock"), "/v1/accounts/"))
	return nil
}

func adminUnlock(c *adminClient, pos []string) error {
	p, err := lockPath(c, pos[0])
	if err != nil {
		return err
	}
	m := map[string]string{"reason": *c.f["reason"]}
	if u := *c.f["until"]; u != "" {
		m["until"] = u
	}
	body, _ := json.Marshal(m)
	b, _, err := c.do("DELETE", p, bytes.NewReader(body), nil)
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(b)
	}
	fmt.Fprintf(c.out, "unlocked %s\n", strings.TrimPrefix(strings.TrimSuffix(p, "/lock"), "/v1/accounts/"))
	return nil
}

func adminLocks(c *adminClient, _ []string) error {
	b, _, err := c.do("GET", "/v1/locks", nil, nil)
	if err != nil || c.asJSON {
		if err == nil {
			err = c.printJSON(b)
		}
		return err
	}
	var res struct {
		Locks []struct {
			Account, Subaccount, By, Reason, Kind string
			Time                                  time.Time
			Automatic                             bool
		} `json:"locks"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	rows := make([][]string, len(res.Locks))
	for i, l := range res.Locks {
		how := "manual"
		if l.Automatic {
			how = "automatic"
		}
		rows[i] = []string{l.Account, dash(l.Subaccount), l.Time.Format(time.RFC3339), how, dash(l.By), dash(l.Reason)}
	}
	c.table("ACCOUNT\tSUBACCOUNT\tSINCE\tHOW\tBY\tREASON", rows)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func numArg(c *adminClient, name string) (string, error) {
	v := *c.f[name]
	if v == "" {
		return "", nil
	}
	if n, err := strconv.Atoi(v); err != nil || n < 0 {
		return "", usageError(fmt.Sprintf("-%s %q: want a whole number >= 0", name, v))
	}
	return v, nil
}

func adminAlerts(c *adminClient, _ []string) error {
	limit, err := numArg(c, "limit")
	if err != nil {
		return err
	}
	b, _, err := c.do("GET", "/v1/alerts?limit="+limit, nil, nil)
	if err != nil || c.asJSON {
		if err == nil {
			err = c.printJSON(b)
		}
		return err
	}
	var res struct {
		Alerts []struct {
			Time                                   time.Time
			Level, Kind, Account, Subaccount, Rule string
			Value, Threshold                       float64
			Unit, Action                           string
		} `json:"alerts"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	rows := make([][]string, len(res.Alerts))
	for i, a := range res.Alerts {
		what := dash(a.Rule)
		if a.Threshold != 0 {
			what += fmt.Sprintf(" %g/%g %s", a.Value, a.Threshold, a.Unit)
		}
		rows[i] = []string{a.Time.Format(time.RFC3339), a.Level, a.Kind, a.Account + subText(a.Subaccount), what, dash(a.Action)}
	}
	c.table("TIME\tLEVEL\tKIND\tACCOUNT\tRULE\tACTION", rows)
	return nil
}

func subText(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

func adminAudit(c *adminClient, _ []string) error {
	limit, err := numArg(c, "limit")
	if err != nil {
		return err
	}
	before, err := numArg(c, "before")
	if err != nil {
		return err
	}
	q := url.Values{"limit": {limit}}
	if before != "" {
		q.Set("before", before)
	}
	b, _, err := c.do("GET", "/v1/audit?"+q.Encode(), nil, nil)
	if err != nil || c.asJSON {
		if err == nil {
			err = c.printJSON(b)
		}
		return err
	}
	var res struct {
		Entries []struct {
			ID                          uint64
			Time                        time.Time
			Who, Remote, Action, Object string
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	rows := make([][]string, len(res.Entries))
	for i, e := range res.Entries {
		rows[i] = []string{strconv.FormatUint(e.ID, 10), e.Time.Format(time.RFC3339), e.Who, dash(e.Remote), e.Action, e.Object}
	}
	c.table("ID\tTIME\tWHO\tFROM\tACTION\tOBJECT", rows)
	return nil
}

func adminStats(c *adminClient, _ []string) error {
	w := *c.f["window"]
	b, _, err := c.do("GET", "/v1/stats?window="+url.QueryEscape(w), nil, nil)
	if err != nil || c.asJSON {
		if err == nil {
			err = c.printJSON(b)
		}
		return err
	}
	var s statsView
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "last %s (since %s): %d decisions\n\n", s.Window, s.Since.Format(time.RFC3339), s.Total)
	kv := func(title string, m map[string]uint64) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
		rows := make([][]string, len(keys))
		for i, k := range keys {
			rows[i] = []string{k, strconv.FormatUint(m[k], 10)}
		}
		c.table(title+"\tDECISIONS", rows)
		fmt.Fprintln(c.out)
	}
	kv("VERDICT", s.Verdicts)
	kv("REASON", s.Reasons)
	top := func(title string, l []statsTop) {
		rows := make([][]string, len(l))
		for i, t := range l {
			rows[i] = []string{t.Key, strconv.FormatUint(t.Count, 10)}
		}
		c.table(title+"\tREJECTED", rows)
		fmt.Fprintln(c.out)
	}
	top("COUNTRY", s.TopCountries)
	top("PREFIX", s.TopPrefixes)
	top("ACCOUNT", s.TopAccounts)
	return nil
}

// statsView is GET /v1/stats as the CLI reads it.
type statsView struct {
	Window       string            `json:"window"`
	Since        time.Time         `json:"since"`
	Total        uint64            `json:"total"`
	Verdicts     map[string]uint64 `json:"verdicts"`
	Reasons      map[string]uint64 `json:"reasons"`
	TopCountries []statsTop        `json:"top_rejected_countries"`
	TopPrefixes  []statsTop        `json:"top_rejected_prefixes"`
	TopAccounts  []statsTop        `json:"top_blocked_accounts"`
}

type statsTop struct {
	Key   string `json:"key"`
	Count uint64 `json:"count"`
}

func adminHighRiskExport(c *adminClient, _ []string) error {
	b, h, err := c.do("GET", "/v1/high-risk", nil, nil)
	if err != nil {
		return err
	}
	if o := *c.f["o"]; o != "" {
		if err := os.WriteFile(o, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.errw, "wrote %s entries (version %s) to %s\n", h.Get("X-Tollgate-High-Risk-Entries"), h.Get("X-Tollgate-High-Risk-Version"), o)
		return nil
	}
	_, err = c.out.Write(b)
	return err
}

func adminHighRiskImport(c *adminClient, pos []string) error {
	var (
		r    io.Reader = os.Stdin
		size int64     = -1
	)
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		r = f
	}
	prog := newProgress(c.errw, "uploading")
	pr := &progressReader{r: r, p: prog, total: size}
	b, _, err := c.doSized("PUT", "/v1/high-risk", pr, size)
	prog.done()
	if err != nil {
		return err
	}
	if c.asJSON {
		return c.printJSON(b)
	}
	var res struct {
		HighRisk struct {
			Version string `json:"version"`
			Entries int    `json:"entries"`
		} `json:"high_risk"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "high-risk list replaced: %d entries, version %s\n", res.HighRisk.Entries, res.HighRisk.Version)
	return nil
}

// doSized is do with a known body length (so the daemon can refuse an
// oversized upload from its Content-Length before reading it).
func (c *adminClient) doSized(method, path string, body io.Reader, size int64) ([]byte, http.Header, error) {
	if size < 0 {
		return c.do(method, path, body, nil)
	}
	return c.do(method, path, &sizedReader{Reader: body, n: size}, nil)
}

// sizedReader tells net/http the body's length (it knows *bytes.Reader
// and friends, not a wrapper).
type sizedReader struct {
	io.Reader
	n int64
}

// progress draws a one-line progress bar (or, without a total, a count
// and the elapsed time) on stderr when stderr is a terminal; elsewhere it
// draws nothing, so scripts and logs get no control characters.
type progress struct {
	w       io.Writer
	what    string
	start   time.Time
	mu      sync.Mutex
	n, tot  int64
	stop    chan struct{}
	exited  chan struct{} // closed when the drawing goroutine has returned
	stopped sync.Once
	drawn   bool
}

// isTerminal reports whether w is a terminal; a variable so tests can
// draw the bar into a buffer.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(w io.Writer, what string) *progress {
	p := &progress{w: w, what: what, start: time.Now(), tot: -1, stop: make(chan struct{}), exited: make(chan struct{})}
	if !isTerminal(w) {
		p.stopped.Do(func() {})
		return p
	}
	go func() {
		defer close(p.exited)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

func (p *progress) set(n, total int64) {
	p.mu.Lock()
	p.n, p.tot = n, total
	p.mu.Unlock()
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.n += n
	p.mu.Unlock()
}

// draw writes the line: a 30-cell bar with the percentage when the total
// is known, the count and the elapsed seconds.
func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.start).Seconds()
	if p.tot > 0 {
		done := min(30, int(30*p.n/p.tot))
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %d/%d %.1fs", p.what, strings.Repeat("#", done), strings.Repeat(".", 30-done), 100*p.n/p.tot, p.n, p.tot, el)
	} else {
		fmt.Fprintf(p.w, "\r%s … %.1fs", p.what, el)
	}
	p.drawn = true
}

// done stops the bar and ends its line; calling it again does nothing.
func (p *progress) done() {
	p.stopped.Do(func() {
		close(p.stop)
		<-p.exited // no draw after this one
		p.draw()
		p.mu.Lock()
		if p.drawn {
			fmt.Fprintln(p.w)
		}
		p.mu.Unlock()
	})
}

// progressReader counts the bytes read through it into the bar.
type progressReader struct {
	r     io.Reader
	p     *progress
	total int64
	once  sync.Once
}

func (r *progressReader) Read(b []byte) (int, error) {
	r.once.Do(func() { r.p.set(0, r.total) })
	n, err := r.r.Read(b)
	r.p.add(int64(n))
	return n, err
}
