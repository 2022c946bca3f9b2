package service

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/velocity"
)

type vclock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *vclock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vclock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type vfixture struct {
	*fixture
	vel *velocity.Engine
	clk *vclock
}

// openVel opens a service with a velocity engine on the data dir.
func openVel(t *testing.T, dir string, opt Options) *vfixture {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &vclock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	var m *matcher.Matcher
	vel := velocity.New(velocity.Options{Now: clk.Now, Price: func(e164 string) (int64, bool) { return m.Snapshot().Rate(e164) }})
	m = matcher.New(plan, matcher.Options{Velocity: vel})
	opt.Logger = zerolog.Nop()
	opt.Velocity = vel
	opt.Now = clk.Now
	svc := New(m, plan, st, opt)
	if err := svc.Load(); err != nil {
		t.Fatal(err)
	}
	return &vfixture{fixture: &fixture{dir: dir, st: st, m: m, svc: svc}, vel: vel, clk: clk}
}

func TestLockUnlockDurableAndAudited(t *testing.T) {
	dir := t.TempDir()
	f := openVel(t, dir, Options{})
	acme := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}, Subaccounts: map[string]policy.Policy{"sales": {}}}
	if _, err := f.svc.PutAccount(admin, "acme", acme); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Lock(admin, "acme", "", "card testing seen"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Lock(admin, "acme", "sales", "also"); err != nil {
		t.Fatal(err)
	}
	if got := f.reason("+33142685300", "acme"); got != "international_locked" {
		t.Fatalf("locked account: %s", got)
	}
	if got := f.reason("+441614960000", "acme"); got != "ok" {
		t.Fatalf("domestic: %s", got)
	}
	var nf *NotFoundError
	// an unknown account (served by the default policy) is locked by its
	// name, durably (issue 11 item 8); not its subaccounts, nor a bad name
	if _, err := f.svc.Lock(admin, "nobody", "", "typo of acme seen calling CU"); err != nil {
		t.Errorf("lock of an unknown account: %v", err)
	}
	if got := f.reason("+33142685300", "nobody"); got != "international_locked" {
		t.Fatalf("locked unknown account: %s", got)
	}
	if _, err := f.svc.Lock(admin, "nobody", "x", ""); !errors.As(err, &nf) {
		t.Errorf("lock of an unknown account's subaccount: %v", err)
	}
	if _, err := f.svc.Lock(admin, "no body", "", ""); !errors.As(err, &nf) {
		t.Errorf("lock of a bad name: %v", err)
	}
	if _, err := f.svc.Lock(admin, "acme", "nope", ""); !errors.As(err, &nf) {
		t.Errorf("lock of an unknown subaccount: %v", err)
	}
	var inv *InvalidError
	if _, err := f.svc.Lock(admin, "acme", "", strings.Repeat("x", 300)); !errors.As(err, &inv) || inv.Field() != "reason" {
		t.Errorf("long reason: %v", err)
	}
	f.st.Close()

	// a new process: both locks still hold
	g := openVel(t, dir, Options{})
	if got := g.reason("+33142685300", "acme"); got != "international_locked" {
		t.Fatalf("after restart: %s", got)
	}
	if got := g.reason("+33142685300", "nobody"); got != "international_locked" {
		t.Fatalf("unknown account after restart: %s", got)
	}
	ls, _ := g.svc.Locks()
	if len(ls) != 3 || ls[0].By != "admin" || ls[0].Reason != "card testing seen" || ls[1].Subaccount != "sales" || ls[2].Account != "nobody" {
		t.Fatalf("locks after restart %+v", ls)
	}
	if _, err := g.svc.Unlock(admin, "acme", "", "customer confirmed the traffic"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.Unlock(admin, "acme", "", "again"); !errors.As(err, &nf) {
		t.Errorf("second unlock: %v", err)
	}
	if got := g.reason("+33142685300", "acme"); got != "ok" {
		t.Fatalf("after unlock: %s", got)
	}
	q := matcher.Query{To: "+33142685300", Account: "acme", Subaccount: "sales"}
	if v := g.m.Decide(&q); v.Reason != matcher.ReasonInternationalLocked {
		t.Errorf("the subaccount's own lock was lifted too: %s", v.Reason)
	}
	audit, _ := g.svc.Audit(4, 0)
	if audit[0].Action != "unlock" || audit[0].Object != "accounts/acme/lock" || !strings.Contains(string(audit[0].After), "customer confirmed") ||
		audit[1].Action != "lock" || audit[1].Object != "accounts/nobody/lock" ||
		audit[2].Action != "lock" || audit[2].Object != "accounts/acme/subaccounts/sales/lock" || audit[3].Who != "admin" {
		t.Errorf("audit %+v", audit)
	}
	g.st.Close()
	h := openVel(t, dir, Options{})
	if ls, _ := h.svc.Locks(); len(ls) != 2 {
		t.Errorf("unlock not durable: %+v", ls)
	}
}

// An automatic lockdown is stored and audited by the service, so it
// survives a restart.
func TestAutomaticLockdownDurable(t *testing.T) {
	dir := t.TempDir()
	f := openVel(t, dir, Options{})
	acme := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB"), Velocity: &policy.Velocity{
		Rules: []policy.VelocityRule{{Name: "burst", CallsPerMinute: &policy.Threshold{Critical: 3}}}}}}
	if _, err := f.svc.PutAccount(admin, "acme", acme); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f.reason("+33142685300", "acme")
	}
	f.vel.Evaluate()
	if got := f.reason("+33142685300", "acme"); got != "international_locked" {
		t.Fatalf("after the burst: %s", got)
	}
	audit, _ := f.svc.Audit(1, 0)
	if audit[0].Action != "lock" || audit[0].Who != velocity.AutomaticBy || !strings.Contains(string(audit[0].After), `"automatic":true`) {
		t.Fatalf("audit %+v", audit[0])
	}
	f.st.Close()
	g := openVel(t, dir, Options{})
	if got := g.reason("+33142685300", "acme"); got != "international_locked" {
		t.Fatalf("after restart: %s", got)
	}
	// a policy change keeps it; the rules changed take effect at once
	acme.Velocity = nil
	if _, err := g.svc.PutAccount(admin, "acme", acme); err != nil {
		t.Fatal(err)
	}
	if got := g.reason("+33142685300", "acme"); got != "international_locked" {
		t.Fatalf("after a policy change: %s", got)
	}
}

