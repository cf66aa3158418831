#!/usr/bin/python3
"""Modbus TCP poller against the pymodbus simulator: decoded values (all types, word orders,
scaling), fewest requests counted on the simulator side, faults turned into quality marks
without stopping, a device that goes down and comes back, live poll interval and register map
changes."""
import json
import os
import struct
import subprocess
import sys
import time
import unittest

import etfix
import modbus_sim

PROBE = os.path.join(etfix.BUILD, "tests", "agent", "et-mbprobe")
F32_123 = struct.unpack("f", struct.pack("f", 123.456))[0]


# Generous timeouts where an answer is expected: the suite runs on loaded CI machines, under ASan.
def device(name, port, unit=1, poll_ms=100, timeout_ms=2000):
    return (f"[modbus.{name}]\ntransport = tcp\nhost = 127.0.0.1\nport = {port}\n"
            f"unit_id = {unit}\npoll_ms = {poll_ms}\ntimeout_ms = {timeout_ms}\n")


def point(dev, name, table, address, **kw):
    s = f"[point.{dev}.{name}]\ntable = {table}\naddress = {address}\n"
    return s + "".join(f"{k} = {v}\n" for k, v in kw.items())


def probe(tmp, conf, *args, timeout=60, name="t.conf"):
    path = tmp.join(name)
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.run([PROBE, "--config", path, *args], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"et-mbprobe exited {p.returncode}: {p.stderr}")
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    summary = lines[-1]
    assert summary.get("summary"), p.stdout[-500:]
    return [l for l in lines if "point" in l], summary, p.stderr


def by_point(readings):
    out = {}
    for r in readings:
        out.setdefault((r["device"], r["point"]), []).append(r)
    return out


