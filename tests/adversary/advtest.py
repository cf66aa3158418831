"""Shared set-up of the attacker suite (docs/threat-model.md): backend selection (--db=sqlite|
postgresql, removed from argv before unittest sees it) and the import path of the cloud and
agent fixtures (tests/lib/cloudfix.py, tests/agent/agentfix.py)."""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
for _d in ("lib", "agent", "cloud"):
    _p = os.path.join(_here, "..", _d)
    if _p not in sys.path:
        sys.path.insert(0, _p)

BACKEND = "sqlite"
for a in list(sys.argv[1:]):
    if a.startswith("--db="):
        BACKEND = a.split("=", 1)[1]
        sys.argv.remove(a)
assert BACKEND in ("sqlite", "postgresql"), BACKEND
