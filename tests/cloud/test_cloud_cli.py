"""edgetrust-cloud operator commands against a real registry (SQLite or PostgreSQL), no broker:
help and exit codes, the state machine, settings, audit log, init-broker files."""
import json
import os
import stat
import unittest

import cloudtest
from etfix import TempDir, binary, main, run

EC_OK, EC_USAGE, EC_NOT_FOUND, EC_STATE, EC_DB, EC_FILE, EC_INPUT = 0, 2, 3, 4, 5, 7, 8
COMMANDS = ["activate", "pending", "accept", "reject", "revoke", "rotate", "list", "show",
            "settings", "telemetry", "audit", "init-broker", "serve"]


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir("et-cloudcli-")
        cls.pg = None
        if cloudtest.BACKEND == "postgresql":
            from pg import Postgres
            cls.pg = Postgres(fsync=False).start()
            cls.url = cls.pg.url
        else:
            cls.url = cls.tmp.join("registry.db")

    @classmethod
    def tearDownClass(cls):
        if cls.pg:
            cls.pg.cleanup()
        cls.tmp.cleanup()

    def cli(self, *args):
        return run([binary("edgetrust-cloud")] + list(args) + ["--db", self.url])

    def test_help_everywhere(self):
        p = run([binary("edgetrust-cloud"), "--help"])
        self.assertEqual(p.returncode, 0)
        for c in COMMANDS:
            self.assertIn(c, p.out)
            h = run([binary("edgetrust-cloud"), c, "--help"])
            self.assertEqual(h.returncode, 0, c)
            self.assertIn("Usage: edgetrust-cloud " + c, h.out)
        self.assertEqual(run([binary("edgetrust-cloud")]).returncode, EC_USAGE)
        self.assertEqual(run([binary("edgetrust-cloud"), "frobnicate"]).returncode, EC_USAGE)
        self.assertEqual(run([binary("edgetrust-cloud"), "list", "--bogus"]).returncode, EC_USAGE)
        self.assertEqual(run([binary("edgetrust-cloud"), "accept"]).returncode, EC_USAGE)
        # an option of another command is refused, not ignored
        self.assertEqual(run([binary("edgetrust-cloud"), "accept", "X", "--for", "1h"]).returncode,
                         EC_USAGE)

    def test_bad_values(self):
        self.assertEqual(self.cli("activate", "bad/serial").returncode, EC_INPUT)
        self.assertEqual(self.cli("activate", "x" * 65).returncode, EC_INPUT)
        self.assertEqual(self.cli("activate", "SNV", "--for", "10y").returncode, EC_INPUT)
        self.assertEqual(self.cli("activate", "SNV", "--for", "-5").returncode, EC_INPUT)
        self.assertEqual(self.cli("show", "NOPE").returncode, EC_NOT_FOUND)
        self.assertEqual(self.cli("accept", "NOPE").returncode, EC_NOT_FOUND)
        self.assertEqual(self.cli("settings", "set", "NOPE", "a=1").returncode, EC_NOT_FOUND)

    def test_database_unreachable(self):
        p = run([binary("edgetrust-cloud"), "list", "--db", "/nonexistent/dir/x.db"])
        self.assertEqual(p.returncode, EC_DB)
        self.assertIn("x.db", p.err)
        p = run([binary("edgetrust-cloud"), "list", "--db", "postgresql://nobody@127.0.0.1:1/x"])
        self.assertEqual(p.returncode, EC_DB)

    def test_state_machine_and_audit(self):
        s = "SN-CLI-1"
        self.assertEqual(self.cli("activate", s, "--for", "30m").returncode, EC_OK)
        d = json.loads(self.cli("show", s, "--json").out)
        self.assertEqual(d["state"], "activated")
        # nothing to accept, reject, rotate or revoke before the device registered
        for c in ("accept", "reject", "rotate", "revoke"):
            p = self.cli(c, s)
            self.assertEqual(p.returncode, EC_STATE, c)
            self.assertIn("activated", p.err)
        lst = json.loads(self.cli("list", "--json").out)
        self.assertIn(s, [x["serial"] for x in lst])
        lst = json.loads(self.cli("list", "--json", "--state", "pending").out)
        self.assertNotIn(s, [x["serial"] for x in lst])
        audit = json.loads(self.cli("audit", s, "--json").out)
        self.assertEqual([a["action"] for a in audit], ["activate"])
        self.assertTrue(audit[0]["actor"].startswith("cli:"))

    def test_settings(self):
        s = "SN-CLI-SET"
        self.cli("activate", s)
        p = self.cli("settings", "set", s, "poll_ms=500", "name=pump 1", "enabled=true")
        self.assertEqual(p.returncode, EC_OK, p.err)
        p = self.cli("settings", "set", s, "poll_ms=250")
        self.assertEqual(p.returncode, EC_OK, p.err)
        g = json.loads(self.cli("settings", "get", s).out)
        self.assertEqual(g["desired_version"], 2)
        self.assertEqual(g["desired"], {"poll_ms": 250, "name": "pump 1", "enabled": True})
        self.assertEqual(self.cli("settings", "set", s, "novalue").returncode, EC_INPUT)
        self.assertEqual(self.cli("settings", "frob", s).returncode, EC_USAGE)
        self.assertEqual(json.loads(self.cli("settings", "get", s).out)["desired_version"], 2)

    def test_telemetry_empty(self):
        s = "SN-CLI-TEL"
        self.cli("activate", s)
        p = self.cli("telemetry", s, "--json", "--since", "10m")
        self.assertEqual(p.returncode, EC_OK, p.err)
        self.assertEqual(json.loads(p.out), [])

    def test_init_broker(self):
        d = self.tmp.join("broker")
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d])
        self.assertEqual(p.returncode, EC_OK, p.err)
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        for f in ("dynamic-security.json", "cloud.password", "bootstrap.password"):
            path = os.path.join(d, f)
            self.assertIn(path, p.out)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(os.path.join(d, "cloud.password")) as f:
            pw = f.read()
        self.assertGreaterEqual(len(pw), 22)  # >= 128 bits in base64url
        self.assertNotIn(pw, p.out + p.err)
        with open(os.path.join(d, "dynamic-security.json")) as f:
            cfg = json.load(f)
        self.assertNotIn(pw, json.dumps(cfg))
        users = {c["username"]: c for c in cfg["clients"]}
        self.assertEqual(set(users), {"edgetrust-cloud", "bootstrap"})
        self.assertEqual(users["bootstrap"]["iterations"], 101)
        self.assertFalse(cfg["defaultACLAccess"]["publishClientSend"])
        self.assertFalse(cfg["defaultACLAccess"]["subscribe"])
        roles = {r["rolename"]: r for r in cfg["roles"]}
        boot = {(a["acltype"], a["topic"]) for a in roles["edgetrust-bootstrap"]["acls"]}
        self.assertEqual(boot, {("publishClientSend", "et/v1/+/register"),
                                ("subscribePattern", "et/v1/+/register/reply"),
                                ("publishClientReceive", "et/v1/+/register/reply")})
        # never overwrites without --force
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d])
        self.assertEqual(p.returncode, EC_FILE)
        with open(os.path.join(d, "cloud.password")) as f:
            self.assertEqual(f.read(), pw)
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d, "--force"])
        self.assertEqual(p.returncode, EC_OK)
        # a directory others can read is refused
        os.chmod(d, 0o755)
        self.assertEqual(run([binary("edgetrust-cloud"), "init-broker", "--dir", d, "--force"]).returncode,
                         EC_FILE)

    def test_init_broker_accounts(self):
        """--accounts registry (default) loads the edgetrust plugin before dynamic security,
        with an absolute registry path; --accounts dynsec loads dynamic security alone."""
        d = self.tmp.join("broker-reg")
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d, "--db", "rel/registry.db",
                 "--plugin", "/opt/et/edgetrust_auth.so"])
        self.assertEqual(p.returncode, EC_OK, p.err)
        with open(os.path.join(d, "mosquitto-edgetrust.conf")) as f:
            lines = [l for l in f.read().splitlines() if l and not l.startswith("#")]
        plugins = [l for l in lines if l.startswith("plugin ")]
        self.assertEqual(plugins, ["plugin /opt/et/edgetrust_auth.so",
                                   "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"])
        self.assertIn("plugin_opt_registry " + os.path.join(os.getcwd(), "rel/registry.db"), lines)
        self.assertLess(lines.index("plugin_opt_registry " + os.path.join(os.getcwd(), "rel/registry.db")),
                        lines.index(plugins[1]))
        with open(os.path.join(d, "dynamic-security.json")) as f:
            cfg = json.load(f)
        cloud = {(a["acltype"], a["topic"]) for r in cfg["roles"] if r["rolename"] == "edgetrust-cloud"
                 for a in r["acls"]}
        self.assertIn(("publishClientSend", "$CONTROL/edgetrust/v1"), cloud)
        d = self.tmp.join("broker-dyn")
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d, "--accounts", "dynsec"])
        self.assertEqual(p.returncode, EC_OK, p.err)
        with open(os.path.join(d, "mosquitto-edgetrust.conf")) as f:
            text = f.read()
        # the plugin is there in dynsec mode too, guarding client ids, retain and sizes only
        lines = [l for l in text.splitlines() if l and not l.startswith("#")]
        self.assertLess(lines.index("plugin_opt_accounts dynsec"),
                        lines.index("plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"))
        self.assertTrue(lines[lines.index("plugin_opt_accounts dynsec") - 1].endswith("edgetrust_auth.so"))
        self.assertNotIn("plugin_opt_registry", text)
        for limit in ("allow_zero_length_clientid false", "max_packet_size 1048576",
                      "max_queued_messages 100000", "max_queued_bytes 268435456"):
            self.assertIn(limit, lines)
        p = run([binary("edgetrust-cloud"), "init-broker", "--dir", d, "--accounts", "nope"])
        self.assertEqual(p.returncode, EC_USAGE)
        self.assertEqual(self.cli("serve", "--accounts", "both").returncode, EC_USAGE)

    def test_reserved_serials(self):
        """A device named like a broker login would shadow it, one in the bootstrap's or the
        cloud's client-id namespace could take their ids: activate refuses."""
        for name in ("bootstrap", "edgetrust-cloud", "etboot-x", "etcloud-i0", "ETCloud-i0"):
            p = self.cli("activate", name)
            self.assertEqual(p.returncode, EC_INPUT, p.err)
            self.assertIn("broker logins", p.err)
        # Not a serial at all (et_serial_validate), so never in the registry either.
        self.assertEqual(self.cli("show", "bootstrap").returncode, EC_INPUT)
        self.assertEqual(self.cli("show", "etcloud-i0").returncode, EC_INPUT)
        self.assertEqual(self.cli("activate", "etcloud").returncode, 0)  # no prefix: a serial

    def test_serve_bad_password_file(self):
        p = run([binary("edgetrust-cloud"), "serve", "--db", self.url, "--broker-password-file",
                 "/nonexistent/pw", "--broker-port", "1"], timeout=30)
        self.assertEqual(p.returncode, EC_FILE)


if __name__ == "__main__":
    main()
