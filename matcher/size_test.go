package matcher

import (
	"testing"
	"unsafe"

	"github.com/tollgate/tollgate/policy"
)

// A compiled account is allocated per account and subaccount: 100,000
// accounts pay for every byte, and more for each size class crossed. Its
// source (what CompileFrom compares) is a pointer into a chunk, not a
// copy, so a layer is 192 bytes, Go's 192-byte class (352 with the copy
// inline). A field that pushes it over 192 costs 16 bytes a layer more.
func TestAccountSize(t *testing.T) {
	if n := unsafe.Sizeof(account{}); n > 192 {
		t.Errorf("compiled account is %d bytes, over the 192-byte size class", n)
	}
	if n := unsafe.Sizeof(accountSrc{}); n > 144 {
		t.Errorf("an account's source is %d bytes, more than 144", n)
	}
}

// sameAccount: the very same source, field for field, and nothing else.
func TestSameAccountSource(t *testing.T) {
	home, cc := "GB", 5
	subs := map[string]policy.Policy{"a": {}}
	base := policy.Account{Template: "t", Policy: policy.Policy{HomeCountry: &home, MaxCPS: &cc}, UnknownSubaccounts: policy.UnknownSubReject,
		AccountMaxChannels: 3, AccountMaxCPS: 4, Subaccounts: subs, Tags: []string{"x"}}
	c := &compiler{}
	src := c.newSrc(&base)
	otherHome := "GB"
	tests := []struct {
		name string
		edit func(a *policy.Account)
		same bool
	}{
		{"itself", func(a *policy.Account) {}, true},
		{"other tags", func(a *policy.Account) { a.Tags = nil }, true},
		{"equal but other pointer", func(a *policy.Account) { a.HomeCountry = &otherHome }, false},
		{"template", func(a *policy.Account) { a.Template = "u" }, false},
		{"unknown subaccounts", func(a *policy.Account) { a.UnknownSubaccounts = "" }, false},
		{"account max channels", func(a *policy.Account) { a.AccountMaxChannels = 9 }, false},
		{"account max cps", func(a *policy.Account) { a.AccountMaxCPS = 9 }, false},
		{"subaccounts map", func(a *policy.Account) { a.Subaccounts = map[string]policy.Policy{"a": {}} }, false},
		{"no subaccounts", func(a *policy.Account) { a.Subaccounts = nil }, false},
	}
	for _, tt := range tests {
		a := base
		tt.edit(&a)
		if got := sameAccount(src, &a); got != tt.same {
			t.Errorf("%s: sameAccount %v, want %v", tt.name, got, tt.same)
		}
	}
	if sameAccount(nil, &base) {
		t.Error("no source is the same as an account")
	}
	// sources taken one after another share a chunk but not a value
	for i := 0; i < 100; i++ {
		c.newSrc(&policy.Account{Template: "other"})
	}
	if !sameAccount(src, &base) {
		t.Error("later sources changed an earlier one")
	}
}
