"""Attacks on registration and accept (docs/threat-model.md, "Registration and accept"), with
only the shared bootstrap login, against mosquitto + the edgetrust plugin + serve on SQLite or
PostgreSQL (--db=...). Each test asserts what the attacker gets: nothing.

- key substitution (issue 10, finding 1): the real device registers with K1, the attacker with
  K2; the envelope delivered after the operator's accept opens only with the key the operator
  saw in `pending` (K1), never with K2. This core assertion runs on old builds too (they have
  no `accept --key`: there the operator's plain `accept` is all there is).
- the same for an accepted device's re-key request, and --auto-accept with two keys;
- re-key flood (finding 6): bounded candidates and audit rows, every refusal counted;
- odd RSA keys (finding 17) and the hostile registrations tests/cloud/test_cloud_badinput.py
  already refuses: refused, counted, nothing stored.
"""
import base64
import json
import os
import time
import unittest

import advtest
from cloudfix import (CloudStack, SoftDevice, envelope_info, open_envelope, subscribe_granted,
                      wait_message)
from etfix import binary, main, run
from test_cloud_badinput import bad_cases

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

EC_KEY_CHOICE = 9


def _supports(cmd, opt):
    p = run([binary("edgetrust-cloud"), cmd, "--help"])
    return opt in p.out


# Old builds (1a88aad) have neither candidate keys nor refusal counters: the tests then check
# only what the attacker gets.
NEW = _supports("accept", "--key")
FAST = ["--key-candidate-interval", "0"] if NEW else []


