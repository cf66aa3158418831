SUMMARY = "edgetrust device image: read-only root, noexec /data, the edgetrust agent as a service"
DESCRIPTION = "Minimal systemd image for cm4-edge (CM4 + SLB9670): edgetrustd and the edgetrust \
command line, a read-only root file system and a data partition mounted noexec,nosuid,nodev \
on /data that updates leave alone. Serial number and device key live in the TPM."
LICENSE = "MIT"

inherit core-image features_check

# edgetrustd is a systemd service (sd_notify, watchdog, sandboxing).
REQUIRED_DISTRO_FEATURES = "systemd"

IMAGE_INSTALL = " \
    packagegroup-core-boot \
    edgetrust-agent \
    edgetrust-cli \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
IMAGE_LINGUAS = " "

IMAGE_FEATURES += "read-only-rootfs"

# Optional features, e.g. in local.conf: EXTRA_IMAGE_FEATURES += "tpm-debug edgetrust-factory"
# tpm-debug: the reference article's TPM tooling, for people at a console; the product itself
# talks to the TPM only through libedgetrust.
FEATURE_PACKAGES_tpm-debug = "tpm2-tools libtss2 libtss2-tcti-device tpm2-abrmd tpm2-pkcs11"
# edgetrust-factory: the provisioning script for the factory line (docs/factory.md).
FEATURE_PACKAGES_edgetrust-factory = "edgetrust-factory"

# The cloud service must never end up on a device, whatever pulls it in.
PACKAGE_EXCLUDE += "edgetrust-cloud"

# ---- /data ---------------------------------------------------------------------------------
# The data partition holds the agent's state (credential envelope, spool, settings); the root
# file systems (A and B with Mender) hold no device-specific data: serial and key are in the TPM.
# Without Mender, this image writes the /data line of fstab itself and the wic layout below
# creates the partition. With Mender (meta-mender), Mender owns the data partition and writes
# that line: EDGETRUST_DATA_FSTAB becomes 0 and MENDER_DATA_PART_FSTAB_OPTS carries the options
# (set in the edgetrust-os distro; set it yourself with another distro).
EDGETRUST_DATA_DEVICE ??= "LABEL=data"
EDGETRUST_DATA_FSTYPE ??= "ext4"
# nofail: a device whose data partition is damaged still boots and stays reachable; the agent
# then does not start (its unit needs /data/edgetrust). nofail also drops the mount's ordering
# before local-fs.target: x-systemd.before keeps systemd-tmpfiles, which creates the agent's
# folder in /data, after the mount.
EDGETRUST_DATA_MOUNT_OPTIONS ??= "noexec,nosuid,nodev,nofail,x-systemd.before=systemd-tmpfiles-setup.service"
EDGETRUST_DATA_SIZE ??= "256M"
EDGETRUST_MENDER = "${@'1' if 'mender-image' in (d.getVar('DISTRO_FEATURES') or '').split() + (d.getVar('MENDER_FEATURES') or '').split() else '0'}"
EDGETRUST_DATA_FSTAB ??= "${@'0' if d.getVar('EDGETRUST_MENDER') == '1' else '1'}"

edgetrust_data_mount() {
	install -d -m 0755 ${IMAGE_ROOTFS}/data
	if [ "${EDGETRUST_DATA_FSTAB}" = "1" ]; then
		printf '%s\t/data\t%s\t%s\t0\t2\n' '${EDGETRUST_DATA_DEVICE}' '${EDGETRUST_DATA_FSTYPE}' \
			'${EDGETRUST_DATA_MOUNT_OPTIONS}' >> ${IMAGE_ROOTFS}${sysconfdir}/fstab
	fi
}
ROOTFS_POSTPROCESS_COMMAND += "edgetrust_data_mount; "

# SD card / eMMC layout (wic) for Raspberry Pi machines: boot, root, data. Mender builds its
# own A/B layout (sdimg) and does not use this file.
WKS_FILE:rpi = "edgetrust-rpi.wks.in"
