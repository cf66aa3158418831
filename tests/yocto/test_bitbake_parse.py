#!/usr/bin/env python3
"""meta-edgetrust parses with BitBake against the real upstream layers (kirkstone branches of
poky, meta-openembedded with meta-perl, meta-raspberrypi, meta-security), MACHINE=cm4-edge,
offline (BB_NO_NETWORK), as a non-root user, parse only:
  bitbake -p; bitbake -e edgetrust-image; bitbake -g edgetrust-image   (cm4-edge)
  bitbake -e edgetrust, linux-raspberrypi, rpi-config                  (values checked)
  bitbake -s: the recipe versions the lint's KIRKSTONE table promises
  the same with EDGETRUST_TPM_WIRING = "upstream"
  MACHINE=raspberrypi4-64, DISTRO=poky: `bitbake -S none linux-raspberrypi rpi-config` with
  and without the layer gives the same task signatures (yocto-check-layer's signature test,
  restricted to the recipes the layer appends to or configures).
-p alone lets an unknown DEPENDS or a missing file:// through; -g catches the first.

The layers are not part of this repository and CI does not fetch them. Point
EDGETRUST_YOCTO_LAYERS at a folder holding poky/, meta-openembedded/, meta-raspberrypi/ and
meta-security/; without it the test skips (exit 77). BitBake refuses to run as root: as root,
name an unprivileged user in EDGETRUST_YOCTO_USER. It needs the host tools of the Yocto
manual (on Debian: chrpath diffstat gawk cpio, locale en_US.UTF-8). Several minutes.
"""
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_layer_lint import KIRKSTONE  # noqa: E402

SRC = os.path.abspath(os.environ.get('ET_SOURCE_DIR')
                      or os.path.join(os.path.dirname(__file__), '..', '..'))
LAYER = os.path.join(SRC, 'yocto', 'meta-edgetrust')
SUBLAYERS = ['poky/meta', 'poky/meta-poky',
             'meta-openembedded/meta-oe', 'meta-openembedded/meta-python',
             'meta-openembedded/meta-networking', 'meta-openembedded/meta-perl',
             'meta-raspberrypi', 'meta-security', 'meta-security/meta-tpm']


class Fail(Exception):
    pass


class Build:
    def __init__(self, root, layers, user):
        self.dir = root
        self.layers = layers
        self.user = user
        self.home = os.path.join(root, 'home')
        os.makedirs(os.path.join(root, 'conf'), exist_ok=True)
        os.makedirs(self.home, exist_ok=True)
        # The recipe reads HEAD of this repository with git at parse time; as another user
        # than its owner git calls that "dubious ownership".
        with open(os.path.join(self.home, '.gitconfig'), 'w') as f:
            f.write('[safe]\n\tdirectory = *\n')

    def configure(self, machine, distro, with_layer=True, extra=''):
        paths = [os.path.join(self.layers, s) for s in SUBLAYERS]
        if with_layer:
            paths.append(LAYER)
        with open(os.path.join(self.dir, 'conf', 'bblayers.conf'), 'w') as f:
            f.write('POKY_BBLAYERS_CONF_VERSION = "2"\nBBPATH = "${TOPDIR}"\nBBFILES ?= ""\n'
                    'BBLAYERS = "%s"\n' % ' '.join(paths))
        with open(os.path.join(self.dir, 'conf', 'local.conf'), 'w') as f:
            f.write('CONF_VERSION = "2"\nMACHINE = "%s"\nDISTRO = "%s"\n'
                    'BB_NO_NETWORK = "1"\nDL_DIR = "${TOPDIR}/downloads"\n'
                    'SSTATE_DIR = "${TOPDIR}/sstate"\nTMPDIR = "${TOPDIR}/tmp"\n%s'
                    % (machine, distro, extra))
        if self.user:
            subprocess.run(['chown', '-R', self.user, self.dir], check=True)

    def bitbake(self, *args):
        script = ('cd "$1" && shift && . "$POKY/oe-init-build-env" "$PWD" >/dev/null '
                  '&& exec bitbake "$@"')
        env = {'HOME': self.home, 'LANG': 'en_US.UTF-8', 'PATH': '/usr/bin:/bin',
               'POKY': os.path.join(self.layers, 'poky')}
        cmd = ['bash', '-c', script, 'bitbake', self.dir, *args]
        if self.user:
            cmd = ['runuser', '-u', self.user, '--', 'env', '-i'] + \
                  ['%s=%s' % kv for kv in env.items()] + cmd
            env = None
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.dir)
        dt = time.monotonic() - t0
        print('  bitbake %s: exit %d, %.0f s' % (' '.join(args), r.returncode, dt), flush=True)
        if r.returncode != 0:
            tail = '\n'.join((r.stdout + r.stderr).splitlines()[-40:])
            raise Fail('bitbake %s failed:\n%s' % (' '.join(args), tail))
        return r.stdout

    def env(self, target):
        out = self.bitbake('-e', target)
        vals = {}
        for line in out.splitlines():
            if '="' in line and not line.startswith(('#', ' ', '\t')):
                k, v = line.split('="', 1)
                if k.replace('export ', '').replace('_', '').replace(':', '').replace(
                        '-', '').isalnum():
                    vals[k.replace('export ', '')] = v[:-1] if v.endswith('"') else v
        return vals


