package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cloneRoots are the types with a Clone method. Reaching a type from one of
// them (Policy from Operator, Origin from Policy, ...) is enough for its
// fields to be checked; listing it here also checks its own Clone.
var cloneRoots = []any{
	Operator{}, Account{}, Policy{}, Template{}, &CountryRule{}, &Velocity{}, VelocityRule{},
	&Origin{}, GeoProfile{}, GeoZone{}, &SourceBlocklist{},
}

// fill sets every field reachable from v: strings, numbers and bools to
// non-zero values, pointers to filled values, and maps and slices to two
// filled elements (full) or to empty but non-nil values (!full), so a Clone
// that drops a field, turns empty into nil or shares memory is caught.
func fill(t *testing.T, path string, v reflect.Value, full bool, seed *int) {
	t.Helper()
	*seed++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*seed))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*seed))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*seed) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, path+"*", p.Elem(), full, seed)
		v.Set(p)
	case reflect.Slice:
		n := 0
		if full {
			n = 2
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(t, fmt.Sprintf("%s[%d]", path, i), s.Index(i), full, seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; full && i < 2; i++ {
			k := reflect.New(v.Type().Key()).Elem()
			fill(t, path+"{key}", k, full, seed)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, path+"{}", e, full, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s is unexported: extend fill and noAlias", path, f.Name)
			}
			fill(t, path+"."+f.Name, v.Field(i), full, seed)
		}
	default:
		t.Fatalf("%s: kind %s: extend fill and noAlias", path, v.Kind())
	}
}

// noAlias fails for every map, slice or pointer of clone that shares memory
// with orig's, at any depth.
func noAlias(errorf func(string, ...any), path string, orig, clone reflect.Value) {
	switch orig.Kind() {
	case reflect.Pointer:
		if orig.IsNil() {
			return
		}
		if orig.Pointer() == clone.Pointer() {
			errorf("%s: pointer shared", path)
		}
		noAlias(errorf, path+"*", orig.Elem(), clone.Elem())
	case reflect.Slice:
		if orig.Cap() > 0 && orig.Pointer() == clone.Pointer() {
			errorf("%s: slice shared", path)
		}
		for i := 0; i < orig.Len() && i < clone.Len(); i++ {
			noAlias(errorf, fmt.Sprintf("%s[%d]", path, i), orig.Index(i), clone.Index(i))
		}
	case reflect.Map:
		if orig.IsNil() {
			return
		}
		if orig.Pointer() == clone.Pointer() {
			errorf("%s: map shared", path)
		}
		for _, k := range orig.MapKeys() {
			if c := clone.MapIndex(k); c.IsValid() {
				noAlias(errorf, fmt.Sprintf("%s[%v]", path, k), orig.MapIndex(k), c)
			}
		}
	case reflect.Struct:
		for i := 0; i < orig.NumField(); i++ {
			noAlias(errorf, path+"."+orig.Type().Field(i).Name, orig.Field(i), clone.Field(i))
		}
	}
}

// Every Clone is a deep copy: equal to the original, sharing no map, slice
// or pointer with it at any depth, nil kept nil and empty kept empty. A
// field added to a policy type without Clone support fails here.
func TestCloneDeep(t *testing.T) {
	for _, root := range cloneRoots {
		typ := reflect.TypeOf(root)
		for _, mode := range []string{"zero", "empty", "full"} {
			name := typ.String() + "/" + mode
			orig := reflect.New(typ).Elem()
			if mode != "zero" {
				seed := 0
				fill(t, typ.String(), orig, mode == "full", &seed)
			}
			clone := orig.MethodByName("Clone")
			if !clone.IsValid() {
				t.Fatalf("%s has no Clone method", typ)
			}
			got := clone.Call(nil)[0]
			if got.Type() != typ {
				t.Fatalf("%s.Clone returns %s", typ, got.Type())
			}
			if !reflect.DeepEqual(orig.Interface(), got.Interface()) {
				t.Errorf("%s: clone differs:\n got %#v\nwant %#v", name, got.Interface(), orig.Interface())
			}
			noAlias(t.Errorf, name, orig, got)
		}
	}
}

// The checker itself: a shallow copy of a type with references must fail.
func TestNoAliasCatchesShallowCopies(t *testing.T) {
	seed := 0
	var op Operator
	fill(t, "Operator", reflect.ValueOf(&op).Elem(), true, &seed)
	shallow := op
	shallow.Default = op.Default.Clone()
	var shared []string
	noAlias(func(f string, a ...any) { shared = append(shared, fmt.Sprintf(f, a...)) }, "Operator", reflect.ValueOf(op), reflect.ValueOf(shallow))
	for _, want := range []string{
		"Operator.DisabledCountries: map shared", "Operator.BlockedPrefixes: slice shared",
		"Operator.GeoProfiles: map shared", "Operator.SourceBlocklist: pointer shared",
	} {
		if !slices.Contains(shared, want) {
			t.Errorf("noAlias missed %q in a shallow copy; found %q", want, shared)
		}
	}
	if slices.ContainsFunc(shared, func(s string) bool { return strings.HasPrefix(s, "Operator.Default") }) {
		t.Errorf("noAlias reported the deep-copied default: %q", shared)
	}
}
