package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

// rawEdit changes the data file behind the store's back, as damage would:
// no seal, no digest update.
func rawEdit(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// flipIn flips one byte of a live record: the first occurrence of needle
// in bucket/key's key and value as stored, in every copy of them in the
// file (bbolt leaves copies of unchanged records in freed pages, which
// nothing reads).
func flipIn(t *testing.T, dir, bucket, key, needle string, at int) {
	t.Helper()
	var kv []byte
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		kv = append([]byte(key), tx.Bucket([]byte(bucket)).Get([]byte(key))...)
		return nil
	})
	db.Close()
	j := bytes.Index(kv, []byte(needle))
	if j < 0 {
		t.Fatalf("%q not in %s/%s", needle, bucket, key)
	}
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], kv)
		if i < 0 {
			break
		}
		b[off+i+j+at] ^= 0x01
		off += i + len(kv)
		n++
	}
	if n == 0 {
		t.Fatalf("%s/%s not found in the file", bucket, key)
	}
	os.WriteFile(path, b, 0o600)
}

func seeded(t *testing.T) string {
	t.Helper()
	s, dir := openTemp(t)
	steps := []*Change{
		{Accounts: map[string]*policy.Account{"acme": acme(), "beta": {Policy: policy.Policy{MaxCPS: ptr(3)}}}},
		{Operator: &policy.Operator{UnknownAccounts: policy.UnknownReject}},
		{HighRisk: &HighRiskList{Entries: []policy.HighRiskEntry{{Prefix: "+881", Country: "001", Category: "satellite", Source: "itu"}}, Version: "v1"}},
		{Locks: map[string]json.RawMessage{"beta": json.RawMessage(`{"account":"beta","by":"ops"}`)}},
		{Origin: map[string]json.RawMessage{"beta": json.RawMessage(`{"home":"GB"}`)}},
	}
	for _, c := range steps {
		if _, err := s.Commit(c); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return dir
}

// A flipped byte in any record refuses the open, naming the record; with
// Quarantine an account's damaged record (or its lock, or its origin
// state) quarantines the account, while damage to the operator settings or
// the high-risk list still refuses. Before sealing, each of these flips was
// read back as whatever it decoded to.
func TestDamagedRecordsRefusedOrQuarantined(t *testing.T) {
	cases := []struct {
		name, bucket, key, needle string
		at                        int
		want                      string // in the refusal
		quarantine                string // the account quarantined; "" = refused even with Quarantine
	}{
		{"account", "accounts", "acme", `"countries"`, 3, `record accounts/"acme": checksum mismatch`, "acme"},
		{"account deny-all", "accounts", "acme", `"deny"`, 1, `record accounts/"acme"`, "acme"},
		{"account name", "accounts", "acme", `acme`, 0, `bucket "accounts"`, ""}, // the key: which account cannot be known
		{"operator", "operator", "settings", `"unknown_accounts"`, 2, `record operator/"settings"`, ""},
		{"high-risk list", "highrisk", "list", `+881`, 2, `record highrisk/"list"`, ""},
		{"lock", "locks", "beta", `"by":"ops"`, 7, `record locks/"beta"`, "beta"},
		{"origin state", "origin", "beta", `"home":"GB"`, 8, `record origin/"beta"`, "beta"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := seeded(t)
			flipIn(t, dir, tc.bucket, tc.key, tc.needle, tc.at)
			_, err := Open(dir, Options{})
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("damaged %s: got %v, want a refusal naming %s", tc.name, err, tc.want)
			}
			s, err := Open(dir, Options{Quarantine: true})
			if tc.quarantine == "" {
				if err == nil {
					s.Close()
					t.Fatalf("damaged %s was quarantined into a looser policy", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("Quarantine: %v", err)
			}
			defer s.Close()
			set, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := set.Quarantined[tc.quarantine]; !ok || len(set.Quarantined) != 1 {
				t.Fatalf("quarantined %v, want %s", set.Quarantined, tc.quarantine)
			}
			if tc.quarantine == "acme" {
				if _, ok := set.Accounts["acme"]; ok {
					t.Fatal("the damaged account was loaded")
				}
			}
			// Writing the account again releases it and drops its damaged
			// records; the next open is clean.
			if _, err := s.Commit(&Change{Accounts: map[string]*policy.Account{tc.quarantine: acme()}}); err != nil {
				t.Fatal(err)
			}
			if q := s.Quarantined(); len(q) != 0 {
				t.Fatalf("still quarantined after a write: %v", q)
			}
			s.Close()
			s2, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("open after the account was written again: %v", err)
			}
			s2.Close()
		})
	}
}

