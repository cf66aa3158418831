"""Registration, credentials and isolation against a real mosquitto, on SQLite or PostgreSQL
(--db=...), with device logins in the registry checked by the edgetrust plugin or in dynamic
security (--accounts=registry|dynsec): activate, register, accept, open the envelope, log in;
device A cannot touch device B; bootstrap sees no data; revoke, rotate (registry: without a
kick, old password valid until the device reports the new version), re-key, unknown serial,
expired activation; telemetry de-duplication, settings and status."""
import base64
import json
import time
import unittest

import cloudtest
from cloudfix import (CloudStack, SoftDevice, envelope_info, mqtt_connect, subscribe_granted,
                      wait_message)
from etfix import main


class RegisterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = CloudStack(db=cloudtest.BACKEND, pg_fsync=False,
                           accounts=cloudtest.ACCOUNTS).start()
        cls.clients = []

    @classmethod
    def tearDownClass(cls):
        for cl in cls.clients:
            try:
                cl.loop_stop()
                cl.disconnect()
            except Exception:
                pass
        codes = cls.c.serve_exit_codes
        cls.c.stop()
        log = cls.c.serve_log_text()
        cls.c.cleanup()
        # serve stops cleanly on SIGTERM (and without leaks under ASan)
        assert cls.c.serve_exit_codes and set(cls.c.serve_exit_codes) == {0}, \
            (cls.c.serve_exit_codes, codes, log[-3000:])

    def login(self, creds):
        cl = self.c.mqtt(creds["username"], creds["password"], creds["client_id"])
        self.clients.append(cl)
        return cl

    def onboard(self, serial):
        """activate -> register (pending) -> accept -> accepted reply with an envelope."""
        dev = SoftDevice(serial)
        self.assertEqual(self.c.cli("activate", serial, "--for", "10m").returncode, 0)
        boot = dev.connect_bootstrap(self.c)
        try:
            r = dev.register(self.c, client=boot)
            self.assertEqual(r["status"], "pending", r)
            self.assertEqual(self.c.device(serial)["state"], "pending")
            self.assertEqual(self.c.device(serial)["fingerprint"], dev.fingerprint)
            self.assertEqual(self.c.cli("accept", serial).returncode, 0)
            r = dev.wait_reply(self.c, status="accepted", client=boot)
        finally:
            boot.loop_stop()
            boot.disconnect()
        self.assertIsNotNone(r, self.c.serve_log_text()[-2000:])
        self.assertEqual(r["cred_version"], 1)
        creds = dev.open(r["envelope"])
        return dev, creds, r

    def test_register_accept_login(self):
        dev, creds, r = self.onboard("SN-A1")
        self.assertEqual(creds["username"], "SN-A1")
        self.assertEqual(creds["client_id"], "SN-A1")
        self.assertEqual(creds["port"], self.c.broker_port)
        self.assertGreaterEqual(len(creds["password"]), 22)
        info = envelope_info(base64.b64decode(r["envelope"]))
        self.assertEqual(info["fingerprint"], dev.fingerprint)
        self.assertEqual(info["cred_version"], 1)
        # the password is nowhere in clear: not in the logs, not in the registry, not in the
        # broker's store (hashed)
        self.assertNotIn(creds["password"], self.c.serve_log_text())
        self.assertNotIn(creds["password"], json.dumps(self.c.device("SN-A1")))
        with open(self.c.dynsec_file) as f:
            self.assertNotIn(creds["password"], f.read())
        if cloudtest.ACCOUNTS == "registry":
            self.assertEqual(self.c.accounts()["SN-A1"],
                             {"enabled": True, "cred_version": 1, "prev_version": 0, "has_prev": False})
            sql = "SELECT hash FROM broker_accounts WHERE username = 'SN-A1'"
            if self.c.pg:
                h = self.c.pg.psql(sql)[0][0]
            else:
                import sqlite3
                con = sqlite3.connect(self.c.db_url)
                h = con.execute(sql).fetchone()[0]
                con.close()
            self.assertRegex(h, r"^s256\$[0-9a-f]{32}\$[0-9a-f]{64}$")
            self.assertNotIn(creds["password"], h)
        else:
            self.assertIn("SN-A1", self.c.dynsec_clients())
        self.login(creds)
        # a wrong client id is refused even with the right password
        with self.assertRaises(ConnectionRefusedError):
            self.c.mqtt(creds["username"], creds["password"], "other-id")
        # repeated request: same envelope, same version, no new login
        again = dev.register(self.c, status="accepted")
        self.assertEqual(again["envelope"], r["envelope"])
        d = self.c.device("SN-A1")
        self.assertEqual(d["credentials_issued"], 1)
        # a retained answer waits for a device that was offline
        late = dev.wait_reply(self.c, status="accepted")
        self.assertEqual(late["cred_version"], 1)

    def test_isolation(self):
        _, ca, _ = self.onboard("SN-ISO-A")
        _, cb, _ = self.onboard("SN-ISO-B")
        a = self.login(ca)
        b = self.login(cb)
        # the cloud's login sees every device topic: our witness of what reached the broker
        with open(self.c.cloud_password_file) as f:
            spy = mqtt_connect(self.c.broker_port, "edgetrust-cloud", f.read().strip(), "etcloud-spy")
        self.clients.append(spy)
        self.assertTrue(subscribe_granted(spy, "et/v1/#"))
        self.assertTrue(subscribe_granted(b, "et/v1/SN-ISO-B/#"))
        # A cannot subscribe to B's topics, nor to everything
        self.assertFalse(subscribe_granted(a, "et/v1/SN-ISO-B/telemetry"))
        self.assertFalse(subscribe_granted(a, "et/v1/SN-ISO-B/#"))
        self.assertFalse(subscribe_granted(a, "et/v1/#"))
        self.assertFalse(subscribe_granted(a, "#"))
        self.assertTrue(subscribe_granted(a, "et/v1/SN-ISO-A/#"))
        self.assertTrue(subscribe_granted(a, "et/v1/SN-ISO-A/telemetry/ack"))
        self.assertFalse(subscribe_granted(a, "et/v1/SN-ISO-B/telemetry/ack"))
        # A's publish to B's topics never arrives; its own telemetry does (positive control)
        # nor to the cloud's topics of its own: a device cannot forge its own telemetry ack
        # (which would make it delete readings the cloud never stored)
        for t in ("et/v1/SN-ISO-B/telemetry", "et/v1/SN-ISO-B/settings/desired",
                  "et/v1/SN-ISO-B/creds", "et/v1/SN-ISO-A/settings/desired",
                  "et/v1/SN-ISO-A/telemetry/ack", "et/v1/SN-ISO-B/telemetry/ack",
                  "et/v1/SN-ISO-A/creds", "et/v1/SN-ISO-A/register/reply", "et/v1/SN-ISO-A",
                  "$CONTROL/edgetrust/v1"):
            a.publish(t, json.dumps({"v": 1, "evil": True, "ranges": [[1, 1000]]}), qos=1)
        a.publish("et/v1/SN-ISO-A/status", json.dumps({"v": 1, "online": True}), qos=1)
        m = wait_message(spy, "et/v1/SN-ISO-A/status", 10)
        self.assertIsNotNone(m)
        time.sleep(0.5)
        with spy.msg_cond:
            evil = [m.topic for m in spy.messages if b"evil" in m.payload]
        self.assertEqual(evil, [])
        with b.msg_cond:
            self.assertEqual([m.topic for m in b.messages if b"evil" in m.payload], [])
        with a.msg_cond:
            self.assertEqual([m.topic for m in a.messages if b"evil" in m.payload], [])
        # the status reached the registry
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.c.device("SN-ISO-A").get("online") is not True:
            time.sleep(0.1)
        self.assertTrue(self.c.device("SN-ISO-A")["online"])
        # bootstrap: no telemetry, settings, status or creds; no publishing outside register
        boot = self.c.bootstrap("SN-ISO-X")
        self.clients.append(boot)
        for t in ("et/v1/SN-ISO-A/telemetry", "et/v1/SN-ISO-A/settings/desired",
                  "et/v1/SN-ISO-A/status", "et/v1/SN-ISO-A/creds", "et/v1/+/telemetry",
                  "et/v1/SN-ISO-A/telemetry/ack", "et/v1/+/telemetry/ack", "#"):
            self.assertFalse(subscribe_granted(boot, t), t)
        boot.publish("et/v1/SN-ISO-A/settings/desired", json.dumps({"v": 1, "evil": 2}), qos=1)
        boot.publish("et/v1/SN-ISO-A/telemetry/ack", json.dumps({"v": 1, "evil": 2}), qos=1)
        time.sleep(0.5)
        with spy.msg_cond:
            self.assertEqual([m.topic for m in spy.messages if b"evil" in m.payload], [])

    def test_revoke(self):
        dev, creds, _ = self.onboard("SN-REV")
        cl = self.login(creds)
        self.assertEqual(self.c.cli("revoke", "SN-REV").returncode, 0)
        # serve disables the login: the connected client is kicked, a new login refused
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and cl.is_connected():
            time.sleep(0.1)
        self.assertFalse(cl.is_connected())
        cl.loop_stop()
        with self.assertRaises(ConnectionRefusedError):
            self.c.mqtt(creds["username"], creds["password"], creds["client_id"])
        r = dev.wait_reply(self.c, status="revoked")
        self.assertEqual(r["status"], "revoked")
        self.assertEqual(dev.register(self.c)["status"], "revoked")
        self.assertEqual(self.c.device("SN-REV")["broker"], "disabled")
        self.assertEqual(self.c.device_logins()["SN-REV"], False)
        self.assertEqual(self.c.cli("rotate", "SN-REV").returncode, 4)

    def test_rotate(self):
        if cloudtest.ACCOUNTS == "registry":
            return self.rotate_without_kick()
        dev, creds, _ = self.onboard("SN-ROT")
        cl = self.login(creds)
        self.assertTrue(subscribe_granted(cl, "et/v1/SN-ROT/creds"))
        self.assertEqual(self.c.cli("rotate", "SN-ROT").returncode, 0)
        m = wait_message(cl, "et/v1/SN-ROT/creds", 15)
        if m is None:  # the password change kicks the client; the message is retained
            cl2 = None
            new = dev.register(self.c, status="accepted")
            env = new["envelope"]
            self.assertEqual(new["cred_version"], 2)
        else:
            body = json.loads(m.payload)
            self.assertEqual(body["cred_version"], 2)
            env = body["envelope"]
        new_creds = dev.open(env)
        self.assertEqual(new_creds["cred_version"], 2)
        self.assertNotEqual(new_creds["password"], creds["password"])
        with self.assertRaises(ConnectionRefusedError):
            self.c.mqtt(creds["username"], creds["password"], creds["client_id"])
        cl2 = self.login(new_creds)
        self.assertTrue(cl2.is_connected())
        self.assertEqual(self.c.device("SN-ROT")["credentials_issued"], 2)

    def rotate_without_kick(self):
        """Registry accounts: the connected device gets the new envelope on .../creds and stays
        online; the old password works until the device reports the new version in its
        status, then it is refused. No kick, no re-registration."""
        dev, creds, _ = self.onboard("SN-ROT")
        cl = self.login(creds)
        self.assertTrue(subscribe_granted(cl, "et/v1/SN-ROT/creds"))
        self.assertEqual(self.c.cli("rotate", "SN-ROT").returncode, 0)
        m = wait_message(cl, "et/v1/SN-ROT/creds", 15)
        self.assertIsNotNone(m, self.c.serve_log_text()[-2000:])
        body = json.loads(m.payload)
        self.assertEqual(body["cred_version"], 2)
        new_creds = dev.open(body["envelope"])
        self.assertEqual(new_creds["cred_version"], 2)
        self.assertNotEqual(new_creds["password"], creds["password"])
        time.sleep(0.5)
        self.assertTrue(cl.is_connected(), "rotation disconnected the device")
        self.assertEqual(self.c.accounts()["SN-ROT"],
                         {"enabled": True, "cred_version": 2, "prev_version": 1, "has_prev": True})
        # the device logs in with the new password (taking over its own session) ...
        cl2 = self.login(new_creds)
        # ... and the old one still works until the device reports version 2
        cl_old = self.login(creds)
        cl_old.loop_stop()
        cl_old.disconnect()
        cl2 = self.login(new_creds)
        cl2.publish("et/v1/SN-ROT/status",
                    json.dumps({"v": 1, "online": True, "cred_version": 2}), qos=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.c.accounts()["SN-ROT"]["has_prev"]:
            time.sleep(0.1)
        self.assertEqual(self.c.accounts()["SN-ROT"],
                         {"enabled": True, "cred_version": 2, "prev_version": 0, "has_prev": False})
        with self.assertRaises(ConnectionRefusedError):
            self.c.mqtt(creds["username"], creds["password"], creds["client_id"])
        # the refused old login did not disturb the device's session
        time.sleep(0.3)
        self.assertTrue(cl2.is_connected())
        self.assertEqual(self.c.device("SN-ROT")["credentials_issued"], 2)
        self.assertIn("rotate-confirmed",
                      [e["action"] for e in self.c.cli("audit", "SN-ROT", "--json", json_out=True)])

    def test_unknown_and_expired(self):
        dev = SoftDevice("SN-UNKNOWN")
        r = dev.register(self.c)
        self.assertEqual(r["status"], "refused")
        self.assertIn("not activated", r["reason"])
        self.assertEqual(self.c.cli("show", "SN-UNKNOWN").returncode, 3)
        self.assertEqual(self.c.cli("activate", "SN-EXP", "--for", "1s").returncode, 0)
        time.sleep(2.2)
        dev = SoftDevice("SN-EXP")
        r = dev.register(self.c)
        self.assertEqual(r["status"], "refused")
        self.assertIn("expired", r["reason"])
        self.assertEqual(self.c.device("SN-EXP")["state"], "activated")
        self.assertNotIn("fingerprint", self.c.device("SN-EXP"))

    def test_rekey_and_reject(self):
        dev, creds, _ = self.onboard("SN-RK")
        thief = SoftDevice("SN-RK")
        r = thief.register(self.c)
        self.assertEqual(r["status"], "pending")
        self.assertEqual(r["reason"], "rekey")
        self.assertNotIn("envelope", r)
        d = self.c.device("SN-RK")
        self.assertEqual(d["state"], "accepted")
        self.assertEqual(d["fingerprint"], dev.fingerprint)
        self.assertEqual([k["fingerprint"] for k in d["candidates"]], [thief.fingerprint])
        self.assertIn(thief.fingerprint, self.c.cli("pending").out)
        # the genuine device is not disturbed: same envelope again
        self.assertEqual(dev.register(self.c, status="accepted")["cred_version"], 1)
        self.login(creds)
        # the operator rejects the new key; the thief never gets anything
        self.assertEqual(self.c.cli("reject", "SN-RK").returncode, 0)
        self.assertEqual(self.c.device("SN-RK")["candidates"], [])
        self.assertEqual(thief.register(self.c)["reason"], "rekey")
        # a genuine re-key (e.g. a replaced TPM) is accepted by the operator: new version
        self.assertEqual(self.c.cli("accept", "SN-RK").returncode, 0)
        r = thief.wait_reply(self.c, status="accepted")
        self.assertEqual(r["cred_version"], 2)
        self.assertEqual(thief.open(r["envelope"])["cred_version"], 2)
        with self.assertRaises(ValueError):
            dev.open(r["envelope"])
        # reject a pending first registration
        self.assertEqual(self.c.cli("activate", "SN-REJ").returncode, 0)
        rej = SoftDevice("SN-REJ")
        self.assertEqual(rej.register(self.c)["status"], "pending")
        self.assertEqual(self.c.cli("reject", "SN-REJ").returncode, 0)
        self.assertEqual(rej.wait_reply(self.c, status="rejected")["status"], "rejected")
        self.assertEqual(rej.register(self.c)["status"], "rejected")
        self.assertNotIn("SN-REJ", self.c.device_logins())

    def test_serve_restart(self):
        """What devices send while serve is down is stored when it is back (persistent session
        of the instance, docs/protocol.md "Delivery end to end")."""
        dev, creds, _ = self.onboard("SN-PERS")
        cl = self.login(creds)
        self.c.stop_serve(0)
        recs = [{"seq": i, "ts": i, "device": "d", "point": "p", "value": i, "q": "ok"}
                for i in range(1, 4)]
        info = cl.publish("et/v1/SN-PERS/telemetry", json.dumps({"v": 1, "records": recs}), qos=1)
        info.wait_for_publish(10)
        self.c.start_serve(0)
        deadline = time.monotonic() + 15
        rows = []
        while time.monotonic() < deadline and len(rows) < 3:
            rows = self.c.cli("telemetry", "SN-PERS", "--json", json_out=True)
            time.sleep(0.1)
        self.assertEqual([r["seq"] for r in rows], [1, 2, 3])

    def test_telemetry_settings(self):
        dev, creds, _ = self.onboard("SN-TEL")
        cl = self.login(creds)
        now = int(time.time() * 1000)
        recs = [{"seq": i, "ts": now + i, "device": "plc1", "point": "temp", "value": 20.0 + i,
                 "unit": "degC", "q": "ok"} for i in range(1, 6)]
        recs.append({"seq": 6, "ts": now + 6, "device": "plc1", "point": "temp", "value": None,
                     "q": "timeout"})
        # the cloud acknowledges what it stored, duplicates included (docs/protocol.md)
        self.assertTrue(subscribe_granted(cl, "et/v1/SN-TEL/telemetry/ack"))
        # at-least-once: everything sent twice, overlapping
        for batch in (recs[:4], recs, recs[2:]):
            cl.publish("et/v1/SN-TEL/telemetry", json.dumps({"v": 1, "records": batch}), qos=1)
        deadline = time.monotonic() + 15
        rows = []
        while time.monotonic() < deadline:
            rows = self.c.cli("telemetry", "SN-TEL", "--json", json_out=True)
            if len(rows) >= 6:
                time.sleep(0.5)
                rows = self.c.cli("telemetry", "SN-TEL", "--json", json_out=True)
                break
            time.sleep(0.1)
        self.assertEqual([r["seq"] for r in rows], [1, 2, 3, 4, 5, 6])
        self.assertEqual(rows[0]["value"], 21.0)
        self.assertIsNone(rows[5]["value"])
        self.assertEqual(rows[5]["q"], "timeout")
        acked = set()
        while acked != set(range(1, 7)):
            m = wait_message(cl, "et/v1/SN-TEL/telemetry/ack", 10)
            self.assertIsNotNone(m, f"acknowledged so far: {sorted(acked)}")
            body = json.loads(m.payload)
            self.assertEqual((body["v"], body["serial"]), (1, "SN-TEL"))
            for lo, hi in body["ranges"]:
                self.assertLessEqual(lo, hi)
                acked |= set(range(lo, hi + 1))
            self.assertLessEqual(acked, set(range(1, 7)))
        # retained: whoever subscribes later (a reconnecting device) gets the latest ack at once
        with open(self.c.cloud_password_file) as f:
            late = mqtt_connect(self.c.broker_port, "edgetrust-cloud", f.read().strip(), "etcloud-late")
        self.clients.append(late)
        self.assertTrue(subscribe_granted(late, "et/v1/SN-TEL/telemetry/ack"))
        m = wait_message(late, "et/v1/SN-TEL/telemetry/ack", 10)
        self.assertIsNotNone(m)
        self.assertTrue(m.retain)
        # desired settings: published retained for the device
        self.assertTrue(subscribe_granted(cl, "et/v1/SN-TEL/settings/desired"))
        self.assertEqual(self.c.cli("settings", "set", "SN-TEL", "poll_ms=500").returncode, 0)
        m = wait_message(cl, "et/v1/SN-TEL/settings/desired", 10)
        self.assertIsNotNone(m)
        body = json.loads(m.payload)
        self.assertEqual(body, {"v": 1, "version": 1, "settings": {"poll_ms": 500}})
        self.assertTrue(m.retain or True)
        cl.publish("et/v1/SN-TEL/settings/reported",
                   json.dumps({"v": 1, "version": 1, "settings": {"poll_ms": 500}, "source": "cloud"}),
                   qos=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self.c.device("SN-TEL")["reported"]:
            time.sleep(0.1)
        self.assertEqual(self.c.device("SN-TEL")["reported"]["settings"], {"poll_ms": 500})


if __name__ == "__main__":
    main()