def want(cond, msg):
    if not cond:
        raise Fail(msg)


def words(v):
    return v.split()


def check_cm4_edge(b):
    b.configure('cm4-edge', 'edgetrust-os')
    print('MACHINE=cm4-edge DISTRO=edgetrust-os', flush=True)
    b.bitbake('-p')
    img = b.env('edgetrust-image')
    want(words(img['MACHINEOVERRIDES'].replace(':', ' '))[-1] == 'cm4-edge',
         'MACHINEOVERRIDES does not end with cm4-edge: %s' % img['MACHINEOVERRIDES'])
    want('raspberrypi4-64' in img['MACHINEOVERRIDES'].split(':'),
         'raspberrypi4-64 overrides inactive: %s' % img['MACHINEOVERRIDES'])
    want('tpm2' in words(img['MACHINE_FEATURES']), 'no tpm2 in MACHINE_FEATURES')
    want('overlays/slb9670-tpm.dtbo' in words(img['KERNEL_DEVICETREE']),
         'overlays/slb9670-tpm.dtbo not in KERNEL_DEVICETREE')
    want('read-only-rootfs' in words(img['IMAGE_FEATURES']), 'image is not read-only')
    want('edgetrust-cloud' in words(img['PACKAGE_EXCLUDE']), 'edgetrust-cloud not excluded')
    want('noexec,nosuid,nodev' in img['EDGETRUST_DATA_MOUNT_OPTIONS'], '/data options')
    want(img['WKS_FILE'] == 'edgetrust-rpi.wks.in', 'WKS_FILE is %s' % img['WKS_FILE'])
    et = b.env('edgetrust')
    args = words(et['PACKAGECONFIG_CONFARGS'])
    for a in ('-Dcloud=false', '-Dagent=true', '-Dcli=true', '-Dsystemd=enabled',
              '-Dtests=false', '-Dfuzz=false', '-Ddocs=false', '-Dpostgresql=disabled'):
        want(a in args, '%s not in PACKAGECONFIG_CONFARGS: %s' % (a, args))
    want(et['SYSTEMD_SERVICE:edgetrust-agent'] == 'edgetrustd.service', 'SYSTEMD_SERVICE')
    head = subprocess.run(['git', '-C', SRC, 'rev-parse', 'HEAD'], capture_output=True,
                          text=True).stdout.strip()
    want(not head or et['SRCREV'] == head, 'SRCREV %s is not HEAD %s of %s'
         % (et['SRCREV'], head, SRC))
    kern = b.env('linux-raspberrypi')
    want('file://slb9670-tpm-overlay.dts;subdir=git/arch/arm/boot/dts/overlays'
         in words(kern['SRC_URI']), 'overlay not in the kernel SRC_URI')
    want('file://tpm-slb9670.cfg' in words(kern['SRC_URI']), 'TPM fragment not in SRC_URI')
    cfg = b.env('rpi-config')
    want(cfg['ENABLE_SPI_BUS'] == '1', 'SPI not enabled')
    want('dtoverlay=slb9670-tpm\\n' in cfg['RPI_EXTRA_CONFIG'], 'RPI_EXTRA_CONFIG: %s'
         % cfg['RPI_EXTRA_CONFIG'])
    b.bitbake('-g', 'edgetrust-image')
    with open(os.path.join(b.dir, 'pn-buildlist')) as f:
        pns = set(f.read().split())
    for pn in ('edgetrust', 'tpm2-tss', 'mosquitto', 'libmodbus', 'cjson', 'sqlite3',
               'openssl', 'systemd', 'linux-raspberrypi', 'rpi-config'):
        want(pn in pns, '%s not in the edgetrust-image task graph' % pn)
    want('postgresql' not in pns, 'postgresql is in the device image graph')
    check_versions(b.bitbake('-s'))
    print('ok cm4-edge: parse, environment and task graph', flush=True)


