#!/bin/sh
# Runs each libFuzzer target for FUZZ_SECONDS (default 60) with ASan+UBSan,
# growing tests/fuzz/corpus/<target>/. A crash leaves crash-* in the current
# directory: add it to the corpus (it then replays in make test) and fix.
#   tools/fuzz.sh [TARGET...]        targets: token jwt policy auth users path
set -eu
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build-fuzz
mkdir -p "$out"
targets=${*:-token jwt policy auth users path}
for t in $targets; do
	clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude \
		tests/fuzz/fuzz_"$t".c lib/*.c -o "$out/fuzz_$t" \
		-lssl -lcrypto -ljansson -lyaml -lsqlite3 -lcrypt -lzxcvbn -lpthread -lm
	mkdir -p "$out/corpus_$t"
	"$out/fuzz_$t" -max_total_time="$secs" -max_len=4096 "$out/corpus_$t" "tests/fuzz/corpus/$t"
done
