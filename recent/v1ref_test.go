package recent

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"time"
)

// The version 1 record, encoded and decoded as 6a58673's Add and
// decodeInto did (copied, offsets relative to the 96 bytes on disk): the
// reference the compact record is held to.

func v1Encode(now time.Time, account, sub, dialled string, e164 []byte, srcIP string, action, reason uint8, country string) (rec [v1DiskRecord]byte) {
	binary.LittleEndian.PutUint64(rec[:8], uint64(now.UnixNano()))
	var flags byte
	if srcIP != "" {
		if ip, err := netip.ParseAddr(srcIP); err == nil {
			*(*[16]byte)(rec[v1OffIP:]) = ip.As16()
			if ip.Is4() {
				flags |= flagIPv4
			} else {
				flags |= flagIPv6
			}
		}
	}
	var nn int
	if len(e164) > 0 {
		nn = copy(rec[v1OffNum:v1OffNum+v1NumberBytes], e164)
		if nn < len(e164) {
			flags |= flagTruncated
		}
	} else {
		flags |= flagRawNumber
		nn = copy(rec[v1OffNum:v1OffNum+v1NumberBytes], dialled)
		if nn < len(dialled) {
			flags |= flagTruncated
		}
	}
	an := copy(rec[v1OffNames:v1OffNames+v1NameBytes], account)
	sn := copy(rec[v1OffNames+an:v1OffNames+v1NameBytes], sub)
	if an < len(account) || sn < len(sub) {
		flags |= flagTruncated
	}
	m := rec[v1OffMeta:]
	m[0], m[1], m[2], m[3], m[4], m[5] = byte(an), byte(sn), byte(nn), action, reason, flags
	binary.LittleEndian.PutUint16(m[6:], packCountry(country))
	return rec
}

func v1Decode(rec [v1DiskRecord]byte) Call {
	m := rec[v1OffMeta:]
	an, sn, nn := int(m[0]), int(m[1]), int(m[2])
	flags := m[5]
	c := Call{Time: time.Unix(0, int64(binary.LittleEndian.Uint64(rec[:8]))).UTC(), Action: m[3], Reason: m[4]}
	if an > v1NameBytes || sn > v1NameBytes-an || nn > v1NumberBytes {
		c.Truncated = true
		return c
	}
	c.Account = string(rec[v1OffNames : v1OffNames+an])
	c.Subaccount = string(rec[v1OffNames+an : v1OffNames+an+sn])
	c.To = string(rec[v1OffNum : v1OffNum+nn])
	c.Truncated = flags&flagTruncated != 0
	if cc := binary.LittleEndian.Uint16(m[6:]); int(cc) < len(countryNames) {
		c.Country = countryNames[cc]
	}
	ip16 := [16]byte(rec[v1OffIP : v1OffIP+16])
	switch {
	case flags&flagIPv4 != 0:
		c.SrcIP = netip.AddrFrom16(ip16).Unmap().String()
	case flags&flagIPv6 != 0:
		c.SrcIP = netip.AddrFrom16(ip16).String()
	}
	return c
}

// writeV1 writes recs as 6a58673's Save did.
func writeV1(path string, recs [][v1DiskRecord]byte) error {
	var b []byte
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, v1DiskRecord)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(recs)))
	for _, r := range recs {
		b = append(b, r[:]...)
	}
	sum := sha256.Sum256(b)
	return os.WriteFile(path, append(b, sum[:]...), 0o600)
}

// Query is one query as the handler hands it to Add (exported for the
// what-if golden test in package recent_test).
type Query struct {
	Time                        time.Time
	Account, Sub, Dialled, E164 string
	SrcIP                       string
	Action, Reason              uint8
	Country                     string
}

