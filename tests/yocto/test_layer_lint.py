#!/usr/bin/env python3
"""Lint of meta-edgetrust, without BitBake:
  - new override syntax only (:append, :${PN}, :cm4-edge; never _append, _${PN}, _cm4-edge);
  - every file:// in SRC_URI exists on the recipe's file search path;
  - every LIC_FILES_CHKSUM md5 matches the file;
  - the edgetrust recipe maps the project's meson options one to one (PACKAGECONFIG or
    EXTRA_OEMESON, with values of the option's type) and never enables the cloud service;
  - every line of every bbappend applies to cm4-edge only;
  - the meson version and every dependency() version the device build asks for exist in the
    kirkstone layers (KIRKSTONE, which the BitBake check compares with the real recipes);
  - layer.conf compatibility and dependencies, and the README yocto-check-layer expects;
  - edgetrust-image: read-only root, /data noexec,nosuid,nodev on a partition the wic layout
    creates with that label (and no mount point, so wic adds no second fstab line), the
    article's TPM packages as the tpm-debug feature, edgetrust-cloud excluded.
Each rule is first run on a known-bad sample, so a rule that cannot fail fails the test."""
import glob
import hashlib
import os
import re
import sys

SRC = os.path.abspath(os.environ.get('ET_SOURCE_DIR')
                      or os.path.join(os.path.dirname(__file__), '..', '..'))
LAYER = os.path.join(SRC, 'yocto', 'meta-edgetrust')
MACHINE = 'cm4-edge'

ASSIGN = re.compile(r'^\s*(?:export\s+)?([A-Za-z0-9_\-\.\$\{\}:/@+~]+?)(\[[^\]]*\])?\s*'
                    r'(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(.*)$')
FUNC = re.compile(r'^\s*(?:python\s+|fakeroot\s+)*([A-Za-z0-9_\-\.\$\{\}:]+)\s*\(\s*\)\s*\{')
OLD_OVERRIDE = re.compile(
    r'_(append|prepend|remove)(?![A-Za-z0-9])'      # FOO_append, do_install_append
    r'|_\$\{(PN|BPN|PN-\w+)\}'                      # FILES_${PN}
    r'|_(cm4-edge|rpi|raspberrypi[0-9a-z-]*|class-\w+|pn-[\w-]+|virtclass-\w+)$')


def logical_lines(path):
    """(line number, text) with backslash continuations joined and comments dropped."""
    out, buf, start = [], '', 0
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip('\n')
            if not buf and line.lstrip().startswith('#'):
                continue
            if not buf:
                start = n
            if line.endswith('\\'):
                buf += line[:-1] + ' '
                continue
            buf += line
            if buf.strip():
                out.append((start, buf))
            buf = ''
    if buf.strip():
        out.append((start, buf))
    return out


def assignments(path):
    """(line, name, flag, op, value) for every variable assignment; value unquoted."""
    res = []
    in_func = 0
    for n, text in logical_lines(path):
        if in_func:
            in_func += text.count('{') - text.count('}')
            continue
        if FUNC.match(text):
            in_func = text.count('{') - text.count('}')
            continue
        m = ASSIGN.match(text)
        if m:
            value = m.group(4).strip()
            if len(value) >= 2 and value[0] in '"\'' and value[-1] == value[0]:
                value = value[1:-1]
            res.append((n, m.group(1), m.group(2), m.group(3), value))
    return res


def names(path):
    """(line, name) of every assignment and function definition, for override checks."""
    res = []
    for n, text in logical_lines(path):
        m = FUNC.match(text)
        if m:
            res.append((n, m.group(1)))
            continue
        m = ASSIGN.match(text)
        if m and not text.startswith((' ', '\t')):
            res.append((n, m.group(1)))
    return res


def layer_files(*exts):
    return sorted(p for e in exts for p in glob.glob(os.path.join(LAYER, '**', '*' + e),
                                                       recursive=True))


# ---- rules: each returns a list of problems -------------------------------------------------
def rule_old_overrides(files):
    bad = []
    for p in files:
        for n, name in names(p):
            if OLD_OVERRIDE.search(name):
                bad.append('%s:%d: old override syntax in %r: use ":" (e.g. FOO:append, '
                           'FILES:${PN}, FOO:cm4-edge)' % (rel(p), n, name))
    return bad


