//go:build !unix

package recent

func allocSlots(n int) []slot { return make([]slot, n) }
