package origin

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/oschwald/maxminddb-golang/v2"
)

// MaxGeoDBBytes bounds the database file a GeoIP accepts (GeoLite2 Country
// is about 10 MB, DB-IP Country Lite about 15 MB).
const MaxGeoDBBytes = 1 << 30

// GeoTable is a Geo-IP database compiled for lookups: every network of the
// .mmdb file with a country, as sorted address ranges (one table per family,
// adjacent ranges of one country merged, gaps recorded as "unknown"). A
// lookup is a bisection over plain integers: no allocation, no decoding, no
// pointer into the file, which is closed once compiled, so replacing the file
// on disk can never disturb a lookup in flight. A GeoTable is immutable.
type GeoTable struct {
	v4start []uint32
	v4cc    []cc
	// v4b is the /16 index of a large table (nil for small tables): one
	// geoBucket per /16, 32 bytes, so a lookup reads one cache line for
	// a /16 in which at most geoBucketLen-1 ranges start (most of them)
	// and bisects only the ranges that start in its /16 otherwise (a
	// bucket then holds their bounds). A plain bisection of a few hundred
	// thousand ranges reads a dozen lines, and an index of range numbers
	// two or three.
	v4b     []geoBucket
	v6start []u128
	v6cc    []cc
	// v4compat: the file is an IPv6 tree, whose IPv4 networks sit at
	// ::/96, so an IPv4-compatible address (::a.b.c.d, ::1 included) is
	// the IPv4 address a.b.c.d, as MaxMind's reader finds it.
	v4compat bool

	// Info describes the database the table was compiled from.
	Info GeoInfo
}

// GeoInfo describes a compiled database, for logs, metrics and health.
type GeoInfo struct {
	Path          string    // the file it was read from
	DatabaseType  string    // the metadata's database_type ("GeoLite2-Country", "DBIP-Country-Lite")
	BuildTime     time.Time // the metadata's build epoch
	Networks      int       // networks with a country in the file
	Ranges        int       // ranges after merging (the table's size)
	Countries     int       // distinct countries
	LoadedAt      time.Time // when this process compiled it
	LoadDuration  time.Duration
	FileSize      int64
	FileModTime   time.Time
	IPVersion     uint
	RecordSizeBit uint
}

// index4Min is the smallest table index4 indexes: below it a bisection
// stays in cache anyway, and the index (2 MiB) would be most of it.
const index4Min = 1024

// geoBucketLen is how many entries a geoBucket holds.
const geoBucketLen = 8

// geoBucket is what a large table knows of one /16 (GeoTable.v4b). Inline,
// its entries are (lo<<16 | country), lo being the low 16 bits of the first
// address a country holds from, in ascending order: entry 0 is the
// country at the /16's first address (lo 0), each further one a range that
// starts inside the /16, and the unused ones repeat the last used one (so
// they change no answer). The country of x.y.lo is that of the last entry
// whose lo is at or below lo. A /16 in which more ranges start overflows:
// entry 0 is geoOverflow, and entries 1 and 2 are the first and the
// past-the-last number of the ranges that start in it, to bisect.
type geoBucket [geoBucketLen]uint32

const geoOverflow = 0xffff << 16

// index4 builds GeoTable.v4b for the sorted range starts s and their
// countries c.
func index4(s []uint32, c []cc) []geoBucket {
	if len(s) < index4Min {
		return nil
	}
	bs := make([]geoBucket, 1<<16)
	i := 0
	for h := range bs {
		j := i
		for j < len(s) && s[j]>>16 == uint32(h) {
			j++
		}
		// ranges i..j-1 start in /16 h; range i-1 (if any) covers its
		// first address unless range i starts there
		var e []uint32
		if i == j || s[i]&0xffff != 0 {
			before := cc(0)
			if i > 0 {
				before = c[i-1]
			}
			e = append(e, uint32(before))
		}
		for k := i; k < j; k++ {
			e = append(e, s[k]<<16|uint32(c[k]))
		}
		b := &bs[h]
		if len(e) > geoBucketLen {
			b[0], b[1], b[2] = geoOverflow, uint32(i), uint32(j)
		} else {
			for k := range b {
				b[k] = e[min(k, len(e)-1)]
			}
		}
		i = j
	}
	return bs
}

