// Package fraudstate is the one home of tollgate's fraud state between
// restarts: the velocity scopes (counters, today's spend, raised levels,
// unlock grace), the live calls and the tombstones of ended ones (the call
// event dedupe set), the alert history and the webhook deliveries not yet
// acknowledged.
//
// That state lives in memory for the query path. A Writer collects what
// changed and writes it to a Backend in one batch every interval (and soon
// after an alert, which kicks it), so no decision and no call event ever
// waits on the disk. The loss window is therefore one interval and one
// write: after kill -9 the changes made since the last completed flush
// began are lost (the batch is one transaction: the file holds the state as
// of a whole flush, never half of one); after SIGTERM nothing, as the
// daemon flushes once more after its listeners have stopped.
//
// The single-node Backend is the bbolt data file (package store); fleet mode
// can implement the same two methods on a JetStream KV bucket per node, each
// record keyed by node and replaced, never added to.
package fraudstate

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of record; each has its own bucket.
type Kind uint8

// The kinds of fraud state.
const (
	// Scopes are velocity scopes by "account" or "account/subaccount".
	Scopes Kind = iota
	// Calls are live calls and ended calls' tombstones by Call-ID.
	Calls
	// Alerts are the alert history by time and ID.
	Alerts
	// Webhooks are undelivered webhook deliveries by time, ID and URL.
	Webhooks
	// NumKinds is the number of kinds.
	NumKinds
)

// KindNames name the kinds in logs, metrics and bucket names.
var KindNames = [NumKinds]string{"scopes", "calls", "alerts", "webhooks"}

// Batch is a set of record writes. A later write of a key replaces an
// earlier one in the same batch; a nil value deletes the record.
type Batch struct {
	m [NumKinds]map[string][]byte
}

// Put stores val under key (a copy is not taken: val must not change).
func (b *Batch) Put(k Kind, key string, val []byte) {
	if val == nil {
		val = []byte{}
	}
	b.set(k, key, val)
}

// Delete removes the record key.
func (b *Batch) Delete(k Kind, key string) { b.set(k, key, nil) }

func (b *Batch) set(k Kind, key string, val []byte) {
	if b.m[k] == nil {
		b.m[k] = map[string][]byte{}
	}
	b.m[k][key] = val
}

// Len is the number of records written or deleted.
func (b *Batch) Len() int {
	n := 0
	for _, m := range b.m {
		n += len(m)
	}
	return n
}

// Each calls fn for every write of kind k in key order; val is nil for a
// delete.
func (b *Batch) Each(k Kind, fn func(key string, val []byte) error) error {
	keys := make([]string, 0, len(b.m[k]))
	for key := range b.m[k] {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := fn(key, b.m[k][key]); err != nil {
			return err
		}
	}
	return nil
}

// under merges b under newer: newer's writes win.
func (b *Batch) under(newer *Batch) *Batch {
	for k := range newer.m {
		for key, v := range newer.m[k] {
			b.set(Kind(k), key, v)
		}
	}
	return b
}

// Backend keeps records durably. WriteState applies a batch atomically:
// all of it or none.
type Backend interface {
	WriteState(*Batch) error
	// LoadState calls fn for every record of kind k; val is only valid
	// during the call.
	LoadState(k Kind, fn func(key string, val []byte) error) error
}

// Source is state collected at every flush: it puts what changed since its
// last Collect into the batch.
type Source interface {
	Collect(*Batch)
}

// Options configure a Writer.
type Options struct {
	// Interval is the time between flushes: the loss window after kill -9
	// (default 1 s).
	Interval time.Duration
	// OnError is told of a failed flush (its records are kept for the
	// next one).
	OnError func(error)
}

// Stats are the writer's counters, for /metrics.
type Stats struct {
	Flushes, Failures uint64
	Records           uint64 // records written or deleted
	LastFlush         time.Time
	LastDuration      time.Duration
	Pending           int
}

// Writer batches fraud state into its Backend.
type Writer struct {
	be  Backend
	opt Options

	mu      sync.Mutex
	pending *Batch
	sources []Source

	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}

	flushes, failures, records atomic.Uint64
	lastFlush, lastDur         atomic.Int64
}

