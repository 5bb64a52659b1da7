#!/usr/bin/env bash
# automixed measures the auto class on the bench's mixed workload per route:
# what the bench's tables cannot show, since they aggregate every path. One
# worker per class under `taskset -c 0`; on CPU 1, a mixed load (wrk -t1
# -c64 rotating the bench's mixed paths: 70 % /fast?size=13, 20 %
# /db?io=20ms, 10 % /cpu?cpu=2ms) and, at the same time, a probe of the fast
# route alone (wrk -t1 -c4 --latency /fast?size=13). Per round and class:
# the mixed load's req/s and the probe's p50/p99. Rounds are interleaved
# (the machine is shared); the summary is the median per class.
#
# Usage: bench/automixed/run.sh [rounds=5] [seconds=5]
# Env:   CONFIGS="auto evloop evloop-pool goroutine threaded" (subset/order);
#        NICE=<n> as in bench/evloopratio/run.sh (default -10 as root);
#        AUTO_FLAGS="--auto-threshold 5ms" adds flags to the auto server;
#        "<config>-gmp2" runs a config with GOMAXPROCS=2 (the arbiter gives
#        a worker pinned to one CPU GOMAXPROCS=1).
set -euo pipefail

rounds=${1:-5}
secs=${2:-5}
configs=${CONFIGS:-"auto evloop evloop-pool goroutine threaded"}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
go build -o "$tmp/multiserve" ./cmd/multiserve
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

cat >"$tmp/mixed.lua" <<'LUA'
local paths = {"/fast?size=13", "/db?io=20ms", "/fast?size=13", "/fast?size=13", "/cpu?cpu=2ms",
	"/fast?size=13", "/db?io=20ms", "/fast?size=13", "/fast?size=13", "/fast?size=13"}
local i = 0
request = function()
	i = i % #paths + 1
	return wrk.format("GET", paths[i])
end
LUA

argv() { # config port
	local base="$tmp/multiserve -b 127.0.0.1:$2 -w 1 --log-level warning --worker-connections 2000"
	case $1 in
	*-gmp2) echo "env GOMAXPROCS=2 $(argv "${1%-gmp2}" "$2")" ;;
	auto) echo "$base -k auto ${AUTO_FLAGS:-} sim" ;;
	evloop) echo "$base -k evloop sim" ;;
	evloop-pool) echo "$base -k evloop --threads 1000 sim" ;;
	goroutine) echo "$base -k goroutine sim" ;;
	threaded) echo "$base -k threaded --threads 64 sim" ;;
	esac
}

ms() { # wrk latency ("1.23ms", "456.00us", "1.20s") -> milliseconds
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

run_one() { # config -> "mixed_rps probe_p50_ms probe_p99_ms"
	local cfg=$1 port pid out probe
	port=$(free_port)
	setsid nice -n "$NICE" taskset -c 0 $(argv "$cfg" "$port") >"$tmp/$cfg.log" 2>&1 &
	pid=$!
	wait_ready "$port"
	# warm-up: auto promotes its fast route after auto_samples requests
	pin 1 wrk -t1 -c16 -d1s -s "$tmp/mixed.lua" "http://127.0.0.1:$port" >/dev/null
	pin 1 wrk -t1 -c64 -d"${secs}s" -s "$tmp/mixed.lua" "http://127.0.0.1:$port" >"$tmp/mixed.out" &
	local wrkpid=$!
	sleep 0.5
	probe=$(pin 1 wrk -t1 -c4 -d"$((secs - 1))s" --latency "http://127.0.0.1:$port/fast?size=13")
	wait "$wrkpid" || true
	out=$(cat "$tmp/mixed.out")
	kill -TERM -- -"$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	local rps p50 p99
	rps=$(echo "$out" | awk '/^Requests\/sec/ {printf "%.0f", $2}')
	p50=$(ms "$(echo "$probe" | awk '$1 == "50%" {print $2}')")
	p99=$(ms "$(echo "$probe" | awk '$1 == "99%" {print $2}')")
	echo "$rps $p50 $p99"
}

declare -A rps p50 p99
for r in $(seq 1 "$rounds"); do
	line="round $r:"
	for c in $configs; do
		read -r a b d < <(run_one "$c")
		rps[$c,$r]=$a p50[$c,$r]=$b p99[$c,$r]=$d
		line+=" $c ${a} req/s fast p50 ${b} ms p99 ${d} ms;"
	done
	echo "$line"
done
for c in $configs; do
	echo "median $c: mixed $(for r in $(seq 1 "$rounds"); do echo "${rps[$c,$r]}"; done | median) req/s," \
		"fast route p50 $(for r in $(seq 1 "$rounds"); do echo "${p50[$c,$r]}"; done | median) ms," \
		"p99 $(for r in $(seq 1 "$rounds"); do echo "${p99[$c,$r]}"; done | median) ms"
done
