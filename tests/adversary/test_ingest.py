"""Attacks on the telemetry ingestion boundary of `edgetrust-cloud serve` (docs/threat-model.md,
"Telemetry ingestion and the registry"; adversary issue 10 findings 2, 5, 10, 11, 14), per
backend (--db=sqlite|postgresql).

The attacker holds a compromised device login (a real one, through register/accept, as a
SoftDevice); a victim device publishes honest telemetry at the same time, as the agent does
(QoS 1, resending what the cloud has not acknowledged). Every test asserts that the victim's
readings are all stored, each exactly once, that every sequence number the cloud acknowledged
is in the store, and what the attacker got: nothing stored, its refusals counted."""
import json
import os
import sqlite3
import stat
import subprocess
import threading
import time
import unittest

import advtest
import agentfix
import cloudfix
from cloudfix import CloudStack, SoftDevice, subscribe_granted
import etfix
from etfix import binary, run

BACKEND = advtest.BACKEND


def rec(seq, point="temp", value=21.5, **kw):
    r = {"seq": seq, "ts": 1700000000000 + seq, "device": "plc1", "point": point,
         "value": value, "unit": "degC", "q": "ok"}
    r.update(kw)
    return r


class Device:
    """A device with a real login (activate, register, accept, open the envelope)."""

    def __init__(self, stack, serial):
        self.serial = serial
        self.soft = SoftDevice(serial)
        stack.cli("activate", serial, check=True)
        assert self.soft.register(stack)["status"] == "pending"
        stack.cli("accept", serial, check=True)
        reply = self.soft.wait_reply(stack, status="accepted", timeout=30)
        assert reply, f"{serial} was not accepted"
        creds = self.soft.open(reply["envelope"])
        self.cl = stack.mqtt(creds["username"], creds["password"], creds["client_id"])
        self.acked = set()
        self.lock = threading.Lock()
        self.ack_topic = f"et/v1/{serial}/telemetry/ack"
        self.cl.message_callback_add(self.ack_topic, self._on_ack)
        assert subscribe_granted(self.cl, self.ack_topic)

    def _on_ack(self, cl, ud, msg):
        body = json.loads(msg.payload)
        with self.lock:
            for lo, hi in body["ranges"]:
                self.acked |= set(range(lo, hi + 1))

    def publish(self, payload, epoch=None):
        if isinstance(payload, dict):
            if epoch is not None:
                payload = dict(payload, epoch=epoch)
            payload = json.dumps(payload)
        return self.cl.publish(f"et/v1/{self.serial}/telemetry", payload, qos=1)

    def close(self):
        self.cl.loop_stop()
        self.cl.disconnect()


class Victim(threading.Thread):
    """Honest telemetry, as the agent sends it: messages of `per` records, then every
    unacknowledged record again until all are acknowledged (the agent's ack timeout)."""

    def __init__(self, dev, n, per=20, resend_s=3.0, timeout=120):
        super().__init__(daemon=True)
        self.dev, self.n, self.per, self.resend_s, self.timeout = dev, n, per, resend_s, timeout
        self.done = False
        self.sent_first = False  # the first round went out already (interleaved by the test)

    def messages(self):
        seqs = list(range(1, self.n + 1))
        return [{"v": 1, "records": [rec(s, value=float(s)) for s in seqs[i:i + self.per]]}
                for i in range(0, len(seqs), self.per)]

    def send(self, seqs):
        for i in range(0, len(seqs), self.per):
            self.dev.publish({"v": 1, "records": [rec(s, value=float(s)) for s in seqs[i:i + self.per]]})
            time.sleep(0.01)

    def run(self):
        all_seqs = list(range(1, self.n + 1))
        if not self.sent_first:
            self.send(all_seqs)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(self.resend_s)
            with self.dev.lock:
                missing = [s for s in all_seqs if s not in self.dev.acked]
            if not missing:
                self.done = True
                return
            self.send(missing)


