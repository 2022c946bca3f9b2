package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/matcher"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// Reading templates while they change shares nothing with the next write
// (which canonicalises its template in place), and a caller editing its
// copy changes nothing in force. Each decision sees the whole template
// change or none of it: every account on it decides alike.
func TestTemplateCopiesAndAtomicChange(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	tmpl := func(except ...string) policy.Template {
		return policy.Template{Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: except}}}
	}
	if _, err := f.svc.PutTemplate(admin, "t", tmpl("de", "fr")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := f.svc.PutAccount(admin, fmt.Sprintf("a%02d", i), policy.Account{Template: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() { // GET /v1/templates, editing what it got
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			l, err := f.svc.Templates()
			if err != nil || len(l) != 1 || l[0].Accounts != 20 {
				t.Errorf("%+v %v", l, err)
				return
			}
			if _, err := json.Marshal(l); err != nil {
				t.Error(err)
				return
			}
			l[0].Countries.Except[0] = "KP"
		}
	}()
	go func() { // decisions: all 20 accounts agree within one snapshot
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			snap := f.m.Snapshot()
			m := matcher.New(plan, matcher.Options{})
			m.Swap(snap)
			first := m.Decide(&matcher.Query{To: "+14155550123", Account: "a00"}).Reason
			for i := 1; i < 20; i++ {
				if r := m.Decide(&matcher.Query{To: "+14155550123", Account: fmt.Sprintf("a%02d", i)}).Reason; r != first {
					t.Errorf("one snapshot, two answers: a00 %s, a%02d %s", first, i, r)
					return
				}
			}
		}
	}()
	for i := 0; i < 30; i++ {
		except := []string{"de", "fr"}
		if i%2 == 0 {
			except = append(except, "us")
		}
		if _, err := f.svc.PutTemplate(admin, "t", tmpl(except...)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	got, err := f.svc.Template("t")
	if err != nil || len(got.Countries.Except) != 2 || got.Countries.Except[0] != "DE" {
		t.Fatalf("template in force: %+v %v", got, err)
	}
	// in use: refused, naming the count; unknown: not found
	var cf *ConflictError
	if _, err := f.svc.DeleteTemplate(admin, "t"); !errors.As(err, &cf) {
		t.Fatalf("delete in use: %v", err)
	}
	var nf *NotFoundError
	if _, err := f.svc.DeleteTemplate(admin, "nope"); !errors.As(err, &nf) {
		t.Fatalf("delete unknown: %v", err)
	}
}

// A template change from another node (a store.Change with Templates)
// applies through ApplyRemote like a local one: every account on the
// template changes; the same change again is skipped.
func TestApplyRemoteTemplate(t *testing.T) {
	f := open(t, t.TempDir(), Options{})
	if _, err := f.svc.PutTemplate(admin, "t", policy.Template{Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"DE"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutAccount(admin, "a", policy.Account{Template: "t"}); err != nil {
		t.Fatal(err)
	}
	us := &policy.Template{Policy: policy.Policy{Countries: &policy.CountryRule{Default: policy.Deny, Except: []string{"US"}}}}
	ch := &store.Change{Audit: store.AuditEntry{Action: "template.put", Object: "templates/t", Who: "ops"}, Templates: map[string]*policy.Template{"t": us}}
	applied, err := f.svc.ApplyRemote(ch, nil)
	if err != nil || !applied {
		t.Fatalf("applied %v, %v", applied, err)
	}
	if v := f.m.Decide(&matcher.Query{To: "+14155550123", Account: "a"}); v.Reason != matcher.ReasonOK || v.Template != "t" {
		t.Fatalf("after the remote change: %s %q", v.Reason, v.Template)
	}
	same := us.Clone()
	again := &store.Change{Audit: ch.Audit, Templates: map[string]*policy.Template{"t": &same}}
	if applied, err := f.svc.ApplyRemote(again, nil); err != nil || applied {
		t.Fatalf("the same change again: applied %v, %v", applied, err)
	}
}
