#!/usr/bin/env bash
# evloopratio measures keep-alive hello per server CPU-second: evloop (one worker,
# one loop) vs the goroutine class (one worker) vs bare gnet (one loop), in
# requests per server CPU-second. Each server runs under `taskset -c 0` in its
# own session; wrk -t1 -c64 runs under `taskset -c 1`. Server CPU is the
# utime+stime delta (/proc/PID/stat) of every process of the server's session
# (arbiter included) across the wrk run. Rounds are interleaved (the machine
# is shared and noisy); the summary is the median of the per-round ratios.
#
# Usage: bench/evloopratio/run.sh [rounds=5] [seconds=4]
# Env:   CONFIGS="evloop goroutine gnet" (subset/order);
#        BASE_REV=<git rev> also runs "evloop-base", multiserve built from that
#        revision, in the same rounds (before/after in one run);
#        "auto" (add it to CONFIGS) is the auto class, one loop: its ratio to
#        evloop is the cost of measuring and placing routes;
#        "evloop-gnet" is evloop on gnet's own acceptor
#        (MULTISERVE_EVLOOP_GNET_ACCEPTOR=true) instead of its accept loop:
#          CLOSE=1 CONFIGS="evloop evloop-gnet" RATIOS="evloop/evloop-gnet" bench/evloopratio/run.sh 9 3
#        "evloop-reuse" (add it to CONFIGS) is evloop with
#        MULTISERVE_EVLOOP_REUSE_REQUESTS=1 (recycled *http.Request);
#        "<config>-nosb" (e.g. "evloop-nosb", "goroutine-nosb") is the same
#        server with MULTISERVE_NO_SCOREBOARD=1 (scoreboard off: no slot, no
#        middleware, no connection observer), for the scoreboard's overhead:
#          CONFIGS="goroutine goroutine-nosb evloop evloop-nosb" bench/evloopratio/run.sh 7 4
#        "sync", "threaded" (4 threads), "nethttp" (goroutine class, http_engine
#        net/http) and "nginx" (master + 1 worker, `return 200`, as the bench's
#        nginx peer) are further configs;
#        "<config>-gmp2" runs it with GOMAXPROCS=2 (the arbiter's choice is
#        overridden by the environment);
#        CLOSE=1 sends every request on a new connection (wrk -H "Connection:
#        close"): the connection-per-request case;
#        RATIOS="a/b ..." prints the median ratio of each pair besides the
#        built-in ones (connratio.sh sets both for the conn-per-request targets);
#        "goroutine-base" runs the goroutine class from BASE_REV's build, and
#        so does "<config>-base" for any multiserve config (sync-base...);
#        NICE=<n> runs servers and wrk at nice n (default -10 as root, as the
#        bench runner's --nice -10: it shields the measurement from other
#        processes on a shared machine; NICE=0 turns it off);
#        PERF=1 adds, in each round, a run of every config not ending in
#        -nosb under `perf record -g` of its worker (not counted in req/cpu-s)
#        and reports the scoreboard's share of the worker's CPU samples: a
#        sample is the scoreboard's when its first frame outside the runtime,
#        sync and the vDSO is in package scoreboard or internal/respmeter (so
#        its clock reads count, the handler it wraps does not).
set -euo pipefail

rounds=${1:-5}
secs=${2:-4}
configs=${CONFIGS:-"evloop goroutine gnet"}
if [ -n "${BASE_REV:-}" ]; then configs="evloop-base $configs"; fi
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$root"
go build -o "$tmp/multiserve" ./cmd/multiserve
go build -o "$tmp/gnetbare" ./bench/baseline/gnetbare
if [ -n "${BASE_REV:-}" ]; then
	mkdir "$tmp/src"
	git archive "$BASE_REV" | tar -x -C "$tmp/src"
	(cd "$tmp/src" && go build -o "$tmp/multiserve-base" ./cmd/multiserve)
fi
hz=$(getconf CLK_TCK)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"

