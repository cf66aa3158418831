#!/bin/sh
# edgetrust-factory-provision: the device side of the factory line (docs/factory.md).
# Writes the serial number into the TPM, makes sure the storage root key and the device key
# exist (all through `edgetrust provision`, idempotent), reads the serial back, and prints the
# registration record the cloud needs (one JSON line: serial, public key PEM, fingerprint) on
# standard output. Installed on devices by the edgetrust-factory package of meta-edgetrust.
#
# usage: edgetrust-factory-provision [--tcti TCTI] [--record FILE] [--no-da] SERIAL
# exit:  0 done; 2 bad command line; 4 the record file could not be written; otherwise the exit code of the edgetrust command that
#        failed (docs/exit-codes.md), e.g. 10 TPM unreachable, 22 the TPM holds another serial.
set -u

prog=edgetrust-factory-provision
cli=${EDGETRUST_CLI:-edgetrust}
tcti=
record=
no_da=
serial=

usage() {
	echo "usage: $prog [--tcti TCTI] [--record FILE] [--no-da] SERIAL" >&2
	echo "  TCTI default: \$EDGETRUST_TCTI, else device:/dev/tpmrm0 (see edgetrust(1))" >&2
	echo "  FILE: also write the registration record there (for the line's database)" >&2
	echo "  --no-da: serial index with no_da (see edgetrust(1), serial provision)" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--tcti) [ $# -ge 2 ] || usage; tcti=$2; shift 2 ;;
	--tcti=*) tcti=${1#--tcti=}; shift ;;
	--record) [ $# -ge 2 ] || usage; record=$2; shift 2 ;;
	--record=*) record=${1#--record=}; shift ;;
	--no-da) no_da=--no-da; shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "$prog: unknown option $1" >&2; usage ;;
	*) [ -z "$serial" ] || usage; serial=$1; shift ;;
	esac
done
if [ $# -eq 1 ] && [ -z "$serial" ]; then
	serial=$1 # after --
elif [ $# -ne 0 ]; then
	usage
fi
[ -n "$serial" ] || usage

# `edgetrust` with the TCTI given on our command line, if any.
et() {
	if [ -n "$tcti" ]; then
		"$cli" --tcti "$tcti" "$@"
	else
		"$cli" "$@"
	fi
}

rec=$(et provision --serial "$serial" ${no_da:+"$no_da"})
rc=$?
if [ $rc -ne 0 ]; then
	echo "$prog: provisioning serial $serial failed (edgetrust exit $rc, see the message above)" >&2
	exit $rc
fi

# Read back what the TPM holds: the record must not leave the line for a device whose NV
# index says something else.
back=$(et serial read)
rc=$?
if [ $rc -ne 0 ]; then
	echo "$prog: reading the serial back failed (edgetrust exit $rc)" >&2
	exit $rc
fi
if [ "$back" != "$serial" ]; then
	echo "$prog: the TPM holds serial '$back', not '$serial': do not register this device" >&2
	exit 22
fi

if [ -n "$record" ]; then
	# Public data only (serial and public key): 0644, written whole or not at all.
	tmp="$record.tmp.$$"
	if ! (umask 022 && printf '%s\n' "$rec" > "$tmp") || ! mv -f "$tmp" "$record"; then
		rm -f "$tmp"
		echo "$prog: cannot write the record to $record: check the path and free space" >&2
		exit 4
	fi
fi
printf '%s\n' "$rec"
echo "$prog: serial $serial provisioned; register the record above with the cloud" >&2
exit 0
