package matcher

import (
	"fmt"
	"maps"
	"math/rand"
	"strconv"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/cow"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// decisions decides every query against snap and returns what each
// decision said, as a comparable line.
func decisions(snap *Snapshot, qs []Query) []string {
	m := New(snap.plan, Options{SlowCacheBytes: 1})
	m.Swap(snap)
	out := make([]string, len(qs))
	for i := range qs {
		v := m.Decide(&qs[i])
		out[i] = fmt.Sprintf("%s/%s %s %s ch=%d cps=%d", qs[i].Account, qs[i].Subaccount, v.Action, v.RuleString(), v.MaxChannels, v.MaxCPS)
	}
	return out
}

// randomAccount is one of a few account shapes, with or without
// subaccounts, so a change moves prefix and subaccount counts both ways.
func randomAccount(r *rand.Rand) *policy.Account {
	homes := []string{"US", "GB", "DE", "FR"}
	a := &policy.Account{Policy: policy.Policy{HomeCountry: sp(homes[r.Intn(len(homes))]), MaxChannels: ip(1 + r.Intn(100))}}
	switch r.Intn(4) {
	case 0:
		a.Countries = &policy.CountryRule{Default: policy.Deny, Except: []string{"continent:EU"}}
	case 1:
		a.Countries = &policy.CountryRule{Default: policy.Allow, Except: []string{"CU", "region:melanesia"}}
	case 2:
		a.BlockPrefixes = lp("+4420", "+49")
		a.HighRisk = sp(policy.HighRiskAllow)
	}
	if r.Intn(3) == 0 {
		a.Subaccounts = map[string]policy.Policy{"sub": {Countries: &policy.CountryRule{Default: policy.Deny}, AllowPrefixes: lp("+33")}}
	}
	return a
}

// TestWithAccountsSharesAndPreserves makes a run of account writes with
// WithAccounts (replace, add, delete, several at once) and checks after
// each that (1) every earlier snapshot still decides exactly as it did when
// it was made — a write into a shard an earlier snapshot shares fails
// here, and under -race a reader of the previous snapshot races with it —
// (2) the new snapshot decides and counts exactly as a full Compile of the
// same set, and (3) only the shards of the changed accounts were copied.
func TestWithAccountsSharesAndPreserves(t *testing.T) {
	plan := numplan.Default()
	set := synthSet(2000, 500, 3)
	snap, err := Compile(set, plan)
	if err != nil {
		t.Fatal(err)
	}
	accounts := maps.Clone(set.Accounts)
	r := rand.New(rand.NewSource(4))
	numbers := []string{"+442071234567", "+4930123456", "+5371234567", "+33123456789", "+16175551234", "+6755551234", "+88216123456"}
	var qs []Query
	for i := 0; i < 2100; i += 7 { // some accounts the writes will add
		for _, to := range numbers {
			qs = append(qs, Query{To: to, Account: "acct-" + strconv.Itoa(i)}, Query{To: to, Account: "acct-" + strconv.Itoa(i), Subaccount: "sub"})
		}
	}
	type version struct {
		snap *Snapshot
		want []string
	}
	history := []version{{snap, decisions(snap, qs)}}

	for step := 0; step < 12; step++ {
		prev := history[len(history)-1].snap
		// A reader keeps deciding against the previous snapshot while the
		// next one is built, as the query path does.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := New(plan, Options{SlowCacheBytes: 1})
			m.Swap(prev)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m.Decide(&qs[i%len(qs)])
			}
		}()
		changes := map[string]*policy.Account{}
		for k := 1 + r.Intn(3); k > 0; k-- {
			name := "acct-" + strconv.Itoa(r.Intn(2100))
			if r.Intn(4) == 0 {
				changes[name] = nil
				delete(accounts, name)
				continue
			}
			a := randomAccount(r)
			changes[name] = a
			accounts[name] = *a
		}
		next, err := prev.WithAccounts(changes)
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}

		for i, h := range history {
			if got := decisions(h.snap, qs); !equalLines(got, h.want) {
				t.Fatalf("step %d: snapshot %d no longer decides as it did: %s", step, i, firstDiff(got, h.want))
			}
		}
		full, err := Compile(&policy.Set{Operator: set.Operator, HighRisk: set.HighRisk, Accounts: maps.Clone(accounts)}, plan)
		if err != nil {
			t.Fatal(err)
		}
		got := decisions(next, qs)
		if want := decisions(full, qs); !equalLines(got, want) {
			t.Fatalf("step %d: incremental and full compile differ: %s", step, firstDiff(got, want))
		}
		gs, fs := next.Stats(), full.Stats()
		gs.BuiltAt, gs.BuildTime, fs.BuildTime = fs.BuiltAt, 0, 0
		if gs != fs {
			t.Fatalf("step %d: stats %+v, full compile %+v", step, gs, fs)
		}
		for name := range accounts {
			_, changed := changes[name]
			touched := changed
			for c := range changes {
				if cow.ShardOf(c) == cow.ShardOf(name) {
					touched = true
				}
			}
			if shares := prev.accounts.SharesShard(next.accounts, name); shares == touched {
				t.Fatalf("step %d: %s: shard shared %v, want %v", step, name, shares, !touched)
			}
			if !touched && prev.acct(name) != next.acct(name) {
				t.Fatalf("step %d: untouched account %s recompiled", step, name)
			}
		}
		if next.highRisk != prev.highRisk || next.deflt != prev.deflt {
			t.Fatalf("step %d: the high-risk list or the default was rebuilt", step)
		}
		history = append(history, version{next, got})
	}

	// A bad account is refused whole: nothing of the change applies.
	last := history[len(history)-1].snap
	if _, err := last.WithAccounts(map[string]*policy.Account{"acct-1": randomAccount(r), "bad": {Policy: policy.Policy{HomeCountry: sp("XX")}}}); err == nil {
		t.Error("bad account accepted by WithAccounts")
	}
	if _, err := last.WithAccounts(map[string]*policy.Account{"no/slash": {}}); err == nil {
		t.Error("bad name accepted by WithAccounts")
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func firstDiff(got, want []string) string {
	for i := range got {
		if i < len(want) && got[i] != want[i] {
			return fmt.Sprintf("query %d: %q, want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(got), len(want))
}

// WithAccounts keeps OriginNeedsGeo as a full compile has it: on when an
// account with a geo profile arrives, off once the last one goes.
func TestWithAccountsOriginNeedsGeo(t *testing.T) {
	set := originSet()
	delete(set.Accounts, "geo")
	snap, err := Compile(set, numplan.Default())
	if err != nil {
		t.Fatal(err)
	}
	if snap.OriginNeedsGeo() {
		t.Fatal("no geo profile in use, yet the snapshot needs Geo-IP")
	}
	geo := &policy.Account{Policy: policy.Policy{HomeCountry: sp("GB"), Origin: &policy.Origin{GeoProfile: sp("std")}}}
	on, err := snap.WithAccounts(map[string]*policy.Account{"geo": geo})
	if err != nil || !on.OriginNeedsGeo() {
		t.Fatalf("account with a geo profile added: %v, needs Geo-IP %v", err, on.OriginNeedsGeo())
	}
	twice, _ := on.WithAccounts(map[string]*policy.Account{"geo": geo, "geo2": geo})
	one, _ := twice.WithAccounts(map[string]*policy.Account{"geo": nil})
	off, _ := one.WithAccounts(map[string]*policy.Account{"geo2": {}})
	if !twice.OriginNeedsGeo() || !one.OriginNeedsGeo() || off.OriginNeedsGeo() || snap.OriginNeedsGeo() {
		t.Errorf("needs Geo-IP: two %v, one %v, none %v, first snapshot %v", twice.OriginNeedsGeo(), one.OriginNeedsGeo(), off.OriginNeedsGeo(), snap.OriginNeedsGeo())
	}
}
