#!/bin/sh
# Installs the Debian packages keygate needs when any is missing.
#   tools/deps.sh               build dependencies
#   tools/deps.sh --tests       build + test dependencies (nginx: its binary only)
#   tools/deps.sh --bench       build + benchmark dependencies
#   --check-only                exit 1 if something is missing, install nothing
set -eu

build_pkgs="libuv1-dev node-llhttp libssl-dev libjansson-dev libyaml-dev libsqlite3-dev libcrypt-dev libzxcvbn-dev meson ninja-build pkg-config gcc"
test_pkgs="python3 python3-elasticsearch curl nginx"
# linux-perf: make bench counts syscalls and samples the proxies (bench/profile.py);
# liburing-dev: only for issue 16's io_uring experiment (bench/uring/), which
# meson builds when it is found; nothing else needs it
bench_pkgs="wrk linux-perf liburing-dev"

pkgs=$build_pkgs
check_only=0
for a in "$@"; do
	case $a in
	--tests) pkgs="$pkgs $test_pkgs" ;;
	--bench) pkgs="$pkgs $test_pkgs $bench_pkgs" ;;
	--check-only) check_only=1 ;;
	*) echo "deps.sh: unknown option $a" >&2; exit 2 ;;
	esac
done

missing=""
# node and npm may come from elsewhere than Debian (NodeSource...): a command
# on the PATH is enough for the tests that use them
case " $pkgs " in
*" python3 "*)
	command -v node >/dev/null 2>&1 || missing="$missing nodejs"
	command -v npm >/dev/null 2>&1 || missing="$missing npm"
	;;
esac
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
[ "$check_only" = 1 ] && exit 1

echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing || {
	$SUDO apt-get update
	# shellcheck disable=SC2086
	$SUDO apt-get install -y --no-install-recommends $missing
}
# nginx is wanted for its binary (one integration test and the benchmark run
# their own nginx on 127.0.0.1 with their own configuration), not as a
# service listening on port 80: where systemd started it, stop it again
case " $missing " in
*" nginx "*)
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		echo "deps.sh: nginx was installed for its binary; disabling the nginx service it brought" >&2
		$SUDO systemctl disable --now nginx || true
	fi
	;;
esac
