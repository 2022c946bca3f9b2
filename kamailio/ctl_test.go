package kamailio_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/kamailio/siptest"
)

// readmeRunDir is the runtime directory of the README's start command; its
// ctl socket is what the README's kamcmd lines name.
const readmeRunDir = "/tmp/kamailio-run"

// readmeStartCommand returns the README's foreground start command (the
// indented block that begins with `kamailio -f`), continuation lines joined.
func readmeStartCommand(t *testing.T, readme string) string {
	t.Helper()
	var cmd []string
	for _, line := range strings.Split(readme, "\n") {
		l := strings.TrimSpace(line)
		if len(cmd) == 0 && strings.HasPrefix(line, "    kamailio -f ") {
			cmd = append(cmd, l)
		} else if len(cmd) > 0 && strings.HasSuffix(cmd[len(cmd)-1], `\`) {
			cmd = append(cmd, l)
		} else if len(cmd) > 0 {
			break
		}
	}
	if len(cmd) == 0 {
		t.Fatal("kamailio/README.md has no indented `kamailio -f` start command")
	}
	return strings.Join(cmd, "\n")
}

// The README's start command, run word for word from the top of the
// repository (only its port and runtime directory moved to free ones), starts
// a Kamailio that answers SIP, and every kamcmd line of "Operating it" works
// against it over the ctl socket.
func TestReadmeStartAndKamcmd(t *testing.T) {
	requireTools(t)
	if _, err := exec.LookPath("kamcmd"); err != nil {
		t.Fatalf("kamcmd (Debian package kamailio) is missing: %v", err)
	}
	root, _ := cfgPath(t)
	b, err := os.ReadFile(filepath.Join(root, "kamailio", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	cmd := readmeStartCommand(t, readme)
	if !strings.Contains(cmd, "-Y "+readmeRunDir+" ") || !strings.Contains(cmd, "LISTEN=udp:127.0.0.1:5060") {
		t.Fatalf("start command does not use -Y %s and LISTEN=udp:127.0.0.1:5060:\n%s", readmeRunDir, cmd)
	}
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	port := siptest.MustFreePort("udp", "127.0.0.1")
	cmd = strings.Replace(cmd, "-Y "+readmeRunDir+" ", "-Y "+runDir+" ", 1)
	cmd = strings.Replace(cmd, "LISTEN=udp:127.0.0.1:5060", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port), 1)
	// small memory and one worker so the test is light; nothing else changes
	cmd = strings.Replace(cmd, "kamailio -f", "kamailio -m 64 -M 8 -A CHILDREN=1 -f", 1)

	p, err := siptest.Start("kamailio-readme", filepath.Join(dir, "kamailio.log"), "sh", "-c", "cd "+root+" && exec "+cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(5 * time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, err := siptest.Options("127.0.0.1", addr, 300*time.Millisecond)
		if err == nil && code == 200 {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("README start command did not answer OPTIONS (%v):\n%s\n%s", err, cmd, p.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, bad := range []string{"ERROR", "CRITICAL"} {
		if strings.Contains(p.Log(), bad) {
			t.Errorf("start-up log has %s:\n%s", bad, p.Tail(30))
		}
	}

	re := regexp.MustCompile("`kamcmd -s " + regexp.QuoteMeta(readmeRunDir) + "/kamailio_ctl ([^`]+)`")
	lines := re.FindAllStringSubmatch(readme, -1)
	if len(lines) < 5 {
		t.Fatalf("README has %d `kamcmd -s %s/kamailio_ctl …` lines, want the 6 of Operating it", len(lines), readmeRunDir)
	}
	sock := filepath.Join(runDir, "kamailio_ctl")
	for _, l := range lines {
		args := append([]string{"-s", sock}, strings.Fields(l[1])...)
		out, err := exec.Command("kamcmd", args...).CombinedOutput()
		if err != nil || strings.Contains(string(out), "connect_unix_sock") || strings.Contains(string(out), "command not found") {
			t.Errorf("kamcmd %s: %v\n%s", l[1], err, out)
		}
		t.Logf("kamcmd %s → %s", l[1], strings.TrimSpace(string(out)))
	}
	// and one answer checked: the call-event queue exists and is empty
	out, err := exec.Command("kamcmd", "-s", sock, "mqueue.get_size", "tgev").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "size: 0") {
		t.Errorf("kamcmd mqueue.get_size tgev: %v\n%s", err, out)
	}
}

// A start that fails in a child (db_text DBURL naming a directory that does
// not exist) ends Kamailio instead of leaving its TCP process spinning on
// io_wait_loop_epoll() errors.
func TestFailedStartExits(t *testing.T) {
	requireTools(t)
	_, cfg := cfgPath(t)
	dir := t.TempDir()
	port := siptest.MustFreePort("udp", "127.0.0.1")
	args := siptest.KamailioArgs(cfg, filepath.Join(dir, "run"), fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", port),
		"WITH_AUTH", "WITH_IPAUTH", fmt.Sprintf(`DBURL="text://%s"`, filepath.Join(dir, "no-such-dir")))
	p, err := siptest.Start("kamailio-baddb", filepath.Join(dir, "kamailio.log"), "kamailio", args...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(2 * time.Second)
	select {
	case <-p.Done():
	case <-time.After(40 * time.Second):
		t.Errorf("Kamailio with a missing DBURL directory still running after 40 s (exit_timeout is 10 s):\n%s", p.Tail(40))
	}
	p.Stop(2 * time.Second)
	log := p.Log()
	if !strings.Contains(log, "does not exists") {
		t.Errorf("log does not name the missing database:\n%s", p.Tail(20))
	}
	if n := strings.Count(log, "io_wait_loop_epoll"); n > 0 {
		t.Errorf("log has %d io_wait_loop_epoll lines", n)
	}
}
