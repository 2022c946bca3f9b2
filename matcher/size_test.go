package matcher

import (
	"testing"
	"unsafe"
)

// A compiled account is allocated per account and subaccount: 100,000
// accounts pay for every byte, and more for each size class crossed. With
// templates (a pointer, and the name inside src) it is 456 bytes, Go's
// 480-byte class: 32 bytes an account more than main's 432 (448-byte
// class) before them. A field that pushes it over 480 costs 32 more.
func TestAccountSize(t *testing.T) {
	if n := unsafe.Sizeof(account{}); n > 480 {
		t.Errorf("compiled account is %d bytes, over the 480-byte size class", n)
	}
}
