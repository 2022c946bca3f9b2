package teardown_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/handler"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/teardown"
	"github.com/tollgate/tollgate/velocity"
)

// calls is a fake source of live calls.
type calls struct {
	mu     sync.Mutex
	list   []velocity.LiveCall
	live   map[string]bool
	booked []string // ends booked through End
}

func newCalls(cs ...velocity.LiveCall) *calls {
	c := &calls{list: cs, live: map[string]bool{}}
	for _, x := range cs {
		c.live[x.CallID] = true
	}
	return c
}

func (c *calls) LiveCalls(account, sub string) ([]velocity.LiveCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []velocity.LiveCall
	for _, x := range c.list {
		if x.Account == account && (sub == "" || x.Subaccount == sub) && c.live[x.CallID] {
			out = append(out, x)
		}
	}
	return out, true
}

func (c *calls) Live(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live[id]
}

// End records the ends the teardown books.
func (c *calls) End(ev velocity.Event) velocity.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.booked = append(c.booked, ev.CallID)
	if !c.live[ev.CallID] {
		return velocity.Duplicate
	}
	c.live[ev.CallID] = false
	return velocity.Accepted
}

func (c *calls) bookedEnds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]string(nil), c.booked...)
	sort.Strings(out)
	return out
}

func (c *calls) end(id string) {
	c.mu.Lock()
	c.live[id] = false
	c.mu.Unlock()
}

// collector keeps the alerts it is given.
type collector struct {
	mu sync.Mutex
	as []alert.Alert
}

func (c *collector) Notify(a alert.Alert) {
	c.mu.Lock()
	c.as = append(c.as, a)
	c.mu.Unlock()
}

func (c *collector) kinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.as {
		out = append(out, a.Type+"/"+a.Kind+"/"+a.CallID)
	}
	return out
}

// rpcServer is a fake control interface: it records every JSON-RPC request
// and answers with reply(method, params, n) (n counts from 1).
type rpcServer struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []string // "method params"
	reply func(method string, params json.RawMessage, n int) (status int, body string)
}

