package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/store"
)

// refused starts the daemon and requires it to exit with an error whose
// log says every one of want.
func refused(t *testing.T, dir string, args []string, want ...string) {
	t.Helper()
	d := tryStart(t, dir, args...)
	if err := d.wait(15 * time.Second); err == nil {
		t.Fatalf("started; want a refusal saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(d.logs.String(), w) {
			t.Fatalf("refusal does not say %q:\n%s", w, d.logs.String())
		}
	}
}

// A data dir that has held state and lost its data file (deleted, or
// truncated to 0 bytes) refuses to start; before, it started with 0
// accounts and an account whose policy bars Cuba could call Cuba.
// -init-data-dir starts over deliberately; a fresh dir starts with unknown
// accounts rejected.
func TestLostDataFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		lose func(path string)
		want string
	}{
		{"deleted", nil, func(p string) { os.Remove(p) }, "is missing"},
		{"truncated", nil, func(p string) { os.Truncate(p, 0) }, "is empty (0 bytes)"},
		// With -admin-token there is no token file, and a clean stop removes
		// the run file: the marker still says the dir held state.
		{"deleted, token flag", []string{"-admin-token", "ops:0123456789abcdef-token"}, func(p string) { os.Remove(p) }, "tollgate.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := startDaemon(t, dir, tc.args...)
			if len(tc.args) > 0 {
				d.token = "0123456789abcdef-token"
			}
			if st, body := d.admin("GET", "/v1/operator", ""); st != 200 || !strings.Contains(body, `"unknown_accounts":"reject"`) {
				t.Fatalf("fresh data dir's operator settings: %d %s", st, body)
			}
			if st, body := d.query("/v1/check?to=%2B5355512345&account=nobody"); st != 403 || !strings.Contains(body, `"not_permitted"`) {
				t.Fatalf("unknown account on a fresh install: %d %s", st, body)
			}
			if st, body := d.admin("PUT", "/v1/accounts/acme", acme); st != 200 {
				t.Fatalf("PUT: %d %s", st, body)
			}
			d.signal(syscall.SIGTERM)
			if err := d.wait(15 * time.Second); err != nil {
				t.Fatal(err)
			}
			tc.lose(filepath.Join(dir, store.FileName))
			refused(t, dir, tc.args, tc.want, "refusing to start with an empty policy", "-init-data-dir")

			d2 := startDaemon(t, dir, append([]string{"-init-data-dir"}, tc.args...)...)
			if len(tc.args) > 0 {
				d2.token = d.token
			}
			if st, _ := d2.admin("GET", "/v1/accounts/acme", ""); st != 404 {
				t.Fatalf("acme after -init-data-dir: %d", st)
			}
			if !strings.Contains(d2.logs.String(), "first start") {
				t.Fatalf("no first-start line: %s", d2.logs.String())
			}
			d2.kill()
			refused(t, dir, append([]string{"-init-data-dir"}, tc.args...), "never replaced")
		})
	}
}

// A damaged account refuses the start naming it; -quarantine-damaged
// starts with the account refused (account_quarantined) and the others
// served; a PUT of the account releases it.
func TestQuarantineDamagedFlag(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	if st, body := d.admin("PUT", "/v1/accounts/acme", acme); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body := d.admin("PUT", "/v1/accounts/beta", `{}`); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	d.signal(syscall.SIGTERM)
	d.wait(15 * time.Second)
	// The account record holds `"home_country":"US"` once; the audit entry
	// of the PUT holds it too, in a form with other bytes around it.
	path := filepath.Join(dir, store.FileName)
	b, _ := os.ReadFile(path)
	needle := []byte(`acme` + "\xa7")
	n := 0
	for off := 0; ; {
		i := strings.Index(string(b[off:]), string(needle))
		if i < 0 {
			break
		}
		j := strings.Index(string(b[off+i:]), `"deny"`)
		b[off+i+j+1] ^= 0x20 // "deny" -> "Deny"
		off += i + 1
		n++
	}
	if n == 0 {
		t.Fatal("acme's record not found")
	}
	os.WriteFile(path, b, 0o600)
	refused(t, dir, nil, `accounts/"acme": checksum mismatch`, "-quarantine-damaged")

	d2 := startDaemon(t, dir, "-quarantine-damaged")
	if st, body := d2.query("/v1/check?to=%2B14155550123&account=acme"); st != 403 || !strings.Contains(body, `"account_quarantined"`) {
		t.Fatalf("quarantined account: %d %s", st, body)
	}
	if st, body := d2.query("/v1/check?to=%2B14155550123&account=beta"); st != 200 {
		t.Fatalf("another account: %d %s", st, body)
	}
	if !strings.Contains(d2.logs.String(), "account quarantined") {
		t.Fatalf("quarantine not logged: %s", d2.logs.String())
	}
	if st, body := d2.admin("PUT", "/v1/accounts/acme", acme); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body := d2.query("/v1/check?to=%2B14155550123&account=acme"); st != 200 {
		t.Fatalf("after PUT: %d %s", st, body)
	}
	d2.signal(syscall.SIGTERM)
	d2.wait(15 * time.Second)
	startDaemon(t, dir).kill() // clean again
}

// A first start killed at any moment leaves a data dir the next start
// takes as it is: fresh again, or complete. Never half-made.
func TestKilledFirstStarts(t *testing.T) {
	for i := 0; i < 8; i++ {
		dir := t.TempDir()
		d := tryStart(t, dir)
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		d.kill()
		d2 := startDaemon(t, dir)
		if st, body := d2.admin("GET", "/v1/operator", ""); st != 200 || !strings.Contains(body, `"unknown_accounts":"reject"`) {
			t.Fatalf("after a first start killed at +%d ms: %d %s", i*3, st, body)
		}
		d2.kill()
	}
}

// A first start on a full disk fails and leaves nothing half-made, and
// once there is room the next start is a normal one. The disk is a small
// tmpfs, at sizes where the data file (16k), the marker (24k) or the token
// file (28k) is the write that fails. Before, a full disk left a 4096-byte
// data file and an empty token file that blocked every later start.
func TestFirstStartFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	for _, size := range []string{"16k", "24k", "28k"} {
		t.Run(size, func(t *testing.T) {
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			dir := filepath.Join(mnt, "data")
			refused(t, dir, nil, "no space left on device")
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				fi, _ := e.Info()
				switch {
				case strings.HasSuffix(e.Name(), ".tmp"):
					t.Errorf("left a temporary file %s", e.Name())
				case fi.Size() == 0:
					t.Errorf("left an empty %s", e.Name())
				case e.Name() == store.FileName && fi.Size() < 32768:
					t.Errorf("left a partial data file (%d bytes)", fi.Size())
				}
			}
			if out, err := exec.Command("mount", "-o", "remount,size=4m", mnt).CombinedOutput(); err != nil {
				t.Fatalf("remount: %v %s", err, out)
			}
			d := startDaemon(t, dir)
			if st, body := d.admin("PUT", "/v1/accounts/acme", acme); st != 200 {
				t.Fatalf("PUT after the disk got room: %d %s", st, body)
			}
			d.kill()
		})
	}
}
