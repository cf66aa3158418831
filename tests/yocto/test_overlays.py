#!/usr/bin/env python3
"""Every device-tree overlay of meta-edgetrust compiles with `dtc -@` without a warning, and
puts the SLB9670 where its wiring says: bus, chip select, pins. A new overlay without an entry
in EXPECTED fails, so nothing ships unchecked."""
import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ovlcheck  # noqa: E402

SRC = os.environ.get('ET_SOURCE_DIR') or os.path.join(os.path.dirname(__file__), '..', '..')
LAYER = os.path.join(SRC, 'yocto', 'meta-edgetrust')

# file name -> wiring. ALT4 (function 3) puts GPIO 19-21 on SPI1; GPIO 18 is a plain output
# (function 1) used as chip select 0 through cs-gpios.
EXPECTED = {
    'slb9670-tpm-overlay.dts': dict(bus='spi1', reg=0, cs_gpio=18,
                                    pins={19: 3, 20: 3, 21: 3, 18: 1}),
}


def main():
    overlays = sorted(glob.glob(os.path.join(LAYER, '**', '*.dts'), recursive=True))
    if not overlays:
        print('no overlay found under %s' % LAYER)
        return 1
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for dts in overlays:
            name = os.path.basename(dts)
            dtbo = os.path.join(tmp, name.replace('-overlay.dts', '.dtbo'))
            try:
                warnings = ovlcheck.compile_overlay(dts, dtbo)
                assert not warnings, 'dtc warnings for %s:\n%s' % (name, warnings)
                assert name in EXPECTED, ('%s has no expected wiring in %s: add it'
                                          % (name, __file__))
                node = ovlcheck.check_slb9670(dtbo, **EXPECTED[name])
                print('ok %s: %s on %s, reg %d' % (name, node, EXPECTED[name]['bus'],
                                                   EXPECTED[name]['reg']))
            except AssertionError as e:
                failures += 1
                print('FAIL %s: %s' % (name, e))
        # The checker itself must reject a TPM on the wrong bus or chip select.
        bad = os.path.join(tmp, 'bad.dts')
        with open(overlays[0]) as f:
            text = f.read()
        with open(bad, 'w') as f:
            f.write(text.replace('target = <&spi1>;', 'target = <&spi0>;'))
        ovlcheck.compile_overlay(bad, bad + '.dtbo')
        try:
            ovlcheck.check_slb9670(bad + '.dtbo', bus='spi1', reg=0, cs_gpio=18)
            print('FAIL self-test: an overlay on spi0 passed as spi1')
            failures += 1
        except AssertionError as e:
            print('ok self-test: wrong bus rejected (%s)' % e)
    print('%d overlays, %d failures' % (len(overlays), failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
