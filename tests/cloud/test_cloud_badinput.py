"""Bad registration input against serve (SQLite or PostgreSQL): malformed JSON, oversized
payload, bad PEM, a 1024-bit key, a serial differing from the topic, binary garbage, wrong
fingerprint, wrong version. Each is refused with a logged reason, serve keeps running and the
registry is unchanged; a good request afterwards still works."""
import json
import os
import time
import unittest

import cloudtest
from cloudfix import CloudStack, SoftDevice
from etfix import main

SERIAL = "SN-BAD"


def bad_cases(dev, small):
    """{expected reason substring: payload} of registration requests serve refuses, built from
    a good device's request; shared with the attacker suite (tests/adversary/test_accept.py).
    small is a device with a 1024-bit key."""
    good = json.loads(dev.request())
    serial = dev.serial
    return {
        "malformed JSON": b'{"v": 1, "serial": "' + serial.encode() + b'", ',
        # an oversized request never reaches serve: the broker plugin refuses it
        # (tests/adversary/test_broker.py); serve's own check: unit-cloud-proto
        "unacceptable public key": json.dumps(dict(good, pubkey_pem="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")).encode(),
        "unacceptable public key ": small.request().encode(),
        "differs from the topic": json.dumps(dict(good, serial="SN-OTHER")).encode(),
        "not JSON text": os.urandom(600) + b"\x00",
        "malformed JSON ": b"\xff\xfe garbage \x01\x02" * 10,
        "fingerprint": json.dumps(dict(good, fingerprint="00" * 32)).encode(),
        "protocol version": json.dumps(dict(good, v=2)).encode(),
        "missing \"pubkey_pem\"": json.dumps({"v": 1, "serial": serial}).encode(),
        "JSON": b"[1,2,3]",
    }


def registry_view(c):
    """Devices (without their refusal counters, which refusals are meant to change) and the
    audit log: what a refused request must leave as it was."""
    devs = c.cli("list", "--json", json_out=True)
    for d in devs:
        d.pop("refusals", None)
    return devs, c.cli("audit", "--json", json_out=True)


class BadInputTest(unittest.TestCase):
    def test_bad_input(self):
        with CloudStack(db=cloudtest.BACKEND, pg_fsync=False) as c:
            self.assertEqual(c.cli("activate", SERIAL).returncode, 0)
            dev = SoftDevice(SERIAL)
            small = SoftDevice(SERIAL, bits=1024)
            # serve looks at the activated device (and, with --accounts dynsec, prepares its
            # broker role); let it finish first
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and c.device(SERIAL)["sync_pending"]:
                time.sleep(0.05)
            self.assertFalse(c.device(SERIAL)["sync_pending"])
            self.assertEqual(c.device(SERIAL)["broker"], "none")  # registry accounts: no role
            before = registry_view(c)
            cases = bad_cases(dev, small)
            boot = dev.connect_bootstrap(c)
            try:
                for reason, payload in cases.items():
                    r = dev.register(c, payload=payload, client=boot, status="refused")
                    self.assertIsNotNone(r, reason)
                    self.assertIn(reason.strip(), r["reason"], reason)
                    self.assertIsNone(c.serves[0].poll(), "serve died")
            finally:
                boot.loop_stop()
                boot.disconnect()
            log = c.serve_log_text()
            self.assertGreaterEqual(log.count("refused"), len(cases))
            self.assertIn("1024", log)
            self.assertEqual(registry_view(c), before)
            # each refusal is counted against the serial (docs/edgetrust-cloud.md, refusals)
            rf = c.device(SERIAL)["refusals"]["register-invalid"]["count"]
            self.assertEqual(rf, len(cases))
            # the service still works, and the device can still register
            self.assertEqual(dev.register(c)["status"], "pending")
            self.assertEqual(c.device(SERIAL)["fingerprint"], dev.fingerprint)
        self.assertEqual(c.serve_exit_codes, [0])


if __name__ == "__main__":
    main()