// prefetch4 starts loading the bucket a lookup of an IPv4 source
// address written as proxies write it ("a.b.c.d", with or without a
// port) will read. src is not parsed (source16), and whatever it holds,
// nothing but a cache line is touched.
func (t *GeoTable) prefetch4(src string) {
	if t == nil || t.v4b == nil {
		return
	}
	if h, ok := source16(src); ok {
		prefetch(unsafe.Pointer(&t.v4b[h]))
	}
}

// source16 reads the /16 of an IPv4 source address from its first two
// numbers alone ("a.b." gives a<<8|b); ok is false when src does not
// start that way. For a hint only: a string that ParseSource refuses may
// still give a /16 (FuzzSource16 checks that it agrees with ParseSource
// where both read an IPv4 address).
func source16(src string) (h uint, ok bool) {
	i := 0
	for k := 0; k < 2; k++ {
		v, n := uint(0), 0
		for ; i < len(src) && src[i]-'0' <= 9 && n < 3; i, n = i+1, n+1 {
			v = v*10 + uint(src[i]-'0')
		}
		if n == 0 || v > 255 || i >= len(src) || src[i] != '.' {
			return 0, false
		}
		h = h<<8 | v
		i++
	}
	return h, true
}

// lookup4 is the country of IPv4 address x.
func (t *GeoTable) lookup4(x uint32) cc {
	s := t.v4start
	i, j := 0, len(s) // first start > x
	if t.v4b != nil {
		b := &t.v4b[x>>16]
		if b[0] != geoOverflow {
			lo := x << 16 // compared with the entries' lo<<16|country
			k := 0
			for m := 1; m < geoBucketLen; m++ {
				if b[m]&^0xffff <= lo {
					k = m
				}
			}
			return cc(b[k] & 0xffff)
		}
		// Ranges starting below x's /16 start at or below x, those
		// starting past it above x: the answer is among x's /16's.
		i, j = int(b[1]), int(b[2])
	}
	for i < j {
		h := int(uint(i+j) >> 1)
		if s[h] <= x {
			i = h + 1
		} else {
			j = h
		}
	}
	if i == 0 {
		return 0
	}
	return t.v4cc[i-1]
}

// Country returns the ISO 3166 alpha-2 code of the country that a's network
// belongs to, or "" when the database does not know a (private, reserved or
// unallocated space). IPv4-mapped IPv6 and 6to4 (2002::/16) addresses are
// looked up as the IPv4 address they carry, and so are IPv4-compatible ones
// (::a.b.c.d, ::1 being ::0.0.0.1) in an IPv6 database, where MaxMind's
// reader finds them in the IPv4 subtree. It never allocates.
func (t *GeoTable) Country(a netip.Addr) string { return t.lookup(a).String() }

func (t *GeoTable) lookup(a netip.Addr) cc {
	if t == nil || !a.IsValid() {
		return 0
	}
	if a.Is4In6() {
		a = a.Unmap()
	} else if a.Is6() {
		b := a.As16()
		if b[0] == 0x20 && b[1] == 0x02 { // 6to4: 2002:AABB:CCDD::/48 carries A.B.C.D
			a = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		} else if t.v4compat && b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7]|b[8]|b[9]|b[10]|b[11] == 0 {
			a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}) // ::/96 is the IPv4 subtree
		}
	}
	if a.Is4() {
		return t.lookup4(addr32(a))
	}
	x := addr128(a)
	s := t.v6start
	i, j := 0, len(s)
	for i < j {
		h := int(uint(i+j) >> 1)
		if !x.less(s[h]) {
			i = h + 1
		} else {
			j = h
		}
	}
	if i == 0 {
		return 0
	}
	return t.v6cc[i-1]
}

