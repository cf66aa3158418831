#!/usr/bin/python3
"""TPM command counts and wall time: edgetrust's provisioning and boot path against the
reference article's tpm2-tools flow, each on its own fresh swtpm (command log at level 20),
in the same run. Prints a Markdown table with ratios (ours / article).

Usage: bench/tpm_flow.py [BUILD_DIR] [--rounds N] [--boots N]
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

SERIAL = "CM4-BENCH-0001"
SECRET = b"mqtt-user=cm4-bench-0001\nmqtt-password=0123456789abcdef0123456789abcdef\n"


def run(args, env, cwd, input=None):
    p = subprocess.run(args, env=env, cwd=cwd, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.decode()}")
    return p.stdout


# TPM2_CC_* of the commands these flows send (TPM 2.0 Part 2, table 12)
CC_NAMES = {
    0x11F: "NV_UndefineSpace", 0x120: "EvictControl", 0x12A: "NV_DefineSpace",
    0x131: "CreatePrimary", 0x137: "NV_Write", 0x14E: "NV_Read", 0x153: "Create",
    0x157: "Load", 0x159: "RSA_Decrypt", 0x161: "ContextLoad", 0x162: "ContextSave",
    0x165: "FlushContext", 0x169: "NV_ReadPublic", 0x16C: "PolicyCommandCode",
    0x173: "ReadPublic", 0x174: "RSA_Encrypt", 0x176: "StartAuthSession",
    0x17A: "GetCapability", 0x17B: "GetRandom", 0x189: "PolicyGetDigest",
    0x18F: "PolicyNvWritten", 0x144: "Startup", 0x143: "SelfTest", 0x17F: "PolicyRestart",
}


def command_names(log_path, skip):
    """Names of the TPM commands in swtpm's level-20 log after the first skip commands."""
    names, want = [], False
    with open(log_path, errors="replace") as f:
        for line in f:
            if "SWTPM_IO_Read:" in line:
                want = True
                continue
            if want:
                b = bytes.fromhex(line.strip())
                cc = int.from_bytes(b[6:10], "big") if len(b) >= 10 else -1
                names.append(CC_NAMES.get(cc, hex(cc)))
                want = False
    return names[skip:]


class Flow:
    """A fresh swtpm and a scratch directory."""

    def __init__(self, etfix):
        self.tpm = etfix.Swtpm(log=True).start()
        self.tmp = etfix.TempDir("et-bench-")
        self.env = self.tpm.env()
        self.env["TSS2_LOG"] = "all+none"

    def sequence(self, steps, rm=False):
        """The names of the TPM commands steps send (flushes for rm not included)."""
        names = []
        for st in steps:
            c0 = self.tpm.count_commands()
            st()
            names += command_names(self.tpm.log_path, c0)
            if rm:
                run(["tpm2_flushcontext", "-t"], self.env, self.tmp.path)
        return names

    def measure(self, steps, rm=False):
        """Runs steps (callables), returns (TPM commands, seconds). rm: after each step, flush
        what it left loaded, uncounted and untimed, as /dev/tpmrm0 does on a device when a
        process exits (tpm2-tools leave their objects loaded; a raw swtpm has 3 slots)."""
        cmds, t = 0, 0.0
        for s in steps:
            c0 = self.tpm.count_commands()
            t0 = time.monotonic()
            s()
            t += time.monotonic() - t0
            cmds += self.tpm.count_commands() - c0
            if rm:
                run(["tpm2_flushcontext", "-t"], self.env, self.tmp.path)
        return cmds, t

    def sh(self, *args, input=None):
        return lambda: run(list(args), self.env, self.tmp.path, input)

    def close(self):
        self.tpm.cleanup()
        self.tmp.cleanup()


def ours_provision(f, et):
    return [f.sh(et, "serial", "provision", SERIAL),
            f.sh(et, "key", "create"),
            f.sh(et, "key", "public", "--out", "dev.pem")]