func TestResetVelocity(t *testing.T) {
	f := openVel(t, t.TempDir(), Options{})
	acme := policy.Account{Policy: policy.Policy{Velocity: &policy.Velocity{Action: policy.ActionAlert,
		Rules: []policy.VelocityRule{{CallsPerMinute: &policy.Threshold{Critical: 100}}}}}}
	f.svc.PutAccount(admin, "acme", acme)
	f.reason("+33142685300", "acme")
	f.reason("+33142685300", "acme")
	st, err := f.svc.VelocityState("acme")
	if err != nil || st.Rules[0].Measures["calls_per_minute"].Value != 2 {
		t.Fatalf("state %+v %v", st, err)
	}
	if err := f.svc.ResetVelocity(admin, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.svc.VelocityState("acme"); st.Rules[0].Measures["calls_per_minute"].Value != 0 {
		t.Errorf("not reset: %+v", st)
	}
	audit, _ := f.svc.Audit(1, 0)
	if audit[0].Action != "velocity.reset" || audit[0].Object != "accounts/acme/velocity" || !strings.Contains(string(audit[0].Before), `"value":2`) {
		t.Errorf("audit %+v", audit[0])
	}
	var nf *NotFoundError
	if err := f.svc.ResetVelocity(admin, "nobody", ""); !errors.As(err, &nf) {
		t.Errorf("reset unknown: %v", err)
	}
	if _, err := f.svc.VelocityState("nobody"); !errors.As(err, &nf) {
		t.Errorf("state unknown: %v", err)
	}
	// without an engine the velocity calls are refused, not crashed
	plain := open(t, t.TempDir(), Options{})
	var cf *ConflictError
	if _, err := plain.svc.Locks(); !errors.As(err, &cf) {
		t.Errorf("no engine: %v", err)
	}
}

const deckCSV = "prefix,rate_per_minute,currency\n+33,0.02,EUR\n+88216,1.5,EUR\n"

func TestRateDeckSources(t *testing.T) {
	dir := t.TempDir()
	f := openVel(t, dir, Options{})
	acme := policy.Account{Policy: policy.Policy{MaxDestinationRate: ptr(1.0), HighRisk: ptr(policy.HighRiskAllow)}}
	f.svc.PutAccount(admin, "acme", acme)
	if _, info, _ := f.svc.RateDeck(); info.Origin != OriginNone {
		t.Fatalf("origin %+v", info)
	}
	if got := f.reason("+882161234567", "acme"); got == "rate_exceeded" {
		t.Fatal("no deck, yet priced")
	}
	d, err := policy.ParseRateDeck(strings.NewReader(deckCSV))
	if err != nil {
		t.Fatal(err)
	}
	info, err := f.svc.PutRateDeck(admin, d, []byte(deckCSV))
	if err != nil || info.Origin != OriginStored || info.Entries != 2 || info.Currency != "EUR" || !strings.HasPrefix(info.Version, "sha256:") {
		t.Fatalf("put %+v %v", info, err)
	}
	if got := f.reason("+882161234567", "acme"); got != "rate_exceeded" {
		t.Fatalf("priced above the cap: %s", got)
	}
	// an account change keeps the deck
	f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{MaxDestinationRate: ptr(1.0), HomeCountry: ptr("FR"), HighRisk: ptr(policy.HighRiskAllow)}})
	if got := f.reason("+882161234567", "acme"); got != "rate_exceeded" {
		t.Fatalf("after an account change: %s", got)
	}
	f.st.Close()
	g := openVel(t, dir, Options{})
	if deck, info, _ := g.svc.RateDeck(); info.Origin != OriginStored || deck == nil || !reflect.DeepEqual(*deck, d) {
		t.Fatalf("after restart %+v", info)
	}
	if _, err := g.svc.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := g.reason("+882161234567", "acme"); got != "rate_exceeded" {
		t.Fatalf("after reload: %s", got)
	}
	if info, err := g.svc.DeleteRateDeck(admin); err != nil || info.Origin != OriginNone {
		t.Fatalf("delete %+v %v", info, err)
	}
	var nf *NotFoundError
	if _, err := g.svc.DeleteRateDeck(admin); !errors.As(err, &nf) {
		t.Errorf("second delete: %v", err)
	}
	if got := g.reason("+882161234567", "acme"); got == "rate_exceeded" {
		t.Fatal("deleted deck still prices")
	}
	audit, _ := g.svc.Audit(2, 0)
	if audit[0].Action != "rate_deck.delete" || audit[1].Action != "account.put" {
		t.Errorf("audit %s %s", audit[0].Action, audit[1].Action)
	}
}

