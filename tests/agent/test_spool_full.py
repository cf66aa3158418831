"""/data full: data_dir on a small tmpfs filled up while the broker is away. The agent keeps
running, reports the problem (log, status spool_error, dropped counter), and every reading it
had accepted into the spool reaches the store once the disk and the broker are back."""
import os
import subprocess
import time
import unittest

import agentfix
import etfix
from test_e2e import spool_state

SERIAL = "SN-FULL-1"


class SpoolFull(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir()
        self.mnt = self.tmp.join("data")
        os.makedirs(self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", self.mnt],
                           capture_output=True)
        if p.returncode != 0:
            self.tmp.cleanup()
            self.skipTest(f"cannot mount a tmpfs (needs root): {p.stderr.decode().strip()}")
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True).start()
        self.sim = agentfix.ModbusSim(self.tmp).start()
        self.cloud = agentfix.MiniCloud(self.mq.port)
        agentfix.provision(self.tpm, SERIAL)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.mq.port, self.sim.port,
                                    serial=SERIAL, poll_ms=20, data_dir=self.mnt)

    def tearDown(self):
        self.agent.stop()
        self.cloud.stop()
        self.sim.stop()
        self.mq.cleanup()
        self.tpm.cleanup()
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        self.tmp.cleanup()

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


if __name__ == "__main__":
    etfix.main()
