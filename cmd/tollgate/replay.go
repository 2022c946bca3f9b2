package main

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/recent"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
	"github.com/tollgate/tollgate/whatif"
)

// replayColumns are the fields a CDR row gives, by default under these
// header names; -columns maps them to the file's own.
var replayColumns = []string{"to", "account", "subaccount", "src_ip", "time"}

// runReplay is `tollgate replay FILE`: a call-detail export decided
// offline against the policy in the data dir (read-only) and, with
// -change, against that policy plus a proposed change.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tollgate replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dataDir, hrFile, rdFile, change, columns, outCSV, outJSON string
	var all, progress bool
	fs.StringVar(&dataDir, "data-dir", "./data", "the daemon's data dir (opened read-only; the daemon must not hold it)")
	fs.StringVar(&hrFile, "high-risk-file", "", "the daemon's -high-risk-file, if it uses one")
	fs.StringVar(&rdFile, "rate-deck-file", "", "the daemon's -rate-deck-file, if it uses one")
	fs.StringVar(&change, "change", "", "a proposed change ({\"edits\":[...]}, as POST /v1/what-if takes) to decide against beside the policy in force")
	fs.StringVar(&columns, "columns", "", "header names of the fields, when the file's differ: to=CLD,account=i_account,subaccount=...,src_ip=...,time=connect_time")
	fs.StringVar(&outCSV, "out", "", "write the changed calls (every call with -all) to this CSV file")
	fs.StringVar(&outJSON, "json", "", "write the report, with the changed calls as examples, to this JSON file")
	fs.BoolVar(&all, "all", false, "-out lists every call, not only the changed ones")
	fs.BoolVar(&progress, "progress", true, "show a progress bar when stderr is a terminal")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate replay [flags] FILE.csv\n\n"+
			"Decides every call of a CSV call-detail export (a header row; columns to, account, and optionally\n"+
			"subaccount, src_ip, time) against the policy in the data dir and, with -change, against it plus a\n"+
			"proposed change; prints a summary and writes the changed calls. Rows are replayed in time order,\n"+
			"velocity rules with counters of their own. Exit status: 0 done, 2 usage error, 4 other error.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]*string{"data-dir": &dataDir, "high-risk-file": &hrFile, "rate-deck-file": &rdFile} {
		if v, ok := os.LookupEnv(envName(name)); ok && !set[name] {
			*p = v
		}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	colMap, err := parseColumns(columns)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate replay: -columns:", err)
		return exitUsage
	}
	var edits []service.Edit
	if change != "" {
		if edits, err = readChange(change); err != nil {
			fmt.Fprintln(stderr, "tollgate replay: -change:", err)
			return exitUsage
		}
	}
	if err := replay(fs.Arg(0), dataDir, hrFile, rdFile, edits, colMap, outCSV, outJSON, all, progress && isTTY(stderr), stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "tollgate replay:", err)
		return exitError
	}
	return 0
}

func parseColumns(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, c := range replayColumns {
		m[c] = c
	}
	if s == "" {
		return m, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("%q: want field=header", kv)
		}
		if _, known := m[k]; !known {
			return nil, fmt.Errorf("%q: unknown field %q (fields: %s)", kv, k, strings.Join(replayColumns, ", "))
		}
		m[k] = v
	}
	return m, nil
}

