"""Secret hygiene of the running agent (edgetrustd), beyond tests/agent/test_e2e.py:

  - the stored credential envelope is refused when it is a symlink, owned by another user, or
    readable by group/others, and so is a group-readable bootstrap password file;
  - a SIGSEGV leaves no core dump (PR_SET_DUMPABLE 0), while the same set-up does produce one
    for an ordinary process (control);
  - the live memory of the logged-in agent (read through /proc/<pid>/mem as root) holds no
    copy of the credential document (the envelope's plaintext) and no bootstrap password once
    registration is over; the device password itself is held once, by libmosquitto, for
    reconnections (docs/reliability.md);
  - no secret in argv or the environment (also checked by tests/agent).
"""
import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import unittest

import faultlib  # noqa: F401  (sets up sys.path)
import etfix

sys.path.insert(0, os.path.join(etfix.SOURCE, "tests", "agent"))
import agentfix  # noqa: E402

SERIAL = "SN-HYG-1"
PASSWORD = "pw-hyg-7d1e5a90c3b24f68a1e2d3c4b5a69788"
BOOTSTRAP = "boot-hyg-4b8e2c6a1f3d5e7092a4c6e8f0b1d3e5"


def memory_hits(pid, needles):
    """How often each needle occurs in the readable, private mappings of pid."""
    hits = {n: 0 for n in needles}
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)", line)
            start, end, perms, path = int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4)
            # Skip huge reservations (ASan's shadow memory): no heap block lives there.
            if not perms.startswith("r") or path.startswith("[v") or end - start > (256 << 20):
                continue
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            for n in needles:
                hits[n] += data.count(n)
    return hits


def asan_build():
    with open(etfix.binary("edgetrustd"), "rb") as f:
        return b"__asan_init" in f.read()


class SecretHygiene(unittest.TestCase):
    def setUp(self):
        self.tmp = etfix.TempDir()
        self.tpm = etfix.Swtpm().start()
        self.mq = etfix.Mosquitto(allow_anonymous=True).start()
        self.cloud = agentfix.MiniCloud(self.mq.port, password=PASSWORD)
        agentfix.provision(self.tpm, SERIAL)
        self.agent = agentfix.Agent(self.tmp, self.tpm.tcti, self.mq.port, serial=SERIAL,
                                    bootstrap_password=BOOTSTRAP)

    def tearDown(self):
        self.agent.stop()
        self.cloud.stop()
        self.mq.cleanup()
        self.tpm.cleanup()
        self.tmp.cleanup()

    def registered(self):
        # Under ASan malloc is ASan's and ignores mallopt(M_PERTURB); its own free-fill option
        # does the same job there.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":max_free_fill_size=1048576"
        a = self.agent.start(env=env)
        a.wait_log("connected to the broker as " + SERIAL)
        return a

    def restart_expecting(self, text):
        """Restarts the agent and waits for text in this run's log; returns the log."""
        a = self.agent.start()
        try:
            a.wait_log(text, 30)
        finally:
            log = a.run_log()
            a.stop()
        return log

    def cred_file(self):
        return os.path.join(self.agent.data_dir, "credentials.env")

    def test_unsafe_stored_envelope_refused(self):
        self.registered()
        self.assertEqual(self.agent.stop(), 0)
        path = self.cred_file()
        self.assertTrue(os.path.exists(path), os.listdir(self.agent.data_dir))
        good = path + ".good"
        shutil.copy2(path, good)

        os.chmod(path, 0o640)
        log = self.restart_expecting("must not be readable by group or others")
        self.assertIn("credentials.env", log)
        self.assertNotIn("connected to the broker as " + SERIAL + " (cred", log)

        os.unlink(path)
        outside = self.tmp.join("elsewhere.env")
        shutil.copy2(good, outside)
        os.symlink(outside, path)
        self.restart_expecting("is a symlink; refusing it")

        os.unlink(path)
        shutil.copy2(good, path)
        os.chown(path, 1, 1)
        self.restart_expecting("owned by uid 1")

    def test_group_readable_bootstrap_password_refused(self):
        os.chmod(self.tmp.join("bootstrap.secret"), 0o640)
        a = self.agent.start()
        a.wait_log("bootstrap_password_file", 30)
        self.assertIn("must not be readable by group or others", a.run_log())

    def test_no_core_dump(self):
        if asan_build():
            self.skipTest("ASan handles SIGSEGV and disables core dumps itself")
        a = self.registered()
        core_dir = self.tmp.join("cores")
        os.makedirs(core_dir)
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
        if pattern.startswith("|") or "/" in pattern:
            self.skipTest(f"core_pattern is {pattern!r}; cores would not land in the cwd")
        a.stop()

        def unlimited():
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                                      resource.RLIM_INFINITY))
        # Control: an ordinary process crashing the same way does leave a core here.
        ctl = subprocess.run([sys.executable, "-c",
                              "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                             cwd=core_dir, preexec_fn=unlimited)
        self.assertEqual(ctl.returncode, -signal.SIGSEGV)
        cores = glob.glob(os.path.join(core_dir, "core*"))
        if not cores:
            self.skipTest("this kernel writes no core even for the control process")
        for c in cores:
            os.unlink(c)
        proc = subprocess.Popen([etfix.binary("edgetrustd"), "-c", self.agent.conf],
                                cwd=core_dir, preexec_fn=unlimited, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.agent.proc = proc
        agentfix.wait_for(lambda: self.cloud.registrations or proc.poll() is not None
                          or os.path.exists(os.path.join(self.agent.data_dir, "agent.sock")),
                          30, "the agent running")
        time.sleep(1)
        os.kill(proc.pid, signal.SIGSEGV)
        proc.wait(30)
        self.assertEqual(proc.returncode, -signal.SIGSEGV)
        self.assertEqual(glob.glob(os.path.join(core_dir, "core*")), [])

    def test_live_memory(self):
        a = self.registered()
        agentfix.wait_for(lambda: self.cloud.status, 30, "a status message")
        time.sleep(1)
        pid = a.proc.pid
        creds_doc = json.loads(self.cloud.creds(SERIAL, 1))
        needles = [PASSWORD.encode(), BOOTSTRAP.encode(),
                   # the envelope's plaintext, as the cloud serialised it
                   self.cloud.creds(SERIAL, 1)[:40], b'"password":"' + PASSWORD.encode()]
        hits = memory_hits(pid, needles)
        print(f"occurrences in the agent's memory: "
              f"password {hits[needles[0]]}, bootstrap password {hits[needles[1]]}, "
              f"credential document {hits[needles[2]]}/{hits[needles[3]]}", flush=True)
        self.assertEqual(creds_doc["password"], PASSWORD)
        self.assertEqual(hits[needles[2]], 0, "the credential document stayed in memory")
        self.assertEqual(hits[needles[3]], 0, "the credential JSON stayed in memory")
        self.assertEqual(hits[needles[1]], 0, "the bootstrap password stayed in memory")
        # libmosquitto keeps its own copy of the password for reconnections (and our et_secret
        # one may exist too); anything more is a leaked copy.
        self.assertLessEqual(hits[needles[0]], 2)
        for f in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{f}", "rb") as fh:
                data = fh.read()
            self.assertNotIn(PASSWORD.encode(), data)
            self.assertNotIn(BOOTSTRAP.encode(), data)


if __name__ == "__main__":
    if not os.path.exists(etfix.binary("edgetrustd")):
        print("SKIP: edgetrustd not built")
        sys.exit(77)
    etfix.main()