class IngestCase(unittest.TestCase):
    serve_args = ()

    def setUp(self):
        self.c = CloudStack(db=BACKEND, pg_fsync=False, serve_args=self.serve_args).start()
        self.addCleanup(self.c.cleanup)

    def tearDown(self):
        # serve survived the attack and stops cleanly (under ASan: no error, no leak)
        log = self.c.serve_log_text()
        self.assertEqual(self.c.stop_serve(0), 0, log[-3000:])

    def device(self, serial):
        d = Device(self.c, serial)
        self.addCleanup(d.close)
        return d

    def rows(self, serial):
        return self.c.cli("telemetry", serial, "--json", "--limit", "10000000", json_out=True)

    def refusals(self, serial):
        return {(e["serial"], e["reason"]): e["count"]
                for e in self.c.cli("refusals", "--json", json_out=True) if e["serial"] == serial}

    def assert_victim_complete(self, victim):
        """All readings stored exactly once; every acknowledged one is in the store."""
        victim.join(victim.timeout + 30)
        rows = self.rows(victim.dev.serial)
        seqs = [r["seq"] for r in rows]
        with victim.dev.lock:
            acked = set(victim.dev.acked)
        lost = sorted(acked - set(seqs))
        self.assertEqual(lost, [], f"data loss: {len(lost)} of {len(acked)} acknowledged readings "
                                   f"not stored ({len(seqs)} of {victim.n} stored)")
        self.assertEqual(len(seqs), len(set(seqs)), "a reading stored twice")
        self.assertEqual(sorted(seqs), list(range(1, victim.n + 1)))
        self.assertTrue(victim.done, "the victim's readings were never all acknowledged")
        for r in rows:
            self.assertEqual(r["value"], float(r["seq"]))

    def interleaved(self, victim, attack_once):
        """The victim's first round and the attacker's messages queued in the broker, one after
        the other, while serve is away; serve then takes them in shared batches."""
        self.c.stop_serve(0)
        for m in victim.messages():
            victim.dev.publish(m).wait_for_publish(10)
            attack_once()
        victim.sent_first = True
        self.c.start_serve(0)

    def wait_acked(self, dev, seq, timeout=30, resend=None):
        """Waits for seq's ack; resend (a payload) goes again every 2 s, as the agent would."""
        deadline = time.monotonic() + timeout
        next_send = time.monotonic() + 2
        while time.monotonic() < deadline:
            with dev.lock:
                if seq in dev.acked:
                    return
            if resend is not None and time.monotonic() >= next_send:
                dev.publish(resend)
                next_send = time.monotonic() + 2
            time.sleep(0.05)
        self.fail(f"seq {seq} of {dev.serial} never acknowledged")


