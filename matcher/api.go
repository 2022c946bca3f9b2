package matcher

import (
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/tollgate/tollgate/numplan"
	"github.com/tollgate/tollgate/policy"
)

// Matcher answers queries from the current snapshot. Decide only reads: the
// snapshot is swapped whole with an atomic pointer when policy changes, so a
// decision never sees half a change and never waits for one.
type Matcher struct {
	snap atomic.Pointer[Snapshot]
	plan *numplan.Plan
	// national caches national-format resolutions (phonenumbers.Parse costs
	// ~10 µs); the result depends only on the numbering plan, not on policy,
	// so it survives snapshot swaps.
	national *fastcache.Cache
	hits     atomic.Uint64
	misses   atomic.Uint64
}

// Options tune a Matcher.
type Options struct {
	// NationalCacheBytes bounds the national-format cache (default 32 MiB).
	NationalCacheBytes int
}

// SnapshotStats describes a compiled snapshot, for logs and metrics.
type SnapshotStats struct {
	Accounts    int
	Subaccounts int
	HighRisk    int
	Prefixes    int // every prefix in every trie
	BuiltAt     time.Time
	BuildTime   time.Duration
}

// Compile turns an operator's policy set into an immutable snapshot. It
// validates everything first: a set that does not validate yields an error
// and no snapshot, so the caller keeps serving the old one.
//
//	func Compile(set *policy.Set, plan *numplan.Plan) (*Snapshot, error)
var _ = policy.Set{}
