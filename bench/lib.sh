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

# nginx, one worker, as both scripts run it. upstream_conf DIR PORT writes
# $TMP/DIR/nginx.conf: the upstream every case proxies to, answering a small
# fixed body from memory and logging nothing.
upstream_conf() {
	cat >"$TMP/$1/nginx.conf" <<NGINX
worker_processes 1;
error_log $TMP/$1/error.log;
pid $TMP/$1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/$1; proxy_temp_path $TMP/$1; fastcgi_temp_path $TMP/$1; uwsgi_temp_path $TMP/$1; scgi_temp_path $TMP/$1;
  server { listen 127.0.0.1:$2; keepalive_requests 1000000;
    location / { return 200 "hello from the upstream\n"; } }
}
NGINX
}
# proxy_conf DIR PORT UPSTREAM_PORT [HTTP_LINES] [LOCATIONS] [DIRECTIVES_FOR_/] [ACCESS_LOG_OPTIONS]
# writes $TMP/DIR/nginx.conf: nginx proxying to 127.0.0.1:UPSTREAM_PORT over
# kept-alive connections, with its default unbuffered access log unless
# options are given (bench/run.sh's case 1); NG_WC sets worker_connections.
proxy_conf() {
	cat >"$TMP/$1/nginx.conf" <<NGINX
worker_processes 1;
error_log $TMP/$1/error.log;
pid $TMP/$1/nginx.pid;
events { worker_connections ${NG_WC:-4096}; }
http {
  access_log $TMP/$1/access.log${7:+ $7};
  client_body_temp_path $TMP/$1; proxy_temp_path $TMP/$1; fastcgi_temp_path $TMP/$1; uwsgi_temp_path $TMP/$1; scgi_temp_path $TMP/$1;
  upstream api { server 127.0.0.1:$3; keepalive 64; }
${4:-}
  server { listen 127.0.0.1:$2; keepalive_requests 1000000;
${5:-}
    location / { ${6:-} proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
}
# nginx_worker MASTER_PID: the pid of its worker process once it has forked
# one (bounded: 5 s; empty if none came)
nginx_worker() {
	local w=""
	for _ in $(seq 50); do
		w=$(pgrep -P "$1" | head -1 || true)
		[ -n "$w" ] && break
		sleep 0.1
	done
	echo "$w"
}
