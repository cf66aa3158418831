"""Attacks on the broker boundary (docs/threat-model.md, "Broker logins and topics"), against
mosquitto with the real edgetrust plugin and dynamic security, serve on --db=sqlite|postgresql:

- finding 3: the bootstrap login (and any other) taking the cloud's or a device's client id;
  checked in both account modes (registry, dynsec);
- finding 4: retained and oversized publishes from devices and the bootstrap login, and a
  registration request planted before the serial's activation (queued in serve's persistent
  session and retained), with and without --auto-accept;
- what was already refused stays refused: other devices' topics, wildcards, $SYS, $share and
  $CONTROL subscriptions, forged acks/replies/creds/settings, odd usernames.

Each test asserts what the attacker gets (nothing) and that the honest device's readings are
stored, each exactly once."""
import json
import os
import time
import unittest

import advtest
from cloudfix import (CloudStack, SoftDevice, bootstrap_id, subscribe_granted, wait_message)
from etfix import main

MB = 1024 * 1024


class BrokerCase(unittest.TestCase):
    maxDiff = None
    accounts = "registry"
    auto_accept = False

    def setUp(self):
        self.c = CloudStack(db=advtest.BACKEND, accounts=self.accounts,
                            auto_accept=self.auto_accept, pg_fsync=False).start()
        self.addCleanup(self.c.cleanup)
        self.clients = []
        self.addCleanup(self._close_clients)

    def _close_clients(self):
        for cl in self.clients:
            try:
                cl.loop_stop()
                cl.disconnect()
            except Exception:
                pass

    def keep(self, cl):
        self.clients.append(cl)
        return cl

    def cloud_password(self):
        with open(self.c.cloud_password_file) as f:
            return f.read().strip()

    def spy(self, name="spy"):
        """The cloud's own login (with an id of its namespace): our witness of what the broker
        delivers, subscribed to every device topic."""
        s = self.keep(self.c.mqtt("edgetrust-cloud", self.cloud_password(), "etcloud-" + name))
        self.assertTrue(subscribe_granted(s, "et/v1/#"))
        return s

    def onboard(self, serial):
        """activate -> register -> accept (unless auto) -> a connected device login."""
        dev = SoftDevice(serial)
        self.assertEqual(self.c.cli("activate", serial, "--for", "10m").returncode, 0)
        r = dev.register(self.c, status="accepted" if self.auto_accept else "pending")
        self.assertIsNotNone(r, self.c.serve_log_text()[-2000:])
        if not self.auto_accept:
            self.assertEqual(self.c.cli("accept", serial).returncode, 0)
            r = dev.wait_reply(self.c, status="accepted")
        self.assertIsNotNone(r, self.c.serve_log_text()[-2000:])
        creds = dev.open(r["envelope"])
        cl = self.keep(self.c.mqtt(creds["username"], creds["password"], creds["client_id"]))
        return dev, creds, cl

    def publish_telemetry(self, cl, serial, seqs):
        now = int(time.time() * 1000)
        recs = [{"seq": s, "ts": now + s, "device": "plc", "point": "p", "value": s, "q": "ok"}
                for s in seqs]
        info = cl.publish(f"et/v1/{serial}/telemetry", json.dumps({"v": 1, "records": recs}), qos=1)
        info.wait_for_publish(10)

    def wait_stored(self, serial, n, timeout=20):
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            rows = self.c.cli("telemetry", serial, "--json", "--limit", "100000", json_out=True)
            if len(rows) >= n:
                break
            time.sleep(0.1)
        time.sleep(0.3)  # anything stored twice would show now
        return sorted(r["seq"] for r in
                      self.c.cli("telemetry", serial, "--json", "--limit", "100000", json_out=True))

    def refusals(self, serial, reason):
        p = self.c.cli("refusals", "--json")
        if p.returncode != 0:
            return 0  # a build without refusal counters (1a88aad): only the state tells
        rows = json.loads(p.out)
        return sum(int(r["count"]) for r in rows if r["serial"] == serial and r["reason"] == reason)

    def login_refused(self, user, password, client_id, clean_start=True):
        try:
            cl = self.c.mqtt(user, password, client_id, timeout=5, clean_start=clean_start)
        except ConnectionRefusedError:
            return True
        time.sleep(0.2)  # let the takeover (if any) happen while it is connected
        cl.loop_stop()
        cl.disconnect()
        return False


