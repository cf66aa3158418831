#!/usr/bin/env bash
# Installs the Debian 12 packages edgetrust needs to build, test and run the local demo.
# Idempotent and quick when everything is already there.
set -euo pipefail
pkgs=(
	build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libtss2-dev libssl-dev libcmocka-dev libmosquitto-dev libmodbus-dev libcjson-dev
	libsqlite3-dev libpq-dev libsystemd-dev mosquitto-dev
	swtpm swtpm-tools tpm2-tools openssl mosquitto mosquitto-clients sqlite3 postgresql
	python3 python3-pymodbus python3-paho-mqtt python3-psycopg2 socat mbpoll
	device-tree-compiler pandoc valgrind systemd iproute2 procps psmisc kas
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
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