def check_versions(out):
    """The lint checks meson.build against KIRKSTONE; this checks KIRKSTONE against BitBake."""
    pv = {}
    for line in out.splitlines():
        # name, latest [PE]:PV-PR, preferred [PE]:PV-PR when it differs
        m = re.match(r'^(\S+)\s+\d*:(\S+)(?:\s+\d*:(\S+))?', line)
        if m:
            pv[m.group(1)] = re.sub(r'-r\d+(\.\d+)?$', '', m.group(3) or m.group(2))
    for name, (recipe, version) in sorted(KIRKSTONE.items()):
        want(recipe in pv, 'recipe %s (for %s) not in these layers' % (recipe, name))
        want(pv[recipe] == version or pv[recipe].startswith(version + '+'), 'KIRKSTONE says %s %s, the layers have %s: update the '
             'table in test_layer_lint.py' % (recipe, version, pv[recipe]))
    print('ok recipe versions: %s' % ', '.join('%s %s' % (r, v) for r, v in
                                                 sorted(set(KIRKSTONE.values()))), flush=True)


def check_upstream_wiring(b):
    b.configure('cm4-edge', 'edgetrust-os', extra='EDGETRUST_TPM_WIRING = "upstream"\n')
    print('MACHINE=cm4-edge EDGETRUST_TPM_WIRING=upstream', flush=True)
    cfg = b.env('rpi-config')
    want('dtoverlay=tpm-slb9670\\n' in cfg['RPI_EXTRA_CONFIG'], 'RPI_EXTRA_CONFIG: %s'
         % cfg['RPI_EXTRA_CONFIG'])
    kern = b.env('linux-raspberrypi')
    want('overlays/tpm-slb9670.dtbo' in words(kern['KERNEL_DEVICETREE']),
         'overlays/tpm-slb9670.dtbo not built')
    want(not any('slb9670-tpm-overlay.dts' in w for w in words(kern['SRC_URI'])),
         'the article overlay is still added with the upstream wiring')
    want('file://tpm-slb9670.cfg' in words(kern['SRC_URI']), 'TPM fragment not in SRC_URI')
    print('ok upstream wiring', flush=True)


def signatures(b, with_layer):
    b.configure('raspberrypi4-64', 'poky', with_layer=with_layer)
    stamps = os.path.join(b.dir, 'tmp', 'stamps')
    shutil.rmtree(stamps, ignore_errors=True)
    b.bitbake('-S', 'none', 'linux-raspberrypi', 'rpi-config')
    sigs = set()
    for root, _, files in os.walk(stamps):
        for fn in files:
            if '.sigdata.' in fn:
                sigs.add(os.path.relpath(os.path.join(root, fn), stamps))
    return sigs


def check_other_machine(b):
    print('MACHINE=raspberrypi4-64 DISTRO=poky, signatures with and without the layer',
          flush=True)
    kern = None
    b.configure('raspberrypi4-64', 'poky')
    kern = b.env('linux-raspberrypi')
    for var in ('FILESEXTRAPATHS', 'FILESPATH', 'SRC_URI'):
        want(LAYER not in kern.get(var, ''), '%s of linux-raspberrypi on raspberrypi4-64 '
             'mentions meta-edgetrust: %s' % (var, kern.get(var)))
    with_l = signatures(b, True)
    without = signatures(b, False)
    want(with_l and without, 'no signatures written')
    diff = sorted(with_l ^ without)
    want(not diff, 'adding the layer changes %d task signatures of raspberrypi4-64, e.g.:\n%s'
         % (len(diff), '\n'.join(diff[:10])))
    print('ok raspberrypi4-64: %d task signatures identical with and without the layer'
          % len(with_l), flush=True)


def main():
    layers = os.environ.get('EDGETRUST_YOCTO_LAYERS')
    if not layers:
        print('SKIP: EDGETRUST_YOCTO_LAYERS is not set (a folder with poky, '
              'meta-openembedded, meta-raspberrypi, meta-security on kirkstone)')
        return 77
    missing = [s for s in SUBLAYERS if not os.path.isdir(os.path.join(layers, s, 'conf'))]
    if missing:
        print('SKIP: EDGETRUST_YOCTO_LAYERS=%s lacks %s' % (layers, ', '.join(missing)))
        return 77
    user = None
    if os.geteuid() == 0:
        user = os.environ.get('EDGETRUST_YOCTO_USER')
        if not user:
            print('FAIL: BitBake refuses to run as root: set EDGETRUST_YOCTO_USER to an '
                  'unprivileged user')
            return 1
        try:
            pwd.getpwnam(user)
        except KeyError:
            print('FAIL: EDGETRUST_YOCTO_USER=%s does not exist' % user)
            return 1
    root = tempfile.mkdtemp(prefix='et-bitbake-')
    os.chmod(root, 0o755)
    b = Build(root, layers, user)
    t0 = time.monotonic()
    try:
        check_cm4_edge(b)
        check_upstream_wiring(b)
        check_other_machine(b)
    except Fail as e:
        print('FAIL: %s' % e)
        print('(build directory kept: %s)' % root)
        return 1
    print('all BitBake checks passed in %.0f s' % (time.monotonic() - t0))
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
