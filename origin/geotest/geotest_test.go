package geotest

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/tollgate/tollgate/origin"
)

// A narrower network listed after a broader one keeps its own country;
// bad input is an error, not a panic.
func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.mmdb")
	if err := Write(path, Net{"127.0.0.0/8", "GB"}, Net{"127.0.0.21/32", "NG"}); err != nil {
		t.Fatal(err)
	}
	g, err := origin.OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	f := func(ip, want string) {
		t.Helper()
		if got := g.Table().Country(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s: %q, want %q", ip, got, want)
		}
	}
	f("127.0.0.21", "NG")
	f("127.0.0.2", "GB")
	if err := Write(path, Net{"not a cidr", "GB"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}
