package query

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/matcher"
)

// Concurrent refusals of one key: about the burst is written, every other
// call is counted, none is lost, and the race detector sees only atomics.
func TestLogSamplerConcurrent(t *testing.T) {
	s := newLogSampler(5, time.Hour, nil)
	key := logKey("acme", "", matcher.Reason(1))
	var ok atomic.Int64
	var wg sync.WaitGroup
	const workers, calls = 8, 2000
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				if written, _, _ := s.allow(key); written {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n < 5 || n > 5+workers {
		t.Errorf("%d lines written, want the burst of 5 (+ at most one per racing worker)", n)
	}
	if got := s.collect(); int64(got)+ok.Load() != workers*calls {
		t.Errorf("written %d + suppressed %d != %d calls", ok.Load(), got, workers*calls)
	}
}

// Keys differ by account, subaccount and reason; a burst of 0 turns sampling off.
func TestLogKey(t *testing.T) {
	keys := map[uint64]string{}
	for _, k := range []struct {
		a, s string
		r    matcher.Reason
	}{{"a", "", 1}, {"a", "", 2}, {"a", "b", 1}, {"ab", "", 1}, {"", "ab", 1}, {"b", "a", 1}} {
		h := logKey(k.a, k.s, k.r)
		if prev, dup := keys[h]; dup {
			t.Errorf("%v hashes like %s", k, prev)
		}
		keys[h] = k.a + "/" + k.s
	}
	if newLogSampler(0, time.Second, nil) != nil {
		t.Error("burst 0 must mean no sampler")
	}
}
