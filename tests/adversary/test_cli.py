"""Attacks on the device side through the CLI, the agent's files and the TCTI (docs/threat-model.md,
"Device side: the local socket, files, the CLI and the TCTI"; findings 9, 12 and 13 of issue 10).

The attacker here controls what root's command line, environment or configuration names: a TCTI
string, a library search path, a serial number, the path of a configuration or input file.
Each test asserts what the attacker gets (no code run as root, no write-once NV written, no
daemon stuck) through exit codes, the TPM's NV state and marker files, never log text alone.
"""
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
import unittest

import advtest  # noqa: F401  (sys.path, --db)
import agentfix
import etfix

CLI = etfix.binary("edgetrust")
AGENTD = etfix.binary("edgetrustd")
CLOUD = etfix.binary("edgetrust-cloud")

# A "TCTI" whose constructor leaves a marker: proof that its code ran with our rights.
EVIL_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void)
{
	int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		(void)write(fd, "ran\n", 4);
		close(fd);
	}
}
"""


def exit_code(name):
    import re
    with open(os.path.join(etfix.SOURCE, "src", "cli", "exitcodes.h")) as f:
        m = re.search(r"CLI_EXIT_" + name + r"\s*=\s*(\d+)", f.read())
    assert m, name
    return int(m.group(1))


def build_evil(path, marker):
    cc = os.environ.get("CC", "cc").split()
    subprocess.run(cc + ["-shared", "-fPIC", "-o", path, f'-DMARKER="{marker}"', "-x", "c", "-"],
                   input=EVIL_C.encode(), check=True, timeout=120)
    os.chmod(path, 0o755)


class TctiAttacks(unittest.TestCase):
    """Finding 9: any shared library named as the TCTI was loaded and run as root."""

    @classmethod
    def setUpClass(cls):
        cls.tpm = etfix.Swtpm().start()
        cls.tmpc = etfix.TempDir("et-adv-tcti-")
        try:
            os.chmod(cls.tmpc.path, 0o700)
            cls.marker = cls.tmpc.join("pwned")
            cls.evil = cls.tmpc.join("evil.so")
            build_evil(cls.evil, cls.marker)
            # The same code under the names tctildr searches for.
            cls.libdir = cls.tmpc.join("lib")
            os.mkdir(cls.libdir, 0o755)
            for name in ("libtss2-tcti-evil.so.0", "libtss2-tcti-swtpm.so.0",
                         "libtss2-tcti-device.so.0", "swtpm", "evil"):
                shutil.copy(cls.evil, os.path.join(cls.libdir, name))
            agentfix.provision(cls.tpm, "ADV-TCTI-1")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tpm.cleanup()
        cls.tmpc.cleanup()

    def setUp(self):
        self.reset()

    def reset(self):
        """Before each attempt: no marker, so each one proves only itself."""
        if os.path.exists(self.marker):
            os.unlink(self.marker)

    def env(self, **kw):
        e = {k: v for k, v in os.environ.items() if not k.endswith("_TCTI")}
        e.pop("TSS2_LOG", None)
        e.update(kw)
        return e

    def run_cli(self, args, env=None):
        return etfix.run([CLI] + args, env=env or self.env(), timeout=60)

    def assert_not_run(self, p, code=None):
        self.assertFalse(os.path.exists(self.marker),
                         f"the attacker's library ran as uid {os.geteuid()}: exit "
                         f"{p.returncode}, {p.err}")
        if code is not None:
            self.assertEqual(p.returncode, exit_code(code), p.err)
        if p.returncode:
            self.assertTrue(p.err.startswith("edgetrust: "), p.err)

    def test_a_path_as_the_tcti_name_is_never_loaded(self):
        tcti = self.evil + ":x"
        for how, args, env in (
                ("--tcti", ["--tcti", tcti, "serial", "read"], self.env()),
                ("EDGETRUST_TCTI", ["serial", "read"], self.env(EDGETRUST_TCTI=tcti)),
                ("TPM2TOOLS_TCTI", ["serial", "read"], self.env(TPM2TOOLS_TCTI=tcti))):
            with self.subTest(how=how):
                self.reset()
                p = self.run_cli(args, env)
                self.assert_not_run(p, "INVALID")
                self.assertIn("--tcti-module", p.err)

    def test_ld_library_path_is_never_searched(self):
        lib = self.libdir + ":" + os.environ.get("LD_LIBRARY_PATH", "")
        # An unknown name found only on the search path.
        p = self.run_cli(["--tcti", "evil:x", "serial", "read"], self.env(LD_LIBRARY_PATH=lib))
        self.assert_not_run(p, "INVALID")
        # An allowed name: the system's module is loaded, not the search path's copy, and it
        # still reaches the TPM.
        p = self.run_cli(["--tcti", self.tpm.tcti, "serial", "read"],
                         self.env(LD_LIBRARY_PATH=lib))
        self.assert_not_run(p)
        self.assertEqual((p.returncode, p.out.strip()), (0, "ADV-TCTI-1"), p.err)
        p = self.run_cli(["--tcti", "device:/nonexistent/tpm", "serial", "read"],
                         self.env(LD_LIBRARY_PATH=lib))
        self.assert_not_run(p, "TPM_UNREACHABLE")

    def test_tctis_that_run_other_code_are_not_loaded_by_name(self):
        # tpm2-tss' cmd TCTI runs its configuration as a command line; pcap loads the TCTI its
        # configuration names through tctildr's search.
        cmd_marker = self.tmpc.join("cmd-ran")
        for tcti in (f"cmd:touch {cmd_marker}", f"pcap:{self.evil}:x"):
            with self.subTest(tcti=tcti.split(":")[0]):
                self.reset()
                p = self.run_cli(["--tcti", tcti, "serial", "read"])
                self.assert_not_run(p, "INVALID")
                self.assertFalse(os.path.exists(cmd_marker), "cmd TCTI ran its command")

    def test_tcti_module_must_be_a_safe_absolute_file(self):
        conf = ["--tcti", "evil:x", "serial", "read"]
        cases = []
        cases.append(("relative", "lib/libtss2-tcti-evil.so.0", "INVALID"))
        ww = self.tmpc.join("world-writable.so")
        shutil.copy(self.evil, ww)
        os.chmod(ww, 0o757)
        cases.append(("world-writable", ww, "PERMISSION"))
        gw = self.tmpc.join("group-writable.so")
        shutil.copy(self.evil, gw)
        os.chmod(gw, 0o775)
        cases.append(("group-writable", gw, "PERMISSION"))
        other = self.tmpc.join("other-owner.so")
        shutil.copy(self.evil, other)
        os.chown(other, 65534, 65534)
        if os.geteuid() != 65534:
            cases.append(("another user's", other, "PERMISSION"))
        opendir = self.tmpc.join("open")
        os.mkdir(opendir)
        os.chmod(opendir, 0o777)  # writable by all, not sticky: the file can be swapped
        inopen = os.path.join(opendir, "m.so")
        shutil.copy(self.evil, inopen)
        os.chmod(inopen, 0o755)
        cases.append(("in a world-writable directory", inopen, "PERMISSION"))
        cases.append(("a directory", self.libdir, "PERMISSION"))
        for what, path, code in cases:
            with self.subTest(module=what):
                self.reset()
                p = self.run_cli(["--tcti-module", path] + conf,
                                 self.env(LD_LIBRARY_PATH=self.libdir))
                self.assert_not_run(p, code)
        # Never from the environment either.
        self.reset()
        p = self.run_cli(["serial", "read"], self.env(EDGETRUST_TCTI_MODULE=self.evil,
                                                      EDGETRUST_TCTI="evil:x"))
        self.assert_not_run(p, "INVALID")
        # The explicit option is the opt-in: a safe file is loaded (its constructor runs).
        self.reset()
        p = self.run_cli(["--tcti-module", self.evil] + conf)
        self.assertTrue(os.path.exists(self.marker), p.err)

    def test_agent_loads_no_tcti_by_search_path(self):
        tmp = etfix.TempDir("et-adv-tcti-agent-")
        self.addCleanup(tmp.cleanup)
        lib = self.libdir + ":" + os.environ.get("LD_LIBRARY_PATH", "")
        env = self.env(LD_LIBRARY_PATH=lib)
        for what, tcti, module, want in (
                ("name on the search path", "evil:x", None, 5),
                ("path as the name", self.evil + ":x", None, 3),  # the parser refuses it
                ("relative tcti_module", "evil:x", "lib/libtss2-tcti-evil.so.0", 3)):
            with self.subTest(what=what):
                self.reset()
                a = agentfix.Agent(tmp, tcti, 1, serial="ADV-TCTI-1", tcti_module=module)
                a.start(env=env)
                try:
                    rc = a.proc.wait(60)
                finally:
                    a.stop()
                self.assertFalse(os.path.exists(self.marker),
                                 "edgetrustd's TPM helper ran the attacker's library:\n" +
                                 a.run_log()[-2000:])
                self.assertEqual(rc, want, a.run_log()[-2000:])


class SerialRule(unittest.TestCase):
    """Finding 12: serials the cloud refuses were written into write-once NV."""

    BAD = ["bootstrap", "edgetrust-cloud", "-x", "", "S" * 65, ".", "..", "_a", "a b", "a/b",
           "dev+1", "a#"]

    def setUp(self):
        self.tpm = etfix.Swtpm().start()
        self.addCleanup(self.tpm.cleanup)
        self.tmp = etfix.TempDir("et-adv-serial-")
        self.addCleanup(self.tmp.cleanup)
        self.env = self.tpm.env()
        self.env.pop("TSS2_LOG", None)

    def et(self, *args):
        return etfix.run([CLI] + list(args), env=self.env, timeout=60)

    def cloud_activate(self, serial):
        return etfix.run([CLOUD, "activate", serial, "--db", self.tmp.join("registry.db")],
                         timeout=60)

    def test_invalid_serials_never_reach_nv_and_all_exit_alike(self):
        invalid = exit_code("INVALID")
        for serial in self.BAD:
            with self.subTest(serial=serial[:12]):
                for args in (["serial", "provision", "--", serial],
                             ["provision", "--serial=" + serial]):
                    p = self.et(*args)
                    self.assertEqual(p.returncode, invalid, f"{args}: {p.err}")
                    self.assertEqual(p.err.count("\n"), 1, p.err)
                    self.assertIn("invalid serial number", p.err)
                    self.assertIn("begins with a letter or digit", p.err)
                # The write-once index was never defined.
                p = self.et("serial", "read")
                self.assertEqual(p.returncode, exit_code("NV_UNDEFINED"),
                                 f"{serial!r} reached the TPM: {p.out}{p.err}")
        for args in (["creds", "seal", "--pubkey", "/nonexistent", "--serial", "bootstrap"],
                     ["creds", "open", "--serial", "-x", "--in", "/nonexistent"]):
            p = self.et(*args)
            self.assertEqual(p.returncode, invalid, f"{args}: {p.err}")
            self.assertIn("invalid serial number", p.err)

    def test_device_and_cloud_apply_the_same_rule(self):
        for serial in self.BAD + ["DEV-0001", "a.b_c-9", "9", "bootstrap2", "S" * 64]:
            with self.subTest(serial=serial[:12]):
                dev = self.et("serial", "provision", "--index", "0x01000010", "--", serial)
                if dev.returncode == 0:  # write-once: make room for the next serial
                    self.et("serial", "clear", "--index", "0x01000010")
                cloud = self.cloud_activate(serial)
                self.assertIn(dev.returncode, (0, exit_code("INVALID")), dev.err)
                self.assertEqual(dev.returncode == 0, cloud.returncode == 0,
                                 f"device: {dev.returncode} {dev.err}; cloud: "
                                 f"{cloud.returncode} {cloud.err}")


class ConfigFiles(unittest.TestCase):
    """Finding 13: a configuration or input path naming a FIFO blocked the program forever."""

    def setUp(self):
        self.tmp = etfix.TempDir("et-adv-files-")
        self.addCleanup(self.tmp.cleanup)

    def start_agent(self, conf):
        log = open(self.tmp.join("agent.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen([AGENTD, "-c", conf], stdout=log, stderr=log)
        self.addCleanup(etfix.stop_process, proc, signal.SIGKILL)
        return proc

    def agent_exit(self, conf):
        """edgetrustd's exit code; fails if it neither exits nor obeys SIGTERM."""
        proc = self.start_agent(conf)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
            self.fail(f"edgetrustd -c {conf} hung until SIGTERM")
        except subprocess.TimeoutExpired:
            self.fail(f"edgetrustd -c {conf} hung and ignored SIGTERM")

    def agent_log(self):
        with open(self.tmp.join("agent.log"), errors="replace") as f:
            return f.read()

    def test_agent_config_fifo_is_refused_at_once(self):
        fifo = self.tmp.join("edgetrustd.conf")
        os.mkfifo(fifo, 0o600)
        self.assertEqual(self.agent_exit(fifo), 3, self.agent_log())
        self.assertIn("FIFO", self.agent_log())
        self.assertIn("regular file", self.agent_log())

    def test_agent_config_must_be_a_bounded_regular_file(self):
        big = self.tmp.join("big.conf")
        with open(big, "wb") as f:
            f.write(b"# padding\n" * (1024 * 1024 // 10 + 1))
        for what, path in (("directory", self.tmp.path), ("character device", "/dev/zero"),
                           ("over 1 MiB", big)):
            with self.subTest(what=what):
                self.assertEqual(self.agent_exit(path), 3, self.agent_log())

    def cli(self, args, timeout=30):
        try:
            return etfix.run([CLI] + args, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"edgetrust {' '.join(args)} blocked")

    def test_cli_inputs_never_block_on_a_fifo_without_writer(self):
        fifo = self.tmp.join("in.fifo")
        os.mkfifo(fifo, 0o600)
        for args in (["creds", "inspect", "--in", fifo],
                     ["creds", "seal", "--pubkey", fifo, "--serial", "DEV-1", "--in", "/dev/null"],
                     ["--tcti", "swtpm:host=127.0.0.1,port=1", "serial", "clear",
                      "--owner-auth-file", fifo]):
            with self.subTest(args=args[:3]):
                p = self.cli(args)
                self.assertEqual(p.returncode, exit_code("IO"), p.err)
                self.assertIn("no program writes", p.err)
                self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))

    def test_cli_inputs_from_a_fifo_with_a_writer_and_a_directory_refused(self):
        # A FIFO with its writer (a shell's `--in <(...)`) still works.
        fifo = self.tmp.join("in.fifo")
        os.mkfifo(fifo, 0o600)
        # The writer is there before the CLI starts (our reader only lets its open() return).
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(fifo, os.O_WRONLY)
        os.close(r)

        def writer():
            time.sleep(0.2)  # the CLI's first read may find the writer and no data yet
            os.write(w, b"not an envelope")
            os.close(w)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        p = self.cli(["creds", "inspect", "--in", fifo])
        t.join(10)
        self.assertEqual(p.returncode, exit_code("ENVELOPE_FORMAT"), p.err)
        p = self.cli(["creds", "inspect", "--in", self.tmp.path])
        self.assertEqual(p.returncode, exit_code("IO"), p.err)
        self.assertIn("a directory", p.err)


if __name__ == "__main__":
    etfix.main()
