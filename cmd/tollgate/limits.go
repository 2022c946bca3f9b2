package main

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"

	"github.com/tollgate/tollgate/handler"
)

// Descriptor budget: what the daemon keeps for itself before the listeners
// share the rest (the data file, the log, the listeners, the poller, a
// reload's files, webhook connections), and the most connections a query
// or RPC listener holds by default whatever the limit: an idle connection
// costs 25 KB on the query listener and 17 KB on the RPC one
// (BenchmarkIdleConnMemory), so 4096 of each is at most about 170 MB.
const (
	fdHeadroom      = 64
	maxDefaultConns = 4096
	maxAdminConns   = 256
)

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does this too on Linux; doing it here makes it explicit and lets
// the result be logged) and returns the limit in force.
func raiseNoFile() (soft, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			r = want
		}
	}
	return r.Cur, r.Max, nil
}

// connCaps sizes the three listeners' connection caps from the descriptor
// limit: a headroom of 64 plus 1/16 is kept, query and RPC get 2/5 of the
// rest each (at most maxDefaultConns, or exactly maxConns when set) and
// admin 1/10 (at most maxAdminConns). The sum always stays below nofile.
func connCaps(nofile uint64, maxConns int) (query, rpc, admin int, err error) {
	keep := fdHeadroom + nofile/16
	if nofile <= keep+8 {
		return 0, 0, 0, fmt.Errorf("the open-file limit (%d) is too low to serve; raise it (ulimit -n, LimitNOFILE=) to at least %d", nofile, keep+64)
	}
	budget := int(min(nofile-keep, 1<<30))
	query = max(budget*2/5, 1)
	admin = max(min(budget/10, maxAdminConns), 1)
	if maxConns > 0 {
		if 2*maxConns+admin > budget {
			return 0, 0, 0, fmt.Errorf("-max-conns %d: two listeners of %d connections and the admin listener's %d do not fit the open-file limit (%d, of which %d are kept for the rest); lower it or raise the limit", maxConns, maxConns, admin, nofile, keep)
		}
		query = maxConns
	} else {
		query = min(query, maxDefaultConns)
	}
	return query, query, admin, nil
}

// parseSources reads -proxy-sources: comma-separated addresses or CIDR
// prefixes.
func parseSources(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("-proxy-sources: %q is not an address or a CIDR prefix", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// listenerLimits builds one listener's limits: DefaultConnLimits of max,
// the proxies' sources, and -max-conns-per-source when set.
func listenerLimits(max, perSource int, proxies []netip.Prefix) handler.ConnLimits {
	l := handler.DefaultConnLimits(max)
	l.Trusted = proxies
	if perSource > 0 {
		l.PerSource = perSource
	}
	return l
}
