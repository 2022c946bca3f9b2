// Package geotest writes small GeoLite2-Country-shaped databases for tests,
// so that no test downloads one and every test builds the same shape.
package geotest

import (
	"fmt"
	"net"
	"os"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Net puts a network (CIDR) in a country (ISO 3166 code).
type Net struct{ CIDR, Country string }

// Write writes a database with nets to path. The networks are inserted in
// the order given and a later one replaces what it covers of an earlier one,
// so list broad networks before the narrower ones inside them (a map's
// order once made a test flaky). Reserved ranges (127/8, the documentation
// nets) are allowed, as tests use them. The file is written to a temporary
// name and renamed, so a daemon watching path never reads half of it.
func Write(path string, nets ...Net) error {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", IncludeReservedNetworks: true,
		Description: map[string]string{"en": "tollgate test"}, Languages: []string{"en"}, RecordSize: 24})
	if err != nil {
		return err
	}
	for _, n := range nets {
		_, ipn, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			return fmt.Errorf("geotest: %w", err)
		}
		if err := tree.Insert(ipn, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)}}); err != nil {
			return fmt.Errorf("geotest: %s: %w", n.CIDR, err)
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
