package velocity

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/fraudstate"
)

// LiveCalls lists what a teardown needs of the calls up in a scope: the
// proxy and dialog the answer reported (kept from the first answer; a
// repeated answer naming another proxy changes nothing), the resolved
// destination and the home country; an account's list holds its
// subaccounts' calls, a subaccount's only its own; ended calls are gone.
func TestLiveCalls(t *testing.T) {
	f := newFixture(t, setWith(nil))
	dlg := Dialog{FromTag: "ft1", ToTag: "tt1"}
	ans := func(id, sub, to, proxy string, d Dialog) {
		t.Helper()
		f.e.Apply(Event{Kind: Answered, CallID: id, Account: "acme", Subaccount: sub, To: to, Proxy: proxy, Dialog: d})
		f.clk.Add(time.Second)
	}
	ans("c1", "", numFR, "edge1", dlg)
	ans("c2", "sales", numGB, "edge2", Dialog{FromTag: "ft2", ToTag: "tt2", ID: "123"})
	ans("c3", "", "not a number", "", Dialog{})
	// a forged repeat of c1's answer naming another proxy is a duplicate
	if r := f.e.Apply(Event{Kind: Answered, CallID: "c1", Account: "acme", To: numFR, Proxy: "edge2", Dialog: Dialog{FromTag: "x"}}); r != Duplicate {
		t.Fatalf("repeat answer: %v", r)
	}
	got, ok := f.e.LiveCalls("acme", "")
	want := []LiveCall{
		{CallID: "c1", Account: "acme", To: numFR, Home: "GB", Answered: monday10, Proxy: "edge1", Dialog: dlg},
		{CallID: "c2", Account: "acme", Subaccount: "sales", To: numGB, Home: "GB", Answered: monday10.Add(time.Second), Proxy: "edge2",
			Dialog: Dialog{FromTag: "ft2", ToTag: "tt2", ID: "123"}},
		{CallID: "c3", Account: "acme", Home: "GB", Answered: monday10.Add(2 * time.Second)},
	}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("account's live calls:\n%+v\nwant\n%+v", got, want)
	}
	if got, _ := f.e.LiveCalls("acme", "sales"); len(got) != 1 || got[0].CallID != "c2" {
		t.Fatalf("sales: %+v", got)
	}
	if !f.e.Live("c1") {
		t.Fatal("c1 not live")
	}
	f.event(Ended, "c1", "acme", "", numFR, time.Second)
	if f.e.Live("c1") || f.e.Live("nope") {
		t.Fatal("an ended or unknown call is live")
	}
	if got, _ := f.e.LiveCalls("acme", ""); len(got) != 2 {
		t.Fatalf("after c1 ended: %+v", got)
	}
	if _, ok := f.e.LiveCalls("nobody", ""); ok {
		t.Fatal("unknown account listed")
	}
	if _, ok := f.e.LiveCalls("acme", "nosuch"); ok {
		t.Fatal("unknown subaccount listed as the account")
	}
}

// OnLockedAnswer hears of answers in locked scopes only: a subaccount's
// under its account's lock, the account's own; not before the lock, not
// after the unlock, not a duplicate answer.
func TestOnLockedAnswer(t *testing.T) {
	f := newFixture(t, setWith(nil))
	var got []string
	f.e.SetOnLockedAnswer(func(account, sub string) { got = append(got, account+"/"+sub) })
	f.event(Answered, "a1", "acme", "", numFR, 0)
	if err := f.e.Lock(Lock{Account: "acme", By: "t"}); err != nil {
		t.Fatal(err)
	}
	f.event(Answered, "a2", "acme", "sales", numFR, 0)
	f.event(Answered, "a2", "acme", "sales", numFR, 0) // duplicate
	f.event(Answered, "a3", "other", "", numFR, 0)
	f.event(Ended, "a4", "acme", "", numFR, time.Second) // an end is no answer
	f.e.Unlock("acme", "", "t", "")
	f.event(Answered, "a5", "acme", "", numFR, 0)
	if want := []string{"acme/sales"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("callbacks %v, want %v", got, want)
	}
}

// A live call's proxy and dialog survive a restart (the teardown can still
// end it); an ended call's record does not carry them.
func TestLiveCallProxySurvivesRestart(t *testing.T) {
	set := setWith(nil)
	f := newFixture(t, set)
	d := Dialog{FromTag: "ft", ToTag: "tt", ID: "1a.2b"}
	f.e.Apply(Event{Kind: Answered, CallID: "up", Account: "acme", Subaccount: "sales", To: numFR, Proxy: "edge1", Dialog: d})
	f.e.Apply(Event{Kind: Answered, CallID: "done", Account: "acme", To: numFR, Proxy: "edge1", Dialog: d})
	f.event(Ended, "done", "acme", "", numFR, time.Second)
	be := &memBackend{}
	f.flush(be)
	if rec := string(be.m[fraudstate.Calls]["done"]); strings.Contains(rec, "edge1") || strings.Contains(rec, "dialog") {
		t.Errorf("ended call's record: %s", rec)
	}
	g := f.restart(set, be)
	got, _ := g.e.LiveCalls("acme", "")
	if len(got) != 1 || got[0].CallID != "up" || got[0].Proxy != "edge1" || got[0].Dialog != d || got[0].Subaccount != "sales" {
		t.Fatalf("after the restart: %+v", got)
	}
}
