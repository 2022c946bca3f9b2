package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/fraudstate"
	"github.com/tollgate/tollgate/policy"
	bolt "go.etcd.io/bbolt"
)

// Sealed records.
//
// bbolt checksums its meta pages but not its data pages, so a flipped byte
// in a value (or in the key, or in a page pointer) used to be read back as
// whatever it decoded to — a country rule dropped, a high-risk prefix
// changed. Every value tollgate stores is therefore sealed:
//
//	byte 0     recordMagic
//	bytes 1-4  CRC-32C (little-endian) of bucket name, 0, key, 0, payload
//	bytes 5-   payload
//
// The checksum covers the bucket and the key, so a record verifies only
// where it was written: a damaged key, or a record reached through a damaged
// page pointer, fails like a damaged value does.
//
// Each sealed bucket also has a digest, kept in the meta bucket's digests
// record and updated in the same transaction as every put and delete: the
// number of records and the XOR of one 64-bit word per record (CRC-32C of
// bucket and key, and the record's stored checksum). Opening recomputes it,
// so a record that vanished (a damaged leaf or branch page hiding it), an
// extra one, or a stale copy of an older version (a page pointer damaged
// into a freed page) is caught even though each record alone still seals.
//
// New buckets: add the name to sealedBuckets (a file without the bucket
// gets it, empty and digested, on its next writable open), write through
// the *records of Commit (put, del; commitAdded shows how), and read with
// Store.sealedBucket or get (both verify the seal and skip quarantined
// records). Add a case to decodeRecord so the payload is decoded strictly
// at load, and to quarantinable if a damaged record can be confined to the
// account its key names (otherwise damage refuses the start). Verification
// at open and the digest follow from the list.

const (
	recordMagic  = 0xA7
	recordHeader = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// keyDigests is the meta bucket's record of every sealed bucket's digest.
var keyDigests = []byte("digests")

// RecordError names one damaged record: its bucket and key, and what is
// wrong with it. It is what a refused start prints, so that an operator
// knows which account (or list) to restore.
type RecordError struct {
	Bucket string
	Key    string // printable: quoted name, or the audit entry's number
	Why    string
	rawKey []byte
}

// Error reads "record accounts/\"acme\": checksum mismatch".
func (e *RecordError) Error() string { return "record " + e.Bucket + "/" + e.Key + ": " + e.Why }

// printableKey renders a key for messages: audit keys are sequence numbers,
// every other key is a name.
func printableKey(bucket string, key []byte) string {
	if bucket == string(bucketAudit) && len(key) == 8 {
		return strconv.FormatUint(binary.BigEndian.Uint64(key), 10)
	}
	return strconv.Quote(string(key))
}

func recordSum(bucket, key, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, bucket)
	c = crc32.Update(c, castagnoli, []byte{0})
	c = crc32.Update(c, castagnoli, key)
	c = crc32.Update(c, castagnoli, []byte{0})
	return crc32.Update(c, castagnoli, payload)
}

// seal returns the stored form of payload under bucket/key.
func seal(bucket, key, payload []byte) []byte {
	out := make([]byte, recordHeader+len(payload))
	out[0] = recordMagic
	binary.LittleEndian.PutUint32(out[1:], recordSum(bucket, key, payload))
	copy(out[recordHeader:], payload)
	return out
}

// unseal verifies a stored record and returns its payload, which aliases v
// (valid for the transaction, like every bbolt value).
func unseal(bucket, key, v []byte) ([]byte, error) {
	if len(v) < recordHeader || v[0] != recordMagic {
		return nil, &RecordError{Bucket: string(bucket), Key: printableKey(string(bucket), key), Why: "not a sealed record (damaged)", rawKey: bytes.Clone(key)}
	}
	payload := v[recordHeader:]
	if recordSum(bucket, key, payload) != binary.LittleEndian.Uint32(v[1:]) {
		return nil, &RecordError{Bucket: string(bucket), Key: printableKey(string(bucket), key), Why: "checksum mismatch (damaged)", rawKey: bytes.Clone(key)}
	}
	return payload, nil
}

