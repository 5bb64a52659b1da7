#!/usr/bin/env bash
# evloopratio measures issue 4's keep-alive hello targets: evloop (one worker,
# one loop) vs the goroutine class (one worker) vs bare gnet (one loop), in
# requests per server CPU-second. Each server runs under `taskset -c 0` in its
# own session; wrk -t1 -c64 runs under `taskset -c 1`. Server CPU is the
# utime+stime delta (/proc/PID/stat) of every process of the server's session
# (arbiter included) across the wrk run. Rounds are interleaved (the machine
# is shared and noisy); the summary is the median of the per-round ratios.
#
# Usage: bench/evloopratio/run.sh [rounds=5] [seconds=4]
# Env:   CONFIGS="evloop goroutine gnet" (subset/order), KEEP=1 keeps binaries.
set -euo pipefail

rounds=${1:-5}
secs=${2:-4}
configs=${CONFIGS:-"evloop goroutine gnet"}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$root"
go build -o "$tmp/multiserve" ./cmd/multiserve
go build -o "$tmp/gnetbare" ./bench/baseline/gnetbare
hz=$(getconf CLK_TCK)

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# session_ticks SID: utime+stime (clock ticks) of every live process in session SID.
session_ticks() {
	local sid=$1 total=0 f st
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		# fields after the ")" of comm: 3=state ... 6=session ... 14=utime 15=stime
		st=${st##*) }
		set -- $st
		if [ "${4}" = "$sid" ]; then
			total=$((total + ${12} + ${13}))
		fi
	done
	echo "$total"
}

argv() { # config port
	case $1 in
	evloop) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k evloop --evloop-loops 1 --log-level warning hello" ;;
	goroutine) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k goroutine --log-level warning hello" ;;
	gnet) echo "$tmp/gnetbare -addr 127.0.0.1:$2 -loops 1" ;;
	esac
}

wait_ready() { # port
	local i
	for i in $(seq 1 100); do
		if curl -fs -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
		sleep 0.1
	done
	echo "server on :$1 not ready" >&2
	return 1
}

run_one() { # config -> prints "reqps req_per_cpus"
	local cfg=$1 port pid t0 t1 out reqs
	port=$(free_port)
	setsid taskset -c 0 $(argv "$cfg" "$port") >"$tmp/$cfg.log" 2>&1 &
	pid=$!
	wait_ready "$port"
	# warm up one second (connections, worker spawn, page faults)
	taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
	t0=$(session_ticks "$pid")
	out=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port/")
	t1=$(session_ticks "$pid")
	kill -TERM -- -"$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	awk -v r="$reqs" -v s="$secs" -v d="$((t1 - t0))" -v hz="$hz" \
		'BEGIN { cpu = d / hz; if (cpu <= 0) cpu = 1 / hz; printf "%.0f %.0f\n", r / s, r / cpu }'
}

median() { sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f", m}'; }

declare -A eff
for r in $(seq 1 "$rounds"); do
	line="round $r:"
	for c in $configs; do
		read -r rps per < <(run_one "$c")
		eff[$c,$r]=$per
		line+=" $c ${rps} req/s ${per} req/cpu-s;"
	done
	echo "$line"
done

ratio() { # a b
	local r
	for r in $(seq 1 "$rounds"); do
		awk -v a="${eff[$1,$r]}" -v b="${eff[$2,$r]}" 'BEGIN { printf "%.4f\n", a / b }'
	done | median
}
ratios() { # a b: median and per-round list
	local r list=""
	for r in $(seq 1 "$rounds"); do
		list+=$(awk -v a="${eff[$1,$r]}" -v b="${eff[$2,$r]}" 'BEGIN { printf "%.2f ", a / b }')
	done
	echo "$(ratio "$1" "$2") (rounds: ${list% })"
}
for c in $configs; do
	echo "median $c req/cpu-s: $(for r in $(seq 1 "$rounds"); do echo "${eff[$c,$r]}"; done | median)"
done
has() { case " $configs " in *" $1 "*) return 0 ;; esac; return 1; }
if has evloop && has gnet; then echo "evloop / gnet bare = $(ratios evloop gnet)"; fi
if has evloop && has goroutine; then echo "evloop / goroutine = $(ratios evloop goroutine)"; fi
