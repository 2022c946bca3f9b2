#!/usr/bin/env bash
# wrk-ratio.sh — issue 17's comparison: tollgate GET /v1/check against nginx
# returning the same answer as a constant 200, both unpinned on the same
# machine, driven by wrk (one connection pool per run), in interleaved
# rounds. For each run it reads the server's utime+stime from
# /proc/PID/stat (nginx: master and workers) before and after, and prints
# the CPU per request and the throughput, then the per-round ratios and
# their median.
#
# usage: bench/wrk-ratio.sh WORK [ROUNDS] [SECONDS]
#   WORK is a directory `go run ./bench -gen-only -work WORK` filled (data/,
#   highrisk.csv, numbers.txt; `make bench-wrk` does both). Env: TOLLGATE
#   (bin/tollgate), CONNS (64), THREADS (2), GOMAXPROCS (2), NGINX_WORKERS
#   (2), URI (an allowed check of the generated policy, seed 1),
#   NUMBERS=1 (wrk cycles through WORK/numbers.txt instead of the one
#   URI), PERF=1 (also perf stat: system calls and context switches per
#   request, on stderr), QUERY_LOOP (tollgate's -query-loop: fasthttp, the
#   default, or epoll).
# Needs wrk, nginx and curl (apt-get install wrk nginx-light). Everything it
# starts is stopped by pid on exit.
set -euo pipefail
work=${1:?usage: bench/wrk-ratio.sh WORK [ROUNDS] [SECONDS]}
rounds=${2:-5}
secs=${3:-5}
tg=${TOLLGATE:-bin/tollgate}
conns=${CONNS:-64}
threads=${THREADS:-2}
workers=${NGINX_WORKERS:-2}
uri=${URI:-/v1/check?to=%2B447700990403&account=acct-004702}
run=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$run"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { # utime+stime of the pids given, in clock ticks
	local t=0 p f
	for p in "$@"; do
		f=$(sed 's/^.*) //' "/proc/$p/stat")
		t=$((t + $(awk '{print $12 + $13}' <<<"$f")))
	done
	echo "$t"
}
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }

qport=$(freeport); aport=$(freeport)
hr=()
[ -f "$work/highrisk.csv" ] && hr=(-high-risk-file "$work/highrisk.csv")
GOMAXPROCS=${GOMAXPROCS:-2} "$tg" -data-dir "$work/data" -query-addr "127.0.0.1:$qport" -admin-addr "127.0.0.1:$aport" \
	-rpc-addr 127.0.0.1:0 -query-loop "${QUERY_LOOP:-fasthttp}" -admin-token "bench:wrk-ratio-token-$$" -drain-delay 0s "${hr[@]}" >"$run/tollgate.log" 2>&1 &
tpid=$!; pids+=("$tpid")
for _ in $(seq 600); do
	curl -sf "http://127.0.0.1:$qport/ready" >/dev/null 2>&1 && break
	sleep 0.2
done
body=$(curl -sf "http://127.0.0.1:$qport$uri") || { echo "tollgate did not answer $uri"; tail "$run/tollgate.log"; exit 1; }
case $body in *'"verdict":"allow"'*) ;; *) echo "not an allowed call: $body"; exit 1 ;; esac

nport=$(freeport)
mkdir -p "$run/tmp"
cat >"$run/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $workers;
pid $run/nginx.pid;
error_log $run/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server_tokens off;
    client_body_temp_path $run/tmp;
    proxy_temp_path $run/tmp;
    fastcgi_temp_path $run/tmp;
    uwsgi_temp_path $run/tmp;
    scgi_temp_path $run/tmp;
    server {
        listen 127.0.0.1:$nport;
        default_type application/json;
        location / { return 200 '$body'; }
    }
}
EOF
nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log" &
npid=$!; pids+=("$npid")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport$uri" >/dev/null 2>&1 && break; sleep 0.1; done
nginxpids() { echo "$npid" $(pgrep -P "$npid"); }

script=()
if [ "${NUMBERS:-0}" = 1 ]; then
	# wrk cycles through the numbers file (one "number account" per line).
	awk -F, 'n < 20000 && NF >= 2 && !/^#/ {n++; gsub(/\+/, "%2B", $1); printf "\"/v1/check?to=%s&account=%s\",\n", $1, $2}' "$work/numbers.txt" >"$run/paths.lua"
	{ echo 'local paths = {'; cat "$run/paths.lua"; echo '}'
	  echo 'local i = 0'
	  echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'; } >"$run/req.lua"
	script=(-s "$run/req.lua")
fi

echo "# wrk-ratio: tollgate pid $tpid (GOMAXPROCS=${GOMAXPROCS:-2}, -query-loop ${QUERY_LOOP:-fasthttp}), nginx pid $npid ($workers workers), wrk -t$threads -c$conns -d${secs}s, $rounds rounds, unpinned"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
hz=$(getconf CLK_TCK)
declare -a rcpu rthr
measure() { # name port pids...
	local name=$1 port=$2; shift 2
	wrk -t"$threads" -c"$conns" -d1s "${script[@]}" "http://127.0.0.1:$port$uri" >/dev/null 2>&1 # warm-up
	local t0 t1 out n
	local pp=""
	if [ "${PERF:-0}" = 1 ]; then
		# perf stat over the server's pids for the whole wrk run: system
		# calls and context switches per request.
		pp=$(IFS=,; echo "$*")
		perf stat -e raw_syscalls:sys_enter,context-switches -p "$pp" -o "$run/perf.txt" -- sleep $((secs + 1)) >/dev/null 2>&1 &
		pp=$!
		sleep 0.2
	fi
	t0=$(ticks "$@")
	out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" "${script[@]}" "http://127.0.0.1:$port$uri")
	t1=$(ticks "$@")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	local rps cpu
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", d / hz * 1e6 / n}')
	if [ -n "$pp" ]; then
		wait "$pp" || true
		# wrk's request count over perf's window (the run plus a second
		# of idle): an upper bound on the per-request figures.
		awk -v n="$n" -v who="$name" '/raw_syscalls|context-switches/ {gsub(/,/, "", $1); v[$2] = $1}
			END {printf "perf %s: per request %.2f system calls, %.3f context switches\n", who, v["raw_syscalls:sys_enter"] / n, v["context-switches"] / n}' "$run/perf.txt" >&2
	fi
	echo "$name $rps $cpu"
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		a=$(measure nginx "$nport" $(nginxpids)); b=$(measure tollgate "$qport" "$tpid")
	else
		b=$(measure tollgate "$qport" "$tpid"); a=$(measure nginx "$nport" $(nginxpids))
	fi
	read -r _ nr nc <<<"$a"; read -r _ tr tc <<<"$b"
	thr=$(awk -v a="$tr" -v b="$nr" 'BEGIN {printf "%.3f", a / b}')
	cpu=$(awk -v a="$tc" -v b="$nc" 'BEGIN {printf "%.3f", a / b}')
	rthr+=("$thr"); rcpu+=("$cpu")
	echo "round $r: nginx $nr req/s ${nc} µs CPU/req; tollgate $tr req/s ${tc} µs CPU/req; throughput ratio $thr, CPU/req ratio $cpu (load $(cut -d' ' -f1 /proc/loadavg))"
done
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }
echo "ratio: wrk unpinned throughput, tollgate http-get / nginx: $(printf '%s\n' "${rthr[@]}" | median) [$(range "${rthr[@]}")]"
echo "ratio: wrk unpinned server CPU per request, tollgate http-get / nginx: $(printf '%s\n' "${rcpu[@]}" | median) [$(range "${rcpu[@]}")] (target ≤ 1.00)"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
