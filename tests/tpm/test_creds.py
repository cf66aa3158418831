"""Credentials on a real (software) TPM: the article's bare openssl ciphertexts in both
directions (PKCS#1 v1.5 and OAEP-SHA256), the article's own key, and credential envelopes
sealed by the CLI and opened in the TPM, with every kind of bad envelope refused cleanly."""
import os
import stat
import subprocess
import unittest

import etfix
from keyfix import (TpmCase, EXIT_CRYPTO, EXIT_ENVELOPE_AUTH, EXIT_ENVELOPE_FOREIGN,
                    EXIT_ENVELOPE_FORMAT, EXIT_PEM, EXIT_INVALID)

SECRET = b"mqtt-user=dev-0001\nmqtt-password=Zx9!q-long-random-secret\n"
SERIAL = "CM4-0001"


class RawInterop(TpmCase, unittest.TestCase):
    """The article's format: one RSA block from `openssl pkeyutl -encrypt`."""

    @classmethod
    def setUpClass(cls):
        cls.start_tpm(cls)
        p = cls.et(cls, "key", "create")
        assert p.returncode == 0, p.err
        assert cls.et(cls, "key", "public", "--out", cls.p(cls, "our.pem")).returncode == 0
        with open(cls.p(cls, "secret.txt"), "wb") as f:
            f.write(SECRET)

    @classmethod
    def tearDownClass(cls):
        cls.stop_tpm(cls)

    def test_pkcs1_article_command(self):
        # exactly the article's command: default padding (PKCS#1 v1.5)
        self.tools("openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", "our.pem",
                   "-in", "secret.txt", "-out", "encryptedFile")
        p = self.et("creds", "open", "--raw", "pkcs1", "--in", self.p("encryptedFile"))
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)
        self.assert_tpm_clean()
        # and stdin -> --out file, written 0600
        with open(self.p("encryptedFile"), "rb") as f:
            ct = f.read()
        out = self.p("decrypted")
        p = self.et("creds", "open", "--raw", "pkcs1", "--out", out, input=ct)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, b"")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), SECRET)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)

    def test_oaep(self):
        self.openssl_encrypt(self.p("our.pem"), self.p("secret.txt"), self.p("enc.oaep"),
                             oaep=True)
        p = self.et("creds", "open", "--raw", "oaep", "--in", self.p("enc.oaep"))
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)
        # the wrong mode is refused with a hint at the other one, nothing on stdout
        p = self.et("creds", "open", "--raw", "pkcs1", "--in", self.p("enc.oaep"))
        self.assert_fails(p, EXIT_CRYPTO, "--raw oaep")
        self.assert_tpm_clean()

    def test_plaintext_never_crosses_the_bus_in_clear(self):
        self.openssl_encrypt(self.p("our.pem"), self.p("secret.txt"), self.p("enc.bus"))
        before = len(self.bus())
        p = self.et("creds", "open", "--raw", "pkcs1", "--in", self.p("enc.bus"))
        self.assertEqual(p.stdout, SECRET)
        ours = self.bus()[before:]
        self.assertEqual(len(ours), 6, "3 commands and their responses")
        self.assertFalse(any(SECRET[:16] in m for m in ours),
                         "the decrypted secret crossed the bus in clear")
        # the check can fail: tpm2_rsadecrypt (no session encryption) shows it in clear
        before = len(self.bus())
        self.tools("tpm2_rsadecrypt", "-c", "0x81000002", "-o", "dec.bus", "enc.bus")
        self.assertTrue(any(SECRET[:16] in m for m in self.bus()[before:]))

    def test_wrong_block_size(self):
        p = self.et("creds", "open", "--raw", "pkcs1", input=b"x" * 100)
        self.assert_fails(p, EXIT_INVALID, "256")
        self.assert_tpm_clean()

    def test_tpm2_rsadecrypt_opens_ciphertext_for_our_key(self):
        # interop the other way: the article's decrypt command on our key
        self.openssl_encrypt(self.p("our.pem"), self.p("secret.txt"), self.p("enc.pk1"))
        self.tools("tpm2_rsadecrypt", "-c", "0x81000002", "-o", "decryptedFile", "enc.pk1")
        with open(self.p("decryptedFile"), "rb") as f:
            self.assertEqual(f.read(), SECRET)


