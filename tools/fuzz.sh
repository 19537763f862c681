#!/bin/sh
# Runs each libFuzzer target for FUZZ_SECONDS (default 60) with ASan+UBSan,
# growing tests/fuzz/corpus/<target>/. A crash leaves crash-* in the current
# directory: add it to the corpus (it then replays in make test) and fix.
#   tools/fuzz.sh [TARGET...]        targets: token jwt policy auth users path head avax_rpc es_realm es_role es_query es_time es_cred es_body es_priv
# head also compiles llhttp in (LLHTTP_DIR, LLHTTP_INCLUDE: meson_options.txt's defaults).
set -eu
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
out=build-fuzz
mkdir -p "$out"
targets=${*:-token jwt policy auth users path head avax_rpc es_realm es_role es_query es_time es_cred es_body es_priv}
llhttp_dir=${LLHTTP_DIR:-/usr/share/llhttp}
llhttp_inc=${LLHTTP_INCLUDE:-/usr/share/include/llhttp}
for t in $targets; do
	extra=""
	if [ "$t" = head ]; then
		extra="-I$llhttp_inc $llhttp_dir/llhttp.c $llhttp_dir/api.c $llhttp_dir/http.c"
	fi
	clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude \
		tests/fuzz/fuzz_"$t".c lib/*.c $extra -o "$out/fuzz_$t" \
		-lssl -lcrypto -ljansson -lyaml -lsqlite3 -lcrypt -lzxcvbn -lpthread -lm
	mkdir -p "$out/corpus_$t"
	"$out/fuzz_$t" -max_total_time="$secs" -max_len=4096 "$out/corpus_$t" "tests/fuzz/corpus/$t"
done
