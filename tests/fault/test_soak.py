"""No-loss soak: edgetrustd polls a Modbus simulator into its spool on a small tmpfs /data while,
at random every few seconds, one of these happens:

  kill    the agent is SIGKILLed and restarted;
  broker  the broker stops for 2-6 s;
  full    the broker goes away and /data fills up to ENOSPC for a few seconds (full-disk
          policy: new readings dropped and counted, the agent keeps running), then both
          come back;
  torn    the agent is SIGKILLed and a torn write (half a WAL frame of garbage) is appended
          to the spool's write-ahead log, as a power cut in the middle of a write leaves it.

At the end every sequence number the spool ever accepted is in the cloud store exactly once
(or still in the spool), never two readings under one number, and drops happened only while the
disk was full and are counted. Duration: ET_SOAK_SECONDS (default 60, at most 600); the counts
of every fault are printed for docs/reliability.md.
"""
import os
import random
import sqlite3
import sys
import time
import unittest

import faultlib  # noqa: F401  (sets up sys.path)
import etfix

sys.path.insert(0, os.path.join(etfix.SOURCE, "tests", "agent"))
import agentfix  # noqa: E402

SERIAL = "SN-SOAK-1"


def spool_state(data_dir):
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'spool.db')}?mode=ro", uri=True)
    try:
        next_seq = db.execute("SELECT v FROM meta WHERE k='next_seq'").fetchone()[0]
        left = {r[0] for r in db.execute("SELECT seq FROM readings")}
        dropped = (db.execute("SELECT v FROM meta WHERE k='dropped'").fetchone() or [0])[0]
    finally:
        db.close()
    return int(next_seq), left, int(dropped)


class Soak(unittest.TestCase):
    def setUp(self):
        self.seconds = min(600, int(os.environ.get("ET_SOAK_SECONDS", "60")))
        self.seed = int(os.environ.get("ET_SOAK_SEED", random.SystemRandom().randrange(1 << 30)))
        self.rng = random.Random(self.seed)
        self.tmp = etfix.TempDir("et-soak-")
        self.mnt = agentfix.mount_tmpfs(self, self.tmp, "8m")
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True).start()
        self.sim = agentfix.ModbusSim(self.tmp).start()
        self.cloud = agentfix.MiniCloud(self.mq.port)
        agentfix.provision(self.tpm, SERIAL)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.mq.port, self.sim.port,
                                    serial=SERIAL, poll_ms=20, data_dir=self.mnt,
                                    log_level="info")
        self.filler = os.path.join(self.mnt, "filler")

    def tearDown(self):
        self.agent.stop()
        self.cloud.stop()
        self.sim.stop()
        self.mq.cleanup()
        self.tpm.cleanup()
        agentfix.unmount_tmpfs(self.mnt)
        self.tmp.cleanup()

    def fill(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)

    def torn_write(self):
        wal = os.path.join(self.mnt, "spool.db-wal")
        if os.path.exists(wal) and os.path.getsize(wal) >= 32:
            # Half of a 4 KiB frame: a header that does not match the WAL's salt, then noise.
            try:
                with open(wal, "ab") as f:
                    f.write(os.urandom(2048))
            except OSError:  # the spool itself filled /data meanwhile
                return False
            return True
        return False

    def test_soak(self):
        counts = {"kill": 0, "broker": 0, "full": 0, "torn": 0, "torn-no-wal": 0}
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        agentfix.wait_for(lambda: self.cloud.count() >= 20, 30, "first readings")
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            time.sleep(self.rng.uniform(1.0, 4.0))
            what = self.rng.choice(["kill", "kill", "broker", "full", "torn"])
            if what == "kill":
                a.kill()
                a.start()
            elif what == "broker":
                self.mq.stop()
                time.sleep(self.rng.uniform(2.0, 6.0))
                self.mq.restart()
            elif what == "full":
                # With the broker away the spool must grow, so the full disk really bites.
                self.mq.stop()
                self.fill()
                time.sleep(self.rng.uniform(2.0, 5.0))
                self.assertIsNone(a.proc.poll(), "the agent died on a full disk:\n" +
                                  a.run_log()[-2000:])
                os.unlink(self.filler)
                self.mq.restart()
            elif what == "torn":
                a.kill()
                if not self.torn_write():
                    what = "torn-no-wal"
                a.start()
            counts[what] += 1
            self.assertIsNone(a.proc.poll(), a.run_log()[-2000:])
        # Everything back to normal: the agent drains its spool.
        a.wait_log("connected to the broker as " + SERIAL, 60)
        agentfix.wait_for(lambda: a.ctl({"op": "status"})["status"]["spool_depth"] < 50, 60,
                          "spool drained")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        next_seq, left, dropped = spool_state(self.mnt)
        expected = set(range(1, next_seq))
        agentfix.wait_for(lambda: expected - left <= set(self.cloud.seqs), 60,
                          "every accepted reading in the store")
        self.assertEqual(self.cloud.conflicts, 0, "two different readings under one seq")
        self.assertTrue(set(self.cloud.seqs) <= expected, "a reading the spool never accepted")
        if counts["full"] == 0:
            self.assertEqual(dropped, 0, "readings dropped without a full disk")
        print(f"soak seed {self.seed}, {self.seconds} s: faults {counts}; "
              f"{len(expected)} readings accepted, {len(set(self.cloud.seqs))} in the store "
              f"({self.cloud.dups} duplicate deliveries absorbed), {len(left)} still spooled, "
              f"{dropped} dropped while the disk was full", flush=True)


if __name__ == "__main__":
    if not os.path.exists(etfix.binary("edgetrustd")):
        print("SKIP: edgetrustd not built")
        sys.exit(77)
    etfix.main()
