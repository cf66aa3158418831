"""edgetrustd with the real cloud (tests/lib/cloudfix.py: mosquitto + dynamic security +
edgetrust-cloud serve on SQLite): provision in swtpm, activate, register, accept, log in with
the TPM-opened credentials; readings from the pymodbus simulator, over Modbus TCP and over RTU
on a socat pty pair, arrive in the cloud store exactly once, through a broker restart and a
SIGKILL of the agent,
and rotation and revocation by the operator."""
import os
import subprocess
import time
import unittest

import agentfix
import etfix
from test_e2e import spool_state

try:
    import cloudfix
except ImportError:  # the cloud helper has not landed yet
    cloudfix = None

SIM = os.path.join(etfix.SOURCE, "tests", "lib", "modbus_sim.py")


class E2ECloud(unittest.TestCase):
    def setUp(self):
        agentfix.cloud_stack(self, modbus=False)

    def store(self, serial):
        rows = self.stack.cli("telemetry", serial, "--json", "--limit", "10000000", json_out=True)
        seqs = [r["seq"] for r in rows]
        self.assertEqual(len(seqs), len(set(seqs)), "a seq stored twice")
        return {int(s) for s in seqs}, rows

    def run_device(self, serial, modbus_port=None, extra="", broker_port=None):
        agentfix.provision(self.tpm, serial)
        self.stack.cli("activate", serial, check=True)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, broker_port or self.stack.broker_port,
                                    modbus_port,
                                    serial=serial, poll_ms=50, extra_devices=extra,
                                    bootstrap_password=self.stack.bootstrap_password)
        a = self.agent.start()
        a.wait_log("registration pending")
        self.stack.cli("accept", serial, check=True)
        a.wait_log("connected to the broker as " + serial)
        return a

    def wait_store(self, serial, n, what):
        return agentfix.wait_for(lambda: len(self.store(serial)[0]) >= n, 40, what)

    def assert_exactly_once(self, serial):
        next_seq, left, dropped = spool_state(self.agent.data_dir)
        self.assertEqual(dropped, 0)
        expected = set(range(1, next_seq))
        agentfix.wait_for(lambda: expected - left <= self.store(serial)[0], 30,
                          "every accepted reading in the cloud store")
        stored, rows = self.store(serial)
        self.assertTrue(stored <= expected)
        return rows

    def test_tcp_exactly_once_through_outage_broker_restart_and_sigkill(self):
        port = etfix.free_ports(1)
        sim = subprocess.Popen(["/usr/bin/python3", SIM, "--tcp", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(sim)
        self.assertTrue(etfix.wait_port(port, 15, sim))
        serial = "SN-CLOUD-TCP"
        # The device reaches the broker through a proxy that can cut its network.
        proxy = agentfix.Proxy(self.stack.broker_port)
        self.addCleanup(proxy.stop)
        a = self.run_device(serial, modbus_port=port, broker_port=proxy.port)
        self.wait_store(serial, 30, "first readings in the store")
        proxy.cut()
        time.sleep(3)
        st = a.ctl({"op": "status"})["status"]
        self.assertGreater(st["spool_depth"], 0)
        proxy.restore()
        n = len(self.store(serial)[0])
        self.wait_store(serial, n + 30, "readings after the outage")
        # The broker itself stops for a while and comes back (serve keeps a persistent
        # session, docs/protocol.md "Delivery end to end").
        self.stack.mqtt_broker.stop()
        time.sleep(3)
        self.stack.mqtt_broker.restart()
        n = len(self.store(serial)[0])
        self.wait_store(serial, n + 30, "readings after the broker restart")
        # SIGKILL while publishing, then restart.
        a.kill()
        n = len(self.store(serial)[0])
        a.start()
        a.wait_log("connected to the broker as " + serial)
        self.wait_store(serial, n + 30, "readings after SIGKILL")
        # Rotation by the operator. The cloud changes the password first, so the broker drops
        # the device's connection before the new envelope reaches it; the old login is then
        # refused and the agent gets version 2 by registering again with its key (or, had the
        # message arrived first, through et/v1/<serial>/creds). Either way it ends on v2.
        self.stack.cli("rotate", serial, check=True)
        a.wait_log("(credential version 2)", 40)
        a.wait_log("connected to the broker as " + serial)
        n = len(self.store(serial)[0])
        self.wait_store(serial, n + 20, "readings after the rotation")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        rows = self.assert_exactly_once(serial)
        self.assertGreater(len(rows), 90)
        # Restarted, it opens the rotated envelope and the broker accepts it.
        a.start()
        a.wait_log("connected to the broker as " + serial)
        self.assertIn("(credential version 2)", a.run_log())
        with open(os.path.join(a.data_dir, "credentials.env"), "rb") as f:
            blob = f.read()
        s = blob[7]
        self.assertEqual(int.from_bytes(blob[40 + s:44 + s], "big"), 2)
        # Revoked: the broker refuses the login; the agent asks again and is told "revoked",
        # keeps running and keeps its readings.
        self.stack.cli("revoke", serial, check=True)
        a.wait_log("registration revoked", 40)
        self.assertIsNone(a.proc.poll())
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        self.assertEqual({r["point"] for r in rows}, {"temp", "counter"})
        self.assertIn("revoked", str(self.stack.device(serial)))

    def test_rtu_exactly_once(self):
        ttys = [self.tmp.join("ttyA"), self.tmp.join("ttyB")]
        socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={ttys[0]}",
                                  f"pty,raw,echo=0,link={ttys[1]}"],
                                 stderr=subprocess.DEVNULL)
        self.procs.append(socat)
        agentfix.wait_for(lambda: all(os.path.exists(t) for t in ttys), 10, "socat ptys")
        sim = subprocess.Popen(["/usr/bin/python3", SIM, "--rtu", ttys[0], "--baud", "38400"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(sim)
        self.assertEqual(sim.stdout.readline().strip(), b"READY")
        rtu = (f"[modbus.rtu1]\ntransport = rtu\ndevice = {ttys[1]}\nbaud = 38400\nparity = N\n"
               "unit_id = 1\ntimeout_ms = 500\npoll_ms = 100\n\n"
               "[point.rtu1.counter]\ntable = holding\naddress = 0\ntype = u16\n\n"
               "[point.rtu1.ref]\ntable = input\naddress = 0\ntype = f32\nunit = degC\n\n")
        serial = "SN-CLOUD-RTU"
        a = self.run_device(serial, extra=rtu)
        self.wait_store(serial, 40, "RTU readings in the store")
        self.assertEqual(a.stop(), 0, a.run_log()[-3000:])
        rows = self.assert_exactly_once(serial)
        ok = [r for r in rows if r["q"] == "ok"]
        self.assertGreater(len(ok), 20)
        self.assertTrue(any(r["point"] == "ref" and abs(r["value"] - 123.456) < 1e-3 for r in ok))


if __name__ == "__main__":
    etfix.main()
