package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"syscall"
	"time"
)

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common), as far as
// verifyFile needs it. bbolt writes native byte order; tollgate runs on
// little-endian machines.
const (
	pageHeaderSize   = 16
	elementSize      = 16 // branch and leaf elements alike
	inBucketSize     = 16
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	noFreelist       = ^uint64(0)
	maxTreeDepth     = 64
)

var le = binary.LittleEndian

// verifier walks a bbolt file's page tree with ordinary reads before bbolt
// maps it. bbolt trusts every offset and page id it finds and dereferences
// them in the mmap, so a damaged page makes it fault (a fatal error in Go,
// not a panic) — possibly in a goroutine of its own, where no recover can
// help. Checking that every page id is below the high-water mark, every page
// lies inside the file and every key and value lies inside its page makes
// the file safe for bbolt to read; damage is then a FormatError.
type verifier struct {
	f        *os.File
	path     string
	size     int64
	pageSize int64
	pgid     uint64 // high-water mark: valid page ids are below it
	seen     map[uint64]bool
}

func (v *verifier) damaged(format string, args ...any) error {
	return &FormatError{Path: v.path, Reason: "the file is damaged (" + fmt.Sprintf(format, args...) + ")"}
}

type boltMeta struct {
	pageSize                   uint32
	root, freelist, pgid, txid uint64
}

