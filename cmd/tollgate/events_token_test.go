package main

import (
	"io"
	"strings"
	"testing"
)

// -events-token is parsed like -admin-token and refused when a token is
// short or has a character a proxy config or JSON string cannot carry.
func TestEventsTokenFlag(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"", ""},
		{"kamailio-0123456789abcdef", ""},
		{"kam:kamailio-0123456789abcdef, ops:b64+/token==0123456", ""},
		{"short", "shorter than 16"},
		{"kam:", "empty token"},
		{"tok\"en-0123456789abcdef", "character"},
		{"token with blanks 0123456", "character"},
	} {
		_, err := parseFlags([]string{"-events-token", c.in}, io.Discard)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("-events-token %q: %v, want %q", c.in, err, c.err)
		}
	}
	toks, _ := eventTokens("kam:kamailio-0123456789abcdef,opensips-0123456789abcdef")
	if len(toks) != 2 || toks[0].Name != "kam" || toks[1].Name != "events" || toks[1].Secret != "opensips-0123456789abcdef" {
		t.Errorf("tokens %+v", toks)
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:1": true, "0.0.0.0:8080": false, ":8080": false, "10.0.0.5:8080": false} {
		if loopbackAddr(addr) != want {
			t.Errorf("loopbackAddr(%s) != %v", addr, want)
		}
	}
}
