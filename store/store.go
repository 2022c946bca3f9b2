// Package store keeps tollgate's durable state — accounts, operator settings,
// the operator's high-risk list and the audit log — in one bbolt file in the
// data directory. Every change is one bbolt transaction that fsyncs on commit,
// so a write the admin API acknowledged survives kill -9, and the change and
// its audit entry are never separated. The file carries a format marker: a
// foreign or damaged file is refused at start-up with an error that says so,
// never emptied or overwritten.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the data file's name inside the data directory.
const FileName = "tollgate.db"

// Format marker and version written into the meta bucket. The version goes up
// when the layout changes in a way an older binary would misread; an older
// binary then refuses the file instead of guessing. Version 2 seals every
// record (record.go); a version 1 file is sealed in place the first time a
// version 2 binary opens it for writing.
const (
	formatMarker  = "tollgate-store"
	FormatVersion = 2
)

// Files of the data directory besides the data file. MarkerFile is written
// when a data file is created and whenever one opens without it, so that a
// data dir that has held tollgate's state is recognisable after its data file
// is lost; tempSuffix marks files being written, never read.
const (
	MarkerFile = "tollgate.id"
	tempSuffix = ".tmp"
)

// StateFiles are the files whose presence says a data dir has held state:
// the marker, and the daemon's token and run files (cmd/tollgate). A data dir
// holding any of them and no data file refuses to start.
var StateFiles = []string{MarkerFile, "admin.token", "tollgate.run.json"}

var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketOperator = []byte("operator")
	bucketHighRisk = []byte("highrisk")
	bucketAudit    = []byte("audit")
	bucketLocks    = []byte("locks")
	bucketRates    = []byte("ratedeck")
	bucketOrigin   = []byte("origin")
	// bucketTemplates holds account templates by name (policy.Template).
	bucketTemplates = []byte("templates")

	keyFormat   = []byte("format")
	keyVersion  = []byte("version")
	keyCreated  = []byte("created")
	keySettings = []byte("settings")
	keyList     = []byte("list")
	keyHRMeta   = []byte("meta")

	allBuckets = [][]byte{bucketMeta, bucketAccounts, bucketOperator, bucketHighRisk, bucketAudit}
	// addedBuckets came after the first files were written: a file
	// without them is not damaged, it is older, and gets them (empty) the
	// first time it is opened for writing. Read-only, they read as empty.
	addedBuckets = append([][]byte{bucketLocks, bucketRates, bucketOrigin, bucketTemplates}, bucketState[:]...)
	// sealedBuckets are every bucket whose records are sealed and
	// digested (record.go): all but meta. A new bucket goes here.
	sealedBuckets = append([][]byte{bucketAccounts, bucketOperator, bucketHighRisk, bucketAudit, bucketLocks, bucketRates, bucketOrigin, bucketTemplates}, bucketState[:]...)
)

// ErrLocked means another process (normally the running daemon) holds the
// data file; bbolt allows one writer process, or readers only.
var ErrLocked = errors.New("the data file is locked by another process (is the tollgate daemon running on this data dir?)")

// FormatError says why an existing data file is not one this binary can use.
// It is returned by Open instead of touching the file, so that a mistyped
// -data-dir or a damaged disk never turns into an empty policy set.
type FormatError struct {
	Path   string
	Reason string
	Err    error
	// Hint, when set, replaces the default advice (move the file away).
	Hint string
}

// Error says which file, why it is refused, and what to do about it.
func (e *FormatError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "nothing was changed: move the file away or point -data-dir elsewhere"
	}
	s := fmt.Sprintf("%s: %s; refusing to use it (%s)", e.Path, e.Reason, hint)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes bbolt's own error, if there was one.
func (e *FormatError) Unwrap() error { return e.Err }

// Options tune Open.
type Options struct {
	// ReadOnly opens the file with a shared lock and never writes, for
	// `tollgate check` and tools; it fails if the file does not exist yet.
	ReadOnly bool
	// Timeout bounds the wait for the file lock (default 1 s); after it Open
	// returns ErrLocked instead of hanging behind a running daemon.
	Timeout time.Duration
	// SkipCheck skips bbolt's own consistency check done at open (the page
	// walk and the record checksums always run). The check costs
	// milliseconds for a realistic file.
	SkipCheck bool
	// Init creates a new, empty data file in a data dir that has held state
	// and lost its data file (tollgate -init-data-dir). Without it, a
	// missing or empty data file is created only in a fresh data dir (one
	// that does not exist or holds nothing), and refused elsewhere with a
	// *MissingError. An existing non-empty data file is never replaced.
	Init bool
	// FreshOperator, when set, is the operator settings a data file
	// starts with when Open creates it (the daemon's: unknown accounts
	// rejected). Nil starts with none stored.
	FreshOperator *policy.Operator
	// Quarantine opens a file with damaged account records (or damaged
	// locks or origin state of an account) instead of refusing it: those
	// accounts are listed by Quarantined and refused by the daemon. Damage
	// that cannot be confined to an account (operator settings, high-risk
	// list, rate deck, the digests, a record gone missing) still refuses.
	Quarantine bool
}

// Store is an open data file. Its methods are safe for concurrent use; bbolt
// serialises writers and gives readers a consistent view.
type Store struct {
	db          *bolt.DB
	mu          sync.Mutex // quarantined, skipped
	path        string
	quarantined map[string]string // account -> why (Options.Quarantine)
	skipped     map[string]bool   // bucket/key of damaged records not to read
	created     bool
}