func newRPCServer(t *testing.T, reply func(string, json.RawMessage, int) (int, string)) *rpcServer {
	s := &rpcServer{reply: reply}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req struct {
			JSONRPC string          `json:"jsonrpc"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
			ID      json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(b, &req); err != nil || req.JSONRPC != "2.0" || r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad request %s %q: %s", r.Method, r.Header.Get("Content-Type"), b)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req.Method+" "+string(req.Params))
		n := len(s.reqs)
		s.mu.Unlock()
		st, body := s.reply(req.Method, req.Params, n)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		io.WriteString(w, strings.ReplaceAll(body, "ID", string(req.ID)))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rpcServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.reqs...)
	sort.Strings(out)
	return out
}

const (
	kamOK       = `{"jsonrpc":"2.0","result":{},"id":ID}`
	kamNotFound = `{"jsonrpc":"2.0","error":{"code":500,"message":"Couldnt find callid in dialog"},"id":ID}`
	osOK        = `{"jsonrpc":"2.0","result":"OK","id":ID}`
)

func always(status int, body string) func(string, json.RawMessage, int) (int, string) {
	return func(string, json.RawMessage, int) (int, string) { return status, body }
}

// fr is a live call to France of account acme, home GB.
func fr(id, proxy string) velocity.LiveCall {
	return velocity.LiveCall{CallID: id, Account: "acme", To: "+33142685300", Home: "GB", Proxy: proxy,
		Dialog: velocity.Dialog{FromTag: "ft-" + id, ToTag: "tt-" + id, ID: "77"}}
}

func domestic(c velocity.LiveCall) bool { return strings.HasPrefix(c.To, "+44") && c.Home == "GB" }

func start(t *testing.T, opt teardown.Options) *teardown.Teardown {
	t.Helper()
	if opt.Backoff == 0 {
		opt.Backoff = time.Millisecond
	}
	if opt.Domestic == nil {
		opt.Domestic = domestic
	}
	td, err := teardown.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	td.Start()
	t.Cleanup(td.Close)
	return td
}

// settle waits until every queued call has a result (n of them).
func settle(t *testing.T, td *teardown.Teardown, n uint64) teardown.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := td.Stats()
		var sum uint64
		for _, v := range st.Calls {
			sum += v
		}
		if sum >= n && st.Pending == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("teardown did not settle: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func counts(st teardown.Stats) map[string]uint64 {
	m := map[string]uint64{}
	for i, v := range st.Calls {
		if v != 0 {
			m[teardown.ResultNames[i]] = v
		}
	}
	return m
}

// A lockdown ends the account's international calls on the proxy that
// reported each (Kamailio: dlg.terminate_dlg Call-ID from-tag to-tag;
// OpenSIPS: dlg_end_dlg with the Call-ID), leaves the domestic call up and
// another account's calls alone, and passes the alert on.
func TestLockdownEndsInternationalCalls(t *testing.T) {
	kam := newRPCServer(t, always(200, kamOK))
	ops := newRPCServer(t, always(200, osOK))
	dom := fr("c3", "edge1")
	dom.To = "+441614960000"
	other := fr("c9", "edge1")
	other.Account = "other"
	src := newCalls(fr("c1", "edge1"), fr("c2", "os1"), dom, other)
	next := &collector{}
	td := start(t, teardown.Options{Calls: src, Next: next, Proxies: []teardown.Proxy{
		{ID: "edge1", Kind: teardown.Kamailio, URL: kam.URL + "/RPC"}, {ID: "os1", Kind: teardown.OpenSIPS, URL: ops.URL + "/mi"}}})
	lock := alert.Alert{Type: alert.TypeLockdown, Level: alert.LevelCritical, Kind: alert.KindLockdown, Account: "acme"}
	td.Notify(lock)
	st := settle(t, td, 3)
	if want := map[string]uint64{"ended": 2, "domestic": 1}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	if got, want := kam.requests(), []string{`dlg.terminate_dlg ["c1","ft-c1","tt-c1"]`}; !reflect.DeepEqual(got, want) {
		t.Errorf("kamailio got %q, want %q", got, want)
	}
	if got, want := ops.requests(), []string{`dlg_end_dlg {"dialog_id":"c2"}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("opensips got %q, want %q", got, want)
	}
	if st.Triggers != 1 || st.RPCs != [3]uint64{2, 0, 0} {
		t.Errorf("stats %+v", st)
	}
	if got := src.bookedEnds(); !reflect.DeepEqual(got, []string{"c1", "c2"}) {
		t.Errorf("ends booked %v, want the two ended calls", got)
	}
	if got := next.kinds(); !reflect.DeepEqual(got, []string{"lockdown/lockdown/"}) {
		t.Errorf("alerts passed on: %v", got)
	}
	// other alerts pass through and end nothing
	td.Notify(alert.Alert{Type: alert.TypeThreshold, Level: alert.LevelCritical, Kind: "calls_per_minute", Account: "other"})
	td.Notify(alert.Alert{Type: alert.TypeThreshold, Level: alert.LevelCritical, Kind: alert.KindDailySpend, Account: "other"})
	if st := td.Stats(); st.Triggers != 1 || len(next.kinds()) != 3 {
		t.Errorf("non-lockdown alerts: %+v %v", st, next.kinds())
	}
}

// With OnSpend, a daily-spend critical tears down even when its action is
// only an alert; a subaccount's lockdown ends only that subaccount's calls.
func TestSpendAndSubaccount(t *testing.T) {
	kam := newRPCServer(t, always(200, kamOK))
	a, b := fr("c1", "edge1"), fr("c2", "edge1")
	b.Subaccount = "sales"
	td := start(t, teardown.Options{Calls: newCalls(a, b), OnSpend: true,
		Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: kam.URL}}})
	td.Notify(alert.Alert{Type: alert.TypeLockdown, Kind: alert.KindLockdown, Level: alert.LevelCritical, Account: "acme", Subaccount: "sales"})
	settle(t, td, 1)
	if got := kam.requests(); len(got) != 1 || !strings.Contains(got[0], `"c2"`) {
		t.Fatalf("subaccount lock: %q", got)
	}
	td.Notify(alert.Alert{Type: alert.TypeThreshold, Kind: alert.KindDailySpend, Level: alert.LevelWarning, Account: "acme"})
	td.Notify(alert.Alert{Type: alert.TypeThreshold, Kind: alert.KindDailySpend, Level: alert.LevelCritical, Account: "acme", Action: "alert"})
	st := settle(t, td, 2)
	// c2 was ended and booked: only c1 is left to end
	if got := kam.requests(); st.Triggers != 2 || len(got) != 2 || !strings.Contains(got[0], `"c1"`) {
		t.Fatalf("spend critical: %+v %q", st, got)
	}
}