// digestWord is a record's contribution to its bucket's digest. It uses the
// stored checksum as it is, so a record whose payload alone is damaged
// still adds what it added when written: the digest then confirms that the
// set of records is complete, which is what lets a damaged account be
// quarantined instead of silently missing.
func digestWord(bucket, key, stored []byte) uint64 {
	kc := crc32.Update(crc32.Update(crc32.Update(0, castagnoli, bucket), castagnoli, []byte{0}), castagnoli, key)
	var sum uint32
	if len(stored) >= recordHeader {
		sum = binary.LittleEndian.Uint32(stored[1:])
	}
	return uint64(kc)<<32 | uint64(sum)
}

// bucketDigest is one bucket's digest: how many records, and the XOR of
// their digest words.
type bucketDigest struct {
	N   uint64 `json:"n"`
	XOR string `json:"xor"` // 16 hex digits
}

func (d bucketDigest) xor() uint64 {
	v, _ := strconv.ParseUint(d.XOR, 16, 64)
	return v
}

func makeDigest(n, x uint64) bucketDigest {
	return bucketDigest{N: n, XOR: fmt.Sprintf("%016x", x)}
}

// readDigests reads and verifies the meta bucket's digests record; ok is
// false when there is none (a file being created or migrated).
func readDigests(tx *bolt.Tx) (map[string]bucketDigest, bool, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil, false, nil
	}
	v := meta.Get(keyDigests)
	if v == nil {
		return nil, false, nil
	}
	p, err := unseal(bucketMeta, keyDigests, v)
	if err != nil {
		return nil, false, err
	}
	m := map[string]bucketDigest{}
	if err := policy.DecodeStrict(p, &m); err != nil {
		return nil, false, &RecordError{Bucket: string(bucketMeta), Key: strconv.Quote(string(keyDigests)), Why: err.Error()}
	}
	for name, d := range m {
		if _, err := strconv.ParseUint(d.XOR, 16, 64); err != nil || len(d.XOR) != 16 {
			return nil, false, &RecordError{Bucket: string(bucketMeta), Key: strconv.Quote(string(keyDigests)), Why: fmt.Sprintf("bucket %q: bad digest %q", name, d.XOR)}
		}
	}
	return m, true, nil
}

// records is a write transaction's access to the sealed buckets: every put
// and delete keeps its bucket's digest in step, and finish stores the
// digests. Use one per transaction and always call finish before the
// transaction commits.
type records struct {
	tx    *bolt.Tx
	dig   map[string]bucketDigest
	dirty bool
}

// beginRecords reads the digests of tx's file. A file with none yet (being
// created or migrated) starts from empty digests.
func beginRecords(tx *bolt.Tx) (*records, error) {
	dig, _, err := readDigests(tx)
	if err != nil {
		return nil, err
	}
	if dig == nil {
		dig = map[string]bucketDigest{}
	}
	return &records{tx: tx, dig: dig}, nil
}

// bucket creates the named bucket if missing and gives it a digest if it
// has none, so that a bucket added by a newer binary starts verified.
func (r *records) bucket(name []byte) (*bolt.Bucket, error) {
	b, err := r.tx.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	if _, ok := r.dig[string(name)]; !ok {
		r.dig[string(name)] = makeDigest(0, 0)
		r.dirty = true
	}
	return b, nil
}

func (r *records) bkt(name []byte) (*bolt.Bucket, error) {
	b := r.tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %q is missing (the data file was opened read-only or is damaged)", name)
	}
	if _, ok := r.dig[string(name)]; !ok {
		return nil, fmt.Errorf("bucket %q has no digest", name)
	}
	return b, nil
}

// put seals payload and stores it under bucket/key.
func (r *records) put(bucket, key, payload []byte) error {
	b, err := r.bkt(bucket)
	if err != nil {
		return err
	}
	d := r.dig[string(bucket)]
	n, x := d.N, d.xor()
	if old := b.Get(key); old != nil {
		n, x = n-1, x^digestWord(bucket, key, old)
	}
	v := seal(bucket, key, payload)
	if err := b.Put(key, v); err != nil {
		return err
	}
	r.dig[string(bucket)] = makeDigest(n+1, x^digestWord(bucket, key, v))
	r.dirty = true
	return nil
}

// del deletes bucket/key (nothing if absent).
func (r *records) del(bucket, key []byte) error {
	b, err := r.bkt(bucket)
	if err != nil {
		return err
	}
	old := b.Get(key)
	if old == nil {
		return nil
	}
	d := r.dig[string(bucket)]
	w := digestWord(bucket, key, old)
	if err := b.Delete(key); err != nil {
		return err
	}
	r.dig[string(bucket)] = makeDigest(d.N-1, d.xor()^w)
	r.dirty = true
	return nil
}