class ClientIdTest(BrokerCase):
    """Finding 3: every login may use only its own client id."""

    def test_taken_ids_refused_nobody_kicked(self):
        serial = "ADV-CID-V"
        _, creds, victim = self.onboard(serial)
        kicked = []
        victim.on_disconnect = lambda cl, ud, rc, props=None: kicked.append(rc)
        boot_pw, cloud_pw = self.c.bootstrap_password, self.cloud_password()
        attempts = [
            ("bootstrap", boot_pw, serial),           # the device's session
            ("bootstrap", boot_pw, "etcloud-i0"),     # serve's session
            ("bootstrap", boot_pw, "etcloud-x"),
            ("bootstrap", boot_pw, ""),               # no id: the broker would make one up
            ("bootstrap", boot_pw, "ADV-CID-OTHER"),  # a serial not yet activated
            ("edgetrust-cloud", cloud_pw, serial),    # the cloud's login on a device id
            ("edgetrust-cloud", cloud_pw, ""),
            (creds["username"], creds["password"], "etcloud-i0"),  # a device on serve's id
            (creds["username"], creds["password"], bootstrap_id()),
        ]
        taken = []
        sent = []
        for rnd in range(5):
            for user, pw, cid in attempts:
                if not self.login_refused(user, pw, cid):
                    taken.append((user, cid))
            seqs = list(range(rnd * 10 + 1, rnd * 10 + 11))
            self.publish_telemetry(victim, serial, seqs)
            sent += seqs
        # a bootstrap login with its own kind of id but asking to resume a session
        if not self.login_refused("bootstrap", boot_pw, bootstrap_id(), clean_start=False):
            taken.append(("bootstrap", "persistent session"))
        stored = self.wait_stored(serial, len(sent))
        # all three reported together: on the old code each of them failed
        self.assertEqual({"taken ids": taken, "device disconnected": len(kicked),
                          "serve exited": self.c.serves[0].poll() is not None,
                          "readings lost": sorted(set(sent) - set(stored)),
                          "readings stored twice": len(stored) - len(set(stored))},
                         {"taken ids": [], "device disconnected": 0, "serve exited": False,
                          "readings lost": [], "readings stored twice": 0})
        # positive control: the bootstrap login with an id of its own works
        self.assertFalse(self.login_refused("bootstrap", boot_pw, bootstrap_id()))


class ClientIdDynsecTest(ClientIdTest):
    """The same with device logins in dynamic security: the plugin only guards there."""
    accounts = "dynsec"


