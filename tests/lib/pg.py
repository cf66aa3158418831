"""A private PostgreSQL server for tests: initdb + pg_ctl in a temporary directory.

    with Postgres() as pg:
        pg.url          # postgresql://postgres@127.0.0.1:PORT/edgetrust
        pg.psql("SELECT 1")

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (its
directory is chowned to it). Data, socket and log live in the temp dir, removed afterwards.
"""
import glob
import os
import pwd
import subprocess

from etfix import fail_point, free_ports, mkdtemp, rmtree, track, untrack


def _bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


class Postgres:
    def __init__(self, dbname="edgetrust", fsync=True):
        self.bindir = _bindir()
        self.dbname = dbname
        self.fsync = fsync
        self.dir = mkdtemp("et-pg-")
        track(self)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = None
        self.started = False
        os.makedirs(self.sock)
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)

    def _run(self, args, check=True):
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--"] + args
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        if check and p.returncode != 0:
            log = ""
            if os.path.exists(self.log):
                with open(self.log, errors="replace") as f:
                    log = f.read()[-2000:]
            raise RuntimeError(f"{args} failed: {p.stderr.decode(errors='replace')}\n{log}")
        return p

    def start(self):
        """Starts the server; when that fails half way, stops it and removes its directory."""
        try:
            return self._start()
        except BaseException:
            self.cleanup()
            raise

    def _start(self):
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust",
                   "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
        for _ in range(10):
            self.port = free_ports(1)
            opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                    f"-c max_connections=200 -c fsync={'on' if self.fsync else 'off'}")
            p = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log,
                           "-w", "-t", "30", "-o", opts, "start"], check=False)
            if p.returncode == 0:
                break
        else:
            raise RuntimeError("PostgreSQL did not start")
        self.started = True
        fail_point("postgres")
        self.psql(f"CREATE DATABASE {self.dbname}", db="postgres")
        return self

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def psql(self, sql, db=None):
        """Runs SQL, returns stdout rows as lists of strings (unaligned, tab-separated)."""
        p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", db or self.dbname, "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed: {p.stderr.decode(errors='replace')}")
        out = p.stdout.decode()
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def stop(self):
        if self.started:
            self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate",
                       "-w", "stop"], check=False)
            self.started = False

    def cleanup(self):
        self.stop()
        rmtree(self.dir)
        untrack(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
