"""Checks a compiled Raspberry Pi device-tree overlay (.dtbo) with fdtget: where the
infineon,slb9670 node lands (bus label of its fragment's target), its chip select, and the
pins or conflicting devices the wiring implies. Shared by test_overlays.py and
test_overlay_upstream.py."""
import subprocess


def fdtget(dtbo, *args):
    r = subprocess.run(['fdtget', dtbo, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError('fdtget %s %s: %s' % (dtbo, ' '.join(args), r.stderr.strip()))
    return r.stdout.strip()


def subnodes(dtbo, path):
    out = fdtget(dtbo, '-l', path)
    return out.split() if out else []


def props(dtbo, path):
    out = fdtget(dtbo, '-p', path)
    return out.split() if out else []


def walk(dtbo, path='/'):
    yield path
    for n in subnodes(dtbo, path):
        yield from walk(dtbo, (path.rstrip('/') + '/' + n))


def compile_overlay(dts, dtbo):
    """dtc -@ -I dts -O dtb; returns dtc's stderr (warnings), raises on failure."""
    r = subprocess.run(['dtc', '-@', '-I', 'dts', '-O', 'dtb', '-o', dtbo, dts],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError('dtc failed on %s (exit %d):\n%s' % (dts, r.returncode, r.stderr))
    return r.stderr.strip()


def fixups(dtbo):
    """label -> list of 'path:property:offset' references the loader patches."""
    if '__fixups__' not in subnodes(dtbo, '/'):
        return {}
    res = {}
    for label in props(dtbo, '/__fixups__'):
        res[label] = fdtget(dtbo, '-t', 's', '/__fixups__', label).split()
    return res


def fragment_target(dtbo, frag):
    """The label (e.g. 'spi1') or path a fragment applies to."""
    p = props(dtbo, frag)
    if 'target-path' in p:
        return fdtget(dtbo, '-t', 's', frag, 'target-path')
    for label, refs in fixups(dtbo).items():
        if '%s:target:0' % frag in refs:
            return label
    raise AssertionError('%s: fragment %s has no resolvable target' % (dtbo, frag))


def find_tpm(dtbo):
    """Returns (fragment path, tpm node path) of every infineon,slb9670 node."""
    found = []
    for path in walk(dtbo):
        if 'compatible' in props(dtbo, path):
            compat = fdtget(dtbo, '-t', 's', path, 'compatible').split()
            if 'infineon,slb9670' in compat:
                frag = '/' + path.split('/')[1]
                found.append((frag, path))
    return found


def fragments_targeting(dtbo, label):
    return ['/' + f for f in subnodes(dtbo, '/')
            if f.startswith('fragment') and fragment_target(dtbo, '/' + f) == label]


def check_slb9670(dtbo, bus, reg, cs_gpio=None, pins=None, disabled=()):
    """Asserts the overlay puts exactly one SLB9670 on `bus` at chip select `reg`.
    cs_gpio: GPIO number that cs-gpios[reg] must name (GPIO chip select), or None for the
    controller's native CE line (then no cs-gpios may be set). pins: {gpio: function} that
    a fragment on &gpio must set. disabled: labels that must be switched off (e.g. spidev1,
    which would otherwise claim the same chip select)."""
    tpms = find_tpm(dtbo)
    assert len(tpms) == 1, '%s: expected one infineon,slb9670 node, found %r' % (dtbo, tpms)
    frag, node = tpms[0]
    target = fragment_target(dtbo, frag)
    assert target == bus, '%s: SLB9670 is on %s, expected %s' % (dtbo, target, bus)
    got_reg = int(fdtget(dtbo, '-t', 'u', node, 'reg'))
    assert got_reg == reg, '%s: SLB9670 reg (chip select) is %d, expected %d' % (dtbo, got_reg, reg)
    status = fdtget(dtbo, '-t', 's', node, 'status') if 'status' in props(dtbo, node) else 'okay'
    assert status == 'okay', '%s: SLB9670 node status is %s' % (dtbo, status)
    bus_node = node.rsplit('/', 1)[0]
    bus_props = props(dtbo, bus_node)
    # The bus must be switched on by this overlay (in the TPM's fragment or another one).
    bus_on = [f for f in fragments_targeting(dtbo, bus)
              if 'status' in props(dtbo, f + '/__overlay__')
              and fdtget(dtbo, '-t', 's', f + '/__overlay__', 'status') == 'okay']
    assert bus_on, '%s: no fragment sets %s status = "okay"' % (dtbo, bus)
    if cs_gpio is None:
        assert 'cs-gpios' not in bus_props, '%s: unexpected cs-gpios on %s' % (dtbo, bus)
    else:
        assert 'cs-gpios' in bus_props, '%s: %s has no cs-gpios' % (dtbo, bus)
        cells = [int(x) for x in fdtget(dtbo, '-t', 'u', bus_node, 'cs-gpios').split()]
        assert len(cells) >= 3 * (reg + 1), '%s: cs-gpios too short: %r' % (dtbo, cells)
        entry = cells[3 * reg:3 * reg + 3]
        # phandle cell is patched at load time: it must be a fixup to &gpio.
        refs = fixups(dtbo).get('gpio', [])
        assert '%s:cs-gpios:%d' % (bus_node, 12 * reg) in refs, \
            '%s: cs-gpios[%d] does not reference &gpio (%r)' % (dtbo, reg, refs)
        assert entry[1] == cs_gpio, '%s: chip select %d is GPIO %d, expected GPIO %d' % (
            dtbo, reg, entry[1], cs_gpio)
    if pins:
        got = {}
        for f in fragments_targeting(dtbo, 'gpio'):
            for grp in subnodes(dtbo, f + '/__overlay__'):
                path = f + '/__overlay__/' + grp
                if 'brcm,pins' not in props(dtbo, path):
                    continue
                gp = [int(x) for x in fdtget(dtbo, '-t', 'u', path, 'brcm,pins').split()]
                fn = [int(x) for x in fdtget(dtbo, '-t', 'u', path, 'brcm,function').split()]
                for i, g in enumerate(gp):
                    got[g] = fn[i] if i < len(fn) else fn[0]
        for g, fn in pins.items():
            assert got.get(g) == fn, '%s: GPIO %d has function %r, expected %d' % (
                dtbo, g, got.get(g), fn)
    for label in disabled:
        offs = [f for f in fragments_targeting(dtbo, label)
                if fdtget(dtbo, '-t', 's', f + '/__overlay__', 'status') == 'disabled']
        assert offs, '%s: %s is not disabled' % (dtbo, label)
    return node
