"""A TPM that never answers: the etfault TCTI in front of swtpm injects `fault=hang` (no answer
for 10 minutes unless the caller's receive timeout runs out first), and the library's per-command
deadline must turn it into exit 11 with a message that names the TPM and what to do. The
subprocess timeouts are generous (60 s against deadlines of about 1 s): they only make a hang
fail the test instead of blocking it; no timing is asserted.

Also: busy answers within ESAPI's resends stay invisible under a short deadline, a slow TPM
that answers within the deadline is fine, the deadline options are checked, a timed-out
et_ctx is never reused until et_ctx_reopen (et-timeout-probe), and nothing is left loaded in the TPM afterwards
(the session of an interrupted `creds open` is flushed over a second connection).
"""
import os
import signal
import subprocess
import unittest

import faultlib
import etfix

SERIAL = "TMO-0001"
SECRET = b"mqtt-user=tmo-0001\nmqtt-password=0123456789abcdef\n"
HANG_LIMIT = 60  # seconds: far above every deadline used here; only catches a real hang
FLUSH = faultlib.CC["FlushContext"]


class TpmTimeoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = etfix.TempDir("et-timeout-")
        cls.tpm = etfix.Swtpm().start()
        cls.f = faultlib.FaultTcti(cls.tmp.path, cls.tpm.tcti)
        try:
            env = cls.tpm.env()
            p = faultlib.cli(["provision", "--serial", SERIAL], env=env)
            assert p.returncode == 0, f"provisioning failed ({p.returncode}): {p.err}"
            cls.pem = cls.tmp.join("dev.pem")
            p = faultlib.cli(["key", "public", "--out", cls.pem], env=env)
            assert p.returncode == 0, p.err
            cls.env_file = cls.tmp.join("creds.env")
            p = faultlib.cli(["creds", "seal", "--pubkey", cls.pem, "--serial", SERIAL,
                              "--out", cls.env_file], env=env, input=SECRET)
            assert p.returncode == 0, p.err
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tpm.cleanup()
        cls.tmp.cleanup()

    def setUp(self):
        self.f.rules("")
        self.f.clear_log()

    def tearDown(self):
        self.f.rules("")
        env = self.tpm.env()
        self.assertEqual(faultlib.handles(env, "transient"), [])
        self.assertEqual(faultlib.handles(env, "loaded-session"), [])
        self.assertEqual(faultlib.getcap_var(env, "TPM2_PT_LOCKOUT_COUNTER"), 0)

    def cli(self, args, env=None, input=None):
        return faultlib.cli(args, env=env or self.f.env(), input=input, timeout=HANG_LIMIT)

    def assert_timeout(self, p, *words):
        self.assertEqual(p.returncode, faultlib.exit_code("TPM_TIMEOUT"), p.err)
        self.assertEqual(p.out, "")
        lines = [line for line in p.err.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, p.err)
        msg = lines[0]
        self.assertTrue(msg.startswith("edgetrust: "), msg)
        # names the TPM (and the TCTI it was reached through) and says what to do
        for w in ("the TPM", self.f.tcti, "did not answer", "check the TPM", "retry") + words:
            self.assertIn(w.lower(), msg.lower())
        self.assertNotIn("Sanitizer", p.err)

    def test_hung_nv_read(self):
        self.f.rules("fault=hang cc=NV_Read")
        p = self.cli(["--tpm-timeout", "1000", "serial", "read"])
        self.assert_timeout(p, "NV_Read", "1000 ms", "--tpm-timeout")
        self.assertEqual(self.f.count(faultlib.CC["NV_Read"], "hang"), 1)

    def test_hung_tpm_from_the_environment(self):
        env = self.f.env()
        env["EDGETRUST_TPM_TIMEOUT_MS"] = "700"
        self.f.rules("fault=hang")
        p = self.cli(["serial", "read"], env=env)
        self.assert_timeout(p, "NV_ReadPublic", "700 ms")

    def test_hung_decrypt_leaves_no_session(self):
        # StartAuthSession succeeds, RSA_Decrypt hangs: the session would stay in a TPM
        # without resource manager; it is flushed over a second connection (tearDown checks).
        self.f.rules("fault=hang cc=RSA_Decrypt")
        p = self.cli(["creds", "open", "--in", self.env_file, "--tpm-timeout", "1000"])
        self.assert_timeout(p, "RSA_Decrypt")
        self.assertEqual(self.f.count(faultlib.CC["RSA_Decrypt"], "hang"), 1)
        self.assertEqual(self.f.count(FLUSH, "pass"), 1)

    def test_hung_key_generation(self):
        # key generation has its own deadline (and its own option in the message)
        self.f.rules("fault=hang cc=Create")
        p = self.cli(["key", "create", "--handle", "0x81000003", "--tpm-timeout", "1000",
                      "--tpm-keygen-timeout", "1200"])
        self.assert_timeout(p, "Create within 1200 ms", "--tpm-keygen-timeout")
        self.assertNotIn(0x81000003, faultlib.handles(self.tpm.env(), "persistent"))

    def test_stopped_simulator_behind_the_swtpm_tcti(self):
        # tpm2-tss 3.2.1's swtpm TCTI blocks in its socket read whatever the deadline; the
        # CLI's backstop ends the command after 2 x 500 + 24 x 200 ms + 2 s = 7 s.
        self.tpm.proc.send_signal(signal.SIGSTOP)
        try:
            p = self.cli(["--tpm-timeout", "200", "--tpm-keygen-timeout", "500", "serial",
                          "read"], env=self.tpm.env())
        finally:
            self.tpm.proc.send_signal(signal.SIGCONT)
        self.assertEqual(p.returncode, faultlib.exit_code("TPM_TIMEOUT"), p.err)
        self.assertEqual(p.out, "")
        for w in ("the TPM", self.tpm.tcti, "did not answer", "within 7 s", "--tpm-timeout"):
            self.assertIn(w, p.err)

    def test_busy_within_resends_is_invisible_under_a_short_deadline(self):
        for name in ("RETRY", "YIELDED", "TESTING"):
            with self.subTest(fault=name):
                self.f.clear_log()
                self.f.rules(f"fault={name} cc=NV_Read count=4")
                p = self.cli(["--tpm-timeout", "1000", "serial", "read"])
                self.assertEqual(p.returncode, 0, p.err)
                self.assertEqual(p.out.strip(), SERIAL)
                self.assertEqual(self.f.count(faultlib.CC["NV_Read"], name), 4)
                self.assertEqual(self.f.count(faultlib.CC["NV_Read"]), 5)

    def test_busy_beyond_resends_is_still_busy(self):
        self.f.rules("fault=RETRY cc=NV_Read count=5")
        p = self.cli(["--tpm-timeout", "1000", "serial", "read"])
        self.assertEqual(p.returncode, faultlib.exit_code("TPM_RETRY"), p.err)
        self.assertEqual(self.f.count(faultlib.CC["NV_Read"]), 5)

    def test_slow_tpm_within_the_deadline(self):
        self.f.rules("fault=delay ms=300")
        p = self.cli(["--tpm-timeout", "5000", "creds", "open", "--in", self.env_file])
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(p.stdout, SECRET)

    def test_deadline_values_checked(self):
        p = self.cli(["--tpm-timeout", "5", "serial", "read"])
        self.assertEqual(p.returncode, faultlib.exit_code("USAGE"), p.err)
        self.assertIn("--tpm-timeout", p.err)
        p = self.cli(["serial", "read", "--tpm-keygen-timeout", "soon"])
        self.assertEqual(p.returncode, faultlib.exit_code("USAGE"), p.err)
        env = self.f.env()
        env["EDGETRUST_TPM_TIMEOUT_MS"] = "99999999"
        p = self.cli(["serial", "read"], env=env)
        self.assertEqual(p.returncode, faultlib.exit_code("INVALID"), p.err)
        self.assertIn("EDGETRUST_TPM_TIMEOUT_MS", p.err)

    def test_timed_out_context_is_not_reused(self):
        # The first read's NV_Read hangs once; the same et_ctx must then refuse without
        # sending anything, and a new et_ctx works.
        self.f.rules("fault=hang cc=NV_Read")
        proc = subprocess.Popen([os.environ["ET_TIMEOUT_PROBE"], self.f.tcti, "800", "2",
                                 faultlib.MODULE],
                                env=self.f.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]
            self.f.rules("")
            out, err = proc.communicate("go\n", timeout=HANG_LIMIT)
        finally:
            faultlib.kill_tree(proc)
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("Sanitizer", err)
        lines += out.splitlines()
        self.assertEqual(len(lines), 4, lines)
        self.assertTrue(lines[0].startswith("same1 rc=-23 "), lines[0])
        self.assertIn("did not answer NV_Read within 800 ms", lines[0])
        self.assertTrue(lines[1].startswith("same2 rc=-23 "), lines[1])
        self.assertIn("no longer used", lines[1])
        self.assertEqual(lines[2], f"reopened rc=0 {SERIAL}")
        self.assertEqual(lines[3], f"fresh rc=0 {SERIAL}")
        # commands: NV_ReadPublic + NV_Read (hung) on the first link, nothing for the second
        # call, NV_ReadPublic + NV_Read after et_ctx_reopen and for the fresh context
        names = [name for (_, _, name, _) in self.f.log()]
        self.assertEqual(names, ["NV_ReadPublic", "NV_Read"] * 3)


if __name__ == "__main__":
    faultlib.require_cli("serial", "read")
    etfix.main()
