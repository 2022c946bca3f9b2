package numplan

import (
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// benchNumbers mixes every example number of every region (so every code
// and most shared-code tries are exercised) with random digit strings.
func benchNumbers() [][]byte {
	var out [][]byte
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range allTypes {
			if num := phonenumbers.GetExampleNumberForType(region, typ); num != nil {
				out = append(out, []byte(phonenumbers.Format(num, phonenumbers.E164)[1:]))
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 1024; i++ {
		l := 8 + rng.IntN(8)
		b := make([]byte, l)
		for j := range b {
			b[j] = byte('0' + rng.IntN(10))
		}
		out = append(out, b)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func BenchmarkResolve(b *testing.B) {
	p := Default()
	nums := benchNumbers()
	b.ReportAllocs()
	b.ResetTimer()
	var sink Resolution
	for i := 0; i < b.N; i++ {
		sink = p.Resolve(nums[i%len(nums)])
	}
	_ = sink
}

func BenchmarkResolveNANP(b *testing.B) {
	p := Default()
	nums := [][]byte{[]byte("18765230123"), []byte("12125550100"), []byte("14165550100"), []byte("17872345678")}
	b.ReportAllocs()
	b.ResetTimer()
	var sink Resolution
	for i := 0; i < b.N; i++ {
		sink = p.Resolve(nums[i&3])
	}
	_ = sink
}

func BenchmarkIsEmergency(b *testing.B) {
	p := Default()
	d := []byte("999")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.IsEmergency("GB", d)
	}
}

func BenchmarkMatchIDD(b *testing.B) {
	p := Default()
	d := []byte("0011442079460958")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.MatchIDD("AU", d)
	}
}

func BenchmarkSlowRegion(b *testing.B) {
	d := []byte("441481256789")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = SlowRegion(d)
	}
}

func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Build(); err != nil {
			b.Fatal(err)
		}
	}
}
