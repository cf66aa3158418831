"""A device whose data directory is wiped (factory reset, new SD card, a corrupted spool moved
aside) while its TPM identity stays (docs/protocol.md, "Spool epoch"). Its new spool counts from
seq 1 again; the readings must not be taken for duplicates of the old ones, and the retained
ack from before the wipe must not delete them. Real swtpm, mosquitto, edgetrust-cloud serve on
SQLite or PostgreSQL (--db=sqlite|postgresql), the pymodbus simulator.

- test_wiped_data_dir: deliver readings, stop the agent, move its data directory aside, start
  it again: it registers again with the same TPM key (the registry sends the current envelope
  again), gets a new spool epoch, ignores the retained ack of the old epoch and delivers. The
  store then holds the old readings unchanged and every new one once, under the new epoch.
  Without epochs (the agent and cloud before this test) the cloud takes the new seq 1, 2, ...
  for duplicates and acknowledges them, the agent deletes them, and they are lost.
- test_spool_before_epochs: a spool made by an agent before epochs keeps its numbering as
  epoch 0, so readings stored before the upgrade are not stored again.
- test_migration: a registry of schema version 2 (telemetry keyed on (serial, seq)) is migrated;
  its rows become epoch 0 and stay readable.
"""
import os
import sqlite3
import sys
import time
import unittest

import agentfix
import etfix

try:
    import cloudfix
except ImportError:
    cloudfix = None

DB = "sqlite"
for _a in list(sys.argv[1:]):
    if _a.startswith("--db="):
        DB = _a.split("=", 1)[1]
        sys.argv.remove(_a)

SERIAL = "SN-WIPE-1"
# New readings wanted after the wipe: all of them reuse sequence numbers of the old spool.
NEW = 60


def spool_meta(data_dir):
    """(epoch or None, next_seq, seqs still in the spool) of the agent's spool."""
    db = sqlite3.connect(os.path.join(data_dir, "spool.db"))
    try:
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        left = {r[0] for r in db.execute("SELECT seq FROM readings")}
    finally:
        db.close()
    return meta.get("epoch"), meta.get("next_seq", 1), left


