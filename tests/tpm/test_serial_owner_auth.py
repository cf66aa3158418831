"""The serial stays readable when the owner has a password; clearing needs that password."""
import json
import os

import tpmtest


class OwnerAuth(tpmtest.TpmTestCase):
    def setUp(self):
        super().setUp()
        self.et("serial", "provision", "DEV-0001")
        self.tools("tpm2_changeauth", "-c", "o", "ownerpw")

    def auth_file(self, content, mode=0o600):
        path = self.tmp.join("owner.auth")
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def test_read_still_works(self):
        self.check_handles = False  # tpm2_getcap would add to the count
        c0 = self.tpm.count_commands()
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")
        self.check_handles = True
        print(f"\nTPM commands for serial read with an owner password: "
              f"{self.tpm.count_commands() - c0}")
        self.et("serial", "provision", "DEV-0001")  # the rerun still succeeds
        st = json.loads(self.et("status", "--json").out)
        self.assertTrue(st["owner_auth_set"])
        self.assertEqual(st["serial"]["value"], "DEV-0001")

    def test_clear_needs_owner_password(self):
        auth = self.code("CLI_EXIT_AUTH")
        p = self.et("serial", "clear", expect=auth)
        self.assertIn("--owner-auth-file", p.err)
        self.assertIn("empty password", p.err)
        p = self.et("serial", "clear", "--owner-auth-file", self.auth_file(b"wrong\n"),
                    expect=auth)
        self.assertIn("password given", p.err)
        self.assertEqual(self.et("serial", "read").out, "DEV-0001\n")
        # Wrong owner passwords do not count towards dictionary-attack lockout.
        st = json.loads(self.et("status", "--json").out)
        self.assertEqual(st["lockout"]["counter"], 0)
        # The right one, with the newline echo adds; never on the command line.
        self.et("serial", "clear", "--owner-auth-file", self.auth_file(b"ownerpw\n"))
        self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))

    def test_clear_with_password_on_stdin(self):
        self.et("serial", "clear", "--owner-auth-file", "-", input=b"ownerpw")
        self.et("serial", "read", expect=self.code("CLI_EXIT_NV_UNDEFINED"))

    def test_missing_auth_file(self):
        p = self.et("serial", "clear", "--owner-auth-file", self.tmp.join("nope"),
                    expect=self.code("CLI_EXIT_IO"))
        self.assertIn("nope", p.err)

    def test_provision_on_fresh_index_needs_owner(self):
        p = self.et("serial", "provision", "ALT-1", "--index", "0x01000001",
                    expect=self.code("CLI_EXIT_AUTH"))
        self.assertIn("owner", p.err)
        self.assertIn("password", p.err)


if __name__ == "__main__":
    tpmtest.main()