// MissingError means the data file is missing or empty in a data dir that
// is not fresh: it held tollgate's state (Found names the files that say
// so), or other files. Creating a new data file there would silently swap
// the operator's policy for an empty one, so Open refuses.
type MissingError struct {
	Path  string
	Empty bool     // the file exists with 0 bytes
	Found []string // what the data dir holds
}

// Error says what is missing, what was found, and how to recover.
func (e *MissingError) Error() string {
	what := "is missing"
	if e.Empty {
		what = "is empty (0 bytes)"
	}
	return fmt.Sprintf("%s %s, but the data dir is not fresh (it holds %s): refusing to start with an empty policy. "+
		"Restore the data file from a backup, or point -data-dir at the right directory; to start over with an empty policy on purpose, start once with -init-data-dir",
		e.Path, what, strings.Join(e.Found, ", "))
}

// Created reports whether this Open created the data file (a first start).
func (s *Store) Created() bool { return s.created }

// Quarantined lists the accounts whose records were found damaged and
// quarantined at open (Options.Quarantine), with what was wrong.
func (s *Store) Quarantined() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.quarantined))
	for k, v := range s.quarantined {
		out[k] = v
	}
	return out
}

// dirState lists what a data dir holds that makes it not fresh. Temporary
// files of an interrupted write and lost+found (a volume's root) do not
// count.
func dirState(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var state, other []string
	for _, e := range ents {
		n := e.Name()
		switch {
		case n == "lost+found", strings.HasSuffix(n, tempSuffix):
		case n == FileName:
			state = append(state, n)
		case slices.Contains(StateFiles, n):
			state = append(state, n)
		default:
			other = append(other, n)
		}
	}
	if len(other) > 3 {
		other = append(other[:3], "…")
	}
	return append(state, other...), nil
}

// Open opens (or, unless read-only, creates) dir/tollgate.db and checks that
// it is a tollgate data file of a version this binary understands, that
// every record seals and that no record is missing.
func Open(dir string, opt Options) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	fi, statErr := os.Stat(path)
	created := false
	switch {
	case statErr == nil && !fi.Mode().IsRegular():
		return nil, &FormatError{Path: path, Reason: "not a regular file"}
	case opt.ReadOnly && errors.Is(statErr, os.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist (has tollgate ever run with this -data-dir?)", path)
	case statErr != nil && !errors.Is(statErr, os.ErrNotExist):
		return nil, statErr
	case opt.ReadOnly && fi.Size() == 0:
		return nil, &FormatError{Path: path, Reason: "an empty data file (0 bytes)"}
	case statErr == nil && fi.Size() > 0 && fi.Size() < 4096:
		return nil, &FormatError{Path: path, Reason: fmt.Sprintf("too short to be a tollgate data file (%d bytes)", fi.Size())}
	case statErr != nil || fi.Size() == 0:
		// No data: create one if this is a first start or a deliberate
		// re-initialisation, else refuse.
		if !opt.Init {
			found, err := dirState(dir)
			if err != nil {
				return nil, err
			}
			if len(found) > 0 {
				return nil, &MissingError{Path: path, Empty: statErr == nil, Found: found}
			}
		}
		if err := create(dir, opt.FreshOperator, statErr == nil); err != nil {
			return nil, err
		}
		created = true
		if fi, statErr = os.Stat(path); statErr != nil {
			return nil, statErr
		}
	case opt.Init:
		return nil, fmt.Errorf("-init-data-dir: %s already exists (%d bytes); it is never replaced: move it away first if you mean to start over", path, fi.Size())
	}
	if err := verifyFile(path, fi.Size(), !opt.ReadOnly, opt.Timeout); err != nil {
		return nil, err
	}
	db, err := openBolt(path, opt)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, created: created}
	if err := s.init(opt.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.check(opt); err != nil {
		db.Close()
		return nil, err
	}
	if !opt.ReadOnly {
		if err := writeMarker(dir); err != nil {
			db.Close()
			return nil, fmt.Errorf("writing %s: %w", filepath.Join(dir, MarkerFile), err)
		}
	}
	return s, nil
}

// FreshOperator is the operator settings a new data dir starts with: an
// account tollgate has not been told about is rejected (unknown_accounts:
// reject), so a mistyped or missing account tag on a fresh install cannot
// call anywhere. Existing data dirs keep what they have.
func FreshOperator() *policy.Operator {
	return &policy.Operator{UnknownAccounts: policy.UnknownReject}
}

// createHook, when set (tests), is called at each step of create and can
// fail it there, as a full disk or a crash would.
var createHook func(step string) error

func hook(step string) error {
	if createHook != nil {
		return createHook(step)
	}
	return nil
}

// create writes a new data file: built complete under a temporary name,
// synced, then linked into place and the directory synced. A failure at
// any step (a full disk) leaves no data file, so the next start is a first
// start again, never one that finds half a file. Linking (rather than
// renaming) fails if a data file appeared meanwhile — another tollgate
// started on the same fresh dir at the same moment — so a file already
// serving is never replaced; replace is set only to re-create over an
// empty (0-byte) file on purpose.
func create(dir string, op *policy.Operator, replace bool) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, FileName)
	// Left by an interrupted first start.
	old, _ := filepath.Glob(filepath.Join(dir, FileName+"*"+tempSuffix))
	for _, o := range old {
		os.Remove(o)
	}
	f, err := os.CreateTemp(dir, FileName+".*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		os.Remove(tmp)
		if err != nil {
			err = fmt.Errorf("creating %s: %w (nothing was left behind)", path, err)
		}
	}()
	if err := hook("open"); err != nil {
		return err
	}
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := hook("init"); err != nil {
			return err
		}
		return initFile(tx, op)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := hook("rename"); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s appeared while it was being created (another tollgate starting on this -data-dir?)", path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// initFile writes the buckets, format marker and digests of a new file.
