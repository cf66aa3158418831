#!/usr/bin/python3
"""Registration throughput of edgetrust-cloud: N simulated devices (software RSA-2048 keys, no
TPM) register at once with the bootstrap login, with `serve --auto-accept`, against

  - one instance on SQLite,
  - one instance on PostgreSQL,
  - three instances on PostgreSQL sharing the subscription ($share/etcloud/...),

each with device logins in the registry (`--accounts registry`: the edgetrust mosquitto plugin
checks them) and in mosquitto's dynamic security (`--accounts dynsec`), each setup on a fresh
mosquitto and database. A registration is complete when the device has its `accepted` reply
with the sealed envelope; in both modes the broker login exists before that reply is published
(registry: committed in the same transaction; dynsec: the broker answered the command first).
Prints registrations per second (first request published -> last accepted reply received), the
CPU time of each process, ratios against peers measured in the same run (registry vs dynsec
mode; 1 instance vs 3; the article's cloud step, `openssl pkeyutl -encrypt` per device) and
against Azure DPS's documented 1,000 registrations per minute per unit. Then proves that every
device got exactly one credential: one row per device in the credentials table, one `issue`
audit entry per device, N device logins in the broker (registry: N rows in broker_accounts,
version 1, enabled; dynsec: N clients), every envelope opens with its device's key (Python
implementation of docs/envelope.md) and names the device, and a sample of devices logs in
with what it got (and the same sample with a wrong password is refused).

Usage: bench/cloud_register.py [BUILD_DIR] [--devices N] [--connections K] [--only sqlite|pg1|pg3]
       [--accounts registry|dynsec] [--pending] [--repeat R]
       (--repeat: each device sends its request R times: at-least-once delivery;
        --pending: also runs without --auto-accept, devices end pending, no login)
Keys are generated once and cached in BUILD_DIR/bench-cache/ (--keys distinct keys, default
300, reused round-robin: RSA-2048 generation costs ~0.2 s of CPU per key on this machine).
"""
import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

DPS_PER_S = 1000 / 60.0


