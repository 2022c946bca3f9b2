package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

func retailEU() *policy.Template {
	return &policy.Template{
		Description: "EU retail",
		Policy: policy.Policy{
			HomeCountry: ptr("DE"),
			Countries:   &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}},
			MaxCPS:      ptr(2),
			Velocity:    &policy.Velocity{Action: "alert", RelockMargin: 2},
		},
		UnknownSubaccounts: policy.UnknownSubReject,
		AccountMaxChannels: 20,
	}
}

// Templates and the accounts naming them survive a reopen as written,
// with their audit entries; a nil value deletes one.
func TestTemplatesRoundTrip(t *testing.T) {
	s, dir := openTemp(t)
	shop := &policy.Account{Template: "retail-eu", Policy: policy.Policy{MaxChannels: ptr(5)}}
	if _, err := s.Commit(&Change{
		Audit:     AuditEntry{Action: "template.put", Object: "templates/retail-eu"},
		Templates: map[string]*policy.Template{"retail-eu": retailEU(), "spare": {Description: "unused"}},
		Accounts:  map[string]*policy.Account{"shop": shop},
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(set.Templates, map[string]policy.Template{"retail-eu": *retailEU(), "spare": {Description: "unused"}}) {
		t.Fatalf("templates after reopen: %+v", set.Templates)
	}
	if !reflect.DeepEqual(set.Accounts["shop"], *shop) {
		t.Fatalf("account after reopen: %+v", set.Accounts["shop"])
	}
	if _, err := s.Commit(&Change{Templates: map[string]*policy.Template{"spare": nil}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	set, err = ro.Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Templates["spare"]; ok || len(set.Templates) != 1 {
		t.Fatalf("templates after a delete: %+v", set.Templates)
	}
	if a, err := ro.Audit(0, 0); err != nil || len(a) != 2 || a[1].Action != "template.put" {
		t.Fatalf("audit %+v %v", a, err)
	}
}

// A file written before templates (no bucket, no digest for it) opens
// read-only with none and gets the bucket on its first writable open.
func TestTemplatesInOlderFile(t *testing.T) {
	s, dir := openTemp(t)
	if _, err := s.Commit(&Change{Accounts: map[string]*policy.Account{"acme": acme()}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	rawEdit(t, dir, func(tx *bolt.Tx) error {
		r, err := beginRecords(tx)
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketTemplates); err != nil {
			return err
		}
		delete(r.dig, string(bucketTemplates))
		r.dirty = true
		return r.finish()
	})
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a file without templates: %v", err)
	}
	set, err := ro.Load()
	ro.Close()
	if err != nil || set.Templates != nil || len(set.Accounts) != 1 {
		t.Fatalf("load %+v %v", set, err)
	}
	rw, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("writable open of a file without templates: %v", err)
	}
	if _, err := rw.Commit(&Change{Templates: map[string]*policy.Template{"retail-eu": retailEU()}}); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	rw, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if set, err := rw.Load(); err != nil || len(set.Templates) != 1 {
		t.Fatalf("after upgrade %+v %v", set, err)
	}
}

// A damaged template refuses the start even with -quarantine-damaged (it
// is not one account's to quarantine); a record that does not decode
// strictly is refused at load, naming it.
func TestTemplatesDamaged(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"flipped byte", func(t *testing.T, dir string) { flipIn(t, dir, "templates", "retail-eu", `"deny"`, 1) },
			`record templates/"retail-eu": checksum mismatch`},
		{"unknown field", func(t *testing.T, dir string) { putRaw(t, dir, "retail-eu", `{"max_cps":1,"colour":"red"}`) },
			`record templates/"retail-eu"`},
		{"repeated key", func(t *testing.T, dir string) { putRaw(t, dir, "retail-eu", `{"max_cps":1,"max_cps":2}`) },
			`record templates/"retail-eu"`},
		{"bad name", func(t *testing.T, dir string) { putRaw(t, dir, "a b", `{}`) }, `record templates/"a b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, dir := openTemp(t)
			if _, err := s.Commit(&Change{Templates: map[string]*policy.Template{"retail-eu": retailEU()}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			c.edit(t, dir)
			for _, q := range []bool{false, true} {
				s, err := Open(dir, Options{Quarantine: q})
				if err == nil {
					_, err = s.Load()
					s.Close()
				}
				var fe *FormatError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("quarantine=%v: %v, want a refusal naming %s", q, err, c.want)
				}
			}
		})
	}
}

// putRaw writes a sealed template record as given (a valid seal around
// a payload no tollgate would write).
func putRaw(t *testing.T, dir, key, doc string) {
	rawEdit(t, dir, func(tx *bolt.Tx) error {
		r, err := beginRecords(tx)
		if err != nil {
			return err
		}
		if err := r.put(bucketTemplates, []byte(key), []byte(doc)); err != nil {
			return err
		}
		return r.finish()
	})
}
