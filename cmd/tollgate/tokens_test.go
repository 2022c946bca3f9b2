package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestFlagTokens(t *testing.T) {
	const secret = "Secr3tPassphrase-9f8e7d"
	for _, c := range []struct{ in, want, err string }{
		{in: "alice:alice-token-123456789,bob-token-123456789", want: "alice=alice-token-123456789 admin=bob-token-123456789"},
		{in: " ops : ignored", err: "not a token name"},
		{in: "ops:abc:defghijklmnopqrstu", want: "ops=abc:defghijklmnopqrstu"},
		{in: "ci_bot-2:0123456789abcdef", want: "ci_bot-2=0123456789abcdef"},
		// the case: a secret before ':' was taken as the name and logged
		{in: secret + ":x", err: "entry 1: the text before ':' is not a token name"},
		{in: secret + ":0123456789abcdefXYZ", err: "not a token name"},
		{in: "x", err: "entry 1: the token is shorter than 16 characters"},
		{in: "alice:short", err: "shorter than 16"},
		{in: "0123456789abcdef,alice:", err: "entry 2: empty token"},
		{in: "9lives:0123456789abcdef", err: "not a token name"},
		{in: "averyveryverylongname:0123456789abcdef", err: "not a token name"},
		{in: "a:0123456789abcdef,a:fedcba9876543210", err: `entry 2: the name "a" is used twice`},
		{in: "0123456789abcdef,0123456789abcdeg", err: `the name "admin" is used twice`},
		{in: ",", err: "empty token"},
	} {
		toks, err := flagTokens("-admin-token", c.in, "admin")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %v, want an error with %q", c.in, err, c.err)
			}
			if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "0123456789abcdef")) {
				t.Errorf("%q: the error quotes a secret: %v", c.in, err)
			}
			continue
		}
		var got []string
		for _, tk := range toks {
			got = append(got, tk.Name+"="+tk.Secret)
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("%q: got %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tokens")
	os.WriteFile(f, []byte("# operators\nalice:alice,token-with-comma\n\n  ci:0123456789abcdef0  \n"), 0o600)
	toks, err := adminTokens("", f, dir, zerolog.Nop())
	if err != nil || fmt.Sprint(toks) != "[{alice alice,token-with-comma} {ci 0123456789abcdef0}]" {
		t.Errorf("token file: %v %v", toks, err)
	}
	if _, err := adminTokens("0123456789abcdef", f, dir, zerolog.Nop()); err != errTwoTokenSources {
		t.Errorf("both: %v", err)
	}
	os.WriteFile(f, []byte("# nothing\n"), 0o600)
	if _, err := adminTokens("", f, dir, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("empty token file: %v", err)
	}
	// a hand-edited short token in the data dir is refused too
	os.WriteFile(filepath.Join(dir, tokenFile), []byte("short\n"), 0o600)
	if _, err := adminTokens("", "", dir, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Errorf("short data-dir token: %v", err)
	}
}

// TestShortTokenRefusedAtStart: the daemon does not start with a token an
// attacker could guess, and does not log what it was given.
func TestShortTokenRefusedAtStart(t *testing.T) {
	d := tryStart(t, t.TempDir(), "-admin-token", "Secr3tPassphrase-9f8e7d:x")
	if err := d.wait(20e9); err == nil {
		t.Fatal("started with a 1-character token")
	}
	if logs := d.logs.String(); strings.Contains(logs, "Secr3tPassphrase") || !strings.Contains(logs, "-admin-token, entry 1") {
		t.Errorf("logs:\n%s", logs)
	}
}

// -events-token follows the same rules: the case is refused
// without the secret in the message.
func TestEventsTokenNotQuoted(t *testing.T) {
	_, err := eventTokens("Secr3tPassphrase-9f8e7d:x")
	if err == nil || strings.Contains(err.Error(), "Secr3t") || !strings.Contains(err.Error(), "-events-token, entry 1") {
		t.Errorf("got %v", err)
	}
	_, err = eventTokens("kam:kamailio-0123456789ab\"cdef")
	if err == nil || strings.Contains(err.Error(), "kamailio-") {
		t.Errorf("bad character: %v", err)
	}
}
