#!/usr/bin/env python3
"""scripts/factory-provision.sh (installed on devices as edgetrust-factory-provision by
meta-edgetrust's edgetrust-factory package) against a real software TPM and the built CLI:
prints the registration record, writes it to --record, is idempotent, refuses a device that
already holds another serial, and passes the CLI's exit codes through."""
import hashlib
import json
import os
import subprocess
import sys
import unittest

import etfix

SCRIPT = os.path.join(etfix.SOURCE, 'scripts', 'factory-provision.sh')
CLI = etfix.binary('edgetrust')


class FactoryScript(unittest.TestCase):
    def setUp(self):
        self.tpm = etfix.Swtpm().start()
        self.tmp = etfix.TempDir('et-factory-')
        self.env = dict(os.environ, EDGETRUST_CLI=CLI)
        self.env.pop('EDGETRUST_TCTI', None)
        self.env.pop('TPM2TOOLS_TCTI', None)

    def tearDown(self):
        self.tpm.cleanup()
        self.tmp.cleanup()

    def provision(self, *args, tcti=None):
        return etfix.run(['sh', SCRIPT, '--tcti', tcti or self.tpm.tcti, *args], env=self.env)

    def test_record_and_rerun(self):
        out = self.tmp.join('record.json')
        p = self.provision('--record', out, 'CM4-000123')
        self.assertEqual(p.returncode, 0, p.err)
        rec = json.loads(p.out)
        self.assertEqual(rec['serial'], 'CM4-000123')
        self.assertTrue(rec['pubkey_pem'].startswith('-----BEGIN PUBLIC KEY-----'))
        der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'DER'],
                             input=rec['pubkey_pem'].encode(), stdout=subprocess.PIPE,
                             check=True).stdout
        self.assertEqual(rec['fingerprint'], hashlib.sha256(der).hexdigest())
        with open(out) as f:
            self.assertEqual(f.read(), p.out)
        self.assertEqual(os.stat(out).st_mode & 0o777, 0o644)
        # The key the record names is the one in the TPM.
        pub = etfix.run([CLI, '--tcti', self.tpm.tcti, 'key', 'public'], env=self.env)
        self.assertEqual(pub.returncode, 0, pub.err)
        self.assertEqual(pub.out.strip(), rec['pubkey_pem'].strip())
        # A rerun (line restarted after a power cut) gives the same device, same key.
        again = self.provision('CM4-000123')
        self.assertEqual(again.returncode, 0, again.err)
        self.assertEqual(json.loads(again.out), rec)

    def test_no_da_passed_through(self):
        p = self.provision('--no-da', 'CM4-000124')
        self.assertEqual(p.returncode, 0, p.err)
        pub = etfix.run(['tpm2_nvreadpublic', '0x1000000'],
                        env=dict(self.env, TPM2TOOLS_TCTI=self.tpm.tcti))
        self.assertEqual(pub.returncode, 0, pub.err)
        self.assertIn('no_da', pub.out)

    def test_other_serial_refused(self):
        self.assertEqual(self.provision('CM4-000001').returncode, 0)
        p = self.provision('--record', self.tmp.join('r.json'), 'CM4-000002')
        self.assertEqual(p.returncode, 22, p.err)  # CLI_EXIT_NV_MISMATCH, passed through
        self.assertEqual(p.out, '')
        self.assertFalse(os.path.exists(self.tmp.join('r.json')))
        self.assertIn('CM4-000002', p.err)

    def test_tpm_unreachable(self):
        port = etfix.free_ports(1)
        p = self.provision('CM4-000003', tcti='swtpm:host=127.0.0.1,port=%d' % port)
        self.assertEqual(p.returncode, 10, p.err)  # CLI_EXIT_TPM_UNREACHABLE
        self.assertEqual(p.out, '')

    def test_usage(self):
        for args in ([], ['a', 'b'], ['--bogus', 'x'], ['--tcti']):
            p = etfix.run(['sh', SCRIPT, *args], env=self.env)
            self.assertEqual(p.returncode, 2, (args, p.err))
            self.assertIn('usage:', p.err)


if __name__ == '__main__':
    if not os.access(CLI, os.X_OK):
        print('SKIP: %s not built (-Dcli=false)' % CLI)
        sys.exit(77)
    etfix.main()
