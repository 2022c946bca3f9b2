package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/store"
)

// ErrNotEmpty refuses to seed a bucket that already holds a policy: the
// fleet's policy is never overwritten by accident.
var ErrNotEmpty = errors.New("the fleet policy bucket is not empty")

// SeedResult says what Seed wrote.
type SeedResult struct {
	Records    int // records written
	Tombstones int // records of the bucket the file does not hold, deleted (force)
	Revision   uint64
}

// Seed loads the fleet's policy bucket from one node's data file (opened
// read-only: stop that tollgate first, or copy its data dir): accounts,
// operator settings, the stored high-risk list and rate deck, locks and
// origin state, then the meta.seeded record every node waits for before
// it takes policy writes. A bucket that holds any key is refused with
// ErrNotEmpty unless force is set; with force every record is replaced
// and the bucket's records the file does not hold are deleted.
func Seed(ctx context.Context, c *Conn, st *store.Store, from string, force bool) (SeedResult, error) {
	var res SeedResult
	p := &Policy{c: c}
	if err := p.bind(ctx); err != nil {
		return res, err
	}
	existing := map[string]bool{}
	if keys, err := p.kv.ListKeys(ctx); err == nil {
		for k := range keys.Keys() {
			existing[k] = true
		}
	} else if !errors.Is(err, jetstream.ErrNoKeysFound) {
		return res, err
	}
	if len(existing) > 0 && !force {
		return res, fmt.Errorf("%w (%d keys in %s): the fleet already has a policy; seeding again would replace it. "+
			"Use -force to replace it with this data file on purpose", ErrNotEmpty, len(existing), PolicyBucket)
	}
	set, err := st.Load()
	if err != nil {
		return res, err
	}
	ch := &store.Change{Accounts: map[string]*policy.Account{}, Templates: map[string]*policy.Template{}, Operator: &set.Operator}
	for name, a := range set.Accounts {
		a := a
		ch.Accounts[name] = &a
	}
	for name, t := range set.Templates {
		t := t
		ch.Templates[name] = &t
	}
	if set.HighRisk != nil {
		m, err := st.HighRiskMeta()
		if err != nil {
			return res, err
		}
		ch.HighRisk = &store.HighRiskList{Entries: set.HighRisk, Version: m.Version, Source: m.Source, Updated: m.Updated}
	}
	if d, m, err := st.RateDeck(); err != nil {
		return res, err
	} else if d != nil {
		ch.RateDeck = &store.RateDeckRecord{Deck: *d, Version: m.Version, Source: m.Source, Updated: m.Updated}
	}
	if ch.Locks, err = st.Locks(); err != nil {
		return res, err
	}
	if ch.Origin, err = st.Origin(); err != nil {
		return res, err
	}
	ch.Audit = store.AuditEntry{Action: "fleet.seed", Object: "fleet", Who: "seed", Time: time.Now().UTC(),
		Before: json.RawMessage("null"), After: json.RawMessage(fmt.Sprintf(`{"from":%q}`, from))}
	recs, err := recordsOf(ch, c.Node, "")
	if err != nil {
		return res, err
	}
	for _, r := range recs {
		if r.doc != nil {
			if _, err := p.docs.PutBytes(ctx, r.rec.Doc, r.doc); err != nil {
				return res, fmt.Errorf("storing %s: %w", r.rec.Doc, err)
			}
		}
		delete(existing, r.key)
	}
	// the records go in parallel (each Put waits for its quorum): the
	// order does not matter, nodes take writes only after meta.seeded
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan outRecord)
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				val, _ := json.Marshal(r.rec)
				rev, err := p.kv.Put(ctx, r.key, val)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("writing %s: %w", r.key, err)
				}
				if err == nil {
					res.Records++
					res.Revision = max(res.Revision, rev)
				}
				mu.Unlock()
			}
		}()
	}
	// templates first, one by one: a node applies the records in the
	// bucket's order and refuses an account naming a template it has not
	// seen (recordsOf puts them first)
	rest := recs[:0:0]
	for _, r := range recs {
		if r.rec.Kind != kindTemplate {
			rest = append(rest, r)
			continue
		}
		val, _ := json.Marshal(r.rec)
		rev, err := p.kv.Put(ctx, r.key, val)
		if err != nil {
			close(next)
			wg.Wait()
			return res, fmt.Errorf("writing %s: %w", r.key, err)
		}
		res.Records++
		res.Revision = max(res.Revision, rev)
	}
	for _, r := range rest {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- r
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	delete(existing, keySeeded)
	for key := range existing {
		var old record
		if e, err := p.kv.Get(ctx, key); err == nil && json.Unmarshal(e.Value(), &old) == nil && old.Kind != "" && old.Data != nil {
			t := record{Kind: old.Kind, Name: old.Name, Node: c.Node, Audit: &ch.Audit}
			if old.Kind == kindOperator {
				continue // always written above
			}
			val, _ := json.Marshal(t)
			if _, err := p.kv.Put(ctx, key, val); err != nil {
				return res, fmt.Errorf("deleting %s: %w", key, err)
			}
			res.Tombstones++
		}
	}
	seed, _ := json.Marshal(seedRecord{From: from, Node: c.Node, Time: time.Now().UTC(), Forced: force, Records: res.Records})
	val, _ := json.Marshal(record{Kind: kindSeed, Node: c.Node, Data: seed})
	rev, err := p.kv.Put(ctx, keySeeded, val)
	if err != nil {
		return res, fmt.Errorf("writing %s: %w", keySeeded, err)
	}
	res.Revision = rev
	body, _ := json.Marshal(struct {
		Node string `json:"node"`
		*store.AuditEntry
	}{c.Node, &ch.Audit})
	_, _ = c.JS.Publish(ctx, AuditSubject+"."+c.Node, body)
	return res, nil
}