func (v *verifier) readMeta(off int64) (boltMeta, bool) {
	var b [pageHeaderSize + 64]byte
	if _, err := v.f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	m := b[pageHeaderSize:]
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// verifyFile checks the file at path (size bytes). It takes the same lock
// bbolt will (shared to read, exclusive to write), so it never reads a file
// another process is writing: while the daemon runs, a reader gets ErrLocked
// here, as it would from bbolt. A file with no valid meta page is left to
// bbolt, which reports it as not a bbolt file or damaged.
func verifyFile(path string, size int64, exclusive bool, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close() // closing the descriptor releases the lock
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK {
			return fmt.Errorf("%s: lock: %w", path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", path, ErrLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, err := f.Stat(); err == nil {
		size = fi.Size() // as of holding the lock
	}
	v := &verifier{f: f, path: path, size: size, seen: map[uint64]bool{}}
	m0, ok0 := v.readMeta(0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	m1, ok1 := v.readMeta(ps)
	if ok0 != ok1 {
		// bbolt takes the valid meta page. When the damaged one is the
		// latest write's, that silently rolls the file back to the state
		// before it: an acknowledged write (a deny-all rule, a lock)
		// gone. A torn write cannot cause this (the checksummed part
		// lies in one sector), so it is damage: refuse.
		good, badOff := m0, ps
		if ok1 {
			good, badOff = m1, 0
		}
		var raw [8]byte
		v.f.ReadAt(raw[:], badOff+pageHeaderSize+48)
		if claimed := le.Uint64(raw[:]); claimed+1 != good.txid {
			return v.damaged("the meta page of the latest write fails its checksum (it claims transaction %d; the other page holds %d): opening would silently fall back to the state before that write", claimed, good.txid)
		}
	}
	var m boltMeta
	switch {
	case ok0 && ok1 && m1.txid > m0.txid:
		m = m1
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return nil
	}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return v.damaged("page size %d", m.pageSize)
	}
	v.pageSize, v.pgid = int64(m.pageSize), m.pgid
	if m.pgid > uint64(size)/uint64(m.pageSize) {
		return v.damaged("truncated: it ends at %d bytes, its pages reach %d", size, m.pgid*uint64(m.pageSize))
	}
	if m.freelist != noFreelist {
		if err := v.freelist(m.freelist); err != nil {
			return err
		}
	}
	return v.bucketPage(m.root, 0)
}

// page reads page id with its overflow pages.
func (v *verifier) page(id uint64) ([]byte, error) {
	if id < 2 || id >= v.pgid {
		return nil, v.damaged("page %d is outside 2..%d", id, v.pgid-1)
	}
	var hdr [pageHeaderSize]byte
	if _, err := v.f.ReadAt(hdr[:], int64(id)*v.pageSize); err != nil {
		return nil, v.damaged("page %d unreadable: %v", id, err)
	}
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= v.pgid {
		return nil, v.damaged("page %d overflows past the end (%d more pages)", id, overflow)
	}
	b := make([]byte, int64(1+overflow)*v.pageSize)
	if _, err := v.f.ReadAt(b, int64(id)*v.pageSize); err != nil && err != io.EOF {
		return nil, v.damaged("page %d unreadable: %v", id, err)
	}
	if got := le.Uint64(b[0:]); got != id {
		return nil, v.damaged("page %d carries id %d", id, got)
	}
	return b, nil
}

func (v *verifier) freelist(id uint64) error {
	b, err := v.page(id)
	if err != nil {
		return err
	}
	if le.Uint16(b[8:]) != freelistPageFlag {
		return v.damaged("freelist page %d has type %#x", id, le.Uint16(b[8:]))
	}
	start, count := pageHeaderSize, uint64(le.Uint16(b[10:]))
	if count == 0xFFFF {
		count = le.Uint64(b[pageHeaderSize:])
		start += 8
	}
	if count > uint64(len(b)-start)/8 {
		return v.damaged("freelist page %d claims %d entries", id, count)
	}
	for i := uint64(0); i < count; i++ {
		if p := le.Uint64(b[start+int(i)*8:]); p < 2 || p >= v.pgid {
			return v.damaged("freelist page %d lists page %d", id, p)
		}
	}
	return nil
}

// bucketPage checks the page tree of a bucket rooted at page id.
func (v *verifier) bucketPage(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return v.damaged("page tree deeper than %d", maxTreeDepth)
	}
	if v.seen[id] {
		return v.damaged("page %d is referenced twice", id)
	}
	v.seen[id] = true
	b, err := v.page(id)
	if err != nil {
		return err
	}
	return v.nodes(b, fmt.Sprintf("page %d", id), depth)
}

// nodes checks the elements of a branch or leaf page held in b (a page read
// from the file, or an inline bucket's page inside a value).
func (v *verifier) nodes(b []byte, where string, depth int) error {
	if len(b) < pageHeaderSize {
		return v.damaged("%s is shorter than a page header", where)
	}
	flags, count := le.Uint16(b[8:]), int(le.Uint16(b[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		return v.damaged("%s has type %#x, not branch or leaf", where, flags)
	}
	if pageHeaderSize+count*elementSize > len(b) {
		return v.damaged("%s claims %d elements", where, count)
	}
	for i := 0; i < count; i++ {
		e := pageHeaderSize + i*elementSize
		if flags == branchPageFlag {
			pos, ksize := int(le.Uint32(b[e:])), int(le.Uint32(b[e+4:]))
			if pos < 0 || ksize < 0 || e+pos+ksize > len(b) {
				return v.damaged("%s element %d points outside the page", where, i)
			}
			if err := v.bucketPage(le.Uint64(b[e+8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		lflags := le.Uint32(b[e:])
		pos, ksize, vsize := int(le.Uint32(b[e+4:])), int(le.Uint32(b[e+8:])), int(le.Uint32(b[e+12:]))
		if pos < 0 || ksize < 0 || vsize < 0 || e+pos+ksize+vsize > len(b) {
			return v.damaged("%s element %d points outside the page", where, i)
		}
		if lflags&bucketLeafFlag == 0 {
			continue
		}
		val := b[e+pos+ksize : e+pos+ksize+vsize]
		if len(val) < inBucketSize {
			return v.damaged("%s element %d is a bucket of %d bytes", where, i, len(val))
		}
		if root := le.Uint64(val); root != 0 {
			if err := v.bucketPage(root, depth+1); err != nil {
				return err
			}
		} else if err := v.nodes(val[inBucketSize:], where+" inline bucket", depth+1); err != nil {
			return err
		}
	}
	return nil
}
