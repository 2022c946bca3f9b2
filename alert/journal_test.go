package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tollgate/tollgate/fraudstate"
)

// memJournal is a Journal that writes at once.
type memJournal struct {
	mu sync.Mutex
	m  [fraudstate.NumKinds]map[string][]byte
}

func (j *memJournal) Put(k fraudstate.Kind, key string, val []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m[k] == nil {
		j.m[k] = map[string][]byte{}
	}
	j.m[k][key] = val
}

func (j *memJournal) Delete(k fraudstate.Kind, key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.m[k], key)
}

func (j *memJournal) Kick() {}

func (j *memJournal) len(k fraudstate.Kind) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.m[k])
}

// restore feeds the journal to d in key order, as fraudstate.Restore does
// from bbolt.
func (j *memJournal) restore(t *testing.T, d *Dispatcher) []error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for k, load := range map[fraudstate.Kind]func(string, []byte) error{fraudstate.Alerts: d.RestoreAlert, fraudstate.Webhooks: d.RestoreDelivery} {
		keys := make([]string, 0, len(j.m[k]))
		for key := range j.m[k] {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if err := load(key, j.m[k][key]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// A delivery queued while the receiver is down stays journalled when the
// dispatcher stops; a new dispatcher restored from the journal delivers it
// with the same idempotency key (header and body) and forgets it; the
// history comes back too.
func TestJournalledDelivery(t *testing.T) {
	var mu sync.Mutex
	down := true
	var keys, bodyKeys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(503)
			return
		}
		var a Alert
		json.Unmarshal(b, &a)
		keys, bodyKeys = append(keys, r.Header.Get("Idempotency-Key")), append(bodyKeys, a.IdempotencyKey)
	}))
	defer srv.Close()
	j := &memJournal{}
	opt := Options{URLs: []string{srv.URL}, Secret: "s", Journal: j, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 1_000_000, Logger: zerolog.Nop()}
	d1, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	d1.Notify(sample)
	waitFor(t, "a failed attempt", func() bool { return d1.Stats().Deliveries[ResultRetried] > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	d1.Close(ctx)
	cancel()
	if j.len(fraudstate.Webhooks) != 1 || j.len(fraudstate.Alerts) != 1 {
		t.Fatalf("journal after close: %d deliveries, %d alerts", j.len(fraudstate.Webhooks), j.len(fraudstate.Alerts))
	}
	id := d1.Recent(1)[0].ID

	mu.Lock()
	down = false
	mu.Unlock()
	d2, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close(context.Background())
	if errs := j.restore(t, d2); len(errs) != 0 {
		t.Fatal(errs)
	}
	waitFor(t, "the delivery", func() bool { return d2.Stats().Deliveries[ResultDelivered] == 1 })
	waitFor(t, "the journal to forget it", func() bool { return j.len(fraudstate.Webhooks) == 0 })
	// at least once: an attempt of the first dispatcher cut by its close
	// may still reach the receiver, with the same key
	mu.Lock()
	for i := range keys {
		if keys[i] != id || bodyKeys[i] != id {
			t.Errorf("delivered with keys %v %v, want %s", keys, bodyKeys, id)
		}
	}
	mu.Unlock()
	if r := d2.Recent(0); len(r) != 1 || r[0].ID != id || r[0].IdempotencyKey != id {
		t.Errorf("history after the restart: %+v", r)
	}
}

// The journal keeps what the dispatcher keeps: the history's last History
// alerts, and no delivery dropped from a full queue; a delivery to a URL
// no longer configured is refused at restore.
func TestJournalBounds(t *testing.T) {
	hold := make(chan struct{})
	var hits sync.WaitGroup
	hits.Add(1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(hits.Done)
		<-hold
	}))
	defer srv.Close()
	defer close(hold)
	j := &memJournal{}
	d, err := New(Options{URLs: []string{srv.URL}, Secret: "s", Journal: j, QueueSize: 2, History: 3, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		d.Close(ctx)
	}()
	d.Notify(sample)
	hits.Wait() // in flight
	for i := 0; i < 5; i++ {
		d.Notify(sample)
	}
	// one in flight (held), two queued, three dropped
	waitFor(t, "drops", func() bool { return d.Stats().Dropped == 3 })
	if n := j.len(fraudstate.Webhooks); n != 3 {
		t.Errorf("journalled deliveries %d, want 3 (in flight and queued)", n)
	}
	if n := j.len(fraudstate.Alerts); n != 3 {
		t.Errorf("journalled history %d, want 3", n)
	}
	other, _ := New(Options{URLs: []string{"http://127.0.0.1:9/other"}, Secret: "s", Logger: zerolog.Nop()})
	defer other.Close(context.Background())
	errs := j.restore(t, other)
	if len(errs) != 3 || !strings.Contains(errs[0].Error(), "no longer configured") {
		t.Errorf("restore to another URL: %v", errs)
	}
}
