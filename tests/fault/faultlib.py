"""Helpers for the fault tests: the etfault TCTI (rules, command log, capture) and TPM checks.

The TCTI (tests/fault/tcti-etfault.c) is built as libtss2-tcti-etfault.so in the build tree.
Our programs load no TCTI by search path (lib/tcti.c), so they are given its file explicitly:
`--tcti-module MODULE` for the CLI (cli() adds it whenever the environment names etfault),
`tcti_module = MODULE` for edgetrustd, et_ctx_new_module() for C probes. tpm2-tools still find
it by the name "etfault" through LD_LIBRARY_PATH, which env() sets for them.
"""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import etfix  # noqa: E402

TCTI_DIR = os.environ.get("ET_FAULT_TCTI_DIR", os.path.join(etfix.BUILD, "tests", "fault"))
MODULE = os.path.abspath(os.path.join(TCTI_DIR, "libtss2-tcti-etfault.so"))

# TPM2_RC values the TCTI can inject (tpm2-tss tss2_tpm2_types.h).
RC = {"RETRY": 0x922, "TESTING": 0x90A, "YIELDED": 0x908, "NV_RATE": 0x920,
      "LOCKOUT": 0x921, "OBJECT_MEMORY": 0x902}

CC = {"NV_UndefineSpaceSpecial": 0x11F, "EvictControl": 0x120, "NV_UndefineSpace": 0x122,
      "NV_DefineSpace": 0x12A, "CreatePrimary": 0x131, "NV_Write": 0x137, "NV_Read": 0x14E,
      "Create": 0x153, "Load": 0x157, "RSA_Decrypt": 0x159, "ContextLoad": 0x161,
      "ContextSave": 0x162, "FlushContext": 0x165, "NV_ReadPublic": 0x169,
      "PolicyCommandCode": 0x16C, "ReadPublic": 0x173, "StartAuthSession": 0x176,
      "GetCapability": 0x17A, "GetRandom": 0x17B, "PolicyNvWritten": 0x18F}
CC_NAME = {v: k for k, v in CC.items()}

TPMA_SESSION_CONTINUESESSION = 0x01
TPMA_SESSION_DECRYPT = 0x20
TPMA_SESSION_ENCRYPT = 0x40


class FaultTcti:
    """Rules, log and capture files of one etfault TCTI set-up, in dir."""

    def __init__(self, tmpdir, inner_tcti):
        self.dir = tmpdir
        self.inner = inner_tcti
        self.rules_path = os.path.join(tmpdir, "fault.rules")
        self.log_path = os.path.join(tmpdir, "fault.log")
        self.capture_path = os.path.join(tmpdir, "fault.capture")
        self.rules("")

    @property
    def tcti(self):
        return "etfault:" + self.inner

    def rules(self, text):
        """Replaces the rules (atomically: a running program never reads half a file)."""
        tmp = self.rules_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, self.rules_path)

    def env(self, base=None, capture=False):
        e = dict(os.environ if base is None else base)
        ld = e.get("LD_LIBRARY_PATH")
        e["LD_LIBRARY_PATH"] = TCTI_DIR + (":" + ld if ld else "")
        e["ET_FAULT_RULES"] = self.rules_path
        e["ET_FAULT_LOG"] = self.log_path
        if capture:
            e["ET_FAULT_CAPTURE"] = self.capture_path
        else:
            e.pop("ET_FAULT_CAPTURE", None)
        e["TPM2TOOLS_TCTI"] = self.tcti
        e["EDGETRUST_TCTI"] = self.tcti
        return e

    def clear_log(self):
        for p in (self.log_path, self.capture_path):
            if os.path.exists(p):
                os.unlink(p)

    def log(self):
        """[(pid, cc, name, action)] for every command the TCTI saw."""
        if not os.path.exists(self.log_path):
            return []
        out = []
        with open(self.log_path) as f:
            for line in f:
                pid, cc, name, action = line.split()
                out.append((int(pid), int(cc, 16), name, action))
        return out

    def count(self, cc=None, action=None):
        return sum(1 for (_, c, _, a) in self.log()
                   if (cc is None or c == cc) and (action is None or a == action))

    def capture(self):
        """[(dir, bytes)] with dir 'C' (command) or 'R' (response)."""
        recs = []
        if not os.path.exists(self.capture_path):
            return recs
        with open(self.capture_path, "rb") as f:
            data = f.read()
        i = 0
        while i + 5 <= len(data):
            d = chr(data[i])
            (n,) = struct.unpack(">I", data[i + 1:i + 5])
            recs.append((d, data[i + 5:i + 5 + n]))
            i += 5 + n
        if i != len(data):
            raise AssertionError("capture file truncated")
        return recs


def tpm_cmd_header(buf):
    """(tag, size, code) of a command or response."""
    return struct.unpack(">HII", buf[:10])


