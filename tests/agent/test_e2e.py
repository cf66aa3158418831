"""edgetrustd end to end against a cloud stand-in: provision in swtpm, register, accept, log in,
readings from a pymodbus simulator arrive exactly once; nothing is lost when the broker stops
for a while or the agent is SIGKILLed while publishing; the password appears nowhere."""
import os
import socket
import sqlite3
import time
import unittest

import agentfix
import etfix

PASSWORD = "pw-9f3c1a77d2e84b6c8a5e0f1d2c3b4a59"


def spool_state(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "spool.db"))
    try:
        next_seq = db.execute("SELECT v FROM meta WHERE k='next_seq'").fetchone()[0]
        left = {r[0] for r in db.execute("SELECT seq FROM readings")}
        dropped = (db.execute("SELECT v FROM meta WHERE k='dropped'").fetchone() or [0])[0]
    finally:
        db.close()
    return next_seq, left, dropped


class E2E(unittest.TestCase):
    def setUp(self):
        agentfix.local_stack(self, "SN-E2E-1", 50, cloud={"password": PASSWORD})

    def assert_all_arrived(self):
        """Every seq the spool ever handed out is in the store or still in the spool."""
        next_seq, left, dropped = spool_state(self.agent.data_dir)
        self.assertEqual(dropped, 0)
        expected = set(range(1, next_seq))
        agentfix.wait_for(lambda: expected - left <= set(self.cloud.seqs), 30,
                          "every accepted reading in the store")
        self.assertEqual(self.cloud.conflicts, 0)
        self.assertTrue(set(self.cloud.seqs) <= expected)
        return len(expected)

    def test_readings_exactly_once_through_outages_and_sigkill(self):
        a = self.agent.start()
        a.wait_log("registration accepted")
        agentfix.wait_for(lambda: self.cloud.count() >= 40, 30, "first readings")
        # The broker goes away; the agent keeps polling into its spool.
        self.mq.stop()
        time.sleep(3)
        st = a.ctl({"op": "status"})["status"]
        self.assertFalse(st["online"])
        self.assertGreater(st["spool_depth"], 0)
        self.mq.restart()
        a.wait_log("connected to the broker as SN-E2E-1 (session", 30)
        n = self.cloud.count()
        agentfix.wait_for(lambda: self.cloud.count() >= n + 40, 30, "readings after the outage")
        # SIGKILL while publishing, three times; each restart resumes from the spool.
        for _ in range(3):
            self.assertIsNone(a.proc.poll())
            a.kill()
            n = self.cloud.count()
            a.start()
            agentfix.wait_for(lambda: self.cloud.count() >= n + 20, 30, "readings after SIGKILL")
        self.assertEqual(a.stop(), 0, a.log()[-3000:])  # 86/87: ASan/UBSan findings
        total = self.assert_all_arrived()
        self.assertGreater(total, 100)
        # The readings are the simulator's: temp = reg0 * 0.1 in degC.
        r = next(iter(self.cloud.seqs.values()))
        self.assertEqual(r["device"], "plc1")
        self.assertIn(r["point"], ("temp", "counter"))
        # Only one registration: the stored envelope was used on every restart.
        self.assertEqual(len(self.cloud.registrations), 1)
        # seq never repeats across restarts, even with an empty spool.
        next_seq, _, _ = spool_state(a.data_dir)
        a.start()
        agentfix.wait_for(lambda: max(self.cloud.seqs) >= next_seq, 30, "new readings")
        a.stop()
        self.assertEqual(self.cloud.conflicts, 0)

    def test_modbus_errors_become_quality_marks(self):
        # A second device whose registers answer with exception 2, and one that never answers:
        # readings with q "exception" / "timeout" and value null, the agent unaffected.
        bad = agentfix.ModbusSim(self.tmp, faults=["exception:holding:0-10:2",
                                                   "silent:input:0-10"]).start()
        self.addCleanup(bad.stop)
        extra = (f"[modbus.bad]\ntransport = tcp\nhost = 127.0.0.1\nport = {bad.port}\n"
                 "unit_id = 1\ntimeout_ms = 200\npoll_ms = 300\n\n"
                 "[point.bad.exc]\ntable = holding\naddress = 0\ntype = u16\n\n"
                 "[point.bad.dead]\ntable = input\naddress = 0\ntype = f32\n\n")
        a = agentfix.Agent(self.tmp, self.tpm.tcti, self.mq.port, self.sim.port,
                           serial="SN-E2E-1", poll_ms=50, extra_devices=extra).start()
        self.agent = a

        def marks():
            qs = {(r["device"], r["point"]): r for r in list(self.cloud.seqs.values())}
            return ("bad", "exc") in qs and ("bad", "dead") in qs and qs
        qs = agentfix.wait_for(marks, 40, "readings of the faulty device")
        self.assertEqual(qs[("bad", "exc")]["q"], "exception")
        self.assertIsNone(qs[("bad", "exc")]["value"])
        self.assertEqual(qs[("bad", "dead")]["q"], "timeout")
        self.assertEqual(qs[("plc1", "temp")]["q"], "ok")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        self.assert_all_arrived()

    def test_register_map_from_settings(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as SN-E2E-1")
        # Invalid maps are rejected with the configuration parser's reason; nothing changes.
        self.cloud.desired("SN-E2E-1", 1, {"modbus.plc1.points": [
            {"name": "bad", "table": "nope", "address": 0, "type": "u16"}]})
        rep = agentfix.wait_for(lambda: next((r for r in self.cloud.reported
                                             if r["version"] == 1), None), 20, "report v1")
        self.assertIn("table", rep["rejected"]["modbus.plc1.points"])
        self.cloud.desired("SN-E2E-1", 2, {"modbus.plc1.points": [
            {"name": "x", "table": "holding", "address": 0, "type": "u16",
             "unit": "a\n[broker]\nhost = evil"}]})
        rep = agentfix.wait_for(lambda: next((r for r in self.cloud.reported
                                             if r["version"] == 2), None), 20, "report v2")
        self.assertIn("not allowed", rep["rejected"]["modbus.plc1.points"])
        # A valid map replaces plc1's points live.
        self.cloud.desired("SN-E2E-1", 3, {"modbus.plc1.points": [
            {"name": "ref", "table": "input", "address": 0, "type": "f32", "unit": "degC"}]})
        a.wait_log("register maps changed by settings")
        agentfix.wait_for(lambda: any(r["point"] == "ref" for r in list(self.cloud.seqs.values())),
                          20, "readings of the new map")
        seq = max(self.cloud.seqs)
        n = self.cloud.count()
        agentfix.wait_for(lambda: self.cloud.count() > n + 20, 20, "more readings")
        later = [r for s, r in list(self.cloud.seqs.items()) if s > seq]
        self.assertTrue(later and all(r["point"] == "ref" for r in later))
        self.assertAlmostEqual(later[0]["value"], 123.456, places=3)
        # Survives a restart (settings.json), and null goes back to the configuration file.
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        a.start()
        a.wait_log("register maps changed by settings")
        self.cloud.desired("SN-E2E-1", 4, {"modbus.plc1.points": None})
        a.wait_log("register maps back to the configuration file")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])

    def test_sd_notify(self):
        path = self.tmp.join("notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(30)
        self.addCleanup(s.close)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        a = self.agent.start(env=env)
        got = []
        while got.count("WATCHDOG=1") < 3 or "READY=1" not in got or "STATUS=online" not in got:
            got.append(s.recv(4096).decode())
        self.assertLess(got.index("READY=1"), got.index("STATUS=online"))
        self.assertEqual(a.stop(), 0)
        s.settimeout(5)
        rest = []
        try:
            while "STOPPING=1" not in rest:
                rest.append(s.recv(4096).decode())
        except socket.timeout:
            pass
        self.assertIn("STOPPING=1", rest)

    def test_secrets_never_in_clear(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as SN-E2E-1")
        agentfix.wait_for(lambda: self.cloud.count() >= 10, 30, "readings")
        pid = a.proc.pid
        needle = PASSWORD.encode()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            self.assertNotIn(needle, f.read())
        with open(f"/proc/{pid}/environ", "rb") as f:
            self.assertNotIn(needle, f.read())
        # Not dumpable: no core file, no ptrace by others.
        with open(f"/proc/{pid}/status") as f:
            self.assertIn("edgetrustd", f.read())
        self.assertEqual(a.stop(), 0, a.log()[-3000:])
        for root, _, files in os.walk(a.data_dir):
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    self.assertNotIn(needle, f.read(), path)
                self.assertEqual(os.stat(path).st_mode & 0o077, 0, path)
        self.assertNotIn(PASSWORD, a.log())
        self.assertIn("debug", a.log())  # the log really was at debug level
        self.assertEqual(os.stat(a.data_dir).st_mode & 0o777, 0o700)


if __name__ == "__main__":
    etfix.main()
