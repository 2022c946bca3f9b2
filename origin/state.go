package origin

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/policy"
)

const numShards = 64

// StateOptions tune a State. Zero fields take the defaults.
type StateOptions struct {
	// Now is the clock (time.Now when nil); tests inject their own.
	Now func() time.Time
	// MaxAccounts bounds how many accounts have calling history (default
	// 1<<20). Past it, new accounts are decided without history (no
	// location-change check, no home assignment) until Prune makes room.
	MaxAccounts int
	// CodeIterations is the PBKDF2 iteration count for new unblock codes
	// (default DefaultCodeIterations).
	CodeIterations int
	// CodeAttempts is how many wrong unblock codes in a row lock
	// verification out (default 5).
	CodeAttempts int
	// CodeLockout is how long verification stays locked out the first
	// time (default 15 minutes); each further lock-out before a right code
	// doubles it, up to MaxCodeLockout, so guessing gets slower, not just
	// paced.
	CodeLockout time.Duration
	// OnChange, when set, is called after Check changed an account's
	// durable state by itself (a home country assigned at a first call),
	// outside any lock, so the daemon can persist it; changes made through
	// State's methods are the caller's to persist. It is called on the
	// decision path: keep it quick (hand the work to another goroutine).
	OnChange func(account string, d Durable)
}

// MaxCodeLockout caps the doubling lock-out of unblock code verification:
// past it, a guesser gets StateOptions.CodeAttempts tries a day.
const MaxCodeLockout = 24 * time.Hour

// DefaultCodeIterations is the PBKDF2-HMAC-SHA256 iteration count for
// unblock codes: about 30 ms per verification on a current core.
const DefaultCodeIterations = 100_000

// State is every account's mutable origin state: the last call (when,
// country, source IP), the home country assigned at the first call or set by
// the operator, the screening pass window, failed screenings, quarantine and
// the unblock code. Accounts are spread over 64 shards, each a hash table
// read without a lock (a mutex serialises only adding an account, once per
// account, and Prune). An account's fields are written under its own mutex
// and mirrored in a sequence lock that Check reads without taking any lock,
// so Check on a known account takes a lock only when it changes the
// account's state (a new last call, a pending screen, an assigned home),
// never to read it, and allocates nothing.
type State struct {
	shards [numShards]stateShard
	seed   maphash.Seed
	n      atomic.Int64
	o      StateOptions
	// realClock: o.Now is time.Now (none was given), so a check may take
	// the caller's reading of it (Input.Now).
	realClock bool

	passed, failed, quarantines, released atomic.Uint64
	verified, wrongCode, lockedOut        atomic.Uint64

	// fleet mode (fleet.go): the accounts whose location moved
	exporting atomic.Bool
	moved     atomic.Pointer[acct]
}

// Counters are the State's event counts since it was made, for metrics.
type Counters struct {
	ScreeningsPassed, ScreeningsFailed uint64
	Quarantines                        uint64 // accounts put in quarantine
	Releases                           uint64 // quarantines lifted by the operator
	CodesVerified, CodesWrong          uint64
	CodeLockouts                       uint64
	Accounts                           int // accounts with state now
}

// Counters reads the event counts.
func (s *State) Counters() Counters {
	return Counters{
		ScreeningsPassed: s.passed.Load(), ScreeningsFailed: s.failed.Load(), Quarantines: s.quarantines.Load(),
		Releases: s.released.Load(), CodesVerified: s.verified.Load(), CodesWrong: s.wrongCode.Load(),
		CodeLockouts: s.lockedOut.Load(), Accounts: s.Len(),
	}
}

type stateShard struct {
	// mu serialises the shard's writers (adding an account, Prune); the
	// table is read without it.
	mu sync.Mutex
	t  atomic.Pointer[table]
	_  [48]byte // keep shards on separate cache lines
}

type acct struct {
	// hot mirrors the fields Check reads, for its lock-free read (see
	// hotState); writers update the fields below under mu and then
	// publish. It comes first and is one cache line of its own (acct's
	// size is a multiple of 64 bytes, so Go's allocator places every acct
	// on a line boundary): a check that finds the account through a Ref
	// reads this one line.
	hot hotState

	key  string // the state key (immutable; in kb when it fits, see newAcct)
	hash uint64 // its hash (immutable)
	// kb holds a short key next to the fields a lookup reads, so comparing
	// it costs no cache miss of its own.
	kb [acctKeyInline]byte

	mu sync.Mutex
	// pubAt is the latest last-call time exported to the fleet (fleet
	// mode, see noteMove): written under mu, read without it by a check
	// that records a call without the lock (touch), so it sits here, on
	// the line after the hot state, not among export's fields.
	pubAt atomic.Int64

	// The last allowed call (or screened call whose screening then passed):
	// its country and when (hot.ccAt, unix nanoseconds, 0 for none), its
	// source address and when (hot.ipAt). They move separately because an
	// allowed call may have a source address but no known country; a
	// screened, failed or rejected call never moves them, so redialling
	// cannot clear a location-change screen. The two times live in the hot
	// state alone (read them with ccAt and ipAt): a check from the last
	// call's origin moves them without the account's lock (touch).
	lastIP netip.Addr
	// The last screened call's origin, made the last call if its
	// screening passes (pendAt 0: none).
	pendAt int64
	pendIP netip.Addr

	passUntil int64
	failed    int

	code       *CodeHash
	codeFails  int
	codeLocked int64 // unix nanoseconds until which verification is locked out
	lockouts   int   // lock-outs since the last right or new code (doubles the next)
	codeBusy   int   // verifications in flight

	export exportState // fleet mode (fleet.go)

	// the small fields together
	lastCC, pendCC cc
	home           cc // assigned at the first call, or set through the admin API
	homeAuto       bool
	quarantined    bool
}

