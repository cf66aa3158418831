/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrustd.conf parser: a full valid file, defaults, and every kind of error with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_config.h"

static const char full[] =
	"# example\n"
	"[agent]\n"
	"tcti = swtpm:host=127.0.0.1,port=2321   # explicit\n"
	"serial_index = 0x01000000\n"
	"key_handle = 0x81000002\n"
	"data_dir = /data/edgetrust\n"
	"log_level = debug\n"
	"register_backoff_max_s = 300\n"
	"\n"
	"[broker]\n"
	"host = mqtt.example.com\n"
	"port = 8883\n"
	"tls = true\n"
	"ca_file = /etc/edgetrust/broker-ca.pem\n"
	"bootstrap_username = bootstrap\n"
	"bootstrap_password_file = /etc/edgetrust/bootstrap.secret\n"
	"keepalive_s = 30\n"
	"reconnect_min_s = 2\n"
	"reconnect_max_s = 60\n"
	"[spool]\n"
	"max_records = 100000\n"
	"batch = 100\n"
	"delivery = puback\n"
	"ack_timeout_s = 7\n"
	"; points may come before their device\n"
	"[point.meter.energy]\n"
	"table = input\n"
	"address = 10\n"
	"type = f32\n"
	"word_order = little\n"
	"scale = 0.001\n"
	"offset = -1.5\n"
	"unit = kWh\n"
	"[modbus.meter]\n"
	"transport = tcp\n"
	"host = 127.0.0.1\n"
	"port = 1502\n"
	"unit_id = 255\n"
	"timeout_ms = 500\n"
	"poll_ms = 250\n"
	"[modbus.plc]\r\n"
	"transport = rtu\r\n"
	"device = /dev/ttyUSB0\r\n"
	"baud = 19200\r\n"
	"parity = E\r\n"
	"data_bits = 8\r\n"
	"stop_bits = 2\r\n"
	"unit_id = 7\r\n"
	"[point.plc.run]\n"
	"table = coil\n"
	"address = 0\n"
	"[point.meter.count]\n"
	"table = holding\n"
	"address = 65535\n"
	"unit = \xc2\xb0"
	"C\n";

static struct et_agent_config *parse_ok(const char *text)
{
	struct et_agent_config *c = NULL;
	char err[512];
	int r = et_agent_config_parse(text, strlen(text), "t.conf", &c, err, sizeof(err));

	if (r != 0)
		fail_msg("unexpected error %d: %s", r, err);
	assert_non_null(c);
	return c;
}

/* Parses text, expects ET_E_INVALID and a message starting with "t.conf:LINE: " that
 * contains want. */
static void expect_err_n(const char *text, size_t len, unsigned line, const char *want)
{
	struct et_agent_config *c = (void *)0x1;
	char err[512], prefix[32];
	int r = et_agent_config_parse(text, len, "t.conf", &c, err, sizeof(err));

	assert_int_equal(r, ET_E_INVALID);
	assert_ptr_equal(c, (void *)0x1); /* untouched */
	snprintf(prefix, sizeof(prefix), "t.conf:%u: ", line);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, want))
		fail_msg("for input:\n%s\ngot '%s', want prefix '%s' and '%s'", text, err, prefix,
			 want);
}

static void expect_err(const char *text, unsigned line, const char *want)
{
	expect_err_n(text, strlen(text), line, want);
}

