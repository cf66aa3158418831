"""Helpers shared by the key and credential tests: run our CLI and tpm2-tools against one swtpm,
and check that nothing stays loaded in the TPM."""
import re
import subprocess

import etfix

ET = etfix.binary("edgetrust")


class TpmCase:
    """Mixin: self.tpm (a fresh swtpm with a command log), self.tmp, self.et(), self.tools()."""

    def start_tpm(self):
        self.tmp = etfix.TempDir("et-keys-")
        self.tpm = etfix.Swtpm(log=True).start()
        self.env = self.tpm.env()
        # tpm2-tools keep their own noise; ours must stay quiet unless asked
        self.env.pop("TSS2_LOG", None)

    def stop_tpm(self):
        self.tpm.cleanup()
        self.tmp.cleanup()

    def p(self, name):
        return self.tmp.join(name)

    def et(self, *args, input=None):
        return etfix.run([ET, *args], input=input, env=self.env)

    def tools(self, *args, input=None, check=True):
        """A tpm2-tools or openssl command, run in the temp dir (the article's relative paths)."""
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(list(args), input=input, env=self.env, cwd=self.tmp.path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{args} failed ({p.returncode}): {p.err}")
        if args[0].startswith("tpm2_") and args[0] not in ("tpm2_getcap", "tpm2_flushcontext"):
            # tpm2-tools leave their objects loaded; on a device /dev/tpmrm0 cleans up after
            # each process, on the raw swtpm we do it (3 slots only)
            subprocess.run(["tpm2_flushcontext", "-t"], env=self.env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p

    def handles(self, kind):
        out = self.tools("tpm2_getcap", kind).out
        return re.findall(r"0x[0-9a-fA-F]+", out)

    def bus(self):
        """Every command and response swtpm saw so far, as bytes (from its level-20 log)."""
        msgs, cur = [], None
        with open(self.tpm.log_path, errors="replace") as f:
            for line in f:
                if "SWTPM_IO_Read:" in line or "SWTPM_IO_Write:" in line:
                    cur = bytearray()
                    msgs.append(cur)
                elif cur is not None and re.fullmatch(r"(\s*[0-9A-F]{2})+\s*", line):
                    cur += bytes.fromhex(line)
                else:
                    cur = None
        return [bytes(m) for m in msgs]

    def assert_tpm_clean(self):
        """No transient object and no session left behind (a raw TPM has 3 slots)."""
        self.assertEqual(self.handles("handles-transient"), [], "transient objects left")
        self.assertEqual(self.handles("handles-loaded-session"), [], "sessions left loaded")
        self.assertEqual(self.handles("handles-saved-session"), [], "sessions left saved")

    def assert_fails(self, p, code, *words):
        """Failed with the documented exit code, a message on stderr, nothing on stdout."""
        self.assertEqual(p.returncode, code, f"stderr: {p.err}")
        self.assertEqual(p.stdout, b"", "nothing may reach stdout on failure")
        for w in words:
            self.assertIn(w, p.err)

    def article_key(self, handle="0x81000000"):
        """The article's exact key commands (RSA primary, default child, persisted)."""
        self.tools("tpm2_createprimary", "-c", "primary.ctx")
        self.tools("tpm2_create", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv")
        self.tools("tpm2_load", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv",
                   "-c", "testkey.ctx")
        self.tools("tpm2_evictcontrol", "-c", "testkey.ctx", handle)
        self.tools("tpm2_readpublic", "-c", handle, "-o", "testkey.pub", "-f", "pem")
        return self.p("testkey.pub")

    def openssl_encrypt(self, pem, plain, out, oaep=False):
        args = ["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", pem, "-in", plain,
                "-out", out]
        if oaep:
            args += ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
                     "-pkeyopt", "rsa_mgf1_md:sha256"]
        self.tools(*args)


# Exit codes of docs/exit-codes.md (section edgetrust) used by these tests.
EXIT_INVALID = 3
EXIT_KEY_ABSENT = 30
EXIT_KEY_TYPE = 31
EXIT_PEM = 32
EXIT_ENVELOPE_FORMAT = 40
EXIT_ENVELOPE_FOREIGN = 41
EXIT_ENVELOPE_AUTH = 42
EXIT_CRYPTO = 43
