package origin

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
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
	tree, err := mmdbwriter.New(mmdbwriter.Options{
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
