package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/service"
	"github.com/tollgate/tollgate/store"
)

// Names of the fleet's JetStream assets. One set per NATS account: a
// second fleet on the same cluster uses another NATS account.
const (
	// PolicyBucket is the KV bucket holding the policy, one key per record.
	PolicyBucket = "tollgate_policy"
	// DocsBucket is the Object Store holding the large documents (the
	// high-risk list, the rate deck) the policy records point to.
	DocsBucket = "tollgate_policy_docs"
	// NodesBucket is the KV bucket where each node publishes the policy
	// revision it has applied.
	NodesBucket = "tollgate_nodes"
	// AuditStream is the stream of every node's audit entries, on
	// AuditSubject.<node>.
	AuditStream  = "TOLLGATE_AUDIT"
	AuditSubject = "tollgate.audit"
)

// Kinds of policy record, and their keys: "operator", "high_risk",
// "rate_deck", "tmpl.<name>", "acct.<name>", "lock.<scope>", "origin.<key>" and
// "meta.seeded". A name that is not all letters, digits, '-' and '_' is
// written "=" and its hex, so every key is a valid KV key.
const (
	kindAccount  = "account"
	kindTemplate = "template"
	kindOperator = "operator"
	kindHighRisk = "high_risk"
	kindRateDeck = "rate_deck"
	kindLock     = "lock"
	kindOrigin   = "origin"
	kindSeed     = "seed"

	keyOperator = "operator"
	keyHighRisk = "high_risk"
	keyRateDeck = "rate_deck"
	keySeeded   = "meta.seeded"
)

// record is one KV value: a record of the policy with the audit entry of
// the change that wrote it. Data absent means the record was deleted (a
// tombstone, kept so every node learns the deletion with its audit entry
// and compare-and-set has a revision to compare).
type record struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name,omitempty"`
	Node   string            `json:"node"`
	ID     string            `json:"id,omitempty"`
	Audit  *store.AuditEntry `json:"audit,omitempty"`
	Data   json.RawMessage   `json:"data,omitempty"`
	Doc    string            `json:"doc,omitempty"`
	Unlock *unlockRecord     `json:"unlock,omitempty"`
}

type unlockRecord struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// docMeta is a high-risk list's or rate deck's record data; the entries
// are in the Object Store under the record's Doc.
type docMeta struct {
	Version string    `json:"version"`
	Source  string    `json:"source"`
	Updated time.Time `json:"updated"`
	Count   int       `json:"count"`
}

// seedRecord is meta.seeded's data: where the bucket's first policy came
// from.
type seedRecord struct {
	From    string    `json:"from"`
	Node    string    `json:"node"`
	Time    time.Time `json:"time"`
	Forced  bool      `json:"forced,omitempty"`
	Records int       `json:"records"`
}

