package matcher

import (
	"testing"
	"unsafe"
)

// A compiled account is allocated per account and subaccount: 100,000
// accounts pay for every byte, and more for each size class crossed. It
// fits Go's 448-byte size class (with the template pointer); a field that
// pushes it over costs 32 bytes per account (480-byte class) unless it
// fits in padding.
func TestAccountSize(t *testing.T) {
	if n := unsafe.Sizeof(account{}); n > 448 {
		t.Errorf("compiled account is %d bytes, over the 448-byte size class", n)
	}
}
