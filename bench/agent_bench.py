#!/usr/bin/python3
"""edgetrustd: memory (VmHWM / VmRSS), binary size, and spool-to-broker and spool-to-cloud-store
QoS 1 throughput next to mosquitto_pub measured in the same run on the same broker.

    bench/agent_bench.py [BUILD] [--records N] [--seconds S] [--no-tls]

Memory: the agent registered and polling two Modbus points every 50 ms from the pymodbus
simulator, publishing to mosquitto, for S seconds, once over plain MQTT and once over TLS
(tls = true, CA file, TLS 1.2: what a device runs); peer: `mosquitto_pub -l -q 1` (the smallest
MQTT client that ships with mosquitto) fed one reading per line over the same time on the same
listener. From /proc: VmHWM (peak), VmRSS (steady, at the end), RssAnon / RssFile, Pss, the
mappings holding most pages (smaps), and the peak RSS of each TPM helper process the agent ran
(its log: the helper does the TPM work and exits, see src/agent/tpmjob.h). After the
spool-to-broker run (a backlog of N records drained) the agent's VmHWM again.
Throughput: N readings put into the agent's spool while it is stopped, then the time from its
start until the spool is empty (100 records per message, spool.batch messages in flight):
- spool to broker: `[spool] delivery = puback`, a record leaves with its PUBACK;
- spool to cloud store: the default `delivery = cloud-ack` against the real edgetrust-cloud serve
  (SQLite registry, tests/lib/cloudfix.py): a record leaves when serve has committed it and
  acknowledged it (docs/protocol.md, "Delivery end to end"); checked: all N in the store.
Peer: `mosquitto_pub -l -q 1` publishing the same N readings, one per message (its fastest QoS 1
mode), to the same broker (it only reaches the broker).
"""
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path[:0] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"),
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "agent")]
if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
    os.environ["ET_BUILD_DIR"] = os.path.abspath(sys.argv[1])
import etfix  # noqa: E402
import agentfix  # noqa: E402
import cloudfix  # noqa: E402

N = 50000
SECONDS = 20
TLS = "--no-tls" not in sys.argv
for i, a in enumerate(sys.argv):
    if a == "--records":
        N = int(sys.argv[i + 1])
    if a == "--seconds":
        SECONDS = int(sys.argv[i + 1])


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def mem(pid):
    return (status_kb(pid, "VmHWM"), status_kb(pid, "VmRSS"), status_kb(pid, "RssAnon"),
            status_kb(pid, "RssFile"), pss_kb(pid))


def top_mappings(pid, n=6):
    """The objects holding most resident pages: [(name, rss_kib, anon_kib)]."""
    rss, anon = {}, {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":") and "-" in parts[0]:
                name = os.path.basename(parts[5]) if len(parts) > 5 else "[anon]"
            elif parts[0] == "Rss:":
                rss[name] = rss.get(name, 0) + int(parts[1])
            elif parts[0] == "Anonymous:":
                anon[name] = anon.get(name, 0) + int(parts[1])
    return sorted(((k, v, anon.get(k, 0)) for k, v in rss.items()), key=lambda t: -t[1])[:n]


def helper_peaks(log):
    """(what, peak KiB) of every TPM helper run in the agent's log."""
    out = []
    for line in log.splitlines():
        if "TPM helper (" in line and "peak RSS" in line:
            out.append((line.split("TPM helper (")[1].split(")")[0],
                        int(line.split("peak RSS ")[1].split()[0])))
    return out


def make_pki(d):
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
            "-out", "ca.pem", "-subj", "/CN=et-bench-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")


def peer_memory(port, seconds, tls_args):
    line = json.dumps({"v": 1, "records": [reading(1)]})
    peer = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                             "-t", "bench/peer", "-l", "-u", "x", "-P", "x"] + tls_args,
                            stdin=subprocess.PIPE)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peer.stdin.write((line + "\n").encode())
        peer.stdin.flush()
        time.sleep(0.025)
    m = mem(peer.pid)
    peer.stdin.close()
    peer.wait()
    return m


def reading(seq):
    return {"seq": seq, "ts": 1700000000000 + seq, "device": "plc1", "point": "temp",
            "value": 21.5, "unit": "degC", "q": "ok"}


def fill_spool(data_dir, n):
    db = sqlite3.connect(os.path.join(data_dir, "spool.db"))
    first = (db.execute("SELECT v FROM meta WHERE k='next_seq'").fetchone() or [1])[0]
    db.executemany("INSERT INTO readings(seq,ts,device,point,unit,value,q) VALUES(?,?,?,?,?,?,?)",
                   [(first + i, 1700000000000 + i, "plc1", "temp", "degC", 21.5, "ok")
                    for i in range(n)])
    db.execute("INSERT OR REPLACE INTO meta(k,v) VALUES('next_seq',?)", (first + n,))
    db.commit()
    db.close()
    return first


