#!/usr/bin/env bash
# loop-profile.sh — where a check's CPU goes on the epoll transport (issue
# 17, fifth pass): starts TOLLGATE (-query-loop epoll, GOMAXPROCS=2, the
# `make bench-wrk` policy in WORK), drives it with wrk -t2 -c64 for 8 s
# (after 1 s of warm-up) and records `perf record -e cpu-clock -F 4000 -g`
# over the daemon for 5 s of it, then prints the samples' shares grouped
# (kernel, the system-call stubs, the query handler, the decision, the
# recent-traffic ring, the stats, fasthttp, the runtime) and, from perf's
# event count (CPU ns) and wrk's rate, an estimate of µs per request for
# each (perf slows what it records: read the shares, not the µs).
# bench/floor works as TOLLGATE too (FLOOR=epoll FLOOR_LOOPS=1).
#
# usage: bench/loop-profile.sh WORK OUT   (writes OUT.data and OUT.wrk)
# Needs perf, wrk and curl.
set -euo pipefail
work=${1:?usage: bench/loop-profile.sh WORK OUT}
out=${2:?usage: bench/loop-profile.sh WORK OUT}
tg=${TOLLGATE:-bin/tollgate}
uri=${URI:-/v1/check?to=%2B447700990403&account=acct-004702}
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
hr=()
[ -f "$work/highrisk.csv" ] && hr=(-high-risk-file "$work/highrisk.csv")
GOMAXPROCS=2 "$tg" -data-dir "$work/data" -query-addr "127.0.0.1:$port" -admin-addr 127.0.0.1:0 -rpc-addr 127.0.0.1:0 \
	-query-loop epoll -admin-token "bench:loop-profile-token-$$" -drain-delay 0s "${hr[@]}" >"$out.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.2; done
wrk -t2 -c64 -d1s "http://127.0.0.1:$port$uri" >/dev/null
wrk -t2 -c64 -d8s "http://127.0.0.1:$port$uri" >"$out.wrk" &
w=$!
sleep 1
perf record -e cpu-clock -F 4000 -g -p "$pid" -o "$out.data" -- sleep 5 >/dev/null 2>&1
wait "$w"
rps=$(awk '/^Requests\/sec/ {print $2}' "$out.wrk")
ns=$(perf report -i "$out.data" --stdio 2>/dev/null | awk '/^# Event count/ && !n++ {print $NF}')
echo "# $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg), wrk $rps req/s, $ns CPU ns sampled"
perf report -i "$out.data" --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep '%' | awk -v n="$ns" -v r="$rps" '
{p=$1; sub("%","",p); s=$3; for(i=4;i<=NF;i++) s=s" "$i; g="other";
 if ($2=="[k]") g="kernel";
 else if (s ~ /Syscall|RawSyscall|rawRead|rawWrite|epollPoll|EpollWait/) g="system-call stubs";
 else if (s ~ /handler\/query/) g="handler/query (parse, decode, encode, loop)";
 else if (s ~ /tollgate\/(matcher|numplan|policy|velocity|origin|fraudstate|cow)/) g="decision (matcher, numplan, velocity)";
 else if (s ~ /tollgate\/recent/) g="recent-traffic ring";
 else if (s ~ /tollgate\/stats/) g="stats";
 else if (s ~ /tollgate/) g="tollgate, other";
 else if (s ~ /fasthttp/) g="fasthttp";
 else if (s ~ /^runtime\.(mapaccess|memmove|memeq|memclr)|aeshash|memeqbody|cmpbody|indexbyte/) g="runtime: maps, memmove, compares";
 else if (s ~ /^(runtime|internal|sync|time)/) g="runtime, other";
 t[g]+=p}
END {for (g in t) printf "%6.2f%%  %5.2f µs/req  %s\n", t[g], t[g]/100*n/1000/(r*5), g}' | sort -rn
