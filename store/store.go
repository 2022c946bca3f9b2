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
	"sort"
	"strconv"
	"strings"
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
// binary then refuses the file instead of guessing.
const (
	formatMarker  = "tollgate-store"
	FormatVersion = 1
)

var (
	bucketMeta     = []byte("meta")
	bucketAccounts = []byte("accounts")
	bucketOperator = []byte("operator")
	bucketHighRisk = []byte("highrisk")
	bucketAudit    = []byte("audit")
	bucketLocks    = []byte("locks")
	bucketRates    = []byte("ratedeck")
	bucketOrigin   = []byte("origin")

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
	addedBuckets = append([][]byte{bucketLocks, bucketRates, bucketOrigin}, bucketState[:]...)
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
}

// Error says which file, why it is refused, and what to do about it.
func (e *FormatError) Error() string {
	s := fmt.Sprintf("%s: %s; refusing to use it (nothing was changed: move the file away or point -data-dir elsewhere)", e.Path, e.Reason)
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
	// SkipCheck skips the page-level consistency walk done at open. The walk
	// costs milliseconds for a realistic file and is what turns silent page
	// corruption into a refusal at start instead of a panic later.
	SkipCheck bool
}

// Store is an open data file. Its methods are safe for concurrent use; bbolt
// serialises writers and gives readers a consistent view.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens (or, unless read-only, creates) dir/tollgate.db and checks that
// it is a tollgate data file of a version this binary understands.
func Open(dir string, opt Options) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	fi, statErr := os.Stat(path)
	switch {
	case statErr == nil && !fi.Mode().IsRegular():
		return nil, &FormatError{Path: path, Reason: "not a regular file"}
	case statErr == nil && fi.Size() == 0 && !opt.ReadOnly:
		// bbolt itself initialises a zero-length file; nothing to lose.
	case statErr == nil && fi.Size() < 4096:
		return nil, &FormatError{Path: path, Reason: fmt.Sprintf("too short to be a tollgate data file (%d bytes)", fi.Size())}
	case errors.Is(statErr, os.ErrNotExist) && opt.ReadOnly:
		return nil, fmt.Errorf("%s does not exist (has tollgate ever run with this -data-dir?)", path)
	case statErr != nil && !errors.Is(statErr, os.ErrNotExist):
		return nil, statErr
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if statErr == nil && fi.Size() > 0 {
		if err := verifyFile(path, fi.Size(), !opt.ReadOnly, opt.Timeout); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, opt)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path}
	if err := s.init(opt.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	if !opt.SkipCheck {
		if err := s.check(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
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

// init writes the format marker into a fresh file, or verifies it in an
// existing one. A bbolt file with no buckets at all is fresh (a crash between
// bbolt creating the file and our first commit leaves exactly that); one with
// buckets but no marker belongs to someone else.
func (s *Store) init(readOnly bool) error {
	fresh := false
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var names []string
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, strconv.Quote(string(name)))
				return nil
			})
			if len(names) == 0 {
				fresh = true
				return nil
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
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return &FormatError{Path: s.path, Reason: fmt.Sprintf("the file is damaged (bucket %q is missing)", b)}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !fresh {
		if readOnly {
			return nil
		}
		return s.db.Update(func(tx *bolt.Tx) error {
			for _, b := range addedBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if readOnly {
		return &FormatError{Path: s.path, Reason: "an empty data file (tollgate has not finished its first start here)"}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range append(allBuckets, addedBuckets...) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, []byte(formatMarker)); err != nil {
			return err
		}
		if err := meta.Put(keyVersion, []byte(strconv.Itoa(FormatVersion))); err != nil {
			return err
		}
		return meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339)))
	})
}

// check walks every page so that a damaged file is refused now, not found
// by a panic in the middle of serving. It first reads every bucket itself (in
// this goroutine, where a fault on a bad page becomes an error), then runs
// bbolt's own consistency check, which runs in a goroutine of its own and so
// must only see pages already known to be readable.
func (s *Store) check() error {
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
// the audit entry's ID. On error nothing was written.
func (s *Store) Commit(c *Change) (uint64, error) {
	var id uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		acc := tx.Bucket(bucketAccounts)
		names := make([]string, 0, len(c.Accounts))
		for name := range c.Accounts {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			a := c.Accounts[name]
			if a == nil {
				if err := acc.Delete([]byte(name)); err != nil {
					return err
				}
				continue
			}
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := acc.Put([]byte(name), b); err != nil {
				return fmt.Errorf("account %q: %w", name, err)
			}
		}
		if c.Operator != nil {
			b, err := json.Marshal(c.Operator)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketOperator).Put(keySettings, b); err != nil {
				return err
			}
		}
		hr := tx.Bucket(bucketHighRisk)
		if c.DropHighRisk {
			if err := hr.Delete(keyList); err != nil {
				return err
			}
			if err := hr.Delete(keyHRMeta); err != nil {
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
			if err := hr.Put(keyList, buf.Bytes()); err != nil {
				return err
			}
			if err := hr.Put(keyHRMeta, meta); err != nil {
				return err
			}
		}
		if len(c.Locks) > 0 || c.RateDeck != nil || c.DropRateDeck || len(c.Origin) > 0 {
			if err := commitAdded(tx, c); err != nil {
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
		return audit.Put(seqKey(seq), b)
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// Load reads the whole policy set. Set.HighRisk is nil when the operator has
// never stored a list (the caller then uses the shipped default). Load does
// not validate: matcher.Compile does, and a stored set always passed it.
func (s *Store) Load() (*policy.Set, error) {
	set := &policy.Set{Accounts: map[string]policy.Account{}}
	err := s.view(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			var a policy.Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %q: %w", k, err)
			}
			set.Accounts[string(k)] = a
			return nil
		})
		if err != nil {
			return err
		}
		if b := tx.Bucket(bucketOperator).Get(keySettings); b != nil {
			if err := json.Unmarshal(b, &set.Operator); err != nil {
				return fmt.Errorf("operator settings: %w", err)
			}
		}
		if b := tx.Bucket(bucketHighRisk).Get(keyList); b != nil {
			var m HighRiskMeta
			if mb := tx.Bucket(bucketHighRisk).Get(keyHRMeta); mb != nil {
				json.Unmarshal(mb, &m) // only a capacity hint
			}
			entries, err := decodeHighRisk(bytes.NewReader(b), m.Count)
			if err != nil {
				return fmt.Errorf("high-risk list: %w", err)
			}
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
		return nil, &FormatError{Path: s.path, Reason: "the file holds unreadable data", Err: err}
	}
	return set, nil
}

// Account reads one account; ok is false if it does not exist.
func (s *Store) Account(name string) (a policy.Account, ok bool, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(name))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &a)
	})
	return a, ok, err
}

