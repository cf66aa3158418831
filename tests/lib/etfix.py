"""Shared fixtures for edgetrust integration tests.

Every fixture starts a real component (swtpm, mosquitto, ...) on free loopback ports in a
private temporary directory and stops it on exit, so tests can run in parallel. Run tests with
Debian's /usr/bin/python3 (it has pymodbus and paho-mqtt).

Clean-up, also when a set-up fails half way: a fixture whose start() fails stops what it
started and removes its directory before it raises. Temporary directories are made under
$TMPDIR (tempfile's rule) with an et- prefix. As a last line of defence, when the test process
ends (normally, by an exception, or by SIGTERM from meson's timeout), every fixture still alive
is cleaned up, every process that carries this test process's ET_TEST_OWNER mark in its
environment (inherited by everything a test starts, daemons included) is killed, and every et-
directory a fixture made is removed: a tearDown that never ran (setUp raised) leaks nothing.

ET_TEST_FAIL_SETUP=name[,name...] makes those fixtures fail on purpose at the end of their
start(), after their process is up: swtpm, mosquitto, postgres, modbus (the Modbus simulator),
socat, serve (edgetrust-cloud serve), agent (edgetrustd). tests/fault/test_setup_cleanup.py uses
it to check that a failing set-up leaves no directory and no process behind.
"""
import atexit
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("ET_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("ET_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


# --- clean-up of whatever a test process started ---------------------------------------------
# Every process started from here on inherits the mark; a fresh one per test process, so a test
# that runs other tests (test_setup_cleanup.py) does not kill their processes as its own.
OWNER = f"{os.getpid()}-{secrets.token_hex(6)}"
os.environ["ET_TEST_OWNER"] = OWNER
_live = []       # fixtures started or made and not yet cleaned up (objects with cleanup())
_live_dirs = set()


def fail_point(name):
    """Raises when ET_TEST_FAIL_SETUP names this fixture: a set-up that fails on purpose."""
    if name in os.environ.get("ET_TEST_FAIL_SETUP", "").split(","):
        raise RuntimeError(f"{name} set-up failed on purpose (ET_TEST_FAIL_SETUP={name})")


def track(fixture):
    """Registers a fixture for the exit-time clean-up; untrack() when it cleaned itself up."""
    _live.append(fixture)
    return fixture


def untrack(fixture):
    with contextlib.suppress(ValueError):
        _live.remove(fixture)


def mkdtemp(prefix="et-test-"):
    """A 0700 temporary directory under $TMPDIR, removed at exit if its owner did not."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o700)
    _live_dirs.add(path)
    return path


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
    _live_dirs.discard(path)


def marked_processes(owner=OWNER):
    """PIDs (other than ours) whose environment carries ET_TEST_OWNER=owner."""
    mark = f"ET_TEST_OWNER={owner}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if mark in f.read().split(b"\0"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def _clean_up_everything():
    for fixture in reversed(list(_live)):
        with contextlib.suppress(Exception):
            fixture.cleanup()
    for _ in range(20):
        pids = marked_processes()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for path in list(_live_dirs):
        rmtree(path)


def _on_sigterm(signum, frame):
    _clean_up_everything()
    os._exit(128 + signum)


atexit.register(_clean_up_everything)
if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


def binary(name):
    """Path of a built program: edgetrust, edgetrustd, edgetrust-cloud."""
    sub = {"edgetrust": "src/cli", "edgetrustd": "src/agent", "edgetrust-cloud": "src/cloud"}[name]
    return os.path.join(BUILD, sub, name)


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n=1):
    """First port of n consecutive free loopback TCP ports (racy by nature: callers retry)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free loopback ports")


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)
    return False


def stop_process(proc, sig=signal.SIGTERM, timeout=5.0):
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class TempDir:
    def __init__(self, prefix="et-test-"):
        self.path = mkdtemp(prefix)

    def join(self, *p):
        return os.path.join(self.path, *p)

    def cleanup(self):
        rmtree(self.path)


_SWTPM_FSYNC = None


