package store

import (
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/policy"
)

// BenchmarkOpenLoad100k opens and loads a data file of 100,000 accounts
// (one import-sized commit): the start-up cost of verifying every record's
// seal and the digests and decoding every account strictly.
func BenchmarkOpenLoad100k(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := &Change{Accounts: make(map[string]*policy.Account, 100_000)}
	for i := 0; i < 100_000; i++ {
		a := acme()
		a.Subaccounts = map[string]policy.Policy{"s": {MaxCPS: ptr(i % 50)}}
		c.Accounts[fmt.Sprintf("acct-%06d", i)] = a
	}
	if _, err := s.Commit(c); err != nil {
		b.Fatal(err)
	}
	s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		set, err := s.Load()
		if err != nil || len(set.Accounts) != 100_000 {
			b.Fatal(err)
		}
		s.Close()
	}
}
