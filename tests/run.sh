#!/usr/bin/env bash
# Runs every test: the unit test binaries of a build directory, then the
# black-box integration tests against its keygate binary. Each test prints
# "ok NAME" or "not ok NAME: why"; this script adds them up and ends with
# "N passed, N failed". Exit status 0 only when nothing failed.
#   tests/run.sh [BUILD_DIR] [-k PATTERN]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
shift || true
build=$(cd "$build" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
for t in "$build"/test_*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	echo "== unit: $(basename "$t")"
	out=$(mktemp)
	timeout 120 "$t" >"$out" 2>&1
	rc=$?
	cat "$out"
	cat "$out" >>"$log"
	# a binary that dies before its summary line counts as one more failure
	if [ $rc != 0 ] && ! grep -q '^# [0-9]* passed' "$out"; then
		echo "not ok $(basename "$t"): exited with status $rc before finishing" | tee -a "$log"
	fi
	[ $rc = 0 ] || status=1
	rm -f "$out"
done

echo "== integration"
if ! KG_TEST_BIN="$build/keygate" KG_TEST_BUILD="$build" timeout 1800 \
	python3 "$here/integration/run.py" "$@" | tee -a "$log"; then
	status=1
fi

passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$status" = 0 ]
