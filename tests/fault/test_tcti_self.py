"""Checks the etfault TCTI itself, with tpm2-tools as the client (ESAPI + tctildr, like our
library), so the fault tests built on it measure the product and not a broken proxy."""
import os
import time
import unittest

import faultlib
import etfix


class TctiSelfTest(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir("et-fault-")
        self.tpm = etfix.Swtpm().start()
        self.f = faultlib.FaultTcti(self.tmp.path, self.tpm.tcti)
        self.env = self.f.env(capture=True)

    def tearDown(self):
        self.tpm.cleanup()
        self.tmp.cleanup()

    def getrandom(self, timeout=60):
        return etfix.run(["tpm2_getrandom", "--hex", "8"], env=self.env, timeout=timeout)

    def test_pass_through_and_log(self):
        p = self.getrandom()
        self.assertEqual(p.returncode, 0, p.err)
        self.assertEqual(len(p.out.strip()), 16)
        self.assertEqual(self.f.count(faultlib.CC["GetRandom"], "pass"), 1)
        recs = self.f.capture()
        cmds = [b for d, b in recs if d == "C"]
        resps = [b for d, b in recs if d == "R"]
        self.assertEqual(len(cmds), len(self.f.log()))
        self.assertEqual(len(cmds), len(resps))
        # The random bytes tpm2_getrandom printed crossed this TCTI in the last response.
        self.assertIn(bytes.fromhex(p.out.strip()), resps[-1])

    def test_retry_within_esapi_resends_is_invisible(self):
        # ESAPI resends RETRY/TESTING/YIELDED by itself; how often is what we measure here.
        for name in ("RETRY", "TESTING", "YIELDED"):
            self.f.clear_log()
            self.f.rules(f"fault={name} cc=GetRandom count=3")
            p = self.getrandom()
            self.assertEqual(p.returncode, 0, f"{name}: {p.err}")
            self.assertEqual(self.f.count(faultlib.CC["GetRandom"], name), 3)
            self.assertEqual(self.f.count(faultlib.CC["GetRandom"], "pass"), 1)

    def test_esapi_gives_up_after_bounded_resends(self):
        self.f.rules("fault=RETRY cc=GetRandom")
        p = self.getrandom()
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("0x922", p.err.lower() + p.out.lower())
        n = self.f.count(faultlib.CC["GetRandom"], "RETRY")
        # tpm2-tss 3.2: one submission plus resends, bounded (_ESYS_MAX_SUBMISSIONS).
        self.assertGreaterEqual(n, 2)
        self.assertLessEqual(n, 10)
        print(f"ESAPI submissions of one command under permanent RETRY: {n}")

    def test_non_retryable_codes_come_back(self):
        for name in ("NV_RATE", "LOCKOUT", "OBJECT_MEMORY"):
            self.f.clear_log()
            self.f.rules(f"fault={name} cc=GetRandom count=1")
            p = self.getrandom()
            self.assertNotEqual(p.returncode, 0, name)
            self.assertIn(hex(faultlib.RC[name]), p.err.lower(), name)
            self.assertEqual(self.f.count(faultlib.CC["GetRandom"]), 1, name)

    def test_after_and_live_change(self):
        # Counters are per process: every tpm2_getrandom starts afresh.
        self.f.rules("fault=NV_RATE cc=GetRandom after=1")
        self.assertEqual(self.getrandom().returncode, 0)
        self.assertEqual(self.getrandom().returncode, 0)
        self.f.rules("fault=NV_RATE cc=GetRandom count=1")
        self.assertNotEqual(self.getrandom().returncode, 0)
        self.assertNotEqual(self.getrandom().returncode, 0)
        self.f.rules("fault=NV_RATE cc=GetRandom count=0")
        self.assertEqual(self.getrandom().returncode, 0)

    def test_drop_and_hang(self):
        self.f.rules("fault=drop cc=GetRandom")
        p = self.getrandom()
        self.assertNotEqual(p.returncode, 0)
        self.f.rules("fault=hang ms=300 cc=GetRandom")
        t0 = time.monotonic()
        p = self.getrandom()
        self.assertNotEqual(p.returncode, 0)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        # The TPM is intact afterwards.
        self.f.rules("")
        self.assertEqual(self.getrandom().returncode, 0)

    def test_drop_response_executes_command(self):
        # The TPM executes NV_DefineSpace but its answer is lost: the tool fails, the index exists.
        self.f.rules("fault=drop-response cc=NV_DefineSpace")
        p = etfix.run(["tpm2_nvdefine", "0x01000010", "-C", "o", "-s", "8"], env=self.env)
        self.assertNotEqual(p.returncode, 0)
        self.f.rules("")
        self.assertIn(0x01000010, faultlib.handles(self.env, "nv-index"))

    def test_bad_rule_is_logged_not_applied(self):
        self.f.rules("fault=NOPE cc=GetRandom")
        self.assertEqual(self.getrandom().returncode, 0)
        self.assertTrue(any(a == "bad-rule-ignored" for (_, _, _, a) in self.f.log()))

    def test_no_inner_tcti_is_refused(self):
        env = dict(self.env)
        env["TPM2TOOLS_TCTI"] = "etfault"
        p = etfix.run(["tpm2_getrandom", "--hex", "8"], env=env, timeout=30)
        self.assertNotEqual(p.returncode, 0)

    def test_lockout_counter_untouched(self):
        self.f.rules("fault=LOCKOUT cc=GetRandom count=2")
        self.getrandom()
        self.getrandom()
        self.f.rules("")
        self.assertEqual(faultlib.getcap_var(self.env, "TPM2_PT_LOCKOUT_COUNTER"), 0)
        self.assertTrue(os.path.exists(self.f.capture_path))


if __name__ == "__main__":
    etfix.main()
