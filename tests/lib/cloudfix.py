"""The whole cloud side for tests: mosquitto + dynamic security + edgetrust-cloud serve.

    from cloudfix import CloudStack, SoftDevice
    with CloudStack(db="sqlite", auto_accept=False) as c:   # or db="postgresql", instances=3
        c.cli("activate", "SN1")                  # runs edgetrust-cloud with --db; CompletedProcess
        c.broker_port                             # 127.0.0.1 port of the broker
        c.bootstrap_password_file                 # 0600 file with the bootstrap login's password
        c.bootstrap_password                      # its content (tests only)
        dev = SoftDevice("SN1")                   # software RSA-2048 key, no TPM
        reply = dev.register(c)                   # publishes et/v1/SN1/register, returns the reply dict
        c.cli("accept", "SN1"); reply = dev.wait_reply(c, status="accepted")
        creds = dev.open(reply["envelope"])       # the credentials dict (docs/protocol.md)
        cl = c.mqtt(creds["username"], creds["password"], creds["client_id"])  # paho client or error

Options: accounts="registry" (default, as serve: device logins in the registry, checked by the
edgetrust mosquitto plugin loaded before dynamic security) or "dynsec" (device logins in
mosquitto's dynamic security), instances=3 (serve processes i0..i2 sharing the subscription), auto_accept=True,
serve_args=[...] (extra serve options), start_serve=False (start later with c.start_serve(i),
or build your own from c.serve_cmd(i)), broker_extra="mosquitto.conf lines" (e.g. a TLS
listener), pg_fsync=False (faster PostgreSQL for tests), log_level="debug". c.db_url is the
registry (a SQLite path or postgresql://...), c.cloud_password_file the serve login,
c.dynsec_clients() the dynamic-security logins, c.device_logins() the device logins of either
mode ({serial: enabled}), c.accounts() the broker_accounts rows, c.device(serial) the
registry's view (show --json). The plugin runs inside Debian's mosquitto; in the ASan build it
is built without sanitizers (see plugin_env()).
Each stack has its own temp dir, free ports, its own mosquitto and database; serve logs are
at c.serve_log(i). Leaving the `with` stops serve (SIGTERM; c.serve_exit_codes) and the rest.
"""
import base64
import json
import os
import re
import struct
import subprocess
import threading
import time

import etfix
from etfix import Mosquitto, TempDir, binary, fail_point, run, stop_process, track, untrack

DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


def edgetrust_plugin():
    return os.path.join(etfix.BUILD, "src", "cloud", "broker-plugin", "edgetrust_auth.so")