def spki_pem(n, e=65537):
    return rsa.RSAPublicNumbers(e, n).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class AcceptAttackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = CloudStack(db=advtest.BACKEND, pg_fsync=False, serve_args=FAST).start()

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        codes = cls.c.serve_exit_codes
        cls.c.cleanup()
        assert codes and set(codes) == {0}, codes

    # --- helpers ---------------------------------------------------------------------------
    def restart_serve(self, auto_accept=False, extra=()):
        n = self.c.serve_log_text().count("connected to broker")
        self.c.stop_serve(0)
        self.c.auto_accept = auto_accept
        self.c.serve_args = FAST + list(extra)
        self.c.start_serve(0, wait=False)
        self.c.wait_log(r"connected to broker", timeout=30, count=n + 1)

    def operator_sees(self, serial):
        """The key fingerprints the operator sees for serial, in arrival order: `pending`'s
        candidate keys (old builds: the pinned key, or the re-key request that `show` names)."""
        d = self.c.device(serial)
        if "candidates" in d:
            return [k["fingerprint"] for k in d["candidates"]]
        return [d.get("rekey_fingerprint") or d["fingerprint"]]

    def operator_accepts(self, serial, fpr):
        """The operator accepts the key they saw: plain `accept` when it is the only candidate,
        else `accept --key`, which the old build does not have."""
        if NEW and len(self.operator_sees(serial)) > 1:
            p = self.c.cli("accept", serial)
            self.assertEqual(p.returncode, EC_KEY_CHOICE, p.err)
            self.assertIn("--key", p.err)
            p = self.c.cli("accept", serial, "--key", fpr[:16])
        else:
            p = self.c.cli("accept", serial)
        self.assertEqual(p.returncode, 0, p.err)

    def delivered(self, watcher, serial, version, timeout=20):
        """The envelope serve publishes for serial at version (whatever key it is sealed to),
        as any bootstrap login sees it."""
        def ok(m):
            try:
                d = json.loads(m.payload)
            except ValueError:
                return False
            return d.get("status") == "accepted" and d.get("cred_version") == version
        m = wait_message(watcher, f"et/v1/{serial}/register/reply", timeout, ok)
        self.assertIsNotNone(m, self.c.serve_log_text()[-3000:])
        return base64.b64decode(json.loads(m.payload)["envelope"])

    def assert_opens_only_with(self, blob, owner, attacker):
        info = envelope_info(blob)
        self.assertEqual(info["fingerprint"], owner.fingerprint,
                         "the envelope is sealed to another key than the one the operator saw")
        creds = json.loads(open_envelope(owner.key, owner.serial, owner.fingerprint, blob))
        # the attacker's private key cannot unwrap it, whatever the header says
        with self.assertRaises(ValueError):
            open_envelope(attacker.key, attacker.serial, info["fingerprint"], blob)
        # and nothing sealed to the attacker's key is ever published
        self.assertIsNone(attacker.wait_reply(self.c, status="accepted", timeout=2))
        return creds

    def watcher(self, serial):
        """A bootstrap login of its own (not the device's client id, which every registration
        below reuses) that sees what is published on serial's reply topic."""
        w = self.c.bootstrap(f"{serial}-watch")
        self.assertTrue(subscribe_granted(w, f"et/v1/{serial}/register/reply"))
        self.addCleanup(w.disconnect)
        self.addCleanup(w.loop_stop)
        return w

    def audit(self, serial):
        return self.c.cli("audit", serial, "--json", "--limit", "100000", json_out=True)

    def activated(self, serial):
        """Activates serial and waits until serve has looked at it (sync_pending false)."""
        self.assertEqual(self.c.cli("activate", serial).returncode, 0)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.c.device(serial)["sync_pending"]:
            time.sleep(0.05)
        self.assertFalse(self.c.device(serial)["sync_pending"])

    def view(self, serial):
        """What a refused request must leave as it was: the device (but for its refusal
        counters) and its audit log."""
        d = self.c.device(serial)
        d.pop("refusals", None)
        d.pop("audit", None)
        return d, self.audit(serial)

    def refusals(self, serial, reason):
        return self.c.device(serial).get("refusals", {}).get(reason, {}).get("count", 0)

    # --- finding 1 -------------------------------------------------------------------------
    def test_key_substitution_pending(self):
        s = "ADV-SUB"
        self.assertEqual(self.c.cli("activate", s).returncode, 0)
        real, thief = SoftDevice(s), SoftDevice(s)
        self.assertEqual(real.register(self.c)["status"], "pending")
        seen = self.operator_sees(s)
        self.assertEqual(seen, [real.fingerprint])
        r = thief.register(self.c)
        self.assertEqual(r["status"], "pending")
        self.assertNotIn("envelope", r)
        if NEW:
            # pending shows both keys, with arrival times, flagged; so do show and list --json
            pend = {d["serial"]: d for d in self.c.cli("pending", "--json", json_out=True)}[s]
            self.assertEqual([k["fingerprint"] for k in pend["candidates"]],
                             [real.fingerprint, thief.fingerprint])
            self.assertTrue(pend["key_conflict"])
            self.assertNotIn("fingerprint", pend)  # no key a plain accept would bind to
            for k in pend["candidates"]:
                self.assertGreater(k["first_seen"], 0)
                self.assertEqual(k["seen_count"], 1)
            listed = {d["serial"]: d for d in self.c.cli("list", "--json", json_out=True)}[s]
            self.assertTrue(listed["key_conflict"])
            text = self.c.cli("pending").out
            self.assertIn(real.fingerprint, text)
            self.assertIn(thief.fingerprint, text)
            self.assertIn("WARNING", text)
            self.assertIn("key-conflict", [a["action"] for a in self.audit(s)])
            # a --key that names no candidate, or a too short prefix, is refused
            self.assertEqual(self.c.cli("accept", s, "--key", "0" * 64).returncode,
                             EC_KEY_CHOICE)
            self.assertEqual(self.c.cli("accept", s, "--key", real.fingerprint[:8]).returncode,
                             8)
            self.assertEqual(self.c.device(s)["state"], "pending")
        w = self.watcher(s)
        self.operator_accepts(s, seen[0])
        creds = self.assert_opens_only_with(self.delivered(w, s, 1), real, thief)
        # the real device logs in; the attacker has no password to try
        cl = self.c.mqtt(creds["username"], creds["password"], creds["client_id"])
        cl.loop_stop()
        cl.disconnect()
        with self.assertRaises(ConnectionRefusedError):
            self.c.mqtt(s, "guess-" + os.urandom(8).hex(), s)
        if NEW:
            d = self.c.device(s)
            self.assertEqual(d["fingerprint"], real.fingerprint)
            self.assertEqual(d["candidates"], [])
            acc = [a for a in self.audit(s) if a["action"] == "accept"]
            self.assertIn(real.fingerprint, acc[-1]["detail"])
            self.assertIn("discarded " + thief.fingerprint[:16], acc[-1]["detail"])

    def test_key_substitution_rekey(self):
        """An accepted device: the genuine new key (a replaced TPM) K3 is what the operator
        saw; the attacker's K2 arrives after it. Accepting delivers to K3 only."""
        s = "ADV-RK"
        self.assertEqual(self.c.cli("activate", s).returncode, 0)
        old = SoftDevice(s)
        self.assertEqual(old.register(self.c)["status"], "pending")
        w = self.watcher(s)
        self.assertEqual(self.c.cli("accept", s).returncode, 0)
        self.delivered(w, s, 1)
        new, thief = SoftDevice(s), SoftDevice(s)
        self.assertEqual(new.register(self.c)["reason"], "rekey")
        seen = self.operator_sees(s)
        self.assertEqual(seen, [new.fingerprint])
        # asserted at the end, so that old builds also show the core failure below
        pending_shows_rekey = new.fingerprint in self.c.cli("pending").out
        self.assertEqual(thief.register(self.c)["reason"], "rekey")
        if NEW:
            self.assertEqual(self.operator_sees(s), [new.fingerprint, thief.fingerprint])
            # repeated requests of a known candidate add no audit row
            n = len(self.audit(s))
            for _ in range(3):
                self.assertEqual(thief.register(self.c)["reason"], "rekey")
            self.assertEqual(len(self.audit(s)), n)
            self.assertEqual(self.c.device(s)["candidates"][1]["seen_count"], 4)
        # the old credentials stay valid meanwhile
        self.assertEqual(old.register(self.c, status="accepted")["cred_version"], 1)
        self.operator_accepts(s, seen[0])
        self.assert_opens_only_with(self.delivered(w, s, 2), new, thief)
        self.assertTrue(pending_shows_rekey, "pending does not show the re-key fingerprint")

    def test_auto_accept_two_keys(self):
        """serve --auto-accept takes a serial's only key; a serial with two keys waits for the
        operator."""
        two, one = "ADV-AUTO2", "ADV-AUTO1"
        self.assertEqual(self.c.cli("activate", two, one).returncode, 0)
        real, thief, lone = SoftDevice(two), SoftDevice(two), SoftDevice(one)
        self.assertEqual(real.register(self.c)["status"], "pending")
        self.assertEqual(thief.register(self.c)["status"], "pending")
        self.assertEqual(lone.register(self.c)["status"], "pending")
        self.restart_serve(auto_accept=True)
        try:
            for dev in (thief, real):
                r = dev.register(self.c)
                self.assertEqual(r["status"], "pending", r)
                self.assertNotIn("envelope", r)
            self.assertEqual(self.c.device(two)["state"], "pending")
            self.assertNotIn(two, self.c.device_logins())
            self.assertIsNone(thief.wait_reply(self.c, status="accepted", timeout=2))
            # the serial with one key is accepted at its next request
            r = lone.register(self.c, status="accepted")
            self.assertIsNotNone(r, self.c.serve_log_text()[-2000:])
            self.assertEqual(lone.open(r["envelope"])["username"], one)
        finally:
            self.restart_serve()

    # --- finding 6 -------------------------------------------------------------------------
    def test_rekey_flood(self):
        """Thousands of re-key requests with many keys: at most --max-key-candidates keys are
        kept, the audit log grows by at most that many rows, the rest is counted."""
        s = "ADV-FLOOD"
        self.assertEqual(self.c.cli("activate", s).returncode, 0)
        dev = SoftDevice(s)
        self.assertEqual(dev.register(self.c)["status"], "pending")
        self.assertEqual(self.c.cli("accept", s).returncode, 0)
        self.assertIsNotNone(dev.wait_reply(self.c, status="accepted"))
        audit_before = len(self.audit(s))
        keys = [SoftDevice(s) for _ in range(12)]
        reqs = [k.request() for k in keys]
        boot = keys[0].connect_bootstrap(self.c)
        try:
            for i in range(600):
                boot.publish(f"et/v1/{s}/register", reqs[i % len(reqs)], qos=1)
            # answered after all the others (slow under ASan: each request checks a key)
            last = keys[0].register(self.c, client=boot, timeout=180)
            self.assertIsNotNone(last)
        finally:
            boot.loop_stop()
            boot.disconnect()
        added = len(self.audit(s)) - audit_before
        self.assertLessEqual(added, 4, "audit rows per device must stay bounded")
        d = self.c.device(s)
        self.assertEqual(d["fingerprint"], dev.fingerprint)  # the accepted key is untouched
        self.assertEqual(len(d["candidates"]), 4)
        self.assertGreater(self.refusals(s, "rekey-limit"), 0)
        # the flood's keys get nothing; the device's own key still gets its envelope
        self.assertEqual(dev.register(self.c, status="accepted")["cred_version"], 1)
        for k in keys:
            self.assertIsNone(k.wait_reply(self.c, status="accepted", timeout=0.2))
        # after the operator decides, the slots are free again
        self.assertEqual(self.c.cli("reject", s).returncode, 0)
        self.assertEqual(self.c.device(s)["candidates"], [])

    @unittest.skipUnless(NEW, "needs serve --key-candidate-interval (not in old builds)")
    def test_rekey_rate_limit(self):
        s = "ADV-RATE"
        self.restart_serve(extra=["--key-candidate-interval", "3600", "--max-key-candidates",
                                  "2"])
        try:
            self.assertEqual(self.c.cli("activate", s).returncode, 0)
            a, b = SoftDevice(s), SoftDevice(s)
            self.assertEqual(a.register(self.c)["status"], "pending")
            r = b.register(self.c)
            self.assertEqual(r["status"], "refused")
            self.assertIn("3600 s", r["reason"])
            self.assertEqual(self.operator_sees(s), [a.fingerprint])
            self.assertEqual(self.refusals(s, "rekey-limit"), 1)
            self.assertEqual(a.register(self.c)["status"], "pending")  # known key: fine
        finally:
            self.restart_serve()

    # --- finding 17 and the refusals that held before ---------------------------------------
    def odd_pems(self):
        good = SoftDevice("x").key.public_key()
        n = good.public_numbers().n
        spki = spki_pem(n)
        pkcs1 = good.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.PKCS1).decode()
        return {
            "even modulus": spki_pem(n - 1),
            "2^2048-1": spki_pem(2 ** 2048 - 1),
            "modulus with factor 3": spki_pem(3 * (2 ** 2046 + 1)),
            "exponent 3": spki_pem(n, 3),
            "2056-bit modulus": spki_pem(2 ** 2055 + 1),
            "5120-bit modulus": spki_pem(2 ** 5119 + 1),
            "PKCS#1 RSA PUBLIC KEY": pkcs1,
            "trailing garbage": spki + "garbage\n",
            "two keys": spki + spki_pem(SoftDevice("y").key.public_key().public_numbers().n),
            "text before the key": "hello\n" + spki,
        }

    def test_odd_keys_refused(self):
        s = "ADV-ODD"
        self.activated(s)
        dev = SoftDevice(s)
        before = self.view(s)
        boot = dev.connect_bootstrap(self.c)
        try:
            for what, pem in self.odd_pems().items():
                req = dict(json.loads(dev.request()), pubkey_pem=pem)
                del req["fingerprint"]
                r = dev.register(self.c, payload=json.dumps(req), client=boot, status=None)
                self.assertIsNotNone(r, what)
                self.assertEqual(r["status"], "refused", f"{what}: {r}")
                self.assertIn("unacceptable public key", r["reason"], what)
                self.assertNotIn("envelope", r)
        finally:
            boot.loop_stop()
            boot.disconnect()
        self.assertEqual(self.view(s), before)  # nothing stored
        self.assertEqual(self.c.device(s)["state"], "activated")
        if NEW:
            self.assertEqual(self.refusals(s, "register-invalid"), len(self.odd_pems()))
        # the serial still works for a proper key
        self.assertEqual(dev.register(self.c)["status"], "pending")

    def test_prime_modulus_not_accepted(self):
        """A prime modulus passes the per-request checks; the operator's accept runs the full
        SP 800-56B check and refuses it: nothing is sealed to a key anyone can invert."""
        s = "ADV-PRIME"
        self.assertEqual(self.c.cli("activate", s).returncode, 0)
        p = run(["openssl", "prime", "-generate", "-bits", "2048", "-hex"])
        self.assertEqual(p.returncode, 0, p.err)
        dev = SoftDevice(s)
        req = dict(json.loads(dev.request()), pubkey_pem=spki_pem(int(p.out.strip(), 16)))
        del req["fingerprint"]
        r = dev.register(self.c, payload=json.dumps(req))
        self.assertIn(r["status"], ("pending", "refused"), r)
        w = self.watcher(s)
        if r["status"] == "pending":
            a = self.c.cli("accept", s)
            self.assertEqual(a.returncode, 8, a.err)
            self.assertIn("SP 800-56B", a.err)
            self.assertEqual(self.c.device(s)["state"], "pending")
        self.assertIsNone(wait_message(w, f"et/v1/{s}/register/reply", 2,
                                       lambda m: b'"accepted"' in m.payload))
        self.assertNotIn(s, self.c.device_logins())

    def test_hostile_registrations_refused(self):
        """The bad requests tests/cloud/test_cloud_badinput.py covers, from the attacker's
        side: refused, counted, nothing stored, serve unharmed."""
        s = "ADV-BAD"
        self.activated(s)
        dev = SoftDevice(s)
        cases = bad_cases(dev, SoftDevice(s, bits=1024))
        cases["deep nesting"] = b"[" * 8000 + b"]" * 8000
        before = self.view(s)
        boot = dev.connect_bootstrap(self.c)
        try:
            for reason, payload in cases.items():
                r = dev.register(self.c, payload=payload, client=boot, status="refused")
                self.assertIsNotNone(r, reason)
                self.assertNotIn("envelope", r)
                self.assertIsNone(self.c.serves[0].poll(), "serve died")
        finally:
            boot.loop_stop()
            boot.disconnect()
        self.assertEqual(self.view(s), before)
        if NEW:
            self.assertEqual(self.refusals(s, "register-invalid"), len(cases))

    # --- state carried over from before candidate keys --------------------------------------
    @unittest.skipUnless(NEW, "migration 6 is not in old builds")
    def test_migration_keeps_keys_unpinned(self):
        """A registry from before schema 6: a pending device's key and a re-key request become
        candidate keys; nothing of them is pinned, so accept still needs the operator's pick."""
        if self.c.pg:
            self.c.pg.psql("CREATE DATABASE mig", db="postgres")
            url = self.c.db_url.rsplit("/", 1)[0] + "/mig"

            def sql(q):
                self.c.pg.psql(q, db="mig")
        else:
            url = self.c.db_url + ".mig"

            def sql(q):
                import sqlite3
                con = sqlite3.connect(url)
                con.execute(q)
                con.commit()
                con.close()

        def cli(*args):
            return run([binary("edgetrust-cloud")] + list(args) + ["--db", url])
        self.assertEqual(cli("activate", "MIG-P", "MIG-A").returncode, 0)
        k = [SoftDevice("MIG") for _ in range(4)]
        sql("DROP TABLE key_candidates")
        sql("UPDATE schema_version SET version = 5")
        for serial, state, pin, rekey in (("MIG-P", "pending", k[0], k[1]),
                                          ("MIG-A", "accepted", k[2], k[3])):
            sql(f"UPDATE devices SET state = '{state}', pubkey_pem = '{pin.pubkey_pem}',"
                f" fingerprint = '{pin.fingerprint}', rekey_pem = '{rekey.pubkey_pem}',"
                f" rekey_fingerprint = '{rekey.fingerprint.upper()}' WHERE serial = '{serial}'")
        p = cli("pending", "--json")
        self.assertEqual(p.returncode, 0, p.err)
        pend = {d["serial"]: d for d in json.loads(p.out)}
        self.assertEqual([c["fingerprint"] for c in pend["MIG-P"]["candidates"]],
                         [k[0].fingerprint, k[1].fingerprint])
        self.assertNotIn("fingerprint", pend["MIG-P"])
        self.assertEqual(pend["MIG-A"]["fingerprint"], k[2].fingerprint)
        self.assertEqual([c["fingerprint"] for c in pend["MIG-A"]["candidates"]],
                         [k[3].fingerprint])
        self.assertEqual(cli("accept", "MIG-P").returncode, EC_KEY_CHOICE)
        self.assertEqual(cli("accept", "MIG-P", "--key", k[0].fingerprint).returncode, 0)