class TestPoison(IngestCase):
    """Finding 2: one device's invalid UTF-8 aborted the PostgreSQL transaction of a whole batch,
    COMMIT answered ROLLBACK without an error, and the other devices' readings were acknowledged
    though not stored (a victim lost 37 of 189)."""

    def test_invalid_utf8_does_not_cost_the_victim(self):
        victim = Victim(self.device("SN-VICTIM"), 400)
        bad = self.device("SN-EVIL")
        stop = threading.Event()

        k = [1]

        def attack_once():
            # raw bytes: a point name and a status text that are not UTF-8
            bad.publish(b'{"v":1,"records":[{"seq":%d,"ts":1,"device":"d","point":"\xff\xfe",'
                        b'"value":1,"q":"ok"}]}' % k[0])
            bad.cl.publish("et/v1/SN-EVIL/status", b'{"v":1,"online":true,"x":"\xff\xfe"}',
                           qos=1).wait_for_publish(10)
            k[0] += 1

        def attack():
            while not stop.is_set():
                attack_once()
                time.sleep(0.005)

        self.interleaved(victim, attack_once)
        t = threading.Thread(target=attack, daemon=True)
        t.start()
        victim.start()
        victim.join(victim.timeout + 30)
        stop.set()
        t.join(10)
        self.assert_victim_complete(victim)
        # the attacker: nothing stored, no ack, refusals counted
        self.assertEqual(self.rows("SN-EVIL"), [])
        self.assertEqual(bad.acked, set())
        rf = self.refusals("SN-EVIL")
        self.assertGreater(rf.get(("SN-EVIL", "telemetry-invalid"), 0), 0, rf)
        self.assertGreater(rf.get(("SN-EVIL", "status-invalid"), 0), 0, rf)
        self.assertIn(self.c.device("SN-EVIL")["status"], (None, {}))


    def test_database_error_isolated(self):
        """A message the database fails on for a reason validation cannot foresee (here a
        trigger that raises for point 'boom') costs only that message: the batch's other
        messages are stored and acknowledged, the failed one is neither."""
        if BACKEND == "postgresql":
            self.c.pg.psql("CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN"
                           " IF NEW.point = 'boom' THEN RAISE EXCEPTION 'boom'; END IF;"
                           " RETURN NEW; END $$ LANGUAGE plpgsql;"
                           " CREATE TRIGGER boom BEFORE INSERT ON telemetry FOR EACH ROW"
                           " EXECUTE FUNCTION boom();")
        else:
            con = sqlite3.connect(self.c.db_url, timeout=30)
            con.execute("CREATE TRIGGER boom BEFORE INSERT ON telemetry WHEN NEW.point = 'boom'"
                        " BEGIN SELECT RAISE(ABORT, 'boom'); END")
            con.commit()
            con.close()
        victim = Victim(self.device("SN-VICTIM"), 400)
        bad = self.device("SN-EVIL")
        stop = threading.Event()

        k = [1]

        def attack_once():
            bad.publish({"v": 1, "records": [rec(k[0], point="boom")]}).wait_for_publish(10)
            k[0] += 1

        def attack():
            while not stop.is_set():
                attack_once()
                time.sleep(0.005)

        self.interleaved(victim, attack_once)
        t = threading.Thread(target=attack, daemon=True)
        t.start()
        victim.start()
        victim.join(victim.timeout + 30)
        stop.set()
        t.join(10)
        self.assert_victim_complete(victim)
        self.assertEqual(self.rows("SN-EVIL"), [])
        self.assertEqual(bad.acked, set(), "a reading the database refused was acknowledged")
        rf = self.refusals("SN-EVIL")
        self.assertGreater(rf.get(("SN-EVIL", "telemetry-db-error"), 0), 0, rf)


class TestCommit(unittest.TestCase):
    """Finding 2 at the database layer: a commit that did not commit is an error (PostgreSQL
    answers COMMIT of an aborted transaction with ROLLBACK, not an error), and a savepoint
    rolled back keeps the rest of the transaction (tests/unit/test_cloud_db.c, on this
    backend's database)."""

    def test_db_layer(self):
        exe = os.path.join(etfix.BUILD, "tests", "unit", "unit-cloud-db")
        if not os.path.exists(exe):
            self.skipTest("unit-cloud-db not built")
        with CloudStack(db=BACKEND, pg_fsync=False, start_serve=False) as c:
            p = run([exe, c.db_url])
            self.assertEqual(p.returncode, 0, p.out + p.err)