# Handles in the handle area of commands we parse (TPM 2.0 Part 3).
HANDLES_IN = {0x159: 1, 0x176: 2, 0x14E: 2, 0x137: 2, 0x165: 0, 0x17A: 0, 0x17B: 0}


def parse_auth_area(cmd):
    """Sessions of a command with tag TPM_ST_SESSIONS: [(handle, nonce, attrs, hmac)]."""
    tag, size, cc = tpm_cmd_header(cmd)
    if tag != 0x8002:
        return []
    nh = HANDLES_IN[cc]
    off = 10 + 4 * nh
    (auth_size,) = struct.unpack(">I", cmd[off:off + 4])
    off += 4
    end = off + auth_size
    sessions = []
    while off < end:
        (h,) = struct.unpack(">I", cmd[off:off + 4])
        off += 4
        (nl,) = struct.unpack(">H", cmd[off:off + 2])
        nonce = cmd[off + 2:off + 2 + nl]
        off += 2 + nl
        attrs = cmd[off]
        off += 1
        (hl,) = struct.unpack(">H", cmd[off:off + 2])
        hmac = cmd[off + 2:off + 2 + hl]
        off += 2 + hl
        sessions.append((h, nonce, attrs, hmac))
    return sessions


def parse_start_auth_session(cmd):
    """(tpmKey, bind, nonceCaller, encryptedSalt, sessionType) of a StartAuthSession command."""
    tag, size, cc = tpm_cmd_header(cmd)
    assert cc == 0x176
    tpm_key, bind = struct.unpack(">II", cmd[10:18])
    off = 18
    if tag == 0x8002:
        (auth_size,) = struct.unpack(">I", cmd[off:off + 4])
        off += 4 + auth_size
    (nl,) = struct.unpack(">H", cmd[off:off + 2])
    nonce = cmd[off + 2:off + 2 + nl]
    off += 2 + nl
    (sl,) = struct.unpack(">H", cmd[off:off + 2])
    salt = cmd[off + 2:off + 2 + sl]
    off += 2 + sl
    session_type = cmd[off]
    return tpm_key, bind, nonce, salt, session_type


def getcap_var(env, name):
    """A TPM2_PT_* value from `tpm2_getcap properties-variable` (e.g. TPM2_PT_LOCKOUT_COUNTER)."""
    p = etfix.run(["tpm2_getcap", "properties-variable"], env=env, check=True)
    lines = p.out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(name + ":"):
            rest = line.split(":", 1)[1].strip()
            if rest:
                return int(rest, 0)
            for nxt in lines[i + 1:i + 3]:
                if "raw:" in nxt or "value:" in nxt:
                    return int(nxt.split(":", 1)[1].strip(), 0)
    raise AssertionError(f"{name} not in tpm2_getcap output:\n{p.out}")


def handles(env, kind):
    """Handles listed by `tpm2_getcap handles-<kind>` (persistent, transient, loaded-session, nv-index)."""
    p = etfix.run(["tpm2_getcap", "handles-" + kind], env=env, check=True)
    return [int(line.strip().lstrip("- "), 16) for line in p.out.splitlines() if line.strip()]


def have_cli():
    return os.path.exists(etfix.binary("edgetrust"))


def module_args(env):
    """["--tcti-module", MODULE] when env selects the etfault TCTI, else []."""
    return ["--tcti-module", MODULE] if (env or {}).get("EDGETRUST_TCTI", "").startswith(
        "etfault:") else []


def cli(args, env, input=None, timeout=120):
    """Runs the CLI; .stdout keeps the raw bytes, .out/.err are text."""
    return etfix.run([etfix.binary("edgetrust")] + module_args(env) + args, env=env,
                     input=input, timeout=timeout)


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return f.read()


def kill_tree(proc):
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def require_cli(*words):
    """Exits with meson's skip code (77) until the CLI with this command has landed."""
    path = etfix.binary("edgetrust")
    if not os.path.exists(path):
        print(f"SKIP: {path} is not built yet", flush=True)
        sys.exit(77)
    if words:
        p = etfix.run([path] + list(words) + ["--help"], timeout=30)
        if p.returncode != 0:
            print(f"SKIP: `edgetrust {' '.join(words)}` does not exist yet: {p.err.strip()}",
                  flush=True)
            sys.exit(77)


def exit_code(name):
    """A documented exit code of the CLI, from src/cli/exitcodes.h (e.g. 'TPM_RETRY')."""
    import re
    with open(os.path.join(etfix.SOURCE, "src", "cli", "exitcodes.h")) as f:
        m = re.search(r"CLI_EXIT_" + name + r"\s*=\s*(\d+)", f.read())
    if not m:
        raise AssertionError(f"CLI_EXIT_{name} not in src/cli/exitcodes.h")
    return int(m.group(1))
