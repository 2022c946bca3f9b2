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