// acctKeyInline is the longest key kept inside its acct.
const acctKeyInline = 24

// newAcct returns a new account state for key, which it copies (callers
// pass request memory): into the acct itself when it fits.
func newAcct(st *State, key string, h uint64) *acct {
	a := &acct{hash: h}
	a.hot.st = st
	if len(key) == 0 || len(key) > acctKeyInline {
		a.key = strings.Clone(key)
		return a
	}
	n := copy(a.kb[:], key)
	a.key = unsafe.String(&a.kb[0], n)
	return a
}

// hotState is a sequence lock over the account fields Check reads. A
// writer makes seq odd by a compare-and-swap from an even value (so two
// writers never overlap), stores, and makes it even again; Check reads
// seq, the fields, and seq again, and reads once more if a writer was in
// between. Check thus takes no lock and writes no shared memory to read an
// account. Two kinds of writer take the odd sequence: one holding acct.mu
// (lock, unlock), for as long as it holds the mutex, and a check that
// only moves the last call's times forward (touch), which takes it
// without the mutex, by a swap from the very sequence it read its view
// under, and so fails, and falls back to the mutex, if anything was
// written since. Every field is an atomic, so the race detector sees no
// race.
type hotState struct {
	seq atomic.Uint32
	// gone is set (under the account's lock) when Prune removes the
	// account from its table: a Ref that still points at it is stale.
	gone atomic.Uint32
	// ccAt and ipAt are the last call's times (acct's comment), and here
	// only: written with seq odd.
	ccAt, ipAt, passUntil atomic.Int64
	ipHi, ipLo            atomic.Uint64
	// meta packs lastCC (bits 0-15), home (16-31), failed (32-47),
	// quarantined (48) and the last address's kind (49-50: 0 none, 1
	// IPv4, 2 IPv6).
	meta atomic.Uint64
	st   *State // the State the account belongs to (immutable), for Ref
}

// hotView is a consistent copy of an account's hot fields.
type hotView struct {
	ccAt, ipAt, passUntil int64
	lastCC, home          cc
	failed                int
	quarantined           bool
	lastIP                netip.Addr
}

// acquire makes h's sequence odd, waiting for a writer that holds it
// without the account's mutex (touch: a few stores) to finish.
func (h *hotState) acquire() {
	for spins := 0; ; spins++ {
		if q := h.seq.Load(); q&1 == 0 && h.seq.CompareAndSwap(q, q+1) {
			return
		}
		if spins > 16 {
			runtime.Gosched()
		}
	}
}

// release makes h's sequence even again. The caller made it odd.
func (h *hotState) release() { h.seq.Add(1) }

// lock takes a's mutex and the write side of its sequence lock: every
// writer of the fields Check reads locks through it, and the last call's
// times (which a check may move without the mutex) hold still until
// unlock. A caller that only reads a's fields, or writes none that Check
// reads, takes a.mu alone.
func (a *acct) lock() {
	a.mu.Lock()
	a.hot.acquire()
}

// unlock publishes a's fields to its hot state and releases what lock took.
func (a *acct) unlock() {
	a.publish()
	a.hot.release()
	a.mu.Unlock()
}

// ccAt and ipAt are the last call's times (0: none). Any caller may read
// them; only a caller within lock and unlock may set them (setTimes).
func (a *acct) ccAt() int64 { return a.hot.ccAt.Load() }
func (a *acct) ipAt() int64 { return a.hot.ipAt.Load() }

// setCCAt and setIPAt set the last call's times. Caller holds lock.
func (a *acct) setCCAt(at int64) { a.hot.ccAt.Store(at) }
func (a *acct) setIPAt(at int64) { a.hot.ipAt.Store(at) }

