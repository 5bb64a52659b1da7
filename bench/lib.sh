# Helpers shared by the bench's measuring scripts (evloopratio/run.sh,
# automixed/run.sh); sourced, not run. NICE gets its default here: -10 as
# root (servers and wrk then win the CPU over other processes on a shared
# machine), else 0.

if [ -z "${NICE:-}" ]; then
	NICE=0
	if [ "$(id -u)" = 0 ]; then NICE=-10; fi
fi

pin() { # cpu command...: run pinned to cpu, at nice $NICE
	local cpu=$1
	shift
	nice -n "$NICE" taskset -c "$cpu" "$@"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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

median() { # numbers on stdin, one a line ("na" lines left out) -> their median, 3 decimals
	grep -v '^na$' | sort -g | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.3f", m}'
}
