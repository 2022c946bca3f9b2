package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// -rate-deck-file is authoritative and reloaded on SIGHUP; a bad one is
// refused with its line and the deck in force stays.
func TestRateDeckFileReload(t *testing.T) {
	deck := filepath.Join(t.TempDir(), "deck.csv")
	os.WriteFile(deck, []byte("prefix,rate_per_minute,currency\n+33,2,EUR\n"), 0o644)
	d := startDaemon(t, t.TempDir(), "-rate-deck-file", deck)
	if st, body := d.admin("PUT", "/v1/accounts/acme", `{"max_destination_rate":1}`); st != 200 {
		t.Fatalf("PUT account: %d %s", st, body)
	}
	if st, body := d.query("/v1/check?to=%2B33142685300&account=acme"); st != 403 || !strings.Contains(body, "rate_exceeded") {
		t.Fatalf("file deck not in force: %d %s", st, body)
	}
	if st, _ := d.admin("PUT", "/v1/rate-deck", "+33,0,EUR\n"); st != 409 {
		t.Fatalf("PUT with a file: %d", st)
	}
	os.WriteFile(deck, []byte("prefix,rate_per_minute,currency\n+33,0.5,EUR\n"), 0o644)
	d.signal(syscall.SIGHUP)
	waitFor(t, func() bool { st, _ := d.query("/v1/check?to=%2B33142685300&account=acme"); return st == 200 })
	os.WriteFile(deck, []byte("+33,9,EUR\n+34,9,USD\n"), 0o644)
	d.signal(syscall.SIGHUP)
	waitFor(t, func() bool { _, m := d.query("/metrics"); return strings.Contains(m, "tollgate_reload_success 0") })
	if st, _ := d.query("/v1/check?to=%2B33142685300&account=acme"); st != 200 {
		t.Fatal("a refused reload dropped the deck in force")
	}
	if !strings.Contains(d.logs.String(), "line 2") {
		t.Fatalf("refused reload not logged with its line: %s", d.logs.String())
	}
}

func TestVelocityFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-webhook-url", "http://127.0.0.1:9/hook"}, "secret"},
		{[]string{"-webhook-url", "ftp://x/y", "-webhook-secret", "s"}, "not an http(s) URL"},
		{[]string{"-max-call-duration", "10s"}, "-max-call-duration"},
		{[]string{"-velocity-interval", "1h"}, "-velocity-interval"},
	} {
		d := tryStart(t, t.TempDir(), c.args...)
		if err := d.wait(10 * time.Second); err == nil || !strings.Contains(d.logs.String(), c.want) {
			t.Errorf("%v: %v %s", c.args, err, d.logs.String())
		}
	}
	deck := filepath.Join(t.TempDir(), "deck.csv")
	os.WriteFile(deck, []byte("+33,x,EUR\n"), 0o644)
	d := tryStart(t, t.TempDir(), "-rate-deck-file", deck)
	if err := d.wait(10 * time.Second); err == nil || !strings.Contains(d.logs.String(), "line 1") {
		t.Errorf("bad deck file: %v %s", err, d.logs.String())
	}
}

// A lockdown survives a restart of the daemon, and `tollgate check` on the
// stopped daemon's data dir sees it.
func TestLockSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	d.admin("PUT", "/v1/accounts/acme", `{"home_country":"GB"}`)
	if st, body := d.admin("PUT", "/v1/accounts/acme/lock", `{"reason":"test"}`); st != 200 {
		t.Fatalf("lock: %d %s", st, body)
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	out, code := runCheckCmd(t, dir, "--account", "acme", "+33142685300")
	if code != 1 || !strings.Contains(out, "international_locked (code 2050") {
		t.Fatalf("check on the stopped daemon's data: %d %s", code, out)
	}
	d2 := startDaemon(t, dir)
	if st, body := d2.query("/v1/check?to=%2B33142685300&account=acme"); st != 403 || !strings.Contains(body, "international_locked") {
		t.Fatalf("after restart: %d %s", st, body)
	}
}

func runCheckCmd(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	var out, errb strings.Builder
	code := runCheck(append([]string{"--data-dir", dir}, args...), &out, &errb)
	return out.String() + errb.String(), code
}
