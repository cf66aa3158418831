"""/data full: data_dir on a small tmpfs filled up while the broker is away. The agent keeps
running, reports the problem (log, status spool_error, dropped counter), and every reading it
had accepted into the spool reaches the store once the disk and the broker are back."""
import os
import time
import unittest

import agentfix
import etfix
from test_e2e import spool_state

SERIAL = "SN-FULL-1"


class SpoolFull(unittest.TestCase):
    def setUp(self):
        agentfix.local_stack(self, SERIAL, 20, tmpfs="2m")

    def test_disk_full(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        agentfix.wait_for(lambda: self.cloud.count() >= 20, 30, "first readings")
        self.mq.stop()
        # Fill the file system; the agent's next inserts fail with SQLITE_FULL.
        filler = os.path.join(self.mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        a.wait_log("disk full", 30)
        time.sleep(1)
        self.assertIsNone(a.proc.poll(), "the agent must keep running")
        st = a.ctl({"op": "status"})["status"]
        self.assertIn("spool_error", st)
        self.assertGreater(st["dropped"], 0)
        # Disk and broker come back: everything accepted arrives.
        os.unlink(filler)
        self.mq.restart()
        a.wait_log("spool accepts readings again", 30)
        a.wait_log("connected to the broker as " + SERIAL, 30)
        agentfix.wait_for(lambda: a.ctl({"op": "status"})["status"]["spool_depth"] < 50, 30,
                          "spool drained")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        next_seq, left, dropped = spool_state(a.data_dir)
        self.assertGreater(dropped, 0)
        expected = set(range(1, next_seq))
        agentfix.wait_for(lambda: expected - left <= set(self.cloud.seqs), 30,
                          "every accepted reading in the store")
        self.assertEqual(self.cloud.conflicts, 0)


class SpoolBound(unittest.TestCase):
    """spool.max_records: when the broker is away long enough, the oldest readings are dropped
    and counted (persistently); the newest ones arrive once it is back."""

    def test_bound(self):
        tmp = etfix.TempDir()
        self.addCleanup(tmp.cleanup)
        with etfix.Swtpm() as tpm, etfix.Mosquitto(allow_anonymous=True) as mq:
            sim = agentfix.ModbusSim(tmp).start()
            self.addCleanup(sim.stop)
            cloud = agentfix.MiniCloud(mq.port)
            self.addCleanup(cloud.stop)
            agentfix.provision(tpm, "SN-BOUND-1")
            a = agentfix.Agent(tmp, tpm.tcti, mq.port, sim.port, serial="SN-BOUND-1", poll_ms=20)
            self.addCleanup(a.stop)
            a.start()
            a.wait_log("connected to the broker as SN-BOUND-1", 60)
            self.assertTrue(a.ctl({"op": "set", "settings": {"spool.max_records": 100}})["ok"])
            mq.stop()
            agentfix.wait_for(lambda: a.ctl({"op": "status"})["status"]["dropped"] > 50, 30,
                              "drops")
            st = a.ctl({"op": "status"})["status"]
            self.assertLessEqual(st["spool_depth"], 100)
            # Almost no new readings from now on, so the kept ones are not pushed out in turn.
            self.assertTrue(a.ctl({"op": "set", "settings": {"modbus.plc1.poll_ms": 600000}})["ok"])
            self.assertEqual(a.stop(), 0)
            next_seq, left, dropped = spool_state(a.data_dir)
            self.assertLessEqual(len(left), 100)
            self.assertGreater(dropped, 50)
            # Only the newest are kept.
            self.assertEqual(max(left), next_seq - 1)
            a.start()
            a.wait_log("running")
            self.assertGreaterEqual(a.ctl({"op": "status"})["status"]["dropped"], dropped)
            mq.restart()
            # A reading or two polled at the restart may push the oldest kept ones out.
            newest = sorted(left)[5:]
            agentfix.wait_for(lambda: set(newest) <= set(cloud.seqs), 30, "the kept readings")
            self.assertEqual(a.stop(), 0)
            _, _, dropped2 = spool_state(a.data_dir)
            self.assertTrue(set(sorted(left)[dropped2 - dropped:]) <= set(cloud.seqs))
            self.assertEqual(cloud.conflicts, 0)


if __name__ == "__main__":
    etfix.main()
