package policy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A slab's copy is a deep copy, as Clone's is: equal to the original,
// sharing no map, slice or pointer with it, nil kept nil and empty kept
// empty; and two copies in one slab share nothing mutable either. Adopt
// yields the same value, and shares nothing with anything but the map it
// was given.
func TestSlabDeep(t *testing.T) {
	for _, mode := range []string{"zero", "empty", "full"} {
		for _, typ := range []reflect.Type{reflect.TypeOf(Account{}), reflect.TypeOf(Policy{})} {
			name := typ.String() + "/" + mode
			orig := reflect.New(typ).Elem()
			if mode != "zero" {
				seed := 0
				fill(t, typ.String(), orig, mode == "full", &seed)
			}
			var sl Slab
			copyOf := func(v reflect.Value) reflect.Value {
				switch x := v.Interface().(type) {
				case Account:
					return reflect.ValueOf(sl.Account(x))
				case Policy:
					return reflect.ValueOf(sl.Policy(x))
				}
				t.Fatalf("%s: no slab copy", name)
				return reflect.Value{}
			}
			a, b := copyOf(orig), copyOf(orig)
			for i, got := range []reflect.Value{a, b} {
				if !reflect.DeepEqual(orig.Interface(), got.Interface()) {
					t.Errorf("%s: copy %d differs:\n got %#v\nwant %#v", name, i, got.Interface(), orig.Interface())
				}
				noAlias(t.Errorf, fmt.Sprintf("%s copy %d", name, i), orig, got)
			}
			noAlias(t.Errorf, name+" two copies", a, b)
			if typ == reflect.TypeOf(Account{}) {
				before := orig.Interface().(Account).Clone()
				got := sl.Adopt(orig.Interface().(Account))
				if !reflect.DeepEqual(before, got) {
					t.Errorf("%s: adopted differs:\n got %#v\nwant %#v", name, got, before)
				}
				got.Subaccounts = nil // the one part Adopt keeps
				noAlias(t.Errorf, name+" adopted", reflect.ValueOf(before), reflect.ValueOf(got))
			}
		}
	}
}

// A list copied into a slab has no room to grow in place: an append to
// one copy never writes into the next one's elements.
func TestSlabListsDoNotGrowIntoEachOther(t *testing.T) {
	var sl Slab
	x := sl.Policy(Policy{AllowPrefixes: &[]string{"+1", "+2"}})
	y := sl.Policy(Policy{AllowPrefixes: &[]string{"+3"}})
	*x.AllowPrefixes = append(*x.AllowPrefixes, "+9")
	if got := *y.AllowPrefixes; len(got) != 1 || got[0] != "+3" {
		t.Fatalf("an append to one copy changed the next: %q", got)
	}
}

func TestSlabStrings(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"short", "acct-000001"},
		{"long, copied apart", long},
		{"multibyte", "région:ü"},
	}
	var sl Slab
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sl.String(tt.in)
			if got != tt.in {
				t.Fatalf("String(%q) = %q", tt.in, got)
			}
			if again := sl.String(tt.in); tt.in != "" && len(tt.in) <= 256 && strings.Clone(again) != got {
				t.Fatalf("String(%q) again = %q", tt.in, again)
			}
			if c := sl.Copy(tt.in); c != tt.in {
				t.Fatalf("Copy(%q) = %q", tt.in, c)
			}
		})
	}
	// interning is bounded: past maxInterned values are still copied, not
	// remembered
	for i := 0; i < maxInterned+10; i++ {
		if s := fmt.Sprint(i); sl.String(s) != s {
			t.Fatalf("String(%q) wrong", s)
		}
	}
	if len(sl.intern) > maxInterned {
		t.Fatalf("%d strings interned, more than %d", len(sl.intern), maxInterned)
	}
	// a value spanning two chunks' worth of short strings stays intact
	var many []string
	for i := 0; i < 20000; i++ {
		many = append(many, sl.Copy(fmt.Sprintf("+%012d", i)))
	}
	for i, s := range many {
		if want := fmt.Sprintf("+%012d", i); s != want {
			t.Fatalf("copy %d = %q, want %q", i, s, want)
		}
	}
}
