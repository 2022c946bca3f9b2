package origin

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

func TestGeoTableLookups(t *testing.T) {
	tab, err := CompileGeoBytes(mmdbBytes(t, testNets))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ip, want string }{
		{"127.0.0.1", "NG"},
		{"10.0.0.1", "DE"},
		{"10.1.0.1", "FR"},
		{"10.1.2.200", "DE"},
		{"10.1.3.0", "FR"},
		{"10.2.0.0", "DE"},
		{"10.255.255.255", "DE"},
		{"11.0.0.0", ""},
		{"9.255.255.255", ""},
		{"81.2.69.1", "GB"},
		{"81.2.70.255", "GB"},
		{"81.2.71.0", ""},
		{"89.160.20.128", "SE"},
		{"175.16.199.7", "CN"},
		{"203.0.113.9", "AU"}, // registered country only
		{"::ffff:81.2.69.1", "GB"},
		{"[::ffff:10.1.0.1]", "FR"},
		{"2002:5102:4501::1", "GB"}, // 6to4 of 81.2.69.1
		{"2001:db8::1", "US"},
		{"[2001:db8:1::5]", "CA"},
		{"2001:db8:2::5", "US"},
		{"2a02:cf40:ffff::1", "NO"},
		{"2a02:cf41::1", ""},
		{"0.0.0.0", ""},
		{"255.255.255.255", ""},
		{"", ""},
		{"not-an-ip", ""},
		{"10.0.0.1:5060", "DE"}, // as proxies send it: the port is not part of the address
		{"[2001:db8::1]:5060", "US"},
		{" 81.2.69.1 ", "GB"},
		{"fe80::1%eth0", ""},
		{"2001:db8::1%eth0", "US"},
		{"10.0.0.256", ""},
		{"10.0.0.1:99999", ""},
	} {
		if got := tab.LookupString(c.ip); got != c.want {
			t.Errorf("LookupString(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
	if tab.Info.DatabaseType != "GeoLite2-Country" || tab.Info.Countries != 11 || tab.Info.IPVersion != 6 {
		t.Errorf("info %+v", tab.Info)
	}
}

// TestGeoTableMatchesLibrary compares the compiled table with the library's
// own lookup on random addresses in and around every network.
func TestGeoTableMatchesLibrary(t *testing.T) {
	var nets []geoNet
	r := rand.New(rand.NewPCG(1, 2))
	codes := []string{"DE", "FR", "GB", "US", "NG", "CN", "BR"}
	for i := 0; i < 400; i++ {
		var a [4]byte
		for j := range a {
			a[j] = byte(r.IntN(256))
		}
		bits := 8 + r.IntN(25)
		p := netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
		nets = append(nets, geoNet{cidr: p.String(), country: codes[r.IntN(len(codes))]})
	}
	for i := 0; i < 200; i++ {
		var a [16]byte
		a[0], a[1] = 0x2a, byte(r.IntN(4))
		for j := 2; j < 8; j++ {
			a[j] = byte(r.IntN(256))
		}
		bits := 16 + r.IntN(48)
		p := netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
		nets = append(nets, geoNet{cidr: p.String(), country: codes[r.IntN(len(codes))]})
	}
	b := mmdbBytes(t, nets)
	tab, err := CompileGeoBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := maxminddb.OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	check := func(a netip.Addr) {
		if !a.IsValid() {
			return
		}
		var rec countryRecord
		if err := lib.Lookup(a).Decode(&rec); err != nil {
			t.Fatal(err)
		}
		want := rec.Country.ISOCode
		if got := tab.Country(a); got != want {
			t.Fatalf("%s: table %q, library %q", a, got, want)
		}
	}
	for _, n := range nets {
		p := netip.MustParsePrefix(n.cidr)
		check(p.Addr())
		check(p.Addr().Prev())
		var hi netip.Addr
		if p.Addr().Is4() {
			_, h := prefixBounds4(p)
			hi = netip.AddrFrom4([4]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)})
		} else {
			_, h := prefixBounds6(p)
			var x [16]byte
			for i := 0; i < 8; i++ {
				x[i] = byte(h.hi >> (56 - 8*i))
				x[8+i] = byte(h.lo >> (56 - 8*i))
			}
			hi = netip.AddrFrom16(x)
		}
		check(hi)
		if nx := hi.Next(); nx.IsValid() {
			check(nx)
		}
	}
	for i := 0; i < 20000; i++ {
		var a [4]byte
		for j := range a {
			a[j] = byte(r.IntN(256))
		}
		check(netip.AddrFrom4(a))
	}
}

func TestCompileGeoRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := mmdbBytes(t, testNets)
	noCountry := mmdbBytes(t, []geoNet{{cidr: "81.2.69.0/24"}})
	for name, b := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("this is not a database\n"),
		"truncated":  good[:len(good)/2],
		"no country": noCountry,
		"corrupt": func() []byte {
			c := append([]byte(nil), good...)
			for i := 0; i < 64; i++ {
				c[i] ^= 0xff
			}
			return c
		}(),
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := CompileGeoDB(p); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := CompileGeoDB(filepath.Join(dir, "missing.mmdb")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := CompileGeoDB(dir); err == nil {
		t.Error("directory accepted")
	}
}

func TestGeoIPReload(t *testing.T) {
	dir := t.TempDir()
	p := buildMMDB(t, dir, "geo.mmdb", testNets)
	g, err := OpenGeoIP(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Country("81.2.69.1"); got != "GB" {
		t.Fatalf("got %q", got)
	}
	if ok, err := g.ReloadIfChanged(); ok || err != nil {
		t.Fatalf("unchanged file reloaded: %v %v", ok, err)
	}

	// A bad replacement is refused, once, and the good table keeps serving.
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	bump(t, p, 1)
	if ok, err := g.ReloadIfChanged(); ok || err == nil {
		t.Fatalf("bad file: reloaded=%v err=%v", ok, err)
	}
	if ok, err := g.ReloadIfChanged(); ok || err != nil {
		t.Fatalf("bad file reported twice: %v %v", ok, err)
	}
	if err := g.Reload(); err == nil {
		t.Fatal("Reload accepted a bad file")
	}
	if got := g.Country("81.2.69.1"); got != "GB" {
		t.Fatalf("old table lost: %q", got)
	}

	// A good replacement (renamed into place, as updaters do) goes in force.
	tmp := buildMMDB(t, dir, "new.mmdb", []geoNet{{cidr: "81.2.69.0/24", country: "IE"}})
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	bump(t, p, 2)
	if ok, err := g.ReloadIfChanged(); !ok || err != nil {
		t.Fatalf("good file: reloaded=%v err=%v", ok, err)
	}
	if got := g.Country("81.2.69.1"); got != "IE" {
		t.Fatalf("new table not in force: %q", got)
	}

	// The file vanishing keeps the table too.
	os.Remove(p)
	if ok, err := g.ReloadIfChanged(); ok || err == nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	if got := g.Country("81.2.69.1"); got != "IE" {
		t.Fatalf("table lost: %q", got)
	}
}

func TestGeoIPWatch(t *testing.T) {
	dir := t.TempDir()
	p := buildMMDB(t, dir, "geo.mmdb", testNets)
	g, err := OpenGeoIP(p)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	got := make(chan string, 4)
	done := make(chan struct{})
	go func() {
		g.Watch(5*time.Millisecond, stop, func(tab *GeoTable, err error) {
			got <- tab.LookupString("81.2.69.1")
		})
		close(done)
	}()
	tmp := buildMMDB(t, dir, "new.mmdb", []geoNet{{cidr: "81.2.69.0/24", country: "IE"}})
	os.Rename(tmp, p)
	bump(t, p, 3)
	select {
	case c := <-got:
		if c != "IE" {
			t.Fatalf("watch loaded %q", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not reload")
	}
	close(stop)
	<-done
}

func TestGeoIPNone(t *testing.T) {
	var g *GeoIP
	if g.Enabled() || g.Country("81.2.69.1") != "" || g.Table() != nil {
		t.Fatal("nil GeoIP knows something")
	}
	g = NewGeoIP("")
	if g.Enabled() || g.Reload() == nil {
		t.Fatal("pathless GeoIP loaded")
	}
	if _, err := OpenGeoIP(filepath.Join(t.TempDir(), "none.mmdb")); err == nil {
		t.Fatal("missing file opened")
	}
}

// bump moves a file's modification time, so a change is seen even on file
// systems with coarse timestamps.
func bump(t *testing.T, p string, n int) {
	t.Helper()
	at := time.Unix(1_800_000_000+int64(n)*60, 0)
	if err := os.Chtimes(p, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestGeoTableIndexMatchesBisection: with a table large enough to get its
// /16 index, every lookup gives what the plain bisection of the whole
// table gives: at every range's first address and the one before it, at
// both ends of /16s and at random addresses, in /16s whose ranges fit in
// their bucket (none, one, up to a full bucket, one starting at the /16's
// first address) and in /16s that overflow it.
func TestGeoTableIndexMatchesBisection(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	codes := []string{"DE", "FR", "GB", "US", "NG", "CN", "BR"}
	var nets []geoNet
	for i := 0; i < 4000; i++ {
		a := netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		nets = append(nets, geoNet{cidr: netip.PrefixFrom(a, 12+r.IntN(21)).Masked().String(), country: codes[r.IntN(len(codes))]})
	}
	// 10.n.0.0/16 gets n adjacent /24s of alternating countries from its
	// first address (n+1 ranges starting in it, the last a gap): from an
	// empty /16 to one that overflows its bucket.
	for n := 0; n < 2*geoBucketLen; n++ {
		for k := 0; k < n; k++ {
			nets = append(nets, geoNet{cidr: fmt.Sprintf("10.%d.%d.0/24", n, k), country: codes[k%2]})
		}
	}
	nets = append(nets, geoNet{cidr: "11.0.0.0/24", country: "NG"}, geoNet{cidr: "11.0.7.0/24", country: "GB"})
	tab, err := CompileGeoBytes(mmdbBytes(t, nets))
	if err != nil {
		t.Fatal(err)
	}
	if tab.v4b == nil || len(tab.v4start) < index4Min {
		t.Fatalf("%d ranges, index %v: the test needs an indexed table", len(tab.v4start), tab.v4b != nil)
	}
	inline, over := 0, 0
	for n := 0; n < 2*geoBucketLen; n++ {
		if tab.v4b[10<<8|n][0] == geoOverflow {
			over++
		} else {
			inline++
		}
	}
	if inline < geoBucketLen/2 || over < geoBucketLen/2 {
		t.Fatalf("10.n.0.0/16: %d inline buckets, %d overflowing: the test needs both", inline, over)
	}
	plain := *tab
	plain.v4b = nil
	check := func(x uint32) {
		a := netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		if got, want := tab.lookup(a), plain.lookup(a); got != want {
			t.Fatalf("%s: indexed %q, bisection %q", a, got, want)
		}
	}
	for _, s := range tab.v4start {
		check(s)
		check(s - 1)
	}
	for i := 0; i < 20000; i++ {
		h := r.Uint32() >> 16
		check(h << 16)
		check(h<<16 | 0xffff)
		check(r.Uint32())
	}
	for h := uint32(10 << 8); h < 10<<8|2*geoBucketLen; h++ {
		for lo := uint32(0); lo < 1<<16; lo += 97 {
			check(h<<16 | lo)
		}
	}
	check(11 << 24)
	check(11<<24 | 0xff)
	check(11<<24 | 0x100)
	check(0)
	check(^uint32(0))
}