def plugin_env():
    """Environment for a mosquitto that loads our plugin. Debian's mosquitto is not built with
    sanitizers, so the ASan build compiles the plugin without them (preloading libasan into
    mosquitto deadlocks in glibc's bindtextdomain when libpq starts). Should a plugin linked
    with a sanitizer runtime turn up anyway, the runtime is preloaded here (leak detection
    off: the broker's own leaks are not ours)."""
    env = dict(os.environ)
    p = subprocess.run(["ldd", edgetrust_plugin()], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    libs = [line.split("=>")[1].split("(")[0].strip() for line in p.stdout.splitlines()
            if "=>" in line and ("libasan" in line or "libubsan" in line)]
    libs = [l for l in libs if l and os.path.exists(l)]
    if libs:
        env["LD_PRELOAD"] = ":".join(sorted(libs, key=lambda l: "libasan" not in l))
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0:verify_asan_link_order=0"
    return env


class CloudStack:
    def __init__(self, db="sqlite", auto_accept=False, instances=1, serve_args=(),
                 pg_fsync=True, start_serve=True, log_level="info", broker_extra="",
                 accounts="registry"):
        assert db in ("sqlite", "postgresql")
        assert accounts in ("registry", "dynsec")
        self.db = db
        self.accounts_mode = accounts
        self.auto_accept = auto_accept
        self.instances = instances
        self.serve_args = list(serve_args)
        self.pg_fsync = pg_fsync
        self.start_serve_flag = start_serve
        self.log_level = log_level
        self.broker_extra = broker_extra
        self.tmp = TempDir("et-cloud-")
        self.pg = None
        self.mqtt_broker = None
        self.serves = []
        self.serve_exit_codes = []
        self.broker_dir = self.tmp.join("broker")
        track(self)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self):
        try:
            self._start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _start(self):
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", self.broker_dir])
        if p.returncode != 0:
            raise RuntimeError(f"init-broker failed: {p.err}")
        if self.db == "postgresql":
            from pg import Postgres
            self.pg = Postgres(fsync=self.pg_fsync).start()
            self.db_url = self.pg.url
        else:
            self.db_url = self.tmp.join("registry.db")
        # first, in both modes: it binds every login to its own client id and refuses retained
        # and oversized publishes from devices and bootstrap; in registry mode it also answers
        # for device logins. Everything else defers to dynamic security.
        # (ET_CLOUDFIX_DYNSEC_PLUGIN=0: dynsec mode without it, as before the plugin had that
        # mode; only for negative controls against old code)
        extra = f"plugin {edgetrust_plugin()}\n"
        if self.accounts_mode == "registry":
            extra += f"plugin_opt_registry {self.db_url}\n"
        elif os.environ.get("ET_CLOUDFIX_DYNSEC_PLUGIN") != "0":
            extra += "plugin_opt_accounts dynsec\n"
        else:
            extra = ""
        env = plugin_env()
        extra += (f"plugin {DYNSEC_PLUGIN}\n"
                  f"plugin_opt_config_file {self.broker_dir}/dynamic-security.json\n")
        # the limits init-broker writes (max_packet_size, max_queued_*, ...), then ours
        with open(os.path.join(self.broker_dir, "mosquitto-edgetrust.conf")) as f:
            extra += "".join(l for l in f if l.startswith(("max_", "allow_zero_length_clientid")))
        extra += "max_queued_messages 200000\nmax_inflight_messages 1000\n" + self.broker_extra
        self.mqtt_broker = Mosquitto(extra=extra, tmp=TempDir("et-mqtt-"), env=env).start()
        if self.start_serve_flag:
            for i in range(self.instances):
                self.start_serve(i)

    def serve_cmd(self, i=0):
        args = [binary("edgetrust-cloud"), "serve", "--db", self.db_url,
                "--instance", f"i{i}", "--broker-host", "127.0.0.1",
                "--broker-port", str(self.broker_port),
                "--broker-password-file", self.cloud_password_file,
                "--public-no-tls", "--poll-ms", "200", "--log-level", self.log_level,
                "--accounts", self.accounts_mode]
        if self.auto_accept:
            args.append("--auto-accept")
        return args + self.serve_args

    def start_serve(self, i=0, wait=True):
        log = open(self.serve_log(i), "ab")
        proc = subprocess.Popen(self.serve_cmd(i), stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        while len(self.serves) <= i:
            self.serves.append(None)
        self.serves[i] = proc
        fail_point("serve")
        if wait:
            self.wait_log(r"serving \(", i=i, timeout=30)
            self.wait_log(r"connected to broker", i=i, timeout=30)
        return proc

    def stop_serve(self, i=0):
        proc = self.serves[i]
        if proc is None:
            return None
        stop_process(proc, timeout=15)
        self.serve_exit_codes.append(proc.returncode)
        self.serves[i] = None
        return proc.returncode

    def stop(self):
        for i in range(len(self.serves)):
            self.stop_serve(i)

    def cleanup(self):
        self.stop()
        if self.mqtt_broker:
            self.mqtt_broker.cleanup()
        if self.pg:
            self.pg.cleanup()
        self.tmp.cleanup()
        untrack(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # --- accessors -------------------------------------------------------------------------
    @property
    def broker_port(self):
        return self.mqtt_broker.port

    @property
    def bootstrap_password_file(self):
        return os.path.join(self.broker_dir, "bootstrap.password")

    @property
    def cloud_password_file(self):
        return os.path.join(self.broker_dir, "cloud.password")

    @property
    def bootstrap_password(self):
        with open(self.bootstrap_password_file) as f:
            return f.read().strip()

    @property
    def dynsec_file(self):
        return os.path.join(self.broker_dir, "dynamic-security.json")

    def serve_log(self, i=0):
        return self.tmp.join(f"serve-{i}.log")

    def serve_log_text(self, i=None):
        out = ""
        for k in ([i] if i is not None else range(max(1, len(self.serves)))):
            if os.path.exists(self.serve_log(k)):
                with open(self.serve_log(k), errors="replace") as f:
                    out += f.read()
        return out

    def wait_log(self, pattern, i=None, timeout=20, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.serve_log_text(i))) >= count:
                return True
            for p in self.serves:
                if p is not None and p.poll() is not None:
                    raise AssertionError(f"serve exited ({p.returncode}):\n{self.serve_log_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no '{pattern}' in serve log:\n{self.serve_log_text()[-4000:]}")

    def cli(self, *args, check=False, json_out=False):
        """Runs `edgetrust-cloud ARGS --db URL`; json_out=True parses stdout."""
        p = run([binary("edgetrust-cloud")] + list(args) + ["--db", self.db_url])
        if check and p.returncode != 0:
            raise AssertionError(f"edgetrust-cloud {args} failed ({p.returncode}): {p.err}")
        if json_out:
            if p.returncode != 0:
                raise AssertionError(f"edgetrust-cloud {args} failed ({p.returncode}): {p.err}")
            return json.loads(p.out)
        return p

    def device(self, serial):
        """The registry's view of one device (show --json)."""
        return self.cli("show", serial, "--json", json_out=True)

    def dynsec_clients(self):
        """Usernames in the broker's dynamic-security file (the plugin rewrites it on change)."""
        with open(self.dynsec_file) as f:
            return {c["username"]: c for c in json.load(f)["clients"]}

    def accounts(self):
        """broker_accounts rows: {username: {"enabled", "cred_version", "prev_version",
        "has_prev"}} (registry mode; empty in dynsec mode)."""
        sql = ("SELECT username, enabled, cred_version, prev_version,"
               " CASE WHEN prev_hash IS NULL THEN 0 ELSE 1 END FROM broker_accounts")
        if self.pg:
            rows = self.pg.psql(sql)
        else:
            import sqlite3
            con = sqlite3.connect(self.db_url)
            try:
                rows = con.execute(sql).fetchall()
            finally:
                con.close()
        return {r[0]: {"enabled": int(r[1]) == 1, "cred_version": int(r[2]),
                       "prev_version": int(r[3]), "has_prev": int(r[4]) == 1} for r in rows}

    def device_logins(self):
        """{username: enabled} of the device logins the broker knows, in either mode."""
        if self.accounts_mode == "registry":
            return {u: a["enabled"] for u, a in self.accounts().items()}
        return {u: not c.get("disabled", False) for u, c in self.dynsec_clients().items()
                if u not in ("edgetrust-cloud", "bootstrap")}

    # --- MQTT helpers ----------------------------------------------------------------------
    def mqtt(self, username, password, client_id, timeout=10, clean_start=True):
        """A connected paho MQTT v5 client (loop running) or raises ConnectionRefusedError."""
        return mqtt_connect(self.broker_port, username, password, client_id, timeout,
                            clean_start=clean_start)

    def bootstrap(self, client_id=None):
        """A bootstrap login. Its client id is always in the bootstrap namespace
        (docs/protocol.md, "Client ids"): client_id is prefixed with BOOTSTRAP_ID_PREFIX unless
        it has it (None: random)."""
        return self.mqtt("bootstrap", self.bootstrap_password, bootstrap_id(client_id))


BOOTSTRAP_ID_PREFIX = "etboot-"  # src/cloud/wire.h
CLOUD_ID_PREFIX = "etcloud-"


def bootstrap_id(name=None):
    """A client id in the bootstrap login's namespace."""
    name = name or os.urandom(8).hex()
    return name if name.startswith(BOOTSTRAP_ID_PREFIX) else BOOTSTRAP_ID_PREFIX + name


def mqtt_connect(port, username, password, client_id, timeout=10, clean_start=True):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(username, password)
    result = {}
    ev = threading.Event()
    c.messages = []
    c.msg_cond = threading.Condition()

    def on_connect(cl, ud, flags, rc, props=None):
        result["rc"] = rc
        ev.set()

    def on_message(cl, ud, msg):
        with c.msg_cond:
            c.messages.append(msg)
            c.msg_cond.notify_all()

    def on_disconnect(cl, ud, rc, props=None):
        result.setdefault("rc", rc)
        result["disconnected"] = rc
        ev.set()

    c.on_connect = on_connect
    c.on_message = on_message
    c.on_disconnect = on_disconnect
    c.connect("127.0.0.1", port, keepalive=30, clean_start=clean_start)
    c.loop_start()
    if not ev.wait(timeout) or result.get("rc") != 0:
        c.loop_stop()
        try:
            c.disconnect()
        except Exception:
            pass
        raise ConnectionRefusedError(f"MQTT login {username}/{client_id} refused: {result.get('rc')}")
    return c


def wait_message(client, topic=None, timeout=10, pred=None):
    """Waits for a message (on topic, matching pred(msg)) received by an mqtt_connect client."""
    deadline = time.monotonic() + timeout
    with client.msg_cond:
        while True:
            for m in client.messages:
                if (topic is None or m.topic == topic) and (pred is None or pred(m)):
                    client.messages.remove(m)
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            client.msg_cond.wait(left)


def subscribe_granted(client, topic, timeout=5):
    """Subscribes and returns True when the broker granted it (reason code < 0x80)."""
    ev = threading.Event()
    res = {}

    def on_subscribe(cl, ud, mid, reason_codes, props=None):
        res["rc"] = reason_codes
        ev.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    if not ev.wait(timeout):
        return False
    rc = res["rc"][0]
    value = rc.value if hasattr(rc, "value") else rc
    return value < 0x80


# --- simulated device with a software key ---------------------------------------------------
class SoftDevice:
    """A device whose RSA key lives in software (python3-cryptography); opens envelopes with a
    Python implementation of docs/envelope.md, independent of libedgetrust."""

    def __init__(self, serial, bits=2048, key=None):
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.serial = serial
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=bits)

    @property
    def pubkey_pem(self):
        from cryptography.hazmat.primitives import serialization
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def fingerprint(self):
        import hashlib
        from cryptography.hazmat.primitives import serialization
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()

    def private_pem(self):
        from cryptography.hazmat.primitives import serialization
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def request(self, nonce=None, **override):
        msg = {"v": 1, "serial": self.serial, "pubkey_pem": self.pubkey_pem,
               "fingerprint": self.fingerprint, "agent_version": "test",
               "nonce": nonce or os.urandom(16).hex()}
        msg.update(override)
        return json.dumps(msg)

    def connect_bootstrap(self, stack):
        c = stack.bootstrap(self.serial)
        assert subscribe_granted(c, f"et/v1/{self.serial}/register/reply")
        return c

    def register(self, stack, payload=None, status=None, timeout=15, client=None):
        """Publishes a registration request with the bootstrap login and returns the reply
        (dict) echoing our nonce, optionally waiting for a given status."""
        own = client is None
        c = client or self.connect_bootstrap(stack)
        try:
            nonce = os.urandom(16).hex()
            c.publish(f"et/v1/{self.serial}/register",
                      payload if payload is not None else self.request(nonce=nonce), qos=1)
            return self.wait_reply(stack, status=status, timeout=timeout, client=c,
                                   nonce=None if payload is not None else nonce)
        finally:
            if own:
                c.loop_stop()
                c.disconnect()

    def wait_reply(self, stack, status=None, timeout=15, client=None, nonce=None):
        own = client is None
        c = client or self.connect_bootstrap(stack)
        try:
            def ok(m):
                try:
                    d = json.loads(m.payload)
                except ValueError:
                    return False
                if status and d.get("status") != status:
                    return False
                if "envelope" in d:
                    # an accepted answer counts only when it is sealed to our own key
                    return envelope_info(base64.b64decode(d["envelope"]))["fingerprint"] == \
                        self.fingerprint
                return not nonce or d.get("nonce") == nonce
            m = wait_message(c, f"et/v1/{self.serial}/register/reply", timeout, ok)
            return json.loads(m.payload) if m else None
        finally:
            if own:
                c.loop_stop()
                c.disconnect()

    def open(self, envelope_b64):
        return json.loads(open_envelope(self.key, self.serial, self.fingerprint,
                                        base64.b64decode(envelope_b64)))