// -rate-deck-file is authoritative: reloaded on Reload, a bad file keeps
// the last good deck, and the API may not replace it.
func TestRateDeckFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "deck.csv")
	os.WriteFile(path, []byte(deckCSV), 0o644)
	f := openVel(t, filepath.Join(dir, "data"), Options{RateDeckFile: path})
	f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{MaxDestinationRate: ptr(1.0), HighRisk: ptr(policy.HighRiskAllow)}})
	if _, info, _ := f.svc.RateDeck(); info.Origin != OriginFile || info.Entries != 2 || info.Source != "file:"+path {
		t.Fatalf("info %+v", info)
	}
	if got := f.reason("+882161234567", "acme"); got != "rate_exceeded" {
		t.Fatal(got)
	}
	var cf *ConflictError
	if _, err := f.svc.PutRateDeck(admin, policy.RateDeck{}, nil); !errors.As(err, &cf) {
		t.Errorf("put with a file: %v", err)
	}
	if _, err := f.svc.DeleteRateDeck(admin); !errors.As(err, &cf) {
		t.Errorf("delete with a file: %v", err)
	}
	os.WriteFile(path, []byte("prefix,rate_per_minute,currency\n+88216,0.5,EUR\n"), 0o644)
	if _, err := f.svc.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := f.reason("+882161234567", "acme"); got != "ok" {
		t.Fatalf("after reloading a cheaper deck: %s", got)
	}
	os.WriteFile(path, []byte("+44,1,GBP\n+33,1,EUR\n"), 0o644)
	_, err := f.svc.Reload()
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad file: %v", err)
	}
	if _, info, _ := f.svc.RateDeck(); info.Currency != "EUR" || info.Entries != 1 {
		t.Errorf("the last good deck is not in force: %+v", info)
	}
	if got := f.reason("+882161234567", "acme"); got != "ok" {
		t.Errorf("after a refused reload: %s", got)
	}
	// a bad file at start refuses the start
	st, _ := store.Open(t.TempDir(), store.Options{})
	defer st.Close()
	svc := New(matcher.New(plan, matcher.Options{}), plan, st, Options{RateDeckFile: path, Logger: zerolog.Nop()})
	if err := svc.Load(); err == nil {
		t.Error("a bad rate deck file loaded")
	}
}

