package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// tollgate import checks the templates imported accounts name against
// the data file's: an unknown one refuses the whole file, naming the
// account and the field; a known one imports, and tollgate check decides
// under it.
func TestImportTemplates(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{FreshOperator: store.FreshOperator()})
	if err != nil {
		t.Fatal(err)
	}
	cc := "DE"
	if _, err := st.Commit(&store.Change{Templates: map[string]*policy.Template{"retail-eu": {Policy: policy.Policy{
		HomeCountry: &cc, Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}}}}}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	bad := writeFile(t, t.TempDir(), "bad.ndjson", `{"account":"shop","policy":{"template":"retail-e"}}`)
	if code, out, errs := runImportArgs("-data-dir", dir, bad); code == 0 || !strings.Contains(errs, `account shop: template: no template "retail-e"`) {
		t.Fatalf("unknown template: %d\n%s\n%s", code, out, errs)
	}
	if accts, _ := storeState(t, dir); len(accts) != 0 {
		t.Fatalf("a refused import wrote %d accounts", len(accts))
	}
	good := writeFile(t, t.TempDir(), "good.ndjson", `{"account":"shop","policy":{"template":"retail-eu"}}`)
	if code, out, errs := runImportArgs("-data-dir", dir, good); code != 0 {
		t.Fatalf("known template: %d\n%s\n%s", code, out, errs)
	}
	var cout, cerr bytes.Buffer
	if c := runCheck([]string{"--data-dir", dir, "--account", "shop", "+14155550123"}, &cout, &cerr); c != exitReject ||
		!strings.Contains(cout.String(), "via template:retail-eu") {
		t.Fatalf("check: %d\n%s%s", c, cout.String(), cerr.String())
	}
}
