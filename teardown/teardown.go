// Package teardown ends the live international calls of an account when its
// international calls are locked (or its daily spend reaches its limit):
// it asks the proxy that reported each call, through that proxy's own
// control interface, to end the dialog with a BYE to both sides.
//
// It sits beside the alert dispatcher as an alert.Notifier: every alert
// passes through to the next notifier unchanged, and a lockdown (or a
// daily-spend critical, with OnSpend) queues a teardown of the scope. Notify
// never blocks and never does I/O; the RPCs run on a few goroutines of
// their own, each bounded by a timeout and retried with back-off, so the
// decision path and the evaluator never wait on a proxy.
//
// Where a request goes is decided by tollgate's configuration alone: a call
// event names its proxy by id, and only an id configured with
// -proxy-control (with its URL) is ever sent to. A call whose proxy id is
// unknown is counted and logged, never guessed.
package teardown

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/alert"
	"github.com/tollgate/tollgate/velocity"
)

// Calls is where the live calls come from: the velocity engine. End books
// the end of a call the teardown ended (or found gone from its proxy), so
// it is not left live until -max-call-duration when the proxy's own end
// event is lost; the proxy's event, if it comes, is a duplicate.
type Calls interface {
	LiveCalls(account, sub string) ([]velocity.LiveCall, bool)
	Live(callID string) bool
	End(velocity.Event) velocity.Result
}

// Options configure a Teardown.
type Options struct {
	// Proxies are the control interfaces, by id (-proxy-control).
	Proxies []Proxy
	// Calls lists a scope's live calls.
	Calls Calls
	// Domestic reports whether a call stays up: true for a destination in
	// the call's home country. Nil: every call is international.
	Domestic func(velocity.LiveCall) bool
	// Next gets every alert Notify sees (the alert dispatcher).
	Next alert.Notifier
	// Alerts gets the alert of a teardown that failed (default Next).
	Alerts alert.Notifier
	// OnSpend also tears down on a daily-spend critical whose action is
	// only "alert" (a lockdown always tears down).
	OnSpend bool
	// Timeout bounds one RPC (default 2 s).
	Timeout time.Duration
	// Attempts bounds the RPCs of one call (default 4).
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one (default 250 ms).
	Backoff time.Duration
	// Workers is how many RPCs run at once (default 4).
	Workers int
	// Queue bounds the calls waiting for a worker (default 10,000); a call
	// that finds it full is counted as dropped.
	Queue int
	// Client sends the RPCs (default: no redirects, no environment proxy).
	Client *http.Client
	Logger zerolog.Logger
	// Now is the clock (tests); time.Now if nil.
	Now func() time.Time
}

// Result is what became of one call a teardown looked at.
type Result uint8

// Results, the label values of tollgate_teardown_calls_total.
const (
	// Ended: the proxy ended the dialog (BYE to both sides).
	Ended Result = iota
	// NotFound: the proxy has no such dialog (it ended on its own).
	NotFound
	// Gone: the call's end event arrived before its RPC was sent.
	Gone
	// Refused: the proxy answered with another error; not retried.
	Refused
	// Failed: no answer after every attempt (alerted).
	Failed
	// NoProxy: the call's proxy id is empty or not configured.
	NoProxy
	// NoDialog: the event lacked what this proxy needs to find the dialog.
	NoDialog
	// Domestic: a call in the home country, left up.
	Domestic
	// Dropped: the queue was full.
	Dropped
	numResults
)

// ResultNames are the metric labels of the results.
var ResultNames = [numResults]string{"ended", "not_found", "gone", "refused", "failed", "no_proxy", "no_dialog", "domestic", "dropped"}