// GoldenTraffic is the traffic the old and new records are compared on:
// every field's edge (an empty, a long and a torn name, a raw dialled
// string, short codes, numbers of 1 and 15 digits and longer, leading
// zeros, IPv4, IPv6, a bad address, every country form).
func GoldenTraffic() []Query {
	base := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	qs := []Query{
		{Account: "acme", Sub: "sales", Dialled: "00442079460000", E164: "+442079460000", SrcIP: "192.0.2.7", Country: "GB"},
		{Account: "acme", Dialled: "999999", SrcIP: "2001:db8::1", Action: 1, Reason: 2},
		{Account: "acme", Dialled: "112", E164: "112", SrcIP: "192.0.2.8", Reason: 1, Country: "FR"},
		{Account: "acct-000123", Dialled: "+5355512345", E164: "+5355512345", Action: 1, Reason: 4, Country: "CU"},
		{Account: "acct-000123", Sub: "s1", Dialled: "+881612345678", E164: "+881612345678", Country: "001", SrcIP: "::ffff:10.0.0.1"},
		{Account: "x", Dialled: "*98#", SrcIP: "not-an-ip", Action: 1, Reason: 2},
		{Account: "x", Dialled: "0", SrcIP: "10.1.2.3"},
		{Account: "x", Dialled: "+0", E164: "+0"},
		{Account: "x", Dialled: "+123456789012345", E164: "+123456789012345", Country: "US"},
		{Account: "x", Dialled: "0000000000", E164: "0000000000"},
		{Account: "x", Dialled: "+1234567890123456", SrcIP: "192.0.2.9", Action: 1, Reason: 2},
		{Account: "", Dialled: "+12025550100", E164: "+12025550100", Country: "US"},
		{Account: "acme", Sub: "sales", Dialled: "", SrcIP: "fe80::1", Action: 1, Reason: 2},
		{Account: "acme", Sub: "sales", Dialled: "+", Action: 1, Reason: 2},
		{Account: "acme", Sub: "sales", Dialled: "12345678901234567890", Action: 1, Reason: 2},
		{Account: strings.Repeat("n", 30), Sub: strings.Repeat("s", 14), Dialled: "+4930123456", E164: "+4930123456", Country: "DE"},
		{Account: strings.Repeat("a", 40), Sub: "subaccount", Dialled: "+4930123456", E164: "+4930123456", Country: "DE"},
		{Account: "acme", Dialled: "+4930123456", E164: "+4930123456", Country: "ZZ", Action: 2, Reason: 9},
		{Account: "acme", Dialled: "+4930123456", E164: "+4930123456", Country: "de"},
	}
	for i := range qs {
		qs[i].Time = base.Add(time.Duration(i) * 1500 * time.Millisecond)
	}
	// the same second twice: order added is kept
	qs[3].Time = qs[2].Time
	return qs
}

// V1Fits reports whether version 1 held q whole (names within 44 bytes,
// the number within 20): on such traffic the records must decode alike.
func V1Fits(q Query) bool {
	n := q.E164
	if n == "" {
		n = q.Dialled
	}
	return len(q.Account)+len(q.Sub) <= v1NameBytes && len(n) <= v1NumberBytes
}

func (q Query) e164() []byte {
	if q.E164 == "" {
		return nil
	}
	return []byte(q.E164)
}

// AddQuery adds q to r.
func (r *Ring) AddQuery(q Query) {
	r.Add(q.Time, q.Account, q.Sub, q.Dialled, q.e164(), q.SrcIP, q.Action, q.Reason, q.Country)
}

// WriteV1File writes qs as a version 1 file, as 6a58673 saved it.
func WriteV1File(path string, qs []Query) error {
	recs := make([][v1DiskRecord]byte, len(qs))
	for i, q := range qs {
		recs[i] = v1Encode(q.Time, q.Account, q.Sub, q.Dialled, q.e164(), q.SrcIP, q.Action, q.Reason, q.Country)
	}
	return writeV1(path, recs)
}

// V1Calls is what 6a58673's ring returned for qs (added in order, all
// kept).
func V1Calls(qs []Query) []Call {
	out := make([]Call, len(qs))
	for i, q := range qs {
		out[i] = v1Decode(v1Encode(q.Time, q.Account, q.Sub, q.Dialled, q.e164(), q.SrcIP, q.Action, q.Reason, q.Country))
	}
	return out
}
