package origin

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUnblockCode(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", PassMinutes: 20, MaxFailed: 1})
	if _, err := f.st.VerifyUnblockCode("erin", r, "1234"); !errors.Is(err, ErrNoCode) {
		t.Fatalf("no code: %v", err)
	}
	for _, bad := range []string{"", "123", "12345678901234567", "12a4", "1234 "} {
		if _, err := f.st.SetUnblockCode("erin", bad); err == nil {
			t.Errorf("code %q accepted", bad)
		}
	}
	if _, err := f.st.SetUnblockCode("erin", "482913"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.VerifyUnblockCode("erin", r, "482913"); err != nil {
		t.Fatalf("right code: %v", err)
	}
	// The right code lifts quarantine and opens the pass window.
	f.st.ScreeningFailed("erin", r)
	if o := f.call("erin", r, ipNG, "GB"); o.Kind != KindQuarantined {
		t.Fatal(text(o))
	}
	st, err := f.st.VerifyUnblockCode("erin", r, "482913")
	if err != nil || st.Quarantined || !st.PassUntil.Equal(f.clk.Now().Add(20*time.Minute)) {
		t.Fatalf("%+v %v", st, err)
	}
	if o := f.call("erin", r, ipNG, "GB"); o.Rule != RulePassed {
		t.Fatal(text(o))
	}

	// Wrong codes: four are counted, the fifth locks out, even the right
	// code is refused until the lock-out ends.
	for i := 0; i < 4; i++ {
		if _, err := f.st.VerifyUnblockCode("erin", r, "000000"); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if st, err := f.st.VerifyUnblockCode("erin", r, "x"); !errors.Is(err, ErrCodeLocked) || st.CodeLockedUntil.IsZero() {
		t.Fatalf("fifth: %+v %v", st, err)
	}
	if _, err := f.st.VerifyUnblockCode("erin", r, "482913"); !errors.Is(err, ErrCodeLocked) {
		t.Fatalf("locked: %v", err)
	}
	f.clk.Add(15 * time.Minute)
	if _, err := f.st.VerifyUnblockCode("erin", r, "482913"); err != nil {
		t.Fatalf("after lock-out: %v", err)
	}
	// A right code resets the count.
	for i := 0; i < 4; i++ {
		f.st.VerifyUnblockCode("erin", r, "1111")
	}
	f.st.VerifyUnblockCode("erin", r, "482913")
	if _, err := f.st.VerifyUnblockCode("erin", r, "1111"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("count not reset: %v", err)
	}
	// Setting a new code clears the lock-out; clearing removes it.
	if _, err := f.st.SetUnblockCode("erin", "7777"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.VerifyUnblockCode("erin", r, "482913"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("old code: %v", err)
	}
	if _, err := f.st.ClearUnblockCode("erin"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.VerifyUnblockCode("erin", r, "7777"); !errors.Is(err, ErrNoCode) {
		t.Fatalf("cleared: %v", err)
	}
	if _, err := f.st.VerifyUnblockCode("bad name", r, "7777"); err == nil {
		t.Fatal("bad account accepted")
	}
}

// TestUnblockCodeParallelGuesses checks that guesses in flight count against
// the limit: of many parallel wrong guesses at most CodeAttempts are hashed.
func TestUnblockCodeParallelGuesses(t *testing.T) {
	clk := newClock()
	st := NewState(StateOptions{Now: clk.Now, CodeIterations: 20000})
	if _, err := st.SetUnblockCode("f", "2468"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[error]int{}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.VerifyUnblockCode("f", nil, "1357")
			mu.Lock()
			counts[err]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[ErrWrongCode]+counts[ErrCodeLocked] != 40 || counts[ErrWrongCode] > 5 {
		t.Fatalf("%v", counts)
	}
	if _, err := st.VerifyUnblockCode("f", nil, "2468"); !errors.Is(err, ErrCodeLocked) {
		t.Fatalf("not locked: %v", err)
	}
}

func TestCodeHash(t *testing.T) {
	h, err := HashCode("1234", 1000)
	if err != nil {
		t.Fatal(err)
	}
	s := h.String()
	if !strings.HasPrefix(s, "pbkdf2-sha256$1000$") || strings.Contains(s, "1234$") {
		t.Fatalf("%s", s)
	}
	h2, err := ParseCodeHash(s)
	if err != nil || !h2.Match("1234") || h2.Match("1235") || h2.String() != s {
		t.Fatalf("round trip: %v", err)
	}
	other, _ := HashCode("1234", 1000)
	if other.String() == s {
		t.Fatal("salt not random")
	}
	if _, err := HashCode("1234", 10); err == nil {
		t.Fatal("weak iterations accepted")
	}
	for _, bad := range []string{
		"", "pbkdf2-sha256", "bcrypt$1000$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"pbkdf2-sha256$10$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"pbkdf2-sha256$01000$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"pbkdf2-sha256$1000$AA$AAAAAAAAAAAAAAAAAAAAAA",
		"pbkdf2-sha256$1000$AAAAAAAAAAA$AA",
		"pbkdf2-sha256$1000$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA",
		"pbkdf2-sha256$1000$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA$",
	} {
		if _, err := ParseCodeHash(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestUnblockCodeLockoutDoubles: each lock-out before a right code lasts
// twice the one before, up to MaxCodeLockout; a right code starts again
// from CodeLockout. Export and Restore carry the lock-out.
func TestUnblockCodeLockoutDoubles(t *testing.T) {
	clk := newClock()
	st := NewState(StateOptions{Now: clk.Now, CodeIterations: 1000, CodeAttempts: 2, CodeLockout: 4 * time.Hour})
	if _, err := st.SetUnblockCode("g", "2468"); err != nil {
		t.Fatal(err)
	}
	lockOut := func() time.Duration {
		t.Helper()
		for i := 0; i < 2; i++ {
			st.VerifyUnblockCode("g", nil, "1357")
		}
		s := st.Status("g")
		if s.CodeLockedUntil.IsZero() {
			t.Fatal("not locked out")
		}
		d := s.CodeLockedUntil.Sub(clk.Now())
		clk.Add(d)
		return d
	}
	for i, want := range []time.Duration{4 * time.Hour, 8 * time.Hour, 16 * time.Hour, MaxCodeLockout, MaxCodeLockout} {
		if got := lockOut(); got != want {
			t.Fatalf("lock-out %d: %v, want %v", i+1, got, want)
		}
	}
	// Carried by Export/Restore into a new State, mid lock-out.
	for i := 0; i < 2; i++ {
		st.VerifyUnblockCode("g", nil, "1357")
	}
	exp := st.Export()
	if d := exp["g"]; d.CodeLockouts != 6 || !d.CodeLockedUntil.Equal(clk.Now().Add(MaxCodeLockout)) {
		t.Fatalf("exported %+v", d)
	}
	st2 := NewState(StateOptions{Now: clk.Now, CodeIterations: 1000, CodeAttempts: 2, CodeLockout: 4 * time.Hour})
	if err := st2.Restore(exp); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.VerifyUnblockCode("g", nil, "2468"); !errors.Is(err, ErrCodeLocked) {
		t.Fatalf("restored lock-out: %v", err)
	}
	clk.Add(MaxCodeLockout)
	if _, err := st2.VerifyUnblockCode("g", nil, "2468"); err != nil {
		t.Fatalf("right code after the lock-out: %v", err)
	}
	// The right code reset the doubling.
	st = st2
	if got := lockOut(); got != 4*time.Hour {
		t.Fatalf("after a right code: %v", got)
	}
	bad := map[string]Durable{"h": {CodeLockouts: -1}}
	if err := st.Restore(bad); err == nil {
		t.Fatal("negative lock-out count restored")
	}
}

// TestUnblockCodeFailuresSurviveRestart: wrong codes short of a lock-out
// are durable, so 4 wrong, a restart, and the 5th wrong code locks out
// (before, the restart handed out 5 fresh tries).
func TestUnblockCodeFailuresSurviveRestart(t *testing.T) {
	clk := newClock()
	opts := StateOptions{Now: clk.Now, CodeIterations: 1000}
	st := NewState(opts)
	if _, err := st.SetUnblockCode("g", "2468"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := st.VerifyUnblockCode("g", nil, "1357"); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	exp := st.Export()
	if exp["g"].CodeFailures != 4 {
		t.Fatalf("exported %+v", exp["g"])
	}
	st2 := NewState(opts)
	if err := st2.Restore(exp); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.VerifyUnblockCode("g", nil, "1357"); !errors.Is(err, ErrCodeLocked) {
		t.Fatalf("5th wrong code after a restart: %v, want a lock-out", err)
	}
	// A stored count past a lowered limit leaves one try, then a lock-out
	// that ends (never a verification refused for good).
	st3 := NewState(StateOptions{Now: clk.Now, CodeIterations: 1000, CodeAttempts: 2})
	d := exp["g"]
	if err := st3.Restore(map[string]Durable{"g": d}); err != nil {
		t.Fatal(err)
	}
	if _, err := st3.VerifyUnblockCode("g", nil, "1357"); !errors.Is(err, ErrCodeLocked) {
		t.Fatalf("lowered limit: %v", err)
	}
	clk.Add(time.Hour)
	if _, err := st3.VerifyUnblockCode("g", nil, "2468"); err != nil {
		t.Fatalf("right code after the lock-out: %v", err)
	}
	if d := st3.Durable("g"); d.CodeFailures != 0 {
		t.Fatalf("right code kept the failures: %+v", d)
	}
	if err := st.Restore(map[string]Durable{"h": {CodeFailures: -1}}); err == nil {
		t.Fatal("negative failure count restored")
	}
}
