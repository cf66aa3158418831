"""The CLI's TPM paths under valgrind: no invalid access, no leak (skipped in ASan builds)."""
import shutil
import unittest

import etfix
import tpmtest


class Valgrind(tpmtest.TpmTestCase):
    def setUp(self):
        if not shutil.which("valgrind"):
            raise unittest.SkipTest("valgrind not installed")
        if tpmtest.is_asan_build(etfix.binary("edgetrust")):
            raise unittest.SkipTest("AddressSanitizer build: valgrind cannot run it")
        super().setUp()

    def vg(self, *args, expect=0, input=None):
        p = etfix.run(["valgrind", "-q", "--leak-check=full", "--error-exitcode=99",
                       "--errors-for-leak-kinds=definite,indirect",
                       etfix.binary("edgetrust")] + list(args), env=self.env, input=input,
                      timeout=300)
        self.assertNotEqual(p.returncode, 99, p.err)
        self.assertEqual(p.returncode, expect, p.err)
        return p

    def test_paths(self):
        self.vg("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))
        self.vg("serial", "provision", "DEV-0001")
        self.vg("serial", "provision", "DEV-0001")
        self.vg("serial", "provision", "DEV-0002", expect=self.code("CLI_EXIT_NV_MISMATCH"))
        self.vg("serial", "read", "--json")
        self.vg("provision", "--serial", "DEV-0001")
        self.vg("status", "--json")
        self.vg("status")
        self.vg("serial", "clear", "--owner-auth-file", "-", input=b"")
        self.vg("serial", "provision", "bad serial", expect=self.code("CLI_EXIT_INVALID"))
        port = etfix.free_ports(1)
        self.vg("--tcti", f"swtpm:host=127.0.0.1,port={port}", "serial", "read",
                expect=self.code("CLI_EXIT_TPM_UNREACHABLE"))
        self.assert_no_leftovers()


if __name__ == "__main__":
    tpmtest.main()