class TestValues(IngestCase):
    """Finding 10: values stored wrongly or accepted though docs/protocol.md refuses them."""

    def test_hostile_values_refused(self):
        victim = Victim(self.device("SN-VICTIM"), 100)
        bad = self.device("SN-EVIL")
        victim.start()
        hostile = [
            b'{"v":1,"records":[{"seq":1,"ts":1,"device":"d","point":"p","value":1e309,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":2,"ts":1,"device":"d","point":"p","value":-1e309,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":3,"ts":1e300,"device":"d","point":"p","value":1,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":4,"ts":-1e300,"device":"d","point":"p","value":1,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":5.5,"ts":1,"device":"d","point":"p","value":1,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":9007199254740993,"ts":1,"device":"d","point":"p","value":1,"q":"ok"}]}',
            b'{"v":1,"records":[{"seq":9007199254740992,"ts":1,"device":"d","point":"p","value":2,"q":"ok"}]}',
            b'{"v":99,"records":[{"seq":6,"ts":1,"device":"d","point":"p","value":1,"q":"ok"}]}',
            b'{"v":1,"serial":"SN-VICTIM","records":[{"seq":7,"ts":1,"device":"d","point":"p","value":1,"q":"ok"}]}',
        ]
        for h in hostile:
            bad.publish(h).wait_for_publish(10)
        # a valid message after them: once it is acknowledged, the hostile ones were handled
        bad.publish({"v": 1, "records": [rec(100)]}).wait_for_publish(10)
        self.wait_acked(bad, 100)
        self.assert_victim_complete(victim)
        self.assertEqual([r["seq"] for r in self.rows("SN-EVIL")], [100])
        self.assertEqual(bad.acked, {100}, "a refused reading was acknowledged")
        rf = self.refusals("SN-EVIL")
        self.assertEqual(rf.get(("SN-EVIL", "telemetry-invalid")), len(hostile), rf)
        self.assertEqual(self.refusals("SN-VICTIM"), {})


class TestRate(IngestCase):
    """Finding 5: one device login inserted 7.45 M rows in 20 s; now each device has a token
    bucket (here 200 records/s, burst 1000) and a message size limit; excess is refused,
    counted and not acknowledged."""
    serve_args = ("--telemetry-rate", "200", "--telemetry-burst", "1000",
                  "--telemetry-max-bytes", "16384")

    def test_flood_is_limited(self):
        victim = Victim(self.device("SN-VICTIM"), 200, per=10, resend_s=2)
        bad = self.device("SN-EVIL")
        t0 = time.monotonic()
        victim.start()
        sent = 0
        for m in range(200):  # 200 x 100 records: far over the bucket
            bad.publish({"v": 1, "records": [rec(m * 100 + i + 1, point="p") for i in range(100)]})
            sent += 100
        # one message over --telemetry-max-bytes
        bad.publish({"v": 1, "records": [rec(10 ** 6 + i, point="x" * 60) for i in range(200)]})
        marker = {"v": 1, "records": [rec(10 ** 7)]}
        bad.publish(marker).wait_for_publish(30)
        self.wait_acked(bad, 10 ** 7, timeout=60, resend=marker)
        elapsed = time.monotonic() - t0
        self.assert_victim_complete(victim)
        stored = [r["seq"] for r in self.rows("SN-EVIL")]
        # at most the burst plus the rate over the time it ran (generous: 2x the rate)
        self.assertLessEqual(len(stored), 1000 + 400 * (time.monotonic() - t0 + 1))
        self.assertLess(len(stored), sent)
        self.assertTrue(all(s < 10 ** 6 or s == 10 ** 7 for s in stored), "over-size message stored")
        self.assertLessEqual(bad.acked, set(stored), "a refused reading was acknowledged")
        rf = self.refusals("SN-EVIL")
        # every flood record is either stored or counted refused (the marker may be refused too)
        self.assertGreaterEqual(rf.get(("SN-EVIL", "telemetry-rate"), 0) + len(stored) - 1, sent, rf)
        self.assertGreater(rf.get(("SN-EVIL", "telemetry-rate"), 0), 0, rf)
        self.assertEqual(rf.get(("SN-EVIL", "telemetry-size")), 1, rf)
        self.assertEqual(self.refusals("SN-VICTIM"), {})
        self.assertGreater(elapsed, 0)

    def test_refused_readings_come_again(self):
        """An honest device over the limit is only slowed: what was refused is not acked, it
        sends it again, and in the end everything is stored exactly once."""
        dev = self.device("SN-FAST")
        victim = Victim(dev, 3000, per=100, resend_s=2, timeout=150)
        victim.start()
        self.assert_victim_complete(victim)
        self.assertGreater(self.refusals("SN-FAST").get(("SN-FAST", "telemetry-rate"), 0), 0)


