"""Power cuts during `edgetrust provision` (tests/fault/powercut.py does the work): a short
random run and one cut after every TPM command of the flow. The long run is
`tests/fault/powercut.sh --cycles 500`; its figures are in docs/reliability.md."""
import os
import sys
import unittest

import faultlib
import etfix
import powercut


class PowerCutTest(unittest.TestCase):
    def test_random_cuts(self):
        cycles = int(os.environ.get("ET_POWERCUT_CYCLES", "20"))
        self.assertEqual(powercut.main(["--cycles", str(cycles), "--mode", "random"]), 0)

    def test_cut_after_each_command(self):
        self.assertEqual(powercut.main(["--mode", "steps"]), 0)


if __name__ == "__main__":
    faultlib.require_cli("provision")
    etfix.main()