# session_ticks SID: "utime stime" (clock ticks) of every live process in session SID.
session_ticks() {
	local sid=$1 ut=0 st=0 f line
	for f in /proc/[0-9]*/stat; do
		line=$(cat "$f" 2>/dev/null) || continue
		# fields after the ")" of comm: 3=state ... 6=session ... 14=utime 15=stime
		line=${line##*) }
		set -- $line
		if [ "${4}" = "$sid" ]; then
			ut=$((ut + ${12}))
			st=$((st + ${13}))
		fi
	done
	echo "$ut $st"
}

argv() { # config port
	case $1 in
	*-nosb) echo "env MULTISERVE_NO_SCOREBOARD=1 $(argv "${1%-nosb}" "$2")" ;;
	*-gmp2) echo "env GOMAXPROCS=2 $(argv "${1%-gmp2}" "$2")" ;;
	goroutine-base) echo "$tmp/multiserve-base -b 127.0.0.1:$2 -w 1 -k goroutine --log-level warning hello" ;;
	evloop-base) echo "$tmp/multiserve-base -b 127.0.0.1:$2 -w 1 -k evloop --evloop-loops 1 --log-level warning hello" ;;
	evloop) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k evloop --evloop-loops 1 --log-level warning hello" ;;
	evloop-gnet) echo "env MULTISERVE_EVLOOP_GNET_ACCEPTOR=true $(argv evloop "$2")" ;;
	evloop-reuse) echo "env MULTISERVE_EVLOOP_REUSE_REQUESTS=1 $tmp/multiserve -b 127.0.0.1:$2 -w 1 -k evloop --evloop-loops 1 --log-level warning hello" ;;
	goroutine) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k goroutine --log-level warning hello" ;;
	auto) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k auto --evloop-loops 1 --log-level warning hello" ;;
	gnet) echo "$tmp/gnetbare -addr 127.0.0.1:$2 -loops 1" ;;
	*-base) argv "${1%-base}" "$2" | sed "s#$tmp/multiserve #$tmp/multiserve-base #" ;;
	sync) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k sync --log-level warning hello" ;;
	threaded) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k threaded --threads 4 --log-level warning hello" ;;
	nethttp) echo "$tmp/multiserve -b 127.0.0.1:$2 -w 1 -k goroutine --http-engine net/http --log-level warning hello" ;;
	nginx)
		nginx_conf "$2"
		echo "nginx -p $tmp/nginx -c $tmp/nginx/nginx.conf -e $tmp/nginx/error.log"
		;;
	esac
}

nginx_conf() { # port: one worker answering `return 200`, as the bench's nginx peer
	mkdir -p "$tmp/nginx/tmp"
	cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$1 backlog=2048;
        location / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
EOF
}

wrkargs=()
if [ "${CLOSE:-}" = 1 ]; then wrkargs=(-H "Connection: close"); fi

run_one() { # config -> prints "reqps req_per_cpus user_us_per_req sys_us_per_req"
	local cfg=$1 port pid u0 s0 u1 s1 out reqs
	port=$(free_port)
	setsid nice -n "$NICE" taskset -c 0 $(argv "$cfg" "$port") >"$tmp/$cfg.log" 2>&1 &
	pid=$!
	wait_ready "$port"
	# warm up one second (connections, worker spawn, page faults)
	pin 1 wrk -t1 -c64 -d1s "${wrkargs[@]}" "http://127.0.0.1:$port/" >/dev/null
	read -r u0 s0 < <(session_ticks "$pid")
	out=$(pin 1 wrk -t1 -c64 -d"${secs}s" "${wrkargs[@]}" "http://127.0.0.1:$port/")
	read -r u1 s1 < <(session_ticks "$pid")
	kill -TERM -- -"$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	awk -v r="$reqs" -v s="$secs" -v u="$((u1 - u0))" -v k="$((s1 - s0))" -v hz="$hz" \
		'BEGIN { cpu = (u + k) / hz; if (cpu <= 0) cpu = 1 / hz
		printf "%.0f %.0f %.2f %.2f\n", r / s, r / cpu, u / hz / r * 1e6, k / hz / r * 1e6 }'
}

# sbshare: reads `perf script` (call graphs, leaf first), prints the percentage
# of samples that are the scoreboard's (see PERF above).
sbshare() {
	awk '
	/^[^ \t]/ { if (inside) finish(); inside = 1; decided = 0; next }
	/^[ \t]*$/ { if (inside) finish(); inside = 0; next }
	{
		if (decided) next
		sym = $2; sub(/\+0x[0-9a-f]+$/, "", sym)
		if (sym ~ /^(runtime\.|internal\/runtime\/|sync\.|sync\/atomic\.)/ || $0 ~ /\[vdso\]/) next
		decided = 1
		if (sym ~ /multiserve\/(scoreboard|internal\/respmeter)\./) hit = 1
	}
	function finish() { total++; if (hit) sb++; hit = 0 }
	END { if (inside) finish(); if (total) printf "%.2f\n", 100 * sb / total; else print "na" }'
}

