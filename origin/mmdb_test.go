package origin

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"
)

// geoNet is one network of a test database: its country, and optionally only
// a registered country (as satellite networks have).
type geoNet struct {
	cidr       string
	country    string
	registered string
}

// buildMMDB writes a GeoLite2-Country-shaped database with nets into a file
// in dir and returns its path. Reserved networks (127/8, 10/8) are allowed,
// so tests can give 127.0.0.1 a country.
func buildMMDB(t testing.TB, dir, name string, nets []geoNet) string {
	t.Helper()
	b := mmdbBytes(t, nets)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mmdbBytes(t testing.TB, nets []geoNet) []byte {
	t.Helper()
	return mmdbBytesVersion(t, nets, 6)
}

// mmdbBytesVersion is mmdbBytes with the tree's IP version (4: an
// IPv4-only database).
func mmdbBytesVersion(t testing.TB, nets []geoNet, ipVersion int) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		IPVersion:               ipVersion,
		DatabaseType:            "GeoLite2-Country",
		IncludeReservedNetworks: true,
		RecordSize:              24,
		BuildEpoch:              1_700_000_000,
		Description:             map[string]string{"en": "tollgate test database"},
		Languages:               []string{"en"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipn, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{}
		if n.country != "" {
			rec["country"] = mmdbtype.Map{
				"iso_code":   mmdbtype.String(n.country),
				"geoname_id": mmdbtype.Uint32(1),
				"names":      mmdbtype.Map{"en": mmdbtype.String("Country " + n.country)},
			}
		}
		if n.registered != "" {
			rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(n.registered)}
		}
		rec["continent"] = mmdbtype.Map{"code": mmdbtype.String("EU")}
		if err := tree.Insert(ipn, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.CreateTemp(t.TempDir(), "mmdb")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testNets is the database most tests use.
var testNets = []geoNet{
	{cidr: "127.0.0.0/8", country: "NG"},
	{cidr: "10.0.0.0/8", country: "DE"},
	{cidr: "10.1.0.0/16", country: "FR"}, // nested in DE's: the narrower wins
	{cidr: "10.1.2.0/24", country: "DE"},
	{cidr: "81.2.69.0/24", country: "GB"},
	{cidr: "81.2.70.0/24", country: "GB"}, // adjacent, merged
	{cidr: "89.160.20.0/24", country: "SE"},
	{cidr: "175.16.199.0/24", country: "CN"},
	{cidr: "196.0.0.0/8", country: "ZA"},
	{cidr: "203.0.113.0/24", registered: "AU"},
	{cidr: "2001:db8::/32", country: "US"},
	{cidr: "2001:db8:1::/48", country: "CA"},
	{cidr: "2a02:cf40::/32", country: "NO"},
}

// TestGeoTableIPv4CompatibleMatchesLibrary: ::1 and ::a.b.c.d sit in the
// IPv4 subtree of an IPv6 database, where MaxMind's reader finds them; the
// table must answer the same (it used to say "unknown"). In an IPv4-only
// database the reader refuses every IPv6 address, so they stay unknown.
func TestGeoTableIPv4CompatibleMatchesLibrary(t *testing.T) {
	nets := append([]geoNet{{cidr: "0.0.0.0/8", country: "AQ"}}, testNets...)
	var nets4 []geoNet
	for _, n := range nets {
		if !strings.Contains(n.cidr, ":") {
			nets4 = append(nets4, n)
		}
	}
	for _, v := range []int{6, 4} {
		b := mmdbBytesVersion(t, nets, v)
		if v == 4 {
			b = mmdbBytesVersion(t, nets4, v)
		}
		tab, err := CompileGeoBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		lib, err := maxminddb.OpenBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"::1", "::", "::0.0.0.1", "::81.2.69.1", "::127.0.0.1", "::10.1.0.1", "::196.1.2.3",
			"::203.0.113.9", "::11.0.0.1", "::ffff:81.2.69.1", "81.2.69.1", "0.0.0.1", "2001:db8::1", "::1:0:0:1"} {
			a := netip.MustParseAddr(s)
			var rec countryRecord
			want := ""
			if err := lib.Lookup(a).Decode(&rec); err == nil {
				want = rec.Country.ISOCode
				if want == "" {
					want = rec.Registered.ISOCode
				}
			} else if !a.Is6() || v != 4 {
				t.Fatalf("v%d %s: library: %v", v, s, err)
			}
			if a.Is4In6() && v == 4 {
				continue // the reader refuses it; the table unmaps it (any proxy's ::ffff: address is IPv4)
			}
			if got := tab.Country(a); got != want {
				t.Errorf("ip_version %d: %s: table %q, library %q", v, s, got, want)
			}
		}
		lib.Close()
	}
}
