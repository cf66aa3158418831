#!/usr/bin/env python3
"""systemd-analyze verify on edgetrustd.service, the unit meson installs and the Yocto recipe
ships: the one the build generates (build/src/agent/edgetrustd.service) and the template in
the source tree (src/agent/edgetrustd.service.in, rendered as for a device). verify also insists that ExecStart's program exists; the
binary is installed on the device, not here, so the check runs on a copy whose ExecStart
points at the built edgetrustd when there is one, else at /bin/true (that the unit's syntax,
sandboxing directives and dependencies are valid is what this test is about). Any message
from verify fails the test: it reports unknown directives on stderr with exit code 0."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(os.environ.get('ET_SOURCE_DIR')
                      or os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.environ.get('ET_BUILD_DIR', os.path.join(SRC, 'build'))

# Values for meson-style @VAR@ placeholders of a template (what meson configure_file would
# substitute on a device build: prefix /usr, sysconfdir /etc).
SUBST = {'prefix': '/usr', 'bindir': '/usr/bin', 'sbindir': '/usr/sbin', 'libdir': '/usr/lib',
         'sysconfdir': '/etc', 'localstatedir': '/var', 'datadir': '/usr/share'}


def candidates():
    c = []
    for p in (os.path.join(BUILD, 'src', 'agent', 'edgetrustd.service'),
              os.path.join(SRC, 'src', 'agent', 'edgetrustd.service'),
              os.path.join(SRC, 'src', 'agent', 'edgetrustd.service.in')):
        if os.path.exists(p):
            c.append(p)
    return c


def render(text):
    def sub(m):
        key = m.group(1).lower()
        if key not in SUBST:
            raise KeyError(m.group(0))
        return SUBST[key]
    return re.sub(r'@([A-Za-z_]+)@', sub, text)


def main():
    if not shutil.which('systemd-analyze'):
        print('FAIL: systemd-analyze not found (Debian package systemd; make deps installs it)')
        return 1
    built = os.path.join(BUILD, 'src', 'agent', 'edgetrustd')
    exe = built if os.access(built, os.X_OK) else '/bin/true'
    fails = 0
    units = candidates()
    if not any(p.startswith(os.path.join(SRC, 'src')) for p in units):
        print('FAIL: no src/agent/edgetrustd.service(.in): the agent package would have no unit')
        fails += 1
    for path in units:
        with open(path) as f:
            text = f.read()
        try:
            text = render(text)
        except KeyError as e:
            print('FAIL %s: unknown placeholder %s: add it to SUBST in %s' % (path, e, __file__))
            fails += 1
            continue
        m = re.search(r'^ExecStart=[-@:+!]*(\S+)', text, re.M)
        if not m:
            print('FAIL %s: no ExecStart' % path)
            fails += 1
            continue
        if os.path.basename(m.group(1)) != 'edgetrustd':
            print('FAIL %s: ExecStart runs %s, not edgetrustd' % (path, m.group(1)))
            fails += 1
            continue
        checks = {
            'User=': 'runs as root', 'NoNewPrivileges=yes': 'may gain privileges',
            'ProtectSystem=strict': 'may write the root file system',
        }
        for needle, why in checks.items():
            if needle not in text:
                print('FAIL %s: no %s: the agent %s' % (path, needle, why))
                fails += 1
        with tempfile.TemporaryDirectory() as tmp:
            unit = os.path.join(tmp, 'edgetrustd.service')
            with open(unit, 'w') as f:
                f.write(text.replace(m.group(1), exe, 1))
            r = subprocess.run(['systemd-analyze', 'verify', '--man=no', unit],
                               capture_output=True, text=True)
            msg = (r.stdout + r.stderr).strip()
            if r.returncode != 0 or msg:
                print('FAIL %s: systemd-analyze verify (exit %d, ExecStart -> %s):\n%s'
                      % (path, r.returncode, exe, msg))
                fails += 1
            else:
                print('ok %s: systemd-analyze verify clean (ExecStart -> %s)' % (path, exe))
    # verify must complain about a unit with a mistake, or this test proves nothing.
    with tempfile.TemporaryDirectory() as tmp:
        unit = os.path.join(tmp, 'bad.service')
        with open(unit, 'w') as f:
            f.write('[Service]\nExecStart=/bin/true\nProtectSystem=sometimes\n')
        r = subprocess.run(['systemd-analyze', 'verify', '--man=no', unit],
                           capture_output=True, text=True)
        if not (r.stdout + r.stderr).strip():
            print('FAIL self-test: systemd-analyze verify accepted ProtectSystem=sometimes')
            fails += 1
        else:
            print('ok self-test: a bad directive is reported')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
