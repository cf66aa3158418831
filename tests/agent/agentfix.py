"""Fixtures for the edgetrustd tests: a provisioned swtpm, mosquitto, a Modbus simulator,
edgetrustd itself with a generated configuration, and a minimal cloud stand-in.

The real cloud (edgetrust-cloud, tests/lib/cloudfix.py) is used by the end-to-end tests when it
is built; MiniCloud (paho + et_envelope_seal through ctypes) plays the cloud's part of
docs/protocol.md for the tests that need to misbehave on purpose (replayed or foreign
envelopes) or to run before the cloud exists.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import etfix

PY3 = "/usr/bin/python3"


def seal(pubkey_pem, serial, version, plaintext, issued_at=None):
    """Envelope (docs/envelope.md) sealing plaintext to pubkey_pem, written independently of
    libedgetrust with python3-cryptography (so it also works against ASan builds)."""
    import hashlib
    import struct
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    pub = serialization.load_pem_public_key(pubkey_pem.encode())
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    key = os.urandom(32)
    wrapped = pub.encrypt(key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                            algorithm=hashes.SHA256(), label=None))
    nonce = os.urandom(12)
    s = serial.encode()
    aad = (b"ETE1" + bytes([1, 1, 1, len(s)]) + s + hashlib.sha256(der).digest()
           + struct.pack(">IQH", version, int(issued_at or time.time()), len(wrapped)) + wrapped
           + nonce + struct.pack(">I", len(plaintext)))
    ct = AESGCM(key).encrypt(nonce, plaintext, aad)  # ciphertext || tag
    return aad + ct


SIM = r'''
import sys, logging
from pymodbus.server import StartTcpServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
import threading, time
port = int(sys.argv[1])
block = ModbusSequentialDataBlock(0, [0] * 200)
ctx = ModbusServerContext(slaves=ModbusSlaveContext(hr=block, ir=block, co=ModbusSequentialDataBlock(0, [0]*200), di=ModbusSequentialDataBlock(0, [0]*200)), single=True)
def tick():
    v = 0
    while True:
        v = (v + 1) % 1000
        block.setValues(1, [200 + v % 50, v])
        time.sleep(0.05)
threading.Thread(target=tick, daemon=True).start()
StartTcpServer(context=ctx, address=("127.0.0.1", port))
'''


class ModbusSim:
    """tests/lib/modbus_sim.py when present, else a tiny pymodbus TCP server."""

    def __init__(self, tmp, faults=()):
        self.tmp = tmp
        self.proc = None
        self.port = None
        self.faults = list(faults)

    def start(self):
        """Starts the simulator; when that fails, stops what it started before raising."""
        try:
            self._start()
            etfix.fail_point("modbus")
            return self
        except BaseException:
            self.stop()
            raise

    def _start(self):
        sim = os.path.join(etfix.SOURCE, "tests", "lib", "modbus_sim.py")
        for _ in range(5):
            self.port = etfix.free_ports(1)
            if os.path.exists(sim):
                args = [PY3, sim, "--tcp", str(self.port)]
                for f in self.faults:
                    args += ["--fault", f]
            else:
                path = self.tmp.join("sim.py")
                with open(path, "w") as f:
                    f.write(SIM)
                args = [PY3, path, str(self.port)]
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                         stderr=open(self.tmp.join("sim.log"), "w"))
            if etfix.wait_port(self.port, 15, self.proc):
                return
            etfix.stop_process(self.proc)
        raise RuntimeError("Modbus simulator did not start")

    def stop(self):
        etfix.stop_process(self.proc)


class MiniCloud:
    """The cloud's side of docs/protocol.md, just enough for agent tests (anonymous broker)."""

    def __init__(self, port, auto_accept=True, password="pw-0123456789abcdef0123456789abcdef",
                 ack=True):
        import paho.mqtt.client as mqtt
        self.port = port
        self.auto_accept = auto_accept
        self.ack = ack          # acknowledge stored telemetry (et/v1/<serial>/telemetry/ack)
        self.password = password
        self.lock = threading.Lock()
        self.seqs = {}          # seq -> record (the store: one row per seq)
        self.dups = 0           # duplicates on the wire (fine)
        self.conflicts = 0      # the same seq for a different reading (never fine)
        self.registrations = []
        self.reported = []
        self.status = []
        self.pubkeys = {}
        # A persistent session, so nothing published while it reconnects after a broker
        # restart is lost to it (the real cloud does the same).
        self.c = mqtt.Client(client_id=f"minicloud-{os.getpid()}-{port}", clean_session=False,
                             protocol=mqtt.MQTTv311)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.username_pw_set("cloud", "cloud")
        self.c.reconnect_delay_set(1, 2)
        self.connected = threading.Event()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("minicloud: no connection")

    def _on_connect(self, c, ud, flags, rc):
        c.subscribe([("et/v1/+/register", 1), ("et/v1/+/telemetry", 1),
                     ("et/v1/+/settings/reported", 1), ("et/v1/+/status", 1)])
        self.connected.set()

    def creds(self, serial, version, password=None):
        return json.dumps({"v": 1, "host": "127.0.0.1", "port": self.port, "tls": False,
                           "username": serial, "password": password or self.password,
                           "client_id": serial, "cred_version": version}).encode()

    def envelope(self, serial, version, password=None, pem=None):
        return seal(pem or self.pubkeys[serial], serial, version, self.creds(serial, version, password))

    def accept(self, serial, version=1, nonce="", envelope=None):
        env = envelope or self.envelope(serial, version)
        self.c.publish(f"et/v1/{serial}/register/reply", json.dumps({
            "v": 1, "serial": serial, "status": "accepted", "reason": "", "nonce": nonce,
            "cred_version": version, "envelope": base64.b64encode(env).decode()}),
            qos=1, retain=True).wait_for_publish()

    def rotate(self, serial, version, envelope=None, password=None):
        env = envelope or self.envelope(serial, version, password)
        self.c.publish(f"et/v1/{serial}/creds", json.dumps({
            "v": 1, "cred_version": version, "envelope": base64.b64encode(env).decode()}),
            qos=1, retain=True).wait_for_publish()

    def desired(self, serial, version, settings):
        self.c.publish(f"et/v1/{serial}/settings/desired",
                       json.dumps({"v": 1, "version": version, "settings": settings}),
                       qos=1, retain=True).wait_for_publish()

    def _on_message(self, c, ud, msg):
        parts = msg.topic.split("/")
        serial = parts[2]
        try:
            d = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if parts[3] == "register":
                self.registrations.append(d)
                self.pubkeys[serial] = d["pubkey_pem"]
                if self.auto_accept:
                    threading.Thread(target=self.accept, args=(serial, 1, d["nonce"])).start()
                else:
                    c.publish(f"et/v1/{serial}/register/reply", json.dumps({
                        "v": 1, "serial": serial, "status": "pending", "nonce": d["nonce"],
                        "reason": "waiting for the operator"}), qos=1, retain=True)
            elif parts[3] == "telemetry":
                for r in d["records"]:
                    if r["seq"] in self.seqs:
                        self.dups += 1
                        if self.seqs[r["seq"]] != r:
                            self.conflicts += 1
                    self.seqs[r["seq"]] = r
                if self.ack:
                    # Stored (in memory) at once: acknowledged like the real cloud does after
                    # its commit, retained, naming the message's spool epoch (docs/protocol.md,
                    # "Delivery end to end", "Spool epoch").
                    c.publish(f"et/v1/{serial}/telemetry/ack",
                              json.dumps({"v": 1, "serial": serial, "epoch": d.get("epoch", 0),
                                          "ranges": ranges(r["seq"] for r in d["records"])}),
                              qos=1, retain=True)
            elif parts[3] == "settings":
                self.reported.append(d)
            elif parts[3] == "status":
                self.status.append(d)

    def count(self):
        with self.lock:
            return len(self.seqs)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def ranges(seqs):
    """Sorted, merged [lo, hi] ranges of sequence numbers (as in a telemetry ack)."""
    out = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Agent:
    """edgetrustd with a generated configuration in tmp; data_dir = tmp/data. Telemetry leaves
    the spool on the cloud's ack (MiniCloud and edgetrust-cloud send one); spool_extra goes into
    [spool], by default a 5 s ack timeout so lost messages go again within a test's patience."""

    def __init__(self, tmp, tcti, broker_port, modbus_port=None, serial="SN-TEST-1",
                 extra_devices="", log_level="debug", data_dir=None, spool_max=100000,
                 poll_ms=100, bootstrap_password="bootpw", spool_extra="ack_timeout_s = 5\n",
                 tcti_module=None):
        self.tmp = tmp
        self.data_dir = data_dir or tmp.join("data")
        self.conf = tmp.join("edgetrustd.conf")
        self.log_path = tmp.join("agent.log")
        self.proc = None
        self.serial = serial
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        pwfile = tmp.join("bootstrap.secret")
        with open(pwfile, "w") as f:
            f.write(bootstrap_password + "\n")
        os.chmod(pwfile, 0o600)
        modbus = ""
        if modbus_port:
            modbus = (f"[modbus.plc1]\ntransport = tcp\nhost = 127.0.0.1\nport = {modbus_port}\n"
                      f"unit_id = 1\ntimeout_ms = 300\npoll_ms = {poll_ms}\n\n"
                      "[point.plc1.temp]\ntable = holding\naddress = 0\ntype = i16\nscale = 0.1\n"
                      "unit = degC\n\n[point.plc1.counter]\ntable = holding\naddress = 1\n"
                      "type = u16\n\n")
        with open(self.conf, "w") as f:
            module = f"tcti_module = {tcti_module}\n" if tcti_module else ""
            f.write(f"[agent]\ntcti = {tcti}\n{module}data_dir = {self.data_dir}\n"
                    f"log_level = {log_level}\n"
                    "register_backoff_max_s = 5\n\n"
                    f"[broker]\nhost = 127.0.0.1\nport = {broker_port}\ntls = false\n"
                    f"bootstrap_username = bootstrap\nbootstrap_password_file = {pwfile}\n"
                    "keepalive_s = 5\nreconnect_min_s = 1\nreconnect_max_s = 2\n\n"
                    f"[spool]\nmax_records = {spool_max}\nbatch = 20\n{spool_extra}\n"
                    + modbus + extra_devices)

    def start(self, env=None):
        self.logf = open(self.log_path, "ab")
        self.log_off = self.logf.tell()
        self.proc = subprocess.Popen([etfix.binary("edgetrustd"), "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf, env=env)
        try:
            etfix.fail_point("agent")
        except BaseException:
            self.stop()
            raise
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def run_log(self):
        """The log of the current (last started) run."""
        with open(self.log_path, "rb") as f:
            f.seek(getattr(self, "log_off", 0))
            return f.read().decode(errors="replace")

    def wait_log(self, text, timeout=30.0):
        try:
            return wait_for(lambda: text in self.run_log(), timeout, f"'{text}' in the agent log")
        except AssertionError as e:
            # The log as it is now, at the failure, not as it was when the wait began.
            raise AssertionError(f"{e}:\n{self.run_log()[-3000:]}") from None

    def stop(self, sig=signal.SIGTERM):
        etfix.stop_process(self.proc, sig, timeout=15)
        rc = self.proc.returncode if self.proc else None
        if getattr(self, "logf", None):
            self.logf.close()
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def ctl(self, req):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(os.path.join(self.data_dir, "agent.sock"))
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        return json.loads(buf)


def mount_tmpfs(case, tmp, size):
    """A small tmpfs at tmp/data (mode 0700) to fill /data up; skips the test where mounting
    is not allowed (not root). Returns the mount point; unmount_tmpfs() undoes it."""
    mnt = tmp.join("data")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", mnt],
                       capture_output=True)
    if p.returncode != 0:
        tmp.cleanup()
        case.skipTest(f"cannot mount a tmpfs (needs root): {p.stderr.decode().strip()}")
    return mnt


def unmount_tmpfs(mnt):
    subprocess.run(["umount", "-l", mnt], capture_output=True)


def provision(swtpm, serial):
    p = etfix.run([etfix.binary("edgetrust"), "--tcti", swtpm.tcti, "serial", "provision", serial])
    if p.returncode != 0:
        raise AssertionError(f"provision failed: {p.err}")


def local_stack(case, serial, poll_ms, *, provisioned=True, tmpfs=None, cloud=None, **agent_kw):
    """The set-up most agent tests share, on case: case.tmp, case.tpm (swtpm), case.mq
    (anonymous mosquitto), case.sim (Modbus TCP simulator), case.cloud (MiniCloud with the
    keyword arguments in cloud), case.agent (not started), and case.mnt when tmpfs gives a
    size for a small /data. The serial is provisioned unless provisioned=False. Everything is
    stopped after the test, in reverse order, also when the set-up fails half way."""
    case.tmp = etfix.TempDir()
    case.addCleanup(case.tmp.cleanup)
    if tmpfs:
        case.mnt = mount_tmpfs(case, case.tmp, tmpfs)
        case.addCleanup(unmount_tmpfs, case.mnt)
        agent_kw.setdefault("data_dir", case.mnt)
    case.tpm = etfix.Swtpm().start()
    # Through a lambda: tests may replace case.tpm (a restarted swtpm) and case.mq.
    case.addCleanup(lambda: case.tpm.cleanup())
    case.mq = etfix.Mosquitto(allow_anonymous=True).start()
    case.addCleanup(lambda: case.mq.cleanup())
    if provisioned:
        provision(case.tpm, serial)
    case.sim = ModbusSim(case.tmp).start()
    case.addCleanup(lambda: case.sim.stop())
    case.cloud = MiniCloud(case.mq.port, **(cloud or {}))
    case.addCleanup(lambda: case.cloud.stop())
    case.agent = Agent(case.tmp, case.tpm.tcti, case.mq.port, case.sim.port, serial=serial,
                       poll_ms=poll_ms, **agent_kw)
    case.addCleanup(lambda: case.agent.stop())


def cloud_stack(case, db="sqlite", modbus=True, **stack_kw):
    """The set-up of the agent tests against the real edgetrust-cloud (tests/lib/cloudfix.py):
    case.tmp, case.tpm (swtpm), case.stack (mosquitto + serve on db), case.procs (processes
    the test starts, stopped in reverse order), and with modbus a simulator on case.port.
    case.agent, once the test sets it, is stopped first. Skips when the cloud is not built."""
    try:
        import cloudfix
    except ImportError:
        cloudfix = None
    if cloudfix is None or not os.path.exists(etfix.binary("edgetrust-cloud")):
        case.skipTest("edgetrust-cloud / tests/lib/cloudfix.py not available")
    case.tmp = etfix.TempDir()
    case.addCleanup(case.tmp.cleanup)
    case.tpm = etfix.Swtpm().start()
    case.addCleanup(lambda: case.tpm.cleanup())
    case.stack = cloudfix.CloudStack(db=db, **stack_kw).start()
    case.addCleanup(lambda: case.stack.cleanup())
    case.procs = []
    case.addCleanup(lambda: [etfix.stop_process(p) for p in reversed(case.procs)])
    if modbus:
        sim = ModbusSim(case.tmp).start()
        case.addCleanup(sim.stop)
        case.port = sim.port
    case.addCleanup(lambda: case.agent.stop() if hasattr(case, "agent") else None)


class Proxy:
    """A TCP proxy on a free loopback port in front of target_port: cut() drops every
    connection and refuses new ones (the device's network goes away), restore() ends that."""

    def __init__(self, target_port):
        import select  # noqa: F401  (used by the pump threads)
        self.target = target_port
        self.port = etfix.free_ports(1)
        self.up = True
        self.lock = threading.Lock()
        self.conns = []
        self.stopped = False
        self.lsock = None
        self._listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.2)
        self.lsock = s

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            if not self.up:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.up = True

    def stop(self):
        self.stopped = True
        self.cut()
        self.lsock.close()
