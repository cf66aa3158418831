#!/usr/bin/python3
"""Attacks on the agent's device side (docs/threat-model.md, "Device side: the Modbus bus" and
the control-socket rows of "Device side: the local socket, files, the CLI and the TCTI"):

- hostile Modbus TCP slaves that answer with a wrong unit id, transaction id or protocol id, or
  an MBAP length of 0, of 65535 or longer than the PDU (issue 10, finding 15);
- slaves that trickle a correct answer one byte every 0.45 s with timeout_ms = 500, over TCP
  and over a serial line (finding 7);
- a control-socket client that trickles bytes and never ends its line, idle clients beyond
  control_clients_max, and an over-long request (finding 8).

Each runs next to a healthy pymodbus simulator (plc1, polled every 100 ms) in the same agent,
and asserts through interfaces: the readings MiniCloud received and their quality marks, the
agent's control-socket status counters, and that the control socket answers at all. The
hostile slaves are raw sockets/ttys here because the attacker is exactly that component.
"""
import os
import socket
import struct
import sys
import threading
import time
import tty
import unittest

import advtest  # noqa: F401  (sys.path, --db)
import agentfix
import etfix
import modbus_sim

SERIAL = "SN-ADV-AGENT"
WINDOW_S = 10.0
# plc1 has two points polled every 100 ms: about 200 readings in WINDOW_S. A loaded CI
# machine under ASan gets fewer; a frozen main loop gets a handful (1a88aad: about 4).
HEALTHY_MIN = 50


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def pdu_for(fc, count):
    """A correct answer PDU (FC, byte count, data) to a read of count registers/bits."""
    if fc in (3, 4):
        data = b"".join(struct.pack(">H", 42) for _ in range(count))
    else:
        data = bytes((count + 7) // 8)
    return bytes([fc, len(data)]) + data


class HostileTcpSlave:
    """A Modbus TCP server that reads each request and answers it the way `mode` says:
    unit, tid, proto, len0, len65535, lenlong (forged headers) or trickle (a correct answer,
    one byte every gap_s)."""

    def __init__(self, mode, gap_s=0.45):
        self.mode, self.gap_s = mode, gap_s
        self.requests = 0
        self.stopped = threading.Event()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _recv(self, c, n):
        buf = b""
        while len(buf) < n and not self.stopped.is_set():
            try:
                chunk = c.recv(n - len(buf))
            except socket.timeout:
                continue
            if not chunk:
                return None
            buf += chunk
        return buf if len(buf) == n else None

    def answer(self, req):
        tid, _proto, _len, unit, fc, _addr, count = struct.unpack(">HHHBBHH", req)
        pdu = pdu_for(fc, count)
        proto, length, extra = 0, len(pdu) + 1, b""
        if self.mode == "unit":
            unit = (unit + 1) & 0xFF
        elif self.mode == "tid":
            tid ^= 0x5555
        elif self.mode == "proto":
            proto = 0x0001  # one byte non-zero: 1a88aad's libmodbus lets it pass
        elif self.mode == "len0":
            length = 0
        elif self.mode == "len65535":
            length = 65535
        elif self.mode == "lenlong":
            length += 4
            extra = b"\x00" * 4
        return struct.pack(">HHHB", tid, proto, length, unit) + pdu + extra

    def _serve(self, c):
        c.settimeout(0.2)
        try:
            while not self.stopped.is_set():
                req = self._recv(c, 12)
                if req is None:
                    return
                self.requests += 1
                frame = self.answer(req)
                if self.mode == "trickle":
                    for b in frame:
                        if self.stopped.is_set():
                            return
                        c.sendall(bytes([b]))
                        time.sleep(self.gap_s)
                else:
                    c.sendall(frame)
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.stopped.set()
        self.lsock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class TricklingRtuSlave:
    """A Modbus RTU slave on one end of a socat pty pair that answers every request correctly,
    one byte every gap_s."""

    def __init__(self, tty_path, gap_s=0.45):
        self.gap_s = gap_s
        self.requests = 0
        self.stopped = threading.Event()
        self.fd = os.open(tty_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import select
        buf = b""
        try:
            while not self.stopped.is_set():
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if not r:
                    continue
                buf += os.read(self.fd, 256)
                while len(buf) >= 8:
                    req, buf = buf[:8], buf[8:]
                    unit, fc, _addr, count = struct.unpack(">BBHH", req[:6])
                    self.requests += 1
                    body = bytes([unit]) + pdu_for(fc, count)
                    frame = body + struct.pack("<H", crc16(body))
                    for b in frame:
                        if self.stopped.is_set():
                            return
                        os.write(self.fd, bytes([b]))
                        time.sleep(self.gap_s)
                    buf = b""  # what came meanwhile was asked of a slave still talking
        except OSError:
            return

    def stop(self):
        self.stopped.set()
        time.sleep(0.3)
        os.close(self.fd)


def tcp_device(name, port, poll_ms=200, timeout_ms=500):
    return (f"[modbus.{name}]\ntransport = tcp\nhost = 127.0.0.1\nport = {port}\nunit_id = 7\n"
            f"poll_ms = {poll_ms}\ntimeout_ms = {timeout_ms}\n\n"
            f"[point.{name}.v]\ntable = holding\naddress = 10\n\n")


def rtu_device(name, path, poll_ms=1000, timeout_ms=500):
    return (f"[modbus.{name}]\ntransport = rtu\ndevice = {path}\nbaud = 19200\nunit_id = 5\n"
            f"poll_ms = {poll_ms}\ntimeout_ms = {timeout_ms}\n\n"
            f"[point.{name}.v]\ntable = holding\naddress = 10\n\n")


class AgentAttacks(unittest.TestCase):
    def stack(self, extra_devices="", agent_keys=""):
        agentfix.local_stack(self, SERIAL, 100, extra_devices=extra_devices, log_level="info")
        if agent_keys:
            with open(self.agent.conf) as f:
                text = f.read()
            with open(self.agent.conf, "w") as f:
                f.write(text.replace("[agent]\n", "[agent]\n" + agent_keys, 1))
        self.agent.start()
        self.addCleanup(self.agent.stop)
        self.wait_readings("plc1", 4)

    def readings(self, device):
        with self.cloud.lock:
            return [r for r in self.cloud.seqs.values() if r["device"] == device]

    def wait_readings(self, device, n, timeout=60.0):
        agentfix.wait_for(lambda: len(self.readings(device)) >= n, timeout,
                          f"{n} readings of {device} at the cloud")

    def healthy_in_window(self):
        """plc1 readings the cloud received during WINDOW_S."""
        before = len(self.readings("plc1"))
        time.sleep(WINDOW_S)
        got = len(self.readings("plc1")) - before
        print(f"\n{self.id()}: plc1 delivered {got} readings in {WINDOW_S:.0f} s",
              file=sys.stderr)
        return got

    def status(self):
        res = self.agent.ctl({"op": "status"})
        self.assertTrue(res.get("ok"), res)
        return res["status"]

    def timed_ctl(self, deadline_s=5.0):
        """The control socket answers `status` at all within deadline_s (generous: it answers
        in milliseconds when the loop is free)."""
        out = {}

        def ask():
            try:
                out["res"] = self.agent.ctl({"op": "status"})
            except (OSError, ValueError) as e:
                out["err"] = e
        t = threading.Thread(target=ask, daemon=True)
        t.start()
        t.join(deadline_s)
        self.assertIn("res", out, f"no control-socket answer within {deadline_s} s: {out}")
        return out["res"]

    # ---- finding 15: forged Modbus TCP answers ----------------------------------------------

    def test_forged_tcp_answers_are_refused(self):
        modes = ("unit", "tid", "proto", "len0", "len65535", "lenlong")
        slaves = {m: HostileTcpSlave(m) for m in modes}
        for s in slaves.values():
            self.addCleanup(s.stop)
        self.stack("".join(tcp_device(f"forged_{m}", s.port) for m, s in slaves.items()))
        for m in modes:
            self.wait_readings(f"forged_{m}", 3)
        for m in modes:
            with self.subTest(mode=m):
                marks = {r["q"] for r in self.readings(f"forged_{m}")}
                self.assertNotIn("ok", marks, f"{m}: a forged answer was taken as a reading")
                self.assertEqual(marks, {"io"}, m)
                self.assertTrue(all(r["value"] is None for r in self.readings(f"forged_{m}")))
        st = self.status()
        self.assertGreaterEqual(st["modbus"]["bad_answers"], len(modes), st)
        # The honest device next to them is complete and good.
        self.assertTrue(all(r["q"] == "ok" for r in self.readings("plc1")))
        self.assertEqual(self.cloud.conflicts, 0)

    # ---- finding 7: trickling slaves --------------------------------------------------------

    def test_trickling_slaves_delay_nobody(self):
        tcp = HostileTcpSlave("trickle")
        self.addCleanup(tcp.stop)
        tmp = etfix.TempDir("et-adv-pty-")
        self.addCleanup(tmp.cleanup)
        pty = modbus_sim.PtyPair(tmp.path).start()
        self.addCleanup(pty.stop)
        rtu = TricklingRtuSlave(pty.b)
        self.addCleanup(rtu.stop)
        self.stack(tcp_device("slow_tcp", tcp.port, poll_ms=1000) +
                   rtu_device("slow_rtu", pty.a))
        got = self.healthy_in_window()
        self.assertGreaterEqual(got, HEALTHY_MIN,
                                f"plc1 delivered {got} readings in {WINDOW_S} s next to the "
                                "trickling slaves (its poll_ms implies about 200)")
        self.timed_ctl()
        self.wait_readings("slow_tcp", 2)
        self.wait_readings("slow_rtu", 2)
        for dev in ("slow_tcp", "slow_rtu"):
            with self.subTest(device=dev):
                marks = {r["q"] for r in self.readings(dev)}
                self.assertEqual(marks, {"timeout"}, f"{dev}: late answers must be timeouts")
        self.assertGreater(tcp.requests, 0)
        self.assertGreater(rtu.requests, 0)
        self.assertGreaterEqual(self.status()["modbus"]["timeouts"], 4)
        # SIGTERM while the slaves still trickle: the workers stop within their request.
        self.assertEqual(self.agent.stop(), 0)

    # ---- finding 8: the control socket ------------------------------------------------------

    def test_trickling_control_client_delays_nobody(self):
        self.stack()  # default limits: control_timeout_ms = 5000
        stop = threading.Event()
        path = os.path.join(self.agent.data_dir, "agent.sock")
        closed = {}

        def trickle():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            try:
                while not stop.is_set():
                    s.send(b"{")
                    time.sleep(0.5)
            except OSError:
                closed["at"] = time.monotonic()  # the agent hung up on it: that is the fix
            finally:
                s.close()
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        time.sleep(1)
        res = self.timed_ctl()
        self.assertTrue(res.get("ok"), res)
        got = self.healthy_in_window()
        stop.set()
        t.join(5)
        self.assertGreaterEqual(got, HEALTHY_MIN,
                                f"plc1 delivered {got} readings in {WINDOW_S} s while a control "
                                "client trickled bytes")
        self.assertIn("at", closed, "the trickling client was never cut off")
        self.assertGreaterEqual(self.status()["control"]["timed_out"], 1)

    def test_control_socket_limits(self):
        self.stack()  # default limits: control_clients_max = 8, control_timeout_ms = 5000
        path = os.path.join(self.agent.data_dir, "agent.sock")
        idle = []
        for _ in range(8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
            self.addCleanup(s.close)
        time.sleep(0.5)  # the agent has accepted all 8
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(10)
        s.connect(path)
        busy = s.recv(4096)  # told at once, before it sends anything, and hung up on
        self.assertIn(b'"ok":false', busy)
        self.assertIn(b"busy", busy)
        # The idle clients are closed at their deadline, and the socket serves again.
        for c in idle:
            c.settimeout(10)
            got = b""
            while True:  # the timeout notice (if any), then EOF: the agent hung up
                chunk = c.recv(4096)
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got == b"" or b'"ok":false' in got, got)
        st = self.status()
        self.assertGreaterEqual(st["control"]["busy"], 1, st)
        self.assertGreaterEqual(st["control"]["timed_out"], 8, st)
        # One request over the line limit (64 KiB) is refused, not parsed.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(b" " * 70000)
        except OSError:
            pass  # the agent may hang up before taking all of it
        ans = b""
        try:
            while not ans.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                ans += chunk
        except OSError:
            pass
        self.assertIn(b'"ok":false', ans)
        self.assertGreaterEqual(self.status()["control"]["too_long"], 1)
        # Readings went on throughout.
        n = len(self.readings("plc1"))
        self.wait_readings("plc1", n + 10)


if __name__ == "__main__":
    unittest.main()
