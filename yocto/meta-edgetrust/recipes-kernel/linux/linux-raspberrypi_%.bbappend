# cm4-edge only: the SLB9670 overlay of the article's wiring and the TPM kernel options.
# Every line carries the cm4-edge override, FILESEXTRAPATHS included: the kernel class
# checksums every folder on its file search path, so an unconditional line would change the
# kernel's signature for every other machine.
FILESEXTRAPATHS:prepend:cm4-edge := "${THISDIR}/files:"

# Overlays live in arch/arm/boot/dts/overlays for both arm and arm64 (arm64's overlays folder
# is a link to it); the kernel builds overlays/NAME.dtbo from NAME-overlay.dts.
SRC_URI:append:cm4-edge = " \
    file://tpm-slb9670.cfg \
    ${@'file://slb9670-tpm-overlay.dts;subdir=git/arch/arm/boot/dts/overlays' if d.getVar('EDGETRUST_TPM_WIRING') == 'article' else ''} \
"
