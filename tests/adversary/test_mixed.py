"""The mixed attack of issue 10 ("What must hold"): one holder of the bootstrap password and one
compromised device login attack a real stack at once for ET_ADV_SECONDS (default 60; 0 runs the
same test without the attacker, the control) while honest devices work, on SQLite or
PostgreSQL (--db=...). The other devices lose nothing and store nothing twice, and the attacker
gets nothing.

The stack: mosquitto with the edgetrust plugin and dynamic security, edgetrust-cloud serve
(tests/lib/cloudfix.py); two honest real agents (edgetrustd, each on its own swtpm, provisioned,
polling its own pymodbus simulator every 50 ms, tests/agent/agentfix.py); one honest device
whose serial is activated only during the attack (SN-MIX-LATE, a SoftDevice: the attacker
planted retained requests for it before, and races it with its own keys); the attacker's
device ADV-MIX-1, registered and accepted through SoftDevice, so the attacker holds its real
login (tests/adversary/attacker.py says what it does and what it records).

After the attack the agents' polling is frozen through their control sockets (poll_ms set to a
day) and the simulators stop; once every agent's spool is empty (all acknowledged by the cloud)
the test asserts, collecting every failure before it reports:

- every reading each honest agent made is stored exactly once: its spool's epoch only, seq
  1..next_seq-1 without a gap, each (epoch, seq) once, nothing dropped;
- each honest device is still accepted with its original key fingerprint; the late device is
  accepted with its own key (the operator accepts the fingerprint the factory gave it: plain
  `accept` when `pending` shows only that one, `accept --key` when it shows more);
- the attacker got nothing: no CONNACK for a foreign client id or username, no subscription
  outside its own topics, no message it may not read, no envelope sealed to its keys for a
  serial it does not own, none of its forged messages reached a subscriber (a witness with the
  cloud's login watches the honest serials' topics), no dynamic-security client created by it;
- none of its invalid telemetry is stored (one spool epoch per kind of invalid input);
- the refusals are visible: `edgetrust-cloud refusals --json` counts some for its device;
- serve is still running.

AttackerSees runs the attacker against a broker without ACLs, to show that its recorder sees
what a broken broker would give it (a test of the test).
"""
import base64
import json
import os
import sqlite3
import sys
import time
import unittest

import advtest
import agentfix
import etfix
from attacker import Attacker
from cloudfix import SoftDevice, mqtt_connect, subscribe_granted
from test_e2e import spool_state
from test_e2e_wipe import spool_meta

SECONDS = float(os.environ.get("ET_ADV_SECONDS", "60"))
HONEST = ["SN-MIX-A", "SN-MIX-B"]
LATE = "SN-MIX-LATE"
ADV = "ADV-MIX-1"
FREEZE_MS = 86400000     # the largest modbus.<device>.poll_ms: no reading for a day


