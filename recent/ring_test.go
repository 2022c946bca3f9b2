package recent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func TestAddAndCalls(t *testing.T) {
	r := New(4, time.Hour)
	r.Add(t0, "acme", "sales", "0044207", []byte("+442079460000"), "192.0.2.7", 0, 0, "GB")
	r.Add(t0.Add(time.Second), "acme", "", "999999", nil, "2001:db8::1", 1, 2, "")
	r.Add(t0.Add(2*time.Second), strings.Repeat("a", 40), "subaccount", "+1", []byte("+12025550100"), "not-an-ip", 1, 4, "001")
	got := r.Calls(t0.Add(3 * time.Second))
	want := []Call{
		{Time: t0, Account: "acme", Subaccount: "sales", To: "+442079460000", SrcIP: "192.0.2.7", Country: "GB"},
		{Time: t0.Add(time.Second), Account: "acme", To: "999999", SrcIP: "2001:db8::1", Action: 1, Reason: 2},
		// version 1 kept "suba" and flagged it truncated; the names are
		// interned now, whole up to MaxNameBytes each
		{Time: t0.Add(2 * time.Second), Account: strings.Repeat("a", 40), Subaccount: "subaccount", To: "+12025550100", Action: 1, Reason: 4, Country: "001"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d calls, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		maxAge time.Duration
		adds   int
		want   []string // accounts left, oldest first
	}{
		{"size", 3, 0, 5, []string{"a2", "a3", "a4"}},
		{"age", 10, 90 * time.Second, 5, []string{"a3", "a4"}},
		{"both", 3, 150 * time.Second, 6, []string{"a3", "a4", "a5"}},
		{"empty", 3, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.size, tc.maxAge)
			for i := 0; i < tc.adds; i++ {
				r.Add(t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("a%d", i), "", "+1", nil, "", 0, 0, "")
			}
			var got []string
			for _, c := range r.Calls(t0.Add(time.Duration(tc.adds-1) * time.Minute)) {
				got = append(got, c.Account)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTimeOrder(t *testing.T) {
	r := New(10, 0)
	for _, s := range []int{5, 1, 3, 1} {
		r.Add(t0.Add(time.Duration(s)*time.Second), fmt.Sprintf("s%d", s), "", "+1", nil, "", 0, 0, "")
	}
	var got []string
	r.Each(t0, func(c *Call) bool { got = append(got, strings.Clone(c.Account)); return true })
	if fmt.Sprint(got) != "[s1 s1 s3 s5]" {
		t.Errorf("order %v", got)
	}
}

func TestNilRing(t *testing.T) {
	var r *Ring = New(0, 0)
	r.Add(t0, "a", "", "+1", nil, "", 0, 0, "")
	if r.Size() != 0 || len(r.Calls(t0)) != 0 || r.Written() != 0 {
		t.Error("a disabled ring holds something")
	}
	if n, err := r.Save(filepath.Join(t.TempDir(), FileName)); n != 0 || err != nil {
		t.Error(n, err)
	}
}

// TestConcurrent has writers lap the ring while a reader copies it: every
// record read is whole (its fields agree with each other).
func TestConcurrent(t *testing.T) {
	r := New(64, 0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := fmt.Sprintf("%d", i%1000)
				r.Add(t0.Add(time.Duration(i)), "acct"+n, "sub"+n, "", []byte("+1"+n), "", 0, 0, "")
			}
		}(g)
	}
	for k := 0; k < 200; k++ {
		r.Each(t0, func(c *Call) bool {
			n := strings.TrimPrefix(c.Account, "acct")
			if c.Subaccount != "sub"+n || c.To != "+1"+n {
				t.Errorf("torn record %+v", c)
				return false
			}
			return true
		})
	}
	close(stop)
	wg.Wait()
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	r := New(5, 0)
	for i := 0; i < 7; i++ {
		r.Add(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("a%d", i), "s", "", []byte("+3312345678"), "198.51.100.1", 1, 4, "FR")
	}
	if n, err := r.Save(path); err != nil || n != 5 {
		t.Fatal(n, err)
	}
	for _, size := range []int{5, 3, 10} {
		q := New(size, 0)
		n, err := q.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(size, 5); n != want {
			t.Errorf("size %d: loaded %d, want %d", size, n, want)
		}
		got, want := q.Calls(t0), r.Calls(t0)
		want = want[len(want)-n:]
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("size %d: loaded\n%v\nwant\n%v", size, got, want)
		}
		// the loaded ring goes on from where it stopped
		q.Add(t0.Add(time.Hour), "next", "", "", []byte("+1"), "", 0, 0, "")
		if c := q.Calls(t0); c[len(c)-1].Account != "next" {
			t.Errorf("size %d: new record not last: %v", size, c)
		}
	}
	// no file: nothing, no error
	if n, err := New(3, 0).Load(filepath.Join(dir, "none")); n != 0 || err != nil {
		t.Error(n, err)
	}
}

func TestLoadDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	r := New(5, 0)
	for i := 0; i < 5; i++ {
		r.Add(t0.Add(time.Duration(i)*time.Second), "a", "", "", []byte("+3312345678"), "", 0, 0, "FR")
	}
	if _, err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	tests := []struct {
		name  string
		bytes func([]byte) []byte
	}{
		{"flipped record byte", func(b []byte) []byte { b[headerLen+10] ^= 1; return b }},
		{"flipped checksum", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"wrong magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"huge count", func(b []byte) []byte { b[23] = 0xff; return b }},
		{"wrong version", func(b []byte) []byte { b[8] = 9; return b }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.bytes(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}
			q := New(5, 0)
			n, err := q.Load(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			if n != 0 || len(q.Calls(t0)) != 0 || q.Written() != 0 {
				t.Errorf("a damaged file left %d records", len(q.Calls(t0)))
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	dir := f.TempDir()
	r := New(3, 0)
	r.Add(t0, "a", "b", "", []byte("+1"), "192.0.2.1", 0, 0, "US")
	path := filepath.Join(dir, "seed")
	r.Save(path)
	b, _ := os.ReadFile(path)
	f.Add(b)
	// One ring for every input: a ring's mappings are never freed (a
	// daemon has one), and a New per input ran the fuzz worker out of
	// mappings within seconds (0 execs/s, restarted workers).
	q := New(3, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), FileName)
		os.WriteFile(p, b, 0o600)
		q.reset()
		if _, err := q.Load(p); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		q.Calls(t0)
	})
}

// TestLappedWriterGivesUp: a writer stalled mid-record one lap behind owns
// its slot; the writer that laps onto it records nothing (and counts it)
// rather than mix its record into the other's.
func TestLappedWriterGivesUp(t *testing.T) {
	r := New(2, 0)
	r.Add(t0, "a0", "", "", []byte("+10"), "", 0, 0, "")
	r.Add(t0, "a1", "", "", []byte("+11"), "", 0, 0, "")
	r.slots[0][0].Store(busy) // a writer claimed record 2 and stalled
	r.next.Add(1)
	r.Add(t0, "a3", "", "", []byte("+13"), "", 0, 0, "") // record 3: slot 1
	r.Add(t0, "a4", "", "", []byte("+14"), "", 0, 0, "") // record 4: slot 0, still busy
	if r.Lapped() != 1 {
		t.Fatalf("lapped %d, want 1", r.Lapped())
	}
	var got []string
	r.Each(t0, func(c *Call) bool { got = append(got, c.Account+c.To); return true })
	if fmt.Sprint(got) != "[a3+13]" {
		t.Errorf("records %v, want only a3's", got)
	}
	var b strings.Builder
	r.WriteMetrics(&b)
	if !strings.Contains(b.String(), "tollgate_recent_lapped_total 1\n") {
		t.Errorf("metrics:\n%s", b.String())
	}
}
