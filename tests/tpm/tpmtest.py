"""Helpers for the tests in tests/tpm: a fresh swtpm per test, our CLI, tpm2-tools as peer.

The article's exact tpm2-tools sequences live here so every test uses the same ones.
"""
import os
import re
import signal
import unittest

import etfix

INDEX = 0x01000000
POLICY_HEX = "B7AFECEE9BF7BCBD5078F264DE85F7E361DC84F745DA7EFA34E91FDAF200EE9B"


def documented_exit_codes():
    """Exit codes of the edgetrust table in docs/exit-codes.md, as {code: name}."""
    with open(os.path.join(etfix.SOURCE, "docs", "exit-codes.md")) as f:
        text = f.read()
    section = text.split("## edgetrust", 1)[1].split("\n## ", 1)[0]
    codes = {}
    for m in re.finditer(r"^\| (\d+) \| (CLI_EXIT_\w+) \|", section, re.M):
        codes[int(m.group(1))] = m.group(2)
    return codes


def is_asan_build(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


class TpmTestCase(unittest.TestCase):
    """Each test gets its own swtpm (with a command log) and temp dir."""

    def setUp(self):
        self.tpm = etfix.Swtpm(log=True).start()
        self.addCleanup(self.tpm.cleanup)
        self.tmp = etfix.TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.env = self.tpm.env()
        self.env.pop("TSS2_LOG", None)
        self.exit_codes = documented_exit_codes()
        # After every command of ours the TPM must hold no session and no transient object
        # beyond those a test left on purpose.
        self.leftover_transient = 0
        self.check_handles = True

    # --- our CLI -------------------------------------------------------------------------
    def et(self, *args, input=None, env=None, expect=0):
        """Runs edgetrust; checks the exit code (None: any documented one) and returns it."""
        p = etfix.run([etfix.binary("edgetrust")] + [str(a) for a in args], input=input,
                      env=env or self.env)
        self.assertGreaterEqual(p.returncode, 0, f"killed by signal {-p.returncode}: {p.err}")
        self.assertIn(p.returncode, self.exit_codes,
                      f"undocumented exit code {p.returncode} for {args}: {p.err}")
        if expect is not None:
            self.assertEqual(p.returncode, expect, f"edgetrust {args}: {p.err}{p.out}")
        if p.returncode != 0:
            # One clear line naming the problem; no tpm2-tss noise.
            self.assertTrue(p.err.startswith("edgetrust: "), p.err)
            self.assertNotIn("ERROR:", p.err)
        if self.check_handles:
            self.assert_no_leftovers(self.leftover_transient)
        return p

    def code(self, name):
        return {v: k for k, v in self.exit_codes.items()}[name]

    # --- tpm2-tools, as the article uses them ---------------------------------------------
    def tools(self, *args, check=True, input=None):
        p = etfix.run(list(args), env=self.env, input=input, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, f"{args}: {p.err}")
        return p

    def article_define(self, size=20):
        s, pol = self.tmp.join("session.dat"), self.tmp.join("nvwrite.policy")
        self.tools("tpm2_startauthsession", "-S", s)
        self.tools("tpm2_policycommandcode", "-S", s, "TPM2_CC_NV_Write")
        self.tools("tpm2_policynvwritten", "-S", s, "-L", pol, "c")
        self.tools("tpm2_flushcontext", s)
        p = self.tools("tpm2_nvdefine", "-s", str(size), "-a", "ownerread|authread|policywrite",
                       "-L", pol)
        self.assertIn("nv-index: 0x1000000", p.out)

    def article_write(self, data, check=True):
        s, f = self.tmp.join("session.dat"), self.tmp.join("testWrite.txt")
        with open(f, "wb") as fh:
            fh.write(data)
        self.tools("tpm2_startauthsession", "-S", s, "--policy-session")
        self.tools("tpm2_policycommandcode", "-S", s, "TPM2_CC_NV_Write")
        self.tools("tpm2_policynvwritten", "-S", s, "c")
        p = self.tools("tpm2_nvwrite", "0x1000000", "-i", f, "-P", "session:" + s, check=check)
        # The article leaves the policy session loaded; flush it so handle checks stay exact.
        self.tools("tpm2_flushcontext", s, check=False)
        return p

    def nvreadpublic(self):
        return self.tools("tpm2_nvreadpublic", "0x1000000").out

    def assert_no_leftovers(self, transient=0):
        t = self.tools("tpm2_getcap", "handles-transient").out.split()
        s = self.tools("tpm2_getcap", "handles-loaded-session").out.split()
        self.assertEqual(len([h for h in t if h.startswith("0x")]), transient, t)
        self.assertEqual([h for h in s if h.startswith("0x")], [], s)


main = etfix.main