def filespath(recipe):
    d = os.path.dirname(recipe)
    base = os.path.basename(recipe).rsplit('.', 1)[0]
    bpn = base.split('_')[0]
    dirs = [os.path.join(d, base), os.path.join(d, bpn), os.path.join(d, 'files')]
    for _, name, _, _, value in assignments(recipe):
        if name.split(':')[0] == 'FILESEXTRAPATHS':
            for part in value.split(':'):
                part = part.replace('${THISDIR}', d).strip()
                if part and '$' not in part:
                    dirs.insert(0, part)
    # Override subfolders (files/cm4-edge/...) are on the search path too.
    out = []
    for x in dirs:
        out.append(x)
        out.extend(sorted(glob.glob(os.path.join(x, '*/'))))
    return out


def rule_src_uri_files(recipes):
    bad = []
    for p in recipes:
        dirs = filespath(p)
        for n, name, _, _, value in assignments(p):
            if name.split(':')[0] != 'SRC_URI':
                continue
            for f in re.findall(r'file://([^;\s\'"}]+)', value):
                if f.startswith('/') or '$' in f:
                    bad.append('%s:%d: file://%s: use a path relative to the recipe\'s files'
                               % (rel(p), n, f))
                    continue
                if not any(os.path.exists(os.path.join(d, f)) for d in dirs):
                    bad.append('%s:%d: file://%s not found in %s' % (
                        rel(p), n, f, ', '.join(rel(d) for d in dirs)))
    return bad


def source_dir(recipe):
    """Where ${S} comes from, for recipes whose source is this repository."""
    for _, name, _, _, value in assignments(recipe):
        if name == 'SRC_URI' and 'git://${EDGETRUST_REPO}' in value:
            return SRC
    return None


def rule_license_checksums(recipes):
    bad = []
    for p in recipes:
        for n, name, _, _, value in assignments(p):
            if name.split(':')[0] != 'LIC_FILES_CHKSUM':
                continue
            for entry in value.split():
                parts = entry.split(';')
                if not parts[0].startswith('file://'):
                    bad.append('%s:%d: %s is not a file:// entry' % (rel(p), n, entry))
                    continue
                params = dict(x.split('=', 1) for x in parts[1:] if '=' in x)
                path = parts[0][len('file://'):]
                if path.startswith('${COMMON_LICENSE_DIR}'):
                    continue  # oe-core's own text, checked by oe-core
                s = source_dir(p)
                if s is None:
                    bad.append('%s:%d: cannot tell where %s lives (source not this repository)'
                               % (rel(p), n, path))
                    continue
                full = os.path.join(s, path)
                if not os.path.exists(full):
                    bad.append('%s:%d: %s does not exist' % (rel(p), n, rel(full)))
                    continue
                with open(full, 'rb') as f:
                    lines = f.read().splitlines(keepends=True)
                b, e = int(params.get('beginline', 1)), params.get('endline')
                data = b''.join(lines[b - 1:int(e) if e else None])
                md5 = hashlib.md5(data).hexdigest()
                if 'md5' not in params:
                    bad.append('%s:%d: %s has no md5' % (rel(p), n, entry))
                elif params['md5'] != md5:
                    bad.append('%s:%d: md5 of %s is %s, recipe says %s'
                               % (rel(p), n, path, md5, params['md5']))
    return bad


def meson_options(path):
    opts = {}
    text = open(path).read()
    for m in re.finditer(r"option\(\s*'([\w-]+)'\s*,\s*type\s*:\s*'(\w+)'([^)]*)\)", text):
        choices = re.search(r"choices\s*:\s*\[([^\]]*)\]", m.group(3))
        opts[m.group(1)] = (m.group(2), re.findall(r"'([^']*)'", choices.group(1))
                            if choices else [])
    return opts


def check_value(opts, name, value, where):
    if name not in opts:
        return ['%s: -D%s is not an option of meson_options.txt' % (where, name)]
    typ, choices = opts[name]
    ok = {'boolean': value in ('true', 'false'),
          'feature': value in ('enabled', 'disabled', 'auto'),
          'combo': value in choices,
          'integer': value.lstrip('-').isdigit(),
          'string': True, 'array': True}.get(typ, False)
    return [] if ok else ['%s: -D%s=%s is not a valid %s value' % (where, name, value, typ)]