class MixedAttack(unittest.TestCase):
    def setUp(self):
        agentfix.cloud_stack(self, db=advtest.BACKEND, modbus=False, pg_fsync=False)
        self.agents, self.sims, self.fpr = {}, {}, {}
        for i, serial in enumerate(HONEST):
            tmp = etfix.TempDir()
            self.addCleanup(tmp.cleanup)
            tpm = self.tpm if i == 0 else etfix.Swtpm().start()
            if i:
                self.addCleanup(tpm.cleanup)
            sim = agentfix.ModbusSim(tmp).start()
            self.addCleanup(sim.stop)
            self.sims[serial] = sim
            agentfix.provision(tpm, serial)
            self.stack.cli("activate", serial, check=True)
            a = agentfix.Agent(tmp, tpm.tcti, self.stack.broker_port, sim.port, serial=serial,
                               poll_ms=50, log_level="info",
                               bootstrap_password=self.stack.bootstrap_password)
            self.agents[serial] = a
            self.addCleanup(a.stop)
            a.start()
        for serial, a in self.agents.items():
            a.wait_log("registration pending", 60)
            self.stack.cli("accept", serial, check=True)
        for serial, a in self.agents.items():
            a.wait_log("connected to the broker as " + serial, 60)
            self.fpr[serial] = self.stack.device(serial)["fingerprint"]
        # The attacker's own device: registered and accepted like any other.
        self.adv = SoftDevice(ADV)
        self.stack.cli("activate", ADV, check=True)
        r = self.adv.register(self.stack)
        self.assertEqual(r and r["status"], "pending", r)
        self.stack.cli("accept", ADV, check=True)
        r = self.adv.wait_reply(self.stack, status="accepted", timeout=30)
        self.assertIsNotNone(r, self.stack.serve_log_text()[-3000:])
        self.adv_creds = self.adv.open(r["envelope"])
        # The witness: the cloud's login sees every message that reaches the honest serials'
        # topics (retained ones too), so a forged one that got through shows.
        with open(self.stack.cloud_password_file) as f:
            pw = f.read().strip()
        try:
            self.spy = mqtt_connect(self.stack.broker_port, "edgetrust-cloud", pw,
                                    "etcloud-advspy")
        except ConnectionRefusedError:   # a broker that binds the cloud to its instance ids
            self.spy = mqtt_connect(self.stack.broker_port, "edgetrust-cloud", pw, "etcloud-i99")
        self.addCleanup(lambda: (self.spy.loop_stop(), self.spy.disconnect()))
        self.spy.on_message = self._spied
        self.spied = []
        for s in HONEST + [LATE]:
            self.assertTrue(subscribe_granted(self.spy, f"et/v1/{s}/#"))

    def _spied(self, cl, ud, msg):
        # Registration requests are the bootstrap login's to send; anything else of the
        # attacker's on an honest serial's topics is forged.
        if (self.marker and self.marker.encode() in msg.payload and len(self.spied) < 100
                and not msg.topic.endswith("/register")):
            self.spied.append(msg.topic)

    marker = None

    # --- helpers ---------------------------------------------------------------------------
    def stored(self, serial):
        rows = self.stack.cli("telemetry", serial, "--json", "--limit", "10000000",
                              json_out=True)
        return [(int(r.get("epoch", 0)), int(r["seq"])) for r in rows]

    def sql(self, q):
        if advtest.BACKEND == "postgresql":
            return [tuple(r) for r in self.stack.pg.psql(q)]
        db = sqlite3.connect(self.stack.db_url, timeout=60)
        try:
            return db.execute(q).fetchall()
        finally:
            db.close()

    def late_device(self, problems):
        """The operator activates a serial the attacker already targets; its device registers;
        the operator accepts the key the factory recorded for it."""
        late = SoftDevice(LATE)
        self.stack.cli("activate", LATE, check=True)
        boot = late.connect_bootstrap(self.stack)
        self.addCleanup(lambda: (boot.loop_stop(), boot.disconnect()))
        r = late.register(self.stack, client=boot, timeout=30)
        if not r or r.get("status") not in ("pending", "accepted"):
            problems.append(f"late device: registration answered {r}")
        return late, boot

    def accept_late(self, late, boot, problems):
        # Like an agent, the device asks again while its key is not among the candidates (a
        # limit on candidates or requests may have refused it during the attack).
        deadline = time.monotonic() + 30
        while True:
            pend = [p for p in self.stack.cli("pending", "--json", json_out=True)
                    if p.get("serial") == LATE]
            fprs = set(_hex64(pend))
            if late.fingerprint in fprs or time.monotonic() > deadline:
                break
            late.register(self.stack, client=boot, timeout=5)
            time.sleep(1)
        if fprs == {late.fingerprint}:
            p = self.stack.cli("accept", LATE)
        else:
            p = self.stack.cli("accept", LATE, "--key", late.fingerprint)
        if p.returncode != 0:
            d = self.stack.device(LATE)
            pinned = "its own" if d.get("fingerprint") == late.fingerprint else "the attacker's"
            problems.append(f"late device: pending shows {len(fprs)} keys, the registry pinned "
                            f"{pinned}; accept failed ({p.returncode}): "
                            f"{p.err.strip().splitlines()[0][:120]}")
            return
        r = late.wait_reply(self.stack, status="accepted", timeout=30, client=boot)
        if r is None:
            problems.append("late device: no accepted reply sealed to its key")
        d = self.stack.device(LATE)
        if d.get("state") != "accepted" or d.get("fingerprint") != late.fingerprint:
            problems.append(f"late device: {d.get('state')} with key {d.get('fingerprint')}, "
                            f"its own is {late.fingerprint} (pending showed {sorted(fprs)})")

    def drain(self):
        """Freezes every agent's polling, stops the simulators, waits until every spool is
        empty, stops the agents; returns {serial: (epoch, next_seq, left, dropped)}."""
        for serial, a in self.agents.items():
            res = a.ctl({"op": "set", "settings": {"modbus.plc1.poll_ms": FREEZE_MS}})
            self.assertTrue(res.get("ok"), res)
        time.sleep(0.5)
        for sim in self.sims.values():
            sim.stop()
        streak = {}

        def empty():
            for serial, a in self.agents.items():
                st = a.ctl({"op": "status"})["status"]
                streak[serial] = streak.get(serial, 0) + 1 if st["spool_depth"] == 0 else 0
            return all(n >= 3 for n in streak.values())
        try:
            agentfix.wait_for(empty, 300, "every honest agent's spool acknowledged")
        except AssertionError as e:
            depth = {s: a.ctl({"op": "status"})["status"] for s, a in self.agents.items()}
            raise AssertionError(f"{e}: {depth}\n{self.stack.serve_log_text()[-3000:]}") from None
        out = {}
        for serial, a in self.agents.items():
            self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
            epoch, next_seq, left = spool_meta(a.data_dir)
            out[serial] = (epoch, next_seq, left, spool_state(a.data_dir)[2])
        return out

    # --- the test --------------------------------------------------------------------------
    def test_mixed_attack(self):
        problems = []
        atk = None
        if SECONDS > 0:
            atk = Attacker.for_stack(self.stack, self.adv_creds, self.adv.key, honest=HONEST,
                                     late=[LATE], seconds=SECONDS)
            self.marker = atk.marker
            self.addCleanup(atk.stop)
            atk.start()
            time.sleep(SECONDS / 3)
        late, boot = self.late_device(problems)
        if atk:
            atk.wait()
            atk.stop()
        else:
            time.sleep(5)   # the control: honest devices work for a while, unattacked
        self.accept_late(late, boot, problems)
        spools = self.drain()

        for serial, (epoch, next_seq, left, dropped) in spools.items():
            keys = self.stored(serial)
            n = next_seq - 1
            want = {(epoch, s) for s in range(1, next_seq)}
            got = set(keys)
            dup = len(keys) - len(got)
            if dropped or left:
                problems.append(f"{serial}: spool dropped {dropped}, {len(left)} left")
            if dup:
                problems.append(f"{serial}: {dup} readings stored twice")
            if want - got:
                miss = sorted(s for _, s in want - got)
                problems.append(f"{serial}: {len(miss)} of {n} acknowledged readings lost "
                                f"(seq {miss[:8]}...)")
            if got - want:
                problems.append(f"{serial}: {len(got - want)} rows it never sent, epochs "
                                f"{sorted({e for e, _ in got - want})[:5]}")
            if n < 50:
                problems.append(f"{serial}: only {n} readings made (agent stalled?)")
            d = self.stack.device(serial)
            if d.get("state") != "accepted" or d.get("fingerprint") != self.fpr[serial]:
                problems.append(f"{serial}: now {d.get('state')} with key {d.get('fingerprint')},"
                                f" was accepted with {self.fpr[serial]}")
        if atk:
            kinds = {}
            for v in atk.violations:
                kinds.setdefault(v["kind"], []).append(v)
            for kind, vs in sorted(kinds.items()):
                what = sorted({str(v.get("what") or v.get("filter") or v.get("topic") or
                                   v.get("serial")) for v in vs})
                problems.append(f"attacker got {len(vs)} x {kind}: {what[:12]}; e.g. {vs[0]}")
            time.sleep(1)   # the witness's last messages
            if self.spied:
                problems.append(f"forged messages reached subscribers on {sorted(set(self.spied))}")
            bad = {v: k for k, v in Attacker.INVALID_EPOCHS.items()}
            rows = self.sql(f"SELECT epoch, COUNT(*) FROM telemetry WHERE serial = '{ADV}'"
                            " GROUP BY epoch")
            stored_bad = {bad[int(e)]: int(c) for e, c in rows if int(e) in bad}
            if stored_bad:
                problems.append(f"attacker's invalid telemetry stored: {stored_bad}")
            if atk.evil_user in self.stack.dynsec_clients():
                problems.append("the attacker created a dynamic-security client")
            p = self.stack.cli("refusals", "--json")
            refusals = [r for r in (json.loads(p.out) if p.returncode == 0 else [])
                        if r.get("serial") == ADV and int(r.get("count", 0)) > 0]
            if p.returncode != 0:
                problems.append(f"refusals --json failed ({p.returncode}): {p.err.strip()[:100]}")
            elif not refusals:
                problems.append(f"no refusals counted for {ADV}")
            flood = {int(e): int(c) for e, c in rows}.get(Attacker.EPOCH_FLOOD, 0)
            print(f"{advtest.BACKEND}: attacker ran {atk.stats.get('elapsed_s')} s, sent "
                  f"{atk.stats.get('bytes', 0) / 1e6:.1f} MB; flood records stored {flood}; "
                  f"stats {_short(atk.stats)}; refusals {refusals}", file=sys.stderr)
        for p in self.stack.serves:
            if p is not None and p.poll() is not None:
                problems.append(f"serve exited ({p.returncode})")
        print(f"{advtest.BACKEND}: honest readings " + ", ".join(
            f"{s} {v[1] - 1}" for s, v in spools.items()), file=sys.stderr)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))


