package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fraud state tests run the real binary: they kill it with SIGKILL (as
// a crash would) or stop it with SIGTERM, start it again on the same data
// dir, and compare what it knows.

const cubaDeck = "prefix,rate_per_minute,currency\n+53,1.1,USD\n+33,0.01,USD\n"

// spendAccount has a 5 USD daily limit that only alerts (so the calls go on)
// and a rule that counts every allowed call in a day, in a time zone where
// it is about noon (middayZone).
func spendAccount() string {
	return `{"home_country":"GB","countries":{"default":"allow"},"time_zone":"` + middayZone(time.Now()) +
		`","velocity":{"action":"alert","daily_spend":{"limit":5},"rules":[{"name":"all","window_minutes":1440,"calls_per_window":{"critical":1000000}}]}}`
}

// middayZone names a fixed-offset zone in which it is between 11:00 and
// 13:00 at now. The spend tests book calls of a few minutes that end now,
// and a day's spend counts only the part of a call after the account's
// local midnight: in the account's own zone (UTC for GB) a test run in the
// first five minutes of the day booked less than the 5.5 USD it expects,
// so the 5 USD alert never came (a `make test` started just after midnight
// UTC failed so). The spend is right; the tests must not depend on the
// hour they run at.
func middayZone(now time.Time) string {
	off := 12 - now.UTC().Hour() // -11 to +12
	switch {
	case off > 0:
		return fmt.Sprintf("Etc/GMT-%d", off) // POSIX sign: Etc/GMT-3 is UTC+3
	case off < 0:
		return fmt.Sprintf("Etc/GMT+%d", -off)
	}
	return "UTC"
}

// metric reads one sample of /metrics (0 when absent).
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	_, body := d.query("/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// flushed waits for two flushes of the fraud state after now: the first
// may have been collected before the changes the caller just made.
func (d *daemon) flushed() {
	d.t.Helper()
	n := d.metric(`tollgate_state_flushes_total{result="ok"}`)
	waitLong(d.t, "fraud state flush", func() bool {
		return d.metric(`tollgate_state_flushes_total{result="ok"}`) >= n+2 && d.metric("tollgate_state_pending_records") == 0
	})
}

func (d *daemon) postEvents(body string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequest("POST", "http://"+d.info.QueryAddr+"/v1/events", strings.NewReader(body))
	return d.send(req)
}

type spendJSON struct {
	Booked  json.Number `json:"booked"`
	Running json.Number `json:"running"`
	Level   string      `json:"level"`
}

type velocityJSON struct {
	LiveCalls int       `json:"live_calls"`
	Spend     spendJSON `json:"spend"`
	Rules     []struct {
		Measures map[string]struct {
			Value int `json:"value"`
		} `json:"measures"`
	} `json:"rules"`
	Unlock *struct {
		Until  time.Time              `json:"until"`
		Relock map[string]json.Number `json:"relock"`
	} `json:"unlock"`
}

func (d *daemon) velocity(account string) velocityJSON {
	d.t.Helper()
	st, body := d.admin("GET", "/v1/accounts/"+account+"/velocity", "")
	var v velocityJSON
	if st != 200 || json.Unmarshal([]byte(body), &v) != nil {
		d.t.Fatalf("velocity of %s: %d %s", account, st, body)
	}
	return v
}

// Nothing of an account's fraud state is lost to kill -9 once it was
// flushed (at most -state-flush-interval of changes can be): today's spend,
// the live calls, the counters, the dedupe set of ended calls, the alert
// history. Before this, an account at 5.5 USD of a 5 USD limit came back at
// 0 and an `ended` counted before the restart was counted again.
func TestFraudStateSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	deck := writeFile(t, t.TempDir(), "deck.csv", cubaDeck)
	args := []string{"-rate-deck-file", deck, "-state-flush-interval", "100ms", "-velocity-interval", "20ms"}
	d := startDaemon(t, dir, args...)
	if st, body := d.admin("PUT", "/v1/accounts/acme", spendAccount()); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	for i := 0; i < 3; i++ {
		if st, body := d.query("/v1/check?to=%2B33142685300&account=acme"); st != 200 {
			t.Fatalf("check: %d %s", st, body)
		}
	}
	if st, body := d.postEvents(`[{"event":"ended","call_id":"cuba-1","account":"acme","to":"+5355512345","duration":300},
		{"event":"answered","call_id":"cuba-2","account":"acme","to":"+5355512346"}]`); st != 200 || !strings.Contains(body, `"accepted":2`) {
		t.Fatalf("events: %d %s", st, body)
	}
	waitLong(t, "spend alert", func() bool {
		_, body := d.admin("GET", "/v1/alerts", "")
		return strings.Contains(body, `"kind":"daily_spend"`)
	})
	_, alertsBefore := d.admin("GET", "/v1/alerts", "")
	d.flushed()
	before := d.velocity("acme")
	if before.Spend.Booked != "5.5" || before.LiveCalls != 1 || before.Rules[0].Measures["calls_per_window"].Value != 3 {
		t.Fatalf("before the kill: %+v", before)
	}
	d.kill()

	d2 := startDaemon(t, dir, args...)
	after := d2.velocity("acme")
	if after.Spend.Booked != "5.5" || after.LiveCalls != 1 || after.Rules[0].Measures["calls_per_window"].Value != 3 || after.Spend.Level != "critical" {
		t.Fatalf("after kill -9: %+v (before %+v)", after, before)
	}
	if st, body := d2.postEvents(`{"event":"ended","call_id":"cuba-1","account":"acme","to":"+5355512345","duration":300}`); st != 200 || !strings.Contains(body, `"duplicates":1`) {
		t.Fatalf("the same ended after the restart: %d %s", st, body)
	}
	if a := d2.velocity("acme"); a.Spend.Booked != "5.5" {
		t.Fatalf("booked after the replayed end: %s", a.Spend.Booked)
	}
	_, alertsAfter := d2.admin("GET", "/v1/alerts", "")
	if alertsAfter != alertsBefore {
		t.Fatalf("alert history after kill -9:\n%s\nbefore:\n%s", alertsAfter, alertsBefore)
	}
	// the critical level was restored with the spend: not raised again
	time.Sleep(100 * time.Millisecond) // several evaluations (-velocity-interval 20ms)
	if _, body := d2.admin("GET", "/v1/alerts", ""); body != alertsBefore {
		t.Fatalf("alert raised again after the restart: %s", body)
	}
}

// kill -9 in the middle of a stream of call events, while batches are being
// written: the restarted daemon starts from a whole batch (bbolt commits it
// or not at all), has every event acknowledged before the last flush it saw
// begin, no more than were sent, and its dedupe set matches its spend: every
// end it counted is a duplicate when sent again, and changes nothing.
func TestKill9MidBatch(t *testing.T) {
	dir := t.TempDir()
	deck := writeFile(t, t.TempDir(), "deck.csv", cubaDeck)
	args := []string{"-rate-deck-file", deck, "-state-flush-interval", "20ms"}
	d := startDaemon(t, dir, args...)
	if st, body := d.admin("PUT", "/v1/accounts/acme", spendAccount()); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	var acked atomic.Int64 // ends acknowledged, each 60 s at 1.10 USD
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"event":"ended","call_id":"c-%d","account":"acme","to":"+5355512345","duration":60}`, i)
			r, err := c.Post("http://"+d.info.QueryAddr+"/v1/events", "application/json", strings.NewReader(body))
			if err != nil {
				return // killed
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == 200 {
				acked.Store(int64(i + 1))
			}
		}
	}()
	waitLong(t, "events", func() bool { return acked.Load() > 50 })
	floor := acked.Load()
	d.flushed() // every end acknowledged before floor is on disk now
	waitLong(t, "more events", func() bool { return acked.Load() > floor+50 })
	d.kill()
	close(stop)
	wg.Wait()
	sent := acked.Load() + 1 // one may have been applied and not acknowledged

	d2 := startDaemon(t, dir, args...)
	booked, err := strconv.ParseFloat(string(d2.velocity("acme").Spend.Booked), 64)
	if err != nil {
		t.Fatal(err)
	}
	calls := int64(booked/1.1 + 0.5)
	if calls < floor || calls > sent {
		t.Fatalf("restored %d calls (%.2f USD): want between %d (flushed) and %d (sent)", calls, booked, floor, sent)
	}
	// the restored dedupe set is the restored spend's: ends 0..calls-1
	// again are duplicates, the next is new
	var b strings.Builder
	b.WriteByte('[')
	for i := int64(0); i < calls; i++ {
		if b.Len() > 1 { // not the first of its batch
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event":"ended","call_id":"c-%d","account":"acme","to":"+5355512345","duration":60}`, i)
		if (i+1)%500 == 0 || i == calls-1 {
			b.WriteByte(']')
			if st, body := d2.postEvents(b.String()); st != 200 || !strings.Contains(body, `"accepted":0,`) {
				t.Fatalf("an end counted before the kill was counted again: %d %s", st, body)
			}
			b.Reset()
			b.WriteByte('[')
		}
	}
	if a := d2.velocity("acme"); a.Spend.Booked != json.Number(strconv.FormatFloat(booked, 'f', -1, 64)) {
		t.Fatalf("booked after the replay %s, before %v", a.Spend.Booked, booked)
	}
	t.Logf("kill -9 after %d ends acknowledged (%d flushed before): %d restored", sent-1, floor, calls)
}

