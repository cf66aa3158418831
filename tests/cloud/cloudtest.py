"""Shared bits of the edgetrust-cloud tests: backend selection (--db=sqlite|postgresql, removed
from argv before unittest sees it) and small helpers."""
import sys

BACKEND = "sqlite"
for a in list(sys.argv[1:]):
    if a.startswith("--db="):
        BACKEND = a.split("=", 1)[1]
        sys.argv.remove(a)
assert BACKEND in ("sqlite", "postgresql"), BACKEND
