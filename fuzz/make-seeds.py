#!/usr/bin/env python3
"""Writes the small seed corpora in fuzz/corpus/<target>/ (run after changing a format).

Envelopes are sealed with the real et_envelope_seal (through ctypes on the built library) to the
throw-away key in envelope_test_key.h, so the fuzzer starts from inputs that open.
Usage: fuzz/make-seeds.py [BUILD_DIR]   (default: build)
"""
import ctypes
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build")


def test_key_pem():
    with open(os.path.join(HERE, "envelope_test_key.h")) as f:
        lines = re.findall(r'^\t"(.*)\\n"$', f.read(), re.M)
    return "\n".join(lines) + "\n"


def public_pem(priv):
    return subprocess.run(["openssl", "pkey", "-pubout"], input=priv.encode(),
                          stdout=subprocess.PIPE, check=True).stdout


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def envelopes(lib, pub):
    lib.et_envelope_seal.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32,
                                     ctypes.c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_size_t)]
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    cases = [("A1", 1, b""), ("DEV-000123", 7, b'{"user":"dev","password":"pw"}'),
             ("x" * 64, 0xFFFFFFFF, bytes(range(256)) * 2)]
    out = []
    for serial, ver, pt in cases:
        blob = ctypes.c_void_p()
        n = ctypes.c_size_t()
        r = lib.et_envelope_seal(pub, serial.encode(), ver, pt, len(pt), ctypes.byref(blob),
                                 ctypes.byref(n))
        if r != 0:
            raise SystemExit(f"et_envelope_seal failed: {r}")
        out.append(ctypes.string_at(blob, n.value))
        libc.free(blob)
    return out