// SIGTERM loses nothing: the last changes are written after the listeners
// stop, whatever the flush interval.
func TestFraudStateSIGTERMLosesNothing(t *testing.T) {
	dir := t.TempDir()
	deck := writeFile(t, t.TempDir(), "deck.csv", cubaDeck)
	args := []string{"-rate-deck-file", deck, "-state-flush-interval", "1m"}
	d := startDaemon(t, dir, args...)
	if st, body := d.admin("PUT", "/v1/accounts/acme", spendAccount()); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	if st, body := d.postEvents(`{"event":"ended","call_id":"x","account":"acme","to":"+5355512345","duration":60}`); st != 200 || !strings.Contains(body, `"accepted":1,`) {
		t.Fatalf("event: %d %s", st, body)
	}
	d.signal(syscall.SIGTERM)
	if err := d.wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, dir, args...)
	if v := d2.velocity("acme"); v.Spend.Booked != "1.1" {
		t.Fatalf("after SIGTERM: %+v (now %s)", v.Spend, time.Now().UTC().Format(time.RFC3339))
	}
}

// A webhook queued while the receiver is down survives kill -9 and is
// delivered after the restart once the receiver is up, with the same
// idempotency key (header and body) and once.
func TestWebhookSurvivesKill9(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the receiver is down
	dir := t.TempDir()
	args := []string{"-webhook-url", "http://" + addr + "/hook", "-webhook-secret", "s3cret", "-state-flush-interval", "50ms"}
	d := startDaemon(t, dir, args...)
	d.admin("PUT", "/v1/accounts/acme", `{"home_country":"GB"}`)
	if st, body := d.admin("PUT", "/v1/accounts/acme/lock", `{"reason":"test"}`); st != 200 {
		t.Fatalf("lock: %d %s", st, body)
	}
	_, body := d.admin("GET", "/v1/alerts", "")
	var hist struct {
		Alerts []struct {
			ID  string `json:"id"`
			Key string `json:"idempotency_key"`
		} `json:"alerts"`
	}
	if json.Unmarshal([]byte(body), &hist) != nil || len(hist.Alerts) != 1 || hist.Alerts[0].Key != hist.Alerts[0].ID {
		t.Fatalf("alerts: %s", body)
	}
	key := hist.Alerts[0].Key
	waitLong(t, "a failed delivery", func() bool { return d.metric(`tollgate_webhook_deliveries_total{result="retried"}`) >= 1 })
	d.flushed()
	d.kill()

	var mu sync.Mutex
	var keys, bodyKeys []string
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the receiver's port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var a struct {
			Key string `json:"idempotency_key"`
		}
		json.Unmarshal(b, &a)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		bodyKeys = append(bodyKeys, a.Key)
		mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()

	d2 := startDaemon(t, dir, args...)
	waitLong(t, "the delivery after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(keys) > 0
	})
	waitLong(t, "the queue to empty", func() bool { return d2.metric("tollgate_webhook_queue_length") == 0 })
	d2.flushed()
	mu.Lock()
	if len(keys) != 1 || keys[0] != key || bodyKeys[0] != key {
		t.Fatalf("deliveries: headers %v bodies %v, want one with %s", keys, bodyKeys, key)
	}
	mu.Unlock()
	// delivered: it is not sent again after another restart
	d2.kill()
	d3 := startDaemon(t, dir, args...)
	if q := d3.metric("tollgate_webhook_queue_length"); q != 0 {
		t.Fatalf("queue after the delivered restart: %v", q)
	}
	if _, err := os.Stat(filepath.Join(dir, "tollgate.db")); err != nil {
		t.Fatal(err)
	}
}