class TestAgentBacklog(unittest.TestCase):
    """Finding 5, the honest side: a real agent (swtpm, Modbus simulator) draining a backlog
    faster than the limit (here 300 records/s, burst 1000) is slowed, never loses a reading:
    the refused messages are not acknowledged and the agent sends them again."""
    N = 6000

    def setUp(self):
        agentfix.cloud_stack(self, db=BACKEND, pg_fsync=False,
                             serve_args=("--telemetry-rate", "300", "--telemetry-burst", "1000"))

    def store(self, serial):
        rows = self.stack.cli("telemetry", serial, "--json", "--limit", "10000000", json_out=True)
        seqs = [r["seq"] for r in rows]
        self.assertEqual(len(seqs), len(set(seqs)), "a seq stored twice")
        return set(seqs)

    def test_backlog_converges(self):
        serial = "SN-BACKLOG"
        agentfix.provision(self.tpm, serial)
        self.stack.cli("activate", serial, check=True)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.stack.broker_port, self.port,
                                    serial=serial, poll_ms=1000,
                                    bootstrap_password=self.stack.bootstrap_password,
                                    spool_extra="ack_timeout_s = 2\n")
        a = self.agent.start()
        a.wait_log("registration pending")
        self.stack.cli("accept", serial, check=True)
        a.wait_log("connected to the broker as " + serial)
        agentfix.wait_for(lambda: len(self.store(serial)) >= 1, 40, "first readings stored")
        self.assertEqual(a.stop(), 0)
        first = fill_spool(a.data_dir, self.N)
        a.start()
        want = set(range(first, first + self.N))
        agentfix.wait_for(lambda: want <= self.store(serial), 200, "the backlog stored")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        from test_e2e import spool_state
        next_seq, left, dropped = spool_state(a.data_dir)
        self.assertEqual(dropped, 0)
        stored = self.store(serial)
        self.assertEqual(set(range(1, next_seq)) - left - stored, set(),
                         "deleted from the spool but not in the store")
        rf = {e["reason"]: e["count"] for e in self.stack.cli("refusals", "--json", json_out=True)
              if e["serial"] == serial}
        self.assertGreater(rf.get("telemetry-rate", 0), 0, "the limit was never reached")


def fill_spool(data_dir, n):
    """n readings appended to a stopped agent's spool (as bench/agent_bench.py does)."""
    db = sqlite3.connect(os.path.join(data_dir, "spool.db"))
    first = (db.execute("SELECT v FROM meta WHERE k='next_seq'").fetchone() or [1])[0]
    db.executemany("INSERT INTO readings(seq,ts,device,point,unit,value,q) VALUES(?,?,?,?,?,?,?)",
                   [(first + i, 1700000000000 + i, "plc1", "temp", "degC", 21.5, "ok")
                    for i in range(n)])
    db.execute("INSERT OR REPLACE INTO meta(k,v) VALUES('next_seq',?)", (first + n,))
    db.commit()
    db.close()
    return int(first)