class ArticleKey(TpmCase, unittest.TestCase):
    """A key made by the article's exact commands, on a TPM without our SRK."""

    def setUp(self):
        self.start_tpm()

    def tearDown(self):
        self.stop_tpm()

    def test_article_key_opens(self):
        pem = self.article_key("0x81000000")
        with open(self.p("secret.txt"), "wb") as f:
            f.write(SECRET)
        self.tools("openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", "testkey.pub",
                   "-in", "secret.txt", "-out", "encryptedFile")
        p = self.et("creds", "open", "--raw", "pkcs1", "--handle", "0x81000000",
                    "--in", self.p("encryptedFile"))
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)
        self.assert_tpm_clean()
        # our export of the article's key is the article's PEM
        p = self.et("key", "public", "--handle", "0x81000000")
        with open(pem) as f:
            self.assertEqual(p.out, f.read())
        # the article's key signs too: it is not taken as our device key
        p = self.et("key", "create", "--handle", "0x81000000")
        self.assertEqual(p.returncode, 31, p.err)


class Boot(TpmCase, unittest.TestCase):
    """The boot path: serial from NV, envelope opened in the TPM, within its command budget."""

    def setUp(self):
        self.start_tpm()

    def tearDown(self):
        self.stop_tpm()

    def test_boot_with_serial_from_nv(self):
        self.assertEqual(self.et("serial", "provision", SERIAL).returncode, 0)
        self.assertEqual(self.et("key", "create").returncode, 0)
        self.assertEqual(self.et("key", "public", "--out", self.p("dev.pem")).returncode, 0)
        p = self.et("creds", "seal", "--pubkey", self.p("dev.pem"), "--serial", SERIAL,
                    "--out", self.p("creds.env"), input=SECRET)
        self.assertEqual(p.returncode, 0, p.err)
        c0 = self.tpm.count_commands()
        p = self.et("creds", "open", "--in", self.p("creds.env"))
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)
        c1 = self.tpm.count_commands()
        # the two-call boot: serial read, then creds open with that serial
        serial = self.et("serial", "read").out.strip()
        self.assertEqual(serial, SERIAL)
        c2 = self.tpm.count_commands()
        p = self.et("creds", "open", "--serial", serial, "--in", self.p("creds.env"))
        self.assertEqual(p.stdout, SECRET)
        c3 = self.tpm.count_commands()
        # ReadPublic of the key, StartAuthSession (salted), RSA_Decrypt
        self.assertEqual(c3 - c2, 3, "creds open with --serial")
        self.assertLessEqual(c3 - c1, 7, "serial read + creds open")
        self.assertLessEqual(c1 - c0, 7, "creds open reading the serial itself")
        self.assert_tpm_clean()
        # an envelope for this device with another serial in NV is foreign
        p = self.et("creds", "seal", "--pubkey", self.p("dev.pem"), "--serial", "CM4-9999",
                    input=SECRET)
        self.assert_fails(self.et("creds", "open", input=p.stdout), EXIT_ENVELOPE_FOREIGN,
                          "CM4-9999")


