package admin

import (
	"testing"
	"time"
)

func TestConsoleSessionExpiry(t *testing.T) {
	var s consoleSessions
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	id, _ := s.create("ops", t0)
	id2, _ := s.create("ops", t0)
	if id == id2 || len(id) != 43 {
		t.Fatalf("ids %q %q", id, id2)
	}
	for _, tc := range []struct {
		at time.Duration
		ok bool
	}{
		{ConsoleIdleTimeout - time.Second, true},     // used: idle clock restarts
		{2*ConsoleIdleTimeout - 2*time.Second, true}, // used again
		{3*ConsoleIdleTimeout + time.Second, false},  // idle too long
	} {
		if _, ok := s.get(id, t0.Add(tc.at)); ok != tc.ok {
			t.Fatalf("at +%v: live %v, want %v", tc.at, ok, tc.ok)
		}
	}
	// Used every 20 minutes, a session still ends 12 hours after sign-in.
	id3, _ := s.create("ci", t0)
	at := t0
	for at.Sub(t0) < ConsoleMaxAge-20*time.Minute {
		at = at.Add(20 * time.Minute)
		if _, ok := s.get(id3, at); !ok {
			t.Fatalf("ended early at +%v", at.Sub(t0))
		}
	}
	if _, ok := s.get(id3, t0.Add(ConsoleMaxAge+time.Second)); ok {
		t.Fatal("live after ConsoleMaxAge")
	}
	// The store is bounded: the least recently used session goes.
	var b consoleSessions
	first, _ := b.create("ops", t0)
	for i := 1; i < maxConsoleSessions+5; i++ {
		b.create("ops", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(b.m) != maxConsoleSessions {
		t.Fatalf("%d sessions held", len(b.m))
	}
	if _, ok := b.get(first, t0.Add(time.Second)); ok {
		t.Fatal("the oldest session survived")
	}
}
