#!/usr/bin/env bash
# Issue 16's io_uring experiment: the two proxy loops of keygate-bench-uring
# (bench/uring/: epoll + recv/send against io_uring with multishot receive,
# a provided buffer ring and one submit per loop turn) beside keygate itself
# and nginx, all proxying to the same nginx upstream on 127.0.0.1.
#   bench/uring/run.sh [BUILD_DIR]
# URING_ROUNDS (default 5), URING_DURATION (s per run, default 4),
# URING_CONNECTIONS (wrk -c values, default "16 64"),
# URING_VARIANTS (default "nginx keygate epoll uring"; the loop also runs
#   as uring-basic: no setup flags, and uring-sqpoll: a kernel thread polls
#   the submission queue),
# URING_SYSCALLS (default 1: one more run per variant under
#   `perf stat -e raw_syscalls:sys_enter`, for syscalls per request; 0 skips),
# URING_PROFILE (default 0; 1: one more run per variant under `perf record`,
#   its CPU split into kernel function families by bench/uring/buckets.py).
# Every variant runs once per round and connection count, in an order that
# rotates each round; the figure is CPU µs per request of the proxy's
# process(es), every thread counted (schedstat), over wrk's requests; the
# "chain" column adds wrk's and the upstream's CPU in the same run. The
# table is printed (medians, with the lowest and highest round); nothing is
# written to docs/. Needs liburing-dev (tools/deps.sh --bench), wrk, nginx, perf.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=$(cd "${1:-build}" && pwd)
ROUNDS=${URING_ROUNDS:-5}
DUR=${URING_DURATION:-4}
CONNS=${URING_CONNECTIONS:-16 64}
VARIANTS=${URING_VARIANTS:-nginx keygate epoll uring}
SYSCALLS=${URING_SYSCALLS:-1}
KG=$BUILD/keygate
LOOP=$BUILD/keygate-bench-uring
if [ ! -x "$LOOP" ]; then
	echo "bench/uring: $LOOP is not built (meson builds it only when liburing is found: tools/deps.sh --bench, then ninja -C $BUILD)" >&2
	exit 1
fi
BENCH_NAME=bench/uring
. bench/lib.sh
sys_ticks() { # "utime stime" in clock ticks, summed over the given pids
	local u=0 s=0 p rest
	for p in "$@"; do
		rest=$(<"/proc/$p/stat")
		rest=${rest##*) }
		read -r -a g <<<"$rest"
		u=$((u + g[11]))
		s=$((s + g[12]))
	done
	echo "$u $s"
}

UP=$(free_port)
mkdir -p "$TMP/up" "$TMP/ng" "$TMP/kg"
# the upstream and the nginx proxy: bench/run.sh's configurations (the proxy
# is its case 1, nginx as deployed by default: an unbuffered access log)
upstream_conf up "$UP"
declare -A PORT PIDOF
PORT[nginx]=$(free_port)
proxy_conf ng "${PORT[nginx]}" "$UP"
nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" -g 'daemon off;' 2>>"$TMP/up/error.log" &
PIDS+=($!)
wait_port "$UP"

for v in $VARIANTS; do
	[ -n "${PORT[$v]:-}" ] || PORT[$v]=$(free_port)
	case $v in
	nginx)
		nginx -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -g 'daemon off;' 2>>"$TMP/ng/error.log" &
		master=$!
		PIDS+=($master)
		wait_port "${PORT[$v]}"
		PIDOF[$v]="$master $(nginx_worker "$master")"
		;;
	keygate) # bench/run.sh's case 3: access log to a file, buffered (its default 64 KiB)
		"$KG" serve --listen "127.0.0.1:${PORT[$v]}" --workers 1 --data-dir "$TMP/kg" --log-access "$TMP/kg/access.log" \
			--log-level warn --upstream "http://127.0.0.1:$UP" --require-auth=false 2>>"$TMP/kg.stderr" &
		PIDS+=($!)
		PIDOF[$v]=$!
		wait_port "${PORT[$v]}"
		;;
	epoll | uring | uring-basic | uring-sqpoll)
		"$LOOP" "$v" "${PORT[$v]}" "$UP" 2>>"$TMP/$v.stderr" &
		PIDS+=($!)
		PIDOF[$v]=$!
		wait_port "${PORT[$v]}"
		;;
	*) echo "bench/uring: unknown variant $v" >&2; exit 2 ;;
	esac
	# one request through each, checked, before anything is measured
	body=$(curl -s --max-time 5 "http://127.0.0.1:${PORT[$v]}/warm")
	if [ "$body" != "hello from the upstream" ]; then
		echo "bench/uring: $v answered '$body' instead of the upstream's body" >&2
		exit 1
	fi