func initFile(tx *bolt.Tx, op *policy.Operator) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, []byte(formatMarker)); err != nil {
		return err
	}
	if err := meta.Put(keyVersion, []byte(strconv.Itoa(FormatVersion))); err != nil {
		return err
	}
	if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	r, err := beginRecords(tx)
	if err != nil {
		return err
	}
	for _, b := range sealedBuckets {
		if _, err := r.bucket(b); err != nil {
			return err
		}
	}
	if op != nil {
		b, err := json.Marshal(op)
		if err != nil {
			return err
		}
		if err := r.put(bucketOperator, keySettings, b); err != nil {
			return err
		}
	}
	return r.finish()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFileAtomic writes data to path through a temporary file that is
// synced and renamed into place, so that a crash or a full disk leaves
// either the old file or the new one, never an empty or partial one (an
// empty admin.token used to block every later start).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp := path + tempSuffix
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if err := hook("write " + filepath.Base(path)); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// writeMarker writes the data dir's marker file if it is missing.
func writeMarker(dir string) error {
	path := filepath.Join(dir, MarkerFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]string{"data_file": FileName, "written": time.Now().UTC().Format(time.RFC3339),
		"note": "tollgate's data dir: with this file present and the data file missing, tollgate refuses to start"})
	return WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// openBolt opens the bbolt file, turning bbolt's own errors (and the panics
// and memory faults it can raise on a mangled file) into FormatError or
// ErrLocked.
func openBolt(path string, opt Options) (db *bolt.DB, err error) {
	// bbolt reads pages straight from the mmap: on a damaged file that can
	// fault, which panic-on-fault turns into a panic recovered below.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &FormatError{Path: path, Reason: "the file is damaged", Err: fmt.Errorf("%v", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.Timeout, ReadOnly: opt.ReadOnly})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch):
		return nil, &FormatError{Path: path, Reason: "not a tollgate data file (not a bbolt database)", Err: err}
	case errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return nil, &FormatError{Path: path, Reason: "the file is damaged", Err: err}
	}
	return nil, fmt.Errorf("open %s: %w", path, err)
}

// init verifies the format marker and version, upgrades a version 1 file
// (writable) and gives buckets added since the file was written their
// (empty) place and digest.
func (s *Store) init(readOnly bool) error {
	version := 0
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var names []string
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, strconv.Quote(string(name)))
				return nil
			})
			if len(names) == 0 {
				return &FormatError{Path: s.path, Reason: "a bbolt file with no tollgate data (an interrupted first start of an older tollgate?)",
					Hint: "it holds nothing to lose: delete it and start again"}
			}
			if len(names) > 5 {
				names = append(names[:5], "…")
			}
			return &FormatError{Path: s.path, Reason: fmt.Sprintf("not a tollgate data file (a bbolt database with buckets %v and no tollgate marker)", names)}
		}
		if f := meta.Get(keyFormat); string(f) != formatMarker {
			return &FormatError{Path: s.path, Reason: fmt.Sprintf("not a tollgate data file (format marker %q)", f)}
		}
		v, err := strconv.Atoi(string(meta.Get(keyVersion)))
		if err != nil {
			return &FormatError{Path: s.path, Reason: fmt.Sprintf("unreadable format version %q", meta.Get(keyVersion))}
		}
		if v > FormatVersion {
			return &FormatError{Path: s.path, Reason: fmt.Sprintf("written by a newer tollgate (format version %d, this binary reads up to %d)", v, FormatVersion)}
		}
		if v < 1 {
			return &FormatError{Path: s.path, Reason: fmt.Sprintf("format version %d is not valid", v)}
		}
		if v == 1 && meta.Get(keyDigests) != nil {
			return &FormatError{Path: s.path, Reason: "the file is damaged (format version 1 with sealed records)"}
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return &FormatError{Path: s.path, Reason: fmt.Sprintf("the file is damaged (bucket %q is missing)", b)}
			}
		}
		version = v
		return nil
	})
	if err != nil {
		return err
	}
	if version == 1 {
		if readOnly {
			return &FormatError{Path: s.path, Reason: "written by an older tollgate (format version 1, without record checksums)",
				Hint: "start the daemon once (or run `tollgate import`) with this binary: it adds the checksums in place"}
		}
		return s.update(migrateV1)
	}
	if readOnly {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		r, err := beginRecords(tx)
		if err != nil {
			return err
		}
		for _, b := range sealedBuckets {
			if _, listed := r.dig[string(b)]; !listed && tx.Bucket(b) == nil {
				if _, err := r.bucket(b); err != nil {
					return err
				}
			}
		}
		return r.finish()
	})
}

// update runs fn in a write transaction, turning a damaged file's panics
// into a FormatError and a RecordError into the file's refusal.
func (s *Store) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &FormatError{Path: s.path, Reason: "the file is damaged", Err: fmt.Errorf("%v", r)}
		}
	}()
	err = s.db.Update(fn)
	var re *RecordError
	if errors.As(err, &re) {
		return &FormatError{Path: s.path, Reason: "the file is damaged (" + re.Error() + ")"}
	}
	return err
}