class Envelope(TpmCase, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_tpm(cls)
        assert cls.et(cls, "key", "create").returncode == 0
        assert cls.et(cls, "key", "public", "--out", cls.p(cls, "dev.pem")).returncode == 0
        # another device's key (software), and a too-small key
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", cls.p(cls, "other.key")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", cls.p(cls, "other.key"), "-pubout", "-out",
                        cls.p(cls, "other.pem")], check=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:1024", "-out", cls.p(cls, "small.key")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", cls.p(cls, "small.key"), "-pubout", "-out",
                        cls.p(cls, "small.pem")], check=True)
        with open(cls.p(cls, "creds.txt"), "wb") as f:
            f.write(SECRET)

    @classmethod
    def tearDownClass(cls):
        cls.stop_tpm(cls)

    def seal(self, pem="dev.pem", serial=SERIAL, version="3"):
        p = self.et("creds", "seal", "--pubkey", self.p(pem), "--serial", serial,
                    "--cred-version", version, "--in", self.p("creds.txt"))
        self.assertEqual(p.returncode, 0, p.err)
        return p.stdout

    def open(self, blob, serial=SERIAL):
        return self.et("creds", "open", "--serial", serial, input=blob)

    def test_roundtrip(self):
        blob = self.seal()
        p = self.open(blob)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)
        self.assert_tpm_clean()
        # files: seal --out, open --in/--out (0600)
        env_file, out = self.p("creds.env"), self.p("creds.out")
        p = self.et("creds", "seal", "--pubkey", self.p("dev.pem"), "--serial", SERIAL,
                    "--out", env_file, input=SECRET)
        self.assertEqual(p.returncode, 0, p.err)
        p = self.et("creds", "open", "--serial", SERIAL, "--in", env_file, "--out", out)
        self.assertEqual(p.returncode, 0, p.err)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), SECRET)
        self.assertEqual(stat.S_IMODE(os.stat(out).st_mode), 0o600)
        p = self.et("--json", "creds", "inspect", "--in", env_file)
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(f'"serial":"{SERIAL}"', p.out)

    def test_foreign_serial(self):
        blob = self.seal()
        c0 = self.tpm.count_commands()
        p = self.open(blob, serial="CM4-0002")
        self.assert_fails(p, EXIT_ENVELOPE_FOREIGN, "CM4-0002", SERIAL)
        self.assertEqual(self.tpm.count_commands(), c0, "refused before the TPM")
        self.assert_tpm_clean()

    def test_other_devices_key(self):
        p = self.open(self.seal(pem="other.pem"))
        self.assert_fails(p, EXIT_ENVELOPE_FOREIGN, "key")
        self.assert_tpm_clean()

    def test_truncated(self):
        blob = self.seal()
        for n in (0, 3, 7, 20, 60, 200, len(blob) - 17, len(blob) - 1):
            c0 = self.tpm.count_commands()
            p = self.open(blob[:n])
            self.assert_fails(p, EXIT_ENVELOPE_FORMAT)
            self.assertEqual(self.tpm.count_commands(), c0, "refused before the TPM")
            # also when the serial has to come from NV
            p = self.et("creds", "open", input=blob[:n])
            self.assert_fails(p, EXIT_ENVELOPE_FORMAT)
            self.assertEqual(self.tpm.count_commands(), c0, "refused before the TPM")
        self.assert_fails(self.open(blob + b"\0"), EXIT_ENVELOPE_FORMAT, "after the tag")
        self.assert_tpm_clean()

    def test_altered(self):
        blob = self.seal()
        s = len(SERIAL)
        # wrapped key (unwrapping fails in the TPM), cred version (header is AAD),
        # ciphertext and tag
        for off in (54 + s + 100, 40 + s, len(blob) - 30, len(blob) - 1):
            bad = bytearray(blob)
            bad[off] ^= 0x40
            p = self.open(bytes(bad))
            self.assert_fails(p, EXIT_ENVELOPE_AUTH, "altered")
            self.assert_tpm_clean()
        bad = bytearray(blob)
        bad[0] ^= 1
        self.assert_fails(self.open(bytes(bad)), EXIT_ENVELOPE_FORMAT, "magic")

    def test_bad_inputs_to_seal(self):
        p = self.et("creds", "seal", "--pubkey", self.p("small.pem"), "--serial", SERIAL,
                    input=SECRET)
        self.assert_fails(p, EXIT_PEM, "1024")
        p = self.et("creds", "seal", "--pubkey", self.p("creds.txt"), "--serial", SERIAL,
                    input=SECRET)
        self.assert_fails(p, EXIT_PEM)
        p = self.et("creds", "seal", "--pubkey", self.p("dev.pem"), "--serial", "bad serial!",
                    input=SECRET)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"")


if __name__ == "__main__":
    etfix.main()