// NewWriter returns a writer to be; Run it.
func NewWriter(be Backend, opt Options) *Writer {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	return &Writer{be: be, opt: opt, pending: &Batch{}, kick: make(chan struct{}, 1)}
}

// AddSource has s collected at every flush.
func (w *Writer) AddSource(s Source) {
	w.mu.Lock()
	w.sources = append(w.sources, s)
	w.mu.Unlock()
}

// Put queues a record for the next flush.
func (w *Writer) Put(k Kind, key string, val []byte) {
	w.mu.Lock()
	w.pending.Put(k, key, val)
	w.mu.Unlock()
}

// Delete queues a record's deletion for the next flush.
func (w *Writer) Delete(k Kind, key string) {
	w.mu.Lock()
	w.pending.Delete(k, key)
	w.mu.Unlock()
}

// Kick asks for a flush now rather than at the next interval (an alert
// was raised); it never blocks.
func (w *Writer) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Interval is the flush interval: the loss window after kill -9.
func (w *Writer) Interval() time.Duration { return w.opt.Interval }

// Flush collects the sources and writes everything pending in one batch.
// On error the batch is kept for the next flush.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	start := time.Now()
	w.mu.Lock()
	b := w.pending
	w.pending = &Batch{}
	srcs := append([]Source(nil), w.sources...)
	w.mu.Unlock()
	// the sources after the queued records: a source's state is newer
	for _, s := range srcs {
		s.Collect(b)
	}
	if b.Len() == 0 {
		w.done(start, 0)
		return nil
	}
	if err := w.be.WriteState(b); err != nil {
		w.failures.Add(1)
		w.mu.Lock()
		w.pending = b.under(w.pending)
		w.mu.Unlock()
		if w.opt.OnError != nil {
			w.opt.OnError(err)
		}
		return err
	}
	w.done(start, b.Len())
	return nil
}

func (w *Writer) done(start time.Time, n int) {
	w.flushes.Add(1)
	w.records.Add(uint64(n))
	w.lastFlush.Store(time.Now().UnixNano())
	w.lastDur.Store(int64(time.Since(start)))
}

// Run flushes every Interval, and soon after a Kick, until ctx ends. The
// last flush is the caller's (Flush, after the sources have stopped).
func (w *Writer) Run(ctx context.Context) {
	t := time.NewTicker(w.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		w.Flush()
	}
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	st := Stats{Flushes: w.flushes.Load(), Failures: w.failures.Load(), Records: w.records.Load(),
		LastDuration: time.Duration(w.lastDur.Load())}
	if ns := w.lastFlush.Load(); ns != 0 {
		st.LastFlush = time.Unix(0, ns)
	}
	w.mu.Lock()
	st.Pending = w.pending.Len()
	w.mu.Unlock()
	return st
}

// Loader restores the records of one kind; an error refuses the record.
type Loader func(key string, val []byte) error

// Restored counts what Restore read.
type Restored struct {
	Loaded, Refused [NumKinds]int
	// Errors are the first few refusals, for the log.
	Errors []string
}

// Restore feeds every stored record to its kind's loader, kinds in order
// (scopes before the calls that book into them). A record its loader
// refuses (its account is gone, it does not decode) is deleted at the next
// flush of w, so it is neither kept for ever nor fatal: losing one scope's
// counters is better than a fraud guard that does not start.
func Restore(be Backend, w *Writer, loaders [NumKinds]Loader) (Restored, error) {
	var r Restored
	for k := Kind(0); k < NumKinds; k++ {
		load := loaders[k]
		if load == nil {
			continue
		}
		err := be.LoadState(k, func(key string, val []byte) error {
			if err := load(key, val); err != nil {
				r.Refused[k]++
				if len(r.Errors) < 5 {
					r.Errors = append(r.Errors, KindNames[k]+" "+key+": "+err.Error())
				}
				if w != nil {
					w.Delete(k, key)
				}
				return nil
			}
			r.Loaded[k]++
			return nil
		})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}