// The digests catch what no single record can: a record gone (a damaged
// page hiding it), and a stale copy of an older version, which seals.
func TestDigestsCatchMissingAndStaleRecords(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := seeded(t)
		rawEdit(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketAccounts).Delete([]byte("acme")) })
		if _, err := Open(dir, Options{Quarantine: true}); err == nil || !strings.Contains(err.Error(), `bucket "accounts" holds 1 records that do not add up`) {
			t.Fatalf("a vanished account: %v", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		s, dir := openTemp(t)
		open := &policy.Account{}
		s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": open}})
		var old []byte
		s.view(func(tx *bolt.Tx) error { old = bytes.Clone(tx.Bucket(bucketAccounts).Get([]byte("acme"))); return nil })
		s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}})
		s.Close()
		rawEdit(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketAccounts).Put([]byte("acme"), old) })
		if _, err := Open(dir, Options{Quarantine: true}); err == nil || !strings.Contains(err.Error(), "missing, extra or stale") {
			t.Fatalf("a stale (looser) version of acme: %v", err)
		}
	})
	t.Run("extra", func(t *testing.T) {
		dir := seeded(t)
		rawEdit(t, dir, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketAccounts).Put([]byte("zed"), seal(bucketAccounts, []byte("zed"), []byte(`{}`)))
		})
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "do not add up") {
			t.Fatalf("an extra account: %v", err)
		}
	})
}

// A sealed record that is not a strict document (a duplicate key, a key in
// the wrong case) is refused with its name, not read the lenient way.
func TestStrictRecords(t *testing.T) {
	for _, doc := range []string{
		`{"countries":{"default":"deny","except":["US"]},"countries":{"default":"allow","except":[]}}`,
		`{"Max_Channels":5}`,
		`{"max_cps":1,"extra":true}`,
	} {
		s, dir := openTemp(t)
		s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}})
		s.Close()
		rawEdit(t, dir, func(tx *bolt.Tx) error {
			r, err := beginRecords(tx)
			if err != nil {
				return err
			}
			if err := r.put(bucketAccounts, []byte("acme"), []byte(doc)); err != nil {
				return err
			}
			return r.finish()
		})
		s2, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s2.Load()
		s2.Close()
		if err == nil || !strings.Contains(err.Error(), `record accounts/"acme"`) {
			t.Fatalf("%s: %v", doc, err)
		}
	}
}

// A version 1 file (written by the previous binary: testdata/v1.db) is
// sealed on the first writable open and reads back the same; read-only it
// is refused with what to do. Afterwards a flipped byte is caught, where
// version 1 read it back silently.
func TestMigrateV1(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	os.WriteFile(path, src, 0o600)
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "format version 1") {
		t.Fatalf("read-only open of a version 1 file: %v", err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("upgrading a version 1 file: %v", err)
	}
	set, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	a := set.Accounts["acme"]
	if len(set.Accounts) != 2 || a.Countries == nil || a.Countries.Default != policy.Deny || *a.MaxChannels != 160 || *a.Subaccounts["sales"].MaxCPS != 5 {
		t.Fatalf("accounts after the upgrade: %+v", set.Accounts)
	}
	if set.Operator.DisabledCountries["KP"].Reason != "sanctions" || len(set.HighRisk) != 2 {
		t.Fatalf("operator or high-risk list after the upgrade: %+v %+v", set.Operator, set.HighRisk)
	}
	locks, _ := s.Locks()
	orig, _ := s.Origin()
	deck, _, err := s.RateDeck()
	audit, _ := s.Audit(0, 0)
	if len(locks) != 1 || len(orig) != 1 || err != nil || deck == nil || len(deck.Entries) != 2 || len(audit) != 6 {
		t.Fatalf("locks %v origin %v deck %v %v audit %d", locks, orig, deck, err, len(audit))
	}
	var version string
	s.view(func(tx *bolt.Tx) error { version = string(tx.Bucket(bucketMeta).Get(keyVersion)); return nil })
	if version != "2" {
		t.Fatalf("version after the upgrade: %q", version)
	}
	s.Close()
	if ro, err := Open(dir, Options{ReadOnly: true}); err != nil {
		t.Fatalf("read-only open after the upgrade: %v", err)
	} else {
		ro.Close()
	}
	flipIn(t, dir, "accounts", "acme", `"deny"`, 1)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), `accounts/"acme"`) {
		t.Fatalf("a flip in an upgraded file: %v", err)
	}
}

// A version 1 file whose record is already unreadable is not sealed (that
// would bless the damage): the upgrade refuses, naming the record, and
// leaves the file as it was.
func TestMigrateV1RefusesDamage(t *testing.T) {
	orig, _ := os.ReadFile(filepath.Join("testdata", "v1.db"))
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	os.WriteFile(path, orig, 0o600)
	flipIn(t, dir, "accounts", "acme", `"countries"`, 3) // "countries" -> "cotntries": dropped by json.Unmarshal
	src, _ := os.ReadFile(path)
	_, err := Open(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), `accounts/"acme"`) || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("upgrading a damaged version 1 file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, src) {
		t.Fatal("the refused file was changed")
	}
}

