//go:build unix

package recent

import (
	"syscall"
	"unsafe"
)

// mapSlice maps n zeroed T outside the Go heap (the ring's records, its
// intern table): the collector neither counts them toward its heap goal (a
// 200 MB ring would let 200 MB more garbage pile up between collections
// under a low GOGC) nor scans them, and pages nothing reached yet are
// never resident. T must hold no pointers. The mapping is never freed: a
// daemon has one ring for its lifetime.
func mapSlice[T any](n int) []T {
	var z T
	size := n * int(unsafe.Sizeof(z))
	if size == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]T, n)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n)
}