@unittest.skipUnless(advtest.BACKEND == "postgresql",
                     "several serve instances share one PostgreSQL database only")
class ConcurrentInstancesTest(unittest.TestCase):
    def test_flood_two_instances(self):
        """A re-key flood split between two serve instances (shared subscription): the limit
        holds exactly (the device row lock serialises them) and every request is accounted
        for: seen by a candidate or counted as a refusal."""
        s, total = "ADV-MULTI", 400
        with CloudStack(db="postgresql", pg_fsync=False, instances=2, serve_args=FAST) as c:
            self.assertEqual(c.cli("activate", s).returncode, 0)
            dev = SoftDevice(s)
            self.assertEqual(dev.register(c)["status"], "pending")
            self.assertEqual(c.cli("accept", s).returncode, 0)
            self.assertIsNotNone(dev.wait_reply(c, status="accepted"))
            audit_before = len(c.cli("audit", s, "--json", json_out=True))
            keys = [SoftDevice(s) for _ in range(12)]
            reqs = [k.request() for k in keys]
            boot = c.bootstrap(f"{s}-flood")
            try:
                for i in range(total):
                    boot.publish(f"et/v1/{s}/register", reqs[i % len(reqs)], qos=1)
            finally:
                boot.loop_stop()
                boot.disconnect()
            deadline, seen = time.monotonic() + 90, -1
            while time.monotonic() < deadline and seen != total:
                d = c.device(s)
                seen = sum(k["seen_count"] for k in d.get("candidates", [])) + \
                    d.get("refusals", {}).get("rekey-limit", {}).get("count", 0)
                time.sleep(0.2)
            self.assertEqual(seen, total, c.serve_log_text()[-3000:])
            self.assertEqual(len(d["candidates"]), 4)
            self.assertEqual(d["fingerprint"], dev.fingerprint)
            self.assertLessEqual(len(c.cli("audit", s, "--json", json_out=True)) - audit_before, 4)
            self.assertEqual(c.device_logins().get(s), True)


if __name__ == "__main__":
    main()