class RetainAndSizeTest(BrokerCase):
    """Finding 4, first part: no retained or oversized publishes from devices and bootstrap."""

    def test_retained_refused(self):
        serial = "ADV-RET-D"
        _, _, dev = self.onboard(serial)
        boot = self.keep(self.c.bootstrap())
        planted = SoftDevice("ADV-RET-X")
        boot.publish("et/v1/ADV-RET-X/register", planted.request(), qos=1,
                     retain=True).wait_for_publish(10)
        big = json.dumps(json.loads(planted.request()) | {"pad": "x" * (200 * 1024)})
        boot.publish("et/v1/ADV-RET-Y/register", big, qos=1, retain=True).wait_for_publish(10)
        now = int(time.time() * 1000)
        tele = json.dumps({"v": 1, "records": [{"seq": 1, "ts": now, "device": "plc",
                                                "point": "p", "value": 1, "q": "ok"}]})
        dev.publish(f"et/v1/{serial}/telemetry", tele, qos=1, retain=True).wait_for_publish(10)
        # allowed: a device's latest status, retained (positive control of the fresh subscriber)
        dev.publish(f"et/v1/{serial}/status", json.dumps({"v": 1, "online": True}), qos=1,
                    retain=True).wait_for_publish(10)
        fresh = self.spy("fresh")
        self.assertIsNotNone(wait_message(fresh, f"et/v1/{serial}/status", 10,
                                          pred=lambda m: m.retain))
        time.sleep(0.5)
        with fresh.msg_cond:
            retained = sorted({m.topic for m in fresh.messages if m.retain and
                               not m.topic.endswith(("/register/reply", "/telemetry/ack"))})
        self.assertEqual(retained, [], "retained messages planted by bootstrap or a device")
        self.assertEqual(self.wait_stored(serial, 0, timeout=1), [],
                         "a retained telemetry message was stored")

    def test_oversized_refused(self):
        """Oversized, not retained: the broker drops them; the next small one still arrives."""
        serial = "ADV-BIG-D"
        _, _, dev = self.onboard(serial)
        boot = self.keep(self.c.bootstrap())
        spy = self.spy()
        boot.publish("et/v1/ADV-BIG-Y/register", "x" * (16 * 1024 + 1), qos=1).wait_for_publish(10)
        boot.publish("et/v1/ADV-BIG-Y/register", "small-1", qos=1).wait_for_publish(10)
        dev.publish(f"et/v1/{serial}/telemetry", "x" * (64 * 1024 + 1), qos=1).wait_for_publish(10)
        dev.publish(f"et/v1/{serial}/telemetry", "small-2", qos=1).wait_for_publish(10)
        self.assertIsNotNone(wait_message(spy, "et/v1/ADV-BIG-Y/register", 10,
                                          pred=lambda m: m.payload == b"small-1"))
        self.assertIsNotNone(wait_message(spy, f"et/v1/{serial}/telemetry", 10,
                                          pred=lambda m: m.payload == b"small-2"))
        with spy.msg_cond:
            sizes = [len(m.payload) for m in spy.messages if len(m.payload) > 16 * 1024]
        self.assertEqual(sizes, [], "oversized payloads were delivered")
        # a packet above max_packet_size (init-broker's limit) ends the sender's connection
        gone = []
        boot.on_disconnect = lambda cl, ud, rc, props=None: gone.append(rc)
        boot.publish("et/v1/ADV-BIG-Y/register", "x" * (2 * MB), qos=1)
        deadline = time.monotonic() + 10
        while not gone and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(gone, "a 2 MB packet was taken")
        self.assertIsNone(self.c.serves[0].poll(), "serve exited")


class PlantedRegistrationTest(BrokerCase):
    """Finding 4, key pinning: a request planted before `activate` (queued in serve's
    persistent session while serve is away, and retained) never pins the attacker's key, even
    after serve restarts."""

    def test_planted_before_activation(self):
        serial = "ADV-PIN"
        attacker = SoftDevice(serial)
        boot = self.keep(self.c.bootstrap())
        self.assertTrue(subscribe_granted(boot, f"et/v1/{serial}/register/reply"))
        self.c.stop_serve(0)  # its session stays: the broker queues what arrives for it
        boot.publish(f"et/v1/{serial}/register", attacker.request(), qos=1).wait_for_publish(10)
        boot.publish(f"et/v1/{serial}/register", attacker.request(), qos=1,
                     retain=True).wait_for_publish(10)
        self.assertEqual(self.c.cli("activate", serial, "--for", "10m").returncode, 0)
        self.c.start_serve(0)
        # serve has seen the queued request once it counted it (or, before the fix, acted)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.c.device(serial)["state"] == "activated" \
                and not self.refusals(serial, "register-stale"):
            time.sleep(0.1)
        for restart in range(2):
            d = self.c.device(serial)
            self.assertEqual(d["state"], "activated", f"planted key taken: {d}")
            self.assertNotIn("fingerprint", d)
            self.c.stop_serve(0)
            self.c.start_serve(0)  # a reconnect: the broker would replay what is retained
            time.sleep(1)
        # the honest device registers after activation and is pinned
        honest = SoftDevice(serial)
        r = honest.register(self.c, status="accepted" if self.auto_accept else "pending")
        self.assertIsNotNone(r, self.c.serve_log_text()[-3000:])
        d = self.c.device(serial)
        self.assertEqual(d["fingerprint"], honest.fingerprint)
        self.assertNotEqual(d.get("rekey_fingerprint"), attacker.fingerprint)
        if not self.auto_accept:
            self.assertEqual(self.c.cli("accept", serial).returncode, 0)
            self.assertIsNotNone(honest.wait_reply(self.c, status="accepted"))
        # the attacker never gets credentials sealed to its key
        self.assertIsNone(attacker.wait_reply(self.c, status="accepted", client=boot, timeout=2))
        self.assertNotIn(attacker.fingerprint, self.c.cli("audit", serial, "--json").out)


