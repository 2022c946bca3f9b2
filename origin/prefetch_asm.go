//go:build amd64 || arm64

package origin

import "unsafe"

// prefetch asks the CPU to start loading p's cache line, without waiting
// for it (PREFETCHT0, PRFM): a miss then overlaps with the caller's work
// instead of stalling the load that needs the line later. A hint only:
// it never faults and changes nothing.
//
//go:noescape
func prefetch(p unsafe.Pointer)
