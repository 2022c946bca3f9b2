package matcher

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/origin"
	"github.com/tollgate/tollgate/policy"
)

// TestOriginKeyFields keeps originKey complete: a field added to
// origin.AccountSpec must be added to the key too, or accounts differing only
// in it would share compiled rules.
func TestOriginKeyFields(t *testing.T) {
	if n, want := reflect.TypeFor[origin.AccountSpec]().NumField(), reflect.TypeFor[originKey]().NumField(); n != want {
		t.Fatalf("origin.AccountSpec has %d fields, originKey %d: cover the new field in originKey and originKeyOf", n, want)
	}
	base := origin.AccountSpec{Profile: "p", Mobility: "stationary", Home: "DE", AssignHome: true, ChangeMinutes: 5,
		ChangeBy: "ip", PassMinutes: 7, MaxFailed: 2, TrustedSources: []string{"10.0.0.0/8"}}
	for name, change := range map[string]func(s *origin.AccountSpec){
		"Profile":        func(s *origin.AccountSpec) { s.Profile = "q" },
		"Mobility":       func(s *origin.AccountSpec) { s.Mobility = "roaming" },
		"Home":           func(s *origin.AccountSpec) { s.Home = "FR" },
		"AssignHome":     func(s *origin.AccountSpec) { s.AssignHome = false },
		"ChangeMinutes":  func(s *origin.AccountSpec) { s.ChangeMinutes = 6 },
		"ChangeBy":       func(s *origin.AccountSpec) { s.ChangeBy = "" },
		"PassMinutes":    func(s *origin.AccountSpec) { s.PassMinutes = 8 },
		"MaxFailed":      func(s *origin.AccountSpec) { s.MaxFailed = 3 },
		"TrustedSources": func(s *origin.AccountSpec) { s.TrustedSources = []string{"10.0.0.0/9"} },
		"TrustedSplit":   func(s *origin.AccountSpec) { s.TrustedSources = []string{"10.0.0.0/8", ""} },
	} {
		s := base
		change(&s)
		if originKeyOf(s) == originKeyOf(base) {
			t.Errorf("%s: a changed spec has the same key", name)
		}
	}
	same := base
	same.TrustedSources = append([]string(nil), base.TrustedSources...)
	if originKeyOf(same) != originKeyOf(base) {
		t.Error("equal specs have different keys")
	}
}

// TestOriginEffectiveRoundTrip: a layer's merged origin settings are read
// back from its compiled rules (originEffective) to merge a subaccount's
// over them, so originSpec and originEffective must be each other's
// inverse over every field.
func TestOriginEffectiveRoundTrip(t *testing.T) {
	e := policy.OriginEffective{GeoProfile: "p", Mobility: "stationary", HomeOrigin: "DE", AssignHomeOrigin: true,
		LocationChangeMinutes: 5, LocationChangeBy: "ip", ScreeningPassMinutes: 7, MaxFailedScreenings: 2,
		TrustedSources: []string{"10.0.0.0/8"}}
	v := reflect.ValueOf(e)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Fatalf("set %s in this test", v.Type().Field(i).Name)
		}
	}
	op, err := origin.CompileOperator(origin.OperatorSpec{Profiles: map[string]origin.ProfileSpec{"p": {}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := op.Account(originSpec(e))
	if err != nil {
		t.Fatal(err)
	}
	if got := originEffective(r); !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip: %+v, want %+v", got, e)
	}
	if got := originEffective(nil); !reflect.DeepEqual(got, policy.OriginEffective{}) {
		t.Fatalf("nil rules: %+v", got)
	}
}