static void test_full(void **state)
{
	struct et_agent_config *c = parse_ok(full);
	const struct et_cfg_device *d;

	(void)state;
	assert_string_equal(c->agent.tcti, "swtpm:host=127.0.0.1,port=2321");
	assert_int_equal(c->agent.serial_index, 0x01000000);
	assert_int_equal(c->agent.key_handle, 0x81000002);
	assert_string_equal(c->agent.data_dir, "/data/edgetrust");
	assert_int_equal(c->agent.log_level, ET_LOG_DEBUG);
	assert_string_equal(c->broker.host, "mqtt.example.com");
	assert_int_equal(c->broker.port, 8883);
	assert_true(c->broker.tls);
	assert_string_equal(c->broker.bootstrap_password_file, "/etc/edgetrust/bootstrap.secret");
	assert_int_equal(c->broker.reconnect_min_s, 2);
	assert_int_equal(c->spool.batch, 100);
	assert_int_equal(c->spool.delivery, ET_DELIVERY_PUBACK);
	assert_int_equal(c->spool.ack_timeout_s, 7);
	assert_int_equal(c->n_devices, 2);
	assert_int_equal(c->n_points, 3);

	d = et_agent_config_device(c, "meter");
	assert_non_null(d);
	assert_int_equal(d->transport, ET_MB_TCP);
	assert_string_equal(d->host, "127.0.0.1");
	assert_int_equal(d->port, 1502);
	assert_int_equal(d->unit_id, 255);
	assert_int_equal(d->timeout_ms, 500);
	assert_int_equal(d->poll_ms, 250);
	assert_int_equal(d->first_point, 0);
	assert_int_equal(d->n_points, 2);
	/* file order inside the device */
	assert_string_equal(c->points[0].name, "energy");
	assert_int_equal(c->points[0].table, ET_MB_INPUT);
	assert_int_equal(c->points[0].address, 10);
	assert_int_equal(c->points[0].type, ET_MB_F32);
	assert_int_equal(c->points[0].word_order, ET_MB_WORDS_LITTLE);
	assert_true(c->points[0].scale == 0.001);
	assert_true(c->points[0].offset == -1.5);
	assert_string_equal(c->points[0].unit, "kWh");
	assert_string_equal(c->points[1].name, "count");
	assert_int_equal(c->points[1].address, 65535);
	assert_int_equal(c->points[1].type, ET_MB_U16);
	assert_string_equal(c->points[1].unit, "\xc2\xb0"
					       "C");

	d = et_agent_config_device(c, "plc");
	assert_non_null(d);
	assert_int_equal(d->transport, ET_MB_RTU);
	assert_string_equal(d->device, "/dev/ttyUSB0");
	assert_int_equal(d->baud, 19200);
	assert_int_equal(d->parity, 'E');
	assert_int_equal(d->stop_bits, 2);
	assert_int_equal(d->unit_id, 7);
	assert_int_equal(d->first_point, 2);
	assert_int_equal(d->n_points, 1);
	assert_string_equal(c->points[2].name, "run");
	assert_int_equal(c->points[2].type, ET_MB_BOOL); /* default for coils */
	assert_int_equal(c->points[2].device_index, 1);
	assert_null(et_agent_config_device(c, "nope"));
	et_agent_config_free(c);
	et_agent_config_free(NULL);
}

static void test_defaults(void **state)
{
	struct et_agent_config *c = parse_ok("");

	(void)state;
	assert_string_equal(c->agent.tcti, "device:/dev/tpmrm0");
	assert_int_equal(c->agent.serial_index, ET_NV_SERIAL_INDEX_DEFAULT);
	assert_int_equal(c->agent.key_handle, ET_DEVICE_KEY_HANDLE_DEFAULT);
	assert_int_equal(c->agent.log_level, ET_LOG_INFO);
	assert_int_equal(c->agent.modbus_queue_max, ET_CFG_MODBUS_QUEUE_DEFAULT);
	assert_int_equal(c->agent.control_clients_max, ET_CFG_CONTROL_CLIENTS_DEFAULT);
	assert_int_equal(c->agent.control_timeout_ms, ET_CFG_CONTROL_TIMEOUT_DEFAULT_MS);
	assert_string_equal(c->broker.host, "");
	assert_int_equal(c->broker.port, 8883);
	assert_string_equal(c->broker.bootstrap_username, "bootstrap");
	assert_int_equal(c->spool.max_records, 100000);
	assert_int_equal(c->spool.delivery, ET_DELIVERY_CLOUD_ACK);
	assert_int_equal(c->spool.ack_timeout_s, 30);
	assert_int_equal(c->n_devices, 0);
	et_agent_config_free(c);

	c = parse_ok("[broker]\ntls = no\n[modbus.a]\ntransport = tcp\nhost = h\n");
	assert_int_equal(c->broker.port, 1883);
	assert_false(c->broker.tls);
	assert_int_equal(c->devices[0].port, 502);
	assert_int_equal(c->devices[0].unit_id, 1);
	assert_int_equal(c->devices[0].timeout_ms, 1000);
	assert_int_equal(c->devices[0].poll_ms, 1000);
	assert_int_equal(c->devices[0].n_points, 0);
	et_agent_config_free(c);

	/* tcp accepts unit 0; empty unit text is allowed; tabs and comments */
	c = parse_ok("\t[modbus.a]  # c\n\ttransport\t=\tTCP\nhost=h\nunit_id=0\n"
		     "[point.a.x]\ntable=holding\naddress=0x10\nunit=\nscale=1e3\n");
	assert_int_equal(c->devices[0].unit_id, 0);
	assert_int_equal(c->points[0].address, 16);
	assert_true(c->points[0].scale == 1000.0);
	assert_string_equal(c->points[0].unit, "");
	et_agent_config_free(c);
}