class Wipe(unittest.TestCase):
    def setUp(self):
        agentfix.cloud_stack(self, db=DB, pg_fsync=False)

    def rows(self):
        """Every stored reading of the device as {(epoch, seq): ts}; no key twice."""
        rows = self.stack.cli("telemetry", SERIAL, "--json", "--limit", "10000000", json_out=True)
        keys = [(int(r.get("epoch", 0)), int(r["seq"])) for r in rows]
        self.assertEqual(len(keys), len(set(keys)), "an (epoch, seq) stored twice")
        return {(int(r.get("epoch", 0)), int(r["seq"])): int(r["ts"]) for r in rows}

    def settled(self, want):
        """Waits until the store holds the keys in want and then stops changing."""
        last = [None, 0.0]

        def ok():
            r = self.rows()
            if not want <= set(r):
                return False
            if r != last[0]:
                last[0], last[1] = r, time.monotonic()
                return False
            return time.monotonic() - last[1] >= 2.0
        try:
            agentfix.wait_for(ok, 60, "the store to hold the delivered readings")
        except AssertionError:
            missing = sorted(want - set(self.rows()))
            raise AssertionError(f"{len(missing)} readings never stored: {missing[:10]}"
                                 f"\n{self.agent.run_log()[-3000:]}") from None
        return last[0]

    def test_wiped_data_dir(self):
        agentfix.provision(self.tpm, SERIAL)
        self.stack.cli("activate", SERIAL, check=True)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.stack.broker_port, self.port,
                                    serial=SERIAL, poll_ms=50,
                                    bootstrap_password=self.stack.bootstrap_password,
                                    spool_extra="ack_timeout_s = 3\n")
        a = self.agent.start()
        a.wait_log("registration pending")
        self.stack.cli("accept", SERIAL, check=True)
        a.wait_log("connected to the broker as " + SERIAL)
        # Well more than NEW old readings, so that every new one reuses an old number.
        agentfix.wait_for(lambda: len(self.rows()) >= NEW + 40, 40, "first readings stored")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        epoch1, next1, left1 = spool_meta(a.data_dir)
        # Deleted from the old spool means stored; what it still holds goes aside with it.
        old = self.settled({(epoch1 or 0, s) for s in set(range(1, next1)) - left1})
        self.assertGreater(next1 - 1 - len(left1), NEW)

        # The wipe: /data goes, the TPM (key and serial) and the configuration stay.
        os.rename(a.data_dir, a.data_dir + ".old")
        os.makedirs(a.data_dir, mode=0o700)
        t_wipe_ms = int(time.time() * 1000)
        a.start()
        a.wait_log("connected to the broker as " + SERIAL, timeout=60)
        # No credentials on the new /data: the device registered again with its TPM key and the
        # registry gave it its current credentials (no operator step).
        self.assertIn("registering: no stored credentials", a.run_log())

        def new_spool_delivered():
            e, n, left = spool_meta(a.data_dir)
            return n - 1 >= NEW and len(left) < n - 1
        try:
            agentfix.wait_for(new_spool_delivered, 40, f"{NEW} new readings, some acknowledged")
        except AssertionError as e:
            raise AssertionError(f"{e}: spool {spool_meta(a.data_dir)[:2]}\n"
                                 f"{a.run_log()[-4000:]}\n{self.stack.serve_log_text()[-2000:]}"
                                 ) from None
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        epoch2, next2, left2 = spool_meta(a.data_dir)
        if epoch1 is not None:
            self.assertNotEqual(epoch1, epoch2, "a new spool has a new epoch")
            self.assertGreater(epoch2, 0)
            # The retained ack of the old spool arrived at the (re)subscribe and was ignored.
            self.assertIn(f"telemetry ack for spool epoch {epoch1} ignored", a.run_log())
        gone = set(range(1, next2)) - left2      # deleted from the new spool: must be stored
        self.assertTrue(gone & {s for _, s in old}, "new readings reuse old sequence numbers")
        rows = self.settled({(epoch2 or 0, s) for s in gone})

        # The old readings are all still there, unchanged.
        self.assertEqual({k: v for k, v in rows.items() if k in old}, old)
        new = {k: v for k, v in rows.items() if k not in old}
        new_seqs = {s for _, s in new}
        # Every reading the new spool deleted is stored as a new row, with its own (new) time;
        # none stored twice (rows() checks), none that the new spool never made.
        lost = gone - new_seqs
        self.assertEqual(lost, set(), f"{len(lost)} new readings lost (taken for duplicates "
                                      f"or deleted by the old ack): {sorted(lost)[:10]}...")
        self.assertLessEqual(new_seqs, set(range(1, next2)))
        self.assertTrue(all(ts >= t_wipe_ms - 1000 for ts in new.values()))
        self.assertEqual(len(rows), len(old) + len(new))
        print(f"{DB}: old spool epoch {epoch1}: {len(old)} stored; new spool epoch {epoch2}: "
              f"{len(new)} stored (seq 1..{next2 - 1}, {len(left2)} still in the spool); "
              f"store {len(rows)} = {len(old)} + {len(new)}", file=sys.stderr)

    def sql(self, q):
        if DB == "postgresql":
            self.stack.pg.psql(q)
        else:
            db = sqlite3.connect(self.stack.db_url, timeout=30, isolation_level=None)
            try:
                db.execute(q)
            finally:
                db.close()

    def test_spool_before_epochs(self):
        """An agent upgraded on a spool made before epochs keeps its numbering as epoch 0: the
        readings it still holds (some already stored, their ack lost) are stored once."""
        serial = "SN-WIPE-OLD"
        data = self.tmp.join("data")
        os.makedirs(data, mode=0o700)
        db = sqlite3.connect(os.path.join(data, "spool.db"), isolation_level=None)
        db.execute("CREATE TABLE meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
        db.execute("CREATE TABLE readings(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
                   " device TEXT NOT NULL, point TEXT NOT NULL, unit TEXT NOT NULL,"
                   " value REAL, q TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('next_seq', 6)")
        for seq in range(1, 6):
            db.execute("INSERT INTO readings VALUES (?, ?, 'plc1', 'temp', 'degC', ?, 'ok')",
                       (seq, 1700000000000 + seq, seq + 0.5))
        db.close()
        for seq in range(1, 4):   # stored before the upgrade (as epoch 0 by the migration)
            self.sql("INSERT INTO telemetry (serial, epoch, seq, ts, device, point, value, unit,"
                     f" q, received_at) VALUES ('{serial}', 0, {seq}, {1700000000000 + seq},"
                     f" 'plc1', 'temp', {seq}.5, 'degC', 'ok', 1700000000)")
        agentfix.provision(self.tpm, serial)
        self.stack.cli("activate", serial, check=True)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.stack.broker_port, self.port,
                                    serial=serial, poll_ms=50,
                                    bootstrap_password=self.stack.bootstrap_password)
        a = self.agent.start()
        a.wait_log("registration pending")
        self.stack.cli("accept", serial, check=True)
        a.wait_log("connected to the broker as " + serial)
        self.assertIn("spool epoch 0, 5 readings waiting", a.run_log())

        def stored():
            rows = self.stack.cli("telemetry", serial, "--json", json_out=True)
            keys = [(r["epoch"], r["seq"]) for r in rows]
            self.assertEqual(len(keys), len(set(keys)), "an (epoch, seq) stored twice")
            return {(r["epoch"], r["seq"]): r["ts"] for r in rows}
        agentfix.wait_for(lambda: {(0, s) for s in range(1, 30)} <= set(stored()), 40,
                          "the old and the new readings under epoch 0")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        rows = stored()
        self.assertEqual({e for e, _ in rows}, {0})
        self.assertEqual([rows[(0, s)] for s in range(1, 6)],
                         [1700000000000 + s for s in range(1, 6)])
        self.assertEqual(spool_meta(data)[0], 0)

    def test_migration(self):
        """A schema-2 registry (as released before epochs) is migrated: telemetry rows get epoch 0."""
        self.stack.stop()
        if DB == "postgresql":
            url = self.stack.db_url.rsplit("/", 1)[0] + "/etmig"
            self.stack.pg.psql("CREATE DATABASE etmig")

            def sql(q):
                self.stack.pg.psql(q, db="etmig")
        else:
            url = self.tmp.join("v2.db")
            db = sqlite3.connect(url, isolation_level=None)

            def sql(q):
                db.execute(q)
        sql("CREATE TABLE schema_version (version BIGINT NOT NULL)")
        sql("INSERT INTO schema_version (version) VALUES (2)")
        # The devices table of schema 1 and 2, as released: later migrations read it.
        sql("CREATE TABLE devices (serial TEXT PRIMARY KEY, state TEXT NOT NULL,"
            " activated_until BIGINT NOT NULL DEFAULT 0, pubkey_pem TEXT, fingerprint TEXT,"
            " rekey_pem TEXT, rekey_fingerprint TEXT, cred_version BIGINT NOT NULL DEFAULT 0,"
            " issued_version BIGINT NOT NULL DEFAULT 0, broker_state TEXT NOT NULL DEFAULT 'none',"
            " desired_version BIGINT NOT NULL DEFAULT 0, desired_published BIGINT NOT NULL DEFAULT 0,"
            " desired_json TEXT, reported_json TEXT, status_json TEXT,"
            " online INTEGER NOT NULL DEFAULT -1, last_seen BIGINT NOT NULL DEFAULT 0,"
            " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
            " dirty INTEGER NOT NULL DEFAULT 0, replied INTEGER NOT NULL DEFAULT 0)")
        sql("CREATE TABLE telemetry (serial TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,"
            " device TEXT, point TEXT, value DOUBLE PRECISION, unit TEXT, q TEXT,"
            " received_at BIGINT NOT NULL, PRIMARY KEY (serial, seq))")
        for s in (1, 2, 5):
            sql("INSERT INTO telemetry VALUES ('SN-MIG', %d, %d, 'plc1', 'temp', %d.5, 'degC', 'ok',"
                " 1700000000)" % (s, 1000 + s, s))
        if DB != "postgresql":
            db.close()
        p = etfix.run([etfix.binary("edgetrust-cloud"), "telemetry", "SN-MIG", "--json",
                       "--db", url])
        self.assertEqual(p.returncode, 0, p.err)
        import json
        rows = json.loads(p.out)
        self.assertEqual([(r["epoch"], r["seq"], r["ts"], r["value"]) for r in rows],
                         [(0, 1, 1001, 1.5), (0, 2, 1002, 2.5), (0, 5, 1005, 5.5)])
        self.assertIn("migrated to schema version 3", p.err)


if __name__ == "__main__":
    etfix.main()
