package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// maxImportLine bounds one line of an import file: an account with two full
// prefix lists (policy.MaxPrefixes each) and a few subaccounts fits easily.
const maxImportLine = 16 << 20

// maxImportErrors is how many bad lines `tollgate import` lists before it
// stops reading.
const maxImportErrors = 10

// importLine is one line of an import file.
type importLine struct {
	Account string          `json:"account"`
	Policy  json.RawMessage `json:"policy"`
}

// importedAccount is a validated line, with where it came from.
type importedAccount struct {
	name string
	line int
	acc  policy.Account
}

// runImport implements `tollgate import`: it loads many accounts in one store
// transaction with one audit entry, where the admin API would take one write
// (and one recompile) per account. Every line is validated before the data
// file is opened, so a file with any bad line changes nothing. It needs the
// data file to itself: while the daemon runs it refuses, since the daemon
// would not see the change.
func runImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tollgate import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dataDir, who string
	var dryRun bool
	fs.StringVar(&dataDir, "data-dir", "./data", "the daemon's data dir (created if it does not exist)")
	fs.StringVar(&who, "who", "import", "name recorded as the author in the audit log")
	fs.BoolVar(&dryRun, "dry-run", false, "validate and compile the file, write nothing")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tollgate import [-data-dir D] [-who NAME] [-dry-run] FILE.ndjson\n\n"+
			"Creates or replaces accounts from FILE (\"-\" for standard input), one JSON object per line:\n"+
			"  {\"account\":\"NAME\",\"policy\":{…the body of PUT /v1/accounts/NAME…}}\n"+
			"Every line is validated first; one bad line and nothing is written. The accounts are written\n"+
			"in one transaction with one audit entry. The daemon must not be running on the data dir.\n"+
			"TOLLGATE_DATA_DIR applies as for the daemon.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args) // flags before or after FILE
	if err != nil {
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if v, ok := os.LookupEnv(envName("data-dir")); ok && !set["data-dir"] {
		dataDir = v
	}
	switch {
	case len(pos) == 0:
		fmt.Fprintln(stderr, "tollgate import: missing FILE (the accounts, one JSON object a line; - for standard input)")
		return exitUsage
	case len(pos) > 1:
		fmt.Fprintf(stderr, "tollgate import: unexpected argument %q: one FILE only\n", pos[1])
		return exitUsage
	}
	if err := policy.ValidName(who); err != nil {
		fmt.Fprintf(stderr, "tollgate import: -who %q: %v\n", who, err)
		return exitUsage
	}
	name := pos[0]
	var in io.Reader = os.Stdin
	size := int64(-1)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "tollgate import:", err)
			return exitError
		}
		defer f.Close()
		in = f
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	} else {
		name = "stdin"
	}
	start := time.Now()
	h := sha256.New()
	prog := newProgress(stderr, "reading "+name) // drawn only on a terminal
	in = &progressReader{r: in, p: prog, total: size}
	accounts, err := parseImport(io.TeeReader(in, h), name)
	prog.done()
	if err != nil {
		fmt.Fprintln(stderr, "tollgate import: nothing was written:", err)
		return exitError
	}
	sum := "sha256:" + hex.EncodeToString(h.Sum(nil))
	res, err := importAccounts(dataDir, accounts, importSource{who: who, file: name, sum: sum}, dryRun)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate import: nothing was written:", err)
		return exitError
	}
	verb := "imported"
	if dryRun {
		verb = "dry run: would import"
	}
	fmt.Fprintf(stdout, "%s %d accounts (%d new, %d replaced) from %s (%s) into %s", verb, len(accounts), res.created, res.replaced, name, sum, res.path)
	if !dryRun {
		fmt.Fprintf(stdout, " in one transaction, audit entry %d", res.auditID)
	}
	fmt.Fprintf(stdout, "; %d accounts in all, %.1fs\n", res.total, time.Since(start).Seconds())
	return exitAllow
}

// importError is a bad line of an import file.
type importError struct {
	File string
	Line int
	Msg  string
}

