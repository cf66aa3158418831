"""No credential is built into the shipped binaries (issue 5: "`strings` on the binaries finds
no credential").

Device passwords are random and exist only at run time, so the risk this guards against is a
secret compiled in: a default password, a test key, a PEM private key, a token. The check runs
`strings -d` (the loaded data sections, where such a constant lives) over every program and
library we ship, and flags:

  - PEM private key markers;
  - long hexadecimal runs (>= 32 digits: a 128-bit key or more), except the public constants
    listed in PUBLIC_CONSTANTS with the reason they are not secret;
  - long base64-looking runs (>= 24 characters) with the character variety of random data;
  - anything that looks like an assignment of a password, secret or token to a literal value.

A control run first plants such secrets in a small C program compiled here and checks that the
scanner finds every one, so the test cannot pass by finding nothing.
"""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import faultlib  # noqa: F401  (sets up sys.path)
import etfix

# Public values that look like keys. Each entry says why it is not a secret.
PUBLIC_CONSTANTS = {
    # The article's NV write-once policy digest (PolicyCommandCode(NV_Write) then
    # PolicyNvWritten(NO)); anyone can compute it and tpm2_nvreadpublic prints it.
    "B7AFECEE9BF7BCBD5078F264DE85F7E361DC84F745DA7EFA34E91FDAF200EE9B",
}

HEX_RUN = re.compile(r"[0-9A-Fa-f]{32,}")
B64_RUN = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
# A literal value: 8+ characters with a digit and a letter (prose such as "password: provision"
# or format strings such as "password=%s" are not values).
ASSIGN = re.compile(r"(?i)\b(pass(word)?|passwd|secret|token|api[_-]?key)\s*[=:]\s*[\"']?"
                    r"(?=[A-Za-z0-9+/_.-]*\d)(?=[A-Za-z0-9+/_.-]*[A-Za-z])[A-Za-z0-9+/_.-]{8,}")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def entropy(s):
    counts = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def looks_random_b64(s):
    """Random base64 has upper, lower and digits mixed and high per-character entropy; symbol
    names (EVP_PKEY_CTX_set_rsa_padding), paths and alphabets do not."""
    core = s.rstrip("=")
    if core in ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"):
        return False  # the base64 alphabet itself
    if "/" in core and core.count("/") >= 2 and not re.search(r"\d.*\d.*\d", core):
        return False  # a path
    classes = sum(bool(re.search(p, core)) for p in ("[A-Z]", "[a-z]", "[0-9]"))
    return classes == 3 and entropy(core) >= 4.0


def findings(path):
    out = subprocess.run(["strings", "-d", "-n", "8", path], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        if PRIVATE_KEY.search(line):
            found.append(("private key", line))
        for m in HEX_RUN.finditer(line):
            if m.group(0).upper() not in PUBLIC_CONSTANTS:
                found.append(("hex key", m.group(0)))
        for m in B64_RUN.finditer(line):
            if looks_random_b64(m.group(0)):
                found.append(("base64 secret", m.group(0)))
        if ASSIGN.search(line):
            found.append(("literal assignment", line.strip()))
    return found


def shipped_files():
    names = [etfix.binary("edgetrust"), etfix.binary("edgetrustd"),
             etfix.binary("edgetrust-cloud")]
    libdir = os.path.join(etfix.BUILD, "lib")
    names += [os.path.join(libdir, f) for f in sorted(os.listdir(libdir))
              if re.fullmatch(r"libedgetrust\.so\.\d+\.\d+\.\d+", f)]
    # The broker plugin edgetrust-cloud installs into mosquitto.
    names.append(os.path.join(etfix.BUILD, "src", "cloud", "broker-plugin", "edgetrust_auth.so"))
    return names


class BinaryStringsTest(unittest.TestCase):
    def test_control_planted_secrets_are_found(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler for the control program")
        with tempfile.TemporaryDirectory(prefix="et-strings-") as d:
            src = os.path.join(d, "planted.c")
            with open(src, "w") as f:
                f.write('const char *a = "-----BEGIN RSA PRIVATE KEY-----";\n'
                        'const char *b = "3f9a0c1d2e4b5a6978807f6e5d4c3b2a";\n'
                        'const char *c = "q8Zr3Kx1Vb7Nw2Lp5Ty9Hg4Jd6Fs0Ame";\n'
                        'const char *d = "password=hunter2hunter2";\n'
                        'int main(void) { return a[0] + b[0] + c[0] + d[0]; }\n')
            exe = os.path.join(d, "planted")
            subprocess.run([cc, "-O0", "-o", exe, src], check=True)
            kinds = {k for k, _ in findings(exe)}
        self.assertEqual(kinds, {"private key", "hex key", "base64 secret",
                                 "literal assignment"})

    def test_no_credential_in_shipped_binaries(self):
        files = shipped_files()
        for f in files:
            self.assertTrue(os.path.isfile(f), f"missing build output {f}")
        report = {f: findings(f) for f in files}
        bad = {os.path.basename(f): v for f, v in report.items() if v}
        self.assertEqual(bad, {}, "credential-like constants in shipped binaries")
        print(f"scanned {len(files)} files: " + ", ".join(os.path.basename(f) for f in files),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
