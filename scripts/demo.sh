#!/usr/bin/env bash
# The whole edgetrust system on this machine, in under a minute: a software TPM (swtpm),
# mosquitto with dynamic security, edgetrust-cloud serve (SQLite), a Modbus simulator and
# edgetrustd. Provisions a serial, registers and accepts the device, shows readings arriving
# in the cloud store and a setting pushed from the cloud taking effect.
#
#   scripts/demo.sh [BUILD_DIR] [--keep-running]
#
# Everything lives in a temporary directory and uses free loopback ports; Ctrl-C or the end
# of the demo stops every process it started. --keep-running leaves the system up until Ctrl-C.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=build
KEEP=0
for a in "$@"; do
	case "$a" in
	--keep-running) KEEP=1 ;;
	-h | --help)
		sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "demo: unknown option $a" >&2
		exit 2
		;;
	*) BUILD=$a ;;
	esac
done
case "$BUILD" in /*) ;; *) BUILD="$SRC/$BUILD" ;; esac

ET="$BUILD/src/cli/edgetrust"
ETD="$BUILD/src/agent/edgetrustd"
ETC="$BUILD/src/cloud/edgetrust-cloud"
PY=/usr/bin/python3
SERIAL=DEMO-0001
for b in "$ET" "$ETD" "$ETC"; do
	if [ ! -x "$b" ]; then
		echo "demo: $b is missing; build first (make build)" >&2
		exit 1
	fi
done

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/edgetrust-demo.XXXXXX")
chmod 700 "$DEMO"
PIDS=()
cleanup() {
	trap - EXIT INT TERM
	local p
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		p=${PIDS[i]}
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$DEMO"
	echo "demo: stopped everything and removed $DEMO"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
run() {
	printf '    $ %s\n' "$(echo "$*" | sed "s#$BUILD/src/[a-z]*/##g; s#$DEMO#\$DEMO#g")"
	"$@" 2>&1 | sed 's/^/      /'
}
free_ports() { # N consecutive free loopback ports; prints the first
	PYTHONPATH="$SRC/tests/lib" $PY -c "import etfix; print(etfix.free_ports($1))"
}
wait_port() {
	for _ in $(seq 200); do
		if $PY -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))"; then
			return 0
		fi
		sleep 0.05
	done
	echo "demo: nothing listens on port $1; see $2" >&2
	exit 1
}
wait_log() { # FILE TEXT SECONDS
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: timed out waiting for '$2' in $1:" >&2
	tail -20 "$1" >&2
	exit 1
}

START=$(date +%s)
echo "edgetrust demo in $DEMO"

step "1/8 A TPM 2.0: swtpm (a software TPM standing in for the Infineon SLB9670)"
TPM_PORT=$(free_ports 2)
mkdir -p "$DEMO/tpm"
swtpm socket --tpm2 --server type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1 \
	--flags not-need-init,startup-clear --tpmstate dir="$DEMO/tpm" >"$DEMO/swtpm.log" 2>&1 &
PIDS+=($!)
wait_port $TPM_PORT "$DEMO/swtpm.log"
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
info "swtpm on 127.0.0.1:$TPM_PORT"

step "2/8 Factory: write the serial into TPM NV (write-once) and create the device key"
run "$ET" --tcti "$TCTI" provision --serial $SERIAL

step "3/8 Broker: mosquitto; device logins checked against the registry (edgetrust plugin), the cloud and bootstrap logins in dynamic security"
DB="$DEMO/cloud.db"
run "$ETC" init-broker --dir "$DEMO/broker" --accounts registry --db "$DB" \
	--plugin "$BUILD/src/cloud/broker-plugin/edgetrust_auth.so"
MQTT_PORT=$(free_ports 1)
cat >"$DEMO/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
include_dir $DEMO/broker
persistence true
persistence_location $DEMO/
log_dest file $DEMO/mosquitto.log
CONF
if [ "$(id -u)" = 0 ]; then echo "user root" >>"$DEMO/mosquitto.conf"; fi
mosquitto -c "$DEMO/mosquitto.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port $MQTT_PORT "$DEMO/mosquitto.log"
info "mosquitto on 127.0.0.1:$MQTT_PORT"

step "4/8 Cloud: edgetrust-cloud serve (registry and telemetry store in SQLite)"
"$ETC" serve --db "$DB" --instance demo --broker-host 127.0.0.1 --broker-port $MQTT_PORT \
	--broker-password-file "$DEMO/broker/cloud.password" --public-no-tls --poll-ms 200 \
	>"$DEMO/cloud.log" 2>&1 &