// A first start is a fresh data dir; one that has held state and lost its
// data file (deleted or truncated) refuses to start, naming what it found,
// until Init re-creates it deliberately.
func TestDataDirStates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := Open(dir, Options{FreshOperator: FreshOperator()})
	if err != nil || !s.Created() {
		t.Fatalf("first start in a fresh dir: %v", err)
	}
	set, _ := s.Load()
	if set.Operator.UnknownAccounts != policy.UnknownReject {
		t.Fatalf("fresh operator settings %+v", set.Operator)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err != nil {
		t.Fatalf("marker: %v", err)
	}
	s, err = Open(dir, Options{FreshOperator: FreshOperator()})
	if err != nil || s.Created() {
		t.Fatalf("second start: %v", err)
	}
	s.Close()

	for _, tc := range []struct {
		name   string
		damage func(path string)
		want   string
	}{
		{"deleted", func(p string) { os.Remove(p) }, "is missing"},
		{"truncated", func(p string) { os.Truncate(p, 0) }, "is empty (0 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			s, _ := Open(d, Options{})
			s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}})
			s.Close()
			tc.damage(filepath.Join(d, FileName))
			_, err := Open(d, Options{})
			var me *MissingError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), MarkerFile) ||
				!strings.Contains(err.Error(), "-init-data-dir") {
				t.Fatalf("got %v", err)
			}
			s, err = Open(d, Options{Init: true, FreshOperator: FreshOperator()})
			if err != nil || !s.Created() {
				t.Fatalf("Init: %v", err)
			}
			s.Close()
			if _, err := Open(d, Options{Init: true}); err == nil || !strings.Contains(err.Error(), "never replaced") {
				t.Fatalf("Init over an existing data file: %v", err)
			}
		})
	}
	t.Run("token file only", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "admin.token"), []byte("x\n"), 0o600)
		if _, err := Open(d, Options{}); err == nil || !strings.Contains(err.Error(), "admin.token") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("foreign files", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "notes.txt"), nil, 0o600)
		if _, err := Open(d, Options{}); err == nil || !strings.Contains(err.Error(), "notes.txt") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("leftovers of an interrupted first start", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, FileName+tempSuffix), []byte("half"), 0o600)
		os.MkdirAll(filepath.Join(d, "lost+found"), 0o700)
		s, err := Open(d, Options{})
		if err != nil || !s.Created() {
			t.Fatalf("got %v", err)
		}
		s.Close()
		if _, err := os.Stat(filepath.Join(d, FileName+tempSuffix)); !os.IsNotExist(err) {
			t.Fatalf("temporary file left: %v", err)
		}
	})
}

// A first start that fails at any step (a full disk, injected here) leaves
// no data file and no temporary file behind, so the next start is a first
// start again; before, bbolt's 4096-byte stub blocked every later start.
func TestCreateFailureLeavesNothing(t *testing.T) {
	for _, step := range []string{"open", "init", "rename", "write " + MarkerFile} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			createHook = func(s string) error {
				if s == step {
					return errors.New("no space left on device (injected)")
				}
				return nil
			}
			s, err := Open(dir, Options{})
			createHook = nil
			if err == nil {
				s.Close()
				t.Fatal("a failed first start succeeded")
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != FileName { // the marker step fails after the file is in place
					t.Errorf("left behind: %s", e.Name())
				}
			}
			if step != "write "+MarkerFile && len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatalf("the start after a failed first start: %v", err)
			}
			s.Close()
		})
	}
}

// Two first starts on the same fresh dir at the same moment: one serves,
// the other is refused, and the one serving is never left writing to a
// file the other renamed away (its writes are in the data file).
func TestConcurrentFirstStarts(t *testing.T) {
	for i := 0; i < 20; i++ {
		dir := filepath.Join(t.TempDir(), "data")
		type res struct {
			s   *Store
			err error
		}
		ch := make(chan res, 2)
		for j := 0; j < 2; j++ {
			go func() {
				s, err := Open(dir, Options{Timeout: 300 * time.Millisecond})
				ch <- res{s, err}
			}()
		}
		a, b := <-ch, <-ch
		if (a.err == nil) == (b.err == nil) {
			t.Fatalf("round %d: both or neither opened: %v / %v", i, a.err, b.err)
		}
		s := a.s
		if s == nil {
			s = b.s
		}
		if _, err := s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Account("acme"); !ok {
			t.Fatalf("round %d: an acknowledged write went to a replaced file", i)
		}
		s.Close()
		if tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tempSuffix)); len(tmps) > 0 {
			t.Fatalf("round %d: left %v", i, tmps)
		}
	}
}

