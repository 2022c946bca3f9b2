package matcher

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/origin/geotest"
	"github.com/tollgate/tollgate/policy"
)

// BenchmarkDecideOrigin is BenchmarkDecideE164's policy (10,000 accounts,
// 100,000 high-risk prefixes) deciding calls to numbers the accounts may
// call, from random accounts, with origin checks off and on: every account then has a geo profile, stationary mobility, a home
// country and a 30-minute location-change period, and a Geo-IP database is
// in force. "origin/op" is the share of calls the destination rules allowed,
// i.e. that reached the origin check. "on-home-write" is on-home with a
// clock that moves 2 s per call, so every call is a new last call and takes
// the account's lock to record it (the worst case: on-home's calls of an
// account come milliseconds apart and leave its state as it was).
// "on-home-prod" is what a production check meets: on-home-write's clock
// (an account's calls are seconds apart, so each records its call), a
// Geo-IP database the size of a real one's IPv4 part (about 70,000
// networks) and every account calling from an address of its own, so the
// lookups do not all walk one cached path. "cpu-ns/op" is the loop's
// thread CPU time per call, which a shared machine disturbs less than
// ns/op (time the core was elsewhere is left out).
func BenchmarkDecideOrigin(b *testing.B) {
	geo := geoTestDB(b)
	// Numbers every synthetic account may call (no high-risk prefix of
	// the synthetic list covers them), so every call reaches the origin
	// check when it is on.
	var nums []string
	plain := newTestMatcher(b, synthSet(10_000, 100_000, 1))
	for _, n := range []string{"+441134960123", "+442079460123", "+33142685300", "+33491123456", "+14155550123",
		"+12125550123", "+493012345678", "+498912345678", "+34912345678", "+31201234567"} {
		ok := true
		for a := 0; a < 8; a++ {
			ok = ok && plain.Decide(&Query{To: n, Account: "acct-" + strconv.Itoa(a)}).Reason == ReasonOK
		}
		if ok {
			nums = append(nums, n)
		}
	}
	if len(nums) < 2 {
		b.Fatalf("only %v pass the synthetic policy", nums)
	}
	for _, bc := range []struct {
		name, src string
		on        bool
	}{
		{"off", srcGB, false},
		{"on-home", srcGB, true},
		{"on-screen", srcNG, true},
		{"on-home-write", srcGB, true},
		{"on-home-prod", "", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			set := synthSet(10_000, 100_000, 1)
			opt := Options{}
			if bc.on {
				set.Operator.GeoProfiles = geoProfiles()
				for k, a := range set.Accounts {
					a.Origin = &policy.Origin{GeoProfile: sp("std"), Mobility: sp("stationary"), HomeOrigin: sp("GB"), LocationChangeMinutes: ip(30)}
					set.Accounts[k] = a
				}
				so := origin.StateOptions{}
				if bc.name == "on-home-write" || bc.name == "on-home-prod" {
					var clk atomic.Int64
					clk.Store(time.Now().UnixNano())
					so.Now = func() time.Time { return time.Unix(0, clk.Add(int64(2*time.Second))) }
				}
				g := geo
				if bc.name == "on-home-prod" {
					g = prodGeo(b)
				}
				opt.Origin = origin.NewChecker(g, origin.NewState(so))
			}
			snap, err := Compile(set, numplan.Default())
			if err != nil {
				b.Fatal(err)
			}
			m := New(numplan.Default(), opt)
			m.Swap(snap)
			qs := benchQueries(1<<16, 10_000, "+")
			ran := 0
			for i := range qs {
				qs[i].To, qs[i].SrcIP = nums[i%len(nums)], bc.src
				if bc.src == "" {
					qs[i].SrcIP = prodSource(qs[i].Account)
				}
				if v := m.Decide(&qs[i]); v.OriginRan() { // also creates every account's state
					ran++
				}
			}
			if bc.on && bc.src != srcNG {
				for i := range qs[:64] {
					if v := m.Decide(&qs[i]); v.Action != Allow || v.Origin.Rule != origin.RuleHome {
						b.Fatalf("%s from %s: %s %q, want allowed at home", qs[i].Account, qs[i].SrcIP, v.Action, v.RuleString())
					}
				}
			}
			var buf [256]byte
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			start := threadCPU()
			for i := 0; i < b.N; i++ {
				v := m.Decide(&qs[i&(len(qs)-1)])
				_ = v.AppendRule(buf[:0])
			}
			b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(ran)/float64(len(qs)), "origin/op")
		})
	}
}

// prodGeoDB is a Geo-IP database the size of GeoLite2 Country's IPv4
// part (about 70,000 networks: 60,000 random ones, /16 to /24, in 12
// countries, then a GB /24 for each benchmark account, inserted last so
// they win), written once per process.
var prodGeoDB = sync.OnceValues(func() (string, error) {
	r := rand.New(rand.NewPCG(7, 8))
	codes := []string{"DE", "FR", "GB", "US", "NG", "CN", "BR", "IN", "RU", "JP", "ZA", "AU"}
	var nets []geotest.Net
	for i := 0; i < 60_000; i++ {
		a := netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), 0})
		nets = append(nets, geotest.Net{CIDR: netip.PrefixFrom(a, 16+r.IntN(9)).Masked().String(), Country: codes[r.IntN(len(codes))]})
	}
	for a := 0; a < 10_000; a++ {
		nets = append(nets, geotest.Net{CIDR: prodNet(a).String(), Country: "GB"})
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-geo")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "country.mmdb")
	return path, geotest.Write(path, nets...)
})

func prodGeo(b *testing.B) *origin.GeoIP {
	path, err := prodGeoDB()
	if err != nil {
		b.Fatal(err)
	}
	g, err := origin.OpenGeoIP(path)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// prodNet is benchmark account n's own /24, spread over 1.0.0.0-222.255.255.0.
func prodNet(n int) netip.Prefix {
	x := uint32(n) * 2654435761 % (222 << 16)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + x>>16), byte(x >> 8), byte(x), 0}), 24)
}

// prodSource is the account's address ("acct-N"), in its own /24.
func prodSource(account string) string {
	n, err := strconv.Atoi(account[len("acct-"):])
	if err != nil {
		panic(account)
	}
	b := prodNet(n).Addr().As4()
	b[3] = byte(1 + n%250)
	return netip.AddrFrom4(b).String()
}
