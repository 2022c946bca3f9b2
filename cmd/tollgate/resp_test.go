package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// -resp-addr: a Unix socket reachable by every local user, a stale socket
// file replaced, a live one, a plain file and an empty address refused.
func TestListenRESP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resp.sock")
	ln, err := listenRESP("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if _, err := listenRESP("unix:" + path); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("a live socket: %v", err)
	}
	ln.Close()
	// a socket file left behind (as by kill -9): replaced
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the stale socket file is gone already: %v", err)
	}
	ln, err = listenRESP("unix:" + path)
	if err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after close: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if _, err := listenRESP("unix:" + plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("a plain file: %v", err)
	}
	for _, a := range []string{"", "unix:"} {
		if _, err := listenRESP(a); err == nil {
			t.Fatalf("%q accepted", a)
		}
	}
	ln, err = listenRESP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
