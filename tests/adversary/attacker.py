"""A reusable attacker for the adversary suite (docs/threat-model.md, issue 10 "mixed attack"):
one holder of the shared bootstrap password and one compromised device login (a device the
attacker registered and got accepted, so it holds its real credentials and key) attack the
stack at once, in threads, for a bounded time, only to 127.0.0.1.

    from attacker import Attacker
    atk = Attacker.for_stack(stack, creds, own_key, honest=["SN-A", "SN-B"], late=["SN-LATE"],
                             seconds=60)
    atk.start(); ...; atk.stop()          # or atk.run() = start, wait `seconds`, stop
    atk.violations                        # what it got that it should not have: [] on a sound stack
    atk.stats                             # what it sent (messages, bytes, connects per attack)
    Attacker.INVALID_EPOCHS               # spool epochs of its invalid telemetry (never stored)

What it does (each a thread; every loop is bounded by count, by time and by a byte budget):

- bootstrap, registrations: for the honest serials with the attacker's keys (key substitution),
  for not-yet-activated serials (`late`, and serials that are never activated), re-key floods
  for its own serial, hostile requests (bad JSON, a serial that differs from the topic, a wrong
  fingerprint); retained requests planted before activation, some large (up to 1 MiB, bounded
  in total).
- bootstrap and device login, take-overs: CONNECTs with the cloud's client ids (`etcloud-...`),
  with the honest devices' client ids, as an honest username with the attacker's password, and
  as a login the attacker tried to create through `$CONTROL/dynamic-security`.
- both logins, subscriptions: `#`, `$SYS/#`, `$share/...`, `$CONTROL/...`, other devices'
  topics, every device's telemetry, registration requests and acks.
- both logins, forged messages (retained where the real ones are): telemetry acks, replies
  ("revoked"), `creds`, `settings/desired`, `status` and telemetry on honest serials' topics,
  kicks on `$CONTROL/edgetrust/v1`, dynamic-security commands.
- device login: a telemetry flood (valid records, as fast as the byte budget allows), oversized
  payloads, invalid UTF-8 point names (the PostgreSQL-poisoning attack of issue 10 #2), values
  of +-1e309, timestamps of +-1e300, seq 1.5 and 2^53+1, "v": 99, a payload naming another
  serial (issue 10 #10).

What it records as a violation (the test asserts there are none):

- `connect`: a CONNACK 0 for a login that must be refused (a foreign client id, a foreign
  username, a login created by the attacker);
- `subscribe`: a subscription granted outside the login's own topics (bootstrap: only
  `et/v1/+/register/reply`; device: only `et/v1/<own serial>/...`);
- `received`: any message on a topic the login may not read;
- `envelope`: a registration reply for a serial the attacker does not own whose envelope is
  sealed to one of the attacker's keys (it could open it: credentials of an honest device).
  Envelopes sealed to other keys are what the protocol lets the bootstrap login read (useless
  without the device's TPM); they are counted in stats["foreign_envelopes_seen"] only.

Every payload it sends carries the marker `self.marker` (in a field, a point name or the raw
bytes), so a witness on the broker can tell the attacker's messages from honest ones.
"""
import base64
import json
import os
import threading
import time

import cloudfix
from cloudfix import envelope_info, mqtt_connect, open_envelope, subscribe_granted

# Spool epochs of the compromised device's telemetry: FLOOD is valid (the cloud may store it or
# refuse it for its rate); every other epoch names one kind of invalid input, never to be
# stored. They let the test count what was stored per kind with one query.
EPOCH_FLOOD = 1
EPOCHS = {
    "utf8": 1001,        # point name with invalid UTF-8 (\xff\xfe)
    "inf-value": 1002,   # "value": 1e309 / -1e309
    "big-ts": 1003,      # "ts": 1e300 / -1e300
    "seq-frac": 1004,    # "seq": 1.5
    "seq-big": 1005,     # "seq": 2^53 + 1
    "v99": 1006,         # "v": 99
    "other-serial": 1007,  # payload "serial" names an honest device
    "oversize": 1008,    # a 1 MiB message of valid records
    "foreign-topic": 1009,  # published on an honest serial's telemetry topic
}


