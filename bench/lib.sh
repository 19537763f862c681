# bench/lib.sh - what bench/run.sh and bench/uring/run.sh share; sourced
# after `set -euo pipefail`. Sets TMP (removed at exit) and PIDS (processes
# the script started: add each, they are stopped at exit); BENCH_NAME
# (default "bench") prefixes its messages.
TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # bounded: 10 s
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "${BENCH_NAME:-bench}: nothing listens on port $1" >&2
	exit 1
}
# CPU time of the given pids, every thread (an io_uring SQPOLL thread is
# one), in ns: schedstat, finer than clock ticks; a thread that ended while
# being read counts for nothing
cpu_ns() {
	local t=0 p f a
	for p in "$@"; do
		for f in /proc/"$p"/task/*/schedstat; do
			read -r a _ <"$f" 2>/dev/null && t=$((t + a))
		done
	done
	echo "$t"
}
