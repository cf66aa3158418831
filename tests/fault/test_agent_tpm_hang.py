"""edgetrustd and a TPM that never answers (the etfault TCTI's `fault=hang` in front of swtpm,
tpm_timeout_ms = 800 in edgetrustd.conf; the agent's TPM work runs in `edgetrustd --tpm-helper`
processes, which get the deadlines with each request).

At boot the agent needs the TPM for the serial and for the stored envelope: a hang at either
point must end the start with the documented exit 5 and a message naming the TPM and the
setting to change, not a process stuck forever (systemd restarts it). While running, a hung
TPM during a credential rotation refuses that rotation, the agent keeps delivering readings on
its open session, and the next rotation works once the TPM answers. A swtpm that is stopped
(SIGSTOP) behind tpm2-tss' own swtpm TCTI, which ignores the library's deadline, is caught by
the daemon's backstop: it stops the helper. Nothing is left loaded in the TPM. The subprocess
waits are generous and only catch a hang.
"""
import signal
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
import agentfix  # noqa: E402
import etfix  # noqa: E402
import faultlib  # noqa: E402

SERIAL = "SN-TPMHANG-1"
HANG_LIMIT = 60


class AgentTpmHang(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir("et-agent-hang-")
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True).start()
        agentfix.provision(self.tpm, SERIAL)
        self.sim = agentfix.ModbusSim(self.tmp).start()
        self.cloud = agentfix.MiniCloud(self.mq.port)
        self.f = faultlib.FaultTcti(self.tmp.path, self.tpm.tcti)
        self.agent = agentfix.Agent(self.tmp, self.f.tcti, self.mq.port, self.sim.port,
                                    serial=SERIAL, poll_ms=50, tcti_module=faultlib.MODULE)
        with open(self.agent.conf) as fh:
            conf = fh.read()
        with open(self.agent.conf, "w") as fh:
            fh.write(conf.replace("[agent]\n", "[agent]\ntpm_timeout_ms = 800\n", 1))

    def tearDown(self):
        if self.tpm.proc:
            self.tpm.proc.send_signal(signal.SIGCONT)
        self.agent.stop()
        self.cloud.stop()
        self.sim.stop()
        self.mq.cleanup()
        self.f.rules("")
        try:
            env = self.tpm.env()
            self.assertEqual(faultlib.handles(env, "transient"), [])
            self.assertEqual(faultlib.handles(env, "loaded-session"), [])
        finally:
            self.tpm.cleanup()
            self.tmp.cleanup()

    def start_expecting_exit(self, *words):
        a = self.agent.start(env=self.f.env())
        rc = a.proc.wait(HANG_LIMIT)
        log = a.run_log()
        self.assertEqual(rc, 5, "expected exit 5 (TPM failing):\n" + log[-2000:])
        for w in ("the TPM", "tpm_timeout_ms") + words:
            self.assertIn(w, log)
        self.assertNotIn("Sanitizer", log)
        return log

    def test_hung_tpm_at_first_boot(self):
        self.f.rules("fault=hang cc=NV_Read")
        self.start_expecting_exit("did not answer NV_Read within 800 ms", self.f.tcti,
                                  "reading the serial number")

    def test_stopped_simulator_behind_the_swtpm_tcti(self):
        # tpm2-tss 3.2.1's swtpm TCTI blocks in its socket read whatever the deadline: the
        # daemon stops its helper after the helper's commands' worst case (here
        # 2 x 1000 + 16 x 300 ms + 5 s = 12 s).
        with open(self.agent.conf) as fh:
            conf = fh.read()
        conf = conf.replace("tcti = " + self.f.tcti, "tcti = " + self.tpm.tcti)
        conf = conf.replace("tcti_module = " + faultlib.MODULE + "\n", "")
        conf = conf.replace("tpm_timeout_ms = 800\n",
                            "tpm_timeout_ms = 300\ntpm_keygen_timeout_ms = 1000\n")
        with open(self.agent.conf, "w") as fh:
            fh.write(conf)
        self.tpm.proc.send_signal(signal.SIGSTOP)
        self.start_expecting_exit("did not answer", "within 12 s", "was stopped")

    def test_hung_tpm_opening_the_stored_envelope_then_in_a_rotation(self):
        # Register and log in with a healthy TPM, then restart with RSA_Decrypt hanging.
        a = self.agent.start(env=self.f.env())
        a.wait_log("connected to the broker as " + SERIAL)
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        self.f.rules("fault=hang cc=RSA_Decrypt")
        self.start_expecting_exit("did not answer RSA_Decrypt within 800 ms", self.f.tcti)
        # Healthy again: it starts; then the TPM hangs during a credential rotation.
        self.f.rules("")
        a.start(env=self.f.env())
        a.wait_log("connected to the broker as " + SERIAL)
        agentfix.wait_for(lambda: self.cloud.count() >= 10, 30, "first readings")
        self.f.rules("fault=hang cc=RSA_Decrypt")
        self.cloud.rotate(SERIAL, 2)
        a.wait_log("credential rotation refused", HANG_LIMIT)
        self.assertIn("did not answer RSA_Decrypt within 800 ms", a.run_log())
        before = self.cloud.count()
        agentfix.wait_for(lambda: self.cloud.count() >= before + 20, 30,
                          "readings delivered after the hung rotation")
        self.assertIsNone(a.proc.poll(), "the agent keeps running")
        # The TPM answers again: the next rotation goes through a new TPM connection.
        self.f.rules("")
        self.cloud.rotate(SERIAL, 3)
        a.wait_log("credentials rotated to version 3", HANG_LIMIT)
        self.assertEqual(self.cloud.conflicts, 0)


if __name__ == "__main__":
    if not os.path.exists(etfix.binary("edgetrustd")):
        print("SKIP: edgetrustd is not built", flush=True)
        sys.exit(77)
    etfix.main()
