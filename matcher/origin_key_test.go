package matcher

import (
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/origin"
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
