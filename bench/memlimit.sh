#!/bin/bash
# bench/memlimit.sh BIN WORKDIR DURATION [FLAGS...]: tollgate's CPU per answered check at an
# open-loop 20,000/s for DURATION with extra FLAGS (e.g. -memory-limit 180), read from /proc/PID/stat;
# tollgate started as bench/footprint.sh starts it (GOMAXPROCS=1 on CPU 0, the load tester on CPU 1).
# Environment: LOADTEST (bin/tollgate-loadtest). Every process is stopped by its pid.
set -u
BIN=$1 W=$2 DUR=$3; shift 3
D=$W/data
rm -f "$D/tollgate.run.json" "$D/recent.ring"
env GOMAXPROCS=1 taskset -c 0 "$BIN" -data-dir "$D" -query-addr 127.0.0.1:0 -admin-addr 127.0.0.1:0 \
	-rpc-addr 127.0.0.1:0 -admin-token bench:footprint-0123456789 -drain-delay 0s \
	-high-risk-file "$W/highrisk.csv" "$@" >>"$W/tollgate.log" 2>&1 &
PID=$!
while :; do
	kill -0 $PID 2>/dev/null || { echo "tollgate exited"; exit 1; }
	Q=$(python3 -c "import json;d=json.load(open('$D/tollgate.run.json'));print(d['query_addr'] if d['pid']==$PID else '')" 2>/dev/null)
	[ -n "$Q" ] && curl -sf "http://$Q/ready" >/dev/null 2>&1 && break
	sleep 0.1
done
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
c0=$(cpu)
out=$(taskset -c 1 "${LOADTEST:-bin/tollgate-loadtest}" -transport http-get -addr "$Q" -mode open -rate 20000 -duration "$DUR" \
	-numbers "$W/numbers.txt" -json -quiet -max-errors 1 -min-rate-ratio 0 -max-behind-schedule 1 -slo-p99 0 2>&1)
c1=$(cpu)
n=$(echo "$out" | python3 -c "import json,sys;d=json.load(sys.stdin);print(d.get('requests',d.get('completed',0)))" 2>/dev/null)
tck=$(getconf CLK_TCK)
echo "flags [$*] requests $n cpu $(( (c1-c0)*1000/tck )) ms, µs/check $(python3 -c "print(round(($c1-$c0)/$tck*1e6/max(1,int('${n:-0}' or 0)),2))"), VmRSS $(awk '/VmRSS/{print int($2/1024)}' /proc/$PID/status) MiB, load $(cut -d' ' -f1 /proc/loadavg)"
kill -TERM $PID; wait $PID