func (e *importError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// parseImport reads and validates an import file: one object per line
// (blank lines are skipped), account names valid and unique, each policy
// decoded as strictly as the admin API decodes a PUT body and validated.
// It lists up to maxImportErrors bad lines; any bad line is an error.
func parseImport(r io.Reader, file string) ([]importedAccount, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var (
		out    []importedAccount
		errs   []error
		seen   = map[string]int{}
		lineNo int
	)
	for {
		b, err := readLine(br)
		if len(b) == 0 && err == io.EOF {
			break
		}
		lineNo++
		if err != nil && err != io.EOF {
			if errors.Is(err, errLineTooLong) {
				return nil, &importError{file, lineNo, fmt.Sprintf("line longer than %d bytes", maxImportLine)}
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		ia, perr := parseImportLine(b)
		if perr == nil {
			if first, dup := seen[ia.name]; dup {
				perr = fmt.Errorf("account %q is already on line %d", ia.name, first)
			}
		}
		if perr != nil {
			errs = append(errs, &importError{file, lineNo, perr.Error()})
			if len(errs) == maxImportErrors {
				errs = append(errs, fmt.Errorf("stopped reading at line %d after %d errors", lineNo, maxImportErrors))
				break
			}
			continue
		}
		ia.line = lineNo
		seen[ia.name] = lineNo
		out = append(out, ia)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no accounts in the file", file)
	}
	return out, nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its line ending; at the end of the
// input it returns the last line (possibly empty) with io.EOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxImportLine+2 {
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
		if len(buf) > maxImportLine {
			return nil, errLineTooLong
		}
		return buf, err
	}
}

// parseImportLine decodes and validates one line.
func parseImportLine(b []byte) (importedAccount, error) {
	var l importLine
	if err := strictJSON(b, &l); err != nil {
		return importedAccount{}, err
	}
	if l.Account == "" {
		return importedAccount{}, errors.New(`account: required (want {"account":"NAME","policy":{…}})`)
	}
	if err := policy.ValidName(l.Account); err != nil {
		return importedAccount{}, fmt.Errorf("account %q: bad name: %v", l.Account, err)
	}
	if len(bytes.TrimSpace(l.Policy)) == 0 || bytes.Equal(bytes.TrimSpace(l.Policy), []byte("null")) {
		return importedAccount{}, fmt.Errorf("account %q: policy: required (an object; {} for the defaults)", l.Account)
	}
	var a policy.Account
	if err := strictJSON(l.Policy, &a); err != nil {
		return importedAccount{}, fmt.Errorf("account %q: policy.%v", l.Account, err)
	}
	if err := a.CheckSize(); err != nil {
		return importedAccount{}, fmt.Errorf("account %q: policy.%v", l.Account, err)
	}
	if err := a.Validate(); err != nil {
		return importedAccount{}, fmt.Errorf("account %q: policy.%v", l.Account, err)
	}
	return importedAccount{name: l.Account, acc: a}, nil
}

// strictJSON decodes one JSON object with policy.DecodeStrict (no unknown,
// case-folded or duplicate keys, nothing after it); errors start with the
// field at fault.
func strictJSON(b []byte, v any) error {
	if err := policy.DecodeStrict(b, v); err != nil {
		var fe *policy.FieldError
		if errors.As(err, &fe) && fe.Field == "" {
			return fmt.Errorf("%s (one object per line)", fe.Msg)
		}
		return err
	}
	return nil
}

// importSource is what the audit entry says about where an import came from.
type importSource struct {
	who, file, sum string
}

type importResult struct {
	path                     string
	created, replaced, total int
	auditID                  uint64
}

// importAccounts merges accounts into the data file's set, compiles the
// result as the daemon will, and (unless dryRun) commits all of it with one
// audit entry. As with PUT /v1/accounts/{account}, an account given without
// "subaccounts" keeps the subaccounts it already has.
func importAccounts(dataDir string, accounts []importedAccount, src importSource, dryRun bool) (importResult, error) {
	res := importResult{path: filepath.Join(dataDir, store.FileName)}
	var st *store.Store
	// A dry run against a data dir that does not exist yet validates
	// against an empty set and creates nothing.
	if !dryRun || fileExists(res.path) {
		var err error
		st, err = store.Open(dataDir, store.Options{ReadOnly: dryRun, Timeout: time.Second, FreshOperator: store.FreshOperator()})
		if err != nil {
			if errors.Is(err, store.ErrLocked) {
				return res, fmt.Errorf("%w: stop the daemon first (an import into a running daemon's data file would not be in force until it restarts), or use the admin API", err)
			}
			return res, err
		}
		defer st.Close()
	}
	set := &policy.Set{Accounts: map[string]policy.Account{}}
	if st != nil {
		var err error
		if set, err = st.Load(); err != nil {
			return res, err
		}
	}
	ch := &store.Change{Accounts: make(map[string]*policy.Account, len(accounts))}
	before := map[string]policy.Account{}
	after := make(map[string]policy.Account, len(accounts))
	for i := range accounts {
		ia := &accounts[i]
		old, existed := set.Accounts[ia.name]
		if existed {
			before[ia.name] = old
			res.replaced++
			if ia.acc.Subaccounts == nil && len(old.Subaccounts) > 0 {
				ia.acc.Subaccounts = old.Subaccounts
			}
		} else {
			res.created++
		}
		set.Accounts[ia.name] = ia.acc
		ch.Accounts[ia.name] = &ia.acc
		after[ia.name] = ia.acc
	}
	res.total = len(set.Accounts)
	// Compile what the daemon will compile at its next start, so an import
	// can never leave a data file the daemon refuses. The high-risk list
	// does not depend on accounts and is left out to save the time.
	set.HighRisk = nil
	if _, err := matcher.Compile(set, numplan.Default()); err != nil {
		return res, err
	}
	if dryRun {
		return res, nil
	}
	ch.Audit = store.AuditEntry{
		Who:    src.who,
		Remote: "file:" + src.file + " " + src.sum,
		Action: "accounts.import",
		Object: "accounts",
		After:  mustMarshal(after),
	}
	if len(before) > 0 {
		ch.Audit.Before = mustMarshal(before)
	}
	id, err := st.Commit(ch)
	if err != nil {
		return res, fmt.Errorf("storage: %w", err)
	}
	res.auditID = id
	return res, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only policy types, which always marshal
	}
	return b
}