// LookupString parses ip as ParseSource does (as a SIP proxy writes $si,
// with or without a port, brackets or a zone) and returns its country; ""
// when ip is not an address or its country is unknown. It never allocates.
func (t *GeoTable) LookupString(ip string) string {
	a, e := ParseSource(ip)
	if e != SourceOK {
		return ""
	}
	return t.Country(a)
}

// ParseIP reads a source address as proxies write it: dotted IPv4, IPv6 with
// or without [brackets]. Zones are refused. It allocates nothing for an
// IPv4 address, well-formed or not, nor for a well-formed IPv6 address or a
// string with a character no address has; only a malformed string of hex
// digits and colons costs the standard library's error.
func ParseIP(s string) (netip.Addr, bool) {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	colon := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '.':
		case c == ':':
			colon = true
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		default: // zones ('%') included: no proxy sends one
			return netip.Addr{}, false
		}
	}
	if !colon {
		return parseIPv4(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a, true
}

// parseIPv4 reads a dotted quad as strictly as netip.ParseAddr (decimal, no
// leading zeros) without allocating on failure.
func parseIPv4(s string) (netip.Addr, bool) {
	var b [4]byte
	part, digits, v := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 3 {
				return netip.Addr{}, false
			}
			b[part] = byte(v)
			part, digits, v = part+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || (digits == 1 && v == 0) {
			return netip.Addr{}, false
		}
		v = v*10 + int(c-'0')
		digits++
		if v > 255 {
			return netip.Addr{}, false
		}
	}
	if part != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(b), true
}

// geoRange is a network as its first and last address, with its country.
type geoRange[K comparable] struct {
	lo, hi K
	c      cc
}

type (
	geoRange4 = geoRange[uint32]
	geoRange6 = geoRange[u128]
)

// countryRecord is the part of a GeoIP2/GeoLite2/DB-IP country or city record
// the table needs. registered_country stands in when country is absent (some
// satellite and anycast networks carry only it).
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// CompileGeoDB reads a .mmdb file (GeoLite2/GeoIP2 Country or City, DB-IP
// Country or City Lite, or any database whose records carry country.iso_code)
// and compiles its networks into a GeoTable. It refuses a file that fails the
// library's structural verification, that is too big, or that yields no
// network with a country, so a truncated or wrong file never replaces a good
// one.
func CompileGeoDB(path string) (*GeoTable, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > MaxGeoDBBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d accepted", path, fi.Size(), MaxGeoDBBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := CompileGeoBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Info.Path, t.Info.FileSize, t.Info.FileModTime = path, fi.Size(), fi.ModTime()
	return t, nil
}