done

# the chain: wrk + proxy + upstream, so that work an I/O interface moves out
# of the proxy's process (into the peers' wakeups, softirqs) shows up too
UP_PIDS="$(cat "$TMP/up/nginx.pid") $(pgrep -P "$(cat "$TMP/up/nginx.pid")" | tr '\n' ' ')"
RES=$TMP/results # variant|conns|round|req/s|us|sys%|non2xx|chain us
run_wrk() { # variant conns: one wrk run; prints "requests req/s non2xx wrk_cpu_s"
	local out
	out=$(/usr/bin/time -f 'wrkcpu %U %S' wrk -t1 -c"$2" -d"${DUR}s" "http://127.0.0.1:${PORT[$1]}/" 2>&1)
	awk '/requests in/ {r=$1} /^Requests\/sec/ {s=$2} /Non-2xx/ {n=$NF} /^wrkcpu/ {w=$2+$3} END {print r, s, n+0, w}' <<<"$out"
}
set -f
read -r -a VS <<<"$VARIANTS"
set +f
NV=${#VS[@]}
for round in $(seq "$ROUNDS"); do
	for c in $CONNS; do
		for i in $(seq 0 $((NV - 1))); do
			v=${VS[$(((i + round - 1) % NV))]}
			pids=${PIDOF[$v]}
			# shellcheck disable=SC2086
			{
				b=$(cpu_ns $pids)
				ub=$(cpu_ns $UP_PIDS)
				read -r bu bs <<<"$(sys_ticks $pids)"
				read -r reqs rps non2xx wrk_s <<<"$(run_wrk "$v" "$c")"
				a=$(cpu_ns $pids)
				ua=$(cpu_ns $UP_PIDS)
				read -r au as <<<"$(sys_ticks $pids)"
			}
			us=$(python3 -c "print('%.2f' % (($a-$b)/1e3/max($reqs,1)))")
			chain=$(python3 -c "print('%.2f' % ((($a-$b)+($ua-$ub)+$wrk_s*1e9)/1e3/max($reqs,1)))")
			sysp=$(python3 -c "t=($au-$bu)+($as-$bs); print('%.0f' % (100*($as-$bs)/t if t else 0))")
			echo "$v|$c|$round|$rps|$us|$sysp|$non2xx|$chain" >>"$RES"
			echo "  round $round, -c$c, $v: $rps req/s, $us µs CPU/request ($sysp% kernel), chain $chain µs" >&2
		done
	done
done

SYS=$TMP/syscalls # variant|conns|syscalls per request|top syscalls
if [ "$SYSCALLS" = 1 ]; then
	for c in $CONNS; do
		for v in "${VS[@]}"; do
			pids=${PIDOF[$v]}
			# perf counts every thread of the pids given (the SQPOLL thread too)
			perf stat -e raw_syscalls:sys_enter -x, -o "$TMP/perf.$v.$c" -p "${pids// /,}" &
			perf_pid=$!
			sleep 0.3
			read -r reqs _ _ _ <<<"$(run_wrk "$v" "$c")"
			kill -INT "$perf_pid"
			wait "$perf_pid" || true
			n=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$TMP/perf.$v.$c")
			spr=$(python3 -c "print('%.2f' % (int('${n:-0}')/max($reqs,1)))")
			echo "$v|$c|$spr" >>"$SYS"
			echo "  -c$c, $v: $spr syscalls/request" >&2
		done
	done
fi
touch "$SYS"

PROF=$TMP/profile # variant|conns|requests|cpu ns sampled|family=percent;...
if [ "${URING_PROFILE:-0}" = 1 ]; then
	# where each proxy's CPU goes, by kernel function family: one sampled
	# run per variant at the largest connection count (perf's sampling
	# adds its own cost; the shares are what to read)
	c=${CONNS##* }
	for v in "${VS[@]}"; do
		pids=${PIDOF[$v]}
		perf record -q -e cpu-clock -F 2999 -o "$TMP/rec.$v" -p "${pids// /,}" >/dev/null 2>&1 &
		perf_pid=$!
		sleep 0.3
		read -r reqs _ _ _ <<<"$(run_wrk "$v" "$c")"
		kill -INT "$perf_pid"
		wait "$perf_pid" || true
		perf report -i "$TMP/rec.$v" --no-children --sort sym --stdio -g none 2>/dev/null |
			python3 bench/uring/buckets.py "$v" "$c" "$reqs" >>"$PROF"
	done
fi
touch "$PROF"

echo
echo "wrk -t1, ${DUR} s per run, $ROUNDS rounds; $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
echo "kernel $(uname -r), liburing $(pkg-config --modversion liburing 2>/dev/null || echo '?'), $(nginx -v 2>&1 | sed 's/.*: //'); $(date -u +%F)"
echo
python3 - "$RES" "$SYS" "$PROF" <<'PY'
import sys, statistics as st
rows = [l.rstrip('\n').split('|') for l in open(sys.argv[1])]
sysc = {}
for l in open(sys.argv[2]):
    v, c, s = l.rstrip('\n').split('|')
    sysc[(v, c)] = s
names = {
    'nginx': 'nginx proxy (bench/run.sh case 1)',
    'keygate': 'keygate proxy, no auth (case 3)',
    'epoll': '(a) loop: epoll + recv/send',
    'uring': '(b) loop: io_uring, SINGLE_ISSUER + DEFER_TASKRUN',
    'uring-basic': '(b) loop: io_uring, no setup flags',
    'uring-sqpoll': '(b) loop: io_uring, SQPOLL',
}
order = []
for r in rows:
    if r[0] not in order:
        order.append(r[0])
for c in sorted({r[1] for r in rows}, key=int):
    ref = {r[2]: float(r[4]) for r in rows if r[1] == c and r[0] == 'epoll'}
    print(f'wrk -c{c}:\n')
    print('| proxy | CPU µs/request | range | vs (a) epoll, same round | range | kernel share | syscalls/request | chain µs/request | range | requests/s | non-2xx |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for v in order:
        rs = [r for r in rows if r[0] == v and r[1] == c]
        us = [float(r[4]) for r in rs]
        rps = [float(r[3]) for r in rs]
        ks = [float(r[5]) for r in rs]
        ratio = [float(r[4]) / ref[r[2]] for r in rs if r[2] in ref]
        rt = f'{st.median(ratio):.2f}×' if ratio else ''
        rr = f'{min(ratio):.2f}–{max(ratio):.2f}×' if ratio else ''
        ch = [float(r[7]) for r in rs]
        print(f'| {names.get(v, v)} | {st.median(us):.2f} | {min(us):.2f}–{max(us):.2f} | {rt} | {rr} | '
              f'{st.median(ks):.0f}% | {sysc.get((v, c), "")} | {st.median(ch):.1f} | {min(ch):.1f}–{max(ch):.1f} | '
              f'{st.median(rps):.0f} | {sum(int(r[6]) for r in rs)} |')
    print()
prof = [l.rstrip('\n').split('|') for l in open(sys.argv[3])]
if prof:
    buckets = []
    for p in prof:
        for kv in p[4].split(';'):
            b = kv.split('=')[0]
            if b not in buckets:
                buckets.append(b)
    print(f'Where the CPU goes (perf record -e cpu-clock, one run each, wrk -c{prof[0][1]}; µs per request, '
          'perf\'s own sampling cost included):\n')
    print('| proxy | ' + ' | '.join(buckets) + ' | total |')
    print('|---|' + '---|' * (len(buckets) + 1))
    for p in prof:
        v, c, reqs, ns = p[0], p[1], int(p[2]), float(p[3])
        share = dict(kv.split('=') for kv in p[4].split(';'))
        per = ns / 1e3 / max(reqs, 1)
        cells = [f'{float(share.get(b, 0)) / 100 * per:.2f}' for b in buckets]
        print(f'| {names.get(v, v)} | ' + ' | '.join(cells) + f' | {per:.2f} |')
    print()
PY
