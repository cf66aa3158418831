#!/usr/bin/env bash
# Installs the Debian 12 packages edgetrust needs to build, test, fuzz, benchmark and run the
# local demo, then checks that what the project uses is really there: every Python module the
# tests, the demo and the benchmarks import (with /usr/bin/python3, the interpreter they run
# under), every program they start, every pkg-config library meson looks for. A package that is
# installed but only *recommended* by another (python3-pymodbus recommends python3-serial-asyncio,
# and we install with --no-install-recommends) is why the check exists: a new user's machine
# has exactly what this list says, nothing more.
#
# Idempotent and quick when everything is there (the check still runs, in well under a second).
# Exit status: 0 all there; 1 something is still missing after the install (one line on stderr
# names it and the Debian package that provides it); apt's own status if apt-get fails.
set -euo pipefail
pkgs=(
	build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libtss2-dev libssl-dev libcmocka-dev libmosquitto-dev libmodbus-dev libcjson-dev
	libsqlite3-dev libpq-dev libsystemd-dev mosquitto-dev
	swtpm swtpm-tools tpm2-tools openssl mosquitto mosquitto-clients sqlite3 postgresql
	python3 python3-pymodbus python3-serial python3-serial-asyncio python3-paho-mqtt
	python3-psycopg2 python3-cryptography socat mbpoll
	device-tree-compiler pandoc valgrind systemd iproute2 procps psmisc kas git
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The packaged services must not hold the ports or files the tests use.
	for svc in mosquitto postgresql; do
		$SUDO service "$svc" stop >/dev/null 2>&1 || true
	done
fi

# --- check: what the project uses, each with the Debian package that provides it ------------
fail() {
	echo "install-deps: $1 is missing: install the Debian package $2 (apt-get install $2)" >&2
	exit 1
}

# Python modules, as "module=package". The interpreter is Debian's, never a python3 earlier on PATH.
[ -x /usr/bin/python3 ] || fail /usr/bin/python3 python3
modules=(
	pymodbus.server=python3-pymodbus pymodbus.datastore=python3-pymodbus
	serial=python3-serial serial_asyncio=python3-serial-asyncio
	paho.mqtt.client=python3-paho-mqtt psycopg2=python3-psycopg2
	cryptography.hazmat.primitives.ciphers.aead=python3-cryptography sqlite3=libpython3.11-stdlib
)
if ! out=$(/usr/bin/python3 - "${modules[@]}" 2>&1 <<'EOF'
import importlib, sys
for spec in sys.argv[1:]:
    mod, pkg = spec.split("=")
    try:
        importlib.import_module(mod)
    except Exception as e:  # ImportError, or a module that is there but broken
        print(f"Python module {mod} (/usr/bin/python3: {type(e).__name__}: {e})\t{pkg}")
        sys.exit(1)
EOF
); then
	fail "${out%%$'\t'*}" "${out##*$'\t'}"
fi

# Programs the build, the demo, the tests, the fuzzers and the benchmarks run, as "program=package".
programs=(
	cc=build-essential make=make strip=binutils strings=binutils meson=meson ninja=ninja-build
	pkg-config=pkg-config clang=clang git=git
	swtpm=swtpm swtpm_setup=swtpm-tools swtpm_ioctl=swtpm-tools
	tpm2_createprimary=tpm2-tools tpm2_nvdefine=tpm2-tools tpm2_nvread=tpm2-tools
	tpm2_rsadecrypt=tpm2-tools tpm2_dictionarylockout=tpm2-tools tpm2_getcap=tpm2-tools
	openssl=openssl mosquitto=mosquitto mosquitto_pub=mosquitto-clients
	mosquitto_sub=mosquitto-clients mosquitto_ctrl=mosquitto sqlite3=sqlite3
	socat=socat mbpoll=mbpoll dtc=device-tree-compiler fdtget=device-tree-compiler
	pandoc=pandoc valgrind=valgrind systemd-analyze=systemd ss=iproute2 pgrep=procps
	fuser=psmisc kas=kas stdbuf=coreutils timeout=coreutils
)
for spec in "${programs[@]}"; do
	command -v "${spec%%=*}" >/dev/null 2>&1 || fail "program ${spec%%=*}" "${spec#*=}"
done
# Files found by path rather than on PATH.
files=(
	/usr/lib/postgresql/15/bin/initdb=postgresql-15 /usr/lib/postgresql/15/bin/pg_ctl=postgresql-15
	/usr/lib/postgresql/15/bin/postgres=postgresql-15
	/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so=mosquitto
)
for spec in "${files[@]}"; do
	[ -e "${spec%%=*}" ] || fail "${spec%%=*}" "${spec#*=}"
done
ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
	fail "libFuzzer runtime (libclang_rt.fuzzer-x86_64.a)" libclang-rt-14-dev
# Libraries meson looks for, as "pkg-config name=package".
libs=(
	tss2-esys=libtss2-dev tss2-mu=libtss2-dev tss2-rc=libtss2-dev tss2-tctildr=libtss2-dev
	libcrypto=libssl-dev cmocka=libcmocka-dev libmosquitto=libmosquitto-dev
	libmodbus=libmodbus-dev libcjson=libcjson-dev sqlite3=libsqlite3-dev libpq=libpq-dev
	systemd=libsystemd-dev
)
for spec in "${libs[@]}"; do
	pkg-config --exists "${spec%%=*}" || fail "pkg-config library ${spec%%=*}" "${spec#*=}"
done
[ -e /usr/include/mosquitto_plugin.h ] || fail /usr/include/mosquitto_plugin.h mosquitto-dev
