package service

import (
	"container/heap"
	"sort"
)

// firstAfter returns, sorted, the at most limit smallest names greater than
// after (all of them when limit <= 0). A page of the account list is then
// O(n log limit) rather than a sort of every account: the console pages
// through 100,000 accounts 50 at a time, under the lock writes wait for.
func firstAfter[V any](m map[string]V, after string, limit int) []string {
	if limit <= 0 || limit >= len(m) {
		names := make([]string, 0, len(m))
		for n := range m {
			if n > after {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		if limit > 0 && len(names) > limit {
			names = names[:limit]
		}
		return names
	}
	h := make(maxHeap, 0, limit)
	for n := range m {
		switch {
		case n <= after:
		case len(h) < limit:
			heap.Push(&h, n)
		case n < h[0]:
			h[0] = n
			heap.Fix(&h, 0)
		}
	}
	names := []string(h)
	sort.Strings(names)
	return names
}

// maxHeap keeps the largest kept name on top, the first to go.
type maxHeap []string

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *maxHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
