# Thin wrapper over Meson. `make` builds build/keygate, `make test` runs every
# test, `make run` starts keygate on its embedded default (SQLite in
# ./keygate-data). Missing Debian packages are installed first (tools/deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
ARGS       ?=

.PHONY: all deps build test test-asan run bench clean

all: build

deps:
	@tools/deps.sh

$(BUILD)/build.ninja:
	@tools/deps.sh
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	@tools/deps.sh --check-only || tools/deps.sh
	ninja -C $(BUILD)

test: build
	@tools/deps.sh --check-only --tests || tools/deps.sh --tests
	tests/run.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	@tools/deps.sh --tests
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Db_lto=false -Dbuildtype=debug

test-asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	KG_TEST_ASAN=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/run.sh $(ASAN_BUILD)

bench: build
	@tools/deps.sh --check-only --bench || tools/deps.sh --bench
	bench/run.sh $(BUILD)

run: build
	$(BUILD)/keygate serve $(ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
