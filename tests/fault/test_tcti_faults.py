"""TPM faults injected under the real CLI (etfault TCTI in front of swtpm): what the operator
sees, the documented exit code, a bounded number of TPM commands (no hot loop), and a TPM that
is left as it was (dictionary-attack counter 0).

Measured with tpm2-tss 3.2.1: ESAPI submits a command at most 5 times while the TPM answers
RETRY, TESTING or YIELDED (4 resends), so up to 4 such answers in a row are invisible and a 5th
makes the command fail with "TPM busy". The library's SAPI paths (NV reads) resend the same way.
"""
import os
import time
import unittest

import faultlib
import etfix

SERIAL = "FLT-0001"
NV_READ = faultlib.CC["NV_Read"]


class TctiFaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = etfix.TempDir("et-fault-")
        cls.tpm = etfix.Swtpm().start()
        cls.f = faultlib.FaultTcti(cls.tmp.path, cls.tpm.tcti)
        p = faultlib.cli(["provision", "--serial", SERIAL], env=cls.tpm.env())
        if p.returncode != 0:
            cls.tearDownClass()
            raise AssertionError(f"provisioning failed ({p.returncode}): {p.err}")

    @classmethod
    def tearDownClass(cls):
        cls.tpm.cleanup()
        cls.tmp.cleanup()

    def setUp(self):
        self.f.rules("")
        self.f.clear_log()

    def tearDown(self):
        self.f.rules("")
        # Whatever was injected, the TPM must not have counted an authorisation failure.
        self.assertEqual(faultlib.getcap_var(self.tpm.env(), "TPM2_PT_LOCKOUT_COUNTER"), 0)
        self.assertEqual(faultlib.handles(self.tpm.env(), "transient"), [])
        self.assertEqual(faultlib.handles(self.tpm.env(), "loaded-session"), [])

    def serial_read(self, timeout=120):
        t0 = time.monotonic()
        p = faultlib.cli(["serial", "read"], env=self.f.env(), timeout=timeout)
        p.elapsed = time.monotonic() - t0
        return p

    def assert_clean_failure(self, p, code, *words):
        """One clear message on stderr, the documented exit code, no sanitizer report."""
        self.assertEqual(p.returncode, faultlib.exit_code(code), p.err)
        self.assertEqual(p.out, "")
        lines = [line for line in p.err.splitlines() if line.strip()]
        self.assertTrue(lines, "no error message")
        self.assertTrue(lines[0].startswith("edgetrust: "), p.err)
        for w in words:
            self.assertIn(w.lower(), p.err.lower())
        self.assertNotIn("Sanitizer", p.err)

    def test_busy_within_esapi_resends_is_invisible(self):
        for name in ("RETRY", "TESTING", "YIELDED"):
            for n in (1, 4):
                with self.subTest(fault=name, count=n):
                    self.f.clear_log()
                    self.f.rules(f"fault={name} cc=NV_Read count={n}")
                    p = self.serial_read()
                    self.assertEqual(p.returncode, 0, p.err)
                    self.assertEqual(p.out.strip(), SERIAL)
                    self.assertEqual(self.f.count(NV_READ, name), n)

    def test_busy_beyond_resends_fails_clearly_without_hot_loop(self):
        for name in ("RETRY", "TESTING", "YIELDED"):
            for n in (5, 6, 50):
                with self.subTest(fault=name, count=n):
                    self.f.clear_log()
                    self.f.rules(f"fault={name} cc=NV_Read count={n}")
                    p = self.serial_read()
                    self.assert_clean_failure(p, "TPM_RETRY", "busy", hex(faultlib.RC[name]))
                    # Bounded: the TPM saw at most the 5 submissions of one command.
                    self.assertLessEqual(self.f.count(NV_READ), 5)
                    self.assertLessEqual(len(self.f.log()), 10)

    def test_nv_rate(self):
        self.f.rules("fault=NV_RATE cc=NV_Read count=1")
        p = self.serial_read()
        self.assert_clean_failure(p, "TPM_RETRY", "busy", "0x920")
        self.assertEqual(self.f.count(NV_READ), 1)

    def test_lockout(self):
        self.f.rules("fault=LOCKOUT cc=NV_Read count=1")
        p = self.serial_read()
        self.assert_clean_failure(p, "TPM_LOCKOUT", "lockout", "0x921")

    def test_object_memory(self):
        self.f.rules("fault=OBJECT_MEMORY cc=NV_Read count=1")
        p = self.serial_read()
        self.assert_clean_failure(p, "TPM_OBJECT_MEMORY", "0x902", "tpm2_flushcontext")

    def test_status_under_faults(self):
        # status asks many questions; one busy answer past the resends must not crash it.
        self.f.rules("fault=RETRY cc=GetCapability count=5")
        p = faultlib.cli(["status"], env=self.f.env())
        self.assertNotIn("Sanitizer", p.err)
        self.assertIn(p.returncode, (0, faultlib.exit_code("TPM_RETRY")), p.err)

    def test_dropped_connection(self):
        self.f.rules("fault=drop cc=NV_Read")
        p = self.serial_read()
        self.assert_clean_failure(p, "TPM_UNREACHABLE", "connection to the tpm failed")

    def test_lost_answer(self):
        # The TPM executed the read but the answer never came back.
        self.f.rules("fault=drop-response cc=NV_Read")
        p = self.serial_read()
        self.assert_clean_failure(p, "TPM_UNREACHABLE", "connection to the tpm failed")

    def test_hang_until_the_link_gives_up(self):
        # A TPM that stops answering: the kernel's TPM driver gives up after its command
        # duration and reports an I/O error; the TCTI does the same after ms.
        self.f.rules("fault=hang cc=NV_Read ms=2000")
        p = self.serial_read(timeout=60)
        self.assertGreaterEqual(p.elapsed, 2.0)
        self.assertIn(p.returncode, (faultlib.exit_code("TPM_UNREACHABLE"),
                                     faultlib.exit_code("TPM_TIMEOUT")), p.err)
        self.assertIn("TPM", p.err)
        self.assertNotIn("Sanitizer", p.err)

    def test_unreachable_tpm(self):
        env = self.f.env()
        env["EDGETRUST_TCTI"] = "etfault:swtpm:host=127.0.0.1,port=1"
        p = faultlib.cli(["serial", "read"], env=env)
        self.assert_clean_failure(p, "TPM_UNREACHABLE", "unreachable")

    def test_owner_password_set(self):
        # With an owner password the serial is read with the index's own (empty) auth. The
        # first such use after a TPM startup is answered TPM_RC_RETRY (the TPM records the
        # dictionary-attack use in NV first), which the SAPI read path must resend.
        env = self.tpm.env()
        etfix.run(["tpm2_changeauth", "-c", "o", "ownerpw"], env=env, check=True)
        try:
            etfix.run(["tpm2_shutdown", "-c"], env=env, check=True)
            etfix.run(["tpm2_startup", "-c"], env=env, check=True)
            p = self.serial_read()
            self.assertEqual(p.returncode, 0, p.err)
            self.assertEqual(p.out.strip(), SERIAL)
        finally:
            etfix.run(["tpm2_changeauth", "-c", "o", "-p", "ownerpw"], env=env, check=True)


if __name__ == "__main__":
    faultlib.require_cli("serial", "read")
    etfix.main()
