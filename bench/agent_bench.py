#!/usr/bin/python3
"""edgetrustd: memory (VmHWM / VmRSS), binary size, and spool-to-broker QoS 1 throughput next to
mosquitto_pub measured in the same run on the same broker.

    bench/agent_bench.py [BUILD] [--records N] [--seconds S]

RSS: the agent registered and polling two Modbus points every 50 ms from the pymodbus
simulator, publishing to mosquitto, for S seconds; peer: `mosquitto_pub -l -q 1` (the smallest
MQTT client that ships with mosquitto) fed one reading per line over the same time.
Throughput: N readings put into the agent's spool while it is stopped, then the time from its
start until the spool is empty (every record PUBACKed; 100 records per message, spool.batch
messages in flight); peer: `mosquitto_pub -l -q 1` publishing the same N readings, one per
message (its fastest QoS 1 mode), to the same broker.
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

N = 50000
SECONDS = 20
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


def reading(seq):
    return {"seq": seq, "ts": 1700000000000 + seq, "device": "plc1", "point": "temp",
            "value": 21.5, "unit": "degC", "q": "ok"}


def main():
    tmp = etfix.TempDir()
    tpm = etfix.Swtpm().start()
    mq = etfix.Mosquitto(allow_anonymous=True,
                         extra="max_queued_messages 0\nmax_inflight_messages 0\n").start()
    sim = agentfix.ModbusSim(tmp).start()
    cloud = agentfix.MiniCloud(mq.port)
    try:
        agentfix.provision(tpm, "SN-BENCH-1")
        a = agentfix.Agent(tmp, tpm.tcti, mq.port, sim.port, serial="SN-BENCH-1", poll_ms=50,
                           log_level="debug")
        a.start()
        a.wait_log("connected to the broker as SN-BENCH-1", 60)
        time.sleep(SECONDS)
        m_agent = mem(a.proc.pid)
        hwm = m_agent[0]
        depth = a.ctl({"op": "status"})["status"]["spool_depth"]
        readings = cloud.count()
        a.stop()
        cloud.stop()

        line = json.dumps({"v": 1, "records": [reading(1)]})
        peer = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mq.port), "-q", "1",
                                 "-t", "bench/peer", "-l", "-u", "x", "-P", "x"],
                                stdin=subprocess.PIPE)
        end = time.monotonic() + min(SECONDS, 10)
        while time.monotonic() < end:
            peer.stdin.write((line + "\n").encode())
            peer.stdin.flush()
            time.sleep(0.025)
        m_peer = mem(peer.pid)
        peer_hwm = m_peer[0]
        peer.stdin.close()
        peer.wait()

        size_agent = os.path.getsize(etfix.binary("edgetrustd"))
        size_lib = os.path.getsize(os.path.join(etfix.BUILD, "lib", "libedgetrust.so.0.1.0"))
        size_pub = os.path.getsize("/usr/bin/mosquitto_pub")
        stripped = tmp.join("edgetrustd.stripped")
        subprocess.run(["strip", "--strip-all", "-o", stripped, etfix.binary("edgetrustd")],
                       check=True)
        size_stripped = os.path.getsize(stripped)

        # Throughput: fill the stopped agent's spool with N readings.
        db = sqlite3.connect(os.path.join(a.data_dir, "spool.db"))
        first = db.execute("SELECT v FROM meta WHERE k='next_seq'").fetchone()[0]
        db.executemany("INSERT INTO readings(seq,ts,device,point,unit,value,q) VALUES(?,?,?,?,?,?,?)",
                       [(first + i, 1700000000000 + i, "plc1", "temp", "degC", 21.5, "ok")
                        for i in range(N)])
        db.execute("INSERT OR REPLACE INTO meta(k,v) VALUES('next_seq',?)", (first + N,))
        db.commit()
        db.close()
        # No Modbus device in this run: only the spool drains.
        with open(a.conf) as f:
            conf = f.read().split("[modbus.plc1]")[0]
        with open(a.conf, "w") as f:
            f.write(conf.replace("batch = 20", "batch = 100"))
        t0 = time.monotonic()
        a.start()
        a.wait_log("running", 60)
        agentfix.wait_for(lambda: a.ctl({"op": "status"})["status"]["spool_depth"] == 0, 600,
                          "spool drained")
        t_agent = time.monotonic() - t0
        a.stop()
        db = sqlite3.connect(os.path.join(a.data_dir, "spool.db"))
        left = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        db.close()
        published = sum(int(l.split("..")[1].split()[0]) - int(l.split("seq ")[1].split("..")[0]) + 1
                        for l in a.run_log().splitlines() if "published seq" in l)
        if left != 0:
            raise SystemExit(f"spool not drained: {left} left")

        lines = "".join(json.dumps({"v": 1, "records": [reading(i)]}) + "\n" for i in range(N))
        t0 = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mq.port), "-q", "1",
                        "-t", "bench/peer", "-l", "-u", "x", "-P", "x"], input=lines.encode(),
                       check=True)
        t_pub = time.monotonic() - t0
    finally:
        sim.stop()
        mq.cleanup()
        tpm.cleanup()
        tmp.cleanup()

    print(f"edgetrustd memory after {SECONDS} s polling 2 points every 50 ms and publishing "
          f"({readings} readings delivered, spool depth {depth}):")
    print("| process | VmHWM | VmRSS | RssAnon | RssFile (shared libraries) | Pss | binary (bytes) |")
    print("|---|---|---|---|---|---|---|")
    print("| edgetrustd | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | " % m_agent
          + f"{size_agent}, stripped {size_stripped} (+ libedgetrust.so {size_lib}) |")
    print("| mosquitto_pub -l -q 1 (peer) | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | " % m_peer
          + f"{size_pub} |")
    print(f"ratio edgetrustd/mosquitto_pub VmHWM: {hwm / max(peer_hwm, 1):.2f}; "
          f"target VmHWM <= 8192 KiB: {'met' if hwm <= 8192 else 'NOT met'}")
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


if __name__ == "__main__":
    main()
