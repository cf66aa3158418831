# Thin wrapper over meson so the README's two commands work on a fresh Debian 12.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MESON_TEST_ARGS ?= --num-processes 4 --timeout-multiplier 3 --print-errorlogs

.PHONY: all deps build demo test test-plain test-asan test-fuzz bench clean

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The whole system on this machine: swtpm, mosquitto, edgetrust-cloud, a Modbus simulator, edgetrustd.
demo: build
	./scripts/demo.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

test-plain: build
	-meson test -C $(BUILD) $(MESON_TEST_ARGS)

test-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	-meson test -C $(ASAN_BUILD) $(MESON_TEST_ARGS)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

# libFuzzer targets (clang): a short run of each ($$ET_FUZZ_SECONDS, default 15) plus their
# regression inputs. Long runs: docs/reliability.md.
test-fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzzers
	-meson test -C $(FUZZ_BUILD) --suite fuzz --no-rebuild $(MESON_TEST_ARGS)

# Every test, in a normal build and under AddressSanitizer + UBSan, plus short fuzz runs; ends
# with "N passed, N failed".
test: test-plain test-asan test-fuzz
	@./scripts/test-summary.py $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

bench: build
	./bench/run-all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
