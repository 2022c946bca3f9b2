//go:build !unix

package recent

// mapSlice allocates n zeroed T on the Go heap where mmap is not at hand.
func mapSlice[T any](n int) []T { return make([]T, n) }
