package service

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	bolt "go.etcd.io/bbolt"
)

// damageQueries are the decisions the flip audit compares: a deny-all
// account, an allow-all account under the high-risk list, and an unknown
// account (the default policy, which allows everything not high-risk).
var damageQueries = []matcher.Query{
	{Account: "acme", To: "+5355512345"},    // deny-all: Cuba barred
	{Account: "acme", To: "+14155550123"},   // US allowed
	{Account: "acme", To: "+442071234567"},  // GB barred
	{Account: "acme", To: "+881631234567"},  // satellite barred
	{Account: "beta", To: "+881631234567"},  // high-risk list
	{Account: "beta", To: "+5355512345"},    // high-risk list (+53)
	{Account: "beta", To: "+442071234567"},  // allowed
	{Account: "beta", To: "+85021234567"},   // operator: KP disabled
	{Account: "ghost", To: "+14155550123"},  // unknown: default policy
	{Account: "ghost", To: "+881631234567"}, // unknown: high-risk list
}

type decision struct {
	action      matcher.Action
	reason      string
	maxChannels int
	maxCPS      int
}

func decisions(m *matcher.Matcher) []decision {
	out := make([]decision, len(damageQueries))
	for i := range damageQueries {
		q := damageQueries[i]
		v := m.Decide(&q)
		out[i] = decision{v.Action, v.Reason.String(), v.MaxChannels, v.MaxCPS}
	}
	return out
}

// damageFixture writes the audit's data file: a deny-all account with caps
// and a home country, an allow-all account, the operator's KP switched off,
// and a stored high-risk list.
func damageFixture(t *testing.T) (path string, want []decision) {
	t.Helper()
	dir := t.TempDir()
	f := open(t, dir, Options{})
	acme := denyAllBut("US")
	acme.HomeCountry, acme.MaxChannels, acme.MaxCPS = ptr("US"), ptr(10), ptr(5)
	acme.Subaccounts = map[string]policy.Policy{"sales": {MaxCPS: ptr(2)}}
	if _, err := f.svc.PutAccount(admin, "acme", acme); err != nil {
		t.Fatal(err)
	}
	beta := policy.Account{Policy: policy.Policy{HighRisk: ptr(policy.HighRiskBlock), MaxChannels: ptr(30)}}
	if _, err := f.svc.PutAccount(admin, "beta", beta); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.DisableCountry(admin, "KP", "sanctions"); err != nil {
		t.Fatal(err)
	}
	csv := "prefix,country,category,source\n+881,001,satellite,itu\n+53,CU,irsf,ops\n+4470,GB,premium_rate,ofcom\n"
	l, err := policy.ParseHighRiskList(strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutHighRisk(admin, l, []byte(csv)); err != nil {
		t.Fatal(err)
	}
	want = decisions(f.m)
	f.st.Close()
	return filepath.Join(dir, store.FileName), want
}

// flipTargets are the offsets of every byte of every live record (key and
// value, in every copy bbolt left in the file) and of the meta pages, where
// a flip changes what is read; the rest of the file is mostly page slack.
func flipTargets(t *testing.T, path string, file []byte) []int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Both of bbolt's meta pages (the part its checksum covers): damage
	// to the latest one used to roll the file back one write.
	var out []int
	for _, page := range []int{0, os.Getpagesize()} {
		for i := 16; i < 16+64; i++ {
			out = append(out, page+i)
		}
	}
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				kv := append(append([]byte(nil), k...), v...)
				for off := 0; ; {
					i := bytes.Index(file[off:], kv)
					if i < 0 {
						return nil
					}
					for j := range kv {
						out = append(out, off+i+j)
					}
					off += i + len(kv)
				}
			})
		})
	})
	return out
}

// openDamaged opens a copy of file with opt and loads it; the error is the
// refusal, if any.
func openDamaged(t *testing.T, file []byte, opt store.Options) (*matcher.Matcher, error) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), file, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, opt)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	m := matcher.New(plan, matcher.Options{})
	svc := New(m, plan, st, Options{Logger: zerolog.Nop()})
	if err := svc.Load(); err != nil {
		return nil, err
	}
	return m, nil
}

// TestFlipsNeverLoosen reproduces the audit of issue 12: it flips one byte
// (or one bit) of the data file at a time, 200 times with a fixed seed,
// half of them inside live records and half anywhere, and requires every
// damaged file to either refuse the start or decide exactly as before.
// On the version 1 format (no checksums, lenient decoding) flips dropped
// the deny-all rule, a high-risk prefix or the caps without a word.
func TestFlipsNeverLoosen(t *testing.T) {
	path, want := damageFixture(t)
	genuine, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	targets := flipTargets(t, path, genuine)
	rng := rand.New(rand.NewPCG(12, 2026))
	n := 200
	if testing.Short() {
		n = 40
	}
	refused, same := 0, 0
	for i := 0; i < n; i++ {
		b := bytes.Clone(genuine)
		off := rng.IntN(len(b))
		if i%2 == 0 {
			off = targets[rng.IntN(len(targets))]
		}
		mask := byte(1) << rng.IntN(8)
		if i%4 >= 2 {
			mask = byte(1 + rng.IntN(255))
		}
		b[off] ^= mask
		m, err := openDamaged(t, b, store.Options{})
		if err != nil {
			refused++
			continue
		}
		got := decisions(m)
		for j := range want {
			if got[j] != want[j] {
				t.Errorf("flip %d (offset %d ^ %#02x) changed %s → %s: %+v, was %+v", i, off, mask, damageQueries[j].Account, damageQueries[j].To, got[j], want[j])
			}
		}
		same++
	}
	t.Logf("%d flips: %d refused the start, %d decided as before", n, refused, same)
}

