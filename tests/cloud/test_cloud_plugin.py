"""The edgetrust mosquitto plugin (src/cloud/broker-plugin) on its own: bad plugin options stop
mosquitto at start with a clear message; a registry that is not there yet refuses device logins
without harming the broker or the dynamic-security logins; $CONTROL/edgetrust/v1 survives
garbage, is usable only by the cloud's login, and its kick disconnects a device without
revoking it."""
import json
import os
import subprocess
import threading
import time
import unittest

import cloudtest
from cloudfix import (CloudStack, SoftDevice, edgetrust_plugin, mqtt_connect, plugin_env,
                      subscribe_granted, DYNSEC_PLUGIN)
from etfix import TempDir, free_ports, main, stop_process


def start_broker(tmp, plugin_lines, dynsec_json):
    """mosquitto in the foreground with log on stderr; returns (returncode or None, log)."""
    port = free_ports(1)
    conf = os.path.join(tmp.path, "m.conf")
    with open(conf, "w") as f:
        f.write(f"user root\nper_listener_settings false\nlistener {port} 127.0.0.1\n"
                f"allow_anonymous false\nlog_dest stderr\n"
                f"plugin {edgetrust_plugin()}\n{plugin_lines}"
                f"plugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {dynsec_json}\n")
    p = subprocess.Popen(["mosquitto", "-c", conf], env=plugin_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        stop_process(p)
    return p.returncode, p.stderr.read().decode(errors="replace")


class PluginTest(unittest.TestCase):
    def test_bad_options(self):
        tmp = TempDir("et-plugin-")
        try:
            dyn = os.path.join(tmp.path, "dyn.json")
            with open(dyn, "w") as f:
                f.write("{}")
            notdb = os.path.join(tmp.path, "not-a-db")
            with open(notdb, "w") as f:
                f.write("this is not a SQLite file, just text long enough " * 20)
            cases = [
                ("", "plugin_opt_registry is required"),
                (f"plugin_opt_registry {tmp.path}/r.db\nplugin_opt_nonsense 1\n",
                 "unknown option plugin_opt_nonsense"),
                ("plugin_opt_registry relative/r.db\n", "absolute path"),
                ("plugin_opt_registry /nonexistent-et-dir/r.db\n", "/nonexistent-et-dir"),
                (f"plugin_opt_registry {notdb}\n", "not a database"),
                ("plugin_opt_registry postgresql://[::1/x\n", "invalid PostgreSQL URL"),
                ("plugin_opt_accounts nope\n", "unknown option plugin_opt_accounts nope"),
                (f"plugin_opt_accounts dynsec\nplugin_opt_registry {tmp.path}/r.db\n",
                 "plugin_opt_registry is for plugin_opt_accounts registry"),
            ]
            for lines, msg in cases:
                rc, log = start_broker(tmp, lines, dyn)
                self.assertNotEqual(rc, 0, f"mosquitto started with {lines!r}:\n{log}")
                self.assertIsNotNone(rc, f"mosquitto still running with {lines!r}")
                self.assertIn("edgetrust_auth: ", log, lines)
                self.assertIn(msg, log, lines)
        finally:
            tmp.cleanup()

    def test_control_and_kick(self):
        with CloudStack(db=cloudtest.BACKEND, pg_fsync=False, auto_accept=True) as c:
            dev = SoftDevice("SN-PLG")
            self.assertEqual(c.cli("activate", "SN-PLG").returncode, 0)
            creds = dev.open(dev.register(c, status="accepted")["envelope"])
            d = c.mqtt(creds["username"], creds["password"], creds["client_id"])
            with open(c.cloud_password_file) as f:
                cloud = mqtt_connect(c.broker_port, "edgetrust-cloud", f.read().strip(), "etcloud-ctl")
            boot = c.bootstrap("SN-PLG-B")
            try:
                garbage = [b"", b"not json", b"[1,2]", b'{"kick": "SN-PLG"}',
                           b'{"v":1,"kick":[null, 5, {}, "#", "+", "", "bootstrap",'
                           b' "edgetrust-cloud", "' + b"x" * 100 + b'"]}',
                           b"\xff\xfe\x00garbage", b"{" * 5000,
                           # just under init-broker's max_packet_size (1 MiB): a larger packet
                           # ends the sender's connection (tests/adversary/test_broker.py)
                           b"x" * (1024 * 1024 - 100)]
                for g in garbage:
                    cloud.publish("$CONTROL/edgetrust/v1", g, qos=1).wait_for_publish(10)
                # the bootstrap login and the device itself may not kick anyone
                for cl in (boot, d):
                    cl.publish("$CONTROL/edgetrust/v1", json.dumps({"v": 1, "kick": ["SN-PLG"]}),
                               qos=1).wait_for_publish(10)
                time.sleep(0.5)
                self.assertTrue(cloud.is_connected())
                self.assertTrue(d.is_connected())
                self.assertTrue(boot.is_connected())
                self.assertTrue(subscribe_granted(d, "et/v1/SN-PLG/#"))
                log = open(c.mqtt_broker.tmp.join("mosquitto.log"), errors="replace").read()
                self.assertIn("edgetrust_auth: malformed $CONTROL/edgetrust/v1", log)
                self.assertNotIn("disconnected the clients of 1 ", log)
                # the cloud's kick disconnects the device (paho then reconnects by itself: the
                # login stays valid, a kick is not a revocation)
                kicked = threading.Event()
                d.on_disconnect = lambda *a: kicked.set()
                cloud.publish("$CONTROL/edgetrust/v1", json.dumps({"v": 1, "kick": ["SN-PLG"]}),
                              qos=1).wait_for_publish(10)
                self.assertTrue(kicked.wait(10), "the device was not disconnected")
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not d.is_connected():
                    time.sleep(0.05)
                self.assertTrue(d.is_connected())
            finally:
                for cl in (d, cloud, boot):
                    cl.loop_stop()
                    cl.disconnect()

    def test_registry_missing(self):
        """The registry file does not exist yet: device logins are refused, the broker and the
        dynamic-security logins carry on."""
        with CloudStack(db="sqlite", start_serve=False) as c:
            self.assertFalse(os.path.exists(c.db_url))
            with self.assertRaises(ConnectionRefusedError):
                c.mqtt("SN-NONE", "x" * 32, "SN-NONE")
            b = c.bootstrap("SN-NONE")
            self.assertTrue(subscribe_granted(b, "et/v1/SN-NONE/register/reply"))
            b.loop_stop()
            b.disconnect()
            # once serve has created it, logins are checked against it
            c.start_serve(0)
            dev = SoftDevice("SN-LATE")
            self.assertEqual(c.cli("activate", "SN-LATE").returncode, 0)
            self.assertEqual(dev.register(c)["status"], "pending")
            self.assertEqual(c.cli("accept", "SN-LATE").returncode, 0)
            creds = dev.open(dev.wait_reply(c, status="accepted")["envelope"])
            time.sleep(1.1)  # the plugin retries a failed open at most once per second
            cl = c.mqtt(creds["username"], creds["password"], creds["client_id"])
            cl.loop_stop()
            cl.disconnect()


if __name__ == "__main__":
    main()