def article_provision(f):
    with open(os.path.join(f.tmp.path, "serial.txt"), "w") as fh:
        fh.write(SERIAL)
    return [
        f.sh("tpm2_startauthsession", "-S", "session.dat"),
        f.sh("tpm2_policycommandcode", "-S", "session.dat", "TPM2_CC_NV_Write"),
        f.sh("tpm2_policynvwritten", "-S", "session.dat", "-L", "nvwrite.policy", "c"),
        f.sh("tpm2_flushcontext", "session.dat"),
        f.sh("tpm2_nvdefine", "-s", "20", "-a", "ownerread|authread|policywrite",
             "-L", "nvwrite.policy"),
        f.sh("tpm2_startauthsession", "-S", "session.dat", "--policy-session"),
        f.sh("tpm2_policycommandcode", "-S", "session.dat", "TPM2_CC_NV_Write"),
        f.sh("tpm2_policynvwritten", "-S", "session.dat", "c"),
        f.sh("tpm2_nvwrite", "0x1000000", "-i", "serial.txt", "-P", "session:session.dat"),
        f.sh("tpm2_flushcontext", "session.dat"),
        f.sh("tpm2_createprimary", "-c", "primary.ctx"),
        f.sh("tpm2_create", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv"),
        f.sh("tpm2_load", "-C", "primary.ctx", "-u", "key.pub", "-r", "key.priv",
             "-c", "testkey.ctx"),
        f.sh("tpm2_evictcontrol", "-c", "testkey.ctx", "0x81000000"),
        f.sh("tpm2_readpublic", "-c", "0x81000000", "-o", "testkey.pub", "-f", "pem"),
    ]


def ours_boot(f, et):
    def step():
        serial = run([et, "serial", "read"], f.env, f.tmp.path).decode().strip()
        out = run([et, "creds", "open", "--serial", serial, "--in", "creds.env"], f.env,
                  f.tmp.path)
        assert out == SECRET
    return [step]


def ours_boot_raw(f, et):
    def step():
        run([et, "serial", "read"], f.env, f.tmp.path)
        out = run([et, "creds", "open", "--raw", "pkcs1", "--in", "encryptedFile"], f.env,
                  f.tmp.path)
        assert out == SECRET
    return [step]


def article_boot(f):
    def step():
        run(["tpm2_nvread", "-C", "o", "0x1000000", "-s", "20"], f.env, f.tmp.path)
        run(["tpm2_rsadecrypt", "-c", "0x81000000", "-o", "decryptedFile", "encryptedFile"],
            f.env, f.tmp.path)
        with open(os.path.join(f.tmp.path, "decryptedFile"), "rb") as fh:
            assert fh.read() == SECRET
    return [step]


def ours_boot_inprocess(f, build):
    """What the agent does: one process, one et_ctx, serial read then envelope open."""
    lib = ctypes.CDLL(os.path.join(build, "lib", "libedgetrust.so"))
    with open(os.path.join(f.tmp.path, "creds.env"), "rb") as fh:
        blob = fh.read()

    def step():
        ctx = ctypes.c_void_p()
        serial = ctypes.c_char_p()
        pt = ctypes.c_void_p()
        assert lib.et_ctx_new(f.tpm.tcti.encode(), ctypes.byref(ctx)) == 0
        assert lib.et_serial_read(ctx, ctypes.c_uint32(0x01000000), ctypes.byref(serial)) == 0
        r = lib.et_envelope_open(ctx, ctypes.c_uint32(0x81000002), serial, blob,
                                 ctypes.c_size_t(len(blob)), ctypes.byref(pt), None)
        assert r == 0, r
        lib.et_secret_free(pt)
        ctypes.CDLL(None).free(serial)
        lib.et_ctx_free(ctx)
    return [step]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.environ.get("ET_BUILD_DIR", "build"))
    ap.add_argument("--rounds", type=int, default=3, help="fresh TPMs per provisioning flow")
    ap.add_argument("--boots", type=int, default=10, help="boots measured per flow")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.environ["ET_BUILD_DIR"] = build
    import etfix
    et = etfix.binary("edgetrust")

    res = {}
    seqs = {}

    def record(name, samples):
        cmds = sorted({c for c, _ in samples})
        res[name] = (cmds, statistics.median(t for _, t in samples))

    prov_o, prov_a, boot_o, boot_or, boot_oi, boot_a = [], [], [], [], [], []
    for rnd in range(a.rounds):
        fo, fa = Flow(etfix), Flow(etfix)
        try:
            c0 = fo.tpm.count_commands()
            prov_o.append(fo.measure(ours_provision(fo, et)))
            seqs["provision ours"] = command_names(fo.tpm.log_path, c0)
            prov_a.append(fa.measure(article_provision(fa), rm=True))
            if rnd == a.rounds - 1:
                # credentials for the boots: an envelope for ours, the article's bare block
                run([et, "creds", "seal", "--pubkey", "dev.pem", "--serial", SERIAL, "--out",
                     "creds.env"], fo.env, fo.tmp.path, SECRET)
                for f, pem in ((fo, "dev.pem"), (fa, "testkey.pub")):
                    with open(os.path.join(f.tmp.path, "secret.txt"), "wb") as fh:
                        fh.write(SECRET)
                    run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", pem, "-in",
                         "secret.txt", "-out", "encryptedFile"], f.env, f.tmp.path)
                seqs["boot ours (CLI, envelope)"] = fo.sequence(ours_boot(fo, et))
                seqs["boot ours (one process)"] = fo.sequence(ours_boot_inprocess(fo, build))
                seqs["boot article"] = fa.sequence(article_boot(fa), rm=True)
                for _ in range(a.boots):
                    boot_o.append(fo.measure(ours_boot(fo, et)))
                    boot_or.append(fo.measure(ours_boot_raw(fo, et)))
                    boot_oi.append(fo.measure(ours_boot_inprocess(fo, build)))
                    boot_a.append(fa.measure(article_boot(fa), rm=True))
        finally:
            fo.close()
            fa.close()
    record("provision ours", prov_o)
    record("provision article", prov_a)
    record("boot ours (CLI: serial read + creds open, envelope)", boot_o)
    record("boot ours (CLI: serial read + creds open --raw pkcs1)", boot_or)
    record("boot ours (one process: et_serial_read + et_envelope_open)", boot_oi)
    record("boot article (tpm2_nvread + tpm2_rsadecrypt)", boot_a)

    print("TPM commands, in order:\n")
    for n, q in seqs.items():
        print(f"- {n}: {', '.join(q)}")
    print()
    print(f"TPM flows on swtpm, {a.rounds} fresh TPMs per provisioning flow, {a.boots} boots "
          f"per boot flow; wall time is the median (process start-up included).\n")
    print("| flow | TPM commands | wall time (ms) | commands ours/article | time ours/article |")
    print("|---|---|---|---|---|")

    def row(name, peer):
        cmds, t = res[name]
        pc, pt = res[peer]
        c = "/".join(map(str, cmds))
        print(f"| {name} | {c} | {t * 1000:.0f} | {cmds[-1] / pc[-1]:.2f} | {t / pt:.2f} |")

    row("provision ours", "provision article")
    row("provision article", "provision article")
    for n in ("boot ours (CLI: serial read + creds open, envelope)",
              "boot ours (CLI: serial read + creds open --raw pkcs1)",
              "boot ours (one process: et_serial_read + et_envelope_open)",
              "boot article (tpm2_nvread + tpm2_rsadecrypt)"):
        row(n, "boot article (tpm2_nvread + tpm2_rsadecrypt)")


if __name__ == "__main__":
    main()