// migrateV1 seals every record of a version 1 file in place, in one
// transaction: each record is first decoded strictly as what its bucket
// holds (a record version 1 could not checksum is at least well-formed),
// then rewritten sealed, the digests written and the version set to 2.
func migrateV1(tx *bolt.Tx) error {
	known := map[string]bool{string(bucketMeta): true}
	for _, b := range sealedBuckets {
		known[string(b)] = true
	}
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !known[string(name)] {
			return fmt.Errorf("unknown bucket %q in a version 1 file", name)
		}
		return nil
	}); err != nil {
		return err
	}
	r := &records{tx: tx, dig: map[string]bucketDigest{}, dirty: true}
	for _, name := range sealedBuckets {
		b, err := tx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		var keys, vals [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				return &RecordError{Bucket: string(name), Key: printableKey(string(name), k), Why: "a nested bucket where a record belongs (damaged)"}
			}
			if err := decodeRecord(name, k, v, nil); err != nil {
				return &RecordError{Bucket: string(name), Key: printableKey(string(name), k), Why: "unreadable in the version 1 file, cannot add its checksum: " + err.Error()}
			}
			keys = append(keys, append([]byte(nil), k...))
			vals = append(vals, append([]byte(nil), v...))
			return nil
		}); err != nil {
			return err
		}
		var n, x uint64
		for i, k := range keys {
			sv := seal(name, k, vals[i])
			if err := b.Put(k, sv); err != nil {
				return err
			}
			n, x = n+1, x^digestWord(name, k, sv)
		}
		r.dig[string(name)] = makeDigest(n, x)
	}
	if err := r.finish(); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(strconv.Itoa(FormatVersion)))
}

// decodeRecord decodes one record's payload strictly as what bucket/key
// holds, into out when it is not nil (*policy.Account for accounts,
// *policy.Operator for the operator settings, *[]policy.HighRiskEntry for
// the high-risk list, *AuditEntry for the audit log), and checks the rest.
func decodeRecord(bucket, key, p []byte, out any) error {
	switch string(bucket) {
	case string(bucketAccounts):
		if err := policy.ValidName(string(key)); err != nil {
			return fmt.Errorf("account name: %v", err)
		}
		if o, ok := out.(*policy.Account); ok {
			return policy.DecodeStrict(p, o)
		}
		// declared here, not above: it escapes, and an account decoded
		// into out would otherwise allocate one anyway
		var a policy.Account
		return policy.DecodeStrict(p, &a)
	case string(bucketTemplates):
		if err := policy.ValidName(string(key)); err != nil {
			return fmt.Errorf("template name: %v", err)
		}
		var t policy.Template
		if o, ok := out.(*policy.Template); ok {
			return policy.DecodeStrict(p, o)
		}
		return policy.DecodeStrict(p, &t)
	case string(bucketOperator):
		if string(key) != string(keySettings) {
			return errors.New("unexpected key")
		}
		var o policy.Operator
		if oo, ok := out.(*policy.Operator); ok {
			return policy.DecodeStrict(p, oo)
		}
		return policy.DecodeStrict(p, &o)
	case string(bucketHighRisk), string(bucketRates):
		switch string(key) {
		case string(keyHRMeta):
			if o, ok := out.(*RateDeckMeta); ok && string(bucket) == string(bucketRates) {
				return policy.DecodeStrict(p, o)
			}
			if o, ok := out.(*HighRiskMeta); ok && string(bucket) == string(bucketHighRisk) {
				return policy.DecodeStrict(p, o)
			}
			if string(bucket) == string(bucketRates) {
				return policy.DecodeStrict(p, &RateDeckMeta{})
			}
			return policy.DecodeStrict(p, &HighRiskMeta{})
		case string(keyList):
			if string(bucket) == string(bucketRates) {
				_, err := policy.ParseRateDeck(bytes.NewReader(p))
				return err
			}
			l, err := decodeHighRisk(bytes.NewReader(p), 0)
			if err != nil {
				return err
			}
			for i, e := range l {
				if n, err := policy.NormalizePrefix(e.Prefix); err != nil || n != e.Prefix {
					return fmt.Errorf("entry %d: prefix %q is not a canonical prefix", i+1, e.Prefix)
				}
			}
			if o, ok := out.(*[]policy.HighRiskEntry); ok {
				*o = l
			}
			return nil
		}
		return errors.New("unexpected key")
	case string(bucketAudit):
		if len(key) != 8 {
			return errors.New("not an audit entry number")
		}
		var e AuditEntry
		if o, ok := out.(*AuditEntry); ok {
			return policy.DecodeStrict(p, o)
		}
		return policy.DecodeStrict(p, &e)
	case string(bucketLocks), string(bucketOrigin):
		var m map[string]json.RawMessage
		return policy.DecodeStrict(p, &m)
	}
	return nil
}

