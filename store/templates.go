package store

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

// putTemplates writes templates by name in name order; a nil value
// deletes one.
func putTemplates(r *records, m map[string]*policy.Template) error {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := m[n]
		if t == nil {
			if err := r.del(bucketTemplates, []byte(n)); err != nil {
				return err
			}
			continue
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if err := r.put(bucketTemplates, []byte(n), b); err != nil {
			return fmt.Errorf("template %q: %w", n, err)
		}
	}
	return nil
}

// loadTemplates reads every template into set.Templates (left nil when
// there are none: a file written before templates has no bucket). A
// damaged template refuses the start: it is not one account's to
// quarantine, and leaving it out would change every account on it.
func loadTemplates(tx *bolt.Tx, set *policy.Set) error {
	b := tx.Bucket(bucketTemplates)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		p, err := unseal(bucketTemplates, k, v)
		if err != nil {
			return err
		}
		var t policy.Template
		if err := decodeRecord(bucketTemplates, k, p, &t); err != nil {
			return &RecordError{Bucket: string(bucketTemplates), Key: printableKey(string(bucketTemplates), k), Why: err.Error()}
		}
		if set.Templates == nil {
			set.Templates = map[string]policy.Template{}
		}
		set.Templates[string(k)] = t
		return nil
	})
}