def open_envelope(key, serial, fpr_hex, blob):
    """docs/envelope.md v1, in Python: returns the plaintext or raises ValueError."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    if len(blob) < 8 or blob[:4] != b"ETE1" or blob[4] != 1 or blob[5] != 1 or blob[6] != 1:
        raise ValueError("bad envelope header")
    s = blob[7]
    if blob[8:8 + s].decode() != serial or blob[8 + s:40 + s].hex() != fpr_hex:
        raise ValueError("envelope for another device")
    w = struct.unpack(">H", blob[52 + s:54 + s])[0]
    wrapped = blob[54 + s:54 + s + w]
    nonce = blob[54 + s + w:66 + s + w]
    clen = struct.unpack(">I", blob[66 + s + w:70 + s + w])[0]
    ct = blob[70 + s + w:70 + s + w + clen]
    tag = blob[70 + s + w + clen:]
    if len(tag) != 16:
        raise ValueError("bad envelope length")
    aes = key.decrypt(wrapped, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                            algorithm=hashes.SHA256(), label=None))
    return AESGCM(aes).decrypt(nonce, ct + tag, blob[:70 + s + w])


def envelope_info(blob):
    s = blob[7]
    return {"serial": blob[8:8 + s].decode(), "fingerprint": blob[8 + s:40 + s].hex(),
            "cred_version": struct.unpack(">I", blob[40 + s:44 + s])[0]}
