#!/usr/bin/python3
"""Modbus benchmark: our poller (et-mbprobe, the same objects as edgetrustd) against mbpoll
(Debian) on the same server in the same run, and RTU cycle time against the wire-time bound.

    bench/modbus_bench.py [BUILD_DIR]      (default: build; needs socat and mbpoll)

TCP: both masters read 10 holding registers per poll from bench/mbserver (libmodbus server) and
from the pymodbus simulator. mbpoll's shortest poll interval is 10 ms (it sleeps between polls),
so we compare (a) both at a 10 ms interval and (b) our back-to-back rate with mbpoll's fastest.
RTU: over a socat pty pair (no baud-rate delay: the measured time is software + pty latency);
the bound is what a real line adds: (13 + 2N) * 11 / baud + 2 * t3.5 for N registers.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import etfix  # noqa: E402
import modbus_sim  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
PROBE = os.path.join(BUILD, "tests", "agent", "et-mbprobe")
MBSERVER = os.path.join(BUILD, "bench", "mbserver")
SECONDS = float(os.environ.get("ET_BENCH_SECONDS", "3"))


def start_mbserver(args):
    p = subprocess.Popen([MBSERVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    if p.stdout.readline().strip() != "READY":
        raise RuntimeError("mbserver did not start: " + p.stderr.read())
    return p


def stop(p):
    etfix.stop_process(p)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


def ours(tmp, dev, n_regs, fast, seconds=SECONDS):
    conf = dev + "".join(f"[point.d.r{a}]\ntable = holding\naddress = {a}\n"
                         for a in range(n_regs))
    path = os.path.join(tmp, "bench.conf")
    with open(path, "w") as f:
        f.write(conf)
    args = [PROBE, "--config", path, "--quiet", "--duration-ms", str(int(seconds * 1000))]
    if fast:
        args.append("--fast")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    s = json.loads(out.splitlines()[-1])
    assert s["ok"] == s["readings"] and s["requests"] == s["cycles"], s
    return s["cycles"] / (s["elapsed_ms"] / 1000.0)


def mbpoll(args, seconds=SECONDS):
    """Polls per second of mbpoll running for `seconds` (line-buffered so nothing is lost)."""
    p = subprocess.Popen(["stdbuf", "-oL", "mbpoll", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    start = time.monotonic()
    polls, first = 0, None
    try:
        while time.monotonic() - start < seconds:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("-- Polling"):
                if first is None:
                    first = time.monotonic()  # excludes start-up and connect
                polls += 1
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()
    if first is None or polls < 2:
        raise RuntimeError("mbpoll did not poll")
    return (polls - 1) / (time.monotonic() - first)


def tcp_dev(port, poll_ms):
    return (f"[modbus.d]\ntransport = tcp\nhost = 127.0.0.1\nport = {port}\n"
            f"poll_ms = {poll_ms}\ntimeout_ms = 1000\n")


def bench_tcp(tmp):
    print("Modbus TCP, 10 holding registers per poll (polls/s, higher is better)")
    results = {}
    for server in ("mbserver", "pymodbus"):
        port = etfix.free_ports(1)
        if server == "mbserver":
            srv = start_mbserver(["--tcp", str(port)])
        else:
            sim = modbus_sim.SimProcess(port=port).start()
            port, srv = sim.port, sim.proc
        try:
            mb_args = ["-m", "tcp", "-p", str(port), "-a", "1", "-0", "-r", "0", "-c", "10",
                       "-l", "10", "-o", "1", "127.0.0.1"]
            r = {
                "ours_10ms": ours(tmp, tcp_dev(port, 10), 10, fast=False),
                "mbpoll_10ms": mbpoll(mb_args),
                "ours_b2b": ours(tmp, tcp_dev(port, 10), 10, fast=True),
            }
        finally:
            if server == "mbserver":
                stop(srv)
            else:
                sim.stop()
        results[server] = r
        print(f"  {server:9s} ours@10ms {r['ours_10ms']:8.1f}  mbpoll@10ms {r['mbpoll_10ms']:8.1f}"
              f"  ratio {r['ours_10ms'] / r['mbpoll_10ms']:5.2f}   |  ours back-to-back "
              f"{r['ours_b2b']:8.1f}  ratio to mbpoll's fastest {r['ours_b2b'] / r['mbpoll_10ms']:6.2f}")
        mb_ms = 1000.0 / r["mbpoll_10ms"] - 10.0
        print(f"  {'':9s} time per poll without the 10 ms sleep: ours {1000.0 / r['ours_b2b']:.3f} ms,"
              f" mbpoll {mb_ms:.3f} ms (mbpoll / ours = {mb_ms * r['ours_b2b'] / 1000.0:.1f})")
    m, py = results["mbserver"], results["pymodbus"]
    print(f"  server bottleneck: our back-to-back rate on mbserver / on pymodbus = "
          f"{m['ours_b2b'] / py['ours_b2b']:.1f}")
    return results


def wire_bound_ms(n, baud):
    t35 = 3.5 * 11 / baud if baud <= 19200 else 0.00175
    return ((13 + 2 * n) * 11 / baud + 2 * t35) * 1000


def bench_rtu(tmp):
    print("Modbus RTU over a socat pty pair (no baud delay), mbserver as the device")
    rows = []
    with modbus_sim.PtyPair(tmp) as pty:
        srv = start_mbserver(["--rtu", pty.b, "--baud", "19200"])
        try:
            for n in (1, 10, 125):
                dev = (f"[modbus.d]\ntransport = rtu\ndevice = {pty.a}\nbaud = 19200\n"
                       f"poll_ms = 10\ntimeout_ms = 1000\n")
                rate = ours(tmp, dev, n, fast=True)
                cyc = 1000.0 / rate
                mb = mbpoll(["-m", "rtu", "-b", "19200", "-P", "none", "-a", "1", "-0", "-r", "0",
                             "-c", str(n), "-l", "10", "-o", "1", pty.a])
                rows.append((n, cyc, 1000.0 / mb - 10.0))
                print(f"  N={n:3d}: our cycle {cyc:6.3f} ms (mbpoll {1000.0 / mb - 10.0:6.3f} ms "
                      f"excluding its 10 ms sleep); wire-time bound "
                      + ", ".join(f"{b}: {wire_bound_ms(n, b):7.2f} ms" for b in
                                  (9600, 19200, 115200))
                      + f"; our overhead / bound at 115200 = {cyc / wire_bound_ms(n, 115200):.3f}")
        finally:
            stop(srv)
    return rows


def main():
    for exe in (PROBE, MBSERVER):
        if not os.path.exists(exe):
            print(f"missing {exe}: build first (ninja -C {BUILD})")
            return 1
    with tempfile.TemporaryDirectory(prefix="et-mbbench-") as tmp:
        bench_tcp(tmp)
        bench_rtu(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
