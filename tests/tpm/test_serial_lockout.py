"""Dictionary-attack lockout: the serial stays readable (ownerread is DA-exempt), and when it
cannot be (owner password set) the message says why and how to recover."""
import json

import tpmtest


class Lockout(tpmtest.TpmTestCase):
    def setUp(self):
        super().setUp()
        self.et("serial", "provision", "DEV-0001")
        # A DA-protected index with a password, then wrong passwords until lockout.
        self.tools("tpm2_nvdefine", "0x1000001", "-s", "8", "-a", "authread|authwrite",
                   "-p", "secret")
        st = json.loads(self.et("status", "--json").out)
        for _ in range(st["lockout"]["max_tries"] + 1):
            self.tools("tpm2_nvread", "0x1000001", "-P", "wrong", "-s", "8", check=False)
        st = json.loads(self.et("status", "--json").out)
        self.assertTrue(st["lockout"]["in_lockout"], st["lockout"])
        self.assertEqual([m["item"] for m in st["missing"]][0], "lockout")

    def test_serial_readable_in_lockout(self):
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")
        self.et("serial", "provision", "DEV-0001")
        self.assertIn("LOCKED OUT", self.et("status").out)

    def test_owner_password_and_lockout(self):
        self.tools("tpm2_changeauth", "-c", "o", "ownerpw")
        p = self.et("serial", "read", expect=self.code("CLI_EXIT_TPM_LOCKOUT"))
        self.assertIn("0x921", p.err)
        self.assertIn("tpm2_dictionarylockout", p.err)
        self.assertIn("edgetrust status", p.err)
        self.assertRegex(p.err, r"failures counted, limit \d+, one forgiven every \d+ s")
        self.assertRegex(p.err, r"work again in about \d+ s")


if __name__ == "__main__":
    tpmtest.main()
