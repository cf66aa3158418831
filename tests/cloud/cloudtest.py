"""Shared bits of the edgetrust-cloud tests: backend selection (--db=sqlite|postgresql) and
device-login mode (--accounts=registry|dynsec), removed from argv before unittest sees them."""
import sys

BACKEND = "sqlite"
ACCOUNTS = "registry"
for a in list(sys.argv[1:]):
    if a.startswith("--db="):
        BACKEND = a.split("=", 1)[1]
        sys.argv.remove(a)
    elif a.startswith("--accounts="):
        ACCOUNTS = a.split("=", 1)[1]
        sys.argv.remove(a)
assert BACKEND in ("sqlite", "postgresql"), BACKEND
assert ACCOUNTS in ("registry", "dynsec"), ACCOUNTS
