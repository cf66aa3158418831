"""The agent's TPM work runs in short-lived `edgetrustd --tpm-helper` processes
(src/agent/tpmjob.h), so the daemon keeps neither the TPM stack's memory nor a TPM connection.
Checked here: the running, logged-in daemon never opened a TPM context itself (no TCTI module
loaded) and another TPM user is served meanwhile; every helper ran and ended with exit 0 and a measured
peak; a rotated envelope opens through a helper; the hidden option refuses to run from a
terminal."""
import unittest

import agentfix
import etfix

SERIAL = "SN-HELPER-1"


class TpmHelper(unittest.TestCase):
    def setUp(self):
        agentfix.local_stack(self, SERIAL, 100)

    def helper_runs(self):
        return [l for l in self.agent.run_log().splitlines() if "TPM helper (" in l]

    def test_tpm_free_while_running(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        agentfix.wait_for(lambda: self.cloud.count() >= 5, 30, "first readings")
        # The daemon itself never opened a TPM context: tctildr loads the TCTI module
        # (libtss2-tcti-swtpm here) on the first et_ctx_new, so it would be mapped.
        with open(f"/proc/{a.proc.pid}/maps") as f:
            maps = f.read()
        self.assertTrue("libtss2-esys" in maps, "libedgetrust not loaded?")
        self.assertFalse("libtss2-tcti-" in maps, "the daemon loaded a TCTI module itself")
        # Another TPM user while the agent runs is served.
        p = etfix.run([etfix.binary("edgetrust"), "--tcti", self.tpm.tcti, "--tpm-timeout", "5000",
                       "serial", "read"])
        self.assertEqual(p.returncode, 0, p.err)
        self.assertIn(SERIAL, p.out)
        self.assertIsNone(a.proc.poll())
        # First start: identity, then the envelope from the registration reply; every helper
        # reports its peak RSS, none failed.
        runs = self.helper_runs()
        self.assertTrue(any("(serial and device key)" in l for l in runs), a.run_log()[-3000:])
        self.assertTrue(any("(credential envelope)" in l for l in runs), a.run_log()[-3000:])
        self.assertTrue(all("peak RSS" in l for l in runs))
        self.assertNotIn("TPM helper process", a.run_log())
        # No helper left behind: the agent's only children were reaped.
        with open(f"/proc/{a.proc.pid}/task/{a.proc.pid}/children") as f:
            self.assertEqual(f.read().split(), [])
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])

    def test_rotation_through_helper(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        n = len(self.helper_runs())
        self.cloud.rotate(SERIAL, 2, password="pw-rotated-0123456789abcdef0123")
        a.wait_log("credentials rotated to version 2")
        self.assertEqual(len(self.helper_runs()), n + 1, a.run_log()[-3000:])
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])


class HelperFromShell(unittest.TestCase):
    def test_refuses_without_socket(self):
        p = etfix.run([etfix.binary("edgetrustd"), "--tpm-helper"], input=b"")
        self.assertEqual(p.returncode, 1)
        self.assertIn("not from a shell", p.err)


if __name__ == "__main__":
    etfix.main()
