"""Issue 5: reconnects after a broker restart are spread with jitter and capped (edgetrustd,
src/agent/mqtt.c run()/backoff_nap(): wait = backoff + rand(0..backoff/4), backoff doubling from
[broker] reconnect_min_s up to reconnect_max_s).

Three registered agents, each with its own swtpm and its own mosquitto (loopback source addresses
cannot tell agents apart, so each agent gets its own broker port). Then every broker goes away and
a plain TCP listener on the same port accepts and closes each connection at once, recording when
each attempt came, for WINDOW seconds. The bounds below are the protocol's, with generous slack
for a loaded 2-core machine (and ASan); each assertion says which broken backoff it catches.
Finally the real brokers come back on the same ports and every agent delivers again.
"""
import itertools
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
import agentfix  # noqa: E402
import etfix  # noqa: E402

N_AGENTS = 3
MIN_S = 1
MAX_S = 4
JITTER_MAX_S = MAX_S * 1.25    # backoff_nap(): rand() % (backoff/4 + 1) ms on top
SLACK_S = 1.5                  # scheduling, connect and failure detection on a loaded machine
WINDOW_S = 22.0


class Listener:
    """Accepts and closes at once every connection on port; records monotonic attempt times."""

    def __init__(self, port):
        self.times = []
        self.stopping = False
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.s.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.s.listen(16)
        self.s.settimeout(0.2)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.times.append(time.monotonic())
            c.close()

    def stop(self):
        self.stopping = True
        self.t.join(5)
        self.s.close()


class ReconnectBackoff(unittest.TestCase):
    def setUp(self):
        self.tmps, self.tpms, self.mqs, self.clouds, self.agents = [], [], [], [], []
        self.listeners = []
        self.addCleanup(self._cleanup)
        self.simtmp = etfix.TempDir()
        self.sim = agentfix.ModbusSim(self.simtmp).start()
        for i in range(N_AGENTS):
            tmp = etfix.TempDir()
            self.tmps.append(tmp)
            self.tpms.append(etfix.Swtpm().start())
            mq = etfix.Mosquitto(allow_anonymous=True).start()
            self.mqs.append(mq)
            self.clouds.append(agentfix.MiniCloud(mq.port))
            ag = agentfix.Agent(tmp, self.tpms[i].tcti, mq.port, self.sim.port,
                                serial=f"SN-JIT-{i + 1}", poll_ms=200)
            with open(ag.conf) as f:
                conf = f.read()
            self.assertIn("reconnect_min_s = 1\nreconnect_max_s = 2\n", conf)
            with open(ag.conf, "w") as f:
                f.write(conf.replace("reconnect_min_s = 1\nreconnect_max_s = 2\n",
                                     f"reconnect_min_s = {MIN_S}\nreconnect_max_s = {MAX_S}\n"))
            self.agents.append(ag)

    def _cleanup(self):
        for x in self.listeners:
            x.stop()
        for a in self.agents:
            a.stop()
        for c in self.clouds:
            try:
                c.stop()
            except Exception:
                pass
        for mq in self.mqs:
            mq.cleanup()
        for t in self.tpms:
            t.cleanup()
        self.sim.stop()
        self.simtmp.cleanup()
        for t in self.tmps:
            t.cleanup()

    def test_reconnects_spread_and_capped(self):
        for a in self.agents:
            agentfix.provision(self.tpms[self.agents.index(a)], a.serial)
            a.start()
        for a, c in zip(self.agents, self.clouds):
            a.wait_log("registration accepted", 60)
            agentfix.wait_for(lambda: c.count() >= 5, 30, f"first readings from {a.serial}")
            a.wait_log(f"connected to the broker as {a.serial} (session", 30)
        # The clouds leave first, so their own reconnects never reach the listeners.
        for c in self.clouds:
            c.stop()
        self.clouds = []
        # Each broker goes away and its port accepts-and-closes from now on.
        for mq in self.mqs:
            mq.stop()
            self.listeners.append(Listener(mq.port))
        time.sleep(WINDOW_S)
        end = time.monotonic()
        for x in self.listeners:
            x.stop()
        seqs = [list(x.times) for x in self.listeners]
        self.listeners = []
        ivals = [[round(b - a, 3) for a, b in zip(t, t[1:])] for t in seqs]
        report = "; ".join(f"{a.serial}: {len(t)} attempts, intervals {iv}"
                           for a, t, iv in zip(self.agents, seqs, ivals))
        print(report, flush=True)

        for a, t, iv in zip(self.agents, seqs, ivals):
            # (1) It keeps trying and stays up. Catches: gives up, exits or hangs after a few
            # failures (the last attempt would lie further back than one capped wait).
            self.assertIsNone(a.proc.poll(), f"{a.serial} exited\n{a.run_log()[-2000:]}")
            self.assertGreaterEqual(len(t), 3, report)
            self.assertLessEqual(end - t[-1], JITTER_MAX_S + SLACK_S, report)
            # (4) No hot loop. A correct backoff allows about 1 + 2 + 4.x + ... s: at most ~7
            # attempts in WINDOW_S. Catches: a fixed 0 delay (thousands) and a fixed
            # reconnect_min_s delay without growth (>= 17 attempts).
            self.assertLessEqual(len(t), 10, report)
            # (2) Never faster than reconnect_min_s. Catches: a zero/near-zero wait.
            self.assertGreaterEqual(min(iv), MIN_S * 0.9, report)
            # (2) Grows to the cap. Catches: no doubling (all waits ~reconnect_min_s).
            self.assertGreaterEqual(max(iv), MAX_S - 0.5, report)
            # (2) Capped: never more than reconnect_max_s + its jitter (25 %) + slack. Catches:
            # no cap (the next wait after 4 s would be 8 s, well inside the window).
            self.assertLessEqual(max(iv), JITTER_MAX_S + SLACK_S, report)

        # (3) Jitter. Without it every wait at the cap is 4.00 s plus a few ms of overhead; with
        # it each is 4..5 s uniformly, and ~9 of them spanning < 0.25 s has p ~ 1e-4.
        # Catches: no jitter on the path taken here (socket up, session lost before CONNACK).
        capped = [v for iv in ivals for v in iv if v >= MAX_S - 0.1]
        self.assertGreaterEqual(len(capped), 2 * N_AGENTS, report)
        self.assertGreaterEqual(max(capped) - min(capped), 0.25, report)
        # (3) Spread between devices: no two agents wait the same sequence (to 30 ms). Catches:
        # the same jitter seed in every device (e.g. time of day and heap address), which would
        # bring them back in step. Independent draws make this fail with p ~ 1e-4.
        for (i, a), (j, b) in itertools.combinations(enumerate(ivals), 2):
            n = min(len(a), len(b))
            self.assertGreater(max(abs(x - y) for x, y in zip(a[:n], b[:n])), 0.03,
                               f"agents {i + 1} and {j + 1} waited alike: {report}")

        # The real brokers return on the same ports: every agent reconnects and delivers.
        for mq in self.mqs:
            mq.restart()
        self.clouds = [agentfix.MiniCloud(mq.port) for mq in self.mqs]
        for a, c in zip(self.agents, self.clouds):
            agentfix.wait_for(lambda: c.count() >= 5, 30, f"readings from {a.serial} after restart")
            self.assertIsNone(a.proc.poll())
            self.assertEqual(c.conflicts, 0)


if __name__ == "__main__":
    unittest.main()
