#!/usr/bin/env bash
# Runs every test: the unit test binaries of a build directory, then the
# black-box integration tests against its keygate binary. Each test prints
# "ok NAME", "not ok NAME: why" or "skip NAME: why"; this script adds them up
# and ends with "N passed, N failed, N skipped". Exit status 0 only when
# nothing failed (a skip is not a failure, but it is never silent).
#   tests/run.sh [BUILD_DIR] [-k PATTERN]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
shift || true
build=$(cd "$build" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A non-zero exit status always shows up as a "not ok" line, so the closing
# counts never say "0 failed" for a run that failed (a binary that dies
# before its summary, LeakSanitizer failing one after it, run.py crashing).
# $1: name, $2: exit status, $3: its output
account() {
	if [ "$2" != 0 ] && ! grep -q '^not ok ' "$3"; then
		if grep -q '^# [0-9]* passed' "$3"; then
			echo "not ok $1: exited with status $2 after its summary" | tee -a "$log"
		else
			echo "not ok $1: exited with status $2 before finishing" | tee -a "$log"
		fi
	fi
	[ "$2" = 0 ] || status=1
}

status=0
units=0
for t in "$build"/test_*; do
	# meson's test_*.p object directories are not tests
	[ -f "$t" ] && [ -x "$t" ] || continue
	units=$((units + 1))
	echo "== unit: $(basename "$t")"
	out=$(mktemp)
	timeout 120 "$t" >"$out" 2>&1
	rc=$?
	cat "$out"
	cat "$out" >>"$log"
	account "$(basename "$t")" $rc "$out"
	rm -f "$out"
done
if [ $units = 0 ]; then
	echo "not ok unit: no test_* binaries in $build (build it first)" | tee -a "$log"
	status=1
fi

echo "== integration"
out=$(mktemp)
KG_TEST_BIN="$build/keygate" KG_TEST_BUILD="$build" timeout 1800 \
	python3 "$here/integration/run.py" "$@" | tee "$out"
rc=${PIPESTATUS[0]}
cat "$out" >>"$log"
account integration "$rc" "$out"
rm -f "$out"

passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
skipped=$(grep -c '^skip ' "$log")
if [ "$skipped" != 0 ]; then
	echo
	echo "skipped (not checked here):"
	grep '^skip ' "$log" | sed 's/^skip /  /'
fi
echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$status" = 0 ]
