#!/bin/sh
# Runs one libFuzzer target for a while on a scratch copy of its seed corpus, then replays its
# regression inputs. Usage: run-fuzz.sh FUZZER SEED_DIR REGRESSION_DIR [SECONDS]
# SECONDS defaults to $ET_FUZZ_SECONDS, else 15. A crash leaves its input in
# $ET_FUZZ_ARTIFACTS (default: the build directory's fuzz-artifacts/); add it to
# fuzz/regressions/<target>/ once fixed so every later test run replays it.
set -eu
bin=$1
seeds=$2
regressions=$3
seconds=${4:-${ET_FUZZ_SECONDS:-15}}
name=$(basename "$bin")
artifacts=${ET_FUZZ_ARTIFACTS:-$(dirname "$bin")/fuzz-artifacts}/$name
mkdir -p "$artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/et-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
# New inputs go into the first directory (scratch); the seeds are only read.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len=8192 \
	-print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds"
echo "corpus grew to $(ls "$work" | wc -l) new inputs"
# Each file given by name runs once; a crash fails the test.
set -- $(find "$regressions" -type f ! -name '.*' 2>/dev/null | sort)
if [ $# -gt 0 ]; then
	"$bin" "$@"
	echo "replayed $# regression inputs"
fi
