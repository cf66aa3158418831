"""Serial in NV: interop with the reference article's tpm2-tools 5.4 commands, both ways."""
import tpmtest
from tpmtest import POLICY_HEX


class SerialInterop(tpmtest.TpmTestCase):
    def test_article_index_reads_back_with_edgetrust(self):
        self.article_define()
        # A file made with echo: shorter than 20 bytes, with a newline.
        self.article_write(b"hello\n")
        self.assertIn("policywrite|ownerread|authread|written", self.nvreadpublic())
        self.assertEqual(self.et("serial", "read").out, "hello\n")
        p = self.et("serial", "read", "--json")
        self.assertEqual(p.out.strip(), '{"serial":"hello","index":"0x01000000"}')
        # Our provision accepts it as the same serial: nothing to change.
        p = self.et("serial", "provision", "hello")
        self.assertIn("already has", p.out)
        self.assert_no_leftovers()

    def test_edgetrust_index_reads_back_with_tpm2_tools(self):
        self.et("serial", "provision", "DEV-0001")
        self.assert_no_leftovers()
        pub = self.nvreadpublic()
        self.assertIn("friendly: policywrite|ownerread|authread|written", pub)
        self.assertIn("value: 0x20060008", pub)
        self.assertIn("size: 20", pub)
        self.assertIn("authorization policy: " + POLICY_HEX, pub)
        self.assertIn("friendly: sha256", pub)
        # tpm2_nvread with the index's auth and, as in the article, as owner.
        for extra in ([], ["-C", "o"]):
            out = self.tools("tpm2_nvread", *extra, "0x1000000", "-s", "20").stdout
            self.assertEqual(out, b"DEV-0001" + b"\xff" * 12)
        # Write-once: the article's second write is refused by the policy (0x99D).
        p = self.article_write(b"OTHER", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("0x99d", p.err.lower())
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")

    def test_same_tpm_object_as_the_article(self):
        """Our index and the article's have the same TPM name (same public area)."""
        self.article_define()
        self.article_write(b"SN-1")
        article = self.nvreadpublic()
        self.tools("tpm2_nvundefine", "0x1000000")
        self.et("serial", "provision", "SN-1")
        ours = self.nvreadpublic()
        self.assertEqual(article, ours)

    def test_long_serial_sizes_the_index(self):
        serial = "S" * 64
        self.et("serial", "provision", serial)
        self.assertIn("size: 64", self.nvreadpublic())
        self.assertEqual(self.et("serial", "read").out.strip(), serial)

    def test_command_counts(self):
        """TPM commands per operation, from swtpm's log (reported, and bounded)."""
        self.check_handles = False  # tpm2_getcap would add to the counts
        c0 = self.tpm.count_commands()
        self.et("serial", "provision", "DEV-0001")
        c1 = self.tpm.count_commands()
        self.et("serial", "read")
        c2 = self.tpm.count_commands()
        self.et("serial", "provision", "DEV-0001")
        c3 = self.tpm.count_commands()
        provision, read, rerun = c1 - c0, c2 - c1, c3 - c2
        print(f"\nTPM commands: serial provision {provision}, serial read {read}, "
              f"provision rerun {rerun}")
        self.assertLessEqual(provision, 5)
        self.assertLessEqual(read, 2)
        self.assertLessEqual(rerun, 3)
        # The article's tpm2-tools sequence, for comparison.
        self.tools("tpm2_nvundefine", "0x1000000")
        c4 = self.tpm.count_commands()
        self.article_define()
        self.article_write(b"DEV-0001")
        c5 = self.tpm.count_commands()
        self.tools("tpm2_nvread", "-C", "o", "0x1000000", "-s", "20")
        c6 = self.tpm.count_commands()
        print(f"tpm2-tools (article): define+write {c5 - c4}, read {c6 - c5}")


if __name__ == "__main__":
    tpmtest.main()