def rule_meson_options(recipe, opts):
    bad, covered = [], set()
    default_pc = None
    for n, name, flag, op, value in assignments(recipe):
        where = '%s:%d' % (rel(recipe), n)
        if name == 'PACKAGECONFIG' and flag:
            pc = flag[1:-1]
            fields = [x.strip() for x in value.split(',')]
            if pc not in opts:
                bad.append('%s: PACKAGECONFIG[%s] is not a meson option' % (where, pc))
                continue
            covered.add(pc)
            for i, want in ((0, 'on'), (1, 'off')):
                args = fields[i].split() if len(fields) > i else []
                if len(args) != 1 or not args[0].startswith('-D%s=' % pc):
                    bad.append('%s: PACKAGECONFIG[%s] %s-value must be exactly -D%s=...'
                               % (where, pc, want, pc))
                    continue
                bad += check_value(opts, pc, args[0].split('=', 1)[1], where)
        elif name == 'PACKAGECONFIG' and not flag and op in ('??=', '?=', '='):
            default_pc = value
        elif name.split(':')[0] == 'EXTRA_OEMESON':
            for arg in value.split():
                m = re.match(r'-D([\w-]+)=(.*)$', arg)
                if not m:
                    bad.append('%s: EXTRA_OEMESON argument %r is not -Dname=value' % (where, arg))
                    continue
                covered.add(m.group(1))
                bad += check_value(opts, m.group(1), m.group(2), where)
    for o in sorted(set(opts) - covered):
        bad.append('%s: meson option %r has no PACKAGECONFIG or EXTRA_OEMESON entry'
                   % (rel(recipe), o))
    if default_pc is None:
        bad.append('%s: no default PACKAGECONFIG' % rel(recipe))
    elif 'cloud' in default_pc.split():
        bad.append('%s: the default PACKAGECONFIG enables cloud: edgetrust-cloud must not '
                   'be built for devices' % rel(recipe))
    return bad


def rule_bbappend_machine_only(bbappends):
    bad = []
    for p in bbappends:
        for n, name in names(p):
            if ':' + MACHINE not in name.split('[')[0]:
                bad.append('%s:%d: %r applies to every machine: add the :%s override (the '
                           'kernel checksums its whole file search path)' % (rel(p), n, name,
                                                                              MACHINE))
    return bad


def rule_layer_conf():
    bad = []
    conf = os.path.join(LAYER, 'conf', 'layer.conf')
    vals = {name: value for _, name, _, _, value in assignments(conf)}
    compat = vals.get('LAYERSERIES_COMPAT_edgetrust', '').split()
    for series in ('kirkstone', 'scarthgap'):
        if series not in compat:
            bad.append('layer.conf: LAYERSERIES_COMPAT_edgetrust lacks %s' % series)
    deps = vals.get('LAYERDEPENDS_edgetrust', '').split()
    for dep in ('core', 'raspberrypi', 'tpm-layer', 'openembedded-layer', 'networking-layer'):
        if dep not in deps:
            bad.append('layer.conf: LAYERDEPENDS_edgetrust lacks %s' % dep)
    readmes = sorted(glob.glob(os.path.join(LAYER, '[Rr][Ee][Aa][Dd][Mm][Ee]*')))
    if not readmes:
        bad.append('no README in the layer (yocto-check-layer)')
    else:
        text = open(readmes[0]).read().lower()
        for word in ('maintainer', 'patch', '@'):
            if word not in text:
                bad.append('%s: yocto-check-layer wants %r in it' % (rel(readmes[0]), word))
    return bad


# pkg-config name (or 'meson') -> (recipe, version) in the kirkstone layers pinned by
# yocto/kas/edgetrust-cm4.yml. test_bitbake_parse.py checks this table against `bitbake -s`.
KIRKSTONE = {
    'meson': ('meson-native', '0.61.3'),
    'tss2-esys': ('tpm2-tss', '3.2.3'), 'tss2-mu': ('tpm2-tss', '3.2.3'),
    'tss2-rc': ('tpm2-tss', '3.2.3'), 'tss2-sys': ('tpm2-tss', '3.2.3'),
    'tss2-tctildr': ('tpm2-tss', '3.2.3'),
    'libcrypto': ('openssl', '3.0.18'),
    'libmosquitto': ('mosquitto', '2.0.22'),
    'libmodbus': ('libmodbus', '3.1.7'),
    'libcjson': ('cjson', '1.7.19'),
    'sqlite3': ('sqlite3', '3.38.5'),
    'systemd': ('systemd', '250.14'),
    'libsystemd': ('systemd', '250.14'),
    'libpq': ('postgresql', '14.22'),
    'cmocka': ('cmocka', '1.1.5'),
}
# What a device build configures (the recipe turns tests, fuzz, docs and cloud off).
DEVICE_MESON_DIRS = ['.', 'lib', 'include', 'src/common', 'src/cli', 'src/agent']


def vtuple(v):
    return tuple(int(x) for x in re.findall(r'\d+', v)[:3])


