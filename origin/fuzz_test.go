package origin

import (
	"net/netip"
	"strings"
	"testing"
)

func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"192.0.2.0/24", "10.0.0.1", "2001:db8::/32", "::ffff:10.0.0.0/104", "10.1.2.3/8", "", "fe80::1%eth0", "1.2.3.4/33"} {
		f.Add(s, "203.0.113.7")
	}
	f.Fuzz(func(t *testing.T, entry, probe string) {
		s, err := ParseRanges([]string{entry})
		if err != nil {
			return
		}
		p, err := ParsePrefix(entry)
		if err != nil {
			t.Fatalf("ParseRanges accepted %q but ParsePrefix refuses it: %v", entry, err)
		}
		if !s.Contains(p.Addr()) {
			t.Fatalf("%q does not contain its own address %s", entry, p.Addr())
		}
		if a, ok := ParseIP(probe); ok {
			if got, want := s.Contains(a), p.Contains(a.Unmap()); got != want {
				t.Fatalf("%q contains %s: %v, netip says %v", entry, a, got, want)
			}
		}
		c, err := CanonicalRanges([]string{entry})
		if err != nil || len(c) != 1 {
			t.Fatalf("canonical %q: %v %v", entry, c, err)
		}
		if again, err := CanonicalRanges(c); err != nil || again[0] != c[0] {
			t.Fatalf("canonical form %q not stable: %v %v", c[0], again, err)
		}
	})
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "[2001:db8::1]", "::ffff:1.2.3.4", "fe80::1%eth0", "", "[", "1.2.3.4:5060"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := ParseIP(s)
		if ok != a.IsValid() {
			t.Fatalf("%q: ok=%v valid=%v", s, ok, a.IsValid())
		}
		if ok && a.Zone() != "" {
			t.Fatalf("%q: zone accepted", s)
		}
		// Without brackets, ParseIP agrees with netip.ParseAddr on every
		// zone-free string.
		if len(s) > 0 && s[0] != '[' && len(s) <= 64 {
			want, err := netip.ParseAddr(s)
			if err == nil && want.Zone() == "" && (!ok || a != want) {
				t.Fatalf("%q: ParseIP %v %v, netip %v", s, a, ok, want)
			}
			if err != nil && ok {
				t.Fatalf("%q: ParseIP accepts what netip refuses (%v)", s, err)
			}
		}
	})
}

func FuzzParseCodeHash(f *testing.F) {
	h, _ := HashCode("1234", 1000)
	f.Add(h.String())
	f.Add("pbkdf2-sha256$1000$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pbkdf2-sha256$$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseCodeHash(s)
		if err != nil {
			return
		}
		again, err := ParseCodeHash(h.String())
		if err != nil || again.String() != h.String() {
			t.Fatalf("%q: round trip %v", s, err)
		}
	})
}

// FuzzCompileGeoBytes feeds arbitrary bytes (seeded with a real database and
// mutations of it) to the database compiler: it must refuse or compile,
// never panic, and a compiled table must answer.
func FuzzCompileGeoBytes(f *testing.F) {
	good := mmdbBytes(f, testNets)
	f.Add(good)
	f.Add(good[:len(good)-10])
	mid := append([]byte(nil), good...)
	mid[len(mid)/3] ^= 0x55
	f.Add(mid)
	f.Add([]byte("\xab\xcd\xefMaxMind.com"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := CompileGeoBytes(b)
		if err != nil {
			return
		}
		tab.Country(netip.MustParseAddr("81.2.69.1"))
		tab.Country(netip.MustParseAddr("2001:db8::1"))
	})
}

func FuzzCompileProfile(f *testing.F) {
	f.Add("z", "screen", "DE", "continent:AF", "allow")
	f.Add("", "reject", "region:caribbean", "nanp", "")
	f.Add("a", "allow", "001", "XX", "bogus")
	f.Fuzz(func(t *testing.T, name, action, c1, c2, def string) {
		p, err := CompileProfile("", "p", ProfileSpec{Zones: []ZoneSpec{{Name: name, Action: action, Countries: []string{c1, c2}}}, Default: def})
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		p.Lookup(c1)
	})
}

