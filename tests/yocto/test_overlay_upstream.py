#!/usr/bin/env python3
"""The 'upstream' wiring of cm4-edge uses the Raspberry Pi kernel's own tpm-slb9670 overlay,
which this repository does not copy. Given a raspberrypi/linux tree in EDGETRUST_RPI_LINUX,
this compiles that overlay like the kernel does (dtc -@) and checks it puts the SLB9670 on
SPI0 at CE1 (reg 1, the controller's native chip select) and switches off spidev1, which
would otherwise claim CE1. Without the tree it skips (exit 77)."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ovlcheck  # noqa: E402

REL = 'arch/arm/boot/dts/overlays/tpm-slb9670-overlay.dts'


def main():
    tree = os.environ.get('EDGETRUST_RPI_LINUX')
    if not tree:
        print('SKIP: set EDGETRUST_RPI_LINUX to a raspberrypi/linux checkout to check the '
              'upstream tpm-slb9670 overlay')
        return 77
    dts = os.path.join(tree, REL)
    if not os.path.exists(dts):
        print('FAIL: EDGETRUST_RPI_LINUX=%s has no %s' % (tree, REL))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        dtbo = os.path.join(tmp, 'tpm-slb9670.dtbo')
        warnings = ovlcheck.compile_overlay(dts, dtbo)
        if warnings:
            print('FAIL: dtc warnings for the upstream overlay:\n' + warnings)
            return 1
        try:
            node = ovlcheck.check_slb9670(dtbo, bus='spi0', reg=1, cs_gpio=None,
                                          disabled=('spidev1',))
        except AssertionError as e:
            print('FAIL: %s' % e)
            return 1
    print('ok tpm-slb9670: %s on spi0, reg 1 (CE1), spidev1 disabled' % node)
    return 0


if __name__ == '__main__':
    sys.exit(main())
