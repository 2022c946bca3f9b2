package policy

import (
	"strings"
	"unsafe"
)

// A Slab copies decoded accounts into a few large allocations: their
// strings, the values their pointer fields point to, their lists. A
// decoded account is a few dozen objects of 8 to 48 bytes, allocated
// among the decoder's garbage; 100,000 of them kept as decoded pin most
// of the heap spans the garbage leaves (start-up left 19 MB of such holes
// after loading the store). Copied into a slab, the account's objects sit
// in chunks of their own and the decoded ones die with the garbage.
//
// A copy is a deep copy as Clone makes one: it shares nothing mutable with
// the account given nor with any other copy (every pointer field gets a
// slot of its own, every list a capacity of its length, so an append
// reallocates); only strings, which are immutable, are shared. A chunk
// lives while any copy in it does: replacing an account leaves its slots
// in place, so what a slab holds is bounded by what was copied into it.
// The zero Slab is ready to use; a Slab is not safe for concurrent use.
type Slab struct {
	strs   []string
	ints   []int
	floats []float64
	rules  []CountryRule
	lists  [][]string
	bytes  []byte
	intern map[string]string
}

// slabChunk is how many elements a chunk of each kind holds.
const slabChunk = 4096

// maxInterned bounds the strings the slab interns: past it, strings are
// copied (still into chunks), so a set of distinct values cannot grow the
// table without bound.
const maxInterned = 1 << 16

func take[T any](pool *[]T, n int) []T {
	if len(*pool) < n {
		*pool = make([]T, max(slabChunk, n))
	}
	s := (*pool)[:n:n]
	*pool = (*pool)[n:]
	return s
}

// String returns s copied into the slab (or the copy made already).
func (sl *Slab) String(s string) string {
	if s == "" {
		return ""
	}
	if c, ok := sl.intern[s]; ok {
		return c
	}
	c := sl.Copy(s)
	if sl.intern == nil {
		sl.intern = make(map[string]string)
	}
	if len(sl.intern) < maxInterned {
		sl.intern[c] = c
	}
	return c
}

func (sl *Slab) strPtr(p *string) *string {
	if p == nil {
		return nil
	}
	s := take(&sl.strs, 1)
	s[0] = sl.String(*p)
	return &s[0]
}

func (sl *Slab) intPtr(p *int) *int {
	if p == nil {
		return nil
	}
	s := take(&sl.ints, 1)
	s[0] = *p
	return &s[0]
}

func (sl *Slab) floatPtr(p *float64) *float64 {
	if p == nil {
		return nil
	}
	s := take(&sl.floats, 1)
	s[0] = *p
	return &s[0]
}

// list copies l keeping nil and empty apart.
func (sl *Slab) list(l []string) []string {
	if l == nil {
		return nil
	}
	if len(l) == 0 {
		return []string{}
	}
	out := take(&sl.strs, len(l))
	for i, v := range l {
		out[i] = sl.String(v)
	}
	return out
}

func (sl *Slab) listPtr(p *[]string) *[]string {
	if p == nil {
		return nil
	}
	s := take(&sl.lists, 1)
	s[0] = sl.list(*p)
	return &s[0]
}

// Policy returns a deep copy of p whose parts are in the slab (velocity
// and origin settings, rare and nested, are cloned as Clone does).
func (sl *Slab) Policy(p Policy) Policy {
	out := p
	out.HomeCountry = sl.strPtr(p.HomeCountry)
	if p.Countries != nil {
		r := take(&sl.rules, 1)
		r[0] = CountryRule{Default: sl.String(p.Countries.Default), Except: sl.list(p.Countries.Except)}
		out.Countries = &r[0]
	}
	out.HighRisk = sl.strPtr(p.HighRisk)
	out.AllowPrefixes = sl.listPtr(p.AllowPrefixes)
	out.BlockPrefixes = sl.listPtr(p.BlockPrefixes)
	out.MaxChannels = sl.intPtr(p.MaxChannels)
	out.MaxCPS = sl.intPtr(p.MaxCPS)
	out.TimeZone = sl.strPtr(p.TimeZone)
	out.MaxDestinationRate = sl.floatPtr(p.MaxDestinationRate)
	out.Velocity = p.Velocity.Clone()
	out.Origin = p.Origin.Clone()
	return out
}

// Account returns a deep copy of a whose parts are in the slab.
func (sl *Slab) Account(a Account) Account {
	out := a
	out.Template = sl.String(a.Template)
	out.UnknownSubaccounts = sl.String(a.UnknownSubaccounts)
	out.Policy = sl.Policy(a.Policy)
	out.Tags = sl.list(a.Tags)
	if a.Subaccounts != nil {
		out.Subaccounts = make(map[string]Policy, len(a.Subaccounts))
		for k, v := range a.Subaccounts {
			out.Subaccounts[sl.String(k)] = sl.Policy(v)
		}
	}
	return out
}

// Copy returns a copy of s in the slab, not interned: for values that
// seldom repeat (a high-risk list's prefixes).
func (sl *Slab) Copy(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > 256 {
		return strings.Clone(s)
	}
	if len(sl.bytes) < len(s) {
		sl.bytes = make([]byte, 64<<10)
	}
	n := copy(sl.bytes, s)
	c := unsafe.String(&sl.bytes[0], n)
	sl.bytes = sl.bytes[n:]
	return c
}

// Adopt moves a, an account fresh from a decoder that nothing else
// refers to, into the slab: as Account, but its subaccounts map is kept
// (cleared and filled again) rather than copied, since a map the size of
// the decoded one, made among the decoder's garbage, is as likely to pin a
// span as the decoded one.
func (sl *Slab) Adopt(a Account) Account {
	subs := a.Subaccounts
	a.Subaccounts = nil
	out := sl.Account(a)
	if subs != nil {
		type kv struct {
			k string
			v Policy
		}
		var buf [8]kv
		l := buf[:0]
		for k, v := range subs {
			l = append(l, kv{sl.String(k), sl.Policy(v)})
		}
		clear(subs)
		for _, e := range l {
			subs[e.k] = e.v
		}
		out.Subaccounts = subs
	}
	return out
}