// FuzzParseSource: whatever a proxy sends, ParseSource either refuses it
// with a reason or returns a zone-free address that the string carries
// (bare, as ip:port or [ip]:port, with blanks), never both and never a
// panic.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.1:5060", "[2001:db8::1]:5060", "[2001:db8::1]", " 10.0.0.1\t", "fe80::1%eth0",
		"[fe80::1%eth0]:5060", "abc", "127.0.0.256", "1.2.3", "", " ", "[10.0.0.1]", "10.0.0.1:", "[::1]:", "::ffff:1.2.3.4", "1.2.3.4%x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, e := ParseSource(s)
		if (e == SourceOK) != a.IsValid() {
			t.Fatalf("%q: %v, reason %d", s, a, e)
		}
		if e != SourceOK {
			if e.String() == "" {
				t.Fatalf("%q refused without a reason", s)
			}
			return
		}
		if a.Zone() != "" {
			t.Fatalf("%q: zone kept: %v", s, a)
		}
		// The address read is what netip reads from the host part.
		host := strings.Trim(s, " \t")
		if ap, err := netip.ParseAddrPort(host); err == nil {
			host = ap.Addr().String()
			if ap.Addr().Zone() != "" {
				host = ap.Addr().WithZone("").String()
			}
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if i := strings.IndexByte(host, '%'); i >= 0 {
			host = host[:i]
		}
		want, err := netip.ParseAddr(host)
		if err != nil || want != a {
			t.Fatalf("%q: ParseSource %v, netip reads %q as %v (%v)", s, a, host, want, err)
		}
	})
}

// FuzzParseSourceFast: ParseSource's one-pass IPv4 fast path agrees with the
// general path on every input — the same address or the same refusal — and
// an address it accepts is netip's reading of the same text (as an address,
// or as address and port).
func FuzzParseSourceFast(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1:5060", "0.0.0.0:0", "255.255.255.255:65535", "1.2.3.4:65536",
		"1.2.3.4:", "1.2.3:80", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", " 1.2.3.4 ", "[2001:db8::1]:5060", "fe80::1%eth0",
		"1.2.3.4:050", "1.2.3.4:+80", ":80", "1..2.3", "2001:db8::1", "::ffff:1.2.3.4", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, e := ParseSource(s)
		wa, we := parseSource(s)
		if a != wa || e != we {
			t.Fatalf("%q: ParseSource %v %v, general path %v %v", s, a, e, wa, we)
		}
		fa, ok := parseSource4(s)
		if !ok {
			return
		}
		if fa != wa || we != SourceOK {
			t.Fatalf("%q: fast path %v, general path %v %v", s, fa, wa, we)
		}
		if na, err := netip.ParseAddr(s); err == nil {
			if na != fa {
				t.Fatalf("%q: fast path %v, netip %v", s, fa, na)
			}
		} else if ap, err := netip.ParseAddrPort(s); err != nil || ap.Addr() != fa {
			t.Fatalf("%q: fast path %v, netip %v %v", s, fa, ap, err)
		}
	})
}

// FuzzSource16: the /16 PrefetchSource reads from a source address's
// first two numbers is the /16 of the address ParseSource reads, whenever
// both read one; and every address of the forms proxies send on almost
// every call ("a.b.c.d", "a.b.c.d:port") gives one.
func FuzzSource16(f *testing.F) {
	for _, s := range []string{"81.2.69.10", "81.2.69.10:5060", "255.255.0.1", "0.0.0.0", "256.1.2.3", "1.256.2.3",
		"01.2.3.4", "1.2", "1.2.", "1..2.3", "[::ffff:1.2.3.4]:5060", "::ffff:1.2.3.4", " 1.2.3.4", "1234.5.6.7", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := source16(s)
		if ok && h > 0xffff {
			t.Fatalf("%q: /16 %#x out of range", s, h)
		}
		if a, fast := parseSource4(s); fast && !ok {
			t.Fatalf("%q: ParseSource reads %s, source16 nothing", s, a)
		}
		a, err := ParseSource(s)
		if !ok || err != SourceOK || !a.Unmap().Is4() {
			return
		}
		if b := a.Unmap().As4(); uint(b[0])<<8|uint(b[1]) != h {
			t.Fatalf("%q: ParseSource reads %s, source16 %d.%d", s, a, h>>8, h&0xff)
		}
	})
}