def drain(a):
    """Starts the agent and returns the seconds until its spool is empty."""
    t0 = time.monotonic()
    a.start()
    a.wait_log("running", 60)
    agentfix.wait_for(lambda: a.ctl({"op": "status"})["status"]["spool_depth"] == 0, 600,
                      "spool drained")
    t = time.monotonic() - t0
    a.last_mem = mem(a.proc.pid)
    a.stop()
    db = sqlite3.connect(os.path.join(a.data_dir, "spool.db"))
    left = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    db.close()
    if left != 0:
        raise SystemExit(f"spool not drained: {left} left")
    return t


def cloud_store_run(n):
    """Spool to the cloud store: edgetrust-cloud serve on SQLite, delivery = cloud-ack."""
    tmp = etfix.TempDir()
    tpm = etfix.Swtpm().start()
    stack = cloudfix.CloudStack(db="sqlite", auto_accept=True).start()
    try:
        serial = "SN-BENCH-2"
        agentfix.provision(tpm, serial)
        stack.cli("activate", serial, check=True)
        a = agentfix.Agent(tmp, tpm.tcti, stack.broker_port, serial=serial, log_level="info",
                           bootstrap_password=stack.bootstrap_password, spool_extra="")
        a.start()
        a.wait_log("connected to the broker as " + serial, 60)
        a.stop()
        with open(a.conf) as f:
            conf = f.read()
        with open(a.conf, "w") as f:
            f.write(conf.replace("batch = 20", "batch = 100"))
        first = fill_spool(a.data_dir, n)
        t = drain(a)
        rows = stack.cli("telemetry", serial, "--json", "--limit", str(10 * n), json_out=True)
        stored = {r["seq"] for r in rows}
        if not set(range(first, first + n)) <= stored:
            raise SystemExit(f"cloud store misses {len(set(range(first, first + n)) - stored)}")
        return t
    finally:
        stack.cleanup()
        tpm.cleanup()
        tmp.cleanup()


