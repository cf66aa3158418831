#!/usr/bin/python3
"""Power cuts during factory provisioning (`edgetrust provision --serial X`).

A "device" is a swtpm whose state directory survives power cycles (--tpmstate dir=...,fsync).
A power cut is SIGKILL of swtpm and of the CLI at the same moment; power-on starts swtpm again
on the same state (TPM2_Startup(CLEAR), so transient objects and sessions are gone, like on a
real TPM). After every cut the provisioning is run again, and these must hold:

  - the serial in NV, once written, is the one asked for and never changes;
  - the persistent handles are a subset of {SRK 0x81000001, device key 0x81000002} during the
    cuts and exactly that pair at the end: never a second key, and the device key, once
    persisted, keeps its public key (fingerprint) forever;
  - a completed run leaves no transient object and no loaded session behind;
  - the dictionary-attack lockout counter stays 0 (every object involved is noDA);
  - a completed provisioning run again is a no-op (exit 0, same key), and provisioning with
    another serial is refused without touching the stored one.

Two ways to cut:
  random  sleep a random fraction of a clean run's duration, then cut (also a second cut in the
          rerun, with probability 1/2);
  steps   with the etfault TCTI, let the TPM execute the k-th command of a clean run and lose its
          answer, then cut: every command boundary of the provisioning flow, k = 1..N.

Usage: powercut.py [--cycles N] [--mode random|steps|both] [--seed S] [--json FILE]
       (tests/fault/powercut.sh sets the build directory up; docs/reliability.md has the numbers)
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
import etfix  # noqa: E402

NV_INDEX = 0x01000000
SRK = 0x81000001
KEY = 0x81000002
SERIAL = "PC-0001"
OTHER_SERIAL = "PC-9999"


class Device:
    """A TPM whose NV state survives power cycles."""

    def __init__(self, root):
        self.state_dir = os.path.join(root, "tpmstate")
        os.makedirs(self.state_dir, exist_ok=True)
        self.swtpm = None

    def power_on(self):
        self.swtpm = etfix.Swtpm(state_dir=self.state_dir, fsync=True).start()
        return self.swtpm

    def power_cut(self):
        if self.swtpm:
            self.swtpm.kill()
            self.swtpm.tmp.cleanup()
            self.swtpm = None

    @property
    def env(self):
        return self.swtpm.env()


def nv_serial(env):
    """The serial stored in NV: None if the index is undefined, "" if defined but unwritten."""
    nv = faultlib.handles(env, "nv-index")
    if NV_INDEX not in nv:
        return None
    # Owner read: the index is not NO_DA, so reading with its own auth is a DA-protected use,
    # and the next cut would raise the lockout counter because of this check itself.
    p = subprocess.run(["tpm2_nvread", hex(NV_INDEX), "-C", "o"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        if b"0x14a" in p.stderr.lower() or b"nv_uninitialized" in p.stderr.lower():
            return ""
        raise AssertionError(f"tpm2_nvread failed: {p.stderr.decode(errors='replace')}")
    return p.stdout.rstrip(b"\xff\x00").decode(errors="replace")


def key_fpr(env, handle):
    """SHA-256 of the DER SubjectPublicKeyInfo of a persistent key."""
    with tempfile.NamedTemporaryFile(suffix=".der") as f:
        p = subprocess.run(["tpm2_readpublic", "-c", hex(handle), "-f", "der", "-o", f.name],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"tpm2_readpublic {hex(handle)}: "
                                 f"{p.stderr.decode(errors='replace')}")
        return hashlib.sha256(f.read()).hexdigest()


class Run:
    def __init__(self, seed, log=print):
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        self.stats = {"seed": seed, "cycles": 0, "cuts": 0, "reruns": 0,
                      "cut_state": {}, "violations": [], "clean_run_s": None,
                      "clean_run_commands": None}

    def violation(self, cycle, text):
        self.stats["violations"].append(f"cycle {cycle}: {text}")
        self.log(f"VIOLATION cycle {cycle}: {text}")

    def provision_cmd(self, serial, env):
        # ET_POWERCUT_PROVISION replaces the CLI (to check this harness with a stand-in).
        alt = os.environ.get("ET_POWERCUT_PROVISION")
        prog = alt.split() if alt else ([etfix.binary("edgetrust")] + faultlib.module_args(env) +
                                        ["provision"])
        return prog + ["--serial", serial]

    def start_provision(self, env, serial=SERIAL):
        return subprocess.Popen(self.provision_cmd(serial, env), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def provision(self, env, serial=SERIAL, timeout=300):
        return etfix.run(self.provision_cmd(serial, env), env=env, timeout=timeout)

    # -- invariants ------------------------------------------------------------------------
    def check_partial(self, cycle, env, seen):
        """After a cut: whatever exists must be right. Returns a label of the state reached."""
        serial = nv_serial(env)
        if serial:
            if serial != SERIAL:
                self.violation(cycle, f"serial is {serial!r}, expected {SERIAL!r}")
            if seen.get("serial") not in (None, serial):
                self.violation(cycle, f"serial changed from {seen['serial']!r} to {serial!r}")
            seen["serial"] = serial
        elif seen.get("serial"):
            self.violation(cycle, "a written serial disappeared")
        persistent = faultlib.handles(env, "persistent")
        extra = [h for h in persistent if h not in (SRK, KEY)]
        if extra:
            self.violation(cycle, f"unexpected persistent handles {[hex(h) for h in extra]}")
        if KEY in persistent:
            fpr = key_fpr(env, KEY)
            if seen.get("fpr") not in (None, fpr):
                self.violation(cycle, f"device key replaced: {seen['fpr']} -> {fpr}")
            seen["fpr"] = fpr
        elif seen.get("fpr"):
            self.violation(cycle, "the persisted device key disappeared")
        label = ("none" if serial is None else "index-defined" if serial == "" else "serial")
        label += "+srk" if SRK in persistent else ""
        label += "+key" if KEY in persistent else ""
        lc = faultlib.getcap_var(env, "TPM2_PT_LOCKOUT_COUNTER")
        if lc != seen.get("lockout", 0):
            self.violation(cycle, f"lockout counter went to {lc} after a cut (state {label}, "
                                  f"last cut {seen.get('cut', '?')})")
        seen["lockout"] = lc
        return label

    def check_complete(self, cycle, env, seen):
        self.check_partial(cycle, env, seen)
        if nv_serial(env) != SERIAL:
            self.violation(cycle, "provisioning completed but the serial is not stored")
        persistent = sorted(faultlib.handles(env, "persistent"))
        if persistent != [SRK, KEY]:
            self.violation(cycle, f"persistent handles {[hex(h) for h in persistent]}, "
                                  f"expected exactly 0x81000001, 0x81000002")
        for kind in ("transient", "loaded-session"):
            left = faultlib.handles(env, kind)
            if left:
                self.violation(cycle, f"leaked {kind} handles {[hex(h) for h in left]}")
        # Idempotent rerun, then a different serial must be refused.
        p = self.provision(env)
        if p.returncode != 0:
            self.violation(cycle, f"rerun after completion failed ({p.returncode}): {p.err}")
        p = self.provision(env, OTHER_SERIAL)
        if p.returncode == 0:
            self.violation(cycle, "provisioning with another serial succeeded")
        if nv_serial(env) != SERIAL or key_fpr(env, KEY) != seen.get("fpr"):
            self.violation(cycle, "serial or key changed by a rerun")
        if faultlib.handles(env, "transient") or faultlib.handles(env, "loaded-session"):
            self.violation(cycle, "reruns leaked transient objects or sessions")

    # -- one clean run, to time it and count its TPM commands ---------------------------------
    def measure(self, root):
        dev = Device(os.path.join(root, "clean"))
        try:
            dev.power_on()
            f = faultlib.FaultTcti(root, dev.swtpm.tcti)
            t0 = time.monotonic()
            p = self.provision(f.env())
            elapsed = time.monotonic() - t0
            if p.returncode != 0:
                raise RuntimeError(f"clean provisioning failed ({p.returncode}): {p.err}")
            self.stats["clean_run_s"] = round(elapsed, 3)
            self.stats["clean_run_commands"] = len(f.log())
            return elapsed, len(f.log())
        finally:
            dev.power_cut()

    # -- cycles ---------------------------------------------------------------------------
    def cut_during(self, dev, env, delay, seen):
        """Starts provisioning, cuts the power after delay seconds (or once it exited)."""
        proc = self.start_provision(env)
        try:
            proc.wait(delay)
            seen["cut"] = f"after the CLI exited ({proc.returncode})"
        except subprocess.TimeoutExpired:
            seen["cut"] = f"{delay * 1000:.0f} ms into a run"
        # Power fails for the TPM and the host at once.
        dev.power_cut()
        faultlib.kill_tree(proc)
        proc.stdout.close()
        proc.stderr.close()
        self.stats["cuts"] += 1

    def cycle_random(self, cycle, root, duration):
        dev = Device(os.path.join(root, f"dev{cycle}"))
        seen = {}
        try:
            dev.power_on()
            self.cut_during(dev, dev.env, self.rng.uniform(0, duration * 1.1), seen)
            dev.power_on()
            state = self.check_partial(cycle, dev.env, seen)
            self.stats["cut_state"][state] = self.stats["cut_state"].get(state, 0) + 1
            if self.rng.random() < 0.5:
                self.cut_during(dev, dev.env, self.rng.uniform(0, duration * 1.1), seen)
                dev.power_on()
                self.check_partial(cycle, dev.env, seen)
            p = self.provision(dev.env)
            self.stats["reruns"] += 1
            if p.returncode != 0:
                self.violation(cycle, f"provisioning after a cut failed ({p.returncode}): {p.err}")
            else:
                self.check_complete(cycle, dev.env, seen)
        finally:
            dev.power_cut()
            shutil.rmtree(os.path.join(root, f"dev{cycle}"), ignore_errors=True)
        self.stats["cycles"] += 1

    def cycle_step(self, cycle, root, k):
        """The TPM executes command k, its answer is lost, then the power goes."""
        d = os.path.join(root, f"step{k}")
        dev = Device(d)
        seen = {}
        try:
            dev.power_on()
            f = faultlib.FaultTcti(d, dev.swtpm.tcti)
            f.rules(f"fault=drop-response after={k - 1} count=1")
            p = self.provision(f.env())
            executed = f.log()
            name = executed[k - 1][2] if len(executed) >= k else "-"
            dev.power_cut()
            dev.power_on()
            state = self.check_partial(cycle, dev.env, seen)
            key = f"after {name}: {state}"
            self.stats["cut_state"][key] = self.stats["cut_state"].get(key, 0) + 1
            self.stats["cuts"] += 1
            # Success despite a lost answer is acceptable only when nothing depended on it
            # (e.g. the flush of a session at the very end); the state checks decide.
            if p.returncode == 0:
                self.stats["success_despite_loss"] = self.stats.get("success_despite_loss", 0) + 1
            p = self.provision(dev.env)
            self.stats["reruns"] += 1
            if p.returncode != 0:
                self.violation(cycle, f"provisioning after losing command {k} ({name}) "
                                      f"failed ({p.returncode}): {p.err}")
            else:
                self.check_complete(cycle, dev.env, seen)
        finally:
            dev.power_cut()
            shutil.rmtree(d, ignore_errors=True)
        self.stats["cycles"] += 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=int(os.environ.get("ET_POWERCUT_CYCLES", 20)))
    ap.add_argument("--mode", choices=["random", "steps", "both"], default="random")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None, help="write the statistics there")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    log = (lambda *x: None) if a.quiet else (lambda *x: print(*x, flush=True))
    run = Run(seed, log)
    tmp = etfix.TempDir("et-powercut-")
    t0 = time.monotonic()
    try:
        duration, ncmd = run.measure(tmp.path)
        log(f"seed {seed}: a clean provisioning takes {duration:.2f} s and {ncmd} TPM commands")
        cycle = 0
        if a.mode in ("steps", "both"):
            for k in range(1, ncmd + 1):
                cycle += 1
                run.cycle_step(cycle, tmp.path, k)
        if a.mode in ("random", "both"):
            for _ in range(a.cycles):
                cycle += 1
                run.cycle_random(cycle, tmp.path, duration)
                if cycle % 25 == 0:
                    log(f"{cycle} cycles, {run.stats['cuts']} cuts, "
                        f"{len(run.stats['violations'])} violations")
    finally:
        tmp.cleanup()
    run.stats["elapsed_s"] = round(time.monotonic() - t0, 1)
    log(json.dumps(run.stats, indent=1, sort_keys=True))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(run.stats, f, indent=1, sort_keys=True)
    return 1 if run.stats["violations"] else 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
