package policy

import (
	"slices"
	"testing"
)

// TestValidateKeepsCanonical: a layer already canonical keeps its lists
// and home country (the very objects: a compile validates the service's
// accounts, and an equal copy would be kept beside each); one that is not
// gets the canonical form, and a missing list still becomes empty.
func TestValidateKeepsCanonical(t *testing.T) {
	tests := []struct {
		name       string
		except     []string
		block      []string
		home       string
		wantExcept []string
		wantBlock  []string
		same       bool
	}{
		{"canonical", []string{"CU", "FR"}, []string{"+881"}, "GB", []string{"CU", "FR"}, []string{"+881"}, true},
		{"unsorted", []string{"FR", "CU"}, []string{"+882", "+881"}, "GB", []string{"CU", "FR"}, []string{"+881", "+882"}, false},
		{"lower case", []string{"cu"}, []string{"881"}, "gb", []string{"CU"}, []string{"+881"}, false},
		{"duplicates", []string{"CU", "CU"}, []string{"+881", "+881"}, "GB", []string{"CU"}, []string{"+881"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := tc.home
			block := slices.Clone(tc.block)
			p := Policy{HomeCountry: &home, Countries: &CountryRule{Default: Allow, Except: slices.Clone(tc.except)}, BlockPrefixes: &block}
			ex0, bl0, hc0 := p.Countries.Except, *p.BlockPrefixes, p.HomeCountry
			if err := p.Validate(""); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Countries.Except, tc.wantExcept) || !slices.Equal(*p.BlockPrefixes, tc.wantBlock) {
				t.Fatalf("got %v %v", p.Countries.Except, *p.BlockPrefixes)
			}
			same := &p.Countries.Except[0] == &ex0[0] && &(*p.BlockPrefixes)[0] == &bl0[0] && p.HomeCountry == hc0
			if tc.same && !same {
				t.Error("a canonical layer's lists or home country were replaced by copies")
			}
		})
	}
	// nil lists still come out empty, not null, as stored JSON has them
	var none []string
	p := Policy{Countries: &CountryRule{Default: Deny}, AllowPrefixes: &none}
	if err := p.Validate(""); err != nil {
		t.Fatal(err)
	}
	if p.Countries.Except == nil || *p.AllowPrefixes == nil {
		t.Errorf("nil lists stayed nil: %#v %#v", p.Countries.Except, *p.AllowPrefixes)
	}
}