def version_ok(have, req):
    """req like '>= 3.0' (the only form meson.build uses here); also >, ==, <=, <."""
    m = re.match(r'\s*(>=|<=|==|!=|>|<)?\s*([\d.]+)', req)
    op, want = m.group(1) or '==', vtuple(m.group(2))
    h = vtuple(have)
    return {'>=': h >= want, '>': h > want, '==': h == want, '<=': h <= want,
            '<': h < want, '!=': h != want}[op]


def rule_kirkstone_versions(src):
    bad = []
    for d in DEVICE_MESON_DIRS:
        path = os.path.join(src, d, 'meson.build')
        if not os.path.exists(path):
            continue
        text = open(path).read()
        for m in re.finditer(r"meson_version\s*:\s*'([^']+)'", text):
            if not version_ok(KIRKSTONE['meson'][1], m.group(1)):
                bad.append('%s: meson_version %s, kirkstone has meson %s: the recipe cannot '
                           'configure' % (rel(path), m.group(1), KIRKSTONE['meson'][1]))
        for m in re.finditer(r"dependency\(\s*'([\w.+-]+)'([^)]*)\)", text):
            name, rest = m.group(1), m.group(2)
            if name == 'threads':
                continue
            if name not in KIRKSTONE:
                bad.append('%s: dependency %r has no kirkstone recipe in KIRKSTONE (%s): add it '
                           'once the recipe is checked, and to the recipe\'s DEPENDS'
                           % (rel(path), name, __file__))
                continue
            for req in re.findall(r"version\s*:\s*'([^']+)'", rest):
                recipe, have = KIRKSTONE[name]
                if not version_ok(have, req):
                    bad.append('%s: %s %s, kirkstone has %s %s' % (rel(path), name, req,
                                                                   recipe, have))
    return bad


ARTICLE_TPM_PACKAGES = ['tpm2-tools', 'libtss2', 'libtss2-tcti-device', 'tpm2-abrmd', 'tpm2-pkcs11']


def rule_image(image, wks):
    bad = []
    vals = {}
    for _, name, flag, op, value in assignments(image):
        vals.setdefault(name, []).append(value)
    get = lambda k: ' '.join(vals.get(k, []))  # noqa: E731
    if 'read-only-rootfs' not in get('IMAGE_FEATURES').split():
        bad.append('%s: IMAGE_FEATURES lacks read-only-rootfs' % rel(image))
    opts = get('EDGETRUST_DATA_MOUNT_OPTIONS').split(',')
    for o in ('noexec', 'nosuid', 'nodev'):
        if o not in opts:
            bad.append('%s: /data is mounted without %s' % (rel(image), o))
    if sorted(get('FEATURE_PACKAGES_tpm-debug').split()) != sorted(ARTICLE_TPM_PACKAGES):
        bad.append('%s: FEATURE_PACKAGES_tpm-debug is not the article\'s %s'
                   % (rel(image), ' '.join(ARTICLE_TPM_PACKAGES)))
    if 'edgetrust-cloud' not in get('PACKAGE_EXCLUDE').split():
        bad.append('%s: PACKAGE_EXCLUDE lacks edgetrust-cloud' % rel(image))
    dev = get('EDGETRUST_DATA_DEVICE')
    if not dev.startswith('LABEL='):
        bad.append('%s: EDGETRUST_DATA_DEVICE %r is not LABEL=...' % (rel(image), dev))
        return bad
    label = dev[len('LABEL='):]
    parts = [ln.split() for ln in open(wks) if ln.startswith('part ')]
    data = [p for p in parts if '--label' in p and p[p.index('--label') + 1] == label]
    if len(data) != 1:
        bad.append('%s: no single partition labelled %r for /data' % (rel(wks), label))
    elif data[0][1].startswith('/'):
        bad.append('%s: the data partition has mount point %s: wic would add a second /data '
                   'line to fstab' % (rel(wks), data[0][1]))
    return bad


def rel(p):
    return os.path.relpath(p, SRC)