def swtpm_has_fsync():
    """Whether swtpm accepts --tpmstate ...,fsync (added after 0.7.1, Debian 12's version).
    Without it swtpm still writes its state before answering, so a SIGKILL of swtpm (our power
    cut) loses nothing the kernel has; fsync only matters when the kernel itself dies."""
    global _SWTPM_FSYNC
    if _SWTPM_FSYNC is None:
        p = subprocess.run(["swtpm", "socket", "--print-capabilities"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        _SWTPM_FSYNC = b"fsync" in p.stdout
    return _SWTPM_FSYNC


class Swtpm:
    """A fresh swtpm (TPM 2.0) on free loopback ports. log=True records every command."""

    def __init__(self, state_dir=None, log=False, fsync=False):
        self.tmp = TempDir("et-swtpm-")
        self.state_dir = state_dir or self.tmp.join("state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.log_path = self.tmp.join("swtpm.log") if log else None
        self.fsync = fsync
        self.proc = None
        self.port = None
        track(self)

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self):
        for _ in range(10):
            self.port = free_ports(2)
            args = ["swtpm", "socket", "--tpm2",
                    "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                    "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
                    "--flags", "not-need-init,startup-clear",
                    "--tpmstate", f"dir={self.state_dir}" +
                    (",fsync" if self.fsync and swtpm_has_fsync() else "")]
            if self.log_path:
                args += ["--log", f"file={self.log_path},level=20"]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if wait_port(self.port, 10, self.proc):
                fail_point("swtpm")
                return self
            stop_process(self.proc)
        raise RuntimeError("swtpm did not start")

    @property
    def tcti(self):
        return f"swtpm:host=127.0.0.1,port={self.port}"

    def env(self, base=None):
        """Environment for tpm2-tools and our CLI pointing at this swtpm."""
        e = dict(os.environ if base is None else base)
        e["TPM2TOOLS_TCTI"] = self.tcti
        e["EDGETRUST_TCTI"] = self.tcti
        return e

    def count_commands(self):
        """Number of TPM commands swtpm executed so far (from its level-20 log)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return 0
        with open(self.log_path, errors="replace") as f:
            return sum(1 for line in f if "SWTPM_IO_Read:" in line and "length" in line)

    def kill(self):
        stop_process(self.proc, signal.SIGKILL)

    def stop(self):
        stop_process(self.proc)

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()
        untrack(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class Mosquitto:
    """mosquitto 2 on a free loopback port. extra: config lines (e.g. the dynsec plugin)."""

    DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

    def __init__(self, extra="", allow_anonymous=False, tmp=None, env=None):
        self.tmp = tmp or TempDir("et-mqtt-")
        self.env = env  # environment of the broker process (None: inherited)
        self.extra = extra
        self.allow_anonymous = allow_anonymous
        self.proc = None
        self.port = None
        track(self)

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self):
        for _ in range(10):
            self.port = free_ports(1)
            conf = self.tmp.join("mosquitto.conf")
            with open(conf, "w") as f:
                f.write(f"user root\nper_listener_settings false\n"
                        f"listener {self.port} 127.0.0.1\n"
                        f"allow_anonymous {'true' if self.allow_anonymous else 'false'}\n"
                        f"persistence true\npersistence_location {self.tmp.path}/\n"
                        f"log_dest file {self.tmp.join('mosquitto.log')}\nlog_type all\n"
                        f"{self.extra}\n")
            self.proc = subprocess.Popen(["mosquitto", "-c", conf], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if wait_port(self.port, 10, self.proc):
                fail_point("mosquitto")
                return self
            stop_process(self.proc)
        raise RuntimeError("mosquitto did not start")

    def restart(self):
        stop_process(self.proc)
        port = self.port
        self.proc = subprocess.Popen(["mosquitto", "-c", self.tmp.join("mosquitto.conf")],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_port(port, 10, self.proc):
            raise RuntimeError("mosquitto did not restart")

    def stop(self):
        stop_process(self.proc)

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()
        untrack(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def run(args, input=None, env=None, check=False, timeout=120):
    """Runs a program, returns CompletedProcess with text stdout/stderr."""
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(args, input=input, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}): {p.err}")
    return p


def main():
    unittest.main(verbosity=2)