// publish copies a's fields (but the times, which are stored in place) to
// its hot state. Caller holds lock.
func (a *acct) publish() {
	h := &a.hot
	meta := uint64(a.lastCC) | uint64(a.home)<<16 | uint64(uint16(a.failed))<<32
	if a.quarantined {
		meta |= 1 << 48
	}
	var hi, lo uint64
	switch {
	case a.lastIP.Is4():
		meta |= 1 << 49
		b := a.lastIP.As16()
		hi, lo = beUint64(b[:8]), beUint64(b[8:])
	case a.lastIP.Is6():
		meta |= 2 << 49
		b := a.lastIP.As16()
		hi, lo = beUint64(b[:8]), beUint64(b[8:])
	}
	h.passUntil.Store(a.passUntil)
	h.ipHi.Store(hi)
	h.ipLo.Store(lo)
	h.meta.Store(meta)
}

// touch records a call from the last call's country and address, read in
// a view under sequence q, without the account's lock: it moves the
// country's time (setCC) and the address's (setIP) to now, which is all
// that setLast would change. It reports false, having changed nothing, if
// anything was written since the view was read (or is being written):
// the caller then records under the lock, which sees the new state.
func (a *acct) touch(q uint32, now int64, setCC, setIP bool) bool {
	h := &a.hot
	if !h.seq.CompareAndSwap(q, q+1) {
		return false
	}
	if setCC {
		h.ccAt.Store(now)
	}
	if setIP {
		h.ipAt.Store(now)
	}
	h.seq.Store(q + 2)
	return true
}