// An unlock must not switch the protection off for the day: unlocked at
// 5.5 USD of a 5 USD limit, spending goes on until 10.5 USD, where a new
// critical locks again; the unlock's grace survives kill -9; an `until` of
// "midnight" is the account's next local midnight (in a zone where it is
// about noon: see spendAccount).
func TestUnlockThenSpend(t *testing.T) {
	dir := t.TempDir()
	deck := writeFile(t, t.TempDir(), "deck.csv", cubaDeck)
	args := []string{"-rate-deck-file", deck, "-velocity-interval", "20ms", "-state-flush-interval", "50ms"}
	d := startDaemon(t, dir, args...)
	zone := middayZone(time.Now()) // see spendAccount
	d.admin("PUT", "/v1/accounts/acme", `{"home_country":"GB","countries":{"default":"allow"},"time_zone":"`+zone+`","velocity":{"daily_spend":{"limit":5}}}`)
	d.postEvents(`{"event":"ended","call_id":"a","account":"acme","to":"+5355512345","duration":300}`)
	waitLong(t, "lockdown", func() bool {
		st, _ := d.admin("GET", "/v1/accounts/acme/lock", "")
		return st == 200 && d.velocity("acme").Spend.Level == "critical" && locked(d)
	})
	if st, body := d.admin("DELETE", "/v1/accounts/acme/lock", `{"reason":"confirmed","until":"yesterday"}`); st != 400 || !strings.Contains(body, `"field":"until"`) {
		t.Fatalf("bad until: %d %s", st, body)
	}
	st, body := d.admin("DELETE", "/v1/accounts/acme/lock", `{"reason":"confirmed","until":"midnight"}`)
	if st != 200 || !strings.Contains(body, `"deleted":{"account":"acme"`) {
		t.Fatalf("unlock: %d %s", st, body)
	}
	var u struct {
		Until time.Time `json:"until"`
	}
	json.Unmarshal([]byte(body), &u)
	loc, _ := time.LoadLocation(zone)
	if l := u.Until.In(loc); l.Hour() != 0 || l.Minute() != 0 || !u.Until.After(time.Now()) || u.Until.Sub(time.Now()) > 25*time.Hour {
		t.Fatalf("until midnight in %s: %v", zone, u.Until)
	}
	v := d.velocity("acme")
	if v.Unlock == nil || v.Unlock.Relock["daily_spend"] != "10.5" {
		t.Fatalf("unlock state: %+v", v.Unlock)
	}
	d.kill() // the grace was written before the unlock was answered
	d2 := startDaemon(t, dir, args...)
	if locked(d2) {
		t.Fatal("locked again by the restart")
	}
	d2.postEvents(`{"event":"ended","call_id":"b","account":"acme","to":"+5355512345","duration":270}`) // 10.45
	time.Sleep(100 * time.Millisecond)                                                                  // several evaluations
	if locked(d2) {
		t.Fatal("locked below the margin")
	}
	d2.postEvents(`{"event":"ended","call_id":"c","account":"acme","to":"+5355512345","duration":3}`) // 10.505
	waitLong(t, "the new lockdown", func() bool { return locked(d2) })
	_, lock := d2.admin("GET", "/v1/accounts/acme/lock", "")
	if !strings.Contains(lock, "crossed again after the unlock by admin (re-lock level 10.5)") {
		t.Fatalf("lock: %s", lock)
	}
}

