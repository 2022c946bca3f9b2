package service

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentPatchesLoseNothing: two writers patching different
// subaccounts of one account at once both land — the merge happens under
// the service lock, where a client's GET then PUT would lose the other's.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	if _, err := f.svc.PutAccount(admin, "acme", denyAllBut("US")); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, who := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				patch := fmt.Sprintf(`{"subaccounts":{"%s%d":{"max_cps":%d}}}`, who, i, i+1)
				if _, err := f.svc.PatchAccount(admin, "acme", []byte(patch), ""); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, err := f.svc.Account("acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Subaccounts) != 2*n || a.Countries == nil {
		t.Fatalf("%d subaccounts after %d patches (countries %v)", len(a.Subaccounts), 2*n, a.Countries)
	}
	entries, err := f.svc.Audit(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	patches := 0
	for _, e := range entries {
		if e.Action == "account.patch" {
			patches++
		}
	}
	if patches != 2*n {
		t.Errorf("%d account.patch audit entries, want %d", patches, 2*n)
	}
}

// TestBulkPatchOneTransaction: a bulk change is one audit entry and
// touches only the accounts it names; a refused one changes nothing.
func TestBulkPatchOneTransaction(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	for i := 0; i < 5; i++ {
		if _, err := f.svc.PutAccount(admin, fmt.Sprintf("a%d", i), denyAllBut("US")); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := f.svc.Audit(0, 0)
	res, err := f.svc.BulkPatch(admin, Selection{Accounts: []string{"a1", "a3"}}, []byte(`{"countries":{"except":["US","FR"]}}`), false)
	if err != nil || len(res.Changed) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := f.reason("+33142685300", "a1"); got != "ok" {
		t.Errorf("a1 to FR: %s", got)
	}
	if got := f.reason("+33142685300", "a2"); got != "country_barred" {
		t.Errorf("a2 to FR: %s", got)
	}
	after, _ := f.svc.Audit(0, 0)
	if len(after) != len(before)+1 {
		t.Errorf("%d audit entries added, want 1", len(after)-len(before))
	}
	if _, err := f.svc.BulkPatch(admin, Selection{All: true}, []byte(`{"max_cps":-1}`), false); err == nil {
		t.Fatal("an invalid bulk change was applied")
	}
	if last, _ := f.svc.Audit(0, 0); len(last) != len(after) {
		t.Error("a refused bulk change was audited")
	}
}
