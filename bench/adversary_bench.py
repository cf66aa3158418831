#!/usr/bin/python3
"""Honest devices' ingestion rate under the mixed attack of issue 10, next to the same devices'
rate without the attack, measured in the same run on the same stack (goal: with the attack at
least 0.5 x the rate without it).

    bench/adversary_bench.py [BUILD] [--records N] [--agents K] [--only sqlite|postgresql]
                             [--attack-max S]

For SQLite and for PostgreSQL (each a fresh tests/lib/cloudfix.py stack: mosquitto with the
edgetrust plugin and dynamic security, edgetrust-cloud serve, PostgreSQL with fsync on): K real
agents (edgetrustd on their own swtpm, registered and accepted) drain a backlog, which is how an
agent sends fastest. Each agent is stopped, N readings are put into its spool
(bench/agent_bench.py fill_spool; 100 records per message, `delivery = cloud-ack`, so a reading
leaves the spool only when serve has committed it and acknowledged it), and the agents start
together. The rate is K x N readings over the time from their start (start-up included, as in
agent_bench.py) until every spool is empty, minus the readings the store does not have (an
agent deletes a reading on the cloud's ack; one acknowledged but not stored is lost, and does
not count): readings stored per second. The store is checked for each reading once.

1. without the attack;
2. with the attack of tests/adversary/attacker.py (one bootstrap login and one compromised
   device login, the attacker's defaults: telemetry flood of 1 MB/s, take-overs, forged
   messages, invalid telemetry; see its docstring), started 3 s before the agents and stopped
   when they are done (at most --attack-max seconds).

Prints both rates, the ratio with/without, what was lost or stored twice (readings an agent
deleted on an ack but the store does not have) and how much the attacker sent.
"""
import argparse
import os
import sqlite3
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, "..", "tests", d) for d in ("lib", "agent", "adversary")]
sys.path.insert(0, here)
if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
    os.environ["ET_BUILD_DIR"] = os.path.abspath(sys.argv[1])
import etfix  # noqa: E402
import agentfix  # noqa: E402
import cloudfix  # noqa: E402
from agent_bench import fill_spool  # noqa: E402
from attacker import Attacker  # noqa: E402


def sql(stack, q):
    if stack.pg:
        return [tuple(r) for r in stack.pg.psql(q)]
    db = sqlite3.connect(stack.db_url, timeout=60)
    try:
        return db.execute(q).fetchall()
    finally:
        db.close()


def onboard(stack, k):
    """K agents on their own swtpm, registered and accepted, then stopped."""
    agents, cleanup = [], []
    for i in range(k):
        serial = f"SN-ADVB-{i}"
        tmp = etfix.TempDir()
        tpm = etfix.Swtpm().start()
        cleanup += [tmp.cleanup, tpm.cleanup]
        agentfix.provision(tpm, serial)
        stack.cli("activate", serial, check=True)
        a = agentfix.Agent(tmp, tpm.tcti, stack.broker_port, serial=serial, log_level="info",
                           bootstrap_password=stack.bootstrap_password, spool_extra="")
        cleanup.append(a.stop)
        a.start()
        agents.append(a)
    for a in agents:
        a.wait_log("registration pending", 60)
        stack.cli("accept", a.serial, check=True)
    for a in agents:
        a.wait_log("connected to the broker as " + a.serial, 60)
        a.stop()
        with open(a.conf) as f:
            conf = f.read()
        with open(a.conf, "w") as f:
            f.write(conf.replace("batch = 20", "batch = 100"))
    return agents, cleanup