// The proxy's RPC is down: each call is retried Attempts times, then given
// up with a critical teardown alert naming it; a proxy that comes back
// within the attempts ends the call.
func TestProxyDownRetriesThenAlerts(t *testing.T) {
	down := newRPCServer(t, always(503, "Service Unavailable"))
	flaky := newRPCServer(t, func(_ string, _ json.RawMessage, n int) (int, string) {
		if n < 3 {
			return 500, "oops"
		}
		return 200, kamOK
	})
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close() // nothing listens there now
	c1, c2, c3 := fr("c1", "down"), fr("c2", "flaky"), fr("c3", "closed")
	alerts := &collector{}
	td := start(t, teardown.Options{Calls: newCalls(c1, c2, c3), Alerts: alerts, Attempts: 4, Proxies: []teardown.Proxy{
		{ID: "down", Kind: teardown.Kamailio, URL: down.URL}, {ID: "flaky", Kind: teardown.Kamailio, URL: flaky.URL},
		{ID: "closed", Kind: teardown.Kamailio, URL: refusedURL}}})
	td.Trigger("acme", "", "lockdown")
	st := settle(t, td, 3)
	if want := map[string]uint64{"ended": 1, "failed": 2}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	if len(down.requests()) != 4 || len(flaky.requests()) != 3 {
		t.Errorf("attempts: down %d, flaky %d", len(down.requests()), len(flaky.requests()))
	}
	if st.RPCs[0] != 1 || st.RPCs[2] != 4+2+4 {
		t.Errorf("rpc counts %v", st.RPCs)
	}
	got := alerts.kinds()
	sort.Strings(got)
	if want := []string{"teardown/teardown/c1", "teardown/teardown/c3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
}

// A call that ended just before the teardown: its end event already
// arrived (no request at all), or it arrives while the proxy is being
// retried (no further attempt), or the proxy no longer has the dialog (one
// request, not retried, not alerted).
func TestCallEndedBeforeTeardown(t *testing.T) {
	var src *calls
	kam := newRPCServer(t, func(_ string, p json.RawMessage, n int) (int, string) {
		if strings.Contains(string(p), `"c2"`) {
			src.end("c2") // its BYE crossed the first attempt
			return 503, "busy"
		}
		return 200, kamNotFound
	})
	ended := fr("c1", "edge1")
	src = newCalls(ended, fr("c2", "edge1"), fr("c3", "edge1"))
	alerts := &collector{}
	td, err := teardown.New(teardown.Options{Calls: &endAfterList{src, "c1"}, Alerts: alerts, Backoff: time.Millisecond,
		Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: kam.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	td.Start()
	defer td.Close()
	td.Trigger("acme", "", "lockdown")
	st := settle(t, td, 3)
	if want := map[string]uint64{"gone": 2, "not_found": 1}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	reqs := kam.requests()
	if len(reqs) != 2 || strings.Contains(strings.Join(reqs, " "), `"c1"`) {
		t.Errorf("requests %q: want one for c2 and one for c3, none for c1", reqs)
	}
	if a := alerts.kinds(); len(a) != 0 {
		t.Errorf("alerts for calls that ended: %v", a)
	}
	// the proxy had no dialog left: the call's end is booked now
	if got := src.bookedEnds(); !reflect.DeepEqual(got, []string{"c3"}) {
		t.Errorf("ends booked %v, want c3's", got)
	}
}

// endAfterList ends a call right after listing it: its end event arrived
// between the lockdown and the request.
type endAfterList struct {
	*calls
	id string
}

func (e *endAfterList) LiveCalls(account, sub string) ([]velocity.LiveCall, bool) {
	l, ok := e.calls.LiveCalls(account, sub)
	e.calls.end(e.id)
	return l, ok
}

// A call event cannot make tollgate send a request anywhere but a
// configured control URL: a call naming an unconfigured proxy id is
// counted, alerted and sent nowhere; a control interface that redirects is
// not followed; an OpenSIPS call whose Call-ID could be read as another
// dialog's id ("hex.hex") is ended by its own dialog id, or not at all.
func TestNoRequestOutsideTheConfiguredProxies(t *testing.T) {
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer elsewhere.Close()
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/RPC", http.StatusTemporaryRedirect))
	defer redirect.Close()
	ops := newRPCServer(t, always(200, osOK))
	digits, digitsNoID := fr("12ab.3", "os1"), fr(".f0", "os1")
	digitsNoID.Dialog.ID = ""
	noTags := fr("c4", "edge1")
	noTags.Dialog = velocity.Dialog{}
	alerts := &collector{}
	td := start(t, teardown.Options{Calls: newCalls(fr("c1", "edge9"), fr("c2", ""), fr("c3", "redir"), digits, digitsNoID, noTags),
		Alerts: alerts, Attempts: 2, Proxies: []teardown.Proxy{
			{ID: "edge1", Kind: teardown.Kamailio, URL: ops.URL + "/never"},
			{ID: "redir", Kind: teardown.Kamailio, URL: redirect.URL}, {ID: "os1", Kind: teardown.OpenSIPS, URL: ops.URL}}})
	td.Trigger("acme", "", "lockdown")
	st := settle(t, td, 6)
	if want := map[string]uint64{"no_proxy": 2, "failed": 1, "ended": 1, "no_dialog": 2}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached an address no proxy is configured with", hits.Load())
	}
	if got := ops.requests(); !reflect.DeepEqual(got, []string{`dlg_end_dlg {"dialog_id":"77"}`}) {
		t.Errorf("opensips got %q", got)
	}
	if n := len(alerts.kinds()); n != 5 {
		t.Errorf("%d alerts, want one per call left up: %v", n, alerts.kinds())
	}
}

// Notify never waits for a proxy: with every worker stuck in an RPC and the
// queue full, it still returns (the test would hang otherwise), and the
// calls that found no room are counted as dropped.
func TestNotifyNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer stuck.Close()
	defer close(release)
	var cs []velocity.LiveCall
	for i := 0; i < 5; i++ {
		cs = append(cs, fr(fmt.Sprintf("c%d", i), "edge1"))
	}
	td := start(t, teardown.Options{Calls: newCalls(cs...), Workers: 1, Queue: 1, Timeout: time.Minute,
		Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: stuck.URL}}})
	for i := 0; i < 3000; i++ { // more than the trigger queue holds
		td.Notify(alert.Alert{Type: alert.TypeLockdown, Account: "acme"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for td.Stats().Calls[teardown.Dropped] < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no call dropped: %+v", td.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestParseProxies(t *testing.T) {
	got, err := teardown.ParseProxies(" edge-1=kamailio:http://127.0.0.1:5071/RPC, os.2=opensips:https://10.0.0.2:8888/mi ,")
	want := []teardown.Proxy{{ID: "edge-1", Kind: teardown.Kamailio, URL: "http://127.0.0.1:5071/RPC"},
		{ID: "os.2", Kind: teardown.OpenSIPS, URL: "https://10.0.0.2:8888/mi"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := teardown.ParseProxies(""); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, c := range []struct{ in, msg string }{
		{"edge1", "want id=kind:url"},
		{"=kamailio:http://x/", "proxy id"},
		{"a/b=kamailio:http://x/", "proxy id"},
		{"e=asterisk:http://x/", "kind"},
		{"e=kamailio", "kind"},
		{"e=kamailio:ftp://x/", "url"},
		{"e=kamailio:http:///RPC", "url"},
		{"e=kamailio:http://u:p@x/RPC", "url"},
		{"e=kamailio:http://x/,e=opensips:http://y/", "twice"},
	} {
		if _, err := teardown.ParseProxies(c.in); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v, want …%s…", c.in, err, c.msg)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{"edge1": true, "a.b_c-D9": true, "": false, strings.Repeat("x", 65): false,
		strings.Repeat("x", 64): true, "http://x": false, "a/b": false, "a b": false, "é": false} {
		if teardown.ValidID(s) != want {
			t.Errorf("ValidID(%q) != %v", s, want)
		}
	}
}

// From the wire to the proxy: call events decoded by the handler feed the
// velocity engine, an operator's lock reaches the teardown through the
// engine's alerts, and only the configured proxy the genuine answer named
// gets a request. A forged event can neither re-point a live call at
// another proxy (its answer is a duplicate), nor make tollgate send to an
// address it carries (an unconfigured id is sent nowhere, a URL is not an
// id at all).
func TestForgedEventsEndToEnd(t *testing.T) {
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer attacker.Close()
	edge1 := newRPCServer(t, always(200, kamOK))

	var td *teardown.Teardown
	relay := &relayTo{}
	eng := velocity.New(velocity.Options{Notifier: relay})
	home := "GB"
	if err := eng.Sync(&policy.Set{Accounts: map[string]policy.Account{"acme": {Policy: policy.Policy{HomeCountry: &home}}}}); err != nil {
		t.Fatal(err)
	}
	td = start(t, teardown.Options{Calls: eng, Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: edge1.URL + "/RPC"}}})
	relay.n = td

	apply := func(body string) {
		t.Helper()
		evs, err := handler.DecodeEvents([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			eng.Apply(ev)
		}
	}
	apply(`{"event":"answered","call_id":"c1","account":"acme","to":"+33142685300","proxy":"edge1","dialog":{"from_tag":"f1","to_tag":"t1"}}`)
	apply(`{"event":"answered","call_id":"c1","account":"acme","to":"+33142685300","proxy":"edge9","dialog":{"from_tag":"x","to_tag":"y"}}`)
	apply(`{"event":"answered","call_id":"c2","account":"acme","to":"+33142685301","proxy":"edge9","control_url":"` + attacker.URL +
		`","dialog":{"from_tag":"f2","to_tag":"t2","url":"` + attacker.URL + `"}}`)
	if _, err := handler.DecodeEvents([]byte(`{"event":"answered","call_id":"c3","account":"acme","proxy":"` + attacker.URL + `/RPC"}`)); err == nil {
		t.Fatal("a URL was taken for a proxy id")
	}
	if err := eng.Lock(velocity.Lock{Account: "acme", By: "admin", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	st := settle(t, td, 2)
	if want := map[string]uint64{"ended": 1, "no_proxy": 1}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	if got := edge1.requests(); !reflect.DeepEqual(got, []string{`dlg.terminate_dlg ["c1","f1","t1"]`}) {
		t.Errorf("edge1 got %q", got)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the address a forged event carried", hits.Load())
	}
	if eng.Live("c1") || !eng.Live("c2") {
		t.Errorf("c1 should be booked ended, c2 (left up) still live: %v %v", eng.Live("c1"), eng.Live("c2"))
	}
	// the booked end is not counted as a proxy's event
	if ev := eng.Stats().Events[velocity.Ended]; ev != [3]uint64{} {
		t.Errorf("ended events counted: %v", ev)
	}
}

// relayTo hands alerts to n, set once the teardown exists.
type relayTo struct{ n alert.Notifier }

func (r *relayTo) Notify(a alert.Alert) {
	if r.n != nil {
		r.n.Notify(a)
	}
}

// A call let through before the lock and answered after it (it was ringing)
// is ended when its answer arrives; a domestic one is not.
func TestAnsweredAfterTheLock(t *testing.T) {
	edge1 := newRPCServer(t, always(200, kamOK))
	eng := velocity.New(velocity.Options{})
	home := "GB"
	if err := eng.Sync(&policy.Set{Accounts: map[string]policy.Account{"acme": {Policy: policy.Policy{HomeCountry: &home},
		Subaccounts: map[string]policy.Policy{"sales": {}}}}}); err != nil {
		t.Fatal(err)
	}
	td := start(t, teardown.Options{Calls: eng, Proxies: []teardown.Proxy{{ID: "edge1", Kind: teardown.Kamailio, URL: edge1.URL}}})
	eng.SetOnLockedAnswer(func(account, sub string) { td.Trigger(account, sub, "answered_while_locked") })
	answer := func(id, sub, to string) {
		eng.Apply(velocity.Event{Kind: velocity.Answered, CallID: id, Account: "acme", Subaccount: sub, To: to, Proxy: "edge1",
			Dialog: velocity.Dialog{FromTag: "f-" + id, ToTag: "t-" + id}})
	}
	answer("before", "", "+33142685300") // unlocked: stays up
	if err := eng.Lock(velocity.Lock{Account: "acme", By: "admin"}); err != nil {
		t.Fatal(err)
	}
	answer("ringing", "sales", "+33142685301")
	answer("home", "", "+441614960000")
	st := settle(t, td, 2)
	// the lock itself is not seen here (no notifier): only the answers
	// trigger, and each lists the scope's live calls
	if want := map[string]uint64{"ended": 2, "domestic": 1}; !reflect.DeepEqual(counts(st), want) {
		t.Fatalf("results %v, want %v", counts(st), want)
	}
	got := edge1.requests()
	if len(got) != 2 || !strings.Contains(got[0]+got[1], `"ringing"`) || !strings.Contains(got[0]+got[1], `"before"`) {
		t.Errorf("requests %q", got)
	}
}
