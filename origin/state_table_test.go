package origin

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// TestHotViewRoundTrip: what a writer publishes is what Check's lock-free
// read returns, for every kind of last address and the packed fields at
// their limits.
func TestHotViewRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ip   netip.Addr
	}{
		{"none", netip.Addr{}},
		{"ipv4", netip.MustParseAddr("203.0.113.7")},
		{"ipv6", netip.MustParseAddr("2001:db8::1")},
		{"ipv4-mapped", netip.MustParseAddr("::ffff:203.0.113.7")},
		{"ipv6-top", netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &acct{}
			a.lock()
			a.setCCAt(11)
			a.setIPAt(-22)
			a.passUntil = 1 << 62
			a.lastCC, a.home = packCC("DE"), packCC("ZA")
			a.failed, a.quarantined, a.lastIP = MaxFailedLimit, true, tc.ip
			a.unlock()
			var v hotView
			a.load(&v)
			want := hotView{ccAt: 11, ipAt: -22, passUntil: 1 << 62, lastCC: packCC("DE"), home: packCC("ZA"),
				failed: MaxFailedLimit, quarantined: true, lastIP: tc.ip}
			if v != want {
				t.Fatalf("read %+v, want %+v", v, want)
			}
		})
	}
}

// TestStateTableConcurrent adds accounts from several goroutines while
// others look them up and Prune drops the idle ones: every account added is
// found until pruned, none is added twice, and the count matches (run with
// -race for the lock-free reads).
func TestStateTableConcurrent(t *testing.T) {
	clk := newClock()
	s := NewState(StateOptions{Now: clk.Now})
	const workers, per = 4, 3000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				k := fmt.Sprintf("a%d", i) // every worker adds the same names
				a := s.getOrCreate(k, true)
				if a == nil || a.key != k {
					t.Errorf("getOrCreate(%q) = %v", k, a)
					return
				}
				if g := s.get(k); g != a {
					t.Errorf("get(%q) after getOrCreate: %p, want %p", k, g, a)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if s.Len() != per {
		t.Fatalf("Len %d, want %d", s.Len(), per)
	}
	// Give every even account something durable, then prune the rest.
	for i := 0; i < per; i += 2 {
		if _, err := s.SetHome(fmt.Sprintf("a%d", i), "DE"); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Hour)
	var rd sync.WaitGroup
	stop := make(chan struct{})
	rd.Add(1)
	go func() { // readers during Prune see every durable account
		defer rd.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := 0; i < per; i += 2 {
				if s.get(fmt.Sprintf("a%d", i)) == nil {
					t.Errorf("a%d not found during Prune", i)
					return
				}
			}
		}
	}()
	if n := s.Prune(time.Minute); n != per/2 {
		t.Errorf("Prune removed %d, want %d", n, per/2)
	}
	close(stop)
	rd.Wait()
	if s.Len() != per/2 {
		t.Errorf("Len after Prune %d, want %d", s.Len(), per/2)
	}
	for i := 0; i < per; i++ {
		got := s.get(fmt.Sprintf("a%d", i)) != nil
		if got != (i%2 == 0) {
			t.Errorf("a%d present %v after Prune", i, got)
		}
	}
}

// TestHotViewNoTornRead: a writer flips an account between two states
// while readers check that every read is wholly one or the other.
func TestHotViewNoTornRead(t *testing.T) {
	a := &acct{}
	states := [2]struct {
		at   int64
		cc   cc
		ip   netip.Addr
		quar bool
	}{
		{1, packCC("DE"), netip.MustParseAddr("192.0.2.1"), false},
		{2, packCC("NG"), netip.MustParseAddr("2001:db8::2"), true},
	}
	set := func(i int) {
		st := states[i]
		a.lock()
		a.setCCAt(st.at)
		a.setIPAt(st.at)
		a.passUntil, a.lastCC, a.home, a.lastIP, a.quarantined = st.at, st.cc, st.cc, st.ip, st.quar
		a.unlock()
	}
	set(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v hotView
			for n := 0; ; n++ {
				if n%64 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
				a.load(&v)
				st := states[v.ccAt-1]
				if v.ipAt != st.at || v.passUntil != st.at || v.lastCC != st.cc || v.home != st.cc || v.lastIP != st.ip || v.quarantined != st.quar {
					t.Errorf("torn read %+v", v)
					return
				}
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		set(i & 1)
	}
	close(stop)
	wg.Wait()
}

// TestStateTableKeys: a key is copied (inline when short, apart when long),
// so the caller's buffer may change; accounts whose hashes share a slot
// tag, or a probe chain, are still told apart by their keys; an empty key
// is a key like any other.
func TestStateTableKeys(t *testing.T) {
	long := "an-account-name-longer-than-the-inline-buffer-of-an-acct"
	for _, tc := range []struct {
		name, key string
		inline    bool
	}{
		{"empty", "", false},
		{"short", "acct-004702", true},
		{"inline limit", "abcdefghijklmnopqrstuvwx", true},
		{"one past", "abcdefghijklmnopqrstuvwxy", false},
		{"long", long, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := []byte(tc.key)
			s := NewState(StateOptions{})
			a := s.getOrCreate(string(buf), true)
			for i := range buf {
				buf[i] = 'z'
			}
			if a.key != tc.key {
				t.Fatalf("key %q after the caller's buffer changed, want %q", a.key, tc.key)
			}
			inline := len(a.key) > 0 && unsafe.StringData(a.key) == &a.kb[0]
			if inline != tc.inline {
				t.Fatalf("inline %v, want %v", inline, tc.inline)
			}
			if s.get(tc.key) != a || s.getOrCreate(tc.key, true) != a {
				t.Fatalf("%q not found again", tc.key)
			}
		})
	}
	// Equal tags (hashes equal but for the low bit) and one probe chain:
	// each lookup finds its own account, a missing key none.
	tb := newTable(0)
	x, y := newAcct(nil, "x", 64<<6), newAcct(nil, "y", 64<<6|1)
	z := newAcct(nil, "z", 64<<6) // same hash as x, other key
	for _, a := range []*acct{x, y, z} {
		tb.put(a)
	}
	for _, a := range []*acct{x, y, z} {
		if got := tb.find(a.hash, a.key); got != a {
			t.Fatalf("find(%q) = %v", a.key, got)
		}
	}
	if got := tb.find(64<<6, "w"); got != nil {
		t.Fatalf("find of a missing key on a full chain = %q", got.key)
	}
	n := 0
	tb.each(func(*acct) { n++ })
	if n != 3 || tb.n != 3 {
		t.Fatalf("each saw %d, n %d, want 3", n, tb.n)
	}
}
