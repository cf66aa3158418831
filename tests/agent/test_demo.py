"""`make demo` (scripts/demo.sh) end to end, non-interactively: every step is shown, readings
reach the cloud store, the cloud's setting takes effect, and everything it started is gone."""
import os
import re
import subprocess
import unittest

import etfix


class Demo(unittest.TestCase):
    def test_demo(self):
        if not os.path.exists(etfix.binary("edgetrust-cloud")):
            self.skipTest("edgetrust-cloud is not built")
        script = os.path.join(etfix.SOURCE, "scripts", "demo.sh")
        p = subprocess.run([script, etfix.BUILD], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=170)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out[-4000:])
        for step in range(1, 9):
            self.assertIn(f"==> {step}/8", out)
        self.assertIn("registration pending", out)
        self.assertIn("connected to the broker as DEMO-0001", out)
        # Telemetry rows: seq, ts, plc1, point, value, unit, quality.
        rows = re.findall(r"^\s+(\d+)\t\d+\tplc1\t(\w+)\t([-\d.e]+)\t\S+\tok$", out, re.M)
        self.assertGreaterEqual(len(rows), 9, out[-4000:])
        self.assertIn("settings from the cloud applied", out)
        self.assertRegex(out, r"config get modbus.plc1.poll_ms.*\n\s+250\n")
        m = re.search(r"readings stored: (\d+) before the change, (\d+)", out)
        self.assertTrue(m and int(m.group(2)) > int(m.group(1)), out[-2000:])
        self.assertIn("Demo complete", out)
        d = re.search(r"stopped everything and removed (\S+)", out)
        self.assertTrue(d, out[-1000:])
        self.assertFalse(os.path.exists(d.group(1)))
        # Nothing left running from this demo's directory.
        ps = subprocess.run(["ps", "-eo", "args"], stdout=subprocess.PIPE).stdout.decode()
        self.assertNotIn(d.group(1), ps)


if __name__ == "__main__":
    etfix.main()
