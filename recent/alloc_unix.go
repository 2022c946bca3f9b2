//go:build unix

package recent

import (
	"syscall"
	"unsafe"
)

// allocSlots maps the ring outside the Go heap: the collector neither
// counts it toward its heap goal (a 200 MB ring would let 200 MB more
// garbage pile up between collections under a low GOGC) nor scans it, and
// pages no record reached yet are never resident.
func allocSlots(n int) []slot {
	b, err := syscall.Mmap(-1, 0, n*RecordBytes, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]slot, n)
	}
	return unsafe.Slice((*slot)(unsafe.Pointer(&b[0])), n)
}
