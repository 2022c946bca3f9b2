package policy

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNormalizePrefix(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := NormalizePrefix(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizePrefix(%q) = %q, want error", in, got)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("NormalizePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	f("+44 20", "+4420")
	f("0044-20", "+4420")
	f("4420", "+4420")
	f(" +1 (876) ", "+1876")
	f("+0", "")
	f("+44a", "")
	f("abc", "")
	f("", "")
	f("+", "")
	f("+1234567890123456", "") // 16 digits
	f("+123456789012345", "+123456789012345")
}

func ptr[T any](v T) *T { return &v }

func TestAccountValidateCanonicalises(t *testing.T) {
	a := Account{Policy: Policy{
		HomeCountry: ptr("gb"),
		Countries:   &CountryRule{Default: Deny, Except: []string{"us", "continent:na", "GB", "US", "nanp"}},
		HighRisk:    ptr(HighRiskBlock),
		BlockPrefixes: &[]string{
			"0044 20", "+4420",
		},
	}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if *a.HomeCountry != "GB" {
		t.Errorf("home_country = %q", *a.HomeCountry)
	}
	if want := []string{"GB", "US", "continent:NA", "nanp"}; !slices.Equal(a.Countries.Except, want) {
		t.Errorf("except = %v, want %v", a.Countries.Except, want)
	}
	if want := []string{"+4420"}; !slices.Equal(*a.BlockPrefixes, want) {
		t.Errorf("block_prefixes = %v, want %v", *a.BlockPrefixes, want)
	}
}

func TestValidateFieldErrors(t *testing.T) {
	f := func(name string, a Account, wantField, wantMsg string) {
		t.Helper()
		err := a.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err = %v, want *FieldError", name, err)
			return
		}
		if fe.Field != wantField || !strings.Contains(fe.Msg, wantMsg) {
			t.Errorf("%s: got field %q msg %q; want field %q msg containing %q", name, fe.Field, fe.Msg, wantField, wantMsg)
		}
	}
	f("bad except entry",
		Account{Policy: Policy{Countries: &CountryRule{Default: Allow, Except: []string{"US", "XX"}}}},
		"countries.except[1]", `unknown country code "XX"`)
	f("continent typo",
		Account{Policy: Policy{Countries: &CountryRule{Default: Allow, Except: []string{"continent:XX"}}}},
		"countries.except[0]", "unknown continent")
	f("subaccount default missing",
		Account{Subaccounts: map[string]Policy{"sales": {Countries: &CountryRule{Except: []string{"US"}}}}},
		"subaccounts.sales.countries.default", "required")
	f("subaccount default wrong",
		Account{Subaccounts: map[string]Policy{"sales": {Countries: &CountryRule{Default: "block"}}}},
		"subaccounts.sales.countries.default", `"block"`)
	f("home country 001",
		Account{Policy: Policy{HomeCountry: ptr("001")}},
		"home_country", "unknown country code")
	f("bad prefix",
		Account{Policy: Policy{AllowPrefixes: &[]string{"+44", "+0"}}},
		"allow_prefixes[1]", "starts with 0")
	f("bad subaccount name",
		Account{Subaccounts: map[string]Policy{"a b": {}}},
		`subaccounts."a b"`, "bad subaccount name")
}

func TestValidName(t *testing.T) {
	f := func(name string, ok bool) {
		t.Helper()
		err := ValidName(name)
		if (err == nil) != ok || IsValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v, IsValidName = %v; want ok=%v", name, err, IsValidName(name), ok)
		}
	}
	f("acme", true)
	f("trunk-7@carrier.example", true)
	f("a+b", true)
	f("...", true)
	f(".hidden", true)
	f(strings.Repeat("a", 64), true)
	f("", false)
	f(".", false)
	f("..", false)
	f("a b", false) // account=a+b in a query string
	f("a/b", false)
	f("é", false)
	f(strings.Repeat("a", 65), false)
}

func TestAccountCheckSize(t *testing.T) {
	a := Account{Subaccounts: map[string]Policy{}}
	for i := 0; i < MaxSubaccounts; i++ {
		a.Subaccounts["s"+strconv.Itoa(i)] = Policy{}
	}
	if err := a.CheckSize(); err != nil {
		t.Fatalf("%d subaccounts: %v", len(a.Subaccounts), err)
	}
	a.Subaccounts["one-more"] = Policy{}
	var fe *FieldError
	if err := a.CheckSize(); !errors.As(err, &fe) || fe.Field != "subaccounts" {
		t.Errorf("%d subaccounts: %v", len(a.Subaccounts), err)
	}
	l := make([]string, MaxAccountPrefixes+1)
	b := Account{Policy: Policy{BlockPrefixes: &l}}
	if err := b.CheckSize(); !errors.As(err, &fe) {
		t.Errorf("%d prefixes: %v", len(l), err)
	}
}
