"""edgetrustd over TLS with certificate verification (the default): a throwaway CA made with
openssl, mosquitto with a server certificate for 127.0.0.1. The agent registers and delivers
readings over TLS; with a CA that did not sign the broker's certificate it refuses to connect
and delivers nothing (the readings wait in its spool)."""
import os
import subprocess
import time
import unittest

import agentfix
import etfix


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    for name in ("ca", "other"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=et-test-{name}",
                cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


class TLS(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir()
        self.pki = self.tmp.join("pki")
        os.makedirs(self.pki)
        make_pki(self.pki)
        self.tls_port = etfix.free_ports(1)
        extra = (f"listener {self.tls_port} 127.0.0.1\ncafile {self.pki}/ca.pem\n"
                 f"certfile {self.pki}/server.pem\nkeyfile {self.pki}/server.key\n"
                 "tls_version tlsv1.2\n")
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True, extra=extra).start()
        self.assertTrue(etfix.wait_port(self.tls_port, 10))
        self.sim = agentfix.ModbusSim(self.tmp).start()
        self.cloud = agentfix.MiniCloud(self.mq.port)  # the cloud on the plain listener
        agentfix.provision(self.tpm, "SN-TLS-1")

    def tearDown(self):
        if hasattr(self, "agent"):
            self.agent.stop()
        self.cloud.stop()
        self.sim.stop()
        self.mq.cleanup()
        self.tpm.cleanup()
        self.tmp.cleanup()

    def agent_with_ca(self, ca):
        a = agentfix.Agent(self.tmp, self.tpm.tcti, self.tls_port, self.sim.port,
                           serial="SN-TLS-1", poll_ms=100)
        with open(a.conf) as f:
            conf = f.read()
        with open(a.conf, "w") as f:
            f.write(conf.replace("tls = false", f"tls = true\nca_file = {ca}"))
        self.agent = a
        return a.start()

    def test_tls_verified(self):
        a = self.agent_with_ca(os.path.join(self.pki, "ca.pem"))
        a.wait_log("connected to the broker as SN-TLS-1")
        agentfix.wait_for(lambda: self.cloud.count() >= 20, 30, "readings over TLS")
        self.assertNotIn("TLS is off", a.run_log())
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])

    def test_wrong_ca_refused(self):
        a = self.agent_with_ca(os.path.join(self.pki, "other.pem"))
        a.wait_log("A TLS error occurred. (check ca_file", 60)
        time.sleep(2)  # more retries, all refused
        self.assertIsNone(a.proc.poll(), "the agent keeps running and retrying")
        self.assertNotIn("connected to the broker", a.run_log())
        self.assertEqual(self.cloud.count(), 0)
        self.assertEqual(len(self.cloud.registrations), 0)
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])


if __name__ == "__main__":
    etfix.main()