class PlantedRegistrationAutoTest(PlantedRegistrationTest):
    """The same with --auto-accept: before the fix, the attacker got accepted credentials."""
    auto_accept = True


class KeepRefusedTest(BrokerCase):
    """Attacks that were already refused stay refused (both account modes)."""

    def test_subscriptions_forgeries_and_odd_usernames(self):
        serial, other = "ADV-KR-A", "ADV-KR-B"
        _, creds, a = self.onboard(serial)
        _, _, b = self.onboard(other)
        spy = self.spy()
        self.assertTrue(subscribe_granted(b, f"et/v1/{other}/#"))
        boot = self.keep(self.c.bootstrap())
        forbidden = [f"et/v1/{other}/telemetry", f"et/v1/{other}/#", "et/v1/+/telemetry",
                     "et/v1/#", "#", "+/#", "$SYS/#", "$SYS/broker/clients/connected",
                     "$share/etcloud/et/v1/+/telemetry", "$share/x/#",
                     f"$share/x/et/v1/{other}/telemetry", "$share/etcloud/et/v1/+/register",
                     "$CONTROL/#", "$CONTROL/dynamic-security/v1/response",
                     "$CONTROL/edgetrust/v1"]
        for who, cl in (("device", a), ("bootstrap", boot)):
            for t in forbidden:
                self.assertFalse(subscribe_granted(cl, t), f"{who} subscribed to {t}")
        # forged acks, replies, credentials and settings; other serials' topics
        evil = json.dumps({"v": 1, "evil": True, "serial": other, "status": "accepted",
                           "ranges": [[1, 1000000]]})
        forged = [f"et/v1/{s}/{t}" for s in (serial, other)
                  for t in ("telemetry/ack", "register/reply", "creds", "settings/desired")]
        forged += [f"et/v1/{other}/telemetry", f"et/v1/{other}/status",
                   f"et/v1/{other}/settings/reported", f"et/v1/{other}/register"]
        for cl in (a, boot):
            for t in forged:
                if cl is boot and t.endswith("/register"):
                    continue  # bootstrap's own topic
                cl.publish(t, evil, qos=1).wait_for_publish(10)
        a.publish(f"et/v1/{serial}/status", json.dumps({"v": 1, "online": True}), qos=1)
        self.assertIsNotNone(wait_message(spy, f"et/v1/{serial}/status", 10))  # control
        time.sleep(0.5)
        for who, cl in (("cloud", spy), ("victim", b), ("attacker", a)):
            with cl.msg_cond:
                self.assertEqual([m.topic for m in cl.messages if b"evil" in m.payload], [],
                                 f"a forged message reached the {who}")
        # odd usernames never log in, whatever the client id
        for user in ("", "#", "+", "et/v1/x", "../x", "SN\nX", "x" * 65, "etcloud-i0",
                     "etboot-x", serial.lower(), serial + " "):
            for cid in (user or "x", bootstrap_id()):
                self.assertTrue(self.login_refused(user, creds["password"], cid), repr(user))
        self.assertIsNone(self.c.serves[0].poll(), "serve exited")


class KeepRefusedDynsecTest(KeepRefusedTest):
    accounts = "dynsec"


if __name__ == "__main__":
    main()
