package origin

import "net/netip"

// SourceError says why a source address was refused (SourceOK when it was
// not); a plain value, so refusing allocates nothing.
type SourceError uint8

// Why ParseSource refuses a source address.
const (
	SourceOK      SourceError = iota
	SourceEmpty               // nothing but blanks
	SourceNotAddr             // not an IPv4 or IPv6 address
	SourceBadPort             // ip:port or [ipv6]:port with a port that is not 0-65535
	SourceBadZone             // a zone (%eth0) that is empty or on an IPv4 address
)

var sourceErrors = [...]string{
	SourceOK:      "",
	SourceEmpty:   "is empty",
	SourceNotAddr: "is not an IP address (want 192.0.2.1, 2001:db8::1, 192.0.2.1:5060 or [2001:db8::1]:5060)",
	SourceBadPort: "has a port that is not 0-65535",
	SourceBadZone: "has a zone that is empty or on an IPv4 address",
}

// String is the reason as the query API's error message ends it ("src_ip
// is empty").
func (e SourceError) String() string {
	if int(e) < len(sourceErrors) {
		return sourceErrors[e]
	}
	return "is not an IP address"
}

// MaxSourceLen bounds a source address as ParseSource reads it: the longest
// bracketed IPv6 address with an embedded IPv4 part, a zone and a port,
// with room for blanks.
const MaxSourceLen = 96

// ParseSource reads a caller's source address as SIP proxies really send
// it: "192.0.2.1", "2001:db8::1", "192.0.2.1:5060", "[2001:db8::1]:5060",
// "[2001:db8::1]", with blanks around it, or with an IPv6 zone
// ("fe80::1%eth0", which is the address fe80::1: the zone names the
// proxy's interface, not where the caller is). The address comes back
// without its zone. Anything else is refused, with why: an unreadable
// address is never taken for "no address", which would let a caller past
// every rule that needs one. It allocates nothing.
func ParseSource(s string) (netip.Addr, SourceError) {
	if a, ok := parseSource4(s); ok {
		return a, SourceOK
	}
	return parseSource(s)
}

// parseSource4 is ParseSource's fast path for what proxies send on almost
// every call, "192.0.2.1" or "192.0.2.1:5060" without blanks: one pass over
// the bytes. It reports false for anything else, valid or not, and
// ParseSource then takes the general path (parseSource), which gives every
// refusal its reason; FuzzParseSource checks the two agree.
func parseSource4(s string) (netip.Addr, bool) {
	var b [4]byte
	i, n := 0, len(s)
	for part := 0; part < 4; part++ {
		// One to three digits, no leading zero, at most 255.
		if i >= n || s[i]-'0' > 9 {
			return netip.Addr{}, false
		}
		v := uint(s[i] - '0')
		i++
		if i < n && s[i]-'0' <= 9 {
			if v == 0 {
				return netip.Addr{}, false
			}
			v = v*10 + uint(s[i]-'0')
			i++
			if i < n && s[i]-'0' <= 9 {
				v = v*10 + uint(s[i]-'0')
				i++
				if v > 255 {
					return netip.Addr{}, false
				}
			}
		}
		b[part] = byte(v)
		if part < 3 {
			if i >= n || s[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
	}
	if i == n {
		return netip.AddrFrom4(b), true
	}
	// ":port", 0-65535, one to five digits.
	if s[i] != ':' || n-i-1 < 1 || n-i-1 > 5 {
		return netip.Addr{}, false
	}
	p := uint(0)
	for i++; i < n; i++ {
		d := s[i] - '0'
		if d > 9 {
			return netip.Addr{}, false
		}
		p = p*10 + uint(d)
	}
	if p > 65535 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(b), true
}

// parseSource is ParseSource's general path.
func parseSource(s string) (netip.Addr, SourceError) {
	s = trimBlanks(s)
	if s == "" {
		return netip.Addr{}, SourceEmpty
	}
	if len(s) > MaxSourceLen {
		return netip.Addr{}, SourceNotAddr
	}
	host, port, bracket := s, "", false
	if s[0] == '[' {
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return netip.Addr{}, SourceNotAddr
		}
		host, bracket = s[1:end], true
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			port = rest[1:]
			if port == "" {
				return netip.Addr{}, SourceBadPort
			}
		default:
			return netip.Addr{}, SourceNotAddr
		}
	} else {
		colons, last := 0, 0
		for i := 0; i < len(s); i++ {
			if s[i] == ':' {
				colons++
				last = i
			}
		}
		if colons == 1 { // only IPv4 may carry a port without brackets
			host, port = s[:last], s[last+1:]
			if port == "" {
				return netip.Addr{}, SourceBadPort
			}
		}
	}
	zone := false
	for i := 0; i < len(host); i++ {
		if host[i] == '%' {
			if i == len(host)-1 {
				return netip.Addr{}, SourceBadZone
			}
			host, zone = host[:i], true
			break
		}
	}
	if port != "" && !validPort(port) {
		return netip.Addr{}, SourceBadPort
	}
	if host == "" {
		return netip.Addr{}, SourceNotAddr
	}
	a, ok := ParseIP(host)
	if !ok {
		return netip.Addr{}, SourceNotAddr
	}
	if zone && !a.Is6() {
		return netip.Addr{}, SourceBadZone
	}
	if bracket && a.Is4() {
		return netip.Addr{}, SourceNotAddr // [192.0.2.1] is no address syntax
	}
	return a, SourceOK
}

func trimBlanks(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	v := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		v = v*10 + int(p[i]-'0')
	}
	return v <= 65535
}

// UnknownCause says why a call's origin country is unknown. Its names are a
// closed set, fit for a metric label.
type UnknownCause uint8

// Causes of an unknown origin.
const (
	CauseKnown    UnknownCause = iota // the origin is known
	CauseMissing                      // the query carried no source address
	CauseInvalid                      // the source address did not parse (only callers other than the query API send one)
	CauseNoGeoIP                      // no Geo-IP database is in force
	CauseNotFound                     // the database has no country for the address (private, reserved, unlisted)
	numCauses
)

var causeNames = [numCauses]string{"", "missing", "invalid", "no_geoip", "not_in_database"}

// String is the cause's label value ("" for CauseKnown).
func (c UnknownCause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return ""
}

// UnknownCauses lists every cause's name, for pre-registering metric label
// values.
func UnknownCauses() []string { return append([]string(nil), causeNames[1:]...) }