// check walks every page so that a damaged file is refused now, not found
// by a panic in the middle of serving, then verifies every record's seal
// and every bucket's digest. It first reads every bucket itself (in this
// goroutine, where a fault on a bad page becomes an error), then runs
// bbolt's own consistency check, which runs in a goroutine of its own and so
// must only see pages already known to be readable.
func (s *Store) check(opt Options) error {
	err := s.view(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			b.Stats()
			return b.ForEach(func(k, v []byte) error {
				if len(k) > 0 && len(v) > 0 {
					_, _ = k[len(k)-1], v[len(v)-1]
				}
				return nil
			})
		})
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return err
		}
		return &FormatError{Path: s.path, Reason: "the file is damaged", Err: err}
	}
	if !opt.SkipCheck {
		var errs []string
		err = s.view(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				if len(errs) < 3 {
					errs = append(errs, e.Error())
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(errs) > 0 {
			return &FormatError{Path: s.path, Reason: "the file is damaged (consistency check failed)", Err: errors.New(joinMsgs(errs))}
		}
	}
	var (
		damaged []RecordError
		verr    error
	)
	if err := s.view(func(tx *bolt.Tx) error {
		damaged, verr = verifyRecords(tx)
		return nil
	}); err != nil {
		return err
	}
	if verr != nil {
		return &FormatError{Path: s.path, Reason: "the file is damaged (" + verr.Error() + ")",
			Hint: "this damage cannot be confined to one account: restore the data file from a backup (nothing was changed)"}
	}
	if len(damaged) == 0 {
		return nil
	}
	all := true
	msgs := make([]string, 0, len(damaged))
	for _, d := range damaged {
		if _, ok := quarantinable(d.Bucket, d.rawKey); !ok {
			all = false
		}
		if len(msgs) < 10 {
			msgs = append(msgs, d.Error())
		}
	}
	if len(damaged) > len(msgs) {
		msgs = append(msgs, fmt.Sprintf("and %d more", len(damaged)-len(msgs)))
	}
	reason := fmt.Sprintf("the file is damaged: %d damaged record(s): %s", len(damaged), strings.Join(msgs, "; "))
	switch {
	case !all:
		return &FormatError{Path: s.path, Reason: reason,
			Hint: "operator settings, the high-risk list and the rate deck can never be quarantined (that would loosen the policy): restore the data file from a backup (nothing was changed)"}
	case !opt.Quarantine:
		return &FormatError{Path: s.path, Reason: reason,
			Hint: "restore the data file from a backup, or start with -quarantine-damaged to serve every other account and refuse these accounts' calls (account_quarantined) until each is written again (nothing was changed)"}
	}
	s.quarantined, s.skipped = map[string]string{}, map[string]bool{}
	for _, d := range damaged {
		s.skipped[d.Bucket+"/"+string(d.rawKey)] = true
		if a, _ := quarantinable(d.Bucket, d.rawKey); a != "" {
			if s.quarantined[a] == "" {
				s.quarantined[a] = d.Error()
			}
		}
	}
	return nil
}

func joinMsgs(m []string) string {
	var b bytes.Buffer
	for i, s := range m {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// view runs fn in a read transaction and turns a bbolt panic or memory
// fault (which a damaged page can raise) into a FormatError.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &FormatError{Path: s.path, Reason: "the file is damaged", Err: fmt.Errorf("%v", r)}
		}
	}()
	return s.db.View(fn)
}

// ReleaseMemory drops the data file's pages from this process's page tables
// (they stay in the kernel's page cache). Load reads the whole file through
// bbolt's mmap, which otherwise keeps every page counted in the daemon's RSS
// long after the policy was compiled; a later read faults the pages it needs
// back in. It runs inside a read transaction, during which bbolt cannot
// remap.
func (s *Store) ReleaseMemory() error {
	return s.view(func(tx *bolt.Tx) error {
		size := tx.Size()
		if size <= 0 {
			return nil
		}
		info := s.db.Info()
		// Data is the address of bbolt's mmap, outside the Go heap; read
		// its bits as a pointer rather than converting the integer.
		base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
		data := unsafe.Slice((*byte)(base), int(size))
		return syscall.Madvise(data, syscall.MADV_DONTNEED)
	})
}

// Path is the data file's path, for logs.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Every committed write is already on
// disk; Close only makes the next Open skip bbolt's recovery.
func (s *Store) Close() error { return s.db.Close() }

// HighRiskList is the operator's own high-risk list with where it came from.
type HighRiskList struct {
	Entries []policy.HighRiskEntry
	// Version identifies this revision of the list (a content hash unless the
	// operator supplied one).
	Version string
	// Source says who put it there ("api:admin", "file:/etc/tollgate/hr.csv").
	Source  string
	Updated time.Time
}

// HighRiskMeta describes the stored list without its entries.
type HighRiskMeta struct {
	Stored  bool      `json:"stored"`
	Version string    `json:"version,omitempty"`
	Source  string    `json:"source,omitempty"`
	Count   int       `json:"count"`
	Updated time.Time `json:"updated"`
}