// CompileGeoBytes is CompileGeoDB on a database already in memory. The table
// keeps no reference to b.
func CompileGeoBytes(b []byte) (t *GeoTable, err error) {
	start := time.Now()
	defer func() {
		// The decoder is hardened, but a table build must never take the
		// daemon down whatever the file holds.
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("malformed database: %v", r)
		}
	}()
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("not a MaxMind DB file: %w", err)
	}
	defer r.Close()
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("database fails verification: %w", err)
	}

	codes := map[uintptr]cc{} // records are shared by many networks: decode each once
	var v4 []geoRange4
	var v6 []geoRange6
	networks := 0
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("reading networks: %w", err)
		}
		c, seen := codes[res.Offset()]
		if !seen {
			var rec countryRecord
			if err := res.Decode(&rec); err != nil {
				return nil, fmt.Errorf("network %s: %w", res.Prefix(), err)
			}
			c = packCC(rec.Country.ISOCode)
			if c == 0 {
				c = packCC(rec.Registered.ISOCode)
			}
			codes[res.Offset()] = c
		}
		if c == 0 {
			continue
		}
		networks++
		p := res.Prefix()
		if p.Addr().Is4() {
			lo, hi := prefixBounds4(p)
			v4 = append(v4, geoRange4{lo, hi, c})
			continue
		}
		lo, hi := prefixBounds6(p)
		v6 = append(v6, geoRange6{lo, hi, c})
		if p.Bits() <= 96 && p.Contains(netip.IPv6Unspecified()) {
			// A network spanning ::/96 covers the IPv4 subtree too.
			v4 = append(v4, geoRange4{0, ^uint32(0), c})
		}
	}
	if networks == 0 {
		return nil, errors.New("no network in the database has a country (is it a country or city database?)")
	}

	t = &GeoTable{v4compat: r.Metadata.IPVersion == 6}
	t.v4start, t.v4cc = build4(v4)
	t.v4b = index4(t.v4start, t.v4cc)
	t.v6start, t.v6cc = build6(v6)
	distinct := map[cc]bool{}
	for _, c := range codes {
		if c != 0 {
			distinct[c] = true
		}
	}
	md := r.Metadata
	t.Info = GeoInfo{
		DatabaseType:  md.DatabaseType,
		BuildTime:     md.BuildTime(),
		Networks:      networks,
		Ranges:        len(t.v4start) + len(t.v6start),
		Countries:     len(distinct),
		LoadedAt:      time.Now(),
		LoadDuration:  time.Since(start),
		FileSize:      int64(len(b)),
		IPVersion:     md.IPVersion,
		RecordSizeBit: md.RecordSize,
	}
	return t, nil
}

// build4 turns possibly overlapping networks (the tree never yields overlaps,
// but the ::/96 case above may) into start points: the later, more specific
// network wins within its span; gaps become unknown (0).
func build4(rs []geoRange4) ([]uint32, []cc) {
	return buildRanges(rs, func(a, b uint32) bool { return a < b },
		func(a uint32) (uint32, bool) { return a + 1, a != ^uint32(0) })
}

// build6 is build4 for IPv6.
func build6(rs []geoRange6) ([]u128, []cc) {
	return buildRanges(rs, u128.less, u128.next)
}

// buildRanges is build4 and build6 for any address width: less orders
// addresses, next is the address after one (ok false after the last).
func buildRanges[K comparable](rs []geoRange[K], less func(a, b K) bool, next func(K) (K, bool)) ([]K, []cc) {
	slices.SortStableFunc(rs, func(a, b geoRange[K]) int {
		switch {
		case a.lo != b.lo:
			if less(a.lo, b.lo) {
				return -1
			}
			return 1
		case a.hi != b.hi: // wider first, so the narrower overrides it
			if less(b.hi, a.hi) {
				return -1
			}
			return 1
		}
		return 0
	})
	var starts []K
	var codes []cc
	emit := func(at K, c cc) {
		if n := len(starts); n > 0 && starts[n-1] == at {
			codes[n-1] = c
			if n > 1 && codes[n-2] == c {
				starts, codes = starts[:n-1], codes[:n-1]
			}
			return
		}
		if n := len(codes); n > 0 && codes[n-1] == c {
			return
		}
		starts, codes = append(starts, at), append(codes, c)
	}
	// Ranges are nested or disjoint (CIDR); a stack of open ranges resumes
	// the enclosing one's country after a nested one ends.
	type open struct {
		hi K
		c  cc
	}
	var stack []open
	closeUntil := func(limit K, all bool) {
		for len(stack) > 0 {
			top := stack[len(stack)-1]
			if !all && !less(top.hi, limit) {
				return
			}
			stack = stack[:len(stack)-1]
			nx, ok := next(top.hi)
			if !ok {
				continue
			}
			resume := cc(0)
			if len(stack) > 0 {
				resume = stack[len(stack)-1].c
			}
			emit(nx, resume)
		}
	}
	for _, r := range rs {
		closeUntil(r.lo, false)
		emit(r.lo, r.c)
		stack = append(stack, open{r.hi, r.c})
	}
	var zero K
	closeUntil(zero, true)
	return slices.Clip(starts), slices.Clip(codes)
}