# ---- self-test: every rule must catch a planted mistake ----------------------------------------
def self_test(tmp):
    bad_append = os.path.join(tmp, 'linux-raspberrypi_%.bbappend')
    with open(bad_append, 'w') as f:
        f.write('FILESEXTRAPATHS_prepend := "${THISDIR}/files:"\n'
                'SRC_URI += "file://missing.dts"\n'
                'RDEPENDS_${PN} = "foo"\n'
                'do_install_append() {\n\ttrue\n}\n')
    bad_recipe = os.path.join(tmp, 'x_git.bb')
    with open(bad_recipe, 'w') as f:
        f.write('SRC_URI = "git://${EDGETRUST_REPO};protocol=file"\n'
                'LIC_FILES_CHKSUM = "file://LICENSE;md5=00000000000000000000000000000000"\n'
                'PACKAGECONFIG ??= "cli cloud"\n'
                'PACKAGECONFIG[cli] = "-Dcli=yes,-Dcli=false"\n'
                'PACKAGECONFIG[nosuch] = "-Dnosuch=true,-Dnosuch=false"\n'
                'EXTRA_OEMESON = "-Dbogus=1"\n')
    opts = meson_options(os.path.join(SRC, 'meson_options.txt'))
    os.makedirs(os.path.join(tmp, 'src', 'agent'))
    with open(os.path.join(tmp, 'meson.build'), 'w') as f:
        f.write("project('x', 'c', meson_version: '>= 0.63')\n"
                "x = dependency('libmodbus', version: '>= 3.2')\n")
    with open(os.path.join(tmp, 'src', 'agent', 'meson.build'), 'w') as f:
        f.write("y = dependency('libfoo')\n")
    bad_image = os.path.join(tmp, 'img.bb')
    with open(bad_image, 'w') as f:
        f.write('IMAGE_FEATURES += "debug-tweaks"\n'
                'EDGETRUST_DATA_MOUNT_OPTIONS ??= "nosuid,nodev"\n'
                'FEATURE_PACKAGES_tpm-debug = "tpm2-tools"\n'
                'EDGETRUST_DATA_DEVICE ??= "LABEL=data"\n')
    bad_wks = os.path.join(tmp, 'x.wks.in')
    with open(bad_wks, 'w') as f:
        f.write('part / --source rootfs --label root\npart /data --label data --size 1\n')
    checks = [
        ('edgetrust-image', rule_image(bad_image, bad_wks),
         ['lacks read-only-rootfs', 'without noexec', 'not the article', 'lacks edgetrust-cloud',
          'second /data']),
        ('old override syntax', rule_old_overrides([bad_append]),
         ["'FILESEXTRAPATHS_prepend'", "'RDEPENDS_${PN}'", "'do_install_append'"]),
        ('missing file://', rule_src_uri_files([bad_append]), ['file://missing.dts not found']),
        ('machine-only bbappend', rule_bbappend_machine_only([bad_append]),
         ["'SRC_URI' applies to every machine"]),
        ('wrong md5', rule_license_checksums([bad_recipe]), ['recipe says 0000']),
        ('meson mapping', rule_meson_options(bad_recipe, opts),
         ['-Dcli=yes is not a valid boolean', 'PACKAGECONFIG[nosuch] is not a meson option',
          '-Dbogus is not an option', 'enables cloud']),
        ('kirkstone versions', rule_kirkstone_versions(tmp),
         ['meson_version >= 0.63', 'libmodbus >= 3.2', "'libfoo' has no kirkstone recipe"]),
    ]
    fails = 0
    for what, problems, wanted in checks:
        missing = [w for w in wanted if not any(w in pr for pr in problems)]
        if missing:
            print('FAIL self-test %s: did not report %r; got %r' % (what, missing, problems))
            fails += 1
        else:
            print('ok self-test %s: planted problems found' % what)
    return fails


def main():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        fails = self_test(tmp)
    bbfiles = layer_files('.bb', '.bbappend', '.conf', '.inc', '.bbclass')
    recipes = layer_files('.bb', '.bbappend')
    bbappends = layer_files('.bbappend')
    et = os.path.join(LAYER, 'recipes-edgetrust', 'edgetrust', 'edgetrust_git.bb')
    opts = meson_options(os.path.join(SRC, 'meson_options.txt'))
    results = [
        ('new override syntax only', rule_old_overrides(bbfiles)),
        ('file:// in SRC_URI exist', rule_src_uri_files(recipes)),
        ('LIC_FILES_CHKSUM md5', rule_license_checksums(recipes)),
        ('meson options one to one', rule_meson_options(et, opts)),
        ('bbappends apply to %s only' % MACHINE, rule_bbappend_machine_only(bbappends)),
        ('layer.conf and README', rule_layer_conf()),
        ('kirkstone has the meson and library versions', rule_kirkstone_versions(SRC)),
        ('edgetrust-image: read-only root, /data, TPM tools, no cloud',
         rule_image(os.path.join(LAYER, 'recipes-edgetrust', 'images', 'edgetrust-image.bb'),
                    os.path.join(LAYER, 'wic', 'edgetrust-rpi.wks.in'))),
    ]
    for what, problems in results:
        if problems:
            fails += 1
            print('FAIL %s:' % what)
            for pr in problems:
                print('  ' + pr)
        else:
            print('ok %s' % what)
    print('%d files linted, %d rules failed' % (len(bbfiles), fails))
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
