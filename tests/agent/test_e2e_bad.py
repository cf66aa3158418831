"""edgetrustd against bad input: invalid settings from the cloud and from the local operator,
foreign / altered / replayed envelopes (rotation and stored), an unsafe data_dir, a TPM without
a serial. The agent keeps running, says why, and loses nothing."""
import base64
import json
import os
import subprocess
import unittest

import agentfix
import etfix

SERIAL = "SN-BAD-1"


def other_pubkey(tmp):
    key = tmp.join("other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key], check=True, capture_output=True)
    out = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                         capture_output=True)
    return out.stdout.decode()


class Bad(unittest.TestCase):
    def setUp(self):
        agentfix.local_stack(self, SERIAL, 200, provisioned=False)

    def start_registered(self):
        agentfix.provision(self.tpm, SERIAL)
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        return a

    def last_reported(self):
        return self.cloud.reported[-1] if self.cloud.reported else None

    def test_not_provisioned_exits_4(self):
        a = self.agent.start()
        a.proc.wait(30)
        self.assertEqual(a.proc.returncode, 4)
        self.assertIn("edgetrust provision", a.log())

    def test_unsafe_data_dir_exits_6(self):
        agentfix.provision(self.tpm, SERIAL)
        os.chmod(self.agent.data_dir, 0o755)
        a = self.agent.start()
        a.proc.wait(30)
        self.assertEqual(a.proc.returncode, 6)
        self.assertIn("must be 0700", a.log())

    def test_settings_invalid_from_both_sides(self):
        a = self.start_registered()
        # From the cloud: one valid, two invalid keys.
        self.cloud.desired(SERIAL, 1, {"spool.max_records": 5000, "modbus.plc1.poll_ms": 5,
                                       "bogus.key": 1, "modbus.nope.poll_ms": 100})
        rep = agentfix.wait_for(lambda: next((r for r in self.cloud.reported
                                             if r["version"] == 1), None), 20, "report v1")
        self.assertEqual(rep["source"], "cloud")
        self.assertEqual(rep["settings"]["spool.max_records"], 5000)
        self.assertEqual(rep["settings"]["modbus.plc1.poll_ms"], 200)
        self.assertEqual(set(rep["rejected"]), {"modbus.plc1.poll_ms", "bogus.key",
                                                "modbus.nope.poll_ms"})
        # Garbage on the desired topic: refused, the agent keeps running.
        self.cloud.c.publish(f"et/v1/{SERIAL}/settings/desired", b"{not json", qos=1).wait_for_publish()
        a.wait_log("settings from the cloud refused")
        # Locally: invalid values are refused with a reason, valid ones applied.
        r = a.ctl({"op": "set", "settings": {"log_level": "loud"}})
        self.assertFalse(r["ok"])
        self.assertIn("log_level", r["report"]["rejected"])
        # The same through `edgetrust config`.
        cfg = [etfix.binary("edgetrust"), "config"]
        p = etfix.run(cfg + ["set", "spool.batch=0", "--data-dir", a.data_dir])
        self.assertEqual(p.returncode, 3, p.err)
        self.assertIn("spool.batch refused: out of range", p.err)
        p = etfix.run(cfg + ["set", "modbus.plc1.poll_ms=300", "--data-dir", a.data_dir])
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn("modbus.plc1.poll_ms = 300", p.out)
        p = etfix.run(cfg + ["get", "modbus.plc1.poll_ms", "--data-dir", a.data_dir])
        self.assertEqual((p.returncode, p.out), (0, "300\n"), p.err)
        p = etfix.run(cfg + ["list", "--data-dir", self.tmp.join("nowhere")])
        self.assertEqual(p.returncode, 4)
        self.assertIn("is it running", p.err)
        # Earlier refused local changes also produce "local" reports (with poll_ms 200): wait
        # for the one that carries the accepted change, not just any local report.
        def local_300():
            r = self.last_reported()
            if r and r["source"] == "local" and r["settings"].get("modbus.plc1.poll_ms") == 300:
                return r
            return None
        rep = agentfix.wait_for(local_300, 20, "local report with modbus.plc1.poll_ms = 300")
        self.assertEqual(rep["rejected"], {})
        self.assertEqual(a.ctl({"op": "get", "key": "modbus.plc1.poll_ms"})["value"], 300)
        # The retained desired v1, redelivered after a restart, does not undo the local change.
        self.assertEqual(a.stop(), 0)
        a.start()
        a.wait_log("connected to the broker as " + SERIAL)
        self.assertEqual(a.ctl({"op": "get", "key": "modbus.plc1.poll_ms"})["value"], 300)
        # A newer cloud version wins.
        self.cloud.desired(SERIAL, 2, {"modbus.plc1.poll_ms": 250})
        agentfix.wait_for(lambda: a.ctl({"op": "get", "key": "modbus.plc1.poll_ms"})["value"] == 250,
                          20, "cloud v2 applied")
        self.assertIsNone(a.proc.poll())

    def test_envelopes_foreign_altered_replayed(self):
        a = self.start_registered()
        stored = os.path.join(a.data_dir, "credentials.env")
        v1 = open(stored, "rb").read()
        # A valid rotation to version 2 is applied and stored only after the login succeeded.
        self.cloud.rotate(SERIAL, 2)
        a.wait_log("credentials rotated to version 2")
        v2 = open(stored, "rb").read()
        self.assertNotEqual(v1, v2)
        # Replay of version 1 (a genuine old envelope): refused.
        self.cloud.rotate(SERIAL, 1, envelope=v1)
        a.wait_log("not newer than the current 2 (replay?)")
        # Foreign: sealed for another key.
        foreign = self.cloud.envelope(SERIAL, 3, pem=other_pubkey(self.tmp))
        self.cloud.rotate(SERIAL, 3, envelope=foreign)
        a.wait_log("the envelope does not open")
        # Altered: one ciphertext byte flipped.
        alt = bytearray(self.cloud.envelope(SERIAL, 4))
        alt[-20] ^= 1
        self.cloud.rotate(SERIAL, 4, envelope=bytes(alt))
        agentfix.wait_for(lambda: a.log().count("the envelope does not open") >= 2, 20, "altered refused")
        self.assertEqual(open(stored, "rb").read(), v2)
        n = self.cloud.count()
        agentfix.wait_for(lambda: self.cloud.count() > n + 3, 20, "readings keep flowing")
        self.assertEqual(a.stop(), 0)
        # The stored envelope altered on disk: the agent says why and registers again.
        data = bytearray(v2)
        data[-5] ^= 0x40
        with open(stored, "wb") as f:
            f.write(bytes(data))
        a.start()
        a.wait_log("no longer opens")
        a.wait_log("registration accepted")
        a.wait_log("connected to the broker as " + SERIAL)
        # A stored envelope that is a symlink is refused, never followed.
        self.assertEqual(a.stop(), 0)
        os.unlink(stored)
        os.symlink("/etc/hostname", stored)
        a.start()
        a.wait_log("is a symlink; refusing it")
        a.wait_log("connected to the broker as " + SERIAL)
        self.assertFalse(os.path.islink(stored))
        self.assertEqual(self.cloud.conflicts, 0)


if __name__ == "__main__":
    etfix.main()