// TestQuarantineNeverLoosens runs the same flips with -quarantine-damaged:
// a start that is not refused decides as before, except that a quarantined
// account's calls are all refused (account_quarantined).
func TestQuarantineNeverLoosens(t *testing.T) {
	path, want := damageFixture(t)
	genuine, _ := os.ReadFile(path)
	targets := flipTargets(t, path, genuine)
	rng := rand.New(rand.NewPCG(12, 2027))
	quarantined := 0
	for i := 0; i < 100; i++ {
		b := bytes.Clone(genuine)
		off := targets[rng.IntN(len(targets))]
		b[off] ^= byte(1) << rng.IntN(8)
		m, err := openDamaged(t, b, store.Options{Quarantine: true})
		if err != nil {
			continue
		}
		got := decisions(m)
		for j := range want {
			if got[j] == want[j] {
				continue
			}
			if got[j].action == matcher.Reject && got[j].reason == "account_quarantined" && damageQueries[j].Account != "ghost" {
				quarantined++
				continue
			}
			t.Errorf("flip %d (offset %d) changed %s → %s: %+v, was %+v", i, off, damageQueries[j].Account, damageQueries[j].To, got[j], want[j])
		}
	}
	if quarantined == 0 {
		t.Error("no flip quarantined an account: the test does not reach the quarantine")
	}
}

// A quarantined account is refused whatever it dials (emergency numbers
// aside), its subaccounts too, and a PUT of the account releases it.
func TestQuarantinedAccountRefused(t *testing.T) {
	path, _ := damageFixture(t)
	dir := filepath.Dir(path)
	// Damage acme's record (every copy of it): its deny-all rule becomes
	// unreadable.
	var kv []byte
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		kv = append([]byte("acme"), tx.Bucket([]byte("accounts")).Get([]byte("acme"))...)
		return nil
	})
	db.Close()
	j := bytes.Index(kv, []byte(`"deny"`))
	b, _ := os.ReadFile(path)
	targets := 0
	for off := 0; ; {
		i := bytes.Index(b[off:], kv)
		if i < 0 {
			break
		}
		b[off+i+j+1] ^= 0x01
		off += i + len(kv)
		targets++
	}
	if targets == 0 || j < 0 {
		t.Fatal("acme's record not found in the file")
	}
	os.WriteFile(path, b, 0o600)
	if _, err := store.Open(dir, store.Options{}); err == nil || !strings.Contains(err.Error(), `accounts/"acme"`) {
		t.Fatalf("a damaged account did not refuse the start: %v", err)
	}
	st, err := store.Open(dir, store.Options{Quarantine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := matcher.New(plan, matcher.Options{})
	svc := New(m, plan, st, Options{Logger: zerolog.Nop()})
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []matcher.Query{
		{Account: "acme", To: "+14155550123"},
		{Account: "acme", Subaccount: "sales", To: "+14155550123"},
		{Account: "acme", To: "+5355512345"},
	} {
		v := m.Decide(&q)
		if v.Action != matcher.Reject || v.Reason != matcher.ReasonAccountQuarantined {
			t.Errorf("%+v: %v %v", q, v.Action, v.Reason)
		}
		if rule := string(v.AppendRule(nil)); !strings.Contains(rule, "quarantined") {
			t.Errorf("rule text %q", rule)
		}
	}
	if v := m.Decide(&matcher.Query{Account: "acme", To: "911"}); v.Reason != matcher.ReasonEmergency {
		t.Errorf("emergency call of a quarantined account: %v", v.Reason)
	}
	if v := m.Decide(&matcher.Query{Account: "beta", To: "+442071234567"}); v.Action != matcher.Allow {
		t.Errorf("another account: %v %v", v.Action, v.Reason)
	}
	if _, err := svc.Account("acme"); err == nil || !strings.Contains(err.Error(), "quarantined: record accounts/\"acme\": checksum mismatch") {
		t.Errorf("GET of a quarantined account: %v", err)
	}
	if _, err := svc.PutAccount(admin, "acme", denyAllBut("US")); err != nil {
		t.Fatal(err)
	}
	if v := m.Decide(&matcher.Query{Account: "acme", To: "+14155550123"}); v.Action != matcher.Allow {
		t.Errorf("after PUT: %v %v", v.Action, v.Reason)
	}
	if v := m.Decide(&matcher.Query{Account: "acme", To: "+442071234567"}); v.Reason != matcher.ReasonCountryBarred {
		t.Errorf("after PUT: %v", v.Reason)
	}
	st.Close()
	st2, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatalf("a clean start after the account was written again: %v", err)
	}
	st2.Close()
}
