"""--out never replaces what is not a regular file (issue 19), for every command that takes it
(creds open, creds seal, key public: one function, src/cli/outfile.c).

Run as root, as the issue's report was. The system's /dev/null and /dev/stdout are only used
after the same case passed on a private node or link of our own, so a build that still
replaces them (1a88aad) fails on the private one and never touches the system's.
"""
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import unittest

import etfix
import tpmtest

SERIAL = "OUT-0001"
SECRET = b"mqtt-password=out-test-secret\n"


class OutTarget(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tpm = etfix.Swtpm().start()
        cls.tmpc = etfix.TempDir("et-out-")
        cls.env = cls.tpm.env()
        cls.env.pop("TSS2_LOG", None)
        try:
            cls.codes = {v: k for k, v in tpmtest.documented_exit_codes().items()}
            cls.et_(["provision", "--serial", SERIAL])
            cls.pem = cls.tmpc.join("dev.pem")
            cls.et_(["key", "public", "--out", cls.pem])
            cls.creds = cls.tmpc.join("creds.txt")
            with open(cls.creds, "wb") as f:
                f.write(SECRET)
            cls.env_path = cls.tmpc.join("creds.env")
            cls.et_(["creds", "seal", "--pubkey", cls.pem, "--serial", SERIAL, "--in", cls.creds,
                     "--out", cls.env_path])
            with open(cls.env_path, "rb") as f:
                cls.envelope = f.read()
            with open(cls.pem, "rb") as f:
                cls.pem_bytes = f.read()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tpm.cleanup()
        cls.tmpc.cleanup()

    @classmethod
    def et_(cls, args, check=True, **kw):
        p = etfix.run([etfix.binary("edgetrust")] + args, env=cls.env, timeout=60, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"edgetrust {args}: exit {p.returncode}: {p.err}")
        return p

    def setUp(self):
        self.tmp = etfix.TempDir("et-out-case-")
        self.addCleanup(self.tmp.cleanup)

    def code(self, name):
        return self.codes[name]

    # The three commands, each writing to target; returns (process, bytes it should write).
    def open_to(self, target, **kw):
        return self.et_(["creds", "open", "--in", self.env_path, "--out", target], check=False,
                        **kw), SECRET

    def seal_to(self, target, **kw):
        return self.et_(["creds", "seal", "--pubkey", self.pem, "--serial", SERIAL, "--in",
                         self.creds, "--out", target], check=False, **kw), None

    def public_to(self, target, **kw):
        return self.et_(["key", "public", "--out", target], check=False, **kw), self.pem_bytes

    def commands(self):
        return [("creds open", self.open_to), ("creds seal", self.seal_to),
                ("key public", self.public_to)]

    def leftovers(self, d):
        return [n for n in os.listdir(d) if ".tmp." in n]

    def assert_refused(self, p, words=()):
        self.assertEqual(p.returncode, self.code("CLI_EXIT_OUT_REFUSED"), p.err)
        self.assertEqual(p.err.count("\n"), 1, p.err)
        self.assertIn("refusing", p.err)
        for w in words:
            self.assertIn(w, p.err)

    # ---- character devices --------------------------------------------------------------
    def private_char_device(self, run):
        """Writes to a private node of /dev/null's device; asserts it is still that node."""
        dev = self.tmp.join("null")
        if not os.path.exists(dev):
            os.mknod(dev, stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null
            os.chmod(dev, 0o666)
        ino = os.lstat(dev).st_ino
        p, _ = run(dev)
        self.assertEqual(p.returncode, 0, p.err)
        st = os.lstat(dev)
        self.assertTrue(stat.S_ISCHR(st.st_mode), "the device was replaced")
        self.assertEqual((st.st_ino, st.st_rdev, stat.S_IMODE(st.st_mode)),
                         (ino, os.makedev(1, 3), 0o666))
        self.assertEqual(self.leftovers(self.tmp.path), [])

    def test_char_device_stays_a_char_device(self):
        for name, run in self.commands():
            with self.subTest(cmd=name):
                self.private_char_device(run)

    def test_dev_null_stays_a_char_device(self):
        # Only once a private device survived (outside subTest, so a failure stops here):
        # never destroy the system's /dev/null.
        self.private_char_device(self.open_to)
        before = os.lstat("/dev/null")
        p, _ = self.open_to("/dev/null")
        self.assertEqual(p.returncode, 0, p.err)
        after = os.lstat("/dev/null")
        self.assertTrue(stat.S_ISCHR(after.st_mode))
        self.assertEqual((after.st_ino, after.st_rdev, stat.S_IMODE(after.st_mode)),
                         (before.st_ino, before.st_rdev, stat.S_IMODE(before.st_mode)))

    # ---- FIFOs and sockets --------------------------------------------------------------
    def test_fifo_reader_receives_the_bytes(self):
        for name, run in self.commands():
            with self.subTest(cmd=name):
                fifo = self.tmp.join("fifo-" + name.replace(" ", "-"))
                os.mkfifo(fifo, 0o600)
                rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    p, want = run(fifo)
                    self.assertEqual(p.returncode, 0, p.err)
                    os.set_blocking(rfd, True)
                    got = b""
                    while True:
                        b = os.read(rfd, 65536)
                        if not b:
                            break
                        got += b
                finally:
                    os.close(rfd)
                if want is None:  # an envelope: random each time; check what it is
                    self.assertEqual(got[:4], self.envelope[:4])
                    self.assertEqual(len(got), len(self.envelope))
                else:
                    self.assertEqual(got, want)
                self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        self.assertEqual(self.leftovers(self.tmp.path), [])

    def test_fifo_without_reader_fails_and_leaves_nothing(self):
        fifo = self.tmp.join("fifo")
        os.mkfifo(fifo, 0o600)
        for name, run in self.commands():
            with self.subTest(cmd=name):
                p, _ = run(fifo)  # 60 s at most: the old code never blocked here, it replaced
                self.assertEqual(p.returncode, self.code("CLI_EXIT_IO"), p.err)
                self.assertIn("no program reads", p.err)
                self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
                self.assertEqual(sorted(os.listdir(self.tmp.path)), ["fifo"])

    def test_unix_socket_is_written_into(self):
        path = self.tmp.join("sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(srv.close)
        srv.bind(path)
        srv.listen(1)
        got = []

        def accept():
            c, _ = srv.accept()
            data = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
            c.close()
            got.append(data)

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        p, want = self.open_to(path)
        self.assertEqual(p.returncode, 0, p.err)
        t.join(30)
        self.assertEqual(got, [want])
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))

    # ---- symbolic links -----------------------------------------------------------------
    def test_symlink_to_a_regular_file_is_refused_and_target_unchanged(self):
        target = self.tmp.join("target")
        with open(target, "wb") as f:
            f.write(b"keep me\n")
        os.chmod(target, 0o644)
        link = self.tmp.join("link")
        os.symlink(target, link)
        for name, run in self.commands():
            with self.subTest(cmd=name):
                p, _ = run(link)
                self.assert_refused(p, ["symbolic link to a regular file", link])
                self.assertTrue(os.path.islink(link))
                with open(target, "rb") as f:
                    self.assertEqual(f.read(), b"keep me\n")
                self.assertEqual(stat.S_IMODE(os.stat(target).st_mode), 0o644)
                self.assertEqual(self.leftovers(self.tmp.path), [])

    def test_dangling_symlink_is_refused(self):
        link = self.tmp.join("link")
        os.symlink(self.tmp.join("nothing"), link)
        p, _ = self.open_to(link)
        self.assert_refused(p, ["symbolic link to nothing"])
        self.assertFalse(os.path.exists(self.tmp.join("nothing")))
        self.assertTrue(os.path.islink(link))

    def test_stdout_link_works(self):
        # A private link first (as /dev/stdout is one: /proc/self/fd/1), then the system's.
        link = self.tmp.join("stdout")
        os.symlink("/proc/self/fd/1", link)
        # A chroot or container may have no /dev/stdout (every Debian system has it); the
        # private link above is the same case.
        system = ["/dev/stdout"] if os.path.lexists("/dev/stdout") else []
        for target in [link] + system:  # no subTest: the first failure stops
            before = os.lstat(target)
            p, want = self.open_to(target)
            self.assertEqual(p.returncode, 0, p.err)
            self.assertEqual(p.stdout, want)
            after = os.lstat(target)
            self.assertTrue(stat.S_ISLNK(after.st_mode), f"{target} was replaced")
            self.assertEqual(after.st_ino, before.st_ino)
        # Standard output redirected to a file: the bytes land in that file, through our fd.
        outfile = self.tmp.join("redirected")
        with open(outfile, "wb") as f:
            p = subprocess.run([etfix.binary("edgetrust"), "creds", "open", "--in",
                                self.env_path, "--out", link], env=self.env, stdout=f,
                               stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(outfile, "rb") as f:
            self.assertEqual(f.read(), SECRET)
        self.assertTrue(os.path.islink(link))

    # ---- directories and other nodes ------------------------------------------------------
    def test_directory_is_refused(self):
        d = self.tmp.join("dir")
        os.mkdir(d)
        for name, run in self.commands():
            with self.subTest(cmd=name):
                p, _ = run(d)
                self.assert_refused(p, ["a directory"])
                self.assertTrue(os.path.isdir(d))
                self.assertEqual(os.listdir(d), [])
        link = self.tmp.join("dirlink")
        os.symlink(d, link)
        p, _ = self.open_to(link)
        self.assert_refused(p, ["symbolic link to a directory"])
        self.assertEqual(self.leftovers(self.tmp.path), [])

    def test_block_device_is_refused(self):
        dev = self.tmp.join("blk")
        os.mknod(dev, 0o600 | stat.S_IFBLK, os.makedev(7, 250))  # a loop minor nobody uses
        p, _ = self.open_to(dev)
        self.assert_refused(p, ["a block device"])
        self.assertTrue(stat.S_ISBLK(os.lstat(dev).st_mode))

    # ---- regular files ------------------------------------------------------------------
    def test_regular_file_replaced_atomically_0600(self):
        for name, run in self.commands():
            with self.subTest(cmd=name):
                path = self.tmp.join("out-" + name.replace(" ", "-"))
                with open(path, "wb") as f:
                    f.write(b"old\n")
                os.chmod(path, 0o644)
                ino = os.stat(path).st_ino
                old_umask = os.umask(0)
                try:
                    p, want = run(path)
                finally:
                    os.umask(old_umask)
                self.assertEqual(p.returncode, 0, p.err)
                st = os.lstat(path)
                self.assertTrue(stat.S_ISREG(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
                self.assertNotEqual(st.st_ino, ino, "written in place, not renamed over")
                with open(path, "rb") as f:
                    data = f.read()
                self.assertEqual(data, want if want is not None else data)
                self.assertNotEqual(data, b"old\n")
                # A new name, too.
                new = path + ".new"
                p, _ = run(new)
                self.assertEqual(p.returncode, 0, p.err)
                self.assertEqual(stat.S_IMODE(os.lstat(new).st_mode), 0o600)
        self.assertEqual(self.leftovers(self.tmp.path), [])

    @unittest.skipUnless(shutil.which("strace"), "strace is not installed")
    def test_directory_fsynced_after_rename(self):
        d = self.tmp.join("sub")
        os.mkdir(d)
        path = os.path.join(d, "creds.out")
        trace = self.tmp.join("trace")
        env = dict(self.env)  # LeakSanitizer cannot run under ptrace
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        p = subprocess.run(["strace", "-f", "-qq", "-o", trace, "-e",
                            "trace=openat,rename,renameat,renameat2,fsync,fdatasync",
                            etfix.binary("edgetrust"), "creds", "open", "--in", self.env_path,
                            "--out", path], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(trace) as f:
            lines = f.read().splitlines()
        ren = [i for i, l in enumerate(lines) if re.search(r"rename\w*\(.*creds\.out", l)]
        self.assertEqual(len(ren), 1, "\n".join(lines[-30:]))
        fds = {}
        for l in lines[ren[0]:]:
            m = re.search(r'openat\(AT_FDCWD, "' + re.escape(d) + r'", [^)]*O_DIRECTORY[^)]*\)'
                          r' = (\d+)', l)
            if m:
                fds[m.group(1)] = True
        synced = [m.group(1) for m in (re.search(r"\bfsync\((\d+)\)\s*= 0", l)
                                       for l in lines[ren[0]:]) if m and m.group(1) in fds]
        self.assertTrue(fds, "the directory was never opened after the rename:\n" +
                        "\n".join(lines[ren[0]:]))
        self.assertTrue(synced, "the directory was not fsynced after the rename:\n" +
                        "\n".join(lines[ren[0]:]))


if __name__ == "__main__":
    etfix.main()