// A flipped byte in the meta page of the latest write made bbolt fall back
// to the other meta page, silently undoing that write (here: a deny-all
// rule); it is refused. Damage to the older meta page loses nothing.
func TestLatestMetaPageDamage(t *testing.T) {
	for _, latest := range []bool{true, false} {
		s, dir := openTemp(t)
		s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": {}}})
		s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}})
		s.Close()
		path := filepath.Join(dir, FileName)
		b, _ := os.ReadFile(path)
		ps := os.Getpagesize()
		tx0, tx1 := le.Uint64(b[pageHeaderSize+48:]), le.Uint64(b[ps+pageHeaderSize+48:])
		off := 0
		if (tx1 > tx0) == latest {
			off = ps
		}
		b[off+pageHeaderSize+20] ^= 0x04 // inside the checksummed meta: its root page id
		os.WriteFile(path, b, 0o600)
		s2, err := Open(dir, Options{Quarantine: true})
		if latest {
			if err == nil || !strings.Contains(err.Error(), "the meta page of the latest write") {
				if err == nil {
					set, _ := s2.Load()
					s2.Close()
					t.Fatalf("opened, acme %+v", set.Accounts["acme"])
				}
				t.Fatalf("latest meta page damaged: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("older meta page damaged: %v", err)
		}
		set, err := s2.Load()
		s2.Close()
		if err != nil || set.Accounts["acme"].Countries == nil {
			t.Fatalf("older meta page damaged: %v %+v", err, set.Accounts["acme"])
		}
	}
}

// The audit log's sequence damaged below its last entry would make the next
// write overwrite history: refused.
func TestAuditSequenceDamage(t *testing.T) {
	dir := seeded(t)
	rawEdit(t, dir, func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).SetSequence(2) })
	if _, err := Open(dir, Options{Quarantine: true}); err == nil || !strings.Contains(err.Error(), "sequence 2 is below its last entry 5") {
		t.Fatalf("got %v", err)
	}
}

// A subaccount's damaged origin state (key "account/sub") quarantines its
// account.
func TestSubaccountOriginDamageQuarantinesAccount(t *testing.T) {
	s, dir := openTemp(t)
	s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}, Origin: map[string]json.RawMessage{"acme/sales": json.RawMessage(`{"home":"GB"}`)}})
	s.Close()
	flipIn(t, dir, "origin", "acme/sales", `"GB"`, 1)
	s2, err := Open(dir, Options{Quarantine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if q := s2.Quarantined(); len(q) != 1 || q["acme"] == "" {
		t.Fatalf("quarantined %v", q)
	}
	if _, err := s2.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}}); err != nil {
		t.Fatal(err)
	}
	if o, err := s2.Origin(); err != nil || len(o) != 0 {
		t.Fatalf("the damaged state was not dropped with the write: %v %v", o, err)
	}
}

// The fraud state is sealed like the rest: a damaged velocity scope
// quarantines its account, a damaged live call refuses the start (which
// account it counts against is in the damaged payload), a damaged alert is
// left out with the flag.
func TestFraudStateSealed(t *testing.T) {
	for _, tc := range []struct {
		kind       fraudstate.Kind
		key        string
		quarantine string // "" refused even with Quarantine; "-" opens, nothing quarantined
	}{
		{fraudstate.Scopes, "acme/sales", "acme"},
		{fraudstate.Calls, "call-1", ""},
		{fraudstate.Alerts, "a1", "-"},
	} {
		s, dir := openTemp(t)
		var b fraudstate.Batch
		b.Put(tc.kind, tc.key, []byte(`{"spend_micro":123456789}`))
		if err := s.WriteState(&b); err != nil {
			t.Fatal(err)
		}
		s.Close()
		flipIn(t, dir, string(bucketState[tc.kind]), tc.key, `123456789`, 3)
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), string(bucketState[tc.kind])+"/") {
			t.Fatalf("%s: %v", tc.key, err)
		}
		s2, err := Open(dir, Options{Quarantine: true})
		switch {
		case tc.quarantine == "" && err == nil:
			s2.Close()
			t.Fatalf("%s: a damaged live call was quarantined", tc.key)
		case tc.quarantine == "":
			continue
		case err != nil:
			t.Fatalf("%s: %v", tc.key, err)
		}
		q := s2.Quarantined()
		if (tc.quarantine == "-" && len(q) != 0) || (tc.quarantine != "-" && q[tc.quarantine] == "") {
			t.Errorf("%s: quarantined %v", tc.key, q)
		}
		n := 0
		s2.LoadState(tc.kind, func(string, []byte) error { n++; return nil })
		if n != 0 {
			t.Errorf("%s: the damaged record was loaded", tc.key)
		}
		s2.Close()
	}
}
