package store

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite testdata/*.db")

func ptr[T any](v T) *T { return &v }

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func acme() *policy.Account {
	return &policy.Account{
		Policy: policy.Policy{
			HomeCountry: ptr("US"),
			Countries:   &policy.CountryRule{Default: policy.Deny, Except: []string{"CA", "US"}},
			MaxChannels: ptr(160),
		},
		Subaccounts: map[string]policy.Policy{"sales": {MaxCPS: ptr(5)}},
	}
}

func TestRoundTrip(t *testing.T) {
	s, dir := openTemp(t)
	set, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Accounts) != 0 || set.HighRisk != nil {
		t.Fatalf("fresh store not empty: %+v", set)
	}
	hr := []policy.HighRiskEntry{
		{Prefix: "+881", Country: "001", Category: "satellite", Source: "itu"},
		{Prefix: "+53", Country: "CU", Category: "irsf, \"quoted\"", Source: "ops\nteam"},
	}
	op := &policy.Operator{
		DisabledCountries: map[string]policy.DisabledCountry{"KP": {Reason: "sanctions"}},
		BlockedPrefixes:   []policy.BlockedPrefix{{Prefix: "+4470", Reason: "fraud"}},
		UnknownAccounts:   policy.UnknownReject,
	}
	steps := []*Change{
		{Audit: AuditEntry{Who: "admin", Action: "account.put", Object: "accounts/acme", After: json.RawMessage(`{"a":1}`)},
			Accounts: map[string]*policy.Account{"acme": acme(), "beta": {}}},
		{Audit: AuditEntry{Who: "admin", Action: "operator.put", Object: "operator"}, Operator: op},
		{Audit: AuditEntry{Who: "ops", Action: "high_risk.put", Object: "high-risk"},
			HighRisk: &HighRiskList{Entries: hr, Version: "v7", Source: "api:ops", Updated: time.Unix(1700000000, 0)}},
		{Audit: AuditEntry{Who: "admin", Action: "account.delete", Object: "accounts/beta"},
			Accounts: map[string]*policy.Account{"beta": nil}},
	}
	for i, c := range steps {
		id, err := s.Commit(c)
		if err != nil {
			t.Fatal(err)
		}
		if id != uint64(i+1) {
			t.Fatalf("audit id %d, want %d", id, i+1)
		}
	}
	// Reopen: everything must come back from disk.
	s.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	set, err = s2.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Accounts) != 1 {
		t.Fatalf("accounts %v", set.Accounts)
	}
	got, _ := json.Marshal(set.Accounts["acme"])
	want, _ := json.Marshal(acme())
	if string(got) != string(want) {
		t.Fatalf("acme:\n got %s\nwant %s", got, want)
	}
	if set.Operator.UnknownAccounts != policy.UnknownReject || set.Operator.DisabledCountries["KP"].Reason != "sanctions" ||
		len(set.Operator.BlockedPrefixes) != 1 {
		t.Fatalf("operator %+v", set.Operator)
	}
	if len(set.HighRisk) != 2 || set.HighRisk[1] != hr[1] {
		t.Fatalf("high risk %+v", set.HighRisk)
	}
	m, err := s2.HighRiskMeta()
	if err != nil || !m.Stored || m.Version != "v7" || m.Source != "api:ops" || m.Count != 2 || !m.Updated.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("meta %+v %v", m, err)
	}
	a, ok, err := s2.Account("acme")
	if err != nil || !ok || *a.MaxChannels != 160 {
		t.Fatalf("Account: %+v %v %v", a, ok, err)
	}
	if _, ok, _ := s2.Account("beta"); ok {
		t.Fatal("deleted account still there")
	}

	audit, err := s2.Audit(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 4 || audit[0].ID != 4 || audit[3].ID != 1 || audit[0].Action != "account.delete" {
		t.Fatalf("audit newest first: %+v", audit)
	}
	if string(audit[3].After) != `{"a":1}` || string(audit[3].Before) != "null" {
		t.Fatalf("audit before/after: %s %s", audit[3].Before, audit[3].After)
	}
	for _, tc := range []struct {
		limit  int
		before uint64
		ids    []uint64
	}{
		{2, 0, []uint64{4, 3}},
		{2, 3, []uint64{2, 1}},
		{0, 2, []uint64{1}},
		{5, 1, nil},
		{1, 99, []uint64{4}},
	} {
		got, err := s2.Audit(tc.limit, tc.before)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if len(ids) != len(tc.ids) || (len(ids) > 0 && ids[0] != tc.ids[0]) {
			t.Errorf("Audit(%d,%d) = %v, want %v", tc.limit, tc.before, ids, tc.ids)
		}
	}

	// Dropping the list reverts to "not stored".
	if _, err := s2.Commit(&Change{Audit: AuditEntry{Action: "high_risk.delete"}, DropHighRisk: true}); err != nil {
		t.Fatal(err)
	}
	set, _ = s2.Load()
	if set.HighRisk != nil {
		t.Fatal("dropped list still loaded")
	}
	// An empty stored list is not the same as none.
	if _, err := s2.Commit(&Change{Audit: AuditEntry{Action: "high_risk.put"}, HighRisk: &HighRiskList{}}); err != nil {
		t.Fatal(err)
	}
	set, _ = s2.Load()
	if set.HighRisk == nil || len(set.HighRisk) != 0 {
		t.Fatalf("empty stored list: %#v", set.HighRisk)
	}
}

// A failed transaction writes nothing: neither the change nor its audit entry.
func TestCommitAtomic(t *testing.T) {
	s, _ := openTemp(t)
	bad := &Change{
		Audit:    AuditEntry{Action: "account.put"},
		Accounts: map[string]*policy.Account{"ok": {}, strings.Repeat("k", bolt.MaxKeySize+1): {}},
	}
	if _, err := s.Commit(bad); err == nil {
		t.Fatal("oversized key accepted")
	}
	set, _ := s.Load()
	audit, _ := s.Audit(0, 0)
	if len(set.Accounts) != 0 || len(audit) != 0 {
		t.Fatalf("half a change written: %v %v", set.Accounts, audit)
	}
}

func TestReadOnlyAndLock(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("read-only open of missing file: %v", err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(dir, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("open while locked: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("lock wait ignored the timeout")
	}
	s.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	set, err := ro.Load()
	if err != nil || len(set.Accounts) != 1 {
		t.Fatalf("read-only load: %v %v", set, err)
	}
	if _, err := ro.Commit(&Change{}); err == nil {
		t.Fatal("read-only store accepted a write")
	}
}

// A zero-length data file (truncated, or left by an older tollgate's
// interrupted first start) and a bbolt file with no buckets at all used to
// start fresh, with an empty policy: both are refused now, with what to do.
func TestFreshFiles(t *testing.T) {
	t.Run("zero-length", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, FileName), nil, 0o600)
		_, err := Open(dir, Options{})
		var me *MissingError
		if !errors.As(err, &me) || !me.Empty || !strings.Contains(err.Error(), "-init-data-dir") {
			t.Fatalf("zero-length data file: %v", err)
		}
		s, err := Open(dir, Options{Init: true})
		if err != nil {
			t.Fatalf("-init-data-dir over a zero-length file: %v", err)
		}
		s.Close()
	})
	t.Run("bucketless", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = Open(dir, Options{})
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "no tollgate data") {
			t.Fatalf("bucketless file: %v", err)
		}
	})
}

// badFixtures are data files Open must refuse, each with the words the
// operator needs to see. They are generated by TestGenerateFixtures
// (-update-fixtures) and checked in, so a change in bbolt's on-disk handling
// shows up here.
var badFixtures = []struct {
	file string
	want string
}{
	{"foreign-bbolt.db", `not a tollgate data file (a bbolt database with buckets ["users"]`},
	{"foreign-marker.db", `not a tollgate data file (format marker "someapp")`},
	{"sqlite.db", "not a tollgate data file (not a bbolt database)"},
	{"text.db", "too short to be a tollgate data file"},
	{"newer-version.db", "written by a newer tollgate (format version 99"},
	{"missing-bucket.db", `damaged (bucket "audit" is missing)`},
	{"corrupt-meta.db", "the file is damaged"},
	{"corrupt-pages.db", "the file is damaged"},
	{"truncated.db", "the file is damaged"},
}

func TestRefuseBadFiles(t *testing.T) {
	for _, tc := range badFixtures {
		t.Run(tc.file, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				dir := t.TempDir()
				path := filepath.Join(dir, FileName)
				if err := os.WriteFile(path, src, 0o600); err != nil {
					t.Fatal(err)
				}
				s, err := Open(dir, Options{ReadOnly: ro, Timeout: 200 * time.Millisecond})
				if err == nil {
					// Some damage only shows when the data is read.
					_, err = s.Load()
					s.Close()
				}
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("readonly=%v: want a FormatError, got %v", ro, err)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "refusing") {
					t.Fatalf("readonly=%v: error %q does not say %q", ro, err, tc.want)
				}
				after, _ := os.ReadFile(path)
				if string(after) != string(src) {
					t.Fatalf("readonly=%v: the refused file was modified", ro)
				}
			}
		})
	}
}

// TestGenerateFixtures rewrites testdata/*.db; run with -update-fixtures.
func TestGenerateFixtures(t *testing.T) {
	if !*updateFixtures {
		t.Skip("run with -update-fixtures to rewrite testdata")
	}
	mk := func(name string, fn func(tx *bolt.Tx) error) string {
		path := filepath.Join("testdata", name)
		os.Remove(path)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fn != nil {
			if err := db.Update(fn); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		return path
	}
	os.MkdirAll("testdata", 0o755)
	mk("foreign-bbolt.db", func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("users"))
		return b.Put([]byte("alice"), []byte("{}"))
	})
	mk("foreign-marker.db", func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket(bucketMeta)
		return b.Put(keyFormat, []byte("someapp"))
	})
	sqlite := append([]byte("SQLite format 3\x00"), make([]byte, 8192)...)
	os.WriteFile(filepath.Join("testdata", "sqlite.db"), sqlite, 0o644)
	os.WriteFile(filepath.Join("testdata", "text.db"), []byte("accounts:\n  acme: allow\n"), 0o644)

	// A genuine tollgate file to damage in various ways.
	genuine := func(name string) string {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			a := acme()
			a.Subaccounts["s"+strings.Repeat("x", i)] = policy.Policy{MaxCPS: ptr(i)}
			name := "acct" + strings.Repeat("y", i*40)
			if _, err := s.Commit(&Change{Accounts: map[string]*policy.Account{name: a}}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		b, _ := os.ReadFile(filepath.Join(dir, FileName))
		path := filepath.Join("testdata", name)
		os.WriteFile(path, b, 0o644)
		return path
	}
	edit := func(path string, fn func(tx *bolt.Tx) error) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	edit(genuine("newer-version.db"), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte("99"))
	})
	edit(genuine("missing-bucket.db"), func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketAudit) })

	// Both meta pages with a flipped byte: bbolt's checksums catch it.
	p := genuine("corrupt-meta.db")
	b, _ := os.ReadFile(p)
	ps := os.Getpagesize()
	b[16+40] ^= 0xff
	b[ps+16+40] ^= 0xff
	os.WriteFile(p, b, 0o644)

	// Intact meta pages, garbage in every data page.
	p = genuine("corrupt-pages.db")
	b, _ = os.ReadFile(p)
	for off := 2 * ps; off < len(b); off += ps {
		for i := 0; i < 64 && off+i < len(b); i++ {
			b[off+i] = 0xA5
		}
	}
	os.WriteFile(p, b, 0o644)

	// The first half of a genuine file: meta pages valid, data pages gone.
	p = genuine("truncated.db")
	b, _ = os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o644)
}

// TestDamagedFilesNeverCrash damages a genuine file at random — truncated
// anywhere, bytes flipped anywhere — and requires Open and Load to either
// work or return an error: never a panic or a memory fault, which would take
// the daemon down at start with a stack trace instead of a reason.
func TestDamagedFilesNeverCrash(t *testing.T) {
	src := t.TempDir()
	s, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		a := acme()
		name := fmt.Sprintf("acct%03d", i)
		s.Commit(&Change{Accounts: map[string]*policy.Account{name: a}, Audit: AuditEntry{Action: "account.put", After: json.RawMessage(`{"x":"` + strings.Repeat("y", i*20) + `"}`)}})
	}
	s.Close()
	genuine, _ := os.ReadFile(filepath.Join(src, FileName))
	rng := rand.New(rand.NewPCG(1, 2))
	n := 150
	if v := os.Getenv("STORE_DAMAGE_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		b := append([]byte(nil), genuine...)
		switch i % 3 {
		case 0:
			b = b[:4096+rng.IntN(len(b)-4096)]
		case 1:
			for j := 0; j < 1+rng.IntN(8); j++ {
				b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
			}
		case 2:
			off := rng.IntN(len(b) - 64)
			for j := 0; j < 64; j++ {
				b[off+j] = byte(rng.IntN(256))
			}
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, FileName), b, 0o600)
		s, err := Open(dir, Options{ReadOnly: i%2 == 0})
		if err != nil {
			continue
		}
		s.Load()
		s.Audit(0, 0)
		s.Close()
	}
}
