#!/bin/sh
# Runs every benchmark in bench/ (executable *.sh and *.py files other than this one) against
# the build directory given as $1 (default: build). Each prints its own ratios against a peer
# measured in the same run (adversary_bench.py: honest ingestion with and without the mixed
# attack of issue 10, SQLite and PostgreSQL, about 3 minutes). Exit status: the number of
# benchmarks that failed (0 = all ran).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
export ET_BUILD_DIR=$build
export ET_SOURCE_DIR=$(dirname "$here")
export PYTHONPATH=$ET_SOURCE_DIR/tests/lib${PYTHONPATH:+:$PYTHONPATH}
failed=0
for b in "$here"/*.sh "$here"/*.py; do
	[ -f "$b" ] || continue
	[ "$(basename "$b")" = run-all.sh ] && continue
	echo "=== $(basename "$b")"
	case $b in
	*.py) /usr/bin/python3 "$b" "$build" ;;
	*) sh "$b" "$build" ;;
	esac || { echo "=== $(basename "$b") FAILED"; failed=$((failed + 1)); }
done
echo "=== $failed benchmark(s) failed"
exit "$failed"