PIDS+=($!)
wait_log "$DEMO/cloud.log" "connected to broker" 20
info "serving; log in \$DEMO/cloud.log"

step "5/8 Field device: a Modbus TCP simulator (pymodbus)"
MB_PORT=$(free_ports 1)
$PY "$SRC/tests/lib/modbus_sim.py" --tcp $MB_PORT --tick-ms 100 >"$DEMO/modbus.log" 2>&1 &
PIDS+=($!)
wait_port $MB_PORT "$DEMO/modbus.log"
info "Modbus TCP on 127.0.0.1:$MB_PORT (holding[0] counts, input[4..5] is a float ramp)"

step "6/8 Operator activates the serial; the device agent starts and registers"
run "$ETC" activate $SERIAL --db "$DB"
mkdir -m 700 "$DEMO/data"
install -m 600 "$DEMO/broker/bootstrap.password" "$DEMO/bootstrap.secret"
cat >"$DEMO/edgetrustd.conf" <<CONF
[agent]
tcti = $TCTI
data_dir = $DEMO/data
log_level = info
register_backoff_max_s = 5

[broker]
host = 127.0.0.1
port = $MQTT_PORT
# Loopback demo only: the agent logs a warning for this.
tls = false
bootstrap_username = bootstrap
bootstrap_password_file = $DEMO/bootstrap.secret
keepalive_s = 10

[spool]
max_records = 100000
batch = 20

[modbus.plc1]
transport = tcp
host = 127.0.0.1
port = $MB_PORT
unit_id = 1
timeout_ms = 500
poll_ms = 1000

[point.plc1.counter]
table = holding
address = 0
type = u16

[point.plc1.ramp]
table = input
address = 4
type = f32
unit = bar

[point.plc1.reference]
table = input
address = 0
type = f32
unit = degC
CONF
"$ETD" -c "$DEMO/edgetrustd.conf" >"$DEMO/edgetrustd.log" 2>&1 &
PIDS+=($!)
wait_log "$DEMO/edgetrustd.log" "registration pending" 20
grep -E "serial|registration" "$DEMO/edgetrustd.log" | sed 's/^/    agent| /'
run "$ETC" pending --db "$DB"

step "7/8 Operator accepts; the device opens its sealed credentials in the TPM and logs in"
run "$ETC" accept $SERIAL --db "$DB"
wait_log "$DEMO/edgetrustd.log" "connected to the broker as $SERIAL" 20
grep -E "accepted|logging in|connected to the broker as" "$DEMO/edgetrustd.log" | sed 's/^/    agent| /'
info "waiting for readings in the cloud store..."
for _ in $(seq 100); do
	n=$("$ETC" telemetry $SERIAL --db "$DB" 2>/dev/null | wc -l)
	[ "$n" -ge 9 ] && break
	sleep 0.2
done
info "seq  ts  device  point  value  unit  quality"
run "$ETC" telemetry $SERIAL --db "$DB" --limit 9

step "8/8 A setting pushed from the cloud: poll plc1 every 250 ms instead of 1000 ms"
before=$("$ETC" telemetry $SERIAL --db "$DB" --limit 1000000 | wc -l)
run "$ETC" settings set $SERIAL modbus.plc1.poll_ms=250 --db "$DB"
wait_log "$DEMO/edgetrustd.log" "settings from the cloud applied" 20
grep "settings from the cloud applied" "$DEMO/edgetrustd.log" | sed 's/^/    agent| /'
run "$ET" config get modbus.plc1.poll_ms --data-dir "$DEMO/data"
sleep 3
after=$("$ETC" telemetry $SERIAL --db "$DB" --limit 1000000 | wc -l)
info "readings stored: $before before the change, $after three seconds later (3 points per poll)"
run "$ETC" settings get $SERIAL --db "$DB"

printf '\n\033[1mDemo complete in %ss:\033[0m provisioned %s in the TPM, registered, accepted, logged in with\n' \
	$(($(date +%s) - START)) $SERIAL
echo "TPM-sealed credentials, $after readings stored exactly once, a cloud setting applied live."
if [ $KEEP = 1 ]; then
	echo
	echo "Still running (--keep-running). Try:"
	echo "  $ETC telemetry $SERIAL --db $DB --since 1m"
	echo "  $ETC settings set $SERIAL modbus.plc1.poll_ms=500 --db $DB"
	echo "  $ET config list --data-dir $DEMO/data"
	echo "  tail -f $DEMO/edgetrustd.log"
	echo "Press Ctrl-C to stop everything."
	while true; do sleep 1; done
fi