class TestOutput(IngestCase):
    """Finding 11: device-supplied text reached the operator's terminal raw, and --json printed
    invalid UTF-8."""

    def test_terminal_and_json_output(self):
        dev = self.device("SN-EVIL")
        evil = "x\u001b[2J\r\n\u009b31m\u007f"
        dev.publish({"v": 1, "records": [rec(1, point=evil, unit=evil)]}).wait_for_publish(10)
        dev.cl.publish("et/v1/SN-EVIL/status", json.dumps({"v": 1, "online": True, "note": evil},
                                                          ensure_ascii=False).encode(), qos=1)
        self.wait_acked(dev, 1)
        if BACKEND == "sqlite":
            # an older registry may hold text that is not UTF-8
            con = sqlite3.connect(self.c.db_url, timeout=30)
            con.execute("INSERT INTO telemetry (serial, epoch, seq, ts, device, point, value, unit,"
                        " q, received_at) VALUES ('SN-EVIL', 0, 2, 1, 'd', CAST(? AS TEXT), 1.0,"
                        " CAST(? AS TEXT), 'ok', 1)", (b"p\xff\xfe", b"\xc3"))
            con.commit()
            con.close()
        deadline = time.monotonic() + 10
        while self.c.device("SN-EVIL").get("status") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        for args in (["telemetry", "SN-EVIL"], ["show", "SN-EVIL"], ["list"], ["audit", "SN-EVIL"],
                     ["settings", "get", "SN-EVIL"]):
            p = subprocess.run([binary("edgetrust-cloud")] + args + ["--db", self.c.db_url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            out = p.stdout.decode("utf-8")  # raises on invalid UTF-8
            for bad in ("\x1b", "\r", "\u009b", "\x7f"):
                self.assertNotIn(bad, out, f"{args}: {bad!r} reached the terminal")
            if args[0] == "telemetry":
                self.assertIn("x\\x1b[2J", out)  # shown, escaped
            pj = subprocess.run([binary("edgetrust-cloud")] + args + ["--db", self.c.db_url, "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            if pj.returncode == 0 and args[0] != "settings":
                text = pj.stdout.decode("utf-8")
                json.loads(text)
                for bad in ("\x1b", "\r", "\u009b", "\x7f"):
                    self.assertNotIn(bad, text)
        rows = self.rows("SN-EVIL")
        self.assertEqual(rows[0]["point"], evil)  # JSON keeps the text exactly (escaped)


@unittest.skipUnless(BACKEND == "sqlite", "file modes are the SQLite registry's")
class TestFileModes(unittest.TestCase):
    """Finding 14: the registry and its -wal and -shm files were created 0644 (password hashes,
    envelopes, telemetry, audit log)."""

    def setUp(self):
        self.c = CloudStack(db="sqlite", start_serve=False).start()
        self.addCleanup(self.c.cleanup)

    def modes(self, db):
        return {suffix: stat.S_IMODE(os.stat(db + suffix).st_mode)
                for suffix in ("", "-wal", "-shm") if os.path.exists(db + suffix)}

    def test_created_private_whatever_the_umask(self):
        for um in (0o022, 0o000):
            db = self.c.tmp.join(f"reg-{um:03o}.db")
            cmd = self.c.serve_cmd(0)
            cmd[cmd.index("--db") + 1] = db
            cmd[cmd.index("--instance") + 1] = f"m{um:o}"
            log = open(self.c.tmp.join(f"serve-{um:o}.log"), "wb")
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log,
                                 preexec_fn=lambda: os.umask(um))
            log.close()
            self.addCleanup(cloudfix.stop_process, p)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(self.modes(db)) < 3:
                time.sleep(0.1)
            # the CLI next to the running serve, with the same umask
            r = subprocess.run([binary("edgetrust-cloud"), "activate", "SN-M", "--db", db],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: os.umask(um))
            self.assertEqual(r.returncode, 0, r.stderr)
            m = self.modes(db)
            self.assertEqual(set(m), {"", "-wal", "-shm"}, m)
            self.assertEqual(m, {"": 0o600, "-wal": 0o600, "-shm": 0o600}, f"umask {um:03o}: {m}")
            cloudfix.stop_process(p)

    def test_existing_files_made_private(self):
        db = self.c.tmp.join("old.db")
        con = sqlite3.connect(db)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE x (a)")
        con.execute("INSERT INTO x VALUES (1)")
        con.commit()
        for suffix in ("", "-wal", "-shm"):
            os.chmod(db + suffix, 0o644)
        r = run([binary("edgetrust-cloud"), "list", "--db", db])
        self.assertEqual(r.returncode, 0, r.err)
        self.assertEqual(self.modes(db), {"": 0o600, "-wal": 0o600, "-shm": 0o600})
        con.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
