"""Serial provisioning is safe to rerun at every step, and refuses what is not ours."""
import tpmtest


class SerialIdempotence(tpmtest.TpmTestCase):
    def test_provision_twice_same_serial(self):
        p = self.et("serial", "provision", "DEV-0001", "--json")
        self.assertEqual(p.out.strip(),
                         '{"serial":"DEV-0001","index":"0x01000000","changed":true}')
        p = self.et("serial", "provision", "DEV-0001", "--json")
        self.assertEqual(p.out.strip(),
                         '{"serial":"DEV-0001","index":"0x01000000","changed":false}')
        p = self.et("serial", "provision", "DEV-0001")
        self.assertIn("already has serial DEV-0001", p.out)

    def test_different_serial_is_a_mismatch(self):
        self.et("serial", "provision", "DEV-0001")
        p = self.et("serial", "provision", "DEV-0002", expect=self.code("CLI_EXIT_NV_MISMATCH"))
        self.assertIn('"DEV-0001"', p.err)
        self.assertIn('"DEV-0002"', p.err)
        self.assertIn("serial clear", p.err)
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")

    def test_defined_but_unwritten_is_completed(self):
        """A power cut between define and write leaves this state (made here by tpm2-tools)."""
        self.article_define()
        self.check_handles = False  # tpm2_getcap would add to the count
        p = self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNWRITTEN"))
        self.assertIn("0x14A", p.err)
        self.assertIn("never written", p.err)
        self.assertIn("edgetrust serial provision", p.err)
        c0 = self.tpm.count_commands()
        p = self.et("serial", "provision", "DEV-0003", "--json")
        completed = self.tpm.count_commands() - c0
        self.check_handles = True
        self.assert_no_leftovers()
        print(f"\nTPM commands to complete an unwritten index: {completed}")
        # NV_DefineSpace (refused), NV_ReadPublic (the index's ESYS_TR, reused for the write),
        # StartAuthSession, 2 policy commands, NV_Write.
        self.assertLessEqual(completed, 6)
        self.assertIn('"changed":true', p.out)
        out = self.tools("tpm2_nvread", "-C", "o", "0x1000000", "-s", "20").stdout
        self.assertEqual(out, b"DEV-0003" + b"\xff" * 12)
        self.et("serial", "provision", "DEV-0003")

    def test_unwritten_index_too_small(self):
        self.article_define(size=20)
        p = self.et("serial", "provision", "X" * 30, expect=self.code("CLI_EXIT_TOO_LARGE"))
        self.assertIn("20 bytes", p.err)
        self.assertIn("serial clear", p.err)

    def test_index_with_other_attributes_is_refused(self):
        self.tools("tpm2_nvdefine", "0x1000000", "-s", "20", "-a", "ownerread|ownerwrite|authread")
        self.tools("tpm2_nvwrite", "0x1000000", "-C", "o", "-i", "-", input=b"FOREIGN")
        for args in (["serial", "provision", "DEV-0001"], ["serial", "clear"]):
            p = self.et(*args, expect=self.code("CLI_EXIT_NV_ATTRIBUTES"))
            self.assertIn("not a write-once serial index", p.err)
            self.assertIn("ownerwrite", p.err)
        # Still there, untouched.
        out = self.tools("tpm2_nvread", "-C", "o", "0x1000000", "-s", "7").stdout
        self.assertEqual(out, b"FOREIGN")

    def test_no_da_variant_is_accepted(self):
        """The same index with no_da added (a stricter choice some sites make) is ours too."""
        s, pol = self.tmp.join("s.dat"), self.tmp.join("p.policy")
        self.tools("tpm2_startauthsession", "-S", s)
        self.tools("tpm2_policycommandcode", "-S", s, "TPM2_CC_NV_Write")
        self.tools("tpm2_policynvwritten", "-S", s, "-L", pol, "c")
        self.tools("tpm2_flushcontext", s)
        self.tools("tpm2_nvdefine", "-s", "20", "-a", "ownerread|authread|policywrite|no_da",
                   "-L", pol)
        self.et("serial", "provision", "DEV-0001")
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")

    def test_foreign_content_is_not_printed(self):
        self.tools("tpm2_nvdefine", "0x1000000", "-s", "20", "-a", "ownerread|ownerwrite|authread")
        self.tools("tpm2_nvwrite", "0x1000000", "-C", "o", "-i", "-", input=b"\x01\x02bad\x00x")
        p = self.et("serial", "read", expect=self.code("CLI_EXIT_INVALID"))
        self.assertIn("not a serial number", p.err)
        self.assertEqual(p.out, "")

    def test_other_policy_is_refused(self):
        s, pol = self.tmp.join("s.dat"), self.tmp.join("p.policy")
        self.tools("tpm2_startauthsession", "-S", s)
        self.tools("tpm2_policycommandcode", "-S", s, "-L", pol, "TPM2_CC_NV_Write")
        self.tools("tpm2_flushcontext", s)
        self.tools("tpm2_nvdefine", "-s", "20", "-a", "ownerread|authread|policywrite", "-L", pol)
        p = self.et("serial", "provision", "DEV-0001", expect=self.code("CLI_EXIT_NV_ATTRIBUTES"))
        self.assertIn(tpmtest.POLICY_HEX, p.err)

    def test_read_and_clear_of_absent_index(self):
        for args in (["serial", "read"], ["serial", "clear"]):
            p = self.et(*args, expect=self.code("CLI_EXIT_NV_UNDEFINED"))
            self.assertIn("not defined", p.err)
            self.assertIn("0x18b", p.err)

    def test_clear_then_provision_again(self):
        self.et("serial", "provision", "OLD-1")
        self.et("serial", "clear")
        self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))
        self.et("serial", "provision", "NEW-2")
        self.assertEqual(self.et("serial", "read").out, "NEW-2\n")

    def test_other_index(self):
        self.et("serial", "provision", "ALT-1", "--index", "0x01000010")
        self.assertEqual(self.et("serial", "read", "--index", "0x1000010").out, "ALT-1\n")
        self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))
        self.et("serial", "clear", "--index", "16777232")


if __name__ == "__main__":
    tpmtest.main()