// HighRiskMeta describes the stored high-risk list (Stored false if none).
func (s *Store) HighRiskMeta() (HighRiskMeta, error) {
	var m HighRiskMeta
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHighRisk).Get(keyHRMeta)
		if b == nil {
			return nil
		}
		return json.Unmarshal(b, &m)
	})
	return m, err
}

// Audit lists audit entries newest first: at most limit of them (all if
// limit <= 0), starting below ID before (from the newest if before is 0), so
// a client pages with before = the last ID it saw.
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
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
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
func commitAdded(tx *bolt.Tx, c *Change) error {
	locks, rates, orig := tx.Bucket(bucketLocks), tx.Bucket(bucketRates), tx.Bucket(bucketOrigin)
	if locks == nil || rates == nil || orig == nil {
		return errors.New("the data file was opened read-only or predates locks, rate decks and origin state")
	}
	if err := putJSON(locks, "lock", c.Locks); err != nil {
		return err
	}
	if err := putJSON(orig, "origin state", c.Origin); err != nil {
		return err
	}
	if c.DropRateDeck {
		if err := rates.Delete(keyList); err != nil {
			return err
		}
		if err := rates.Delete(keyHRMeta); err != nil {
			return err
		}
	}
	if r := c.RateDeck; r != nil {
		var buf bytes.Buffer
		if err := policy.WriteRateDeck(&buf, r.Deck); err != nil {
			return err
		}
		meta, err := json.Marshal(RateDeckMeta{Stored: true, Version: r.Version, Source: r.Source, Currency: r.Deck.Currency,
			Count: len(r.Deck.Entries), Updated: r.Updated.UTC()})
		if err != nil {
			return err
		}
		if err := rates.Put(keyList, buf.Bytes()); err != nil {
			return err
		}
		if err := rates.Put(keyHRMeta, meta); err != nil {
			return err
		}
	}
	return nil
}

// putJSON writes JSON values by key in key order; a nil value deletes.
func putJSON(b *bolt.Bucket, what string, m map[string]json.RawMessage) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if v == nil {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			continue
		}
		if !json.Valid(v) {
			return fmt.Errorf("%s %q: not JSON", what, k)
		}
		if err := b.Put([]byte(k), v); err != nil {
			return fmt.Errorf("%s %q: %w", what, k, err)
		}
	}
	return nil
}

// Origin reads every account's stored origin state. A file that predates
// origin state has none.
func (s *Store) Origin() (map[string]json.RawMessage, error) {
	return s.rawBucket(bucketOrigin)
}

// Locks reads every stored lock, by scope. A file that predates locks has
// none.
func (s *Store) Locks() (map[string]json.RawMessage, error) {
	return s.rawBucket(bucketLocks)
}

// rawBucket copies every value of a bucket added after the first format,
// by key; a file without the bucket has none.
func (s *Store) rawBucket(name []byte) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append(json.RawMessage(nil), v...)
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
		b := tx.Bucket(bucketRates)
		if b == nil {
			return nil
		}
		raw := b.Get(keyList)
		if raw == nil {
			return nil
		}
		if mb := b.Get(keyHRMeta); mb != nil {
			if err := json.Unmarshal(mb, &meta); err != nil {
				return fmt.Errorf("rate deck meta: %w", err)
			}
		}
		d, err := policy.ParseRateDeck(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("rate deck: %w", err)
		}
		deck = &d
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, RateDeckMeta{}, err
		}
		return nil, RateDeckMeta{}, &FormatError{Path: s.path, Reason: "the file holds unreadable data", Err: err}
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
// transaction, so a kill -9 leaves the state of the last whole batch.
func (s *Store) WriteState(b *fraudstate.Batch) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for k := fraudstate.Kind(0); k < fraudstate.NumKinds; k++ {
			bk := tx.Bucket(bucketState[k])
			if bk == nil {
				return errors.New("the data file was opened read-only or predates fraud state")
			}
			err := b.Each(k, func(key string, val []byte) error {
				if val == nil {
					return bk.Delete([]byte(key))
				}
				return bk.Put([]byte(key), val)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", fraudstate.KindNames[k], err)
			}
		}
		return nil
	})
}

// LoadState implements fraudstate.Backend. A file that predates fraud state
// has none.
func (s *Store) LoadState(k fraudstate.Kind, fn func(key string, val []byte) error) error {
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState[k])
		if b == nil {
			return nil
		}
		return b.ForEach(func(key, val []byte) error { return fn(string(key), val) })
	})
}