def phase(stack, agents, n, timeout=600):
    """Fills every stopped agent's spool with n readings, starts them together, returns
    (seconds until every spool is empty, lost, stored twice)."""
    firsts = {a.serial: fill_spool(a.data_dir, n) for a in agents}
    t0 = time.monotonic()
    for a in agents:
        a.start()
    left = set(agents)
    while left:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"spools not drained in {timeout} s")
        for a in list(left):
            try:
                if a.ctl({"op": "status"})["status"]["spool_depth"] == 0:
                    left.discard(a)
            except (OSError, ValueError, KeyError):
                pass   # the control socket is not up yet
        time.sleep(0.05)
    t = time.monotonic() - t0
    for a in agents:
        a.stop()
    lost = dup = 0
    for a in agents:
        f = firsts[a.serial]
        c, d = sql(stack, f"SELECT COUNT(*), COUNT(DISTINCT seq) FROM telemetry WHERE serial ="
                          f" '{a.serial}' AND seq BETWEEN {f} AND {f + n - 1}")[0]
        lost += n - int(d)
        dup += int(c) - int(d)
    return t, lost, dup


def attacker_device(stack):
    dev = cloudfix.SoftDevice("ADV-BENCH-1")
    stack.cli("activate", dev.serial, check=True)
    dev.register(stack)
    stack.cli("accept", dev.serial, check=True)
    r = dev.wait_reply(stack, status="accepted", timeout=30)
    if r is None:
        raise SystemExit("the attacker's device was not accepted")
    return dev, dev.open(r["envelope"])


def run_backend(db, n, k, attack_max):
    stack = cloudfix.CloudStack(db=db).start()
    cleanup = [stack.cleanup]
    try:
        agents, more = onboard(stack, k)
        cleanup += more
        dev, creds = attacker_device(stack)
        t_without, lost0, dup0 = phase(stack, agents, n)
        atk = Attacker.for_stack(stack, creds, dev.key, honest=[a.serial for a in agents],
                                 late=["SN-ADVB-LATE"], seconds=attack_max)
        atk.start()
        try:
            time.sleep(3)
            t_with, lost1, dup1 = phase(stack, agents, n, timeout=attack_max)
        finally:
            atk.stop()
        # Stored per second: readings an agent deleted on an ack that the store does not
        # have do not count.
        return {"db": db, "n": k * n, "without": (t_without, lost0, dup0),
                "with": (t_with, lost1, dup1), "atk": atk,
                "rate0": (k * n - lost0) / t_without, "rate1": (k * n - lost1) / t_with}
    finally:
        for c in reversed(cleanup):
            try:
                c()
            except Exception as e:  # noqa: BLE001
                print(f"cleanup: {e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.environ.get("ET_BUILD_DIR", "build"))
    ap.add_argument("--records", type=int, default=50000, help="readings per agent per phase")
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--only", choices=["sqlite", "postgresql"], action="append")
    ap.add_argument("--attack-max", type=int, default=300)
    a = ap.parse_args()
    os.environ["ET_BUILD_DIR"] = os.path.abspath(a.build)
    etfix.BUILD = os.environ["ET_BUILD_DIR"]
    res = []
    for db in a.only or ["sqlite", "postgresql"]:
        print(f"running: {db}, {a.agents} agents x {a.records} readings, without and with the "
              "attack...", flush=True)
        res.append(run_backend(db, a.records, a.agents, a.attack_max))
    print()
    print("| registry | readings | without attack: s, readings/s | with attack: s, readings/s "
          "| with / without | lost (without, with) | stored twice | attacker sent |")
    print("|---|---|---|---|---|---|---|---|")
    for r in res:
        (t0, l0, d0), (t1, l1, d1) = r["without"], r["with"]
        st = r["atk"].stats
        print(f"| {r['db']} | {r['n']} | {t0:.1f}, {r['rate0']:.0f} | {t1:.1f}, {r['rate1']:.0f} "
              f"| {r['rate1'] / r['rate0']:.2f} | {l0}, {l1} | {d0 + d1} | {st.get('bytes', 0) / 1e6:.0f} MB in "
              f"{st.get('elapsed_s')} s, {st.get('connect.attempts', 0)} connects, "
              f"{len(r['atk'].violations)} violations |")
    print()
    for r in res:
        ratio = r["rate1"] / r["rate0"]
        ok = ratio >= 0.5 and r["with"][1] == 0 and r["with"][2] == 0
        print(f"{r['db']}: with the attack the honest agents ingest at {ratio:.2f} x their rate "
              f"without it (goal >= 0.5 and nothing lost or stored twice): "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
