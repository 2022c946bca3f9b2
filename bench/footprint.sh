#!/bin/bash
# bench/footprint.sh: tollgate's VmRSS after start and under a sustained
# load (issue 17; docs/benchmarks.md#footprint-second-pass-issue-17-2026-12-05).
#
#   go run ./bench -gen-only -work /tmp/fp          # 100,000 accounts imported, 1M-prefix CSV
#   bench/footprint.sh start BIN /tmp/fp            # start, VmRSS at /ready and 10 s later, stop
#   bench/footprint.sh soak BIN /tmp/fp 12m [RATE]  # start, open-loop http-get at RATE (20000)/s, VmRSS every 30 s
#
# tollgate runs as the bench driver runs it: GOMAXPROCS=1 on CPU 0, the load
# tester on CPU 1, -high-risk-file. Environment: LOADTEST (bin/tollgate-loadtest),
# TG_ENV (extra environment for tollgate, e.g. TOLLGATE_PPROF=127.0.0.1:6060
# with a -tags pprof build). Every process is stopped by its pid.
set -u
cmd=$1 BIN=$2 W=$3
D=$W/data
LOADTEST=${LOADTEST:-bin/tollgate-loadtest}
rss() { awk "/$1/{print int(\$2/1024)}" /proc/$PID/status; }
start() {
	# a ring saved by an earlier soak would be loaded resident (52 MB at
	# the default -recent-size): start without past traffic
	rm -f "$D/tollgate.run.json" "$D/recent.ring"
	env GOMAXPROCS=1 ${TG_ENV:-} taskset -c 0 "$BIN" -data-dir "$D" -query-addr 127.0.0.1:0 -admin-addr 127.0.0.1:0 \
		-rpc-addr 127.0.0.1:0 -admin-token bench:footprint-0123456789 -drain-delay 0s \
		-high-risk-file "$W/highrisk.csv" >>"$W/tollgate.log" 2>&1 &
	PID=$!
	t0=$(date +%s.%N)
	while :; do
		kill -0 $PID 2>/dev/null || { echo "tollgate exited: $W/tollgate.log"; exit 1; }
		Q=$(python3 -c "import json;d=json.load(open('$D/tollgate.run.json'));print(d['query_addr'] if d['pid']==$PID else '')" 2>/dev/null)
		[ -n "$Q" ] && curl -sf "http://$Q/ready" >/dev/null 2>&1 && break
		sleep 0.1
	done
	echo "ready $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s: VmRSS $(rss VmRSS) MiB, VmHWM $(rss VmHWM) MiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
}
case $cmd in
start)
	start
	sleep 10
	echo "10 s later: VmRSS $(rss VmRSS) MiB"
	;;
soak)
	start
	( while kill -0 $PID 2>/dev/null; do
		echo "$(date -u +%T) VmRSS $(rss VmRSS) MiB, load $(cut -d' ' -f1 /proc/loadavg), ring $(curl -s "http://$Q/metrics" | awk '/^tollgate_recent_queries /{print $2}')"
		sleep 30
	done ) &
	S=$!
	taskset -c 1 "$LOADTEST" -transport http-get -addr "$Q" -mode open -rate "${5:-20000}" -duration "$4" \
		-numbers "$W/numbers.txt" -json -quiet -max-errors 1 -min-rate-ratio 0 -max-behind-schedule 1 -slo-p99 0
	sleep 5
	echo "after the load: VmRSS $(rss VmRSS) MiB, VmHWM $(rss VmHWM) MiB"
	kill $S
	;;
*)
	echo "usage: $0 start|soak BIN WORKDIR [DURATION [RATE]]"; exit 2
	;;
esac
kill -TERM $PID
wait $PID
