package origin

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Fleet mode (package fleet) shares each account's location history, the
// last call's country and source address and when, so that a caller who
// lands on another proxy is judged against where it last called from, not
// from a clean slate. The durable part (home, screenings, quarantine,
// unblock-code failures and lock-outs) travels with the fleet's policy
// records; this is the part that changes with every call. An account's
// location is exported when its country or address changes, or when its
// time is LocationRefresh older than what was last exported; receivers keep
// the newer of theirs and the fleet's (MergeLocation), so a repeated or
// late message changes nothing.

// LocationRefresh is how much older than the last call the exported time
// of an unchanged location may be: the fleet's location-change periods can
// end this much early on other nodes.
const LocationRefresh = 30 * time.Second

// MaxLocationSkew is how far ahead of this node's clock a shared location's
// time may be; a later one is refused (a clock that far off, or a forged
// message, would pin the history).
const MaxLocationSkew = time.Minute

// Location is an account's last call as the fleet shares it.
type Location struct {
	Account   string    `json:"account"`
	Country   string    `json:"country,omitempty"`
	CountryAt time.Time `json:"country_at,omitzero"`
	IP        string    `json:"ip,omitempty"`
	IPAt      time.Time `json:"ip_at,omitzero"`
}

// exportState is an account's fleet export bookkeeping (under a.mu except
// the atomics).
type exportState struct {
	pubCC  cc
	pubIP  netip.Addr // (the max of the exported times is acct.pubAt)
	queued atomic.Bool
	next   atomic.Pointer[acct]
}

// EnableExport has Check note the accounts whose location the fleet must
// learn; call it before the State is used.
func (s *State) EnableExport() { s.exporting.Store(true) }

// noteMove queues a for ExportLocations when its location changed or its
// time moved on by LocationRefresh. Caller holds a.mu; lock- and
// allocation-free. Once it ran, the exported country and address are the
// last call's (until the last call moves again, which runs it again):
// what lets a check that finds the same country and address, less than
// LocationRefresh after a.pubAt, record its call without it (touch).
func (s *State) noteMove(a *acct) {
	if !s.exporting.Load() {
		return
	}
	x := &a.export
	at := max(a.ccAt(), a.ipAt())
	if a.lastCC == x.pubCC && a.lastIP == x.pubIP && at-a.pubAt.Load() < int64(LocationRefresh) {
		return
	}
	x.pubCC, x.pubIP = a.lastCC, a.lastIP
	a.pubAt.Store(at)
	if x.queued.Load() || !x.queued.CompareAndSwap(false, true) {
		return
	}
	for {
		head := s.moved.Load()
		x.next.Store(head)
		if s.moved.CompareAndSwap(head, a) {
			return
		}
	}
}

// ExportLocations calls f with the location of every account queued since
// the last call.
func (s *State) ExportLocations(f func(Location)) {
	for a := s.moved.Swap(nil); a != nil; {
		next := a.export.next.Load()
		a.export.next.Store(nil)
		a.export.queued.Store(false)
		a.mu.Lock()
		l := Location{Account: a.key}
		if at := a.ccAt(); at != 0 {
			l.Country, l.CountryAt = a.lastCC.String(), time.Unix(0, at).UTC()
		}
		if at := a.ipAt(); at != 0 && a.lastIP.IsValid() {
			l.IP, l.IPAt = a.lastIP.String(), time.Unix(0, at).UTC()
		}
		a.mu.Unlock()
		f(l)
		a = next
	}
}

// MergeLocation takes the fleet's word on an account's last call where it
// is newer than this node's. Bad fields are an error naming the field, and
// nothing is changed.
func (s *State) MergeLocation(l Location) error {
	if l.Account == "" {
		return fmt.Errorf("account: empty")
	}
	c := packCC(l.Country)
	if l.Country != "" && c == 0 {
		return fmt.Errorf("country: %q is not an ISO 3166 code", l.Country)
	}
	var ip netip.Addr
	if l.IP != "" {
		var err error
		if ip, err = netip.ParseAddr(l.IP); err != nil {
			return fmt.Errorf("ip: %w", err)
		}
	}
	// a time ahead of this node's clock by more than any sane skew would
	// pin the history: refused
	if lim := s.o.Now().Add(MaxLocationSkew); l.CountryAt.After(lim) || l.IPAt.After(lim) {
		return fmt.Errorf("country_at/ip_at: more than %v ahead of this node's clock", MaxLocationSkew)
	}
	a := s.getOrCreate(l.Account, false)
	if a == nil {
		return nil // full: as for a call, no history
	}
	a.lock()
	defer a.unlock() // republishes the fields Check reads (hotState)
	if c != 0 && !l.CountryAt.IsZero() && l.CountryAt.UnixNano() > a.ccAt() {
		a.lastCC = c
		a.setCCAt(l.CountryAt.UnixNano())
	}
	if ip.IsValid() && !l.IPAt.IsZero() && l.IPAt.UnixNano() > a.ipAt() {
		a.lastIP = ip
		a.setIPAt(l.IPAt.UnixNano())
	}
	// what the fleet said need not be said back
	x := &a.export
	x.pubCC, x.pubIP = a.lastCC, a.lastIP
	a.pubAt.Store(max(a.ccAt(), a.ipAt(), a.pubAt.Load()))
	return nil
}
