SUMMARY = "edgetrust: TPM 2.0 identity, TPM-sealed cloud credentials, Modbus and MQTT for edge devices"
DESCRIPTION = "libedgetrust (the only code that talks to the TPM), the edgetrust command line \
for the factory and operators, and the edgetrustd device agent as a hardened systemd service."
HOMEPAGE = "https://github.com/edgetrust/edgetrust"
SECTION = "security"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# Source: the edgetrust repository this layer ships in (EDGETRUST_REPO, set by layer.conf), at
# the commit checked out there: only committed work is built, and no network is needed. For a
# release, pin the commit: SRCREV:pn-edgetrust = "<commit>"; to build another clone, set
# EDGETRUST_REPO = "/path/to/edgetrust" (docs/yocto.md). If EDGETRUST_REPO is no git clone (the
# layer copied out of the repository) the recipe is skipped with a message, and every other
# recipe still parses: no git command may fail while BitBake parses.
def edgetrust_head(d):
    import subprocess
    try:
        return subprocess.check_output(
            ['git', '-C', d.getVar('EDGETRUST_REPO') or '/nonexistent', 'rev-parse',
             '--verify', '-q', 'HEAD^{commit}'],
            stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return ''

EDGETRUST_HEAD := "${@edgetrust_head(d)}"
SRCREV ??= "${EDGETRUST_HEAD}"
SRC_URI = "${@'git://${EDGETRUST_REPO};protocol=file;nobranch=1' if d.getVar('SRCREV') else ''}"
PV = "0.1.0+git${@'${SRCPV}' if d.getVar('SRCREV') else ''}"
# The commit is read at parse time: parse this recipe again every time, so a new commit is seen.
BB_DONT_CACHE = "1"

python () {
    if not d.getVar('SRCREV'):
        raise bb.parse.SkipRecipe('EDGETRUST_REPO=%s is not a readable git clone of edgetrust: '
                                  'set EDGETRUST_REPO to one (as another user than its owner, '
                                  'git also needs safe.directory); docs/yocto.md'
                                  % d.getVar('EDGETRUST_REPO'))
}
S = "${WORKDIR}/git"

inherit meson pkgconfig systemd useradd

DEPENDS = "tpm2-tss openssl"

# One PACKAGECONFIG per meson option of the project (meson_options.txt), same name, so every
# option is set explicitly and nothing is decided by what the sysroot happens to contain.
PACKAGECONFIG ??= "cli agent ${@bb.utils.filter('DISTRO_FEATURES', 'systemd', d)}"
PACKAGECONFIG[cli] = "-Dcli=true,-Dcli=false"
PACKAGECONFIG[agent] = "-Dagent=true,-Dagent=false,mosquitto libmodbus cjson sqlite3"
# edgetrust-cloud is the cloud-side service; it never goes on a device. The option exists so
# the mapping is complete; if enabled, the binary lands in ${PN}-cloud, which no image installs
# and edgetrust-image refuses (PACKAGE_EXCLUDE).
PACKAGECONFIG[cloud] = "-Dcloud=true,-Dcloud=false,mosquitto sqlite3 cjson"
PACKAGECONFIG[postgresql] = "-Dpostgresql=enabled,-Dpostgresql=disabled,postgresql"
PACKAGECONFIG[systemd] = "-Dsystemd=enabled,-Dsystemd=disabled,systemd"
PACKAGECONFIG[tests] = "-Dtests=true,-Dtests=false,cmocka"
PACKAGECONFIG[fuzz] = "-Dfuzz=true,-Dfuzz=false"
# Man pages need pandoc, which OE does not build.
PACKAGECONFIG[docs] = "-Ddocs=true,-Ddocs=false"

EXTRA_OEMESON = "-Dsystemdunitdir=${systemd_system_unitdir}"

# Where the agent keeps its state: on the data partition, which updates do not touch.
EDGETRUST_DATA_DIR ??= "/data/edgetrust"

do_install:append() {
	if ${@bb.utils.contains('PACKAGECONFIG', 'cli', 'true', 'false', d)}; then
		install -D -m 0755 ${S}/scripts/factory-provision.sh ${D}${sbindir}/edgetrust-factory-provision
	fi
	if ${@bb.utils.contains('PACKAGECONFIG', 'agent', 'true', 'false', d)}; then
		# Created at boot, after /data is mounted: the root file system is read-only.
		install -d ${D}${nonarch_libdir}/tmpfiles.d
		printf 'd %s 0700 edgetrust edgetrust -\n' '${EDGETRUST_DATA_DIR}' \
			> ${D}${nonarch_libdir}/tmpfiles.d/edgetrustd.conf
	fi
}

PACKAGES =+ "lib${BPN} ${PN}-cli ${PN}-agent ${PN}-cloud ${PN}-factory"

FILES:lib${BPN} = "${libdir}/libedgetrust.so.*"
FILES:${PN}-cli = "${bindir}/edgetrust"
FILES:${PN}-agent = " \
    ${bindir}/edgetrustd ${sbindir}/edgetrustd \
    ${sysconfdir}/edgetrust \
    ${systemd_system_unitdir}/edgetrustd.service \
    ${nonarch_libdir}/tmpfiles.d/edgetrustd.conf \
"
FILES:${PN}-cloud = " \
    ${bindir}/edgetrust-cloud ${sbindir}/edgetrust-cloud \
    ${systemd_system_unitdir}/edgetrust-cloud.service \
"
FILES:${PN}-factory = "${sbindir}/edgetrust-factory-provision"

CONFFILES:${PN}-agent = "${sysconfdir}/edgetrust/edgetrustd.conf"

# tctildr dlopen()s the device TCTI, so no shared-library dependency finds it.
RDEPENDS:lib${BPN} = "libtss2-tcti-device"
# tpm2-tss carries the udev rule that gives the tss group /dev/tpmrm0.
RDEPENDS:${PN}-agent = "tpm2-tss"
RDEPENDS:${PN}-factory = "${PN}-cli"
ALLOW_EMPTY:${PN} = "1"

SYSTEMD_PACKAGES = "${@bb.utils.contains('PACKAGECONFIG', 'agent', '${PN}-agent', '', d)}"
SYSTEMD_SERVICE:${PN}-agent = "edgetrustd.service"
SYSTEMD_AUTO_ENABLE:${PN}-agent = "enable"

# The agent runs as edgetrust, in group tss so that it opens /dev/tpmrm0 without being root.
# tss normally comes from tpm2-tss; creating it here too (groupadd skips existing groups)
# keeps the order of package installation irrelevant.
USERADD_PACKAGES = "${PN}-agent"
GROUPADD_PARAM:${PN}-agent = "--system tss; --system edgetrust"
USERADD_PARAM:${PN}-agent = "--system --no-create-home --home-dir ${EDGETRUST_DATA_DIR} \
    --shell /sbin/nologin --gid edgetrust --groups tss edgetrust"
