#!/usr/bin/env python3
"""Adds up meson's test logs (one per build directory) into the one line CI reads."""
import json
import sys

passed = failed = skipped = 0
for d in sys.argv[1:]:
    try:
        with open(f"{d}/meson-logs/testlog.json") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                res = r.get("result")
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    print(f"FAILED: {d}: {r.get('name')} ({res})")
    except FileNotFoundError:
        print(f"FAILED: {d}: no test log (build or test run did not happen)")
        failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