perf_one() { # config -> prints the scoreboard's share (%) of its worker's CPU samples
	local cfg=$1 port pid wpid wrkpid
	port=$(free_port)
	setsid nice -n "$NICE" taskset -c 0 $(argv "$cfg" "$port") >"$tmp/$cfg.log" 2>&1 &
	pid=$!
	wait_ready "$port"
	pin 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
	wpid=$(pgrep -P "$pid" | head -1) || true
	if [ -z "$wpid" ]; then
		kill -TERM -- -"$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo na
		return
	fi
	pin 1 wrk -t1 -c64 -d"$((secs + 1))s" "http://127.0.0.1:$port/" >/dev/null &
	wrkpid=$!
	sleep 0.5
	perf record -q -F 1999 -g -p "$wpid" -o "$tmp/perf.data" -- sleep "$secs" >/dev/null 2>&1
	wait "$wrkpid" || true
	kill -TERM -- -"$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	perf script -i "$tmp/perf.data" 2>/dev/null | sbshare
}


declare -A eff usr sys share
for r in $(seq 1 "$rounds"); do
	line="round $r:"
	for c in $configs; do
		read -r rps per us ks < <(run_one "$c")
		eff[$c,$r]=$per
		usr[$c,$r]=$us
		sys[$c,$r]=$ks
		line+=" $c ${rps} req/s ${per} req/cpu-s (user ${us} sys ${ks} us/req);"
	done
	if [ "${PERF:-}" = 1 ]; then
		for c in $configs; do
			case $c in *-nosb | gnet) continue ;; esac
			share[$c,$r]=$(perf_one "$c")
			line+=" $c scoreboard ${share[$c,$r]}% of worker CPU samples;"
		done
	fi
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
	echo "median $c: $(for r in $(seq 1 "$rounds"); do echo "${eff[$c,$r]}"; done | median) req/cpu-s," \
		"user $(for r in $(seq 1 "$rounds"); do echo "${usr[$c,$r]}"; done | median) us/req," \
		"sys $(for r in $(seq 1 "$rounds"); do echo "${sys[$c,$r]}"; done | median) us/req"
done
has() { case " $configs " in *" $1 "*) return 0 ;; esac; return 1; }
if has evloop && has gnet; then echo "evloop / gnet bare = $(ratios evloop gnet)"; fi
if has evloop && has goroutine; then echo "evloop / goroutine = $(ratios evloop goroutine)"; fi
if has evloop-base && has gnet; then echo "evloop-base / gnet bare = $(ratios evloop-base gnet)"; fi
if has evloop-base && has goroutine; then echo "evloop-base / goroutine = $(ratios evloop-base goroutine)"; fi
if has evloop-base && has evloop; then echo "evloop / evloop-base = $(ratios evloop evloop-base)"; fi
if has evloop-reuse && has gnet; then echo "evloop-reuse / gnet bare = $(ratios evloop-reuse gnet)"; fi
if has evloop-reuse && has goroutine; then echo "evloop-reuse / goroutine = $(ratios evloop-reuse goroutine)"; fi
if has evloop-reuse && has evloop-base; then echo "evloop-reuse / evloop-base = $(ratios evloop-reuse evloop-base)"; fi
if has auto && has evloop; then echo "auto / evloop = $(ratios auto evloop)"; fi
if has goroutine-base; then echo "goroutine / goroutine-base = $(ratios goroutine goroutine-base)"; fi
for pair in ${RATIOS:-}; do
	a=${pair%/*} b=${pair#*/}
	if has "$a" && has "$b"; then echo "$a / $b = $(ratios "$a" "$b")"; fi
done
if [ "${PERF:-}" = 1 ]; then
	for c in $configs; do
		case $c in *-nosb | gnet) continue ;; esac
		echo "scoreboard share of $c worker CPU (perf): median $(for r in $(seq 1 "$rounds"); do echo "${share[$c,$r]}"; done | median)%" \
			"(rounds: $(for r in $(seq 1 "$rounds"); do printf '%s ' "${share[$c,$r]}"; done))"
	done
fi
# Scoreboard on / off (1 - ratio is its cost in requests per CPU-second).
for c in $configs; do
	case $c in *-nosb) ;; *) if has "$c-nosb"; then echo "scoreboard on/off $c / $c-nosb = $(ratios "$c" "$c-nosb")"; fi ;; esac
done
