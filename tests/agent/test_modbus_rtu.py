#!/usr/bin/python3
"""Modbus RTU poller over a socat pty pair against the pymodbus simulator: values, several
units sharing one line, bad CRC / exceptions / silence as quality marks, and an adapter that
disappears and comes back."""
import json
import os
import subprocess
import time
import unittest

import etfix
import modbus_sim

PROBE = os.path.join(etfix.BUILD, "tests", "agent", "et-mbprobe")


# Generous timeouts where an answer is expected: the suite runs on loaded CI machines, under ASan.
def device(name, tty, unit=1, poll_ms=100, timeout_ms=2000, baud=19200):
    return (f"[modbus.{name}]\ntransport = rtu\ndevice = {tty}\nbaud = {baud}\n"
            f"unit_id = {unit}\npoll_ms = {poll_ms}\ntimeout_ms = {timeout_ms}\n")


def point(dev, name, table, address, **kw):
    s = f"[point.{dev}.{name}]\ntable = {table}\naddress = {address}\n"
    return s + "".join(f"{k} = {v}\n" for k, v in kw.items())


class ModbusRtu(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir("et-mbrtu-")

    def tearDown(self):
        self.tmp.cleanup()

    def probe(self, conf, *args):
        path = self.tmp.join("t.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = subprocess.run([PROBE, "--config", path, *args], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        self.assertTrue(lines[-1].get("summary"))
        out = {}
        for r in lines:
            if "point" in r:
                out.setdefault((r["device"], r["point"]), []).append(r)
        return out, lines[-1]

    def test_values_units_and_faults(self):
        stats = self.tmp.join("stats")
        faults = ["badcrc:holding:40", "exception:holding:50:3", "silent:input:30",
                  "short:holding:80"]
        with modbus_sim.PtyPair(self.tmp.path) as pty, \
                modbus_sim.SimProcess(rtu=pty.b, units=(1, 2), faults=faults, stats=stats):
            conf = device("a", pty.a, unit=1)
            conf += point("a", "u32", "holding", 100, type="u32")
            conf += point("a", "f32", "input", 2, type="f32", word_order="little")
            conf += point("a", "coil1", "coil", 1)
            conf += point("a", "crc", "holding", 40)
            conf += point("a", "exc", "holding", 50)
            conf += device("b", pty.a, unit=2)  # same line, another unit
            conf += point("b", "i16", "holding", 104, type="i16", scale=0.1)
            conf += device("c", pty.a, unit=2, timeout_ms=200)
            conf += point("c", "silent", "input", 30)
            conf += device("d", pty.a, unit=2, timeout_ms=200)
            conf += point("d", "short", "holding", 80)
            conf += point("d", "after", "holding", 90)
            bp, summary = self.probe(conf, "--cycles", "5")
        for r in bp[("a", "u32")]:
            self.assertEqual((r["quality"], r["value"]), ("ok", 0x12345678))
        for r in bp[("a", "f32")]:
            self.assertEqual(r["quality"], "ok")
            self.assertAlmostEqual(r["value"], 123.456, places=4)
        for r in bp[("a", "coil1")]:
            self.assertEqual((r["quality"], r["value"]), ("ok", 1))
        for r in bp[("b", "i16")]:
            self.assertEqual(r["quality"], "ok")
            self.assertAlmostEqual(r["value"], -1.0)
        for r in bp[("a", "crc")]:
            self.assertEqual(r["quality"], "crc", r)
        for r in bp[("a", "exc")]:
            self.assertEqual((r["quality"], r["exception"]), ("exception", 3))
        for r in bp[("c", "silent")]:
            self.assertEqual(r["quality"], "timeout")
        for r in bp[("d", "short")] + bp[("d", "after")]:
            self.assertIn(r["quality"], ("timeout", "crc", "io"), r)
        self.assertEqual(len(bp[("a", "u32")]), 5)
        self.assertEqual(summary["connects"], 1, "devices on one line share the port")
        units = {u for u, fc, a, c in modbus_sim.read_stats(stats)}
        self.assertEqual(units, {1, 2})

    def test_adapter_gone_and_back(self):
        pty = modbus_sim.PtyPair(self.tmp.path).start()
        sim = modbus_sim.SimProcess(rtu=pty.b).start()
        proc = None
        try:
            conf = device("a", pty.a, timeout_ms=300) + point("a", "x", "holding", 7)
            path = self.tmp.join("t.conf")
            with open(path, "w") as f:
                f.write(conf)
            proc = subprocess.Popen([PROBE, "--config", path, "--duration-ms", "600000"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

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
            pty.stop()  # the USB adapter is unplugged: the tty disappears
            next_quality("io")
            next_quality("io")
            self.assertIsNone(proc.poll())
            pty = modbus_sim.PtyPair(self.tmp.path).start()
            sim = modbus_sim.SimProcess(rtu=pty.b).start()
            self.assertEqual(next_quality("ok")["value"], 7)
        finally:
            if proc:
                etfix.stop_process(proc)
                proc.stdout.close()
                proc.stderr.close()
            sim.stop()
            pty.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
