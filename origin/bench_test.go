package origin

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

// bigNets is a synthetic database the size of a real country database's
// IPv4 part (GeoLite2 Country holds about 250k IPv4 and 200k IPv6 networks
// before merging).
var bigNets = sync.OnceValue(func() []geoNet {
	r := rand.New(rand.NewPCG(7, 8))
	codes := []string{"DE", "FR", "GB", "US", "NG", "CN", "BR", "IN", "RU", "JP", "ZA", "AU"}
	var nets []geoNet
	for i := 0; i < 60000; i++ {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), 0})
		p := netip.PrefixFrom(a, 16+r.IntN(9)).Masked()
		nets = append(nets, geoNet{cidr: p.String(), country: codes[r.IntN(len(codes))]})
	}
	for i := 0; i < 30000; i++ {
		var b [16]byte
		b[0], b[1] = 0x2a, byte(r.IntN(16))
		for j := 2; j < 6; j++ {
			b[j] = byte(r.IntN(256))
		}
		p := netip.PrefixFrom(netip.AddrFrom16(b), 32+r.IntN(17)).Masked()
		nets = append(nets, geoNet{cidr: p.String(), country: codes[r.IntN(len(codes))]})
	}
	return nets
})

func benchAddrs(n int) []string {
	r := rand.New(rand.NewPCG(9, 10))
	out := make([]string, n)
	for i := range out {
		if i%4 == 3 {
			out[i] = fmt.Sprintf("2a0%x:%x::1", r.IntN(16), r.IntN(65536))
		} else {
			out[i] = fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(222), r.IntN(256), r.IntN(256), r.IntN(256))
		}
	}
	return out
}

// BenchmarkLookupLibrary is the library's own path (parse, tree walk,
// decode the country code) for comparison with the compiled table.
func BenchmarkLookupLibrary(b *testing.B) {
	db := mmdbBytes(b, bigNets())
	r, err := maxminddb.OpenBytes(db)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	addrs := benchAddrs(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a, _ := netip.ParseAddr(addrs[i&1023])
		var iso string
		if err := r.Lookup(a).DecodePath(&iso, "country", "iso_code"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupTable(b *testing.B) {
	tab, err := CompileGeoBytes(mmdbBytes(b, bigNets()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(tab.Info.Ranges), "ranges")
	addrs := benchAddrs(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tab.LookupString(addrs[i&1023])
	}
}

func BenchmarkCompileGeoDB(b *testing.B) {
	db := mmdbBytes(b, bigNets())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileGeoBytes(db); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRangeSetContains(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	var list []string
	for i := 0; i < 1000; i++ {
		list = append(list, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), 0}), 24).String())
	}
	s, err := ParseRanges(list)
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("203.0.113.77")
	b.ReportAllocs()
	for b.Loop() {
		s.Contains(a)
	}
}

// benchChecker is a Checker with the test database and an account with a
// profile, location-change period and trusted-source-free rules.
func benchChecker(b *testing.B) (*Checker, *Rules, *Rules) {
	clk := newClock()
	op, err := CompileOperator(testOperator)
	if err != nil {
		b.Fatal(err)
	}
	g, err := OpenGeoIP(buildMMDB(b, b.TempDir(), "geo.mmdb", testNets))
	if err != nil {
		b.Fatal(err)
	}
	r, _ := op.Account(AccountSpec{Profile: "std", Mobility: "stationary", Home: "DE", ChangeMinutes: 30})
	tr, _ := op.Account(AccountSpec{TrustedSources: []string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"}})
	return NewChecker(g, NewState(StateOptions{Now: clk.Now})), r, tr
}

func BenchmarkCheck(b *testing.B) {
	c, r, tr := benchChecker(b)
	for _, bc := range []struct {
		name string
		in   Input
	}{
		{"home", Input{Account: "acct-1", SrcIP: ipDE, Rules: r, DestCountry: "GB"}},
		{"screen-abroad", Input{Account: "acct-2", SrcIP: ipFR, Rules: r, DestCountry: "GB"}},
		{"reject-zone", Input{Account: "acct-3", SrcIP: ipCN, Rules: r, DestCountry: "GB"}},
		{"trusted", Input{Account: "acct-4", SrcIP: ipDE, Rules: tr, DestCountry: "GB"}},
		{"off", Input{Account: "acct-5", SrcIP: ipDE, DestCountry: "GB"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := bc.in
			c.Check(in)
			b.ReportAllocs()
			for b.Loop() {
				c.Check(in)
			}
		})
	}
}

// BenchmarkCheckParallel runs Check on many accounts from every core.
func BenchmarkCheckParallel(b *testing.B) {
	c, r, _ := benchChecker(b)
	accounts := make([]string, 4096)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%d", i)
		c.Check(Input{Account: accounts[i], SrcIP: ipDE, Rules: r})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(accounts))
		in := Input{SrcIP: ipDE, Rules: r, DestCountry: "GB"}
		for pb.Next() {
			in.Account = accounts[i&4095]
			c.Check(in)
			i++
		}
	})
}

