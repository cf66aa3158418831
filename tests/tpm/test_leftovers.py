"""A raw TPM (no resource manager) with its 3 transient slots taken by leftovers.

The serial commands need no object slot and still work; anything that must load a key gets
the 0x902 message with the remedy; none of our commands leaves anything behind.
"""
import json

import tpmtest


class Leftovers(tpmtest.TpmTestCase):
    def setUp(self):
        super().setUp()
        for i in range(3):
            self.tools("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c",
                       self.tmp.join(f"x{i}.ctx"))
        self.assert_no_leftovers(transient=3)
        p = self.tools("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c",
                       self.tmp.join("x3.ctx"), check=False)
        self.assertIn("0x902", p.err)  # the slots really are full
        self.tools("tpm2_flushcontext", "-s", check=False)
        self.leftover_transient = 3

    def test_serial_commands_work(self):
        self.et("serial", "provision", "DEV-0001")
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")
        self.et("serial", "provision", "DEV-0002", expect=self.code("CLI_EXIT_NV_MISMATCH"))
        self.et("serial", "clear")
        self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))

    def test_provision_reports_object_memory(self):
        p = self.et("provision", "--serial", "DEV-0001",
                    expect=self.code("CLI_EXIT_TPM_OBJECT_MEMORY"))
        self.assertIn("0x902", p.err)
        self.assertIn("tpm2_flushcontext -t", p.err)
        self.assertIn("/dev/tpmrm0", p.err)
        self.assertEqual(p.out, "")
        # The serial part is done and stays; after flushing, a rerun completes the rest.
        self.tools("tpm2_flushcontext", "-t")
        self.leftover_transient = 0
        p = self.et("provision", "--serial", "DEV-0001")
        self.assertIn('"serial":"DEV-0001"', p.out)

    def test_status_names_the_leftovers(self):
        st = json.loads(self.et("status", "--json").out)
        self.assertEqual(st["handles"]["transient"], 3)
        self.assertFalse(st["ready"])
        items = {m["item"]: m["fix"] for m in st["missing"]}
        self.assertIn("handles", items)
        self.assertIn("tpm2_flushcontext", items["handles"])
        p = self.et("status")
        self.assertIn("3 transient objects", p.out)


if __name__ == "__main__":
    tpmtest.main()
