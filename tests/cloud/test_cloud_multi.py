"""Three `serve` instances on one PostgreSQL share the registration subscription: 60 devices
register at once with --auto-accept, each sending its request twice (at-least-once delivery),
and every device still gets exactly one credential (one credentials row, one broker login, one
`issue` audit entry), every envelope opens with its key and names its device, and the load is
split between the instances."""
import base64
import json
import threading
import time
import unittest

from cloudfix import CloudStack, SoftDevice, mqtt_connect, open_envelope
from etfix import main

N = 60


class MultiInstanceTest(unittest.TestCase):
    def test_three_instances_exactly_once(self):
        keys = [SoftDevice("k").key for _ in range(6)]  # reused: keygen is slow under ASan hosts
        devs = [SoftDevice(f"SN-M{i:03d}", key=keys[i % len(keys)]) for i in range(N)]
        with CloudStack(db="postgresql", auto_accept=True, instances=3, pg_fsync=False) as c:
            self.assertEqual(c.cli("activate", *[d.serial for d in devs]).returncode, 0)
            replies = {}
            lock = threading.Lock()
            cl = mqtt_connect(c.broker_port, "bootstrap", c.bootstrap_password, "etboot-multi-test")

            def on_message(client, ud, msg):
                d = json.loads(msg.payload)
                with lock:
                    replies.setdefault(d["serial"], []).append(d)
            cl.on_message = on_message
            cl.subscribe([(f"et/v1/{d.serial}/register/reply", 1) for d in devs])
            time.sleep(0.5)
            for _ in range(2):
                for d in devs:
                    cl.publish(f"et/v1/{d.serial}/register", d.request(), qos=1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    if sum(1 for d in devs if any(r["status"] == "accepted" for r in replies.get(d.serial, []))) == N:
                        break
                time.sleep(0.1)
            time.sleep(1.0)  # let the answers to the duplicates arrive too
            cl.loop_stop()
            cl.disconnect()
            envelopes = {}
            for d in devs:
                acc = [r for r in replies.get(d.serial, []) if r["status"] == "accepted"]
                self.assertTrue(acc, f"{d.serial}: no accepted reply; {replies.get(d.serial)}")
                # the duplicate request gets the same envelope again, never a second one
                self.assertEqual(len({r["envelope"] for r in acc}), 1, d.serial)
                creds = json.loads(open_envelope(d.key, d.serial, d.fingerprint,
                                                 base64.b64decode(acc[0]["envelope"])))
                self.assertEqual(creds["username"], d.serial)
                self.assertEqual(creds["cred_version"], 1)
                envelopes[d.serial] = creds
            rows = c.pg.psql("SELECT serial, COUNT(*) FROM credentials GROUP BY serial")
            self.assertEqual(len(rows), N)
            self.assertEqual({r[1] for r in rows}, {"1"})
            issues = c.pg.psql("SELECT COUNT(*) FROM audit WHERE action = 'issue'")
            self.assertEqual(issues, [[str(N)]])
            logins = c.device_logins()
            self.assertEqual(len([u for u in logins if u.startswith("SN-M")]), N)
            self.assertEqual({c.accounts()[d.serial]["cred_version"] for d in devs}, {1})
            # the shared subscription split the requests between the instances
            for i in range(3):
                self.assertRegex(c.serve_log_text(i), r"SN-M\d+: (credentials|registration)",
                                 f"instance i{i} handled nothing")
            # a sample logs in with what it received
            for d in devs[::15]:
                cr = envelopes[d.serial]
                mc = mqtt_connect(c.broker_port, cr["username"], cr["password"], cr["client_id"])
                mc.loop_stop()
                mc.disconnect()
            c.stop()
            self.assertEqual(c.serve_exit_codes, [0, 0, 0])


if __name__ == "__main__":
    main()
