"""Opt-in ET_SERIAL_NO_DA (`--no-da`): the serial index gets TPMA_NV_NO_DA, keeps the article's
write-once policy, stays readable by tpm2-tools, and with an owner password set its reads
followed by unclean power cuts never raise the lockout counter. The article-attribute index is
the control: the same cuts raise the counter there, so the test can fail."""
import json
import os
import sys

import etfix
import tpmtest

sys.path.insert(0, os.path.join(etfix.SOURCE, "tests", "fault"))
import faultlib  # noqa: E402

CUTS = 4


class NoDa(tpmtest.TpmTestCase):
    def attrs(self):
        return self.nvreadpublic()

    def test_define_and_interop(self):
        p = self.et("serial", "provision", "DEV-ND01", "--no-da")
        self.assertIn("wrote serial DEV-ND01", p.out)
        pub = self.attrs()
        self.assertIn("no_da", pub)
        self.assertIn("ownerread", pub)
        self.assertIn("authread", pub)
        self.assertIn("policywrite", pub)
        self.assertIn(tpmtest.POLICY_HEX, pub.upper())
        p = self.tools("tpm2_nvread", "0x1000000", "-C", "0x1000000", "-s", "8")
        self.assertEqual(p.out, "DEV-ND01")
        # Idempotent, with or without the flag; a different serial is still refused.
        self.assertIn("already has", self.et("serial", "provision", "DEV-ND01", "--no-da").out)
        p = self.et("serial", "provision", "DEV-ND01")
        self.assertIn("already has", p.out)
        self.assertIn("already exists with TPMA_NV_NO_DA", p.err)
        self.et("serial", "provision", "DEV-OTHER", "--no-da",
                expect=self.code("CLI_EXIT_NV_MISMATCH"))
        self.assertEqual(self.et("serial", "read").out, "DEV-ND01\n")
        self.assertIs(self.status()["serial"]["no_da"], True)
        self.assertIn("Serial index:   no_da", self.et("status").out)

    def status(self):
        return json.loads(self.et("status", "--json").out)

    def test_default_is_article_attributes(self):
        self.et("provision", "--serial", "DEV-ND02")
        self.assertNotIn("no_da", self.attrs())
        self.assertIs(self.status()["serial"]["no_da"], False)
        # An existing article index is kept as it is even when --no-da is asked for.
        p = self.et("provision", "--serial", "DEV-ND02", "--no-da")
        self.assertIn("already exists without TPMA_NV_NO_DA; keeping it", p.err)
        self.assertNotIn("no_da", self.attrs())

    def test_provision_no_da(self):
        self.leftover_transient = 0
        self.et("provision", "--serial", "DEV-ND03", "--no-da")
        self.assertIn("no_da", self.attrs())
        self.assertIn(tpmtest.POLICY_HEX, self.attrs().upper())


class PowerCuts(tpmtest.TpmTestCase):
    """The point of the flag: owner password set, read, unclean power-off, CUTS times."""

    def setUp(self):
        self.state = etfix.TempDir()
        self.addCleanup(self.state.cleanup)
        super().setUp()

    def cycle(self, no_da):
        # The class's swtpm is replaced by one on a state dir that survives power cuts.
        self.tpm.cleanup()
        state = self.state.join("no_da" if no_da else "article")
        tpm = etfix.Swtpm(state_dir=state).start()
        self.addCleanup(tpm.cleanup)
        self.tpm, self.env = tpm, tpm.env()
        self.env.pop("TSS2_LOG", None)
        self.et("serial", "provision", "DEV-PC01", *(["--no-da"] if no_da else []))
        self.tools("tpm2_changeauth", "-c", "o", "ownerpw")
        counters, codes = [], []
        for _ in range(CUTS):
            # The control ends in lockout (exit 14) once the counter reaches the maximum.
            p = self.et("serial", "read", expect=0 if no_da else None)
            codes.append(p.returncode)
            if p.returncode == 0:
                self.assertEqual(p.out, "DEV-PC01\n")
            tpm.kill()  # unclean power-off: no TPM2_Shutdown
            tpm.start()  # power on, same NV state
            self.env = tpm.env()
            self.env.pop("TSS2_LOG", None)
            counters.append(faultlib.getcap_var(self.env, "TPM2_PT_LOCKOUT_COUNTER"))
        return counters, codes

    def test_lockout_counter(self):
        no_da, no_da_codes = self.cycle(True)
        article, article_codes = self.cycle(False)
        print(f"lockout counter after each of {CUTS} cuts: no_da {no_da} (read exits "
              f"{no_da_codes}), article {article} (read exits {article_codes})",
              file=sys.stderr)
        self.assertEqual(no_da, [0] * CUTS)
        self.assertEqual(no_da_codes, [0] * CUTS)
        self.assertGreater(article[-1], 0, article)


if __name__ == "__main__":
    tpmtest.main()