#define DEV "[modbus.d]\ntransport = tcp\nhost = 127.0.0.1\n"
#define RTU "[modbus.r]\ntransport = rtu\ndevice = /dev/ttyS0\n"

static void test_errors(void **state)
{
	(void)state;
	/* syntax */
	expect_err("[agent\n", 1, "without ']'");
	expect_err("[agent] x\n", 1, "unexpected text");
	expect_err("\n\nfoo\n", 3, "expected 'key = value'");
	expect_err("tcti = device:/dev/tpm0\n", 1, "outside any section");
	expect_err("[nope]\n", 1, "unknown section [nope]; valid sections: [agent]");
	expect_err("[agent]\nprot = 1\n", 2, "unknown key 'prot' in [agent]; valid keys: tcti, "
					    "serial_index");
	expect_err("[broker]\nprot = 1\n", 2, "valid keys: host, port, tls");
	expect_err("[agent]\ndata_dir =\n", 2, "has no value");
	expect_err("[agent]\ndata_dir = /a\x01\n", 2, "control character 0x01");
	expect_err_n("[agent]\n\0\n", 10, 2, "NUL byte");
	/* duplicates */
	expect_err("[agent]\nlog_level = info\n\nlog_level = err\n", 4,
		   "duplicate key 'log_level' in [agent] (first at line 2)");
	expect_err("[agent]\n[spool]\n[agent]\n", 3, "duplicate section [agent] (first at line 1)");
	expect_err(DEV "[modbus.d]\n", 4, "duplicate section [modbus.d] (first at line 1)");
	expect_err(DEV "[point.d.x]\ntable=coil\naddress=1\n[point.d.x]\n", 7,
		   "duplicate section [point.d.x] (first at line 4)");
	/* values */
	expect_err("[agent]\ntcti = /dev/tpmrm0\n", 2, "invalid tcti");
	expect_err("[agent]\ntcti = device:/dev/tpm rm0\n", 2, "invalid tcti");
	expect_err("[agent]\nserial_index = 0x81000000\n", 2,
		   "out of range for 'serial_index' in [agent]; valid: 0x01000000..0x01ffffff");
	expect_err("[agent]\nkey_handle = 12abc\n", 2, "needs an unsigned integer");
	expect_err("[agent]\ndata_dir = relative/path\n", 2, "absolute path");
	expect_err("[agent]\nlog_level = verbose\n", 2, "valid: err, warning, info, debug");
	expect_err("[agent]\nregister_backoff_max_s = 0\n", 2, "valid: 1..86400");
	expect_err("[agent]\nmodbus_queue_max = 15\n", 2, "valid: 16..1000000");
	expect_err("[agent]\ncontrol_clients_max = 65\n", 2, "valid: 1..64");
	expect_err("[agent]\ncontrol_timeout_ms = 99\n", 2, "valid: 100..60000");
	expect_err("[broker]\nport = 0\n", 2, "valid: 1..65535");
	expect_err("[broker]\nport = 65536\n", 2, "valid: 1..65535");
	expect_err("[broker]\nport = 99999999999999999999999\n", 2, "out of range");
	expect_err("[broker]\nport = -1\n", 2, "needs an unsigned integer");
	expect_err("[broker]\nport = 0x\n", 2, "needs an unsigned integer");
	expect_err("[broker]\ntls = maybe\n", 2, "valid: true, false");
	expect_err("[broker]\nhost = a b\n", 2, "invalid host");
	expect_err("[broker]\nbootstrap_username = a/b\n", 2, "invalid user name");
	expect_err("[broker]\nreconnect_min_s = 10\nreconnect_max_s = 5\n", 3,
		   "reconnect_min_s (10) is larger than reconnect_max_s (5)");
	expect_err("[spool]\nbatch = 0\n", 2, "valid: 1..1000");
	expect_err("[spool]\nbatch = 1001\n", 2, "valid: 1..1000");
	expect_err("[spool]\ndelivery = never\n", 2, "valid: cloud-ack, puback");
	expect_err("[spool]\nack_timeout_s = 0\n", 2, "valid: 1..3600");
	expect_err("[spool]\nack_timeout_s = 3601\n", 2, "valid: 1..3600");
	/* devices */
	expect_err("[modbus.]\n", 1, "invalid device name");
	expect_err("[modbus.a.b]\n", 1, "invalid device name");
	expect_err("[modbus.d]\nhost = h\n", 1, "[modbus.d] has no 'transport'; valid: tcp, rtu");
	expect_err("[modbus.d]\ntransport = udp\n", 2, "valid: tcp, rtu");
	expect_err("[modbus.d]\ntransport = tcp\n", 1, "has no 'host'");
	expect_err(RTU "baud = 9601\n", 4, "valid: 1200, 2400, 4800, 9600, 19200");
	expect_err(RTU "parity = X\n", 4, "valid: N, E, O");
	expect_err(RTU "data_bits = 6\n", 4, "valid: 7, 8");
	expect_err(RTU "stop_bits = 3\n", 4, "valid: 1, 2");
	expect_err(RTU "unit_id = 0\n", 4, "valid for rtu: 1..247");
	expect_err(RTU "unit_id = 248\n", 4, "valid for rtu: 1..247");
	expect_err(RTU "unit_id = 256\n", 4, "valid: 0..255");
	expect_err(DEV "unit_id = 250\n", 4, "valid for tcp: 0..247 or 255");
	expect_err(DEV "timeout_ms = 9\n", 4, "valid: 10..60000");
	expect_err(DEV "timeout_ms = 60001\n", 4, "valid: 10..60000");
	expect_err(DEV "poll_ms = 86400001\n", 4, "valid: 10..86400000");
	expect_err(DEV "baud = 9600\n", 4, "applies only to transport = rtu");
	expect_err(RTU "host = h\n", 4, "applies only to transport = tcp");
	expect_err("[modbus.r]\ntransport = rtu\n", 1, "has no 'device'");
	expect_err(RTU RTU, 4, "duplicate section");
	expect_err(RTU "unit_id = 2\n[modbus.s]\ntransport = rtu\ndevice = /dev/ttyS0\nbaud=19200\n",
		   5, "shares serial port /dev/ttyS0 with [modbus.r] (line 1)");
	/* one unit may be polled as two devices (two poll rates) */
	et_agent_config_free(parse_ok(RTU "[modbus.s]\ntransport = rtu\ndevice = /dev/ttyS0\n"));
	/* points */
	expect_err(DEV "[point.d]\n", 4, "invalid point section");
	expect_err(DEV "[point.d.x.y]\n", 4, "invalid point section");
	expect_err(DEV "[point.d.x]\naddress = 1\n", 4, "has no 'table'");
	expect_err(DEV "[point.d.x]\ntable = coil\n", 4, "has no 'address'");
	expect_err(DEV "[point.d.x]\ntable = register\n", 5,
		   "valid: holding, input, coil, discrete");
	expect_err(DEV "[point.d.x]\ntable = holding\naddress = 65536\n", 6, "valid: 0..65535");
	expect_err(DEV "[point.d.x]\ntable = holding\naddress = 65535\ntype = u32\n", 6,
		   "too high for a 32-bit value");
	expect_err(DEV "[point.d.x]\ntable = holding\naddress = 1\ntype = i64\n", 7,
		   "valid: u16, i16, u32, i32, f32, bool");
	expect_err(DEV "[point.d.x]\ntable = coil\naddress = 1\ntype = u16\n", 7, "must be bool");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\ntype = bool\n", 7,
		   "needs table coil or discrete");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nword_order = big\n", 7,
		   "applies only to types u32, i32, f32");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\ntype=f32\nword_order = mid\n", 8,
		   "valid: big, little");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nscale = nan\n", 7, "invalid number");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nscale = inf\n", 7, "invalid number");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nscale = 1e400\n", 7,
		   "invalid number");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\noffset = 1.5x\n", 7,
		   "invalid number");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nunit = \xff\n", 7, "invalid unit");
	expect_err(DEV "[point.d.x]\ntable = input\naddress = 1\nunit = "
		       "0123456789012345678901234567890123\n",
		   7, "at most 31 bytes");
	expect_err(DEV "\n[point.e.x]\ntable = coil\naddress = 1\n", 5,
		   "[point.e.x] refers to device 'e', which has no [modbus.e] section");
}

