"""edgetrust status: what it reports on a fresh TPM and on a provisioned one."""
import hashlib
import json
import subprocess

import tpmtest


class Status(tpmtest.TpmTestCase):
    def test_fresh_tpm(self):
        st = json.loads(self.et("status", "--json").out)
        self.assertEqual(st["tpm"]["manufacturer"], "IBM")  # swtpm identifies as IBM
        self.assertTrue(st["tpm"]["vendor"])
        self.assertRegex(st["tpm"]["firmware"], r"^\d+\.\d+$")
        self.assertGreater(st["tpm"]["spec_revision"], 100)
        self.assertEqual(st["tcti"], self.tpm.tcti)
        self.assertEqual(st["serial"], {"index": "0x01000000", "defined": False,
                                        "present": False, "no_da": None, "value": None})
        self.assertFalse(st["srk"]["present"])
        self.assertFalse(st["key"]["present"])
        self.assertEqual(st["lockout"]["counter"], 0)
        self.assertGreater(st["lockout"]["max_tries"], 0)
        self.assertFalse(st["lockout"]["in_lockout"])
        self.assertFalse(st["owner_auth_set"])
        self.assertEqual(st["handles"], {"transient": 0, "loaded_sessions": 0})
        self.assertFalse(st["ready"])
        self.assertEqual([m["item"] for m in st["missing"]], ["serial", "srk", "key"])
        text = self.et("status").out
        self.assertIn("Ready:          no", text)
        self.assertIn("edgetrust provision --serial", text)

    def test_unwritten_serial(self):
        self.article_define()
        st = json.loads(self.et("status", "--json").out)
        self.assertTrue(st["serial"]["defined"])
        self.assertFalse(st["serial"]["present"])

    def test_provisioned(self):
        reg = json.loads(self.et("provision", "--serial", "DEV-0042").out)
        self.assertEqual(reg["serial"], "DEV-0042")
        # The fingerprint is SHA-256 of the DER SPKI of what tpm2_readpublic exports.
        pem_path = self.tmp.join("key.pem")
        self.tools("tpm2_readpublic", "-c", "0x81000002", "-f", "pem", "-o", pem_path)
        with open(pem_path) as f:
            self.assertEqual(f.read(), reg["pubkey_pem"])
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pem_path, "-outform", "DER"],
                             check=True, stdout=subprocess.PIPE).stdout
        self.assertEqual(reg["fingerprint"], hashlib.sha256(der).hexdigest())
        st = json.loads(self.et("status", "--json").out)
        self.assertTrue(st["ready"], st["missing"])
        self.assertEqual(st["serial"]["value"], "DEV-0042")
        self.assertTrue(st["srk"]["present"])
        self.assertEqual(st["key"], {"handle": "0x81000002", "present": True, "ok": True,
                                     "fingerprint": reg["fingerprint"]})
        # Rerun: same key, same record.
        self.assertEqual(json.loads(self.et("provision", "--serial", "DEV-0042").out), reg)
        self.et("provision", "--serial", "DEV-0043", expect=self.code("CLI_EXIT_NV_MISMATCH"))
        self.assertIn("Ready:          yes", self.et("status").out)


if __name__ == "__main__":
    tpmtest.main()
