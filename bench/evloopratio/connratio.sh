#!/usr/bin/env bash
# connratio measures the targets of "every class at the kernel's floor" with
# run.sh's method (servers on CPU 0, wrk -t1 -c64 on CPU 1, requests per
# server CPU-second, medians of interleaved rounds):
#   connection per request: sync, evloop, goroutine, threaded vs nginx (1 worker);
#   keep-alive hello: evloop vs bare gnet, threaded vs evloop, goroutine vs
#   net/http, each vs nginx.
# Usage: bench/evloopratio/connratio.sh [rounds=5] [seconds=4]
set -euo pipefail
here=$(dirname "$0")
echo "== connection per request"
CLOSE=1 CONFIGS="nginx sync evloop goroutine threaded" \
	RATIOS="sync/nginx evloop/nginx goroutine/nginx threaded/nginx" "$here/run.sh" "$@"
echo "== keep-alive hello"
CONFIGS="nginx gnet evloop threaded goroutine nethttp" \
	RATIOS="evloop/nginx goroutine/nginx threaded/nginx threaded/evloop goroutine/nethttp" "$here/run.sh" "$@"