def main():
    tmp = etfix.TempDir()
    pki = tmp.join("pki")
    os.makedirs(pki)
    extra = "max_queued_messages 0\nmax_inflight_messages 0\n"
    tls_port = None
    if TLS:
        make_pki(pki)
        tls_port = etfix.free_ports(1)
        extra += (f"listener {tls_port} 127.0.0.1\ncafile {pki}/ca.pem\n"
                  f"certfile {pki}/server.pem\nkeyfile {pki}/server.key\ntls_version tlsv1.2\n")
    tpm = etfix.Swtpm().start()
    mq = etfix.Mosquitto(allow_anonymous=True, extra=extra).start()
    if TLS and not etfix.wait_port(tls_port, 10):
        raise SystemExit("mosquitto's TLS listener did not come up")
    sim = agentfix.ModbusSim(tmp).start()
    cloud = agentfix.MiniCloud(mq.port)
    try:
        agentfix.provision(tpm, "SN-BENCH-1")
        runs = []  # (label, agent mem, top mappings, helper peaks, readings, depth, peer mem)
        for tls in ([False, True] if TLS else [False]):
            port = tls_port if tls else mq.port
            a = agentfix.Agent(tmp, tpm.tcti, port, sim.port, serial="SN-BENCH-1", poll_ms=50,
                               log_level="debug")
            if tls:
                with open(a.conf) as f:
                    conf = f.read()
                with open(a.conf, "w") as f:
                    f.write(conf.replace("tls = false", f"tls = true\nca_file = {pki}/ca.pem"))
            a.start()
            a.wait_log("connected to the broker as SN-BENCH-1", 60)
            before = cloud.count()
            time.sleep(SECONDS)
            m_agent = mem(a.proc.pid)
            top = top_mappings(a.proc.pid)
            depth = a.ctl({"op": "status"})["status"]["spool_depth"]
            readings = cloud.count() - before
            a.stop()
            helpers = helper_peaks(a.run_log())
            m_peer = peer_memory(port, min(SECONDS, 10),
                                 ["--cafile", f"{pki}/ca.pem", "--tls-version", "tlsv1.2"]
                                 if tls else [])
            runs.append(("TLS" if tls else "plain MQTT", m_agent, top, helpers, readings, depth,
                         m_peer))
        cloud.stop()

        size_agent = os.path.getsize(etfix.binary("edgetrustd"))
        size_lib = os.path.getsize(os.path.join(etfix.BUILD, "lib", "libedgetrust.so.0.1.0"))
        size_pub = os.path.getsize("/usr/bin/mosquitto_pub")
        stripped = tmp.join("edgetrustd.stripped")
        subprocess.run(["strip", "--strip-all", "-o", stripped, etfix.binary("edgetrustd")],
                       check=True)
        size_stripped = os.path.getsize(stripped)

        # Throughput to the broker: fill the stopped agent's spool with N readings; a record
        # leaves on its PUBACK (delivery = puback). Plain MQTT, as the peer.
        a = agentfix.Agent(tmp, tpm.tcti, mq.port, sim.port, serial="SN-BENCH-1", poll_ms=50,
                           log_level="debug")
        fill_spool(a.data_dir, N)
        # No Modbus device in this run: only the spool drains.
        with open(a.conf) as f:
            conf = f.read().split("[modbus.plc1]")[0]
        with open(a.conf, "w") as f:
            f.write(conf.replace("batch = 20", "batch = 100\ndelivery = puback"))
        t_agent = drain(a)
        m_drain = a.last_mem
        published = sum(int(l.split("..")[1].split()[0]) - int(l.split("seq ")[1].split("..")[0]) + 1
                        for l in a.run_log().splitlines() if "published seq" in l)

        lines = "".join(json.dumps({"v": 1, "records": [reading(i)]}) + "\n" for i in range(N))
        t0 = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mq.port), "-q", "1",
                        "-t", "bench/peer", "-l", "-u", "x", "-P", "x"], input=lines.encode(),
                       check=True)
        t_pub = time.monotonic() - t0
        t_cloud = cloud_store_run(N)
    finally:
        sim.stop()
        mq.cleanup()
        tpm.cleanup()
        tmp.cleanup()

    print(f"edgetrustd memory after {SECONDS} s polling 2 points every 50 ms and publishing, "
          "next to mosquitto_pub on the same listener:")
    print("| transport | process | VmHWM (peak) | VmRSS (steady) | RssAnon | RssFile (shared "
          "libraries) | Pss | readings delivered |")
    print("|---|---|---|---|---|---|---|---|")
    for label, m_agent, top, helpers, readings, depth, m_peer in runs:
        print(f"| {label} | edgetrustd | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | "
              % m_agent + f"{readings} (spool depth {depth}) |")
        print(f"| {label} | mosquitto_pub -l -q 1 (peer) | %d KiB | %d KiB | %d KiB | %d KiB | "
              "%d KiB | |" % m_peer)
    print()
    for label, m_agent, top, helpers, readings, depth, m_peer in runs:
        print(f"- {label}: VmHWM ratio edgetrustd/mosquitto_pub {m_agent[0] / max(m_peer[0], 1):.2f}, "
              f"VmRSS ratio {m_agent[1] / max(m_peer[1], 1):.2f}; target VmHWM <= 8192 KiB: "
              f"{'met' if m_agent[0] <= 8192 else 'NOT met'}")
        print("  most resident: " + ", ".join(f"{n} {r} KiB" + (f" ({an} anon)" if an else "")
                                             for n, r, an in top))
        print("  TPM helper processes (exited before the measurement): "
              + (", ".join(f"{w} peak {k} KiB" for w, k in helpers) or "none"))
    print(f"- after draining a backlog of {N} records (plain MQTT): VmHWM {m_drain[0]} KiB, "
          f"VmRSS {m_drain[1]} KiB, RssAnon {m_drain[2]} KiB")
    print(f"- binary: edgetrustd {size_agent} bytes, stripped {size_stripped} (+ libedgetrust.so "
          f"{size_lib}); mosquitto_pub {size_pub}")
    print()
    print(f"Spool to broker, QoS 1, {N} readings:")
    print("| sender | seconds | records/s | messages/s |")
    print("|---|---|---|---|")
    print(f"| edgetrustd (from SQLite spool, 100 records/message, start-up included) | "
          f"{t_agent:.2f} | {N / t_agent:.0f} | {N / 100 / t_agent:.0f} |")
    print(f"| mosquitto_pub -l -q 1 (1 record/message) | {t_pub:.2f} | {N / t_pub:.0f} | "
          f"{N / t_pub:.0f} |")
    print(f"ratio records/s edgetrustd/mosquitto_pub: {t_pub / t_agent:.2f} "
          f"(records published by the agent in the drain run: {published})")
    print()
    print(f"Spool to cloud store (edgetrust-cloud serve, SQLite; deleted on the cloud's ack), "
          f"{N} readings:")
    print("| sender | seconds | records/s |")
    print("|---|---|---|")
    print(f"| edgetrustd -> mosquitto -> serve -> SQLite commit -> ack (start-up included) | "
          f"{t_cloud:.2f} | {N / t_cloud:.0f} |")
    print(f"| mosquitto_pub -l -q 1 (to the broker only, from above) | {t_pub:.2f} | {N / t_pub:.0f} |")
    print(f"ratio records/s edgetrustd-to-store/mosquitto_pub-to-broker: {t_pub / t_cloud:.2f}")


if __name__ == "__main__":
    main()
