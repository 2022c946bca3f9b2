package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/recent"
)

// TestRecentRestart: the ring survives a restart; a damaged file is set
// aside with an error line and the daemon starts with an empty ring.
func TestRecentRestart(t *testing.T) {
	dir := t.TempDir()
	c := &config{dataDir: dir, recentSize: 100, recentMaxAge: time.Hour, recentFlush: time.Hour}
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	r, stop := startRecent(c, log)
	r.Add(time.Now(), "acme", "", "", []byte("+33142685300"), "192.0.2.1", 0, 0, "FR")
	stop() // writes the file
	r2, stop2 := startRecent(c, log)
	if got := r2.Calls(time.Now()); len(got) != 1 || got[0].Account != "acme" || got[0].To != "+33142685300" {
		t.Fatalf("after a restart: %+v", got)
	}
	stop2()
	if !strings.Contains(logs.String(), "recent traffic restored") {
		t.Errorf("log: %s", logs.String())
	}
	path := filepath.Join(dir, recent.FileName)
	b, _ := os.ReadFile(path)
	b[40] ^= 0xff
	os.WriteFile(path, b, 0o600)
	logs.Reset()
	r3, stop3 := startRecent(c, log)
	defer stop3()
	if n := len(r3.Calls(time.Now())); n != 0 {
		t.Errorf("a damaged file left %d queries", n)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "checksum mismatch") {
		t.Errorf("log: %s", logs.String())
	}
	if _, err := os.Stat(path + ".damaged"); err != nil {
		t.Error("the damaged file was not set aside:", err)
	}
	// -recent-size 0: no ring, no file
	if r, stop := startRecent(&config{dataDir: t.TempDir(), recentFlush: time.Second}, log); r != nil {
		t.Error("a ring with -recent-size 0")
	} else {
		stop()
	}
}
