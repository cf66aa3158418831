#!/bin/sh
# Long power-cut run: tests/fault/powercut.sh [--cycles 500] [--mode random|steps|both] [--seed S]
# Uses the build in $ET_BUILD_DIR (default: build/ next to this source tree).
here=$(cd "$(dirname "$0")" && pwd)
: "${ET_SOURCE_DIR:=$(cd "$here/../.." && pwd)}"
: "${ET_BUILD_DIR:=$ET_SOURCE_DIR/build}"
export ET_SOURCE_DIR ET_BUILD_DIR
export ET_FAULT_TCTI_DIR="${ET_FAULT_TCTI_DIR:-$ET_BUILD_DIR/tests/fault}"
export PYTHONPATH="$ET_SOURCE_DIR/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
exec /usr/bin/python3 "$here/powercut.py" "$@"
