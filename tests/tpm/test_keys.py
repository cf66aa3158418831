"""Device key on a real (software) TPM: idempotent creation, PEM export byte-identical to
tpm2_readpublic, refusal of handles that hold something else, nothing left loaded."""
import hashlib
import json
import subprocess
import unittest

import etfix
from keyfix import TpmCase, EXIT_KEY_ABSENT, EXIT_KEY_TYPE, EXIT_INVALID


def der_fingerprint(pem_path):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pem_path, "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE).stdout
    return hashlib.sha256(der).hexdigest()


class KeyCreate(TpmCase, unittest.TestCase):
    def setUp(self):
        self.start_tpm()

    def tearDown(self):
        self.stop_tpm()

    def test_create_is_idempotent(self):
        c0 = self.tpm.count_commands()
        p = self.et("key", "create")
        self.assertEqual(p.returncode, 0, p.err)
        # ReadPublic x2 (both handles empty), CreatePrimary, EvictControl, FlushContext,
        # Create, Load, EvictControl, FlushContext, and ReadPublic for the fingerprint
        self.assertEqual(self.tpm.count_commands() - c0, 10)
        word, handle, fpr = p.out.split()
        self.assertEqual((word, handle), ("created", "0x81000002"))
        self.assert_tpm_clean()
        c0 = self.tpm.count_commands()
        p = self.et("key", "create")
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.out.split(), ["present", "0x81000002", fpr])
        # a rerun only looks: ReadPublic of the key, and one more for the fingerprint (the
        # public comes from ESAPI's metadata, not a second ReadPublic)
        self.assertEqual(self.tpm.count_commands() - c0, 2)
        # exactly the SRK and the device key, no second key anywhere
        self.assertEqual(self.handles("handles-persistent"), ["0x81000001", "0x81000002"])
        self.assert_tpm_clean()
        # the SRK follows the TCG template: ECC P-256, restricted decrypt, noDA
        srk = self.tools("tpm2_readpublic", "-c", "0x81000001").out
        self.assertIn("ecc", srk.lower())
        for attr in ("fixedtpm", "fixedparent", "sensitivedataorigin", "userwithauth",
                     "noda", "restricted", "decrypt"):
            self.assertIn(attr, srk)
        self.assertIn("aes", srk)
        key = self.tools("tpm2_readpublic", "-c", "0x81000002").out
        self.assertIn("rsa", key)
        self.assertIn("decrypt", key)
        self.assertNotIn("|sign", key)
        self.assertIn("noda", key)

    def test_srk_is_the_tcg_template(self):
        """Primaries are deterministic: tpm2-tools given the TCG provisioning-guidance ECC SRK
        template (unique = 64 zero bytes, on stdin: tpm2-tools 5.4 ignores -u FILE) derives
        exactly our SRK."""
        self.assertEqual(self.et("key", "create").returncode, 0)
        self.tools("tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb",
                   "-a", "decrypt|restricted|fixedtpm|fixedparent|sensitivedataorigin|"
                   "userwithauth|noda", "-u", "-", "-c", "tcg.ctx", input=b"\0" * 64)

        def name(ctx):
            out = self.tools("tpm2_readpublic", "-c", ctx).out
            return next(l.split()[1] for l in out.splitlines() if l.startswith("name:"))
        self.assertEqual(name("0x81000001"), name("tcg.ctx"))

    def test_public_pem_identical_to_tpm2_readpublic(self):
        self.assertEqual(self.et("key", "create").returncode, 0)
        ours, theirs = self.p("our.pem"), self.p("tools.pem")
        c0 = self.tpm.count_commands()
        p = self.et("key", "public", "--out", ours)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(self.tpm.count_commands() - c0, 1, "one ReadPublic")
        self.assertEqual(p.stdout, b"")
        self.tools("tpm2_readpublic", "-c", "0x81000002", "-o", theirs, "-f", "pem")
        with open(ours, "rb") as a, open(theirs, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertIn(der_fingerprint(theirs), p.err)
        # stdout form and JSON form carry the same PEM and fingerprint
        p = self.et("key", "public")
        with open(theirs) as f:
            self.assertEqual(p.out, f.read())
        j = json.loads(self.et("--json", "key", "public").out)
        self.assertEqual(j["fingerprint"], der_fingerprint(theirs))
        with open(theirs) as f:
            self.assertEqual(j["pem"], f.read())
        self.assertEqual(j["handle"], "0x81000002")
        self.assert_tpm_clean()

    def test_empty_handle(self):
        p = self.et("key", "public", "--handle", "0x81000010")
        self.assert_fails(p, EXIT_KEY_ABSENT, "0x81000010")
        p = self.et("creds", "open", "--raw", "pkcs1", "--handle", "0x81000010",
                    input=b"\0" * 256)
        self.assert_fails(p, EXIT_KEY_ABSENT, "0x81000010")
        self.assert_tpm_clean()

    def test_handle_outside_persistent_range(self):
        p = self.et("key", "create", "--handle", "0x01000000")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"")

    def test_wrong_key_types_refused(self):
        # an ECC key and a sign-only RSA key, persisted by tpm2-tools
        self.tools("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", "ecc.ctx")
        self.tools("tpm2_evictcontrol", "-c", "ecc.ctx", "0x81000011")
        self.tools("tpm2_createprimary", "-C", "o", "-c", "prim.ctx")
        self.tools("tpm2_create", "-C", "prim.ctx", "-G", "rsa2048",
                   "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
                   "-u", "s.pub", "-r", "s.priv")
        self.tools("tpm2_load", "-C", "prim.ctx", "-u", "s.pub", "-r", "s.priv", "-c", "s.ctx")
        self.tools("tpm2_evictcontrol", "-c", "s.ctx", "0x81000012")
        for handle, what in (("0x81000011", "ECC"), ("0x81000012", "signing")):
            p = self.et("key", "create", "--handle", handle)
            self.assert_fails(p, EXIT_KEY_TYPE, handle, what)
            p = self.et("creds", "open", "--raw", "pkcs1", "--handle", handle,
                        input=b"\0" * 256)
            self.assert_fails(p, EXIT_KEY_TYPE, handle)
            self.assert_tpm_clean()
        p = self.et("key", "public", "--handle", "0x81000011")
        self.assert_fails(p, EXIT_KEY_TYPE, "ECC")
        # the SRK handle cannot be used for the device key
        p = self.et("key", "create", "--handle", "0x81000001")
        self.assert_fails(p, EXIT_INVALID, "0x81000001")
        # a foreign object at the SRK handle is reported, not replaced
        self.tools("tpm2_evictcontrol", "-c", "0x81000012")
        self.tools("tpm2_evictcontrol", "-c", "s.ctx", "0x81000001")
        p = self.et("key", "create")
        self.assert_fails(p, EXIT_KEY_TYPE, "0x81000001")
        self.assert_tpm_clean()


if __name__ == "__main__":
    etfix.main()
