"""Registration end to end with a device whose key is in a TPM (swtpm), using only the product
tools on the device side: `edgetrust serial provision`, `edgetrust key create`, `edgetrust key
public`; the cloud (SQLite) activates, the device registers with the bootstrap login, the
operator accepts, the envelope is opened inside the TPM (`edgetrust creds open`), and the
device logs in to the broker with what came out. A device with another TPM cannot open it."""
import base64
import json
import os
import unittest

import cloudtest
from cloudfix import CloudStack, SoftDevice
from etfix import Swtpm, TempDir, binary, main, run

SERIAL = "CM4-TPM-0001"


class TpmRegisterTest(unittest.TestCase):
    def test_tpm_device(self):
        tmp = TempDir("et-cloudtpm-")
        with Swtpm() as tpm, Swtpm() as other, CloudStack(db=cloudtest.BACKEND, pg_fsync=False) as c:
            try:
                et = binary("edgetrust")
                run([et, "serial", "provision", SERIAL], env=tpm.env(), check=True)
                run([et, "key", "create"], env=tpm.env(), check=True)
                pub = run([et, "key", "public"], env=tpm.env(), check=True).out
                self.assertIn("BEGIN PUBLIC KEY", pub)
                # the device side of the protocol, with the TPM's public key
                dev = SoftDevice(SERIAL)  # only for its MQTT helpers; its key is not used
                import hashlib
                from cryptography.hazmat.primitives import serialization
                der = serialization.load_pem_public_key(pub.encode()).public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                fpr = hashlib.sha256(der).hexdigest()
                req = json.dumps({"v": 1, "serial": SERIAL, "pubkey_pem": pub,
                                  "fingerprint": fpr, "nonce": os.urandom(16).hex()})
                self.assertEqual(c.cli("activate", SERIAL, "--for", "5m").returncode, 0)
                boot = dev.connect_bootstrap(c)
                try:
                    r = dev.register(c, payload=req, client=boot, status="pending")
                    self.assertIsNotNone(r)
                    self.assertEqual(c.device(SERIAL)["fingerprint"], fpr)
                    self.assertEqual(c.cli("accept", SERIAL).returncode, 0)
                    from cloudfix import wait_message
                    m = wait_message(boot, f"et/v1/{SERIAL}/register/reply", 15,
                                     lambda m: json.loads(m.payload).get("status") == "accepted")
                finally:
                    boot.loop_stop()
                    boot.disconnect()
                self.assertIsNotNone(m, c.serve_log_text()[-2000:])
                env_path = tmp.join("credentials.env")
                with open(env_path, "wb") as f:
                    f.write(base64.b64decode(json.loads(m.payload)["envelope"]))
                p = run([et, "creds", "open", "--in", env_path], env=tpm.env())
                self.assertEqual(p.returncode, 0, p.err)
                creds = json.loads(p.out)
                self.assertEqual(creds["username"], SERIAL)
                cl = c.mqtt(creds["username"], creds["password"], creds["client_id"])
                cl.loop_stop()
                cl.disconnect()
                # another TPM (even with the same serial) cannot open it
                run([et, "serial", "provision", SERIAL], env=other.env(), check=True)
                run([et, "key", "create"], env=other.env(), check=True)
                p = run([et, "creds", "open", "--in", env_path], env=other.env())
                self.assertNotEqual(p.returncode, 0)
                self.assertNotIn(creds["password"], p.out + p.err)
            finally:
                tmp.cleanup()


if __name__ == "__main__":
    main()