// TestZeroAlloc pins the allocation-free paths: lookups, range checks and
// Check on an account that has state, including the rule text.
func TestZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	clk := newClock()
	op, _ := CompileOperator(testOperator)
	g, err := OpenGeoIP(buildMMDB(t, t.TempDir(), "geo.mmdb", testNets))
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecker(g, NewState(StateOptions{Now: clk.Now}))
	rs := []*Rules{}
	for _, s := range []AccountSpec{
		{Profile: "std", Mobility: "stationary", Home: "DE", ChangeMinutes: 30},
		{Profile: "std", ChangeMinutes: 5, ChangeBy: "ip"},
		{Profile: "strict", AssignHome: true},
		{TrustedSources: []string{"10.0.0.0/8", "2001:db8::/32"}},
	} {
		r, err := op.Account(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ips := []string{ipDE, ipFR, ipGB, ipCN, ipNG, ipZA, ipSEBlock, ipNone, ipUS6, "[2001:db8:1::1]", "::ffff:10.0.0.1", "", "garbage", "1.2.3", "01.2.3.4", "1.2.3.256", "sip:x@y"}
	buf := make([]byte, 0, 512)
	for ri, r := range rs {
		for _, ip := range ips {
			in := Input{Account: "zero", SrcIP: ip, Rules: r, DestCountry: "GB", HomeCountry: "DE"}
			c.Check(in) // creates the account's state
			n := testing.AllocsPerRun(100, func() {
				o := c.Check(in)
				buf = o.AppendText(buf[:0])
			})
			if n != 0 {
				t.Errorf("rules %d, %q: %.1f allocations per Check", ri, ip, n)
			}
		}
	}
	tab := g.Table()
	if n := testing.AllocsPerRun(100, func() { tab.LookupString("2001:db8:1::1"); tab.LookupString("81.2.69.1") }); n != 0 {
		t.Errorf("lookup: %.1f allocations", n)
	}
}

// TestCheckConcurrent runs Check, screening reports and reloads together, for
// the race detector.
func TestCheckConcurrent(t *testing.T) {
	f := newFixture(t, true)
	r := f.rules(AccountSpec{Profile: "std", ChangeMinutes: 10, AssignHome: true})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ips := []string{ipDE, ipFR, ipNG, ipGB}
			for i := 0; i < 2000; i++ {
				acc := fmt.Sprintf("a%d", i%17)
				f.c.Check(Input{Account: acc, SrcIP: ips[(i+w)%4], Rules: r, DestCountry: "GB"})
				switch i % 200 {
				case 0:
					f.st.ScreeningPassed(acc, r)
				case 100:
					f.st.ScreeningFailed(acc, r)
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			if err := f.geo.Reload(); err != nil {
				t.Error(err)
			}
			f.st.Prune(0)
		}
	}()
	wg.Wait()
}

// BenchmarkParseSource is the source address of one call as proxies send
// it: the fast path (IPv4, with or without a port) and the general one.
func BenchmarkParseSource(b *testing.B) {
	for _, s := range []string{"81.2.69.10", "81.2.69.10:5060", "[2001:db8::1]:5060"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, e := ParseSource(s); e != SourceOK {
					b.Fatal(e)
				}
			}
		})
	}
}