// Policies handed out are copies: editing one changes nothing in force.
func TestVelocityPolicyCopies(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	v := &policy.Velocity{DailySpend: &policy.SpendLimit{Limit: 5}, Rules: []policy.VelocityRule{{Days: []string{"mon"}, CallsPerMinute: &policy.Threshold{Critical: 3}}}}
	f.svc.PutAccount(admin, "acme", policy.Account{Policy: policy.Policy{TimeZone: ptr("UTC"), MaxDestinationRate: ptr(1.0), Velocity: v}})
	a, _ := f.svc.Account("acme")
	a.Velocity.Rules[0].CallsPerMinute.Critical = 99
	a.Velocity.Rules[0].Days[0] = "sun"
	a.Velocity.DailySpend.Limit = 7
	*a.TimeZone = "Europe/Paris"
	*a.MaxDestinationRate = 3
	b, _ := f.svc.Account("acme")
	if b.Velocity.Rules[0].CallsPerMinute.Critical != 3 || b.Velocity.Rules[0].Days[0] != "mon" || b.Velocity.DailySpend.Limit != 5 ||
		*b.TimeZone != "UTC" || *b.MaxDestinationRate != 1 {
		t.Errorf("a read shares memory with the set in force: %+v", b)
	}
}

// An unlock's until: an RFC 3339 time in the future or "midnight" (the
// account's next local midnight), audited; anything else is refused naming
// the field, and the lock stays. The state flush runs after the unlock,
// outside the service's lock.
func TestUnlockUntil(t *testing.T) {
	flushed := 0
	var f *vfixture
	f = openVel(t, t.TempDir(), Options{FlushState: func() error {
		flushed++
		f.svc.mu.Lock() // would deadlock if the flush ran under it
		f.svc.mu.Unlock()
		return nil
	}})
	acme := policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB"), TimeZone: ptr("Asia/Tokyo")}}
	if _, err := f.svc.PutAccount(admin, "acme", acme); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		until, field string
		want         time.Time
	}{
		{"tomorrow", "until", time.Time{}},
		{"2026-03-02T09:59:00Z", "until", time.Time{}}, // the past
		{"2026-03-02T12:00:00+01:00", "", time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)},
		{"midnight", "", time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)}, // 00:00 on the 3rd in Tokyo
		{"", "", time.Time{}},
	} {
		if _, err := f.svc.Lock(admin, "acme", "", "x"); err != nil {
			t.Fatal(err)
		}
		_, at, err := f.svc.UnlockUntil(admin, "acme", "", "ok", c.until)
		var inv *InvalidError
		switch {
		case c.field != "" && (!errors.As(err, &inv) || inv.Field() != c.field):
			t.Errorf("%q: %v, want an error on %s", c.until, err, c.field)
		case c.field != "":
			if _, locked := f.vel.LockOf("acme", ""); !locked {
				t.Errorf("%q: refused, yet unlocked", c.until)
			}
			f.svc.Unlock(admin, "acme", "", "clean up")
		case err != nil || !at.Equal(c.want):
			t.Errorf("%q: %v %v, want %v", c.until, at, err, c.want)
		}
	}
	if flushed != 5 {
		t.Errorf("state flushed %d times, want one per unlock (5)", flushed)
	}
	audit, _ := f.st.Audit(1, 0)
	if len(audit) != 1 || audit[0].Action != "unlock" || strings.Contains(string(audit[0].After), "until") {
		t.Errorf("last audit %+v", audit)
	}
	audit, _ = f.st.Audit(3, 0)
	if !strings.Contains(string(audit[2].After), `"until":"2026-03-02T15:00:00Z"`) {
		t.Errorf("midnight unlock audit %s", audit[2].After)
	}
}