// readChange reads a change file: {"edits":[...]}, as POST /v1/what-if.
func readChange(path string) ([]service.Edit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var req struct {
		Edits []service.Edit `json:"edits"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%s: %v (want {\"edits\":[{\"method\":...,\"path\":...,\"body\":...}]})", path, err)
	}
	if len(req.Edits) == 0 {
		return nil, fmt.Errorf("%s: no edits", path)
	}
	return req.Edits, nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// cdrRow is one call of the file: its line and fields.
type cdrRow struct {
	line int
	call recent.Call
}

func readCDR(path string, cols map[string]string) ([]cdrRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	hdr, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header row: %v", path, err)
	}
	idx := map[string]int{}
	for field, name := range cols {
		idx[field] = -1
		for i, h := range hdr {
			if strings.EqualFold(strings.TrimSpace(h), name) {
				idx[field] = i
			}
		}
	}
	for _, req := range []string{"to", "account"} {
		if idx[req] < 0 {
			return nil, fmt.Errorf("%s: no column %q for the field %s in the header %q (map it with -columns %s=NAME)", path, cols[req], req, strings.Join(hdr, ","), req)
		}
	}
	get := func(rec []string, field string) string {
		if i := idx[field]; i >= 0 && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	now := time.Now()
	var rows []cdrRow
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		c := recent.Call{To: get(rec, "to"), Account: get(rec, "account"), Subaccount: get(rec, "subaccount"), SrcIP: get(rec, "src_ip"), Time: now}
		if ts := get(rec, "time"); ts != "" {
			t, err := parseCDRTime(ts)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: column %s: %v", path, line, cols["time"], err)
			}
			c.Time = t
		}
		rows = append(rows, cdrRow{line, c})
	}
	slices.SortStableFunc(rows, func(a, b cdrRow) int { return a.call.Time.Compare(b.call.Time) })
	return rows, nil
}

func parseCDRTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
		return time.Unix(0, int64(f*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, \"YYYY-MM-DD hh:mm:ss\" (UTC) or unix seconds", s)
}

func replay(path, dataDir, hrFile, rdFile string, edits []service.Edit, cols map[string]string, outCSV, outJSON string,
	all, progress bool, stdout, stderr io.Writer) error {
	start := time.Now()
	st, err := store.Open(dataDir, store.Options{ReadOnly: true, Timeout: 300 * time.Millisecond})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: a running tollgate holds %s; replay a copy of the data dir taken while it was stopped, or use POST /v1/what-if", err, dataDir)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	plan := numplan.Default()
	vel := velocity.New(velocity.Options{})
	m := matcher.New(plan, matcher.Options{Velocity: vel})
	svc := service.New(m, plan, st, service.Options{HighRiskFile: hrFile, RateDeckFile: rdFile, Velocity: vel})
	if err := svc.Load(); err != nil {
		return err
	}
	var base whatif.Side
	var next *whatif.Side
	if edits != nil {
		p, err := svc.Propose(edits)
		if err != nil {
			return fmt.Errorf("the change: %w", err)
		}
		base, next = whatif.Side{Snap: p.BaseSnap, Set: p.Base}, &whatif.Side{Snap: p.NextSnap, Set: p.Next}
	} else {
		set, snap, err := svc.Current()
		if err != nil {
			return err
		}
		base = whatif.Side{Snap: snap, Set: set}
	}
	rows, err := readCDR(path, cols)
	if err != nil {
		return err
	}
	rp, err := whatif.New(m, base, next, whatif.Options{Examples: 1000, Unrecorded: true})
	if err != nil {
		return err
	}
	var w *csv.Writer
	if outCSV != "" {
		f, err := os.Create(outCSV)
		if err != nil {
			return err
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 1<<20)
		defer bw.Flush()
		w = csv.NewWriter(bw)
		defer w.Flush()
		w.Write([]string{"line", "time", "account", "subaccount", "to", "src_ip", "country", "verdict", "reason", "proposed_verdict", "proposed_reason", "changed"})
	}
	step := max(len(rows)/100, 1)
	for i := range rows {
		c := &rows[i].call
		v := rp.Add(c)
		if w != nil && v != nil && (all || v.Changed) {
			country := v.Next.Country
			if country == "" {
				country = v.Base.Country
			}
			w.Write([]string{strconv.Itoa(rows[i].line), c.Time.UTC().Format(time.RFC3339Nano), c.Account, c.Subaccount, c.To, c.SrcIP, country,
				v.Base.Action.String(), v.Base.Reason.String(), v.Next.Action.String(), v.Next.Reason.String(), strconv.FormatBool(v.Changed)})
		}
		if progress && (i%step == 0 || i == len(rows)-1) {
			bar(stderr, i+1, len(rows))
		}
	}
	if progress {
		fmt.Fprintln(stderr)
	}
	if w != nil {
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	}
	rep := rp.Report()
	rep.TookMS = time.Since(start).Milliseconds()
	if outJSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(outJSON, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	printReport(stdout, rep, next != nil)
	return nil
}

func bar(w io.Writer, done, total int) {
	const width = 40
	n := done * width / max(total, 1)
	fmt.Fprintf(w, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
}

func printReport(w io.Writer, rep *whatif.Report, proposed bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "calls\t%d\n", rep.Calls)
	fmt.Fprintf(tw, "replayed\t%d\n", rep.Replayed)
	fmt.Fprintf(tw, "allow / reject / screen\t%d / %d / %d\n", rep.Verdicts["allow"], rep.Verdicts["reject"], rep.Verdicts["screen"])
	if proposed {
		fmt.Fprintf(tw, "proposed: allow / reject / screen\t%d / %d / %d\n", rep.ProposedVerdicts["allow"], rep.ProposedVerdicts["reject"], rep.ProposedVerdicts["screen"])
		fmt.Fprintf(tw, "changed by the proposal\t%d\n", rep.Changed)
		fmt.Fprintf(tw, "accounts with a change\t%d\n", rep.Accounts)
		fmt.Fprintf(tw, "countries with a change\t%d\n", rep.Countries)
	}
	fmt.Fprintf(tw, "took\t%v\n", time.Duration(rep.TookMS)*time.Millisecond)
	tw.Flush()
	if !proposed || rep.Changed == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "from\tto\tcalls")
	for _, t := range rep.Transitions {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", t.From, t.To, t.Calls)
	}
	tw.Flush()
	for _, l := range []struct {
		name string
		c    []whatif.Count
	}{{"country", rep.ByCountry}, {"account", rep.ByAccount}, {"reason", rep.ByReason}} {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tcalls\n", l.name)
		for i, c := range l.c {
			if i == 10 {
				fmt.Fprintf(tw, "(%d more)\t\n", len(l.c)-10)
				break
			}
			fmt.Fprintf(tw, "%s\t%d\n", cmp.Or(c.Key, "(none)"), c.Calls)
		}
		tw.Flush()
	}
}
