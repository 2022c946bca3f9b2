package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// An account's own account-wide settings win over its template's; unset
// (0, "") they are the template's.
func TestAccountWide(t *testing.T) {
	tm := &Template{UnknownSubaccounts: UnknownSubReject, AccountMaxChannels: 20, AccountMaxCPS: 5}
	for _, c := range []struct {
		t          *Template
		a          Account
		subs       string
		maxCh, cps int
	}{
		{nil, Account{AccountMaxChannels: 3}, "", 3, 0},
		{tm, Account{}, UnknownSubReject, 20, 5},
		{tm, Account{UnknownSubaccounts: UnknownSubAccount, AccountMaxCPS: 9}, UnknownSubAccount, 20, 9},
		{tm, Account{AccountMaxChannels: MaxCapValue}, UnknownSubReject, MaxCapValue, 5},
	} {
		subs, ch, cps := AccountWide(c.t, &c.a)
		if subs != c.subs || ch != c.maxCh || cps != c.cps {
			t.Errorf("%+v over %+v: %q %d %d, want %q %d %d", c.a, c.t, subs, ch, cps, c.subs, c.maxCh, c.cps)
		}
	}
}

// A template validates as an account's own layer does, naming the field.
func TestTemplateValidate(t *testing.T) {
	cc := "de"
	good := Template{Description: "x", Policy: Policy{HomeCountry: &cc}}
	if err := good.Validate(); err != nil || *good.HomeCountry != "DE" {
		t.Fatalf("good template: %v %v", err, *good.HomeCountry)
	}
	for _, c := range []struct {
		t     Template
		field string
	}{
		{Template{UnknownSubaccounts: "x"}, "unknown_subaccounts"},
		{Template{AccountMaxChannels: MaxCapValue + 1}, "account_max_channels"},
		{Template{Description: string(make([]byte, MaxDescriptionLen+1))}, "description"},
		{Template{Policy: Policy{Countries: &CountryRule{Default: "maybe"}}}, "countries.default"},
	} {
		var fe *FieldError
		if err := c.t.Validate(); !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want field %s", c.t, err, c.field)
		}
	}
	set := &Set{Templates: map[string]Template{"a": {}}, Accounts: map[string]Account{"x": {Template: "a"}, "y": {Template: "b"}, "z": {}}}
	if err := set.CheckTemplate(&Account{Template: "a"}); err != nil {
		t.Error(err)
	}
	var fe *FieldError
	if err := set.CheckTemplate(&Account{Template: "b"}); !errors.As(err, &fe) || fe.Field != "template" {
		t.Errorf("unknown template: %v", err)
	}
	var on []string
	for n := range set.AccountsOn("a") {
		on = append(on, n)
	}
	if !reflect.DeepEqual(on, []string{"x"}) {
		t.Errorf("AccountsOn: %v", on)
	}
}

// FuzzDecodeTemplate: a template document decodes strictly or fails
// with a FieldError, agrees with encoding/json when accepted, and
// validates without panicking.
func FuzzDecodeTemplate(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"description":"d","countries":{"default":"deny","except":["continent:EU"]},"max_cps":2}`,
		`{"unknown_subaccounts":"reject","account_max_channels":20}`, `{"subaccounts":{}}`, `{"template":"x"}`,
		`{"velocity":{"rules":[{"calls_per_minute":{"critical":3}}]}}`, `{"max_cps":1,"max_cps":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got Template
		err := DecodeStrict(b, &got)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("not a FieldError: %v", err)
			}
			return
		}
		var want Template
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, encoding/json %+v", got, want)
		}
		_ = got.Validate()
	})
}