// GeoIP holds the Geo-IP database in force and reloads it from its path:
// on demand (Reload, e.g. on SIGHUP) and when the file's size or
// modification time changed (ReloadIfChanged, e.g. from a ticker; Watch runs
// one). A file that fails to load is refused and the table already in force
// keeps serving. Lookups read the table through an atomic pointer: no lock.
// A nil *GeoIP, or one that has never loaded a file, knows no country.
type GeoIP struct {
	path string
	tab  atomic.Pointer[GeoTable]

	mu              sync.Mutex // serialises loads
	loads, failures atomic.Uint64

	size    int64     // stamp of the file last tried, loaded or not,
	modTime time.Time // so a bad file is not re-read every tick
	lastErr error
}

// NewGeoIP returns a GeoIP for the database at path without loading it (call
// Reload). An empty path means no database: Table stays nil.
func NewGeoIP(path string) *GeoIP { return &GeoIP{path: path} }

// OpenGeoIP is NewGeoIP followed by a first Reload; it fails if that does.
func OpenGeoIP(path string) (*GeoIP, error) {
	g := NewGeoIP(path)
	if path == "" {
		return nil, errors.New("no Geo-IP database path")
	}
	if err := g.Reload(); err != nil {
		return nil, err
	}
	return g, nil
}

// Path is the database file's path ("" when none is configured).
func (g *GeoIP) Path() string {
	if g == nil {
		return ""
	}
	return g.path
}

// Loads reports how many times a file went into force and how many times
// one was refused.
func (g *GeoIP) Loads() (ok, refused uint64) {
	if g == nil {
		return 0, 0
	}
	return g.loads.Load(), g.failures.Load()
}

// Table is the compiled database in force, nil when none has loaded.
func (g *GeoIP) Table() *GeoTable {
	if g == nil {
		return nil
	}
	return g.tab.Load()
}

// Enabled reports whether a database is in force, i.e. whether country-based
// origin checks run.
func (g *GeoIP) Enabled() bool { return g.Table() != nil }

// Country looks ip up in the table in force: "" when unknown, unparsable or
// when no database is loaded. It never allocates.
func (g *GeoIP) Country(ip string) string { return g.Table().LookupString(ip) }

// Reload compiles the file now and, if it is good, puts it in force. On error
// the previous table stays in force and the error says why the file was
// refused.
func (g *GeoIP) Reload() error {
	if g == nil || g.path == "" {
		return errors.New("no Geo-IP database configured")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.loadLocked()
}

func (g *GeoIP) loadLocked() error {
	if fi, err := os.Stat(g.path); err == nil {
		g.size, g.modTime = fi.Size(), fi.ModTime()
	}
	t, err := CompileGeoDB(g.path)
	g.lastErr = err
	if err != nil {
		g.failures.Add(1)
		return err
	}
	g.tab.Store(t)
	g.loads.Add(1)
	return nil
}

// ReloadIfChanged reloads when the file's size or modification time differs
// from the last attempt's. reloaded is true when a new table went into force;
// err is the refused file's error (reported once per change of the file).
func (g *GeoIP) ReloadIfChanged() (reloaded bool, err error) {
	if g == nil || g.path == "" {
		return false, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	fi, err := os.Stat(g.path)
	if err != nil {
		if g.lastErr != nil {
			return false, nil // already reported
		}
		g.lastErr = err
		return false, err
	}
	if fi.Size() == g.size && fi.ModTime().Equal(g.modTime) {
		return false, nil
	}
	if err := g.loadLocked(); err != nil {
		return false, err
	}
	return true, nil
}

// Watch calls ReloadIfChanged every interval until stop is closed, and
// reports every reload and every refused file to report (which may be nil).
func (g *GeoIP) Watch(interval time.Duration, stop <-chan struct{}, report func(t *GeoTable, err error)) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			ok, err := g.ReloadIfChanged()
			if report != nil && (ok || err != nil) {
				report(g.Table(), err)
			}
		}
	}
}