// finish stores the digests if anything changed.
func (r *records) finish() error {
	if !r.dirty {
		return nil
	}
	p, err := json.Marshal(r.dig)
	if err != nil {
		return err
	}
	meta := r.tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("meta bucket missing")
	}
	return meta.Put(keyDigests, seal(bucketMeta, keyDigests, p))
}

// quarantinable reports which account a damaged record of bucket/key can be
// quarantined as: an account's own record, its lock or its origin state.
// Damage anywhere else (operator settings, high-risk list, rate deck,
// digests) cannot be confined to one account and always refuses the start.
// A damaged audit entry has no part in decisions: account is "" and ok true.
func quarantinable(bucket string, key []byte) (account string, ok bool) {
	switch bucket {
	case string(bucketAccounts):
		return string(key), true
	case string(bucketLocks), string(bucketOrigin), string(bucketState[fraudstate.Scopes]):
		// "account" or "account/subaccount": the whole account goes.
		a, _, _ := strings.Cut(string(key), "/")
		return a, true
	case string(bucketAudit), string(bucketState[fraudstate.Alerts]), string(bucketState[fraudstate.Webhooks]):
		// History and deliveries: no part in decisions.
		return "", true
	}
	// A live call is keyed by its Call-ID: which account it counts
	// against is in the damaged payload. Refuse.
	return "", false
}

// verifyRecords checks every sealed record and every bucket digest of tx's
// file. Damaged records are returned (sorted); a problem no record can
// explain — a digest that does not add up, a bucket missing or unknown — is
// the error.
func verifyRecords(tx *bolt.Tx) (damaged []RecordError, err error) {
	dig, ok, err := readDigests(tx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &RecordError{Bucket: string(bucketMeta), Key: strconv.Quote(string(keyDigests)), Why: "missing (damaged)"}
	}
	known := map[string]bool{}
	for _, b := range sealedBuckets {
		known[string(b)] = true
	}
	var problems []string
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if string(name) == string(bucketMeta) {
			return nil
		}
		if !known[string(name)] {
			problems = append(problems, fmt.Sprintf("unknown bucket %q (written by a newer tollgate, or damaged)", name))
			return nil
		}
		want, ok := dig[string(name)]
		if !ok {
			problems = append(problems, fmt.Sprintf("bucket %q has no digest", name))
			return nil
		}
		var n, x uint64
		if err := b.ForEach(func(k, v []byte) error {
			if v == nil {
				damaged = append(damaged, RecordError{Bucket: string(name), Key: printableKey(string(name), k), Why: "a nested bucket where a record belongs (damaged)", rawKey: bytes.Clone(k)})
				return nil
			}
			n++
			x ^= digestWord(name, k, v)
			if _, err := unseal(name, k, v); err != nil {
				damaged = append(damaged, *err.(*RecordError))
			}
			return nil
		}); err != nil {
			return err
		}
		if n != want.N || x != want.xor() {
			problems = append(problems, fmt.Sprintf("bucket %q holds %d records that do not add up to its digest (%d records): records are missing, extra or stale", name, n, want.N))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The audit log's sequence numbers the next entry: one below the last
	// entry's would overwrite history.
	if a := tx.Bucket(bucketAudit); a != nil {
		if k, _ := a.Cursor().Last(); len(k) == 8 && binary.BigEndian.Uint64(k) > a.Sequence() {
			problems = append(problems, fmt.Sprintf("the audit log's sequence %d is below its last entry %d", a.Sequence(), binary.BigEndian.Uint64(k)))
		}
	}
	for name, d := range dig {
		if tx.Bucket([]byte(name)) == nil {
			problems = append(problems, fmt.Sprintf("bucket %q is missing (its digest lists %d records)", name, d.N))
		}
	}
	sort.Slice(damaged, func(i, j int) bool {
		if damaged[i].Bucket != damaged[j].Bucket {
			return damaged[i].Bucket < damaged[j].Bucket
		}
		return damaged[i].Key < damaged[j].Key
	})
	if len(problems) > 0 {
		sort.Strings(problems)
		return damaged, errors.New(strings.Join(problems, "; "))
	}
	return damaged, nil
}