// Issue 13: twenty accounts each calling one number of a +216 range. The
// range velocity's critical level blocks the range through the admin's
// path: stored, audited as prefix.block by tollgate, in force for every
// account at once, and lifted by the ordinary unblock; the unblock holds
// while the counts stay high (no block again until they drop below the
// warning level and rise again).
func TestRangeVelocityBlocksThroughTheOperatorPrefixes(t *testing.T) {
	dir := t.TempDir()
	f := openVel(t, dir, Options{})
	op := policy.Operator{RangeVelocity: &policy.RangeVelocity{Accounts: policy.Threshold{Warning: 10, Critical: 20}, Action: "block"}}
	if _, err := f.svc.PutOperator(admin, op); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 21; i++ {
		if _, err := f.svc.PutAccount(admin, "a"+strconv.Itoa(i), policy.Account{Policy: policy.Policy{HomeCountry: ptr("GB")}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		if got := f.reason("+21671234"+strconv.Itoa(500+i), "a"+strconv.Itoa(i)); got != "ok" {
			t.Fatalf("call %d: %s", i, got)
		}
	}
	f.vel.Evaluate()
	if got := f.reason("+21671234999", "a20"); got != "number_barred" {
		t.Fatalf("after the block: %s", got)
	}
	got, _ := f.svc.Operator()
	if len(got.BlockedPrefixes) != 1 || got.BlockedPrefixes[0].Prefix != "+21671234" || !strings.Contains(got.BlockedPrefixes[0].Reason, "20 accounts") {
		t.Fatalf("blocked prefixes %+v", got.BlockedPrefixes)
	}
	audit, _ := f.svc.Audit(1, 0)
	if audit[0].Action != "prefix.block" || audit[0].Who != velocity.AutomaticBy || audit[0].Object != "operator/prefixes/+21671234" {
		t.Fatalf("audit %+v", audit[0])
	}
	if _, err := f.svc.UnblockPrefix(admin, "+21671234"); err != nil {
		t.Fatal(err)
	}
	if got := f.reason("+21671234999", "a20"); got != "ok" {
		t.Fatalf("after the unblock: %s", got)
	}
	f.vel.Evaluate()
	if got := f.reason("+21671234998", "a20"); got != "ok" {
		t.Errorf("the unblock did not hold: %s", got)
	}
	if st := f.vel.Stats(); st.RangeBlocks != 1 {
		t.Errorf("blocks %d", st.RangeBlocks)
	}
}