// AuditEntry records one admin change. Before and After are the object's JSON
// (null when it did not exist before / does not exist after), so the log
// alone tells what an account looked like at any time.
type AuditEntry struct {
	ID     uint64          `json:"id"`
	Time   time.Time       `json:"time"`
	Who    string          `json:"who"`
	Remote string          `json:"remote,omitempty"`
	Action string          `json:"action"`
	Object string          `json:"object"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
}

// Change is everything one admin request writes. Commit applies it in a
// single transaction with its audit entry: all of it is on disk, or none.
type Change struct {
	Audit AuditEntry
	// Accounts to write; a nil value deletes the account.
	Accounts map[string]*policy.Account
	// Operator, if set, replaces the operator settings.
	Operator *policy.Operator
	// HighRisk, if set, replaces the stored high-risk list.
	HighRisk *HighRiskList
	// DropHighRisk deletes the stored list (back to the shipped default).
	DropHighRisk bool
	// Locks to write, by scope ("account" or "account/subaccount"); a nil
	// value deletes the lock. The values are the velocity engine's JSON.
	Locks map[string]json.RawMessage
	// RateDeck, if set, replaces the stored rate deck.
	RateDeck *RateDeckRecord
	// DropRateDeck deletes the stored rate deck.
	DropRateDeck bool
	// Origin is accounts' durable origin state to write (home location,
	// screening pass, failed screenings, quarantine, unblock code hash);
	// a nil value deletes it. The values are package origin's JSON.
	Origin map[string]json.RawMessage
	// Templates to write, by name; a nil value deletes the template.
	// Changing a template changes every account on it: the accounts'
	// own records are not rewritten (they name it), so a replica applying
	// a Change gets the new template and recompiles them itself.
	Templates map[string]*policy.Template
}

// RateDeckRecord is the operator's rate deck with where it came from.
type RateDeckRecord struct {
	Deck    policy.RateDeck
	Version string
	Source  string
	Updated time.Time
}

// RateDeckMeta describes the stored rate deck without its entries.
type RateDeckMeta struct {
	Stored   bool      `json:"stored"`
	Version  string    `json:"version,omitempty"`
	Source   string    `json:"source,omitempty"`
	Currency string    `json:"currency,omitempty"`
	Count    int       `json:"count"`
	Updated  time.Time `json:"updated"`
}

// Commit writes c and its audit entry in one fsynced transaction and returns
// the audit entry's ID. On error nothing was written. Writing or deleting a
// quarantined account (Options.Quarantine) also deletes its damaged lock and
// origin records and releases it.
func (s *Store) Commit(c *Change) (uint64, error) {
	var id uint64
	// The damaged records of quarantined accounts this change writes, read
	// under mu and not held through the transaction: a reader holding a
	// read transaction may wait for mu (skip), and bbolt's commit may wait
	// for that reader.
	var released []string
	drop := map[string][]string{}
	s.mu.Lock()
	for name := range c.Accounts {
		if _, q := s.quarantined[name]; q {
			released = append(released, name)
			for key := range s.skipped {
				bucket, k, _ := strings.Cut(key, "/")
				if a, _ := quarantinable(bucket, []byte(k)); a == name && bucket != string(bucketAudit) {
					drop[name] = append(drop[name], key)
				}
			}
		}
	}
	s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, err := beginRecords(tx)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(c.Accounts))
		for name := range c.Accounts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, key := range drop[name] {
				bucket, k, _ := strings.Cut(key, "/")
				if err := r.del([]byte(bucket), []byte(k)); err != nil {
					return err
				}
			}
			a := c.Accounts[name]
			if a == nil {
				if err := r.del(bucketAccounts, []byte(name)); err != nil {
					return err
				}
				continue
			}
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := r.put(bucketAccounts, []byte(name), b); err != nil {
				return fmt.Errorf("account %q: %w", name, err)
			}
		}
		if c.Operator != nil {
			b, err := json.Marshal(c.Operator)
			if err != nil {
				return err
			}
			if err := r.put(bucketOperator, keySettings, b); err != nil {
				return err
			}
		}
		if c.DropHighRisk {
			if err := r.del(bucketHighRisk, keyList); err != nil {
				return err
			}
			if err := r.del(bucketHighRisk, keyHRMeta); err != nil {
				return err
			}
		}
		if l := c.HighRisk; l != nil {
			var buf bytes.Buffer
			if err := encodeHighRisk(&buf, l.Entries); err != nil {
				return err
			}
			meta, err := json.Marshal(HighRiskMeta{Stored: true, Version: l.Version, Source: l.Source, Count: len(l.Entries), Updated: l.Updated.UTC()})
			if err != nil {
				return err
			}
			if err := r.put(bucketHighRisk, keyList, buf.Bytes()); err != nil {
				return err
			}
			if err := r.put(bucketHighRisk, keyHRMeta, meta); err != nil {
				return err
			}
		}
		if len(c.Locks) > 0 || c.RateDeck != nil || c.DropRateDeck || len(c.Origin) > 0 || len(c.Templates) > 0 {
			if err := commitAdded(r, c); err != nil {
				return err
			}
		}
		audit := tx.Bucket(bucketAudit)
		seq, err := audit.NextSequence()
		if err != nil {
			return err
		}
		e := c.Audit
		e.ID = seq
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		e.Time = e.Time.UTC()
		if len(e.Before) == 0 {
			e.Before = json.RawMessage("null")
		}
		if len(e.After) == 0 {
			e.After = json.RawMessage("null")
		}
		b, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		id = seq
		if err := r.put(bucketAudit, seqKey(seq), b); err != nil {
			return err
		}
		return r.finish()
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	for _, name := range released {
		delete(s.quarantined, name)
		for _, key := range drop[name] {
			delete(s.skipped, key)
		}
	}
	s.mu.Unlock()
	return id, nil
}

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// skip reports whether bucket/key is a damaged record quarantined at open.
func (s *Store) skip(bucket, key []byte) bool {
	if s.skipped == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped[string(bucket)+"/"+string(key)]
}

// get reads and decodes one record; ok is false when there is none.
func get(tx *bolt.Tx, bucket, key []byte, out any) (ok bool, err error) {
	b := tx.Bucket(bucket)
	if b == nil {
		return false, nil
	}
	v := b.Get(key)
	if v == nil {
		return false, nil
	}
	p, err := unseal(bucket, key, v)
	if err != nil {
		return false, err
	}
	if err := decodeRecord(bucket, key, p, out); err != nil {
		return false, &RecordError{Bucket: string(bucket), Key: printableKey(string(bucket), key), Why: err.Error(), rawKey: bytes.Clone(key)}
	}
	return true, nil
}

// Load reads the whole policy set. Set.HighRisk is nil when the operator has
// never stored a list (the caller then uses the shipped default). Every
// record is checked against its seal and decoded strictly; with
// Options.Quarantine, Set.Quarantined lists the accounts whose records were
// damaged (and their records are left out). Load does not validate:
// matcher.Compile does, and a stored set always passed it.
func (s *Store) Load() (*policy.Set, error) {
	set := &policy.Set{}
	// The decoded accounts are copied into a slab: kept as decoded, their
	// small objects would pin the heap spans the decoder's garbage leaves.
	var slab policy.Slab
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		set.Accounts = make(map[string]policy.Account, b.Stats().KeyN)
		// one decoding target for every record: each would be an object
		// of the map values' size among them
		var a policy.Account
		err := b.ForEach(func(k, v []byte) error {
			if s.skip(bucketAccounts, k) {
				return nil
			}
			p, err := unseal(bucketAccounts, k, v)
			if err != nil {
				return err
			}
			a = policy.Account{}
			if err := decodeRecord(bucketAccounts, k, p, &a); err != nil {
				return &RecordError{Bucket: string(bucketAccounts), Key: printableKey(string(bucketAccounts), k), Why: err.Error()}
			}
			set.Accounts[slab.String(string(k))] = slab.Adopt(a)
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := get(tx, bucketOperator, keySettings, &set.Operator); err != nil {
			return err
		}
		if err := loadTemplates(tx, set); err != nil {
			return err
		}
		var m HighRiskMeta
		hasMeta, err := get(tx, bucketHighRisk, keyHRMeta, &m)
		if err != nil {
			return err
		}
		var entries []policy.HighRiskEntry
		hasList, err := get(tx, bucketHighRisk, keyList, &entries)
		if err != nil {
			return err
		}
		if hasList != hasMeta || (hasList && m.Count != len(entries)) {
			return &RecordError{Bucket: string(bucketHighRisk), Key: strconv.Quote(string(keyList)),
				Why: fmt.Sprintf("the list (%d entries, stored %v) and its description (%d entries, stored %v) disagree (damaged)", len(entries), hasList, m.Count, hasMeta)}
		}
		if hasList {
			if entries == nil {
				entries = []policy.HighRiskEntry{} // stored, and empty
			}
			set.HighRisk = entries
		}
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, &FormatError{Path: s.path, Reason: "the file holds unreadable data (" + err.Error() + ")", Hint: "restore the data file from a backup (nothing was changed)"}
	}
	if q := s.Quarantined(); len(q) > 0 {
		set.Quarantined = q
	}
	return set, nil
}

// Account reads one account; ok is false if it does not exist.
func (s *Store) Account(name string) (a policy.Account, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		ok, err = get(tx, bucketAccounts, []byte(name), &a)
		return err
	})
	return a, ok, err
}

// HighRiskMeta describes the stored high-risk list (Stored false if none).
func (s *Store) HighRiskMeta() (HighRiskMeta, error) {
	var m HighRiskMeta
	err := s.view(func(tx *bolt.Tx) error {
		_, err := get(tx, bucketHighRisk, keyHRMeta, &m)
		return err
	})
	return m, err
}

// Audit lists audit entries newest first: at most limit of them (all if
// limit <= 0), starting below ID before (from the newest if before is 0), so
// a client pages with before = the last ID it saw. Entries quarantined at
// open (damaged) are left out.
func (s *Store) Audit(limit int, before uint64) ([]AuditEntry, error) {
	out := []AuditEntry{}
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(seqKey(before))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && binary.BigEndian.Uint64(k) >= before {
				k, v = c.Prev()
			}
		}
		for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			if s.skip(bucketAudit, k) {
				continue
			}
			p, err := unseal(bucketAudit, k, v)
			if err != nil {
				return err
			}
			var e AuditEntry
			if err := decodeRecord(bucketAudit, k, p, &e); err != nil {
				return fmt.Errorf("audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// encodeHighRisk writes entries as header-less CSV, the most compact
// self-describing form for a list that can hold a million rows.
func encodeHighRisk(w io.Writer, entries []policy.HighRiskEntry) error {
	cw := csv.NewWriter(w)
	rec := make([]string, 4)
	for _, e := range entries {
		rec[0], rec[1], rec[2], rec[3] = e.Prefix, e.Country, e.Category, e.Source
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// decodeHighRisk reads the stored list back (hint: the expected count).
// Country, category and source repeat across entries (a million entries may
// share a dozen sources), so each distinct value is kept once, and the
// prefix is copied out of the record: encoding/csv slices all fields of a
// record from one string, which a retained field would keep alive whole.
func decodeHighRisk(r io.Reader, hint int) ([]policy.HighRiskEntry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 4
	cr.ReuseRecord = true
	intern := map[string]string{}
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		if len(intern) < 1<<16 {
			intern[s] = s
		}
		return s
	}
	out := make([]policy.HighRiskEntry, 0, max(0, min(hint, policy.MaxHighRiskEntries)))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, policy.HighRiskEntry{Prefix: strings.Clone(rec[0]), Country: in(rec[1]), Category: in(rec[2]), Source: in(rec[3])})
	}
}

// commitAdded writes the parts of a change that live in addedBuckets.
func commitAdded(r *records, c *Change) error {
	if err := putTemplates(r, c.Templates); err != nil {
		return err
	}
	if err := putJSON(r, bucketLocks, "lock", c.Locks); err != nil {
		return err
	}
	if err := putJSON(r, bucketOrigin, "origin state", c.Origin); err != nil {
		return err
	}
	if c.DropRateDeck {
		if err := r.del(bucketRates, keyList); err != nil {
			return err
		}
		if err := r.del(bucketRates, keyHRMeta); err != nil {
			return err
		}
	}
	if d := c.RateDeck; d != nil {
		var buf bytes.Buffer
		if err := policy.WriteRateDeck(&buf, d.Deck); err != nil {
			return err
		}
		meta, err := json.Marshal(RateDeckMeta{Stored: true, Version: d.Version, Source: d.Source, Currency: d.Deck.Currency,
			Count: len(d.Deck.Entries), Updated: d.Updated.UTC()})
		if err != nil {
			return err
		}
		if err := r.put(bucketRates, keyList, buf.Bytes()); err != nil {
			return err
		}
		if err := r.put(bucketRates, keyHRMeta, meta); err != nil {
			return err
		}
	}
	return nil
}

// putJSON writes JSON values by key in key order; a nil value deletes.
func putJSON(r *records, bucket []byte, what string, m map[string]json.RawMessage) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if v == nil {
			if err := r.del(bucket, []byte(k)); err != nil {
				return err
			}
			continue
		}
		if !json.Valid(v) {
			return fmt.Errorf("%s %q: not JSON", what, k)
		}
		if err := r.put(bucket, []byte(k), v); err != nil {
			return fmt.Errorf("%s %q: %w", what, k, err)
		}
	}
	return nil
}

// Origin reads every account's stored origin state, each record verified.
// A file that predates origin state has none.
func (s *Store) Origin() (map[string]json.RawMessage, error) {
	return s.sealedBucket(bucketOrigin)
}

// Locks reads every stored lock, by scope, each record verified. A file
// that predates locks has none.
func (s *Store) Locks() (map[string]json.RawMessage, error) {
	return s.sealedBucket(bucketLocks)
}

// sealedBucket copies the verified payload of every record of a bucket,
// by key, leaving out records quarantined at open; a file without the
// bucket has none.
func (s *Store) sealedBucket(name []byte) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if s.skip(name, k) {
				return nil
			}
			p, err := unseal(name, k, v)
			if err != nil {
				return err
			}
			out[string(k)] = bytes.Clone(p)
			return nil
		})
	})
	return out, err
}

// RateDeck reads the stored rate deck; nil when none is stored.
func (s *Store) RateDeck() (*policy.RateDeck, RateDeckMeta, error) {
	var (
		deck *policy.RateDeck
		meta RateDeckMeta
	)
	err := s.view(func(tx *bolt.Tx) error {
		hasMeta, err := get(tx, bucketRates, keyHRMeta, &meta)
		if err != nil {
			return err
		}
		b := tx.Bucket(bucketRates)
		var raw []byte
		if b != nil {
			if v := b.Get(keyList); v != nil {
				if raw, err = unseal(bucketRates, keyList, v); err != nil {
					return err
				}
			}
		}
		if (raw != nil) != hasMeta {
			return &RecordError{Bucket: string(bucketRates), Key: strconv.Quote(string(keyList)), Why: "the deck and its description disagree (damaged)"}
		}
		if raw == nil {
			return nil
		}
		d, err := policy.ParseRateDeck(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("rate deck: %w", err)
		}
		if len(d.Entries) != meta.Count {
			return &RecordError{Bucket: string(bucketRates), Key: strconv.Quote(string(keyList)),
				Why: fmt.Sprintf("%d entries where its description says %d (damaged)", len(d.Entries), meta.Count)}
		}
		deck = &d
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, RateDeckMeta{}, err
		}
		return nil, RateDeckMeta{}, &FormatError{Path: s.path, Reason: "the file holds unreadable data (" + err.Error() + ")", Hint: "restore the data file from a backup (nothing was changed)"}
	}
	meta.Stored = deck != nil
	return deck, meta, nil
}

// Fraud state buckets, one per fraudstate.Kind (package fraudstate says what
// each holds and the loss window).
var bucketState = [fraudstate.NumKinds][]byte{
	fraudstate.Scopes:   []byte("state.scopes"),
	fraudstate.Calls:    []byte("state.calls"),
	fraudstate.Alerts:   []byte("state.alerts"),
	fraudstate.Webhooks: []byte("state.webhooks"),
}

// WriteState implements fraudstate.Backend: the batch in one fsynced
// transaction, so a kill -9 leaves the state of the last whole batch. Each
// record is sealed like every other (record.go).
func (s *Store) WriteState(b *fraudstate.Batch) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		r, err := beginRecords(tx)
		if err != nil {
			return err
		}
		for k := fraudstate.Kind(0); k < fraudstate.NumKinds; k++ {
			name := bucketState[k]
			if tx.Bucket(name) == nil {
				return errors.New("the data file was opened read-only or predates fraud state")
			}
			err := b.Each(k, func(key string, val []byte) error {
				if val == nil {
					return r.del(name, []byte(key))
				}
				return r.put(name, []byte(key), val)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", fraudstate.KindNames[k], err)
			}
		}
		return r.finish()
	})
}

// LoadState implements fraudstate.Backend, each record's seal verified
// (records quarantined at open are left out). A file that predates fraud
// state has none.
func (s *Store) LoadState(k fraudstate.Kind, fn func(key string, val []byte) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState[k])
		if b == nil {
			return nil
		}
		return b.ForEach(func(key, val []byte) error {
			if s.skip(bucketState[k], key) {
				return nil
			}
			p, err := unseal(bucketState[k], key, val)
			if err != nil {
				return err
			}
			return fn(string(key), p)
		})
	})
}
