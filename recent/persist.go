package recent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// FileName is the ring's file in the data dir.
const FileName = "recent.ring"

// The file: a header (magic, version, record size, count), count records
// of the words after the sequence word, oldest first, then (version 2) the
// intern table — how many names, and each as a length byte and its bytes,
// id 1 first — and a SHA-256 of everything before it. Version 1 (before
// issue 17's fourth pass: 96-byte records holding the names and the
// number's text) is still read, and converted.
var magic = [8]byte{'T', 'G', 'R', 'E', 'C', 'N', 'T', '1'}

const (
	fileVersion = 2
	diskRecord  = (words - 1) * 8
	headerLen   = 8 + 4 + 4 + 8
	// maxFileNames bounds the names a file may declare (ids are 20 bits).
	maxFileNames = idMask
)

// Save writes the ring's records to path (a new file linked into place by
// rename after fsync, so a crash leaves the previous file or the new one,
// never half of one). Writers go on meanwhile; what it saves is a
// consistent copy of each record, not of the ring at one instant.
func (r *Ring) Save(path string) (int, error) {
	if r == nil {
		return 0, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".recent-*.tmp")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := r.write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	return n, nil
}

func (r *Ring) write(f io.Writer) (int, error) {
	var hdrCount uint64
	n := uint64(len(r.slots))
	end := r.next.Load()
	start := uint64(0)
	if end > n {
		start = end - n
	}
	// The header holds the count: count the records first, then write
	// those still whole (one overwritten in between is written as its
	// newer self, which is as good).
	for i := start; i < end; i++ {
		if r.slots[i%n][0].Load() != 0 {
			hdrCount++
		}
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var hdr [headerLen]byte
	copy(hdr[:8], magic[:])
	binary.LittleEndian.PutUint32(hdr[8:], fileVersion)
	binary.LittleEndian.PutUint32(hdr[12:], diskRecord)
	binary.LittleEndian.PutUint64(hdr[16:], hdrCount)
	bw.Write(hdr[:])
	var w raw
	var rec [diskRecord]byte
	written := uint64(0)
	for i := start; i < end && written < hdrCount; i++ {
		if !r.load(int(i%n), &w) {
			continue
		}
		for k := 1; k < words; k++ {
			binary.LittleEndian.PutUint64(rec[(k-1)*8:], w[k])
		}
		if _, err := bw.Write(rec[:]); err != nil {
			return 0, err
		}
		written++
	}
	// a record being written when counted and still being written now:
	// pad with empty records (time 0), which every reader ignores
	clear(rec[:])
	for ; written < hdrCount; written++ {
		bw.Write(rec[:])
	}
	// the names after the records: every id a saved record holds was
	// published before the record, so it is below the count read now
	nn := r.names.count()
	var b8 [8]byte
	binary.LittleEndian.PutUint64(b8[:], nn)
	bw.Write(b8[:])
	for id := uint64(1); id <= nn; id++ {
		name, _ := r.names.get(uint32(id))
		bw.WriteByte(byte(len(name)))
		bw.WriteString(name)
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		return 0, err
	}
	return int(hdrCount), nil
}

// ErrCorrupt means the ring's file is damaged: it is not loaded.
var ErrCorrupt = errors.New("recent-traffic file damaged")

// Load fills an empty ring from path. A missing file is no error (0
// records). A damaged one (bad header, short, checksum mismatch) returns
// an error wrapping ErrCorrupt and leaves the ring empty. When the file
// holds more records than the ring, the newest are kept.
func (r *Ring) Load(path string) (int, error) {
	if r == nil {
		return 0, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	br := bufio.NewReaderSize(f, 1<<20)
	var hdr [headerLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: %s: header: %v", ErrCorrupt, path, err)
	}
	h.Write(hdr[:])
	if [8]byte(hdr[:8]) != magic {
		return 0, fmt.Errorf("%w: %s: not a recent-traffic file", ErrCorrupt, path)
	}
	count := binary.LittleEndian.Uint64(hdr[16:])
	switch v := binary.LittleEndian.Uint32(hdr[8:]); v {
	case 1:
		return r.loadV1(path, br, h, hdr, count, fi.Size())
	case fileVersion:
	default:
		return 0, fmt.Errorf("%w: %s: version %d, this tollgate reads 1 and %d", ErrCorrupt, path, v, fileVersion)
	}
	if s := binary.LittleEndian.Uint32(hdr[12:]); s != diskRecord {
		return 0, fmt.Errorf("%w: %s: record size %d, expected %d", ErrCorrupt, path, s, diskRecord)
	}
	if min := int64(headerLen) + int64(count)*diskRecord + 8 + sha256.Size; count > 1<<40 || fi.Size() < min {
		return 0, fmt.Errorf("%w: %s: %d bytes for %d records, expected at least %d", ErrCorrupt, path, fi.Size(), count, min)
	}
	n := uint64(len(r.slots))
	skip := uint64(0)
	if count > n {
		skip = count - n
	}
	fail := func(format string, a ...any) (int, error) {
		r.reset()
		return 0, fmt.Errorf("%w: %s: "+format, append([]any{ErrCorrupt, path}, a...)...)
	}
	var rec [diskRecord]byte
	idx := uint64(0)
	for i := uint64(0); i < count; i++ {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return fail("record %d: %v", i, err)
		}
		h.Write(rec[:])
		if i < skip || binary.LittleEndian.Uint64(rec[:8]) == 0 {
			continue
		}
		s := &r.slots[idx%n]
		for k := 1; k < words; k++ {
			s[k].Store(binary.LittleEndian.Uint64(rec[(k-1)*8:]))
		}
		idx++
	}
	var b8 [8]byte
	if _, err := io.ReadFull(br, b8[:]); err != nil {
		return fail("names: %v", err)
	}
	h.Write(b8[:])
	nn := binary.LittleEndian.Uint64(b8[:])
	if nn > maxFileNames || int64(nn) > fi.Size() {
		return fail("%d names", nn)
	}
	names := make([]string, nn+1)
	var nb [MaxNameBytes]byte
	for id := uint64(1); id <= nn; id++ {
		l, err := br.ReadByte()
		if err != nil {
			return fail("name %d: %v", id, err)
		}
		if _, err := io.ReadFull(br, nb[:l]); err != nil {
			return fail("name %d: %v", id, err)
		}
		h.Write([]byte{l})
		h.Write(nb[:l])
		names[id] = string(nb[:l])
	}
	sum := h.Sum(nil)
	var stored [sha256.Size]byte
	if _, err := io.ReadFull(br, stored[:]); err != nil || [sha256.Size]byte(sum) != stored {
		return fail("checksum mismatch")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return fail("bytes after the checksum")
	}
	// the table is rebuilt with the names the kept records use, in their
	// order: what a flood filled and the ring forgot is not carried over
	if err := r.reintern(idx, names); err != nil {
		return fail("%v", err)
	}
	r.next.Store(idx)
	return int(idx), nil
}

// reintern maps the file's name ids of the first count slots to the
// table's, and marks each slot whole. A name the table cannot take (it
// holds at least as many as the running ring did, so only a file written
// with larger bounds) leaves its record truncated.
func (r *Ring) reintern(count uint64, names []string) error {
	ids := make([]uint32, len(names))
	done := make([]bool, len(names))
	m := func(id uint64) (uint64, bool, error) {
		if id >= uint64(len(names)) {
			return 0, false, fmt.Errorf("name id %d of %d", id, len(names)-1)
		}
		if !done[id] {
			nid, ok := r.names.intern(names[id])
			if !ok {
				return 0, false, nil
			}
			ids[id], done[id] = nid, true
		}
		return uint64(ids[id]), true, nil
	}
	for i := uint64(0); i < count; i++ {
		s := &r.slots[i]
		num, meta := s[4].Load(), s[5].Load()
		whole := true
		if num&numInterned != 0 {
			id, ok, err := m(num & idMask)
			if err != nil {
				return err
			}
			whole = whole && ok
			num = num&^idMask | id
		}
		a, ok1, err := m(meta & idMask)
		if err != nil {
			return err
		}
		sub, ok2, err := m(meta >> subShift & idMask)
		if err != nil {
			return err
		}
		meta = meta&^(idMask|idMask<<subShift) | a | sub<<subShift
		if !whole || !ok1 || !ok2 {
			num |= flagTruncated << flagsShift
		}
		s[4].Store(num)
		s[5].Store(meta)
		s[0].Store(i + 1)
	}
	return nil
}

func (r *Ring) reset() {
	for i := range r.slots {
		r.slots[i][0].Store(0)
	}
	r.next.Store(0)
	r.names.reset()
}

// Run saves the ring to path every interval until ctx ends, then once
// more; errors go to onErr (the previous file stays).
func (r *Ring) Run(ctx context.Context, path string, interval time.Duration, onErr func(error)) {
	if r == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := r.Written()
	for {
		select {
		case <-ctx.Done():
			if _, err := r.Save(path); err != nil && onErr != nil {
				onErr(err)
			}
			return
		case <-t.C:
			if w := r.Written(); w != last {
				if _, err := r.Save(path); err != nil && onErr != nil {
					onErr(err)
					continue
				}
				last = w
			}
		}
	}
}
