package origin

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestRangeSetContains(t *testing.T) {
	s, err := ParseRanges([]string{
		"192.0.2.0/24", " 198.51.100.7 ", "10.0.0.0/8", "10.1.0.0/16", // nested: merged
		"172.16.0.0/13", "172.24.0.0/13", // adjacent: merged
		"255.255.255.0/24", "0.0.0.0/32",
		"2001:db8::/32", "2001:db8::1", "::ffff:203.0.113.0/120", "ffff::/16",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.v4) != 7 || len(s.v6) != 2 || s.Len() != 12 {
		t.Fatalf("compiled to %d+%d ranges: %+v %+v", len(s.v4), len(s.v6), s.v4, s.v6)
	}
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"192.0.2.0", true}, {"192.0.2.255", true}, {"192.0.3.0", false}, {"192.0.1.255", false},
		{"198.51.100.7", true}, {"198.51.100.8", false}, {"198.51.100.6", false},
		{"10.200.1.1", true}, {"11.0.0.0", false},
		{"172.16.0.0", true}, {"172.31.255.255", true}, {"172.32.0.0", false}, {"172.15.255.255", false},
		{"255.255.255.255", true}, {"0.0.0.0", true}, {"0.0.0.1", false},
		{"203.0.113.5", true}, {"::ffff:203.0.113.5", true}, {"::ffff:192.0.2.1", true},
		{"2001:db8:ffff::1", true}, {"2001:db9::", false}, {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"::", false},
	} {
		if got := s.Contains(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Contains(%s) = %v", c.ip, got)
		}
	}
	if s.Contains(netip.Addr{}) {
		t.Error("invalid address contained")
	}
	var empty RangeSet
	if !empty.Empty() || empty.Contains(netip.MustParseAddr("1.2.3.4")) {
		t.Error("zero RangeSet not empty")
	}
}

func TestParseRangesErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty entry"},
		{"10.1.2.3/8", "did you mean 10.0.0.0/8 or 10.1.2.3/32"},
		{"10.0.0.0/33", "not a CIDR prefix"},
		{"300.1.1.1", "not an IP address"},
		{"example.com", "not an IP address"},
		{"fe80::1%eth0", "zoned"},
		{"::ffff:0:0/90", "at least 96 bits"},
		{"2001:db8::1/32", "did you mean 2001:db8::/32"},
		{"10.0.0.0/8,", "not a CIDR prefix"},
	} {
		_, err := ParseRanges([]string{"192.0.2.0/24", c.in})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "[1]: ") {
			t.Errorf("%q: err %v, want [1]: …%s", c.in, err, c.want)
		}
	}
	if _, err := ParseRanges(make([]string, MaxRanges+1)); err == nil {
		t.Error("oversized list accepted")
	}
}

func TestCanonicalRanges(t *testing.T) {
	got, err := CanonicalRanges([]string{"10.0.0.0/8", " 192.0.2.1", "2001:DB8::/32", "10.0.0.0/8", "::ffff:198.51.100.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	want := "10.0.0.0/8 192.0.2.1/32 198.51.100.0/24 2001:db8::/32"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v", got)
	}
	if _, err := CanonicalRanges([]string{"x"}); err == nil {
		t.Fatal("bad list accepted")
	}
}

// TestRangeSetMatchesLinear checks the bisection against a linear scan of
// the prefixes on random lists and addresses.
func TestRangeSetMatchesLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 50; round++ {
		var list []string
		var ps []netip.Prefix
		for i := 0; i < 1+r.IntN(40); i++ {
			var p netip.Prefix
			if r.IntN(2) == 0 {
				a := netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
				p = netip.PrefixFrom(a, 6+r.IntN(27)).Masked()
			} else {
				var b [16]byte
				b[0] = byte(r.IntN(3))
				for j := 1; j < 16; j++ {
					b[j] = byte(r.IntN(256))
				}
				p = netip.PrefixFrom(netip.AddrFrom16(b), 4+r.IntN(125)).Masked()
			}
			ps = append(ps, p)
			list = append(list, p.String())
		}
		s, err := ParseRanges(list)
		if err != nil {
			t.Fatal(err)
		}
		probe := func(a netip.Addr) {
			want := false
			for _, p := range ps {
				if p.Contains(a) {
					want = true
				}
			}
			if got := s.Contains(a); got != want {
				t.Fatalf("%v in %v: %v, want %v", a, list, got, want)
			}
		}
		for _, p := range ps {
			probe(p.Addr())
			if pv := p.Addr().Prev(); pv.IsValid() {
				probe(pv)
			}
		}
		for i := 0; i < 500; i++ {
			if r.IntN(2) == 0 {
				probe(netip.AddrFrom4([4]byte{byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}))
			} else {
				var b [16]byte
				b[0] = byte(r.IntN(3))
				for j := 1; j < 16; j++ {
					b[j] = byte(r.IntN(256))
				}
				probe(netip.AddrFrom16(b))
			}
		}
	}
}
