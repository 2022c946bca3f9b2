package recent

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"net/netip"
)

// Version 1 of the ring's file (issue 16 to issue 17's third pass): each
// record the 12 words after the sequence word of a 104-byte record — time,
// the address (16 bytes), the number's text (20 bytes), the account and
// subaccount names together (44 bytes), their lengths, action, reason,
// flags and country. A tollgate updated in place reads it once, converts
// every record (names into the intern table) and saves version 2 on its
// next write.
const (
	v1DiskRecord  = 96
	v1NumberBytes = 20
	v1NameBytes   = 44
	v1OffIP       = 8 // after the time word
	v1OffNum      = v1OffIP + 16
	v1OffNames    = v1OffNum + v1NumberBytes
	v1OffMeta     = v1OffNames + v1NameBytes
)

// loadV1 reads the records of a version 1 file after its header.
func (r *Ring) loadV1(path string, br *bufio.Reader, h hash.Hash, hdr [headerLen]byte, count uint64, size int64) (int, error) {
	if s := binary.LittleEndian.Uint32(hdr[12:]); s != v1DiskRecord {
		return 0, fmt.Errorf("%w: %s: record size %d, expected %d (version 1)", ErrCorrupt, path, s, v1DiskRecord)
	}
	if want := int64(headerLen) + int64(count)*v1DiskRecord + sha256.Size; count > 1<<40 || size != want {
		return 0, fmt.Errorf("%w: %s: %d bytes for %d records, expected %d", ErrCorrupt, path, size, count, want)
	}
	n := uint64(len(r.slots))
	skip := uint64(0)
	if count > n {
		skip = count - n
	}
	var rec [v1DiskRecord]byte
	idx := uint64(0)
	for i := uint64(0); i < count; i++ {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			r.reset()
			return 0, fmt.Errorf("%w: %s: record %d: %v", ErrCorrupt, path, i, err)
		}
		h.Write(rec[:])
		if i < skip || binary.LittleEndian.Uint64(rec[:8]) == 0 {
			continue
		}
		var w [words]uint64
		r.fromV1(&w, &rec)
		s := &r.slots[idx%n]
		for k := 1; k < words; k++ {
			s[k].Store(w[k])
		}
		s[0].Store(idx + 1)
		idx++
	}
	sum := h.Sum(nil)
	var stored [sha256.Size]byte
	if _, err := io.ReadFull(br, stored[:]); err != nil || [sha256.Size]byte(sum) != stored {
		r.reset()
		return 0, fmt.Errorf("%w: %s: checksum mismatch", ErrCorrupt, path)
	}
	r.next.Store(idx)
	return int(idx), nil
}

// fromV1 encodes a version 1 record as the record Add would have written
// for the same query: the same fields come out of a replay. Lengths out of
// range (a damaged record the checksum let through) keep it, truncated,
// as version 1 decoded it.
func (r *Ring) fromV1(w *[words]uint64, rec *[v1DiskRecord]byte) {
	meta := rec[v1OffMeta:]
	an, sn, nn := int(meta[0]), int(meta[1]), int(meta[2])
	action, reason, flags := meta[3], meta[4], meta[5]
	country := countryNames[0]
	if cc := binary.LittleEndian.Uint16(meta[6:]); int(cc) < len(countryNames) {
		country = countryNames[cc]
	}
	w[1] = binary.LittleEndian.Uint64(rec[:8])
	var account, sub, number, ip string
	bad := an > v1NameBytes || sn > v1NameBytes-an || nn > v1NumberBytes
	if !bad {
		account = string(rec[v1OffNames : v1OffNames+an])
		sub = string(rec[v1OffNames+an : v1OffNames+an+sn])
		number = string(rec[v1OffNum : v1OffNum+nn])
		ip16 := [16]byte(rec[v1OffIP : v1OffIP+16])
		switch {
		case flags&flagIPv4 != 0:
			ip = netip.AddrFrom16(ip16).Unmap().String()
		case flags&flagIPv6 != 0:
			ip = netip.AddrFrom16(ip16).String()
		}
	}
	r.encode(w, account, sub, number, flags&flagRawNumber != 0, ip, action, reason, country)
	if bad {
		// version 1 decoded such a record with its time and verdict only
		w[4] = flagTruncated << flagsShift
		w[5] = uint64(action&(1<<(reasonShift-actionShift)-1))<<actionShift | uint64(reason)<<reasonShift
	}
	if flags&flagTruncated != 0 {
		w[4] |= flagTruncated << flagsShift
	}
}
