package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/origin/geotest"
)

// writeCountryDB writes a GeoLite2-Country-shaped database (built here,
// nothing is downloaded) with one network, atomically: the daemon never
// sees a half-written file.
func writeCountryDB(t *testing.T, path, cidr, country string) {
	t.Helper()
	if err := geotest.Write(path, geotest.Net{CIDR: cidr, Country: country}); err != nil {
		t.Fatal(err)
	}
}

// waitLong polls cond for up to 30 s: generous, so a loaded CI machine
// does not turn a slow signal delivery into a failure.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	geoOperator = `{"geo_profiles":{"std":{"zones":[{"name":"watch","action":"screen","countries":["NG"]}]}}}`
	geoAccount  = `{"home_country":"GB","countries":{"default":"allow"},"origin":{"geo_profile":"std"}}`
	geoCheck    = "/v1/check?to=%2B442079460123&account=roamer&src_ip=198.51.100.7"
)

// TestGeoIPDatabase runs the daemon with -geoip-db: the database's country
// decides (a screened origin gets 202), a corrupt file put in its place and
// signalled with SIGHUP is refused with a log line while the table in force
// keeps deciding, and a good new file goes into force on the next SIGHUP.
func TestGeoIPDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "country.mmdb")
	writeCountryDB(t, db, "198.51.100.0/24", "NG")
	d := startDaemon(t, t.TempDir(), "-geoip-db", db)
	if !strings.Contains(d.logs.String(), "Geo-IP database loaded") || strings.Contains(d.logs.String(), "origin country checks are off") {
		t.Fatalf("start-up log: %s", d.logs.String())
	}
	if st, body := d.admin("PUT", "/v1/operator", geoOperator); st != 200 {
		t.Fatalf("PUT operator: %d %s", st, body)
	}
	if st, body := d.admin("PUT", "/v1/accounts/roamer", geoAccount); st != 200 {
		t.Fatalf("PUT account: %d %s", st, body)
	}
	if st, body := d.query(geoCheck); st != 202 || !strings.Contains(body, `"reason":"origin_screen"`) ||
		!strings.Contains(body, `origin NG in zone \"watch\" of geo profile \"std\": screen`) {
		t.Fatalf("from NG: %d %s", st, body)
	}

	// A truncated file: refused, the NG table keeps serving.
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	waitLong(t, "refused reload logged", func() bool { return strings.Contains(d.logs.String(), "Geo-IP database refused") })
	if _, m := d.query("/metrics"); !strings.Contains(m, `tollgate_geoip_loads_total{result="refused"} 1`) ||
		!strings.Contains(m, "tollgate_geoip_loaded 1") {
		t.Fatalf("metrics after a refused file lack the refusal or the table in force:\n%s", m)
	}
	if st, body := d.query(geoCheck); st != 202 {
		t.Fatalf("a refused file dropped the table in force: %d %s", st, body)
	}

	// A good new file: the address is in GB now, the call passes.
	writeCountryDB(t, db, "198.51.100.0/24", "GB")
	d.signal(syscall.SIGHUP)
	// The line is logged after the table and the load count are in force.
	waitLong(t, "reload logged", func() bool { return strings.Contains(d.logs.String(), "Geo-IP database reloaded") })
	if st, body := d.query(geoCheck); st != 200 || !strings.Contains(body, `origin GB in no zone of geo profile \"std\": allow`) {
		t.Fatalf("after reload: %d %s", st, body)
	}
	if _, m := d.query("/metrics"); !strings.Contains(m, `tollgate_geoip_loads_total{result="ok"} 2`) {
		t.Fatalf("metrics after reload:\n%s", m)
	}
}

// TestGeoIPNone: without -geoip-db every origin is unknown: the daemon says
// so once however many calls it decides, an account with a geo profile gets
// the profile's unknown action (it used to be let through, country rules
// off), the source blocklist still applies, and /ready (still 200) and a
// gauge say the origin checks are degraded.
func TestGeoIPNone(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	if st, body := d.query("/ready"); st != 200 || strings.Contains(body, "degraded") {
		t.Fatalf("ready before any origin rule: %d %s", st, body)
	}
	if st, body := d.admin("PUT", "/v1/operator", `{"geo_profiles":{"std":{"zones":[{"name":"watch","action":"screen","countries":["NG"]}],"unknown":"screen"}},`+
		`"source_blocklist":{"cidrs":["203.0.113.0/24"]}}`); st != 200 {
		t.Fatalf("PUT operator: %d %s", st, body)
	}
	if st, body := d.admin("PUT", "/v1/accounts/roamer", geoAccount); st != 200 {
		t.Fatalf("PUT account: %d %s", st, body)
	}
	for i := 0; i < 5; i++ {
		if st, body := d.query(geoCheck); st != 202 || !strings.Contains(body, `origin unknown: no Geo-IP database: geo profile \"std\" says screen`) {
			t.Fatalf("call %d: %d %s", i, st, body)
		}
	}
	if st, body := d.query("/v1/check?to=%2B442079460123&account=roamer&src_ip=203.0.113.9"); st != 403 || !strings.Contains(body, `"reason":"source_blocked"`) {
		t.Fatalf("blocklist without a database: %d %s", st, body)
	}
	if st, body := d.query("/ready"); st != 200 || !strings.Contains(body, `"degraded":{"origin":"no Geo-IP database`) {
		t.Fatalf("ready: %d %s", st, body)
	}
	// Six unknown origins: the blocked call's too.
	if _, m := d.query("/metrics"); !strings.Contains(m, "tollgate_geoip_loaded 0") || !strings.Contains(m, "tollgate_origin_degraded 1") ||
		!strings.Contains(m, `tollgate_origin_unknown_total{cause="no_geoip"} 6`) {
		t.Fatalf("metrics:\n%s", m)
	}
	if n := strings.Count(d.logs.String(), "every origin is unknown"); n != 1 {
		t.Fatalf("the no-database line appears %d times:\n%s", n, d.logs.String())
	}
}

// TestGeoIPRefusedStart: a corrupt or missing database refuses the start
// with an error naming the flag.
func TestGeoIPRefusedStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mmdb")
	os.WriteFile(bad, []byte("not a database at all, just text"), 0o644)
	for name, path := range map[string]string{"corrupt": bad, "missing": filepath.Join(dir, "none.mmdb")} {
		t.Run(name, func(t *testing.T) {
			d := tryStart(t, t.TempDir(), "-geoip-db", path)
			if err := d.wait(15 * time.Second); err == nil || !strings.Contains(d.logs.String(), "-geoip-db") {
				t.Fatalf("start with a %s database: %v %s", name, err, d.logs.String())
			}
		})
	}
}
