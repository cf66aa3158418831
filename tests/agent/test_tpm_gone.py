"""The TPM goes away while the agent runs (issue 5: "telemetry keeps flowing on the
already-open session while the TPM is unavailable"). The agent needs the TPM only to read the
serial and open its envelope at start; once logged in, losing the TPM (swtpm killed, or its
link hanging) must not stop readings from being polled, spooled and delivered, nor the agent
itself. When the TPM is still gone at the next start, the agent says so and exits with its
documented code instead of hanging or crashing."""
import time
import unittest

import agentfix
import etfix

SERIAL = "SN-TPMGONE-1"


class TpmGone(unittest.TestCase):
    def setUp(self):
        agentfix.local_stack(self, SERIAL, 50)

    def test_telemetry_flows_without_tpm(self):
        a = self.agent.start()
        a.wait_log("connected to the broker as " + SERIAL)
        agentfix.wait_for(lambda: self.cloud.count() >= 20, 30, "first readings")
        # Power to the TPM is gone (or its bus broke): the simulator disappears for good.
        self.tpm.kill()
        before = self.cloud.count()
        # Readings keep arriving for several seconds on the already-open MQTT session.
        agentfix.wait_for(lambda: self.cloud.count() >= before + 60, 30,
                          "readings delivered while the TPM is gone")
        time.sleep(1)
        self.assertIsNone(a.proc.poll(), "the agent keeps running without its TPM")
        self.assertEqual(self.cloud.conflicts, 0)
        # A broker restart while the TPM is gone: the agent logs in again with the credentials
        # it already holds, without asking the TPM, and keeps delivering.
        self.mq.restart()
        after_restart = self.cloud.count()
        self.cloud.stop()
        self.cloud = agentfix.MiniCloud(self.mq.port)
        agentfix.wait_for(lambda: self.cloud.count() >= 20, 60,
                          "readings after a broker restart without a TPM")
        self.assertGreater(after_restart, before)
        self.assertIsNone(a.proc.poll())
        # Stopped cleanly, then started again with the TPM still gone: a clear message naming
        # the TPM and the documented exit code (docs/exit-codes.md, edgetrustd), not a hang.
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        a.start()
        rc = a.proc.wait(60)
        log = a.run_log()
        self.assertEqual(rc, 5, "expected exit 5 (TPM unreachable):\n" + log[-2000:])
        self.assertIn("TPM", log)


if __name__ == "__main__":
    etfix.main()
