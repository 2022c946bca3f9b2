package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// receiver is a webhook endpoint on 127.0.0.1 that records what it gets and
// answers with the statuses it is told, in order (then 200).
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	sigs     []string
	events   []string
	statuses []int
	hold     chan struct{} // when set, requests wait for it
	hits     atomic.Int32
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		if r.hold != nil {
			<-r.hold
		}
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.sigs = append(r.sigs, req.Header.Get(SignatureHeader))
		r.events = append(r.events, req.Header.Get("X-Tollgate-Event"))
		st := 200
		if len(r.statuses) > 0 {
			st, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() ([][]byte, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]string(nil), r.sigs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newDispatcher(t *testing.T, opt Options) (*Dispatcher, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	opt.Logger = zerolog.New(logs)
	if opt.Backoff == 0 {
		opt.Backoff = time.Millisecond
	}
	d, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d, logs
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

var sample = Alert{Type: TypeThreshold, Level: LevelCritical, Kind: "calls_per_minute", Account: "acme", Rule: "burst",
	Value: 41, Threshold: 40, Unit: "calls", Action: "lockdown", Message: "calls_per_minute 41 reached critical 40"}

func TestSignedDelivery(t *testing.T) {
	r := newReceiver(t)
	secret := "webhook-secret-0123"
	d, logs := newDispatcher(t, Options{URLs: []string{r.srv.URL}, Secret: secret})
	d.Notify(sample)
	waitFor(t, "delivery", func() bool { return d.Stats().Deliveries[ResultDelivered] == 1 })
	bodies, sigs := r.got()
	if !Verify([]byte(secret), bodies[0], sigs[0]) || !strings.HasPrefix(sigs[0], "sha256=") || len(sigs[0]) != 7+64 {
		t.Errorf("signature %q does not verify", sigs[0])
	}
	if Verify([]byte("other"), bodies[0], sigs[0]) || Verify([]byte(secret), append(bodies[0], ' '), sigs[0]) {
		t.Error("signature verifies with the wrong secret or body")
	}
	var a Alert
	if err := json.Unmarshal(bodies[0], &a); err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.Time.IsZero() || a.Account != "acme" || a.Kind != "calls_per_minute" || a.Value != 41 || a.Action != "lockdown" {
		t.Errorf("body %s", bodies[0])
	}
	if r.events[0] != TypeThreshold {
		t.Errorf("X-Tollgate-Event %q", r.events[0])
	}
	st := d.Stats()
	if st.Deliveries[ResultDelivered] != 1 || st.Alerts[0][1] != 1 || st.Webhooks != 1 {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "reached critical 40") {
		t.Errorf("critical alert not logged at error: %s", logs.String())
	}
}

func TestRetryWithBackoff(t *testing.T) {
	r := newReceiver(t, 503, 500, 502, 500, 200)
	d, logs := newDispatcher(t, Options{URLs: []string{r.srv.URL}, Secret: "s", Backoff: time.Millisecond, MaxBackoff: 3 * time.Millisecond})
	d.Notify(sample)
	waitFor(t, "fifth attempt", func() bool { return d.Stats().Deliveries[ResultDelivered] == 1 })
	st := d.Stats()
	if st.Deliveries[ResultRetried] != 4 || r.hits.Load() != 5 {
		t.Errorf("retried %d, hits %d", st.Deliveries[ResultRetried], r.hits.Load())
	}
	// the same body and signature every time
	bodies, sigs := r.got()
	if !bytes.Equal(bodies[0], bodies[4]) || sigs[0] != sigs[4] {
		t.Error("retry changed the body")
	}
	// the waits between attempts double up to MaxBackoff, as logged
	var waits []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct {
			Msg     string  `json:"message"`
			Attempt int     `json:"attempt"`
			RetryIn float64 `json:"retry_in"` // milliseconds
			Status  int     `json:"status"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && strings.Contains(e.Msg, "retrying") {
			waits = append(waits, fmt.Sprintf("%d:%d:%gms", e.Attempt, e.Status, e.RetryIn))
		}
	}
	if got := strings.Join(waits, " "); got != "1:503:1ms 2:500:2ms 3:502:3ms 4:500:3ms" {
		t.Errorf("back-off (attempt:status:wait) %s, want 1:503:1ms 2:500:2ms 3:502:3ms 4:500:3ms", got)
	}
}

func TestGiveUp(t *testing.T) {
	r := newReceiver(t, 500, 500, 500, 500)
	d, logs := newDispatcher(t, Options{URLs: []string{r.srv.URL}, Secret: "s", MaxAttempts: 3})
	d.Notify(sample)
	waitFor(t, "give up", func() bool { return d.Stats().Deliveries[ResultFailed] == 1 })
	if r.hits.Load() != 3 || !strings.Contains(logs.String(), "alert given up") {
		t.Errorf("hits %d", r.hits.Load())
	}
	// a 4xx other than 408/429 is not retried
	r2 := newReceiver(t, 401)
	d2, _ := newDispatcher(t, Options{URLs: []string{r2.srv.URL}, Secret: "s"})
	d2.Notify(sample)
	waitFor(t, "refusal", func() bool { return d2.Stats().Deliveries[ResultFailed] == 1 })
	if r2.hits.Load() != 1 {
		t.Errorf("401 retried: %d hits", r2.hits.Load())
	}
	// 429 is
	r3 := newReceiver(t, 429, 200)
	d3, _ := newDispatcher(t, Options{URLs: []string{r3.srv.URL}, Secret: "s"})
	d3.Notify(sample)
	waitFor(t, "429 retried", func() bool { return d3.Stats().Deliveries[ResultDelivered] == 1 })
}

func TestFullQueueDropsOldest(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	d, _ := newDispatcher(t, Options{URLs: []string{r.srv.URL}, Secret: "s", QueueSize: 2})
	first := sample
	first.Rule = "first"
	d.Notify(first)
	waitFor(t, "first delivery in flight", func() bool { return r.hits.Load() == 1 })
	// Notify never blocks, even with the receiver stuck: were it to wait
	// for the delivery, this loop would never end (the receiver is released
	// only after it)
	for _, name := range []string{"a", "b", "c", "d"} {
		a := sample
		a.Rule = name
		d.Notify(a)
	}
	st := d.Stats()
	if st.Dropped != 2 || st.Queued != 2 {
		t.Fatalf("dropped %d queued %d, want 2 and 2", st.Dropped, st.Queued)
	}
	close(r.hold)
	waitFor(t, "the rest", func() bool { return d.Stats().Deliveries[ResultDelivered] == 3 })
	bodies, _ := r.got()
	var rules []string
	for _, b := range bodies {
		var a Alert
		json.Unmarshal(b, &a)
		rules = append(rules, a.Rule)
	}
	if strings.Join(rules, ",") != "first,c,d" {
		t.Errorf("delivered %v, want first,c,d (a and b dropped as the oldest)", rules)
	}
}

func TestRecentAndStats(t *testing.T) {
	d, logs := newDispatcher(t, Options{History: 3})
	for i, k := range []string{"calls_per_minute", "daily_spend", KindLockdown, KindUnlock} {
		a := Alert{Type: TypeThreshold, Kind: k, Level: LevelWarning, Account: "acme", Message: k}
		if k == KindUnlock {
			a.Type, a.Level, a.By, a.Reason = TypeUnlock, LevelInfo, "ops", "customer called"
		}
		a.Time = time.Unix(int64(i), 0)
		d.Notify(a)
	}
	got := d.Recent(0)
	if len(got) != 3 || got[0].Kind != KindUnlock || got[2].Kind != "daily_spend" {
		t.Errorf("recent %+v", got)
	}
	if len(d.Recent(1)) != 1 {
		t.Error("Recent(1)")
	}
	st := d.Stats()
	if st.Alerts[slices.Index(Kinds, KindDailySpend)][0] != 1 || st.Alerts[slices.Index(Kinds, KindUnlock)][2] != 1 || st.Webhooks != 0 || st.Queued != 0 {
		t.Errorf("stats %+v", st.Alerts)
	}
	if !strings.Contains(logs.String(), `"by":"ops"`) || !strings.Contains(logs.String(), `"level":"info"`) {
		t.Errorf("unlock log: %s", logs.String())
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	if _, err := New(Options{URLs: []string{"http://127.0.0.1:1/x"}}); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("no secret: %v", err)
	}
	for _, u := range []string{"ftp://x/y", "127.0.0.1:8080/hook", "http://"} {
		if _, err := New(Options{URLs: []string{u}, Secret: "s"}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestCloseDrains(t *testing.T) {
	r := newReceiver(t)
	d, err := New(Options{URLs: []string{r.srv.URL}, Secret: "s", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		d.Notify(sample)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Close(ctx)
	if n := d.Stats().Deliveries[ResultDelivered]; n != 5 {
		t.Errorf("delivered %d of 5 before Close returned", n)
	}
}
