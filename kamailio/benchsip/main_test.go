package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A log the report pointed at outlives the run; an unreferenced work
// directory is removed.
func TestWorkDirKeepsWhatItPointsAt(t *testing.T) {
	for _, tc := range []struct {
		name        string
		keep, point bool
		exists      bool
	}{
		{"nothing pointed at", false, false, false},
		{"an ERROR log pointed at", false, true, true},
		{"-keep", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := newWorkDir(tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(w.dir) })
			log := filepath.Join(w.dir, "kamailio-bench-http.log")
			if err := os.WriteFile(log, []byte(" ERROR: x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.point && w.point(log) != log {
				t.Fatal("point changed the path")
			}
			var out bytes.Buffer
			w.close(&out)
			_, err = os.Stat(log)
			if exists := err == nil; exists != tc.exists {
				t.Fatalf("log exists %v after close, want %v", exists, tc.exists)
			}
			if tc.exists != strings.Contains(out.String(), w.dir) {
				t.Errorf("close said %q", out.String())
			}
		})
	}
}

// kamcmd core.psx's listing maps each pid to the part of Kamailio it is.
func TestParsePsx(t *testing.T) {
	out := "{\n\tIDX: 0\n\tPID: 100\n\tDSC: main process - attendant\n}\n" +
		"{\n\tIDX: 1\n\tPID: 101\n\tDSC: udp receiver child=0 sock=127.0.0.1:5060\n}\n" +
		"{\n\tIDX: 2\n\tPID: 102\n\tDSC: RTIMER EXEC child=0 timer=tgev\n}\n" +
		"{\n\tIDX: 3\n\tPID: 103\n\tDSC: jsonrpc io handler\n}\n" +
		"{\n\tIDX: 4\n\tPID: 104\n\tDSC: Dialog Clean Timer\n}\n" +
		"{\n\tIDX: 5\n\tPID: 105\n\tDSC: tcp receiver (generic) child=0\n}\n"
	got := parsePsx(out)
	for _, tc := range []struct {
		pid  int
		role string
	}{
		{100, "other"}, {101, "workers"}, {102, "events"}, {103, "rpc-io"}, {104, "other"}, {105, "workers"},
	} {
		if got[tc.pid] != tc.role {
			t.Errorf("pid %d: role %q, want %q", tc.pid, got[tc.pid], tc.role)
		}
	}
	if len(got) != 6 {
		t.Errorf("%d pids, want 6: %v", len(got), got)
	}
}