def main():
    lib = ctypes.CDLL(os.path.join(BUILD, "lib", "libedgetrust.so"))
    priv = test_key_pem()
    pub = public_pem(priv)
    envs = envelopes(lib, pub)
    for i, e in enumerate(envs):
        write("envelope", f"sealed-{i}", e)
    e = envs[1]
    write("envelope", "truncated-header", e[:40])
    write("envelope", "trailing-byte", e + b"\0")
    write("envelope", "bad-magic", b"ETE2" + e[4:])
    write("envelope", "empty", b"")
    write("pem", "rsa2048.pem", pub)
    write("pem", "ec-p256.pem", subprocess.run(
        ["openssl", "pkey", "-pubout"], stdout=subprocess.PIPE, check=True,
        input=subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                              "ec_paramgen_curve:P-256"], stdout=subprocess.PIPE,
                             check=True).stdout).stdout)
    write("pem", "garbage.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    agent_seeds(envs)


def agent_seeds(envs):
    import base64
    import json
    import struct
    with open(os.path.join(HERE, "..", "etc", "edgetrustd.conf"), "rb") as f:
        conf = f.read()
    write("agent-config", "example.conf", conf)
    write("agent-config", "rtu.conf", b"""[agent]
tcti = swtpm:host=127.0.0.1,port=2321
data_dir = /tmp/x
[broker]
host = localhost
port = 1883
tls = false
bootstrap_username = bootstrap
bootstrap_password_file = /tmp/pw
[modbus.meter]
transport = rtu
device = /dev/ttyUSB0
baud = 19200
parity = E
unit_id = 7
[point.meter.power]
table = input
address = 10
type = f32
word_order = little
scale = 0.001
unit = kW
[point.meter.on]
table = coil
address = 0
type = bool
""")
    write("agent-config", "errors.conf", b"[agent]\nprot = 1\n[point.x.y]\naddress = 99999\n")
    # mbvalue: first byte even = decode (type, order, nregs, regs, scale, offset, bit),
    # odd = plan (gaps, then 4-byte items).
    write("mbvalue", "f32-big", bytes([0, 4, 0, 2, 0x42, 0x28, 0, 0]) +
          struct.pack("<dd", 1.0, 0.0) + b"\x01")
    write("mbvalue", "i32-little", bytes([0, 3, 1, 2, 0xff, 0xfe, 0xff, 0xff]) +
          struct.pack("<dd", 0.1, -40.0))
    write("mbvalue", "plan", bytes([1, 8, 128]) + bytes([0, 0, 100, 1, 0, 0, 101, 2, 2, 0, 5, 1,
                                                         0, 0xff, 0xff, 1, 1, 0, 0, 2]))
    # mbtxn: transport/table, unit, count, tid, then the answer (see fuzz_mbtxn.c).
    write("mbtxn", "tcp-holding-2", bytes([0, 7, 0, 1, 0x12, 0x34]) +
          bytes([0x12, 0x34, 0, 0, 0, 7, 7, 3, 4, 1, 2, 3, 4]))
    write("mbtxn", "tcp-exception", bytes([0, 7, 0, 1, 0x12, 0x34]) +
          bytes([0x12, 0x34, 0, 0, 0, 3, 7, 0x83, 2]))
    write("mbtxn", "tcp-len65535", bytes([0, 7, 0, 1, 0, 1]) +
          bytes([0, 1, 0, 0, 0xff, 0xff, 7, 3, 4, 1, 2, 3, 4]))
    write("mbtxn", "rtu-coils-10", bytes([5, 5, 0, 9, 0, 0]) +
          bytes([5, 1, 2, 5, 2, 0xca, 0xad]))
    write("settings", "desired", json.dumps({"v": 1, "version": 2, "settings": {
        "spool.batch": 50, "log_level": "debug", "modbus.plc1.poll_ms": 500}}).encode())
    write("settings", "desired-bad", json.dumps({"v": 1, "version": 3, "settings": {
        "spool.batch": 0, "nope": 1, "log_level": 7}}).encode())
    write("settings", "local", b"L" + json.dumps({"status_interval_s": 30,
                                                  "spool.max_records": None}).encode())
    b64 = base64.b64encode(envs[1]).decode()
    write("reg-reply", "accepted", json.dumps({"v": 1, "status": "accepted", "nonce": "ab",
                                               "envelope": b64}).encode())
    write("reg-reply", "pending", json.dumps({"v": 1, "status": "pending",
                                              "reason": "awaiting operator"}).encode())
    write("reg-reply", "b64-raw", b64.encode())
    write("ack", "two-ranges", b'{"v":1,"serial":"SN1","ranges":[[1,100],[105,200]]}')
    write("ack", "one", b'{"v":1,"ranges":[[7,7]]}')
    write("ack", "edge", b'{"v":1,"serial":"SN1","ranges":[[1,3],[5,7],[9,9],'
          b'[9007199254740992,9007199254740992]]}')
    write("ack", "epoch", b'{"v":1,"serial":"SN1","epoch":4503599627370497,"ranges":[[1,20]]}')
    write("ack", "epoch-edge", b'{"v":1,"epoch":9007199254740992,"ranges":[[3,4]]}')
    cloud_data_seeds()


def cloud_data_seeds():
    """fuzz_cloud_data.c: first byte 0 telemetry, 1 status, 2 reported, 3 text escaping."""
    rec = {"seq": 1, "ts": 1700000000000, "device": "plc1", "point": "temp", "value": 21.5,
           "unit": "degC", "q": "ok"}
    tel = {"v": 1, "epoch": 604153238742191, "records": [rec, dict(rec, seq=2, value=None,
                                                                   q="timeout")]}
    write("cloud-data", "telemetry", b"\0" + json.dumps(tel).encode())
    write("cloud-data", "telemetry-hostile", b"\0" + b'{"v":1,"serial":"SN-FUZZ-1","records":['
          b'{"seq":1.5,"ts":1,"device":"d","point":"p","value":1,"q":"ok"},'
          b'{"seq":9007199254740993,"ts":1e300,"device":"d","point":"p","value":1e309,"q":"ok"},'
          b'{"seq":3,"ts":1,"device":"d","point":"\xff\xfe","value":1,"q":"ok"},'
          b'{"seq":4,"ts":1,"device":"d\\u0000x","point":"p","value":null,"q":"io"}]}')
    write("cloud-data", "status", b"\1" + json.dumps({"v": 1, "online": True, "cred_version": 2,
                                                     "spool_depth": 3}).encode())
    write("cloud-data", "reported", b"\2" + json.dumps({"v": 1, "version": 2, "settings": {
        "poll_ms": 500}, "source": "cloud"}).encode())
    write("cloud-data", "text", b"\3" + b"temp\x1b[2J\r\n\xff\xfe\xc2\x9b31m\x7f caf\xc3\xa9")


if __name__ == "__main__":
    main()
