#!/usr/bin/env python3
"""A test whose set-up fails half way leaves nothing behind: no et-* temporary directory and no
process (swtpm, mosquitto, postgres, edgetrust-cloud serve, edgetrustd, the Modbus simulator,
socat).

Runs other test files of the suite with a set-up made to fail on purpose, two ways:
ET_TEST_FAIL_SETUP=name (tests/lib/etfix.py: the fixture fails at the end of its start(), with
its process already running), and a `swtpm` or `mosquitto` on PATH that is /bin/false (which
works on any version of the fixtures). Each child runs with a private TMPDIR, so what it leaves
can be told apart from what the tests running in parallel own: its et-* directories are in that
TMPDIR, and every process it started has that TMPDIR in its environment, its command line or its
working directory.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import etfix

TESTS = os.path.join(etfix.SOURCE, "tests")

# (name, what fails, how: "inject" = ET_TEST_FAIL_SETUP, "false" = the program is /bin/false,
#  test file and its arguments)
CASES = [
    ("swtpm-inject", "swtpm", "inject", ["tpm/test_keys.py"]),
    ("swtpm-false", "swtpm", "false", ["tpm/test_creds.py"]),
    ("mosquitto-inject", "mosquitto", "inject", ["fault/test_agent_tpm_hang.py"]),
    ("mosquitto-false", "mosquitto", "false", ["fault/test_secret_hygiene.py"]),
    ("postgres-inject", "postgres", "inject", ["cloud/test_cloud_cli.py", "--db=postgresql"]),
    ("serve-inject", "serve", "inject", ["cloud/test_cloud_register.py", "--db=sqlite"]),
    ("modbus-inject", "modbus", "inject", ["agent/test_e2e.py"]),
    ("agent-inject", "agent", "inject", ["agent/test_e2e_tls.py"]),
    ("socat-inject", "socat", "inject", ["agent/test_modbus_rtu.py"]),
]


def leftover_processes(tmpdir):
    """PIDs and command lines of processes that reference tmpdir (environ, argv or cwd)."""
    mark = tmpdir.encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        hit = False
        cmd = b""
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            hit = mark in cmd
            if not hit:
                with open(f"/proc/{d}/environ", "rb") as f:
                    hit = mark in f.read()
            if not hit:
                hit = os.readlink(f"/proc/{d}/cwd").startswith(tmpdir)
        except OSError:
            continue
        if hit:
            found.append((int(d), cmd.replace(b"\0", b" ").decode(errors="replace")[:80]))
    return found


def kill_all(tmpdir):
    for _ in range(20):
        procs = leftover_processes(tmpdir)
        if not procs:
            return
        for pid, _ in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.1)


class SetupCleanup(unittest.TestCase):
    def run_failing(self, fixture, how, argv):
        tmpdir = tempfile.mkdtemp(prefix="setup-cleanup-")
        os.chmod(tmpdir, 0o711)  # the postgres user (pg.py runs the server as it) must get in
        # ours is not an et- directory: the children's et-* directories are what we look for
        self.addCleanup(shutil.rmtree, tmpdir, True)
        self.addCleanup(kill_all, tmpdir)
        env = dict(os.environ, TMPDIR=tmpdir)
        env.pop("ET_TEST_FAIL_SETUP", None)
        if how == "inject":
            env["ET_TEST_FAIL_SETUP"] = fixture
        else:
            bindir = os.path.join(tmpdir, "bin")
            os.mkdir(bindir)
            os.symlink(shutil.which("false"), os.path.join(bindir, fixture))
            env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        test = os.path.join(TESTS, argv[0])
        p = subprocess.run(["/usr/bin/python3", test] + argv[1:], env=env, cwd=tmpdir,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True, timeout=300)
        out = p.stdout.decode(errors="replace")
        # The set-up really failed (else this case proves nothing)
        self.assertNotIn(p.returncode, (0, 77), f"{argv} passed with {fixture} failing:\n{out[-3000:]}")
        if how == "inject":
            self.assertIn("failed on purpose", out, out[-3000:])
        # A process on its way out may need a moment; anything still there after that is a leak.
        deadline = time.monotonic() + 10
        procs = leftover_processes(tmpdir)
        while procs and time.monotonic() < deadline:
            time.sleep(0.2)
            procs = leftover_processes(tmpdir)
        dirs = sorted(e for e in os.listdir(tmpdir) if e.startswith("et-"))
        self.assertEqual((procs, dirs), ([], []),
                         f"{argv} with {fixture} failing ({how}) left {len(procs)} processes "
                         f"and {len(dirs)} et-* directories behind")


def _case(fixture, how, argv):
    return lambda self: self.run_failing(fixture, how, argv)


for _name, _fixture, _how, _argv in CASES:
    setattr(SetupCleanup, "test_" + _name.replace("-", "_"), _case(_fixture, _how, _argv))


if __name__ == "__main__":
    unittest.main(verbosity=2)