func (r Result) String() string {
	if r < numResults {
		return ResultNames[r]
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// RPC outcomes, the label values of tollgate_teardown_rpcs_total.
const (
	rpcOK     = iota // the proxy ended the dialog
	rpcError         // the proxy answered with an error
	rpcFailed        // no usable answer: refused, timeout, HTTP error, garbage
	numRPCResults
)

// RPCResultNames are the metric labels of single RPCs.
var RPCResultNames = [numRPCResults]string{"ok", "error", "failed"}

// Stats are the counters, for /metrics.
type Stats struct {
	Triggers uint64
	Calls    [numResults]uint64
	RPCs     [numRPCResults]uint64
	// Pending is the number of calls queued or in an RPC.
	Pending int
	Proxies int
}

// Teardown ends live calls on lockdowns. Create it with New, start it with
// Start, stop it with Close.
type Teardown struct {
	opt     Options
	log     zerolog.Logger
	proxies map[string]Proxy

	triggers chan scope
	jobs     chan job

	mu      sync.Mutex
	pending map[string]struct{} // call ids queued or in an RPC

	nTriggers atomic.Uint64
	calls     [numResults]atomic.Uint64
	rpcs      [numRPCResults]atomic.Uint64
	rpcID     atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type scope struct{ account, sub, why string }

type job struct {
	call velocity.LiveCall
	px   Proxy
	why  string
}

// New checks the options. Nothing runs until Start.
func New(opt Options) (*Teardown, error) {
	if opt.Calls == nil {
		return nil, errors.New("teardown: no source of live calls")
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 4
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 250 * time.Millisecond
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.Queue <= 0 {
		opt.Queue = 10000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Alerts == nil {
		opt.Alerts = opt.Next
	}
	if opt.Client == nil {
		opt.Client = &http.Client{
			// the control URL is tollgate's own setting: neither the proxy's
			// answer nor the environment may send the request elsewhere
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	t := &Teardown{opt: opt, log: opt.Logger, proxies: map[string]Proxy{}, pending: map[string]struct{}{},
		triggers: make(chan scope, 1024), jobs: make(chan job, opt.Queue)}
	for _, p := range opt.Proxies {
		if !ValidID(p.ID) {
			return nil, fmt.Errorf("teardown: proxy id %q", p.ID)
		}
		if _, dup := t.proxies[p.ID]; dup {
			return nil, fmt.Errorf("teardown: proxy id %q given twice", p.ID)
		}
		t.proxies[p.ID] = p
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Start runs the dispatcher and the workers.
func (t *Teardown) Start() {
	t.wg.Add(1 + t.opt.Workers)
	go t.dispatch()
	for i := 0; i < t.opt.Workers; i++ {
		go t.work()
	}
}

// Close stops the goroutines; RPCs in flight are cancelled. Calls still
// queued are not torn down (the lock keeps refusing new calls).
func (t *Teardown) Close() {
	t.cancel()
	t.wg.Wait()
}

// Notify implements alert.Notifier: it hands the alert on, then queues a
// teardown of a locked scope. It never blocks.
func (t *Teardown) Notify(a alert.Alert) {
	if t.opt.Next != nil {
		t.opt.Next.Notify(a)
	}
	why := ""
	switch {
	case a.Type == alert.TypeLockdown:
		why = "lockdown"
	case t.opt.OnSpend && a.Kind == alert.KindDailySpend && a.Level == alert.LevelCritical:
		why = "daily_spend"
	default:
		return
	}
	t.Trigger(a.Account, a.Subaccount, why)
}

// Trigger queues the teardown of a scope's live international calls: an
// account's (with its subaccounts') or one subaccount's. why is logged.
// It never blocks; a trigger that finds the queue full is logged and lost.
func (t *Teardown) Trigger(account, sub, why string) {
	t.nTriggers.Add(1)
	select {
	case t.triggers <- scope{account, sub, why}:
	default:
		t.log.Error().Str("account", account).Str("subaccount", sub).Msg("teardown: trigger queue full; live calls of this scope are not ended")
	}
}

func (t *Teardown) dispatch() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case s := <-t.triggers:
			t.scope(s)
		}
	}
}

// scope picks the scope's live international calls and queues them.
func (t *Teardown) scope(s scope) {
	calls, ok := t.opt.Calls.LiveCalls(s.account, s.sub)
	if !ok {
		return
	}
	n := 0
	for _, c := range calls {
		if t.opt.Domestic != nil && t.opt.Domestic(c) {
			t.calls[Domestic].Add(1)
			continue
		}
		px, ok := t.proxies[c.Proxy]
		if !ok {
			t.done(c, NoProxy, s.why, "proxy "+quoteOrNone(c.Proxy)+" is not configured (-proxy-control)")
			continue
		}
		t.mu.Lock()
		_, busy := t.pending[c.CallID]
		if !busy {
			t.pending[c.CallID] = struct{}{}
		}
		t.mu.Unlock()
		if busy {
			continue
		}
		select {
		case t.jobs <- job{call: c, px: px, why: s.why}:
			n++
		default:
			t.unpend(c.CallID)
			t.done(c, Dropped, s.why, "teardown queue full")
		}
	}
	ev := t.log.Debug()
	if n > 0 {
		ev = t.log.Warn()
	}
	ev.Str("account", s.account).Str("subaccount", s.sub).Str("trigger", s.why).Int("live", len(calls)).
		Int("queued", n).Msg("teardown: ending the live international calls")
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", s)
}

func (t *Teardown) unpend(id string) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

func (t *Teardown) work() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case j := <-t.jobs:
			r, detail := t.end(j)
			if r == Ended || r == NotFound {
				c := j.call
				t.opt.Calls.End(velocity.Event{Kind: velocity.Ended, CallID: c.CallID, Account: c.Account,
					Subaccount: c.Subaccount, To: c.To, Time: t.opt.Now(), Duration: -1})
			}
			t.unpend(j.call.CallID)
			t.done(j.call, r, j.why, detail)
		}
	}
}

// end ends one call: attempts with back-off until the proxy answers, the
// call's end arrives, or the attempts run out.
func (t *Teardown) end(j job) (Result, string) {
	method, params, ok := request(j.px.Kind, j.call)
	if !ok {
		return NoDialog, "the call event had no " + needs(j.px.Kind)
	}
	wait := t.opt.Backoff
	var last string
	for attempt := 1; attempt <= t.opt.Attempts; attempt++ {
		if !t.opt.Calls.Live(j.call.CallID) {
			return Gone, "ended before the request"
		}
		r, detail := t.rpc(j.px, method, params)
		switch r {
		case rpcOK:
			return Ended, ""
		case rpcError:
			if notFound(detail) {
				return NotFound, detail
			}
			return Refused, detail
		}
		last = fmt.Sprintf("attempt %d of %d: %s", attempt, t.opt.Attempts, detail)
		t.log.Warn().Str("call_id", j.call.CallID).Str("proxy", j.px.ID).Msg("teardown: " + last)
		if attempt == t.opt.Attempts {
			break
		}
		select {
		case <-t.ctx.Done():
			return Failed, "stopped: " + last
		case <-time.After(wait):
		}
		wait *= 2
	}
	return Failed, last
}

// needs says what a proxy kind needs to find a dialog.
func needs(k Kind) string {
	if k == Kamailio {
		return "dialog.from_tag and dialog.to_tag"
	}
	return "usable dialog id (a Call-ID that reads as a dialog id needs dialog.id)"
}

// request builds the RPC that ends c's dialog on a proxy of kind k.
//
// Kamailio: dlg.terminate_dlg callid from_tag to_tag (dialog module), which
// sends BYE both ways; the three values are the dialog's SIP identity, so
// they can name no other call, even after the proxy restarted (dlg.end_dlg's
// h_entry/h_id are reused).
//
// OpenSIPS: dlg_end_dlg dialog_id, which takes either the dialog id
// ($DLG_did, "hex.hex") or the Call-ID, trying the id first: a Call-ID that
// reads as a dialog id ("1f.a2", chosen by the caller) could name another
// call's dialog, so such a call is ended by the dialog id its own events
// reported, or not at all. Other calls are ended by Call-ID, which, unlike
// a dialog id, is never reused after the proxy restarts.
func request(k Kind, c velocity.LiveCall) (string, any, bool) {
	switch k {
	case Kamailio:
		if c.Dialog.FromTag == "" || c.Dialog.ToTag == "" {
			return "", nil, false
		}
		return "dlg.terminate_dlg", []string{c.CallID, c.Dialog.FromTag, c.Dialog.ToTag}, true
	case OpenSIPS:
		id := c.CallID
		if looksLikeDID(id) {
			if id = c.Dialog.ID; id == "" {
				return "", nil, false
			}
		}
		return "dlg_end_dlg", map[string]string{"dialog_id": id}, true
	}
	return "", nil, false
}

// looksLikeDID reports whether OpenSIPS's parse_dlg_did (3.6) would take s
// for a dialog id: hex digits (maybe none), '.', hex digits (maybe none).
func looksLikeDID(s string) bool {
	a, b, ok := strings.Cut(s, ".")
	return ok && allHex(a) && allHex(b)
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

type rpcReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rpc sends one JSON-RPC 2.0 request over HTTP POST and classifies the
// answer: ok, an error from the proxy (detail is "code message"), or no
// usable answer.
func (t *Teardown) rpc(px Proxy, method string, params any) (int, string) {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": t.rpcID.Add(1)})
	ctx, cancel := context.WithTimeout(t.ctx, t.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, px.URL, bytes.NewReader(body))
	if err != nil {
		t.rpcs[rpcFailed].Add(1)
		return rpcFailed, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.opt.Client.Do(req)
	if err != nil {
		t.rpcs[rpcFailed].Add(1)
		return rpcFailed, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		t.rpcs[rpcFailed].Add(1)
		return rpcFailed, err.Error()
	}
	var rep rpcReply
	if resp.StatusCode != http.StatusOK {
		// mi_http answers some errors with a JSON-RPC error and a 4xx/5xx
		if json.Unmarshal(b, &rep) == nil && rep.Error != nil {
			t.rpcs[rpcError].Add(1)
			return rpcError, fmt.Sprintf("%d %s", rep.Error.Code, rep.Error.Message)
		}
		t.rpcs[rpcFailed].Add(1)
		return rpcFailed, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &rep); err != nil || (rep.Error == nil && rep.Result == nil) {
		t.rpcs[rpcFailed].Add(1)
		return rpcFailed, fmt.Sprintf("not a JSON-RPC answer: %.200s", b)
	}
	if rep.Error != nil {
		t.rpcs[rpcError].Add(1)
		return rpcError, fmt.Sprintf("%d %s", rep.Error.Code, rep.Error.Message)
	}
	t.rpcs[rpcOK].Add(1)
	return rpcOK, ""
}

// notFound recognises "no such dialog": OpenSIPS 404 "Dialog Not Found",
// Kamailio 500 "Couldnt find callid in dialog" (dlg.terminate_dlg) or 404
// "Dialog not found" (dlg.end_dlg).
func notFound(detail string) bool {
	d := strings.ToLower(detail)
	return strings.HasPrefix(d, "404 ") || strings.Contains(d, "not found") || strings.Contains(d, "couldnt find")
}

// done counts and logs a call's result, and alerts when it failed.
func (t *Teardown) done(c velocity.LiveCall, r Result, why, detail string) {
	t.calls[r].Add(1)
	var ev *zerolog.Event
	switch r {
	case Ended:
		ev = t.log.Warn() // a live call ended by tollgate
	case Gone, NotFound:
		ev = t.log.Info()
	default:
		ev = t.log.Error() // left up
	}
	ev.Str("account", c.Account).Str("subaccount", c.Subaccount).Str("call_id", c.CallID).Str("proxy", c.Proxy).
		Str("trigger", why).Str("result", r.String()).Str("detail", detail).Msg("teardown: call")
	if r != Failed && r != NoProxy && r != NoDialog && r != Dropped && r != Refused {
		return
	}
	if t.opt.Alerts == nil {
		return
	}
	t.opt.Alerts.Notify(alert.Alert{Time: t.opt.Now(), Type: alert.TypeTeardown, Level: alert.LevelCritical, Kind: alert.KindTeardown,
		Account: c.Account, Subaccount: c.Subaccount, CallID: c.CallID, Reason: r.String(),
		Message: fmt.Sprintf("live call %s of %s could not be ended on proxy %s after the %s (%s): %s; end it by hand",
			c.CallID, scopeName(c), quoteOrNone(c.Proxy), why, r, detail)})
}

func scopeName(c velocity.LiveCall) string {
	if c.Subaccount == "" {
		return c.Account
	}
	return c.Account + "/" + c.Subaccount
}

// Stats returns the counters.
func (t *Teardown) Stats() Stats {
	st := Stats{Triggers: t.nTriggers.Load(), Proxies: len(t.proxies)}
	for i := range t.calls {
		st.Calls[i] = t.calls[i].Load()
	}
	for i := range t.rpcs {
		st.RPCs[i] = t.rpcs[i].Load()
	}
	t.mu.Lock()
	st.Pending = len(t.pending)
	t.mu.Unlock()
	return st
}
