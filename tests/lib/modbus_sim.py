#!/usr/bin/python3
"""Modbus TCP/RTU simulator for edgetrust tests, the demo and benchmarks (pymodbus 3.0).

Run with Debian's /usr/bin/python3 (the only interpreter with pymodbus):

    modbus_sim.py --tcp PORT [--host 127.0.0.1]
    modbus_sim.py --rtu /dev/pts/N [--baud 19200] [--parity N] [--stopbits 1]
    common: [--unit 1 [--unit 2 ...]] [--tick-ms 100] [--stats FILE] [--fault SPEC ...]

It prints "READY" on stdout (flushed) once it serves, and stops on SIGTERM/SIGINT.

Register map (identical for every unit; addresses 0-based; tick = elapsed time // tick-ms;
a 32-bit value "big" has its high word first):

    holding[0]          tick & 0xffff (a counter that changes)
    holding[100..101]   u32 0x12345678, big word order
    holding[102..103]   u32 0x12345678, little word order
    holding[104]        0xfff6 (i16 -10)
    holding[106..107]   i32 -2, big
    holding[110..111]   f32 -2.25, big
    holding[a]          a & 0xffff everywhere else (so values are predictable)
    input[0..1]         f32 123.456, big ("ABCD")
    input[2..3]         f32 123.456, little ("CDAB")
    input[4..5]         f32 tick * 0.5, big (changes)
    input[6..7]         f32 NaN, big
    input[8..9]         f32 +Inf, big
    input[a]            (1000 + a) & 0xffff everywhere else
    coil[0]             tick & 1 (toggles)
    coil[a]             a % 2 == 1 everywhere else
    discrete[a]         a % 3 == 0

Faults, --fault KIND:TABLE:FIRST[-LAST][:ARG], apply to every read request of TABLE (holding,
input, coil, discrete) whose range touches FIRST..LAST:

    exception:TABLE:A[-B]:CODE  answer with Modbus exception CODE (2 = illegal data address, ...)
    delay:TABLE:A[-B]:MS        answer after MS milliseconds (without blocking other requests)
    silent:TABLE:A[-B]          never answer
    badcrc:TABLE:A[-B]          (RTU) answer with a wrong CRC; (TCP) like garbage
    short:TABLE:A[-B]           answer with a truncated frame
    garbage:TABLE:A[-B]         answer with random bytes of a plausible length

--stats FILE appends one line per read request received: "UNIT FC ADDRESS COUNT".
"""
import argparse
import asyncio
import logging
import math
import os
import random
import signal
import struct
import sys
import time

from pymodbus.datastore import ModbusServerContext
from pymodbus.factory import ServerDecoder
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.framer.socket_framer import ModbusSocketFramer
from pymodbus.interfaces import IModbusSlaveContext
from pymodbus.pdu import ExceptionResponse
from pymodbus.server.async_io import (ModbusConnectedRequestHandler, ModbusSerialServer,
                                      ModbusSingleRequestHandler, ModbusTcpServer)

TABLES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def f32_words(x, little=False):
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [lo, hi] if little else [hi, lo]


class Fault:
    def __init__(self, spec):
        parts = spec.split(":")
        if len(parts) < 3 or parts[0] not in ("exception", "delay", "silent", "badcrc", "short",
                                               "garbage") or parts[1] not in TABLES:
            raise ValueError(f"bad fault spec {spec!r}")
        self.kind, self.fc = parts[0], TABLES[parts[1]]
        rng = parts[2].split("-")
        self.first, self.last = int(rng[0]), int(rng[-1])
        self.arg = int(parts[3]) if len(parts) > 3 else 0
        if self.kind in ("exception", "delay") and len(parts) != 4:
            raise ValueError(f"fault {spec!r} needs an argument")

    def matches(self, fc, address, count):
        return fc == self.fc and address <= self.last and address + count - 1 >= self.first


