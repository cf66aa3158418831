"""edgetrustd end to end against a cloud stand-in: provision in swtpm, register, accept, log in,
readings from a pymodbus simulator arrive exactly once; nothing is lost when the broker stops
for a while or the agent is SIGKILLed while publishing; the password appears nowhere."""
import os
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
        self.tmp = etfix.TempDir()
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True).start()
        agentfix.provision(self.tpm, "SN-E2E-1")
        self.sim = agentfix.ModbusSim(self.tmp).start()
        self.cloud = agentfix.MiniCloud(self.mq.port, password=PASSWORD)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.mq.port, self.sim.port,
                                    serial="SN-E2E-1", poll_ms=50)

    def tearDown(self):
        self.agent.stop()
        self.cloud.stop()
        self.sim.stop()
        self.mq.cleanup()
        self.tpm.cleanup()
        self.tmp.cleanup()

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