func locked(d *daemon) bool {
	d.t.Helper()
	_, body := d.admin("GET", "/v1/accounts/acme/lock", "")
	return strings.Contains(body, `"locked":true`)
}

// middayZone keeps every hour of the UTC day at least 11 hours from a
// local midnight.
func TestMiddayZone(t *testing.T) {
	for _, tc := range []struct {
		utc  string
		zone string
	}{
		{"2026-12-06T00:02:00Z", "Etc/GMT-12"},
		{"2026-12-06T00:59:59Z", "Etc/GMT-12"},
		{"2026-12-06T05:30:00Z", "Etc/GMT-7"},
		{"2026-12-06T11:00:00Z", "Etc/GMT-1"},
		{"2026-12-06T12:45:00Z", "UTC"},
		{"2026-12-06T13:00:00Z", "Etc/GMT+1"},
		{"2026-12-06T23:59:59Z", "Etc/GMT+11"},
	} {
		now, err := time.Parse(time.RFC3339, tc.utc)
		if err != nil {
			t.Fatal(err)
		}
		zone := middayZone(now)
		if zone != tc.zone {
			t.Errorf("%s: %s, want %s", tc.utc, zone, tc.zone)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatalf("%s: %v", zone, err)
		}
		if h := now.In(loc).Hour(); h < 11 || h > 12 {
			t.Errorf("%s in %s is %v", tc.utc, zone, now.In(loc))
		}
	}
}