def gen_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(path + ".tmp", "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    os.rename(path + ".tmp", path)


def load_keys(cache, n):
    from multiprocessing import Pool
    from cryptography.hazmat.primitives import serialization
    os.makedirs(cache, exist_ok=True)
    paths = [os.path.join(cache, f"{i:05d}.pem") for i in range(n)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        print(f"generating {len(missing)} RSA-2048 keys into {cache} (once)...", flush=True)
        with Pool(os.cpu_count() or 2) as pool:
            pool.map(gen_key, missing, chunksize=16)
    keys = []
    for p in paths:
        with open(p, "rb") as f:
            keys.append(serialization.load_pem_private_key(f.read(), password=None))
    return keys


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / tck
    except OSError:
        return float("nan")


def children_cpu(ppid):
    """CPU of a process and its direct children (PostgreSQL backends)."""
    total = cpu_seconds(ppid)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == ppid:
                    total += cpu_seconds(int(d))
            except OSError:
                pass
    return total


def postmaster_pid(pg):
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        return int(f.readline())


def run_case(name, db, instances, devices, keys, conns, repeat, to_pending=False,
             accounts="registry"):
    from cloudfix import CloudStack, SoftDevice, mqtt_connect, open_envelope
    import paho.mqtt.client as mqtt

    serials = [f"BENCH-{i:05d}" for i in range(devices)]
    # RSA-2048 key generation costs ~0.2 s of CPU each here, so the distinct keys are cached
    # and reused round-robin when there are more devices than keys (--keys).
    devs = [SoftDevice(s, key=keys[i % len(keys)]) for i, s in enumerate(serials)]
    want = "pending" if to_pending else "accepted"
    with CloudStack(db=db, auto_accept=not to_pending, instances=instances,
                    accounts=accounts) as c:
        ta = time.monotonic()
        p = c.cli("activate", *serials, "--for", "1h")
        assert p.returncode == 0, p.err
        # dynsec: serve prepares each activated device's broker role (one dynamic-security
        # command) ahead of registration; activation precedes a device's first boot, so wait
        # for it. registry: nothing to prepare (serve only clears the flag).
        while any(d["sync_pending"] for d in c.cli("list", "--json", json_out=True)):
            time.sleep(0.2)
        prep = time.monotonic() - ta
        boot_pw = c.bootstrap_password
        replies = {}
        lock = threading.Lock()
        done = threading.Event()
        clients = []
        groups = [devs[i::conns] for i in range(conns)]
        for gi, group in enumerate(groups):
            cl = mqtt_connect(c.broker_port, "bootstrap", boot_pw, f"etboot-bench-{gi}")

            def on_message(client, ud, msg):
                d = json.loads(msg.payload)
                if d.get("status") != want:
                    return
                with lock:
                    replies.setdefault(d["serial"], d)
                    if len(replies) == len(devs):
                        done.set()
            cl.on_message = on_message
            subs_done = threading.Event()
            pending = {"n": 0}

            def on_subscribe(client, ud, mid, rc, props=None, pending=pending, ev=subs_done):
                pending["n"] -= 1
                if pending["n"] == 0:
                    ev.set()
            cl.on_subscribe = on_subscribe
            topics = [(f"et/v1/{d.serial}/register/reply", 1) for d in group]
            chunks = [topics[i:i + 100] for i in range(0, len(topics), 100)]
            pending["n"] = len(chunks)
            for ch in chunks:
                cl.subscribe(ch)
            assert subs_done.wait(30), "subscriptions not acknowledged"
            clients.append(cl)
        payloads = [[(f"et/v1/{d.serial}/register", d.request()) for d in g] for g in groups]
        cpu0 = {"mosquitto": cpu_seconds(c.mqtt_broker.proc.pid)}
        for i, s in enumerate(c.serves):
            cpu0[f"serve i{i}"] = cpu_seconds(s.pid)
        if c.pg:
            cpu0["postgresql"] = children_cpu(postmaster_pid(c.pg))
        load0 = os.getloadavg()[0]
        me0 = os.times()
        t0 = time.monotonic()
        for _ in range(repeat):
            for cl, pl in zip(clients, payloads):
                for topic, body in pl:
                    cl.publish(topic, body, qos=1)
        ok = done.wait(max(120, len(devs) / 20))
        t1 = time.monotonic()
        me1 = os.times()
        cpu = {"mosquitto": cpu_seconds(c.mqtt_broker.proc.pid) - cpu0["mosquitto"]}
        for i, s in enumerate(c.serves):
            cpu[f"serve i{i}"] = cpu_seconds(s.pid) - cpu0[f"serve i{i}"]
        if c.pg:
            cpu["postgresql"] = children_cpu(postmaster_pid(c.pg)) - cpu0["postgresql"]
        # the simulated devices (this process: 20 paho clients) share the same 2 cores
        cpu["devices (bench)"] = (me1.user - me0.user) + (me1.system - me0.system)
        for cl in clients:
            cl.loop_stop()
            cl.disconnect()
        if not ok:
            raise SystemExit(f"{name}: only {len(replies)} of {len(devs)} accepted within the "
                             f"timeout\n{c.serve_log_text()[-3000:]}")
        elapsed = t1 - t0
        if to_pending:
            n = len(c.cli("pending", "--json", json_out=True))
            assert n == len(devs), n
            c.stop()
            assert all(code == 0 for code in c.serve_exit_codes), c.serve_exit_codes
            return {"name": name + " (to pending, no login)", "devices": len(devs),
                    "requests": len(devs) * repeat, "load": (load0 + os.getloadavg()[0]) / 2,
                    "prep": prep, "elapsed": elapsed, "rate": len(devs) / elapsed, "cpu": cpu,
                    "opened": 0, "logins": 0, "errors": 0, "pending": True}
        # ---- proof: exactly one credential per device ----
        if db == "sqlite":
            con = sqlite3.connect(c.db_url)
            rows = con.execute("SELECT serial, COUNT(*) FROM credentials GROUP BY serial").fetchall()
            nissue = con.execute("SELECT COUNT(*) FROM audit WHERE action = 'issue'").fetchone()[0]
            con.close()
        else:
            rows = [(r[0], int(r[1])) for r in
                    c.pg.psql("SELECT serial, COUNT(*) FROM credentials GROUP BY serial")]
            nissue = int(c.pg.psql("SELECT COUNT(*) FROM audit WHERE action = 'issue'")[0][0])
        per = dict(rows)
        assert len(per) == len(devs) and set(per.values()) == {1}, f"credential rows: {sorted(set(per.values()))}"
        assert nissue == len(devs), nissue
        logins = c.device_logins()
        assert set(s for s in logins if s.startswith("BENCH-")) == set(serials), len(logins)
        assert all(logins[s] for s in serials)
        if accounts == "registry":
            acc = c.accounts()
            assert {acc[s]["cred_version"] for s in serials} == {1}
            assert not any(acc[s]["has_prev"] for s in serials)
        opened = 0
        for d in devs:
            r = replies[d.serial]
            creds = json.loads(open_envelope(d.key, d.serial, d.fingerprint,
                                             base64.b64decode(r["envelope"])))
            assert creds["username"] == d.serial and creds["cred_version"] == 1
            opened += 1
        sample = devs[:: max(1, len(devs) // 10)]
        for d in sample:
            creds = json.loads(open_envelope(d.key, d.serial, d.fingerprint,
                                             base64.b64decode(replies[d.serial]["envelope"])))
            cl = mqtt_connect(c.broker_port, creds["username"], creds["password"], creds["client_id"])
            cl.loop_stop()
            cl.disconnect()
            try:
                pw = creds["password"]
                wrong = pw[:-1] + ("x" if pw[-1] != "x" else "y")
                cl = mqtt_connect(c.broker_port, creds["username"], wrong, creds["client_id"],
                                  timeout=5)
                cl.loop_stop()
                cl.disconnect()
                raise SystemExit(f"{d.serial}: a wrong password was accepted")
            except ConnectionRefusedError:
                pass
        log = c.serve_log_text()
        errors = [l for l in log.splitlines() if " error: " in l]
        c.stop()
        assert all(code == 0 for code in c.serve_exit_codes), c.serve_exit_codes
        return {"name": name, "accounts": accounts, "devices": len(devs), "requests": len(devs) * repeat,
                "load": (load0 + os.getloadavg()[0]) / 2, "prep": prep,
                "elapsed": elapsed, "rate": len(devs) / elapsed, "cpu": cpu,
                "opened": opened, "logins": len(sample), "errors": len(errors)}


def article_peer(keys, n=50):
    """The article's cloud step: one `openssl pkeyutl -encrypt` per device (no registry, no
    broker login)."""
    from cryptography.hazmat.primitives import serialization
    tmp = tempfile.mkdtemp(prefix="et-bench-")
    secret = os.path.join(tmp, "secret")
    with open(secret, "wb") as f:
        f.write(b"mqtt-password=" + os.urandom(16).hex().encode())
    pems = []
    for i, k in enumerate(keys[:n]):
        p = os.path.join(tmp, f"{i}.pem")
        with open(p, "wb") as f:
            f.write(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
        pems.append(p)
    t0 = time.monotonic()
    for i, p in enumerate(pems):
        subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", p, "-in", secret,
                        "-out", os.path.join(tmp, f"{i}.enc")], check=True)
    el = time.monotonic() - t0
    subprocess.run(["rm", "-rf", tmp])
    return len(pems) / el


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.environ.get("ET_BUILD_DIR", "build"))
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--keys", type=int, default=300, help="distinct RSA keys (cached)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", choices=["sqlite", "pg1", "pg3"], action="append")
    ap.add_argument("--accounts", choices=["registry", "dynsec"], action="append",
                    help="device login modes to measure (default both)")
    ap.add_argument("--pending", action="store_true",
                    help="also run without --auto-accept (registry path only, no broker login)")
    a = ap.parse_args()
    os.environ["ET_BUILD_DIR"] = os.path.abspath(a.build)
    import etfix
    etfix.BUILD = os.environ["ET_BUILD_DIR"]
    keys = load_keys(os.path.join(etfix.BUILD, "bench-cache", "rsa2048"), min(a.keys, a.devices))
    cases = [("sqlite", "SQLite, 1 instance", "sqlite", 1),
             ("pg1", "PostgreSQL, 1 instance", "postgresql", 1),
             ("pg3", "PostgreSQL, 3 instances", "postgresql", 3)]
    results = {}
    modes = a.accounts or ["registry", "dynsec"]
    for key, name, db, inst in cases:
        if a.only and key not in a.only:
            continue
        for mode in modes:
            label = f"{name}, {mode} logins"
            print(f"running: {label}, {a.devices} devices over {a.connections} bootstrap connections"
                  f"{f', each request sent {a.repeat} times' if a.repeat > 1 else ''}...", flush=True)
            results[f"{key}-{mode}"] = run_case(label, db, inst, a.devices, keys, a.connections,
                                                a.repeat, accounts=mode)
        if a.pending:
            print(f"running: {name}, without --auto-accept (devices end pending)...", flush=True)
            results[key + "-pending"] = run_case(name, db, inst, a.devices, keys,
                                                 a.connections, a.repeat, to_pending=True)
    peer = article_peer(keys)
    print()
    print(f"| setup | devices | requests | time (s) | registrations/s | vs DPS unit (16.7/s) | vs article step ({peer:.0f}/s) | load avg | CPU s per process | registrations per CPU-s of the busiest cloud process |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results.values():
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items())
        busiest = max(v for k, v in r["cpu"].items() if k != "devices (bench)")
        print(f"| {r['name']} | {r['devices']} | {r['requests']} | {r['elapsed']:.2f} | "
              f"{r['rate']:.0f} | {r['rate'] / DPS_PER_S:.0f}x | {r['rate'] / peer:.1f}x | "
              f"{r['load']:.1f} | {cpu} | {r['devices'] / busiest:.0f} |")
    print()
    for key, name, _, _ in cases:
        r, d = results.get(f"{key}-registry"), results.get(f"{key}-dynsec")
        if r and d:
            print(f"{name}: registry logins / dynsec logins: {r['rate'] / d['rate']:.1f}x "
                  f"registrations/s; broker CPU per registration {r['cpu']['mosquitto'] / r['devices'] * 1000:.2f} ms "
                  f"vs {d['cpu']['mosquitto'] / d['devices'] * 1000:.2f} ms")
    for r in results.values():
        total = sum(r["cpu"].values())
        print(f"{r['name']}: {total:.2f} CPU-s in {r['elapsed']:.2f} s on {os.cpu_count()} cores "
              f"({total / r['elapsed'] / (os.cpu_count() or 1) * 100:.0f}% of the machine), "
              f"{sum(v for k, v in r['cpu'].items() if k != 'devices (bench)') / r['devices'] * 1000:.2f} "
              f"cloud-side CPU-ms per registration")
    for k in ("registry", "dynsec", "pending"):
        k1, k3 = f"pg1-{k}", f"pg3-{k}"
        if k1 in results and k3 in results:
            print(f"3 instances / 1 instance on PostgreSQL ({k}): "
                  f"{results[k3]['rate'] / results[k1]['rate']:.2f}x")
    for r in results.values():
        if r.get("pending"):
            continue
        print(f"{r['name']}: activation of {r['devices']} serials incl. their broker roles took "
              f"{r['prep']:.1f} s (before the devices start)")
    for r in results.values():
        if r.get("pending"):
            continue
        print(f"{r['name']}: every device got exactly one credential: {r['devices']} rows in "
              f"credentials (1 per device), {r['devices']} broker logins, {r['opened']} envelopes "
              f"opened with the device key, {r['logins']} sample logins OK, {r['errors']} error log lines")
    for r in results.values():
        if not r.get("pending"):
            print(f"target >= 1000 full registrations/s, {r['name']}: "
                  f"{'met' if r['rate'] >= 1000 else 'NOT met'} ({r['rate']:.0f}/s)")


if __name__ == "__main__":
    main()