static void test_limits(void **state)
{
	char *buf = malloc(ET_CFG_MAX_FILE + 2);
	size_t n = 0;
	struct et_agent_config *c = NULL;
	char err[256];

	(void)state;
	assert_non_null(buf);
	/* long line */
	memset(buf, '#', ET_CFG_MAX_LINE + 1);
	buf[ET_CFG_MAX_LINE + 1] = '\0';
	expect_err(buf, 1, "line longer than 1024 bytes");
	memset(buf, '#', ET_CFG_MAX_LINE);
	buf[ET_CFG_MAX_LINE] = '\0';
	c = parse_ok(buf);
	et_agent_config_free(c);

	/* 64 devices + 1024 points pass; one more of each fails */
	for (int d = 0; d < ET_CFG_MAX_DEVICES; d++)
		n += (size_t)sprintf(buf + n, "[modbus.d%d]\ntransport=tcp\nhost=h\n", d);
	for (int pt = 0; pt < ET_CFG_MAX_POINTS; pt++)
		n += (size_t)sprintf(buf + n, "[point.d%d.p%d]\ntable=holding\naddress=%d\n",
				     pt % ET_CFG_MAX_DEVICES, pt, pt);
	c = parse_ok(buf);
	assert_int_equal(c->n_devices, 64);
	assert_int_equal(c->n_points, 1024);
	for (size_t d = 0; d < c->n_devices; d++) {
		assert_int_equal(c->devices[d].n_points, 16);
		for (size_t k = 0; k < 16; k++)
			assert_int_equal(c->points[c->devices[d].first_point + k].device_index, d);
	}
	et_agent_config_free(c);
	sprintf(buf + n, "[point.d0.extra]\n");
	expect_err(buf, 64 * 3 + 1024 * 3 + 1, "too many points: at most 1024");
	n = 0;
	for (int d = 0; d <= ET_CFG_MAX_DEVICES; d++)
		n += (size_t)sprintf(buf + n, "[modbus.d%d]\ntransport=tcp\nhost=h\n", d);
	expect_err(buf, 64 * 3 + 1, "too many devices: at most 64");

	/* file size */
	assert_int_equal(et_agent_config_parse(buf, ET_CFG_MAX_FILE + 1, "t.conf", &c, err,
					       sizeof(err)),
			 ET_E_INVALID);
	assert_non_null(strstr(err, "file too large"));
	/* tiny error buffers are safe */
	assert_int_equal(et_agent_config_parse("[x]", 3, "t.conf", &c, err, 5), ET_E_INVALID);
	assert_int_equal(strlen(err), 4);
	assert_int_equal(et_agent_config_parse("[x]", 3, "t.conf", &c, NULL, 0), ET_E_INVALID);
	/* not NUL-terminated: only len bytes are read */
	memcpy(buf, "[agent]\nlog_level = err", 23);
	buf[23] = 'X';
	c = NULL;
	assert_int_equal(et_agent_config_parse(buf, 23, "t.conf", &c, err, sizeof(err)), 0);
	assert_int_equal(c->agent.log_level, ET_LOG_ERR);
	et_agent_config_free(c);
	free(buf);
}

static void test_load(void **state)
{
	char path[] = "/tmp/et-conf-XXXXXX";
	int fd = mkstemp(path);
	struct et_agent_config *c = NULL;
	char err[512];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, full, sizeof(full) - 1), (ssize_t)(sizeof(full) - 1));
	close(fd);
	assert_int_equal(et_agent_config_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c->n_points, 3);
	et_agent_config_free(c);
	unlink(path);
	c = NULL;
	assert_int_equal(et_agent_config_load(path, &c, err, sizeof(err)), ET_E_IO);
	assert_null(c);
	assert_non_null(strstr(err, path));
	assert_int_equal(et_agent_config_load("/", &c, err, sizeof(err)), ET_E_IO);
	assert_non_null(strstr(err, "a directory"));
	/* A FIFO is refused at once, not waited on (finding 13 of issue 10): no writer ever
	 * comes here, so a blocking open() would never return. */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(et_agent_config_load(path, &c, err, sizeof(err)), ET_E_IO);
	assert_non_null(strstr(err, "FIFO"));
	assert_null(c);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),   cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors), cmocka_unit_test(test_limits),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
