"""serve over TLS: a second mosquitto listener with a certificate from a test CA; serve
connects with --broker-cafile and seals the broker address, TLS flag and CA into the device's
credentials; a device logs in over TLS with them. A CA that did not sign the broker's
certificate is refused (no silent fallback to plain MQTT)."""
import json
import os
import subprocess
import time
import unittest

from cloudfix import CloudStack, SoftDevice
from etfix import TempDir, free_ports, main


def make_ca(tmp, name):
    key, crt = tmp.join(f"{name}.key"), tmp.join(f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN=edgetrust test {name}", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


class TlsTest(unittest.TestCase):
    def test_serve_over_tls(self):
        tmp = TempDir("et-cloudtls-")
        try:
            ca_key, ca_crt = make_ca(tmp, "ca")
            _, other_ca = make_ca(tmp, "other")
            key, csr, crt = tmp.join("srv.key"), tmp.join("srv.csr"), tmp.join("srv.crt")
            ext = tmp.join("ext.cnf")
            with open(ext, "w") as f:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                            "-keyout", key, "-out", csr], check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt],
                           check=True, capture_output=True)
            os.chmod(tmp.path, 0o755)
            for f in (key, crt, ca_crt):
                os.chmod(f, 0o644)
            tls_port = free_ports(1)
            extra = (f"listener {tls_port} 127.0.0.1\ncafile {ca_crt}\ncertfile {crt}\n"
                     f"keyfile {key}\n")
            with CloudStack(db="sqlite", start_serve=False, broker_extra=extra) as c:
                def serve_args(cafile):
                    a = c.serve_cmd(0)
                    i = a.index("--broker-port")
                    a[i + 1] = str(tls_port)
                    a.remove("--public-no-tls")
                    return a + ["--broker-cafile", cafile, "--public-host", "localhost",
                                "--device-ca", ca_crt]
                # a CA that did not sign the broker's certificate: no connection
                log = open(c.serve_log(1), "wb")
                bad = subprocess.Popen(serve_args(other_ca), stderr=log, stdout=subprocess.DEVNULL)
                log.close()
                time.sleep(3)
                self.assertNotIn("connected to broker", c.serve_log_text(1))
                bad.terminate()
                bad.wait(10)
                # the right CA
                log = open(c.serve_log(0), "wb")
                c.serves.append(subprocess.Popen(serve_args(ca_crt), stderr=log,
                                                 stdout=subprocess.DEVNULL))
                log.close()
                c.wait_log("connected to broker", i=0)
                dev = SoftDevice("SN-TLS")
                self.assertEqual(c.cli("activate", "SN-TLS").returncode, 0)
                self.assertEqual(dev.register(c)["status"], "pending")
                self.assertEqual(c.cli("accept", "SN-TLS").returncode, 0)
                r = dev.wait_reply(c, status="accepted")
                creds = dev.open(r["envelope"])
                self.assertEqual(creds["host"], "localhost")
                self.assertEqual(creds["port"], tls_port)
                self.assertTrue(creds["tls"])
                with open(ca_crt) as f:
                    self.assertEqual(creds["ca_pem"], f.read())
                import paho.mqtt.client as mqtt
                cl = mqtt.Client(client_id=creds["client_id"], protocol=mqtt.MQTTv5)
                cl.username_pw_set(creds["username"], creds["password"])
                cafile = tmp.join("dev-ca.pem")
                with open(cafile, "w") as f:
                    f.write(creds["ca_pem"])
                cl.tls_set(ca_certs=cafile)
                res = {}
                cl.on_connect = lambda cl_, ud, fl, rc, p=None: res.setdefault("rc", rc)
                cl.connect(creds["host"], creds["port"])
                cl.loop_start()
                deadline = time.monotonic() + 10
                while "rc" not in res and time.monotonic() < deadline:
                    time.sleep(0.05)
                cl.loop_stop()
                self.assertEqual(res.get("rc"), 0)
                cl.disconnect()
                c.stop()
                self.assertEqual(c.serve_exit_codes, [0])
        finally:
            tmp.cleanup()


if __name__ == "__main__":
    main()