class AttackerSees(unittest.TestCase):
    """The attacker's recorder is not blind: against a broker that lets everyone do anything
    (mosquitto with anonymous access and no ACLs, what a broker without our plugin and dynamic
    security would be), it records the take-overs, the subscriptions, the messages and an
    envelope sealed to its key for a serial it does not own."""

    def test_open_broker(self):
        mq = etfix.Mosquitto(allow_anonymous=True).start()
        self.addCleanup(mq.cleanup)
        creds = {"username": "ADV-OPEN", "password": "x", "client_id": "ADV-OPEN"}
        atk = Attacker(mq.port, "x", creds, SoftDevice("ADV-OPEN").key, honest=["SN-OPEN-A"],
                       late=["SN-OPEN-L"], seconds=4, nkeys=1)
        self.addCleanup(atk.stop)
        cloud = mqtt_connect(mq.port, "cloud", "x", "etcloud-open")
        self.addCleanup(lambda: (cloud.loop_stop(), cloud.disconnect()))
        env = agentfix.seal(atk.keys[0].pubkey_pem, "SN-OPEN-A", 1,
                            json.dumps({"v": 1, "username": "SN-OPEN-A"}).encode())
        cloud.publish("et/v1/SN-OPEN-A/register/reply", json.dumps(
            {"v": 1, "serial": "SN-OPEN-A", "status": "accepted",
             "envelope": base64.b64encode(env).decode()}), qos=1, retain=True).wait_for_publish()
        atk.run()
        kinds = {v["kind"] for v in atk.violations}
        self.assertLessEqual({"connect", "subscribe", "received", "envelope"}, kinds,
                             atk.violations[:5])
        opened = [v for v in atk.violations if v["kind"] == "envelope"]
        self.assertEqual(opened[0].get("opened_username"), "SN-OPEN-A", opened)
        self.assertGreater(atk.stats.get("flood.records", 0), 0)


def _hex64(obj):
    """Every 64-hex-digit string in a JSON value (the fingerprints `pending --json` shows,
    whatever shape it gives its candidates)."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _hex64(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _hex64(v)
    elif isinstance(obj, str) and len(obj) == 64 and all(c in "0123456789abcdef" for c in obj):
        yield obj


def _short(stats):
    return {k: v for k, v in stats.items() if k != "error_text"} | (
        {"errors": stats["error_text"][:3]} if "error_text" in stats else {})


if __name__ == "__main__":
    etfix.main()
