package service

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
)

func TestMergePatch(t *testing.T) {
	tests := []struct{ doc, patch, want string }{
		{`{"a":1,"b":{"c":2,"d":3}}`, `{"b":{"c":null,"e":4}}`, `{"a":1,"b":{"d":3,"e":4}}`},
		{`{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
		{`{"a":1}`, `{"a":null}`, `{}`},
		{`{"n":9007199254740993}`, `{}`, `{"n":9007199254740993}`},
		{`{"a":{"b":1}}`, `{"a":"x"}`, `{"a":"x"}`},
	}
	for _, tc := range tests {
		got, err := policy.MergePatch([]byte(tc.doc), []byte(tc.patch))
		if err != nil || string(got) != tc.want {
			t.Errorf("merge %s with %s: %s %v, want %s", tc.doc, tc.patch, got, err, tc.want)
		}
	}
	if _, err := policy.MergePatch([]byte(`{}`), []byte(`{"a":`)); err == nil {
		t.Error("a broken patch merged")
	}
}

// TestProposeLeavesLiveAlone: a proposal is compiled beside the policy in
// force, sees its own earlier edits, and changes nothing.
func TestProposeLeavesLiveAlone(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	s, m := f.svc, f.m
	var a policy.Account
	if err := policy.DecodeStrict([]byte(`{"home_country":"GB","countries":{"default":"allow"}}`), &a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutAccount(Actor{Name: "t"}, "acme", a); err != nil {
		t.Fatal(err)
	}
	live := m.Snapshot()
	p, err := s.Propose([]Edit{
		{Method: "PUT", Path: "/v1/accounts/beta", Body: json.RawMessage(`{"home_country":"US"}`)},
		{Method: "PATCH", Path: "/v1/accounts/beta", Body: json.RawMessage(`{"countries":{"default":"deny","except":["US"]}}`)},
		{Method: "PUT", Path: "/v1/accounts/beta/subaccounts/ops", Body: json.RawMessage(`{"countries":{"default":"allow"}}`)},
		{Method: "PUT", Path: "/v1/operator/countries/fr", Body: json.RawMessage(`{"reason":"x"}`)},
		{Method: "DELETE", Path: "/v1/accounts/acme"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Snapshot() != live || p.BaseSnap != live {
		t.Fatal("the proposal was swapped in")
	}
	if _, err := s.Account("acme"); err != nil {
		t.Error("the live account went:", err)
	}
	if _, ok := p.Next.Accounts["acme"]; ok {
		t.Error("the proposal kept a deleted account")
	}
	b := p.Next.Accounts["beta"]
	if b.HomeCountry == nil || *b.HomeCountry != "US" || b.Countries == nil || b.Countries.Default != "deny" || len(b.Subaccounts) != 1 {
		t.Errorf("beta as proposed: %+v", b)
	}
	if _, ok := p.Next.Operator.DisabledCountries["FR"]; !ok {
		t.Error("the operator edit is missing")
	}
	v := m.DecideWith(p.NextSnap, nil, false, &matcher.Query{Account: "beta", Subaccount: "ops", To: "+33142685300"})
	if v.Reason != matcher.ReasonCountryDisabled {
		t.Errorf("proposed verdict %s", v.Reason)
	}
	if _, ok := p.Base.Accounts["beta"]; ok || len(p.Base.Operator.DisabledCountries) != 0 {
		t.Error("the base set holds the change")
	}
	if err := s.ApplyEdits(Actor{Name: "t"}, "shadow.promote", p.Edits); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account("acme"); err == nil {
		t.Error("applied, acme is still there")
	}
	if got, err := s.Subaccount("beta", "ops"); err != nil || got.Countries == nil {
		t.Errorf("applied, beta/ops: %+v %v", got, err)
	}
	e, _ := s.Audit(1, 0)
	if len(e) != 1 || e[0].Action != "shadow.promote" || !strings.Contains(string(e[0].Before), `"accounts/acme":{`) || !strings.Contains(string(e[0].After), `"accounts/acme":null`) {
		t.Errorf("audit %+v", e)
	}
}

// FuzzPropose: any edit is refused with an error or compiled; nothing
// panics and the policy in force never changes.
func FuzzPropose(f *testing.F) {
	f.Add("PATCH", "/v1/accounts/acme", `{"countries":{"default":"deny","except":["GB"]}}`)
	f.Add("PUT", "/v1/accounts/acme/subaccounts/s", `{"max_cps":3}`)
	f.Add("PUT", "/v1/operator/countries/cu", `{"reason":"x"}`)
	f.Add("PATCH", "/v1/operator", `{"unknown_accounts":"reject"}`)
	f.Add("DELETE", "//v1//accounts/acme/", ``)
	st := open(f, f.TempDir(), Options{})
	var a policy.Account
	policy.DecodeStrict([]byte(`{"home_country":"GB"}`), &a)
	st.svc.PutAccount(Actor{Name: "t"}, "acme", a)
	live := st.m.Snapshot()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		p, err := st.svc.Propose([]Edit{{Method: method, Path: path, Body: json.RawMessage(body)}})
		if err == nil && p.NextSnap == nil {
			t.Fatal("no error and no snapshot")
		}
		if st.m.Snapshot() != live {
			t.Fatal("a proposal changed the policy in force")
		}
	})
}