class Sim:
    def __init__(self, args):
        self.start = time.monotonic()
        self.tick_s = args.tick_ms / 1000.0
        self.faults = [Fault(f) for f in args.fault]
        self.stats = open(args.stats, "a", buffering=1) if args.stats else None
        self.pending = None  # fault of the request being executed (single-threaded loop)
        self.rtu = args.rtu is not None
        self.rand = random.Random(1)

    def tick(self):
        return int((time.monotonic() - self.start) / self.tick_s)

    def register(self, fc, a, t):
        if fc == 3:
            fixed = {0: t & 0xffff, 100: 0x1234, 101: 0x5678, 102: 0x5678, 103: 0x1234,
                     104: 0xfff6, 106: 0xffff, 107: 0xfffe}
            w = f32_words(-2.25)
            fixed[110], fixed[111] = w
            return fixed.get(a, a & 0xffff)
        fixed = {}
        for base, words in ((0, f32_words(123.456)), (2, f32_words(123.456, True)),
                            (4, f32_words(t * 0.5)), (6, f32_words(math.nan)),
                            (8, f32_words(math.inf))):
            fixed[base], fixed[base + 1] = words
        return fixed.get(a, (1000 + a) & 0xffff)

    def bit(self, fc, a, t):
        if fc == 1:
            return bool(t & 1) if a == 0 else a % 2 == 1
        return a % 3 == 0

    def values(self, fc, address, count):
        t = self.tick()
        if fc in (1, 2):
            return [self.bit(fc, a, t) for a in range(address, address + count)]
        return [self.register(fc, a, t) for a in range(address, address + count)]

    def on_request(self, unit, fc, address, count):
        if self.stats:
            self.stats.write(f"{unit} {fc} {address} {count}\n")
        self.pending = next((f for f in self.faults if f.matches(fc, address, count)), None)

    def manipulate(self, response):
        """pymodbus response_manipulator: returns (response or raw bytes, skip_encoding)."""
        fault, self.pending = self.pending, None
        if fault is None:
            return response, False
        if fault.kind == "exception":
            exc = ExceptionResponse(response.function_code & 0x7f, fault.arg)
            exc.transaction_id, exc.unit_id = response.transaction_id, response.unit_id
            return exc, False
        framer = (ModbusRtuFramer if self.rtu else ModbusSocketFramer)(ServerDecoder())
        packet = framer.buildPacket(response)
        if fault.kind == "delay":
            return Delayed(packet, fault.arg / 1000.0), True
        if fault.kind == "silent":
            return Delayed(b"", None), True
        if fault.kind == "badcrc" and self.rtu:
            return packet[:-2] + bytes([packet[-2] ^ 0x5a, packet[-1]]), True
        if fault.kind == "short":
            return packet[:max(3, len(packet) // 2)], True
        # garbage (and badcrc on TCP): same length, keep the MBAP header on TCP so the
        # master reads a whole frame and has to reject its content
        keep = 0 if self.rtu else 7
        body = bytes(self.rand.randrange(256) for _ in range(len(packet) - keep))
        if not self.rtu:
            body = bytes([0x03 ^ 0x40]) + body[1:]
        return packet[:keep] + body, True


class Delayed(bytes):
    """Raw frame to send after delay seconds (None: never)."""

    def __new__(cls, data, delay):
        obj = super().__new__(cls, data)
        obj.delay = delay
        return obj


def _send_later(handler, data, write):
    if isinstance(data, Delayed):
        if data.delay is not None and len(data):
            asyncio.get_event_loop().call_later(data.delay, write, bytes(data))
        return
    write(data)


class TcpHandler(ModbusConnectedRequestHandler):
    def _send_(self, data):
        def write(d):
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(d)
        _send_later(self, data, write)


class RtuHandler(ModbusSingleRequestHandler):
    def _send_(self, data):
        def write(d):
            if self.transport is not None:
                self.transport.write(d)
        _send_later(self, data, write)


class Context(IModbusSlaveContext):
    """Computes values on the fly from the address and the tick (no data blocks)."""

    def __init__(self, sim, unit):
        self.sim, self.unit = sim, unit

    def reset(self):
        pass

    def validate(self, fc_as_hex, address, count=1):
        self.sim.on_request(self.unit, fc_as_hex, address, count)
        return fc_as_hex in (1, 2, 3, 4) and 0 <= address and address + count <= 65536

    def getValues(self, fc_as_hex, address, count=1):
        return self.sim.values(fc_as_hex, address, count)

    def setValues(self, fc_as_hex, address, values):
        pass


async def main_async(args):
    sim = Sim(args)
    context = ModbusServerContext(slaves={u: Context(sim, u) for u in args.unit}, single=False)
    if args.tcp is not None:
        server = ModbusTcpServer(context, ModbusSocketFramer, None, (args.host, args.tcp),
                                 handler=TcpHandler, allow_reuse_address=True,
                                 response_manipulator=sim.manipulate)
    else:
        server = ModbusSerialServer(context, ModbusRtuFramer, port=args.rtu, baudrate=args.baud,
                                    parity=args.parity, stopbits=args.stopbits, bytesize=8,
                                    handler=RtuHandler, response_manipulator=sim.manipulate)
        await server.start()
        if server.transport is None:
            print(f"modbus_sim: cannot open {args.rtu}", file=sys.stderr)
            return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    task = asyncio.create_task(server.serve_forever())
    if args.tcp is not None:
        await server.serving
    print("READY", flush=True)
    await stop.wait()
    await server.shutdown()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # pylint: disable=broad-except
        pass
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", type=int, metavar="PORT")
    g.add_argument("--rtu", metavar="TTY")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--baud", type=int, default=19200)
    ap.add_argument("--parity", default="N", choices=["N", "E", "O"])
    ap.add_argument("--stopbits", type=int, default=1, choices=[1, 2])
    ap.add_argument("--unit", type=int, action="append")
    ap.add_argument("--tick-ms", type=int, default=100)
    ap.add_argument("--stats", metavar="FILE")
    ap.add_argument("--fault", action="append", default=[], metavar="SPEC")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    args.unit = args.unit or [1]
    try:
        [Fault(f) for f in args.fault]
    except ValueError as e:
        ap.error(str(e))
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG)
    else:
        logging.disable(logging.CRITICAL)  # pymodbus logs expected disconnects as errors
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()


# --------------------------------------------------------------------------------------------
# Test fixtures (import modbus_sim from tests; etfix provides ports and process helpers).
# --------------------------------------------------------------------------------------------
class SimProcess:
    """The simulator as a child process. tcp=True picks a free port; rtu=PATH serves a tty."""

    def __init__(self, tcp=True, rtu=None, units=(1,), faults=(), stats=None, baud=19200,
                 tick_ms=100, port=None):
        self.tcp, self.rtu, self.units, self.faults = tcp and rtu is None, rtu, units, faults
        self.stats, self.baud, self.tick_ms, self.port, self.proc = stats, baud, tick_ms, port, None

    def start(self):
        """Starts the simulator; when that fails, stops what it started before raising."""
        import etfix
        try:
            self._start()
            etfix.fail_point("modbus")
            return self
        except BaseException:
            self.stop()
            raise

    def _start(self):
        import subprocess
        import etfix
        fixed_port = self.port is not None  # a restart must come back on the same port
        for attempt in range(10):
            args = ["/usr/bin/python3", os.path.abspath(__file__), "--tick-ms", str(self.tick_ms)]
            if self.tcp:
                if not fixed_port:
                    self.port = etfix.free_ports(1)
                elif attempt:
                    time.sleep(0.3)
                args += ["--tcp", str(self.port)]
            else:
                args += ["--rtu", self.rtu, "--baud", str(self.baud)]
            for u in self.units:
                args += ["--unit", str(u)]
            for f in self.faults:
                args += ["--fault", f]
            if self.stats:
                args += ["--stats", self.stats]
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
            line = self.proc.stdout.readline()
            if line.strip() == "READY":
                return
            etfix.stop_process(self.proc)
            if not self.tcp:
                break
        raise RuntimeError("modbus_sim did not start: " + (self.proc.stderr.read() or "")[-2000:])

    def stop(self):
        import etfix
        etfix.stop_process(self.proc)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
            self.proc.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PtyPair:
    """Two linked pseudo-terminals from socat: a is the master's end, b the simulator's."""

    def __init__(self, tmpdir):
        self.a, self.b = os.path.join(tmpdir, "ttyA"), os.path.join(tmpdir, "ttyB")
        self.proc = None

    def start(self):
        """Starts socat; when the pair does not appear, stops socat before raising."""
        import etfix
        try:
            self._start()
            etfix.fail_point("socat")
            return self
        except BaseException:
            self.stop()
            raise

    def _start(self):
        import subprocess
        self.proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={self.a}",
                                      f"pty,raw,echo=0,link={self.b}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.a) and os.path.exists(self.b):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("socat did not create the pty pair")

    def stop(self):
        import etfix
        etfix.stop_process(self.proc)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def read_stats(path):
    """Requests the simulator received: list of (unit, fc, address, count)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [tuple(int(x) for x in line.split()) for line in f if line.strip()]