// load reads a's hot fields without a lock (see hotState) and returns the
// sequence they were read under, for touch.
func (a *acct) load(v *hotView) uint32 {
	h := &a.hot
	for spins := 0; ; spins++ {
		q := h.seq.Load()
		if q&1 == 0 {
			v.ccAt, v.ipAt, v.passUntil = h.ccAt.Load(), h.ipAt.Load(), h.passUntil.Load()
			hi, lo, meta := h.ipHi.Load(), h.ipLo.Load(), h.meta.Load()
			if h.seq.Load() == q {
				v.lastCC, v.home = cc(meta), cc(meta>>16)
				v.failed, v.quarantined = int(uint16(meta>>32)), meta&(1<<48) != 0
				v.lastIP = netip.Addr{}
				if k := meta >> 49 & 3; k != 0 {
					var b [16]byte
					bePutUint64(b[:8], hi)
					bePutUint64(b[8:], lo)
					v.lastIP = netip.AddrFrom16(b)
					if k == 1 {
						v.lastIP = v.lastIP.Unmap()
					}
				}
				return q
			}
		}
		if spins > 16 {
			runtime.Gosched() // a writer was descheduled mid-update
		}
	}
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func bePutUint64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// table is one shard's accounts: open addressing with linear probing over
// atomic slots, so lookups take no lock. Slots are only ever filled
// (under the shard's mu); growing or pruning builds a new table and swaps
// it in, and a reader still on the old one sees a valid, older set.
//
// A slot keeps its account's hash beside the pointer, so a probe that
// passes over other accounts reads only the slot array, not each account
// (a cache miss apiece with many accounts): a lookup touches its slot's
// line, its own account and its key.
type table struct {
	slots []slot
	n     int // accounts in the table (written under the shard's mu)
}

// slot is one table entry: tag is 0 while the slot is free, else the
// account's hash with its low bit set (slotTag). put stores a before tag,
// so a reader that sees a tag also sees the account.
type slot struct {
	tag atomic.Uint64
	a   atomic.Pointer[acct]
}

func slotTag(h uint64) uint64 { return h | 1 }

const minTableSlots = 16

func newTable(n int) *table {
	size := minTableSlots
	for size*3 < n*4+4 {
		size *= 2
	}
	return &table{slots: make([]slot, size)}
}

func (t *table) find(h uint64, key string) *acct {
	mask := uint64(len(t.slots) - 1)
	tag := slotTag(h)
	for i := (h >> 6) & mask; ; i = (i + 1) & mask {
		switch t.slots[i].tag.Load() {
		case 0:
			return nil
		case tag:
			if a := t.slots[i].a.Load(); a.key == key {
				return a
			}
		}
	}
}

// put adds a (not in t); t has room. Caller holds the shard's mu.
func (t *table) put(a *acct) {
	mask := uint64(len(t.slots) - 1)
	for i := (a.hash >> 6) & mask; ; i = (i + 1) & mask {
		if t.slots[i].tag.Load() == 0 {
			t.slots[i].a.Store(a)
			t.slots[i].tag.Store(slotTag(a.hash))
			t.n++
			return
		}
	}
}

// each calls f for every account of t.
func (t *table) each(f func(a *acct)) {
	for i := range t.slots {
		if t.slots[i].tag.Load() != 0 {
			f(t.slots[i].a.Load())
		}
	}
}

// NewState returns an empty State.
func NewState(o StateOptions) *State {
	realClock := o.Now == nil
	if realClock {
		o.Now = time.Now
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = 1 << 20
	}
	if o.CodeIterations <= 0 {
		o.CodeIterations = DefaultCodeIterations
	}
	if o.CodeAttempts <= 0 {
		o.CodeAttempts = 5
	}
	if o.CodeLockout <= 0 {
		o.CodeLockout = 15 * time.Minute
	}
	s := &State{o: o, seed: maphash.MakeSeed(), realClock: realClock}
	for i := range s.shards {
		s.shards[i].t.Store(newTable(0))
	}
	return s
}

// SetOnChange sets StateOptions.OnChange; call it before the State is used.
func (s *State) SetOnChange(f func(account string, d Durable)) { s.o.OnChange = f }

// Now is the State's clock.
func (s *State) Now() time.Time { return s.o.Now() }

// Len is how many accounts have state.
func (s *State) Len() int { return int(s.n.Load()) }

func (s *State) hash(account string) uint64 { return maphash.String(s.seed, account) }

// get finds an account's state; nil when it has none. It takes no lock.
func (s *State) get(account string) *acct {
	h := s.hash(account)
	return s.shards[h%numShards].t.Load().find(h, account)
}

// Ref remembers where one state key's state lives, so that a caller
// checking the same key again and again (the matcher keeps one in each
// compiled account) finds it with one load instead of a hash and a probe
// of the table. The zero Ref is empty; a Ref must only ever be passed with
// the same state key (Input.Ref). It is filled and read atomically: one
// Ref may serve concurrent checks. A Ref whose account was pruned, or that
// belongs to another State, is looked up again and refilled.
type Ref struct {
	p unsafe.Pointer // *acct
}

// Prefetch starts loading the line of the account state r points at (a
// check of the account is coming), so that the cache miss overlaps with
// what the caller does first. It waits for nothing and changes nothing.
func (r *Ref) Prefetch() {
	if p := atomic.LoadPointer(&r.p); p != nil {
		prefetch(p)
	}
}

func (r *Ref) load() *acct   { return (*acct)(atomic.LoadPointer(&r.p)) }
func (r *Ref) store(a *acct) { atomic.StorePointer(&r.p, unsafe.Pointer(a)) }

// lookup finds an account's state, through ref when it holds a live
// account of s; create adds it when missing (getOrCreate, nil when the
// State is full). A found account is remembered in ref.
func (s *State) lookup(ref *Ref, account string, create bool) *acct {
	if ref != nil {
		if a := ref.load(); a != nil && a.hot.st == s && a.hot.gone.Load() == 0 {
			return a
		}
	}
	var a *acct
	if create {
		a = s.getOrCreate(account, false)
	} else {
		a = s.get(account)
	}
	if a != nil && ref != nil {
		ref.store(a)
	}
	return a
}

// getOrCreate finds or adds an account's state; nil when the State is full
// and force is false. The key is copied: callers pass request memory.
func (s *State) getOrCreate(account string, force bool) *acct {
	h := s.hash(account)
	sh := &s.shards[h%numShards]
	if a := sh.t.Load().find(h, account); a != nil {
		return a
	}
	if !force && s.n.Load() >= int64(s.o.MaxAccounts) {
		return nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.t.Load()
	if a := t.find(h, account); a != nil {
		return a
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		g := &table{slots: make([]slot, 2*len(t.slots))}
		t.each(g.put)
		sh.t.Store(g)
		t = g
	}
	a := newAcct(s, account, h)
	t.put(a)
	s.n.Add(1)
	return a
}

// Prune forgets the calling history of accounts whose last call is older
// than age and that hold nothing durable, and returns how many it removed.
func (s *State) Prune(age time.Duration) int {
	cut := s.o.Now().Add(-age).UnixNano()
	removed := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		t := sh.t.Load()
		var keep []*acct
		t.each(func(a *acct) {
			a.mu.Lock()
			idle := max(a.ccAt(), a.ipAt(), a.pendAt) < cut && a.durable(time.Time{}).zero() && a.codeBusy == 0
			if idle {
				a.hot.gone.Store(1) // Refs to it look it up again
			}
			a.mu.Unlock()
			if idle {
				removed++
				s.n.Add(-1)
			} else {
				keep = append(keep, a)
			}
		})
		if len(keep) < t.n {
			nt := newTable(len(keep))
			for _, a := range keep {
				nt.put(a)
			}
			sh.t.Store(nt)
		}
		sh.mu.Unlock()
	}
	return removed
}

// Durable is the part of an account's state worth keeping across restarts:
// operator-set or assigned home, the screening pass window, failed
// screenings, quarantine, the unblock code's hash and its lock-out (so a
// restart does not hand a guesser fresh attempts). Calling history is not:
// it only matters for minutes.
type Durable struct {
	Home        string    `json:"home,omitempty"`
	HomeAuto    bool      `json:"home_assigned,omitempty"` // assigned at a first call rather than set
	PassUntil   time.Time `json:"pass_until,omitzero"`
	Failed      int       `json:"failed_screenings,omitempty"`
	Quarantined bool      `json:"quarantined,omitempty"`
	UnblockCode string    `json:"unblock_code_hash,omitempty"` // CodeHash.String()
	// CodeLockedUntil is when a lock-out of code verification ends (zero
	// when none is in force) and CodeLockouts how many lock-outs there were
	// since the last right or new code.
	CodeLockedUntil time.Time `json:"unblock_code_locked_until,omitzero"`
	CodeLockouts    int       `json:"unblock_code_lockouts,omitempty"`
	// CodeFailures are the wrong codes since the last lock-out, right code
	// or new code: kept so a restart between guesses gives no fresh tries.
	CodeFailures int `json:"unblock_code_failures,omitempty"`
}

func (d Durable) zero() bool {
	return d.Home == "" && d.PassUntil.IsZero() && d.Failed == 0 && !d.Quarantined && d.UnblockCode == "" &&
		d.CodeLockedUntil.IsZero() && d.CodeLockouts == 0 && d.CodeFailures == 0
}

// durable reads a's durable part; a pass window that ended before now is
// left out. Caller holds a.mu.
func (a *acct) durable(now time.Time) Durable {
	d := Durable{Home: a.home.String(), HomeAuto: a.homeAuto && a.home != 0, Failed: a.failed, Quarantined: a.quarantined}
	if a.passUntil != 0 && a.passUntil > now.UnixNano() {
		d.PassUntil = time.Unix(0, a.passUntil).UTC()
	}
	if a.code != nil {
		d.UnblockCode = a.code.String()
		d.CodeLockouts, d.CodeFailures = a.lockouts, a.codeFails
		if a.codeLocked != 0 && a.codeLocked > now.UnixNano() {
			d.CodeLockedUntil = time.Unix(0, a.codeLocked).UTC()
		}
	}
	return d
}

// Durable returns one account's durable state (the zero Durable when it
// has none).
func (s *State) Durable(account string) Durable {
	a := s.get(account)
	if a == nil {
		return Durable{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.durable(s.o.Now())
}

// IsZero reports whether d holds nothing (the account's stored state can be
// deleted).
func (d Durable) IsZero() bool { return d.zero() }

// Export returns every account's durable state (accounts with nothing
// durable are left out), for persisting.
func (s *State) Export() map[string]Durable {
	now := s.o.Now()
	out := map[string]Durable{}
	for i := range s.shards {
		s.shards[i].t.Load().each(func(a *acct) {
			a.mu.Lock()
			d := a.durable(now)
			a.mu.Unlock()
			if !d.zero() {
				out[a.key] = d
			}
		})
	}
	return out
}

// Restore loads durable state (as Export returned it) into the State,
// replacing what these accounts had. Every entry is validated first: on any
// error nothing changes.
func (s *State) Restore(m map[string]Durable) error {
	type parsed struct {
		home cc
		code *CodeHash
	}
	ps := make(map[string]parsed, len(m))
	for k, d := range m {
		if err := ValidKey(k); err != nil {
			return fmt.Errorf("account %q: %w", k, err)
		}
		var p parsed
		if d.Home != "" {
			if p.home = packCC(d.Home); p.home == 0 || !validCountry(d.Home) {
				return fmt.Errorf("account %q: home: unknown country code %q", k, d.Home)
			}
		}
		if d.Failed < 0 || d.Failed > MaxFailedLimit {
			return fmt.Errorf("account %q: failed_screenings %d is outside 0..%d", k, d.Failed, MaxFailedLimit)
		}
		if d.CodeLockouts < 0 || d.CodeLockouts > maxLockouts {
			return fmt.Errorf("account %q: unblock_code_lockouts %d is outside 0..%d", k, d.CodeLockouts, maxLockouts)
		}
		if d.CodeFailures < 0 || d.CodeFailures > maxCodeFailures {
			return fmt.Errorf("account %q: unblock_code_failures %d is outside 0..%d", k, d.CodeFailures, maxCodeFailures)
		}
		if d.UnblockCode != "" {
			c, err := ParseCodeHash(d.UnblockCode)
			if err != nil {
				return fmt.Errorf("account %q: unblock_code_hash: %w", k, err)
			}
			p.code = c
		}
		ps[k] = p
	}
	for k, d := range m {
		a := s.getOrCreate(k, true)
		a.lock()
		a.home, a.homeAuto = ps[k].home, d.HomeAuto
		a.passUntil = 0
		if !d.PassUntil.IsZero() {
			a.passUntil = d.PassUntil.UnixNano()
		}
		a.failed, a.quarantined, a.code = d.Failed, d.Quarantined, ps[k].code
		a.codeLocked, a.lockouts, a.codeFails = 0, 0, 0
		if a.code != nil {
			// A count at or past today's limit (it was lowered) leaves one
			// more try before the lock-out, never a verification that is
			// refused with no lock-out to end it.
			a.lockouts, a.codeFails = d.CodeLockouts, min(d.CodeFailures, s.o.CodeAttempts-1)
			if !d.CodeLockedUntil.IsZero() {
				a.codeLocked = d.CodeLockedUntil.UnixNano()
			}
		}
		a.unlock()
	}
	return nil
}

// StateKey is the key of a scope's origin state: the account's name, or
// "account/subaccount" for a subaccount with origin settings of its own
// (which has its own calling history, home, screening and quarantine).
func StateKey(account, sub string) string {
	if sub == "" {
		return account
	}
	return account + "/" + sub
}

// ValidKey checks a state key as StateKey makes them.
func ValidKey(k string) error {
	if i := strings.IndexByte(k, '/'); i >= 0 {
		if err := policy.ValidName(k[:i]); err != nil {
			return err
		}
		if err := policy.ValidName(k[i+1:]); err != nil {
			return fmt.Errorf("subaccount: %w", err)
		}
		return nil
	}
	return policy.ValidName(k)
}

func validCountry(code string) bool {
	_, ok := policy.LookupCountry(code)
	return ok && code != policy.NonGeographic
}

// Status is an account's origin state, for the admin API.
type Status struct {
	Home         string `json:"home,omitempty"`
	HomeAssigned bool   `json:"home_assigned,omitempty"`
	// HomeSource says where Home comes from: HomeFromPolicy (the policy's
	// home_origin, which wins), HomeFromAPI (set through the admin API) or
	// HomeFromCall (assigned at a first call); "" without a home.
	HomeSource string `json:"home_source,omitempty"`
	// StateHome is the home the state holds when the policy's differs and
	// wins (it applies again once the policy's home_origin is cleared).
	StateHome       string    `json:"state_home,omitempty"`
	LastCountry     string    `json:"last_country,omitempty"`
	LastCallAt      time.Time `json:"last_call_at,omitzero"`
	PassUntil       time.Time `json:"pass_until,omitzero"`
	FailedScreens   int       `json:"failed_screenings"`
	Quarantined     bool      `json:"quarantined"`
	HasUnblockCode  bool      `json:"has_unblock_code"`
	CodeLockedUntil time.Time `json:"unblock_code_locked_until,omitzero"`
}

// Status reports an account's state (the zero Status when it has none).
func (s *State) Status(account string) Status {
	a := s.get(account)
	if a == nil {
		return Status{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status(s.o.Now().UnixNano())
}

// Where a Status's home comes from.
const (
	HomeFromPolicy = "policy"
	HomeFromAPI    = "set"
	HomeFromCall   = "assigned"
)

// InForce is the status with the home the rules' policy sets, when they
// set one: that home is the one calls are checked against.
func (st Status) InForce(r *Rules) Status {
	if r == nil || r.home == 0 {
		return st
	}
	if st.Home != r.home.String() {
		st.StateHome = st.Home
	}
	st.Home, st.HomeAssigned, st.HomeSource = r.home.String(), false, HomeFromPolicy
	return st
}

func (a *acct) status(now int64) Status {
	st := Status{
		Home: a.home.String(), HomeAssigned: a.homeAuto && a.home != 0,
		LastCountry: a.lastCC.String(), FailedScreens: a.failed, Quarantined: a.quarantined,
		HasUnblockCode: a.code != nil,
	}
	if a.home != 0 {
		st.HomeSource = HomeFromAPI
		if a.homeAuto {
			st.HomeSource = HomeFromCall
		}
	}
	if at := max(a.ccAt(), a.ipAt()); at != 0 {
		st.LastCallAt = time.Unix(0, at).UTC()
	}
	if a.passUntil > now {
		st.PassUntil = time.Unix(0, a.passUntil).UTC()
	}
	if a.codeLocked > now {
		st.CodeLockedUntil = time.Unix(0, a.codeLocked).UTC()
	}
	return st
}

// update runs f on an account's state (created if needed) under its lock.
func (s *State) update(account string, f func(a *acct, now int64) error) (Status, error) {
	if err := ValidKey(account); err != nil {
		return Status{}, fmt.Errorf("account: %w", err)
	}
	now := s.o.Now()
	a := s.getOrCreate(account, true)
	a.lock()
	err := f(a, now.UnixNano())
	st := a.status(now.UnixNano())
	a.unlock()
	return st, err
}

// ScreeningPassed records that the account passed the screening IVR: it may
// call normally (no screening) for the rules' pass period, and its failed
// count starts again. Quarantine is not lifted: that takes the unblock code
// or the operator (Release).
func (s *State) ScreeningPassed(account string, r *Rules) (Status, error) {
	pass := int64(DefaultPassMin) * 60e9
	if r != nil {
		pass = r.passNanos
	}
	s.passed.Add(1)
	return s.update(account, func(a *acct, now int64) error {
		a.passUntil = now + pass
		a.failed = 0
		a.promote(now)
		s.noteMove(a)
		return nil
	})
}

// ScreeningFailed records a failed screening; the rules' MaxFailed failures
// in a row quarantine the account (only domestic and emergency calls). Any
// pass window still open is closed.
func (s *State) ScreeningFailed(account string, r *Rules) (Status, error) {
	maxFailed := DefaultMaxFailed
	if r != nil {
		maxFailed = r.maxFailed
	}
	s.failed.Add(1)
	return s.update(account, func(a *acct, now int64) error {
		a.passUntil = 0
		a.pendAt, a.pendCC, a.pendIP = 0, 0, netip.Addr{} // never the last call
		if a.failed < MaxFailedLimit {
			a.failed++
		}
		if a.failed >= maxFailed && !a.quarantined {
			a.quarantined = true
			s.quarantines.Add(1)
		}
		return nil
	})
}

// promote makes the last screened call, whose screening just passed, the
// account's last call (at now: the location was confirmed now). Caller
// holds a.mu.
func (a *acct) promote(now int64) {
	if a.pendAt == 0 {
		return
	}
	if a.pendCC != 0 {
		a.lastCC = a.pendCC
		a.setCCAt(now)
	}
	if a.pendIP.IsValid() {
		a.lastIP = a.pendIP
		a.setIPAt(now)
	}
	a.pendAt, a.pendCC, a.pendIP = 0, 0, netip.Addr{}
}

// Release lifts an account's quarantine and clears its failed screenings.
func (s *State) Release(account string) (Status, error) {
	return s.update(account, func(a *acct, now int64) error {
		if a.quarantined {
			s.released.Add(1)
		}
		a.quarantined, a.failed = false, 0
		return nil
	})
}

// SetHome sets the account's home country (an ISO code), as the operator
// does; the policy's home_origin, when set, still takes precedence.
func (s *State) SetHome(account, country string) (Status, error) {
	up := strings.ToUpper(strings.TrimSpace(country))
	if !validCountry(up) {
		return Status{}, &FieldError{Field: "country", Msg: fmt.Sprintf("unknown country code %q", country)}
	}
	return s.update(account, func(a *acct, now int64) error {
		a.home, a.homeAuto = packCC(up), false
		return nil
	})
}

// ClearHome forgets the account's set or assigned home country, so the next
// call from an allowed country may assign it again.
func (s *State) ClearHome(account string) (Status, error) {
	return s.update(account, func(a *acct, now int64) error {
		a.home, a.homeAuto = 0, false
		return nil
	})
}

// Errors of the unblock code.
var (
	ErrNoCode     = errors.New("the account has no unblock code")
	ErrWrongCode  = errors.New("wrong unblock code")
	ErrCodeLocked = errors.New("too many wrong unblock codes: verification is locked out for now")
)

// Unblock codes are what a caller keys in on the IVR: digits only.
const (
	MinCodeLen = 4
	MaxCodeLen = 16
)

// ValidCode reports whether code can be an unblock code.
func ValidCode(code string) error {
	if len(code) < MinCodeLen || len(code) > MaxCodeLen {
		return fmt.Errorf("an unblock code has %d to %d digits", MinCodeLen, MaxCodeLen)
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return errors.New("an unblock code has digits only (it is keyed in on a phone)")
		}
	}
	return nil
}

// SetUnblockCode stores a new unblock code for the account, hashed (see
// CodeHash); it clears the lock-out and the wrong-code count.
func (s *State) SetUnblockCode(account, code string) (Status, error) {
	if err := ValidCode(code); err != nil {
		return Status{}, &FieldError{Field: "code", Msg: err.Error()}
	}
	h, err := HashCode(code, s.o.CodeIterations)
	if err != nil {
		return Status{}, err
	}
	return s.update(account, func(a *acct, now int64) error {
		a.code, a.codeFails, a.codeLocked, a.lockouts = h, 0, 0, 0
		return nil
	})
}

// ClearUnblockCode removes the account's unblock code.
func (s *State) ClearUnblockCode(account string) (Status, error) {
	return s.update(account, func(a *acct, now int64) error {
		a.code, a.codeFails, a.codeLocked, a.lockouts = nil, 0, 0, 0
		return nil
	})
}

// VerifyUnblockCode checks a code keyed in on the IVR. A right code counts as
// a passed screening and lifts quarantine. Wrong codes are counted; the
// State's CodeAttempts wrong codes in a row lock verification out for
// CodeLockout, doubled for each lock-out since the last right or new code
// (up to MaxCodeLockout), during which even the right code is refused
// (ErrCodeLocked).
// The hash is computed outside the account's lock, and codes in flight
// count against the limit, so parallel guesses gain nothing.
func (s *State) VerifyUnblockCode(account string, r *Rules, code string) (Status, error) {
	if err := ValidKey(account); err != nil {
		return Status{}, fmt.Errorf("account: %w", err)
	}
	a := s.get(account)
	if a == nil {
		return Status{}, ErrNoCode
	}
	now := s.o.Now().UnixNano()
	a.mu.Lock()
	switch {
	case a.code == nil:
		a.mu.Unlock()
		return a.lockedStatus(now), ErrNoCode
	case a.codeLocked > now:
		a.mu.Unlock()
		return a.lockedStatus(now), ErrCodeLocked
	case a.codeFails+a.codeBusy >= s.o.CodeAttempts:
		a.mu.Unlock()
		return a.lockedStatus(now), ErrCodeLocked
	}
	h := a.code
	a.codeBusy++
	a.mu.Unlock()

	ok := ValidCode(code) == nil && h.Match(code)

	_, err := s.update(account, func(a *acct, now int64) error {
		a.codeBusy--
		if a.code != h { // replaced meanwhile: this attempt is void
			return ErrWrongCode
		}
		if !ok {
			a.codeFails++
			s.wrongCode.Add(1)
			if a.codeFails >= s.o.CodeAttempts {
				a.codeLocked = now + int64(lockoutFor(s.o.CodeLockout, a.lockouts))
				a.codeFails = 0
				if a.lockouts < maxLockouts {
					a.lockouts++
				}
				s.lockedOut.Add(1)
			}
			return ErrWrongCode
		}
		a.codeFails, a.lockouts = 0, 0
		s.verified.Add(1)
		pass := int64(DefaultPassMin) * 60e9
		if r != nil {
			pass = r.passNanos
		}
		a.passUntil = now + pass
		a.failed, a.quarantined = 0, false
		a.promote(now)
		s.noteMove(a)
		return nil
	})
	st := s.Status(account)
	if err == ErrWrongCode && !st.CodeLockedUntil.IsZero() {
		return st, ErrCodeLocked
	}
	return st, err
}

// maxLockouts bounds the stored lock-out count (the doubling has long hit
// MaxCodeLockout by then), maxCodeFailures the stored wrong-code count.
const (
	maxLockouts     = 64
	maxCodeFailures = 1000
)

// lockoutFor is the lock-out after n earlier ones: base doubled n times, at
// most MaxCodeLockout (and never less than base).
func lockoutFor(base time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < MaxCodeLockout; i++ {
		d *= 2
	}
	return max(base, min(d, MaxCodeLockout))
}

func (a *acct) lockedStatus(now int64) Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status(now)
}

// CodeHash is a stored unblock code: PBKDF2-HMAC-SHA256 (crypto/pbkdf2,
// RFC 8018) of the code with a random 16-byte per-account salt, compared in
// constant time. Its text form is
//
//	pbkdf2-sha256$<iterations>$<salt, base64>$<key, base64>
//
// (standard base64 without padding), so the parameters travel with the hash
// and can be raised later without invalidating stored codes.
type CodeHash struct {
	iter int
	salt []byte
	key  []byte
}

const (
	codeHashScheme = "pbkdf2-sha256"
	codeSaltLen    = 16
	codeKeyLen     = 32
	minCodeIter    = 1000
	maxCodeIter    = 10_000_000
)

// HashCode hashes a code with a fresh random salt.
func HashCode(code string, iter int) (*CodeHash, error) {
	if iter < minCodeIter || iter > maxCodeIter {
		return nil, fmt.Errorf("PBKDF2 iterations %d outside %d..%d", iter, minCodeIter, maxCodeIter)
	}
	salt := make([]byte, codeSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(sha256.New, code, salt, iter, codeKeyLen)
	if err != nil {
		return nil, err
	}
	return &CodeHash{iter: iter, salt: salt, key: key}, nil
}

// Match reports, in constant time over the derived key, whether code is the
// hashed one.
func (h *CodeHash) Match(code string) bool {
	key, err := pbkdf2.Key(sha256.New, code, h.salt, h.iter, len(h.key))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// String is the hash's text form.
func (h *CodeHash) String() string {
	e := base64.RawStdEncoding
	return codeHashScheme + "$" + strconv.Itoa(h.iter) + "$" + e.EncodeToString(h.salt) + "$" + e.EncodeToString(h.key)
}

// ParseCodeHash reads a hash's text form.
func ParseCodeHash(s string) (*CodeHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != codeHashScheme {
		return nil, fmt.Errorf("not a %s$<iterations>$<salt>$<key> hash", codeHashScheme)
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < minCodeIter || iter > maxCodeIter || parts[1] != strconv.Itoa(iter) {
		return nil, fmt.Errorf("iterations %q outside %d..%d", parts[1], minCodeIter, maxCodeIter)
	}
	e := base64.RawStdEncoding.Strict()
	salt, err := e.DecodeString(parts[2])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return nil, errors.New("salt is not 8 to 64 bytes of unpadded base64")
	}
	key, err := e.DecodeString(parts[3])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return nil, errors.New("key is not 16 to 64 bytes of unpadded base64")
	}
	return &CodeHash{iter: iter, salt: salt, key: key}, nil
}