class ModbusTcp(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir("et-mbtcp-")

    def tearDown(self):
        self.tmp.cleanup()

    def test_values_and_fewest_requests(self):
        stats = self.tmp.join("stats")
        with modbus_sim.SimProcess(stats=stats) as sim:
            conf = device("d", sim.port)
            conf += point("d", "counter", "holding", 0)
            conf += point("d", "u32big", "holding", 100, type="u32")
            conf += point("d", "u32little", "holding", 102, type="u32", word_order="little")
            conf += point("d", "i16", "holding", 104, type="i16")
            conf += point("d", "i16scaled", "holding", 104, type="i16", scale=0.5, offset=100,
                          unit="degC")
            conf += point("d", "i32", "holding", 106, type="i32")
            conf += point("d", "f32h", "holding", 110, type="f32")
            conf += point("d", "f32big", "input", 0, type="f32")
            conf += point("d", "f32little", "input", 2, type="f32", word_order="little")
            conf += point("d", "nan", "input", 6, type="f32")
            conf += point("d", "inf", "input", 8, type="f32")
            conf += point("d", "in20", "input", 20, scale=0.1)
            conf += point("d", "coil0", "coil", 0)
            conf += point("d", "coil1", "coil", 1)
            conf += point("d", "coil2", "coil", 2, scale=10, offset=1)
            conf += point("d", "di3", "discrete", 3)
            conf += point("d", "di4", "discrete", 4)
            # 300 consecutive registers: 3 requests (125 + 125 + 50)
            conf += device("dense", sim.port, poll_ms=100)
            for a in range(1000, 1300):
                conf += point("dense", f"r{a}", "holding", a)
            readings, summary, _ = probe(self.tmp, conf, "--cycles", "4")
        bp = by_point(readings)
        self.assertEqual(summary["cycles"], 4)

        def values(name, dev="d"):
            rs = bp[(dev, name)]
            self.assertEqual(len(rs), 4, name)
            return rs

        for name, want in [("u32big", 0x12345678), ("u32little", 0x12345678), ("i16", -10),
                           ("i16scaled", 95.0), ("i32", -2), ("f32h", -2.25),
                           ("f32big", F32_123), ("f32little", F32_123), ("in20", 102.0),
                           ("coil1", 1), ("coil2", 1), ("di3", 1), ("di4", 0)]:
            for r in values(name):
                self.assertEqual(r["quality"], "ok", (name, r))
                self.assertAlmostEqual(r["value"], want, places=9, msg=name)
        self.assertEqual(values("i16scaled")[0]["unit"], "degC")
        for name in ("nan", "inf"):
            for r in values(name):
                self.assertEqual(r["quality"], "decode")
                self.assertIsNone(r["value"])
        counters = [r["value"] for r in values("counter")]
        self.assertTrue(all(r["quality"] == "ok" for r in values("counter")))
        self.assertEqual(counters, sorted(counters))
        self.assertLess(counters[0], counters[-1], "the counter register should change")
        for a in range(1000, 1300):
            for r in values(f"r{a}", "dense"):
                self.assertEqual((r["quality"], r["value"]), ("ok", a))

        reqs = modbus_sim.read_stats(stats)
        want = {(1, 3, 0, 1), (1, 3, 100, 12), (1, 4, 0, 10), (1, 4, 20, 1), (1, 1, 0, 3),
                (1, 2, 3, 2), (1, 3, 1000, 125), (1, 3, 1125, 125), (1, 3, 1250, 50)}
        self.assertEqual(len(reqs), 4 * len(want), reqs)
        self.assertEqual(set(reqs), want)
        self.assertEqual(summary["requests"], len(reqs))

    def test_faults_become_quality_marks(self):
        faults = ["exception:holding:50:2", "exception:input:60:4", "exception:coil:40:1",
                  "garbage:holding:70", "short:holding:80", "delay:holding:90:1500",
                  "silent:input:30"]
        with modbus_sim.SimProcess(faults=faults) as sim:
            conf = device("exc", sim.port, poll_ms=100)
            conf += point("exc", "ok", "holding", 10)
            conf += point("exc", "illegal", "holding", 50)
            conf += point("exc", "failure", "input", 60)
            conf += point("exc", "nofunc", "coil", 40)
            conf += device("garb", sim.port, poll_ms=100, timeout_ms=300)
            conf += point("garb", "garbage", "holding", 70)
            conf += point("garb", "ok", "holding", 20)
            conf += device("short", sim.port, poll_ms=100, timeout_ms=300)
            conf += point("short", "short", "holding", 80)
            conf += device("slow", sim.port, poll_ms=100, timeout_ms=300)
            conf += point("slow", "slow", "holding", 90)
            conf += device("silent", sim.port, poll_ms=100, timeout_ms=200)
            conf += point("silent", "silent", "input", 30)
            conf += device("nounit", sim.port, unit=9, poll_ms=100, timeout_ms=200)
            conf += point("nounit", "x", "holding", 1)
            readings, summary, _ = probe(self.tmp, conf, "--cycles", "12")
        bp = by_point(readings)
        for r in bp[("exc", "ok")]:
            self.assertEqual((r["quality"], r["value"]), ("ok", 10))
        for key, code in ((("exc", "illegal"), 2), (("exc", "failure"), 4),
                          (("exc", "nofunc"), 1)):
            self.assertTrue(bp[key])
            for r in bp[key]:
                self.assertEqual((r["quality"], r["exception"]), ("exception", code), key)
        # pymodbus does not answer a unit it does not serve
        for r in bp[("nounit", "x")]:
            self.assertEqual(r["quality"], "timeout")
        self.assertTrue(bp[("garb", "garbage")])
        for r in bp[("garb", "garbage")]:
            self.assertIn(r["quality"], ("io", "timeout"), r)
        # the good request of the same device still reads after the garbled one
        self.assertIn("ok", [r["quality"] for r in bp[("garb", "ok")]])
        for key in (("short", "short"), ("slow", "slow"), ("silent", "silent")):
            self.assertTrue(bp[key], key)
            for r in bp[key]:
                self.assertIn(r["quality"], ("timeout", "io"), (key, r))
            self.assertIn("timeout", [r["quality"] for r in bp[key]], key)
        self.assertEqual(summary["cycles"], 12)

    def test_request_across_hole_falls_back(self):
        stats = self.tmp.join("stats")
        # address 5 is not readable: a request bridging 0..8 fails with exception 2
        with modbus_sim.SimProcess(stats=stats, faults=["exception:holding:5:2"]) as sim:
            conf = device("d", sim.port) + point("d", "a", "holding", 0)
            conf += point("d", "b", "holding", 8)
            readings, _, log = probe(self.tmp, conf, "--cycles", "3")
        for r in readings:
            self.assertEqual(r["quality"], "ok", r)
        self.assertEqual({r["point"]: r["value"] for r in readings if r["point"] == "b"},
                         {"b": 8})
        reqs = modbus_sim.read_stats(stats)
        self.assertEqual(reqs[0], (1, 3, 0, 9))
        self.assertEqual(reqs[1:], [(1, 3, 0, 1), (1, 3, 8, 1)] * 3)
        self.assertIn("reading only configured ranges", log)

    def test_device_down_then_up(self):
        sim = modbus_sim.SimProcess().start()
        try:
            conf = device("d", sim.port, poll_ms=100, timeout_ms=300)
            conf += point("d", "x", "holding", 7)
            path = self.tmp.join("t.conf")
            with open(path, "w") as f:
                f.write(conf)
            proc = subprocess.Popen([PROBE, "--config", path, "--duration-ms", "600000"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                def next_quality(want, limit=40.0):
                    deadline = time.monotonic() + limit
                    while time.monotonic() < deadline:
                        line = proc.stdout.readline()
                        if not line:
                            break
                        r = json.loads(line)
                        if r.get("point") == "x" and r["quality"] == want:
                            return r
                    self.fail(f"no reading with quality {want}")

                self.assertEqual(next_quality("ok")["value"], 7)
                sim.stop()
                next_quality("io")
                next_quality("io")
                self.assertIsNone(proc.poll(), "the poller must keep running")
                sim = modbus_sim.SimProcess(port=sim.port).start()
                self.assertEqual(next_quality("ok")["value"], 7)
            finally:
                etfix.stop_process(proc)
                proc.stdout.close()
                err = proc.stderr.read()
                proc.stderr.close()
            self.assertIn("cannot connect", err)
            self.assertIn("connected to 127.0.0.1", err)
        finally:
            sim.stop()

    def test_live_poll_ms_and_reconfigure(self):
        with modbus_sim.SimProcess() as sim:
            base = device("fast", sim.port, poll_ms=100) + point("fast", "x", "holding", 1)
            base += device("slow", sim.port, poll_ms=1000) + point("slow", "y", "holding", 2)
            # --fast: the probe's clock jumps to the next due time, so counts are exact
            readings, _, _ = probe(self.tmp, base, "--fast", "--cycles", "21")
            n = {k: len(v) for k, v in by_point(readings).items()}
            self.assertEqual(n[("fast", "x")], 21)
            self.assertEqual(n[("slow", "y")], 3)  # t = 0, 1000, 2000
            readings, _, _ = probe(self.tmp, base, "--fast", "--cycles", "21",
                                   "--set-poll-after", "1", "slow", "100")
            n = {k: len(v) for k, v in by_point(readings).items()}
            self.assertEqual(n[("slow", "y")], 21)

            new = device("fast", sim.port, poll_ms=100) + point("fast", "x2", "holding", 3)
            new += point("fast", "f", "input", 0, type="f32")
            readings, summary, _ = probe(self.tmp, base, "--fast", "--cycles", "6",
                                         "--reconfigure-after", "3", self.tmp.join("new.conf"),
                                         name="t.conf") if self._write(
                                             "new.conf", new) else (None, None, None)
            names = [(r["cycle"], r["point"]) for r in readings]
            self.assertIn((1, "x"), names)
            self.assertNotIn("x", [p for c, p in names if c > 3])
            self.assertNotIn("y", [p for c, p in names if c > 3])
            for c in (4, 5, 6):
                self.assertIn((c, "x2"), names)
                self.assertIn((c, "f"), names)
            for r in readings:
                self.assertEqual(r["quality"], "ok", r)
            # the unchanged connection of "fast" was kept: two connects in total
            self.assertEqual(summary["connects"], 2)

    def _write(self, name, text):
        with open(self.tmp.join(name), "w") as f:
            f.write(text)
        return True

    def test_bad_config_is_reported(self):
        path = self.tmp.join("bad.conf")
        with open(path, "w") as f:
            f.write("[modbus.d]\ntransport = tcp\nhost = 127.0.0.1\nport = 70000\n")
        p = subprocess.run([PROBE, "--config", path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{path}:4: value 70000 out of range for 'port' in [modbus.d]; "
                      "valid: 1..65535", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