class Budget:
    """A byte budget: at most `rate` bytes per second on average (bursts up to one second's
    worth) and `total` bytes in all. take(n) blocks until n bytes may go, or returns False when
    the total is spent or the attack is over."""

    def __init__(self, rate, total, stop):
        self.rate, self.left, self.stop = float(rate), float(total), stop
        self.tokens, self.t = float(rate), time.monotonic()
        self.lock = threading.Lock()

    def take(self, n):
        while not self.stop.is_set():
            with self.lock:
                if n > self.left:
                    return False
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.t) * self.rate)
                self.t = now
                if self.tokens >= min(n, self.rate):
                    self.tokens -= n
                    self.left -= n
                    return True
                wait = (n - self.tokens) / self.rate
            self.stop.wait(min(wait, 0.2))
        return False


class Attacker:
    INVALID_EPOCHS = dict(EPOCHS)
    EPOCH_FLOOD = EPOCH_FLOOD

    def __init__(self, port, bootstrap_password, creds, own_key, *, honest=(), late=(),
                 cloud_ids=("etcloud-i0",), seconds=60, flood_bytes_per_s=1_000_000,
                 big_retained=4, connects_per_s=4, registrations_per_s=20, nkeys=4):
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.port = port
        self.boot_pw = bootstrap_password
        self.creds = creds
        self.own = creds["username"]
        self.own_key = own_key
        self.honest = list(honest)
        self.late = list(late)
        self.cloud_ids = list(cloud_ids)
        self.seconds = seconds
        self.flood_rate = flood_bytes_per_s
        self.big_retained = big_retained
        self.connects_per_s = connects_per_s
        self.takeover_threads = 4
        self.reg_per_s = registrations_per_s
        self.marker = "adv" + os.urandom(6).hex()
        self.never = [f"ADV-NOPE-{i}" for i in range(4)]   # never activated
        # The attacker's own keys, for key substitution and re-key floods (a few: RSA key
        # generation costs ~0.1 s each).
        self.keys = [cloudfix.SoftDevice("x", key=rsa.generate_private_key(65537, 2048))
                     for _ in range(nkeys)]
        self.fprs = {k.fingerprint: k.key for k in self.keys}
        self.fprs[cloudfix.SoftDevice("x", key=own_key).fingerprint] = own_key
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.violations = []
        self.stats = {}
        self.threads = []
        self.clients = []
        self.boot_id = None
        self.evil_user = "adv-evil-" + self.marker
        self.t0 = None

    @classmethod
    def for_stack(cls, stack, creds, own_key, **kw):
        kw.setdefault("cloud_ids", [f"etcloud-i{i}" for i in range(stack.instances)]
                      + ["etcloud-", "etcloud-adv"])
        return cls(stack.broker_port, stack.bootstrap_password, creds, own_key, **kw)

    # --- bookkeeping ---------------------------------------------------------------------
    def _violation(self, kind, **what):
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(dict(kind=kind, **what))

    def _count(self, key, n=1):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def _publish(self, client, topic, payload, qos=1, retain=False, what="publish"):
        if isinstance(payload, str):
            payload = payload.encode()
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, OSError):
            return None
        self._count(what + ".messages")
        self._count("bytes", len(payload))
        return info

    def _running(self):
        return not self.stop_ev.is_set() and time.monotonic() < self.deadline

    def _login(self, username, password, client_id, timeout=5):
        try:
            c = mqtt_connect(self.port, username, password, client_id, timeout)
        except (ConnectionRefusedError, OSError):
            return None
        with self.lock:
            self.clients.append(c)
        return c

    def _watch(self, client, login, allowed):
        """Records every message a login receives outside `allowed(topic)`; registration
        replies are checked for envelopes the attacker could open."""
        def on_message(cl, ud, msg):
            self._count(f"{login}.received")
            if not allowed(msg.topic):
                self._violation("received", login=login, topic=msg.topic,
                                payload=msg.payload[:120].decode(errors="replace"))
                return
            if msg.topic.endswith("/register/reply"):
                self._check_reply(msg)
        client.on_message = on_message

    def _check_reply(self, msg):
        serial = msg.topic.split("/")[2]
        try:
            d = json.loads(msg.payload)
            blob = base64.b64decode(d["envelope"]) if "envelope" in d else None
        except (ValueError, TypeError, KeyError):
            return
        if blob is None or serial == self.own:
            return
        try:
            info = envelope_info(blob)
        except (IndexError, UnicodeDecodeError, ValueError):
            return
        key = self.fprs.get(info["fingerprint"])
        if key is None:
            self._count("foreign_envelopes_seen")
            return
        got = {"serial": serial, "fingerprint": info["fingerprint"], "status": d.get("status")}
        try:
            c = json.loads(open_envelope(key, info["serial"], info["fingerprint"], blob))
            got["opened_username"] = c.get("username")
        except Exception as e:  # noqa: BLE001 (a sealed-to-us envelope that does not open)
            got["open_error"] = str(e)[:80]
        self._violation("envelope", **got)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.seconds
        total = self.flood_rate * max(self.seconds, 1)
        self.flood_budget = Budget(self.flood_rate, total, self.stop_ev)
        self.boot = self._bootstrap_login()
        self.dev = self._login(self.own, self.creds["password"], self.creds["client_id"])
        if self.dev is None:
            self._count("device_login_refused")
        # A CONNACK from dynamic security takes about a second, so the take-overs run in a few
        # threads to reach connects_per_s.
        jobs = [self._registrations, self._probe_and_forge, self._flood, self._bad_telemetry]
        jobs += [lambda w=w: self._takeovers(w) for w in range(self.takeover_threads)]
        for fn in jobs:
            t = threading.Thread(target=self._guard, args=(fn,), daemon=True,
                                 name="atk-" + getattr(fn, "__name__", "takeover"))
            t.start()
            self.threads.append(t)
        return self

    def _guard(self, fn):
        name = getattr(fn, "__name__", "?")
        try:
            fn()
        except Exception as e:  # noqa: BLE001 (one attack failing must not end the others)
            self._count("errors." + name)
            with self.lock:
                self.stats.setdefault("error_text", []).append(f"{name}: {e!r}"[:200])

    def wait(self):
        while self._running():
            self.stop_ev.wait(0.2)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        with self.lock:
            clients, self.clients = self.clients, []
        for c in clients:
            try:
                c.loop_stop()
                c.disconnect()
            except Exception:  # noqa: BLE001
                pass
        self.stats["elapsed_s"] = round(time.monotonic() - self.t0, 1) if self.t0 else 0
        return self

    def run(self):
        self.start()
        try:
            self.wait()
        finally:
            self.stop()
        return self

    # --- bootstrap login ------------------------------------------------------------------
    def _bootstrap_login(self):
        """The attacker's own bootstrap connection, with a client id an unregistered device
        could use: none of the honest ones (those are take-over attempts, below)."""
        for cid in ("bootstrap-" + self.marker, "ADV-BOOT-" + self.marker, self.marker):
            c = self._login("bootstrap", self.boot_pw, cid)
            if c is not None:
                self.boot_id = cid
                self._watch(c, "bootstrap", lambda t: _match("et/v1/+/register/reply", t))
                self.reply_sub = subscribe_granted(c, "et/v1/+/register/reply")

                def again(cl, ud, flags, rc, props=None):
                    # paho reconnects by itself (a broker that drops a login for an oversized
                    # publish); the replies are watched again on the new session.
                    if rc == 0:
                        cl.subscribe("et/v1/+/register/reply", qos=1)
                c.on_connect = again
                return c
        self._count("bootstrap_login_refused")
        return None

    def _request(self, serial, key, **override):
        d = key if isinstance(key, cloudfix.SoftDevice) else cloudfix.SoftDevice(serial, key=key)
        msg = {"v": 1, "serial": serial, "pubkey_pem": d.pubkey_pem, "fingerprint": d.fingerprint,
               "agent_version": self.marker, "nonce": os.urandom(16).hex()}
        msg.update(override)
        return json.dumps(msg)

    def _registrations(self):
        b = self.boot
        if b is None:
            return
        k0 = self.keys[0]
        # Planted before activation, retained: the late serials and never-activated ones.
        for s in self.late + self.never:
            self._publish(b, f"et/v1/{s}/register", self._request(s, k0.key), retain=True,
                          what="register.retained")
        # Large retained requests (a 1 MiB PEM field), bounded in number.
        pad = "A" * (1 << 20)
        for i in range(self.big_retained):
            if not self._running():
                break
            self._publish(b, f"et/v1/ADV-BIG-{i}/register",
                          self._request(f"ADV-BIG-{i}", k0.key, pad=pad, adv=self.marker),
                          retain=True, what="register.retained-big")
        hostile = [
            "{not json " + self.marker,
            lambda s: self._request("ADV-OTHER", k0.key),               # serial != topic
            lambda s: self._request(s, k0.key, fingerprint="0" * 64),    # wrong fingerprint
            lambda s: self._request(s, k0.key, pubkey_pem="-----BEGIN PUBLIC KEY-----\n" +
                                    self.marker + "\n-----END PUBLIC KEY-----\n"),
        ]
        i = 0
        limit = self.reg_per_s * max(self.seconds, 1)
        while self._running() and i < limit:
            key = self.keys[i % len(self.keys)].key
            kind = i % 5
            if kind == 0 and self.honest:            # key substitution for an honest serial
                s = self.honest[(i // 5) % len(self.honest)]
                self._publish(b, f"et/v1/{s}/register", self._request(s, key),
                              what="register.substitute")
            elif kind == 1 and self.late:            # late serials, before and after activation
                s = self.late[(i // 5) % len(self.late)]
                self._publish(b, f"et/v1/{s}/register", self._request(s, key),
                              what="register.late")
            elif kind == 2:                          # never-activated serials
                s = self.never[(i // 5) % len(self.never)]
                self._publish(b, f"et/v1/{s}/register", self._request(s, key),
                              what="register.unactivated")
            elif kind == 3:                          # re-key flood for its own serial
                self._publish(b, f"et/v1/{self.own}/register", self._request(self.own, key),
                              what="register.rekey")
            else:
                h = hostile[(i // 5) % len(hostile)]
                s = (self.honest or self.never)[0]
                self._publish(b, f"et/v1/{s}/register", h(s) if callable(h) else h,
                              what="register.hostile")
            i += 1
            self.stop_ev.wait(1.0 / self.reg_per_s)

    # --- take-overs -----------------------------------------------------------------------
    def _takeovers(self, worker):
        pw = self.creds["password"]
        attempts = []
        for cid in self.cloud_ids + self.honest:
            attempts.append(("bootstrap", self.boot_pw, cid, "bootstrap as " + cid))
            attempts.append((self.own, pw, cid, f"device {self.own} as client id {cid}"))
        for s in self.honest:
            attempts.append((s, pw, s, f"username {s} with the attacker's password"))
        attempts.append((self.evil_user, "x", self.evil_user, "dynsec client the attacker made"))
        n = self.takeover_threads
        i = worker
        limit = self.connects_per_s * max(self.seconds, 1)
        while self._running() and i < limit:
            user, p, cid, label = attempts[i % len(attempts)]
            i += n
            self._count("connect.attempts")
            c = self._login(user, p, cid, timeout=3)
            if c is not None:
                self._violation("connect", username=user, client_id=cid, what=label)
                self.stop_ev.wait(0.3)      # long enough to kick whoever held the id
                c.loop_stop()
                try:
                    c.disconnect()
                except Exception:  # noqa: BLE001
                    pass
            self.stop_ev.wait(n / self.connects_per_s)

    # --- subscriptions and forged messages ------------------------------------------------
    def _forbidden_filters(self, own_prefix):
        f = ["#", "$SYS/#", "$share/adv/#", "$share/etcloud/et/v1/+/telemetry",
             "$share/etcloud/et/v1/+/register", "$CONTROL/#",
             "$CONTROL/dynamic-security/v1/response", "$CONTROL/edgetrust/v1", "et/v1/#",
             "et/v1/+/telemetry", "et/v1/+/register", "et/v1/+/creds", "et/v1/+/telemetry/ack",
             "et/v1/+/settings/desired", "+/+/+/telemetry"]
        f += [f"et/v1/{s}/#" for s in self.honest + self.late]
        f += [f"et/v1/{s}/telemetry/ack" for s in self.honest]
        return [x for x in f if not (own_prefix and x.startswith(own_prefix))]

    def _probe(self, client, login, allowed_prefix_ok):
        for f in self._forbidden_filters(f"et/v1/{self.own}/" if login == "device" else None):
            if not self._running():
                return
            self._count(f"{login}.subscribe")
            if subscribe_granted(client, f, timeout=3):
                self._violation("subscribe", login=login, filter=f)
        if allowed_prefix_ok:   # its own acks (not its own telemetry: the flood would echo)
            subscribe_granted(client, f"et/v1/{self.own}/telemetry/ack", timeout=3)

    def _forged(self, s):
        m = self.marker
        return [
            (f"et/v1/{s}/telemetry/ack", {"v": 1, "serial": s, "epoch": 0,
                                          "ranges": [[1, 9007199254740991]], "adv": m}, True),
            (f"et/v1/{s}/register/reply", {"v": 1, "serial": s, "status": "revoked",
                                           "reason": m, "nonce": ""}, True),
            (f"et/v1/{s}/creds", {"v": 1, "cred_version": 99, "envelope": "RVRFMQ==", "adv": m},
             True),
            (f"et/v1/{s}/settings/desired", {"v": 1, "version": 999999,
                                             "settings": {"log_level": "err"}, "adv": m}, True),
            (f"et/v1/{s}/status", {"v": 1, "online": False, "adv": m}, True),
            (f"et/v1/{s}/settings/reported", {"v": 1, "version": 1, "settings": {}, "adv": m},
             True),
            (f"et/v1/{s}/telemetry", {"v": 1, "epoch": EPOCHS["foreign-topic"],
                                      "records": [_rec(1, m)], "adv": m}, False),
        ]

    def _probe_and_forge(self):
        b2 = None
        if self.boot_id is not None:
            b2 = self._login("bootstrap", self.boot_pw, self.boot_id + "-2")
            if b2 is not None:
                self._watch(b2, "bootstrap", lambda t: _match("et/v1/+/register/reply", t))
                self._probe(b2, "bootstrap", False)
        if self.dev is not None:
            own = f"et/v1/{self.own}/"
            self._watch(self.dev, "device", lambda t: t.startswith(own))
            self._probe(self.dev, "device", True)
        control = [
            ("$CONTROL/edgetrust/v1", {"v": 1, "kick": self.honest + self.cloud_ids}),
            ("$CONTROL/dynamic-security/v1", {"commands": [
                {"command": "createClient", "username": self.evil_user, "password": "x",
                 "clientid": self.evil_user, "roles": [{"rolename": "et-cloud"}]},
                {"command": "addClientRole", "username": "bootstrap", "rolename": "et-cloud"}]}),
        ]
        n = 0
        while self._running() and n < 2 * max(self.seconds, 1):
            for cl in (b2, self.dev):
                if cl is None:
                    continue
                for s in self.honest + self.late:
                    for topic, body, retain in self._forged(s):
                        self._publish(cl, topic, json.dumps(body), retain=retain, what="forge")
                for topic, body in control:
                    self._publish(cl, topic, json.dumps(body), what="control")
            n += 1
            self.stop_ev.wait(1.0)

    # --- compromised device: telemetry ----------------------------------------------------
    def _flood(self):
        d = self.dev
        if d is None:
            return
        topic = f"et/v1/{self.own}/telemetry"
        seq = 1
        pending = []
        while self._running():
            body = ('{"v":1,"epoch":%d,"records":[' % EPOCH_FLOOD
                    + ",".join(_REC % (s, 1700000000000 + s, "flood") for s in range(seq, seq + 500))
                    + "]}")
            if not self.flood_budget.take(len(body)):
                break
            info = self._publish(d, topic, body, what="flood")
            seq += 500
            if info is not None:
                pending.append(info)
            if len(pending) >= 50:   # bounded client-side queue: wait for the broker
                for p in pending:
                    _wait_pub(p, self)
                pending = []
        self._count("flood.records", seq - 1)

    def _bad_telemetry(self):
        d = self.dev
        if d is None:
            return
        topic = f"et/v1/{self.own}/telemetry"
        m = self.marker.encode()
        other = (self.honest or ["SN-OTHER"])[0]

        def msg(kind, recs, extra=b""):
            return (b'{"v":1,"epoch":%d%s,"records":[' % (EPOCHS[kind], extra)
                    + b",".join(recs) + b"]}")

        def rec(seq=b"1", ts=b"1700000000000", point=m, value=b"1.5"):
            return (b'{"seq":' + seq + b',"ts":' + ts + b',"device":"adv","point":"' + point
                    + b'","value":' + value + b',"unit":"","q":"ok"}')

        kinds = [
            ("utf8", lambda i: msg("utf8", [rec(b"%d" % i, point=b"\xff\xfe" + m)])),
            ("inf-value", lambda i: msg("inf-value", [rec(b"%d" % (2 * i), value=b"1e309"),
                                                      rec(b"%d" % (2 * i + 1), value=b"-1e309")])),
            ("big-ts", lambda i: msg("big-ts", [rec(b"%d" % (2 * i), ts=b"1e300"),
                                                rec(b"%d" % (2 * i + 1), ts=b"-1e300")])),
            ("seq-frac", lambda i: msg("seq-frac", [rec(b"%d.5" % i)])),
            ("seq-big", lambda i: msg("seq-big", [rec(b"9007199254740993")])),
            ("v99", lambda i: msg("v99", [rec(b"%d" % i)]).replace(b'"v":1', b'"v":99', 1)),
            ("other-serial", lambda i: msg("other-serial", [rec(b"%d" % i)],
                                           b',"serial":"' + other.encode() + b'"')),
        ]
        big_left = 8
        i = 1
        limit = 20 * max(self.seconds, 1)
        while self._running() and i < limit:
            # The poisoning message goes every round: it must not take down the batch of
            # honest messages it lands in; the others take turns.
            self._publish(d, topic, kinds[0][1](i), what="bad.utf8")
            name, make = kinds[1 + i % (len(kinds) - 1)]
            self._publish(d, topic, make(i), what="bad." + name)
            if i % 40 == 0 and big_left > 0:       # 1 MiB of valid records in one message
                big_left -= 1
                recs = []
                size, s = 0, 10_000_000 * (9 - big_left)
                while size < (1 << 20):
                    r = rec(b"%d" % s)
                    recs.append(r)
                    size += len(r) + 1
                    s += 1
                self._publish(d, topic, msg("oversize", recs), what="bad.oversize")
            # Status and reported settings with invalid UTF-8 and the marker.
            if i % 10 == 0:
                self._publish(d, f"et/v1/{self.own}/status",
                              b'{"v":1,"online":true,"x":"\xff' + m + b'"}', retain=True,
                              what="bad.status")
            i += 1
            self.stop_ev.wait(0.1)


_REC = '{"seq":%d,"ts":%d,"device":"adv","point":"%s","value":1.5,"unit":"","q":"ok"}'


def _rec(seq, point):
    return {"seq": seq, "ts": 1700000000000 + seq, "device": "adv", "point": point,
            "value": 1.5, "unit": "", "q": "ok"}


def _wait_pub(info, atk):
    """Waits (bounded) for a QoS 1 publish to be acknowledged by the broker."""
    end = time.monotonic() + 10
    while not info.is_published() and time.monotonic() < end and not atk.stop_ev.is_set():
        time.sleep(0.005)


def _match(filt, topic):
    """MQTT topic filter match (+ and #), for what a login may receive."""
    f, t = filt.split("/"), topic.split("/")
    for i, p in enumerate(f):
        if p == "#":
            return True
        if i >= len(t) or (p != "+" and p != t[i]):
            return False
    return len(f) == len(t)