// encName makes a name a KV key token.
func encName(n string) string {
	plain := n != ""
	for i := 0; i < len(n) && plain; i++ {
		c := n[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if plain {
		return n
	}
	return "=" + hex.EncodeToString([]byte(n))
}

func accountKey(name string) string  { return "acct." + encName(name) }
func templateKey(name string) string { return "tmpl." + encName(name) }
func lockKey(scope string) string    { return "lock." + encName(scope) }
func originKey(key string) string    { return "origin." + encName(key) }

// isPolicyKey reports whether a key is compare-and-set policy (refused
// while the fleet is unreachable) rather than state (locks, origin).
func isPolicyKey(key string) bool {
	return !strings.HasPrefix(key, "lock.") && !strings.HasPrefix(key, "origin.")
}

// outRecord is one record a change writes, with the document to store
// first, if any.
type outRecord struct {
	key string
	rec record
	doc []byte
}

func docName(kind string, body []byte) string {
	h := sha256.Sum256(body)
	return kind + "/" + hex.EncodeToString(h[:16])
}

// recordsOf splits a change into its records, in a fixed order (policy
// first). The audit entry goes with each.
func recordsOf(ch *store.Change, node, id string) ([]outRecord, error) {
	var out []outRecord
	audit := ch.Audit
	add := func(key string, r record, doc []byte) {
		r.Node, r.ID, r.Audit = node, id, &audit
		out = append(out, outRecord{key: key, rec: r, doc: doc})
	}
	if ch.Operator != nil {
		b, err := json.Marshal(ch.Operator)
		if err != nil {
			return nil, err
		}
		add(keyOperator, record{Kind: kindOperator, Data: b}, nil)
	}
	if l := ch.HighRisk; l != nil {
		var buf bytes.Buffer
		if err := policy.WriteHighRiskCSV(&buf, l.Entries); err != nil {
			return nil, err
		}
		meta, _ := json.Marshal(docMeta{Version: l.Version, Source: l.Source, Updated: l.Updated.UTC(), Count: len(l.Entries)})
		add(keyHighRisk, record{Kind: kindHighRisk, Data: meta, Doc: docName("high-risk", buf.Bytes())}, buf.Bytes())
	} else if ch.DropHighRisk {
		add(keyHighRisk, record{Kind: kindHighRisk}, nil)
	}
	if d := ch.RateDeck; d != nil {
		var buf bytes.Buffer
		if err := policy.WriteRateDeck(&buf, d.Deck); err != nil {
			return nil, err
		}
		meta, _ := json.Marshal(docMeta{Version: d.Version, Source: d.Source, Updated: d.Updated.UTC(), Count: len(d.Deck.Entries)})
		add(keyRateDeck, record{Kind: kindRateDeck, Data: meta, Doc: docName("rate-deck", buf.Bytes())}, buf.Bytes())
	} else if ch.DropRateDeck {
		add(keyRateDeck, record{Kind: kindRateDeck}, nil)
	}
	// templates before accounts: a node applies records in the bucket's
	// order, and an account naming a template it has not seen is refused
	for _, name := range sortedKeys(ch.Templates) {
		r := record{Kind: kindTemplate, Name: name}
		if t := ch.Templates[name]; t != nil {
			b, err := json.Marshal(t)
			if err != nil {
				return nil, err
			}
			r.Data = b
		}
		add(templateKey(name), r, nil)
	}
	for _, name := range sortedKeys(ch.Accounts) {
		r := record{Kind: kindAccount, Name: name}
		if a := ch.Accounts[name]; a != nil {
			b, err := json.Marshal(a)
			if err != nil {
				return nil, err
			}
			r.Data = b
		}
		add(accountKey(name), r, nil)
	}
	for _, scope := range sortedKeys(ch.Locks) {
		r := record{Kind: kindLock, Name: scope, Data: ch.Locks[scope]}
		if r.Data == nil {
			// how it was lifted, for the same grace on every node
			var u struct {
				By     string    `json:"by"`
				Reason string    `json:"reason"`
				Until  time.Time `json:"until"`
			}
			_ = json.Unmarshal(audit.After, &u)
			if u.By == "" {
				u.By = audit.Who
			}
			r.Unlock = &unlockRecord{By: u.By, Reason: u.Reason, Until: u.Until}
		}
		add(lockKey(scope), r, nil)
	}
	for _, key := range sortedKeys(ch.Origin) {
		add(originKey(key), record{Kind: kindOrigin, Name: key, Data: ch.Origin[key]}, nil)
	}
	return out, nil
}

// changeOf turns a record read from the bucket back into the change it
// was; doc fetches a document from the Object Store.
func changeOf(r *record, doc func(name string) ([]byte, error)) (*store.Change, map[string]service.RemoteUnlock, error) {
	ch := &store.Change{}
	if r.Audit != nil {
		ch.Audit = *r.Audit
		ch.Audit.ID = 0
	}
	var unlocks map[string]service.RemoteUnlock
	switch r.Kind {
	case kindAccount:
		if err := policy.ValidName(r.Name); err != nil {
			return nil, nil, fmt.Errorf("account %q: %w", r.Name, err)
		}
		var a *policy.Account
		if r.Data != nil {
			a = &policy.Account{}
			if err := policy.DecodeStrict(r.Data, a); err != nil {
				return nil, nil, fmt.Errorf("account %q: %w", r.Name, err)
			}
		}
		ch.Accounts = map[string]*policy.Account{r.Name: a}
	case kindTemplate:
		if err := policy.ValidName(r.Name); err != nil {
			return nil, nil, fmt.Errorf("template %q: %w", r.Name, err)
		}
		var t *policy.Template
		if r.Data != nil {
			t = &policy.Template{}
			if err := policy.DecodeStrict(r.Data, t); err != nil {
				return nil, nil, fmt.Errorf("template %q: %w", r.Name, err)
			}
		}
		ch.Templates = map[string]*policy.Template{r.Name: t}
	case kindOperator:
		if r.Data == nil {
			return nil, nil, fmt.Errorf("operator record without data")
		}
		op := &policy.Operator{}
		if err := policy.DecodeStrict(r.Data, op); err != nil {
			return nil, nil, fmt.Errorf("operator: %w", err)
		}
		ch.Operator = op
	case kindHighRisk, kindRateDeck:
		if r.Data == nil {
			ch.DropHighRisk, ch.DropRateDeck = r.Kind == kindHighRisk, r.Kind == kindRateDeck
			break
		}
		var m docMeta
		if err := json.Unmarshal(r.Data, &m); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.Kind, err)
		}
		body, err := doc(r.Doc)
		if err != nil {
			return nil, nil, fmt.Errorf("%s document %s: %w", r.Kind, r.Doc, err)
		}
		if r.Kind == kindHighRisk {
			entries, err := policy.ParseHighRiskCSV(bytes.NewReader(body))
			if err != nil {
				return nil, nil, fmt.Errorf("high-risk document %s: %w", r.Doc, err)
			}
			ch.HighRisk = &store.HighRiskList{Entries: entries, Version: m.Version, Source: m.Source, Updated: m.Updated}
		} else {
			d, err := policy.ParseRateDeck(bytes.NewReader(body))
			if err != nil {
				return nil, nil, fmt.Errorf("rate deck document %s: %w", r.Doc, err)
			}
			ch.RateDeck = &store.RateDeckRecord{Deck: d, Version: m.Version, Source: m.Source, Updated: m.Updated}
		}
	case kindLock:
		ch.Locks = map[string]json.RawMessage{r.Name: r.Data}
		if r.Data == nil && r.Unlock != nil {
			unlocks = map[string]service.RemoteUnlock{r.Name: {By: r.Unlock.By, Reason: r.Unlock.Reason, Until: r.Unlock.Until}}
		}
	case kindOrigin:
		ch.Origin = map[string]json.RawMessage{r.Name: r.Data}
	default:
		return nil, nil, nil // meta records, and kinds a newer tollgate writes
	}
	return ch, unlocks, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
