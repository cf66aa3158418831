/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The edgetrustd.conf parser. One pass over the lines with a table of keys per section kind;
 * every value is bounds-checked into fixed-size fields, cross-key rules are checked when a
 * section ends and cross-section references at the end of the file. Never trusts the input:
 * it is a fuzz target.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_config.h"

enum key_kind {
	K_TCTI,  /* explicit TCTI string */
	K_PATH,  /* absolute path */
	K_HOST,  /* host name or IP address */
	K_USER,  /* MQTT user name */
	K_UNIT,  /* free text, UTF-8, may be empty */
	K_UINT,  /* decimal or 0x hex, [min, max] or one of allowed[] */
	K_ENUM,  /* one of choices[] */
	K_BOOL,  /* true/false/yes/no/on/off/1/0 */
	K_DOUBLE /* finite decimal */
};

struct choice {
	const char *name;
	int value;
};

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off;
	size_t size;
	uint32_t min, max;
	const struct choice *choices; /* K_ENUM, ends with {NULL} */
	const uint32_t *allowed;      /* K_UINT, ends with 0; replaces min/max */
};

#define MAX_KEYS 16

static const struct choice log_levels[] = {
	{"err", ET_LOG_ERR}, {"warning", ET_LOG_WARNING}, {"info", ET_LOG_INFO},
	{"debug", ET_LOG_DEBUG}, {NULL, 0}};
static const struct choice transports[] = {{"tcp", ET_MB_TCP}, {"rtu", ET_MB_RTU}, {NULL, 0}};
static const struct choice parities[] = {{"N", 'N'}, {"E", 'E'}, {"O", 'O'}, {NULL, 0}};
static const struct choice tables[] = {{"holding", ET_MB_HOLDING},
				       {"input", ET_MB_INPUT},
				       {"coil", ET_MB_COIL},
				       {"discrete", ET_MB_DISCRETE},
				       {NULL, 0}};
static const struct choice types[] = {{"u16", ET_MB_U16}, {"i16", ET_MB_I16}, {"u32", ET_MB_U32},
				      {"i32", ET_MB_I32}, {"f32", ET_MB_F32}, {"bool", ET_MB_BOOL},
				      {NULL, 0}};
static const struct choice word_orders[] = {
	{"big", ET_MB_WORDS_BIG}, {"little", ET_MB_WORDS_LITTLE}, {NULL, 0}};
static const uint32_t bauds[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 0};
static const uint32_t data_bits[] = {7, 8, 0};
static const uint32_t stop_bits[] = {1, 2, 0};

#define F(type, field) offsetof(type, field), sizeof(((type *)0)->field)

static const struct key_def agent_keys[] = {
	{"tcti", K_TCTI, F(struct et_cfg_agent, tcti), 0, 0, NULL, NULL},
	{"serial_index", K_UINT, F(struct et_cfg_agent, serial_index), 0x01000000, 0x01ffffff, NULL,
	 NULL},
	{"key_handle", K_UINT, F(struct et_cfg_agent, key_handle), 0x81000000, 0x81ffffff, NULL,
	 NULL},
	{"data_dir", K_PATH, F(struct et_cfg_agent, data_dir), 0, 0, NULL, NULL},
	{"log_level", K_ENUM, F(struct et_cfg_agent, log_level), 0, 0, log_levels, NULL},
	{"register_backoff_max_s", K_UINT, F(struct et_cfg_agent, register_backoff_max_s), 1, 86400,
	 NULL, NULL},
	{"tpm_timeout_ms", K_UINT, F(struct et_cfg_agent, tpm_timeout_ms), ET_TPM_TIMEOUT_MIN_MS,
	 ET_TPM_TIMEOUT_MAX_MS, NULL, NULL},
	{"tpm_keygen_timeout_ms", K_UINT, F(struct et_cfg_agent, tpm_keygen_timeout_ms),
	 ET_TPM_TIMEOUT_MIN_MS, ET_TPM_TIMEOUT_MAX_MS, NULL, NULL},
	{"tcti_module", K_PATH, F(struct et_cfg_agent, tcti_module), 0, 0, NULL, NULL},

	{"modbus_queue_max", K_UINT, F(struct et_cfg_agent, modbus_queue_max), 16, 1000000, NULL,
	 NULL},
	{"control_clients_max", K_UINT, F(struct et_cfg_agent, control_clients_max), 1, 64, NULL,
	 NULL},
	{"control_timeout_ms", K_UINT, F(struct et_cfg_agent, control_timeout_ms), 100, 60000, NULL,
	 NULL},
	{NULL, 0, 0, 0, 0, 0, NULL, NULL}};

static const struct key_def broker_keys[] = {
	{"host", K_HOST, F(struct et_cfg_broker, host), 0, 0, NULL, NULL},
	{"port", K_UINT, F(struct et_cfg_broker, port), 1, 65535, NULL, NULL},
	{"tls", K_BOOL, F(struct et_cfg_broker, tls), 0, 0, NULL, NULL},
	{"ca_file", K_PATH, F(struct et_cfg_broker, ca_file), 0, 0, NULL, NULL},
	{"bootstrap_username", K_USER, F(struct et_cfg_broker, bootstrap_username), 0, 0, NULL,
	 NULL},
	{"bootstrap_password_file", K_PATH, F(struct et_cfg_broker, bootstrap_password_file), 0, 0,
	 NULL, NULL},
	{"keepalive_s", K_UINT, F(struct et_cfg_broker, keepalive_s), 5, 3600, NULL, NULL},
	{"reconnect_min_s", K_UINT, F(struct et_cfg_broker, reconnect_min_s), 1, 3600, NULL, NULL},
	{"reconnect_max_s", K_UINT, F(struct et_cfg_broker, reconnect_max_s), 1, 86400, NULL, NULL},
	{NULL, 0, 0, 0, 0, 0, NULL, NULL}};

static const struct choice deliveries[] = {
	{"cloud-ack", ET_DELIVERY_CLOUD_ACK}, {"puback", ET_DELIVERY_PUBACK}, {NULL, 0}};

static const struct key_def spool_keys[] = {
	{"max_records", K_UINT, F(struct et_cfg_spool, max_records), 1, 100000000, NULL, NULL},
	{"batch", K_UINT, F(struct et_cfg_spool, batch), 1, 1000, NULL, NULL},
	{"delivery", K_ENUM, F(struct et_cfg_spool, delivery), 0, 0, deliveries, NULL},
	{"ack_timeout_s", K_UINT, F(struct et_cfg_spool, ack_timeout_s), 1, 3600, NULL, NULL},
	{NULL, 0, 0, 0, 0, 0, NULL, NULL}};

enum dev_key {
	DK_TRANSPORT,
	DK_HOST,
	DK_PORT,
	DK_DEVICE,
	DK_BAUD,
	DK_PARITY,
	DK_DATA_BITS,
	DK_STOP_BITS,
	DK_UNIT_ID,
	DK_TIMEOUT,
	DK_POLL,
};
static const struct key_def device_keys[] = {
	[DK_TRANSPORT] = {"transport", K_ENUM, F(struct et_cfg_device, transport), 0, 0, transports,
			  NULL},
	[DK_HOST] = {"host", K_HOST, F(struct et_cfg_device, host), 0, 0, NULL, NULL},
	[DK_PORT] = {"port", K_UINT, F(struct et_cfg_device, port), 1, 65535, NULL, NULL},
	[DK_DEVICE] = {"device", K_PATH, F(struct et_cfg_device, device), 0, 0, NULL, NULL},
	[DK_BAUD] = {"baud", K_UINT, F(struct et_cfg_device, baud), 0, 0, NULL, bauds},
	[DK_PARITY] = {"parity", K_ENUM, F(struct et_cfg_device, parity), 0, 0, parities, NULL},
	[DK_DATA_BITS] = {"data_bits", K_UINT, F(struct et_cfg_device, data_bits), 0, 0, NULL,
			  data_bits},
	[DK_STOP_BITS] = {"stop_bits", K_UINT, F(struct et_cfg_device, stop_bits), 0, 0, NULL,
			  stop_bits},
	[DK_UNIT_ID] = {"unit_id", K_UINT, F(struct et_cfg_device, unit_id), 0, 255, NULL, NULL},
	[DK_TIMEOUT] = {"timeout_ms", K_UINT, F(struct et_cfg_device, timeout_ms), 10, 60000, NULL,
			NULL},
	[DK_POLL] = {"poll_ms", K_UINT, F(struct et_cfg_device, poll_ms), 10, 86400000, NULL, NULL},
	{NULL, 0, 0, 0, 0, 0, NULL, NULL}};

enum point_key { PK_TABLE, PK_ADDRESS, PK_TYPE, PK_WORD_ORDER, PK_SCALE, PK_OFFSET, PK_UNIT };
static const struct key_def point_keys[] = {
	[PK_TABLE] = {"table", K_ENUM, F(struct et_cfg_point, table), 0, 0, tables, NULL},
	[PK_ADDRESS] = {"address", K_UINT, F(struct et_cfg_point, address), 0, 65535, NULL, NULL},
	[PK_TYPE] = {"type", K_ENUM, F(struct et_cfg_point, type), 0, 0, types, NULL},
	[PK_WORD_ORDER] = {"word_order", K_ENUM, F(struct et_cfg_point, word_order), 0, 0,
			   word_orders, NULL},
	[PK_SCALE] = {"scale", K_DOUBLE, F(struct et_cfg_point, scale), 0, 0, NULL, NULL},
	[PK_OFFSET] = {"offset", K_DOUBLE, F(struct et_cfg_point, offset), 0, 0, NULL, NULL},
	[PK_UNIT] = {"unit", K_UNIT, F(struct et_cfg_point, unit), 0, 0, NULL, NULL},
	{NULL, 0, 0, 0, 0, 0, NULL, NULL}};

enum sect_kind { S_NONE, S_AGENT, S_BROKER, S_SPOOL, S_DEVICE, S_POINT };

/* Where each key of one section instance was set (line number; 0 = not set). */
struct seen {
	unsigned header_line;
	unsigned key_line[MAX_KEYS];
};

struct parser {
	const char *name;
	char *errbuf;
	size_t errlen;
	unsigned line;
	struct et_agent_config *cfg;
	enum sect_kind kind;
	void *base;                 /* struct of the current section */
	const struct key_def *keys; /* its key table */
	struct seen *cur;           /* its key lines */
	char sect_name[ET_CFG_MAX_LINE + 1];
	struct seen agent_seen, broker_seen, spool_seen;
	struct seen *dev_seen;   /* ET_CFG_MAX_DEVICES */
	struct seen *point_seen; /* ET_CFG_MAX_POINTS */
};

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!p->errbuf || p->errlen == 0)
		return ET_E_INVALID;
	if (line)
		n = snprintf(p->errbuf, p->errlen, "%s:%u: ", p->name, line);
	else
		n = snprintf(p->errbuf, p->errlen, "%s: ", p->name);
	if (n < 0 || (size_t)n >= p->errlen)
		return ET_E_INVALID;
	va_start(ap, fmt);
	vsnprintf(p->errbuf + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return ET_E_INVALID;
}

/* "a, b, c" of a key table or choice list into buf (truncated safely). */
static const char *key_list(const struct key_def *keys, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; keys[i].name && n < len; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "", keys[i].name);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return buf;
}

static const char *choice_list(const struct key_def *k, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (k->choices) {
		for (size_t i = 0; k->choices[i].name && n < len; i++) {
			int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
					 k->choices[i].name);
			if (w < 0)
				break;
			n += (size_t)w;
		}
	} else if (k->allowed) {
		for (size_t i = 0; k->allowed[i] && n < len; i++) {
			int w = snprintf(buf + n, len - n, "%s%u", i ? ", " : "", k->allowed[i]);
			if (w < 0)
				break;
			n += (size_t)w;
		}
	} else if (k->min >= 0x01000000) {
		snprintf(buf, len, "0x%08x..0x%08x", k->min, k->max);
	} else {
		snprintf(buf, len, "%u..%u", k->min, k->max);
	}
	return buf;
}

static int is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static int valid_name(const char *s, size_t len)
{
	if (len == 0 || len > ET_CFG_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Well-formed UTF-8 without control characters (the unit text ends up in JSON). */
static int valid_utf8_text(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;

	while (*u) {
		unsigned need, cp;

		if (*u < 0x20 || *u == 0x7f)
			return 0;
		if (*u < 0x80) {
			u++;
			continue;
		}
		if (*u >= 0xc2 && *u <= 0xdf) {
			need = 1;
			cp = *u & 0x1f;
		} else if (*u >= 0xe0 && *u <= 0xef) {
			need = 2;
			cp = *u & 0x0f;
		} else if (*u >= 0xf0 && *u <= 0xf4) {
			need = 3;
			cp = *u & 0x07;
		} else {
			return 0;
		}
		u++;
		for (unsigned i = 0; i < need; i++, u++) {
			if ((*u & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*u & 0x3f);
		}
		if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
	}
	return 1;
}

static int parse_uint(const char *v, uint64_t *ret)
{
	uint64_t x = 0;
	int base = 10;
	const char *s = v;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -1;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		x = x * (uint64_t)base + d;
		if (x > 0xffffffffull)
			x = 0x100000000ull; /* saturate: reported as out of range */
	}
	*ret = x;
	return 0;
}

static void store_int(void *field, size_t size, int64_t v)
{
	if (size == sizeof(uint8_t)) {
		uint8_t x = (uint8_t)v;
		memcpy(field, &x, size);
	} else if (size == sizeof(uint16_t)) {
		uint16_t x = (uint16_t)v;
		memcpy(field, &x, size);
	} else if (size == sizeof(uint32_t)) {
		uint32_t x = (uint32_t)v;
		memcpy(field, &x, size);
	}
}

static const char *sect_label(struct parser *p)
{
	return p->sect_name;
}

static int set_value(struct parser *p, const struct key_def *k, const char *v)
{
	char *field = (char *)p->base + k->off;
	char list[512];
	size_t len = strlen(v);

	switch (k->kind) {
	case K_TCTI: {
		/*
		 * A TCTI name is required (the loader's fallback is never used). By name only the
		 * system's device, swtpm, mssim and tabrmd are loaded, from the system library
		 * directory; any other module (e.g. the fault-injecting TCTI of tests/fault) only
		 * from its absolute path in tcti_module (lib/tcti.c). Another name fails at start
		 * with the library's message (exit 5).
		 */
		size_t nl = strcspn(v, ":");
		int ok = nl > 0 && nl <= 32;

		for (size_t i = 0; i < nl; i++)
			if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
			      v[i] == '-' || v[i] == '_'))
				ok = 0;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
				ok = 0;
		if (!ok || len >= k->size)
			return fail(p, p->line,
				    "invalid tcti '%.64s' in [%s]; valid: device:PATH, "
				    "swtpm:host=H,port=P, mssim:host=H,port=P, tabrmd[:OPTIONS] "
				    "(at most %zu characters)",
				    v, sect_label(p), k->size - 1);
		memcpy(field, v, len + 1);
		return 0;
	}
	case K_PATH:
		if (v[0] != '/' || len >= k->size || !valid_utf8_text(v))
			return fail(p, p->line,
				    "invalid path '%.64s' for '%s' in [%s]; valid: an absolute path "
				    "of at most %zu bytes without control characters",
				    v, k->name, sect_label(p), k->size - 1);
		memcpy(field, v, len + 1);
		return 0;
	case K_HOST:
	case K_USER: {
		int ok = len > 0 && len < k->size;

		for (size_t i = 0; i < len && ok; i++) {
			unsigned char c = (unsigned char)v[i];
			ok = is_name_char(c) || c == '.' || (k->kind == K_HOST && c == ':') ||
			     (k->kind == K_USER && c == '@');
		}
		if (!ok)
			return fail(p, p->line,
				    "invalid %s '%.64s' for '%s' in [%s]; valid: at most %zu of "
				    "A-Z a-z 0-9 . _ - %s",
				    k->kind == K_HOST ? "host" : "user name", v, k->name,
				    sect_label(p), k->size - 1, k->kind == K_HOST ? ":" : "@");
		memcpy(field, v, len + 1);
		return 0;
	}
	case K_UNIT:
		if (len >= k->size || !valid_utf8_text(v))
			return fail(p, p->line,
				    "invalid unit '%.64s' in [%s]; valid: UTF-8 text of at most %zu "
				    "bytes without control characters",
				    v, sect_label(p), k->size - 1);
		memcpy(field, v, len + 1);
		return 0;
	case K_UINT: {
		uint64_t x;
		int ok;

		if (parse_uint(v, &x) < 0)
			return fail(p, p->line,
				    "'%s' in [%s] needs an unsigned integer (decimal or 0x hex), got "
				    "'%.64s'; valid: %s",
				    k->name, sect_label(p), v, choice_list(k, list, sizeof(list)));
		if (k->allowed) {
			ok = 0;
			for (size_t i = 0; k->allowed[i]; i++)
				if (k->allowed[i] == x)
					ok = 1;
		} else {
			ok = x >= k->min && x <= k->max;
		}
		if (!ok)
			return fail(p, p->line, "value %.64s out of range for '%s' in [%s]; valid: %s",
				    v, k->name, sect_label(p), choice_list(k, list, sizeof(list)));
		store_int(field, k->size, (int64_t)x);
		return 0;
	}
	case K_ENUM:
		for (size_t i = 0; k->choices[i].name; i++) {
			if (!strcasecmp(v, k->choices[i].name)) {
				if (k->size == sizeof(char)) {
					char c = (char)k->choices[i].value;
					memcpy(field, &c, 1);
				} else {
					int x = k->choices[i].value;
					memcpy(field, &x, sizeof(x) < k->size ? sizeof(x) : k->size);
				}
				return 0;
			}
		}
		return fail(p, p->line, "invalid value '%.64s' for '%s' in [%s]; valid: %s", v,
			    k->name, sect_label(p), choice_list(k, list, sizeof(list)));
	case K_BOOL: {
		static const char *const yes[] = {"true", "yes", "on", "1"};
		static const char *const no[] = {"false", "no", "off", "0"};

		for (size_t i = 0; i < 4; i++) {
			if (!strcasecmp(v, yes[i]) || !strcasecmp(v, no[i])) {
				bool b = !strcasecmp(v, yes[i]);
				memcpy(field, &b, sizeof(b));
				return 0;
			}
		}
		return fail(p, p->line,
			    "invalid value '%.64s' for '%s' in [%s]; valid: true, false (or yes/no, "
			    "on/off, 1/0)",
			    v, k->name, sect_label(p));
	}
	case K_DOUBLE: {
		char *end = NULL;
		double d;
		int ok = 1;

		/* Plain decimal only: strtod would also take "nan", "inf" and hex floats. */
		for (size_t i = 0; i < len; i++)
			if (!strchr("0123456789+-.eE", v[i]))
				ok = 0;
		errno = 0;
		d = ok ? strtod(v, &end) : 0.0;
		if (!ok || !end || *end || errno == ERANGE || !isfinite(d) || fabs(d) > 1e15)
			return fail(p, p->line,
				    "invalid number '%.64s' for '%s' in [%s]; valid: a decimal number "
				    "between -1e15 and 1e15, e.g. 0.1 or -40",
				    v, k->name, sect_label(p));
		memcpy(field, &d, sizeof(d));
		return 0;
	}
	}
	return fail(p, p->line, "internal error: unknown key kind");
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* Checks the section that just ended. */
static int end_section(struct parser *p)
{
	const unsigned *kl;

	if (p->kind == S_DEVICE) {
		struct et_cfg_device *d = p->base;
		static const enum dev_key tcp_only[] = {DK_HOST, DK_PORT};
		static const enum dev_key rtu_only[] = {DK_DEVICE, DK_BAUD, DK_PARITY, DK_DATA_BITS,
							DK_STOP_BITS};

		kl = p->cur->key_line;
		if (!kl[DK_TRANSPORT])
			return fail(p, p->cur->header_line,
				    "[%s] has no 'transport'; valid: tcp, rtu", sect_label(p));
		if (d->transport == ET_MB_TCP) {
			for (size_t i = 0; i < sizeof(rtu_only) / sizeof(rtu_only[0]); i++)
				if (kl[rtu_only[i]])
					return fail(p, kl[rtu_only[i]],
						    "key '%s' in [%s] applies only to transport = "
						    "rtu (this device uses tcp)",
						    device_keys[rtu_only[i]].name, sect_label(p));
			if (!kl[DK_HOST])
				return fail(p, p->cur->header_line,
					    "[%s] uses transport = tcp but has no 'host'",
					    sect_label(p));
			if (d->unit_id > 247 && d->unit_id != 255)
				return fail(p, kl[DK_UNIT_ID],
					    "value %u out of range for 'unit_id' in [%s]; valid for "
					    "tcp: 0..247 or 255",
					    d->unit_id, sect_label(p));
		} else {
			for (size_t i = 0; i < sizeof(tcp_only) / sizeof(tcp_only[0]); i++)
				if (kl[tcp_only[i]])
					return fail(p, kl[tcp_only[i]],
						    "key '%s' in [%s] applies only to transport = "
						    "tcp (this device uses rtu)",
						    device_keys[tcp_only[i]].name, sect_label(p));
			if (!kl[DK_DEVICE])
				return fail(p, p->cur->header_line,
					    "[%s] uses transport = rtu but has no 'device' (the "
					    "serial port, e.g. /dev/ttyUSB0)",
					    sect_label(p));
			/* 0 is the RTU broadcast address: a broadcast read is never answered. */
			if (d->unit_id < 1 || d->unit_id > 247)
				return fail(p, kl[DK_UNIT_ID] ? kl[DK_UNIT_ID] : p->cur->header_line,
					    "value %u out of range for 'unit_id' in [%s]; valid for "
					    "rtu: 1..247 (0 is broadcast, which never answers a read)",
					    d->unit_id, sect_label(p));
		}
	} else if (p->kind == S_POINT) {
		struct et_cfg_point *pt = p->base;
		int bits;

		kl = p->cur->key_line;
		if (!kl[PK_TABLE])
			return fail(p, p->cur->header_line,
				    "[%s] has no 'table'; valid: holding, input, coil, discrete",
				    sect_label(p));
		if (!kl[PK_ADDRESS])
			return fail(p, p->cur->header_line,
				    "[%s] has no 'address' (0-based, 0..65535)", sect_label(p));
		bits = et_mb_table_is_bits(pt->table);
		if (!kl[PK_TYPE])
			pt->type = bits ? ET_MB_BOOL : ET_MB_U16;
		if (bits && pt->type != ET_MB_BOOL)
			return fail(p, kl[PK_TYPE],
				    "type in [%s] must be bool for table coil or discrete",
				    sect_label(p));
		if (!bits && pt->type == ET_MB_BOOL)
			return fail(p, kl[PK_TYPE],
				    "type bool in [%s] needs table coil or discrete; valid for "
				    "registers: u16, i16, u32, i32, f32",
				    sect_label(p));
		if (kl[PK_WORD_ORDER] && et_mb_type_width(pt->type) != 2)
			return fail(p, kl[PK_WORD_ORDER],
				    "'word_order' in [%s] applies only to types u32, i32, f32",
				    sect_label(p));
		if ((uint32_t)pt->address + et_mb_type_width(pt->type) - 1 > 65535)
			return fail(p, kl[PK_ADDRESS],
				    "address %u in [%s] is too high for a 32-bit value; valid: "
				    "0..65534",
				    pt->address, sect_label(p));
	} else if (p->kind == S_BROKER) {
		struct et_cfg_broker *b = p->base;

		kl = p->cur->key_line;
		if (b->reconnect_min_s > b->reconnect_max_s)
			return fail(p, kl[8] > kl[7] ? kl[8] : kl[7],
				    "reconnect_min_s (%u) is larger than reconnect_max_s (%u) in "
				    "[broker]",
				    b->reconnect_min_s, b->reconnect_max_s);
	}
	return 0;
}

static int begin_section(struct parser *p, char *name)
{
	struct et_agent_config *c = p->cfg;
	size_t len = strlen(name);
	size_t keep = len < sizeof(p->sect_name) - 1 ? len : sizeof(p->sect_name) - 1;

	memcpy(p->sect_name, name, keep);
	p->sect_name[keep] = '\0';
	if (!strcmp(name, "agent") || !strcmp(name, "broker") || !strcmp(name, "spool")) {
		struct seen *s = name[0] == 'a' ? &p->agent_seen
				 : name[0] == 'b' ? &p->broker_seen
						  : &p->spool_seen;
		if (s->header_line)
			return fail(p, p->line, "duplicate section [%s] (first at line %u)", name,
				    s->header_line);
		s->header_line = p->line;
		p->cur = s;
		if (name[0] == 'a') {
			p->kind = S_AGENT;
			p->base = &c->agent;
			p->keys = agent_keys;
		} else if (name[0] == 'b') {
			p->kind = S_BROKER;
			p->base = &c->broker;
			p->keys = broker_keys;
		} else {
			p->kind = S_SPOOL;
			p->base = &c->spool;
			p->keys = spool_keys;
		}
		return 0;
	}
	if (!strncmp(name, "modbus.", 7)) {
		const char *dn = name + 7;
		struct et_cfg_device *d;

		if (!valid_name(dn, len - 7))
			return fail(p, p->line,
				    "invalid device name in [%s]; valid: 1..%d of A-Z a-z 0-9 _ -",
				    name, ET_CFG_NAME_MAX);
		for (size_t i = 0; i < c->n_devices; i++)
			if (!strcmp(c->devices[i].name, dn))
				return fail(p, p->line, "duplicate section [%s] (first at line %u)",
					    name, p->dev_seen[i].header_line);
		if (c->n_devices >= ET_CFG_MAX_DEVICES)
			return fail(p, p->line, "too many devices: at most %d [modbus.*] sections",
				    ET_CFG_MAX_DEVICES);
		d = &c->devices[c->n_devices];
		p->cur = &p->dev_seen[c->n_devices];
		c->n_devices++;
		memcpy(d->name, dn, len - 7 + 1);
		d->port = 502;
		d->baud = 9600;
		d->parity = 'N';
		d->data_bits = 8;
		d->stop_bits = 1;
		d->unit_id = 1;
		d->timeout_ms = 1000;
		d->poll_ms = 1000;
		p->cur->header_line = p->line;
		p->kind = S_DEVICE;
		p->base = d;
		p->keys = device_keys;
		return 0;
	}
	if (!strncmp(name, "point.", 6)) {
		const char *dn = name + 6;
		const char *dot = strchr(dn, '.');
		struct et_cfg_point *pt;
		size_t dl, nl;

		if (!dot || !valid_name(dn, (size_t)(dot - dn)) ||
		    !valid_name(dot + 1, strlen(dot + 1)))
			return fail(p, p->line,
				    "invalid point section [%s]; valid: [point.DEVICE.NAME] with "
				    "names of 1..%d of A-Z a-z 0-9 _ -",
				    name, ET_CFG_NAME_MAX);
		dl = (size_t)(dot - dn);
		nl = strlen(dot + 1);
		for (size_t i = 0; i < c->n_points; i++)
			if (!strncmp(c->points[i].device, dn, dl) && c->points[i].device[dl] == '\0' &&
			    !strcmp(c->points[i].name, dot + 1))
				return fail(p, p->line, "duplicate section [%s] (first at line %u)",
					    name, p->point_seen[i].header_line);
		if (c->n_points >= ET_CFG_MAX_POINTS)
			return fail(p, p->line, "too many points: at most %d [point.*] sections",
				    ET_CFG_MAX_POINTS);
		pt = &c->points[c->n_points];
		p->cur = &p->point_seen[c->n_points];
		c->n_points++;
		memcpy(pt->device, dn, dl);
		pt->device[dl] = '\0';
		memcpy(pt->name, dot + 1, nl + 1);
		pt->scale = 1.0;
		pt->offset = 0.0;
		p->cur->header_line = p->line;
		p->kind = S_POINT;
		p->base = pt;
		p->keys = point_keys;
		return 0;
	}
	return fail(p, p->line,
		    "unknown section [%.64s]; valid sections: [agent], [broker], [spool], "
		    "[modbus.DEVICE], [point.DEVICE.NAME]",
		    name);
}

static int parse_line(struct parser *p, char *line)
{
	char *s = trim(line), *eq, *key, *val;
	char list[512];

	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		char *close = strchr(s, ']'), *rest;
		int r;

		if (!close)
			return fail(p, p->line, "section header without ']'");
		*close = '\0';
		rest = trim(close + 1);
		if (*rest && *rest != '#' && *rest != ';')
			return fail(p, p->line, "unexpected text after section header: '%.32s'",
				    rest);
		if (p->kind != S_NONE) {
			r = end_section(p);
			if (r < 0)
				return r;
		}
		return begin_section(p, trim(s + 1));
	}
	eq = strchr(s, '=');
	if (!eq)
		return fail(p, p->line, "expected 'key = value', '[section]' or a comment, got '%.32s'",
			    s);
	*eq = '\0';
	key = trim(s);
	val = eq + 1;
	/* An inline comment starts at '#' or ';' after white space. */
	for (char *c = val; *c; c++) {
		if ((*c == '#' || *c == ';') && (c == val || c[-1] == ' ' || c[-1] == '\t')) {
			*c = '\0';
			break;
		}
	}
	val = trim(val);
	if (p->kind == S_NONE)
		return fail(p, p->line, "key '%.64s' outside any section; start with [agent], "
				       "[broker], [spool], [modbus.DEVICE] or [point.DEVICE.NAME]",
			    key);
	for (size_t i = 0; p->keys[i].name; i++) {
		if (strcmp(p->keys[i].name, key))
			continue;
		if (p->cur->key_line[i])
			return fail(p, p->line, "duplicate key '%s' in [%s] (first at line %u)", key,
				    sect_label(p), p->cur->key_line[i]);
		if (!*val && p->keys[i].kind != K_UNIT)
			return fail(p, p->line, "key '%s' in [%s] has no value", key, sect_label(p));
		p->cur->key_line[i] = p->line;
		return set_value(p, &p->keys[i], val);
	}
	return fail(p, p->line, "unknown key '%.64s' in [%s]; valid keys: %s", key, sect_label(p),
		    key_list(p->keys, list, sizeof(list)));
}

static void set_defaults(struct et_agent_config *c)
{
	snprintf(c->agent.tcti, sizeof(c->agent.tcti), "device:/dev/tpmrm0");
	c->agent.serial_index = ET_NV_SERIAL_INDEX_DEFAULT;
	c->agent.key_handle = ET_DEVICE_KEY_HANDLE_DEFAULT;
	snprintf(c->agent.data_dir, sizeof(c->agent.data_dir), "/var/lib/edgetrust");
	c->agent.log_level = ET_LOG_INFO;
	c->agent.register_backoff_max_s = 300;
	c->agent.tpm_timeout_ms = ET_TPM_TIMEOUT_DEFAULT_MS;
	c->agent.tpm_keygen_timeout_ms = ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS;
	c->agent.modbus_queue_max = ET_CFG_MODBUS_QUEUE_DEFAULT;
	c->agent.control_clients_max = ET_CFG_CONTROL_CLIENTS_DEFAULT;
	c->agent.control_timeout_ms = ET_CFG_CONTROL_TIMEOUT_DEFAULT_MS;
	c->broker.tls = true;
	snprintf(c->broker.bootstrap_username, sizeof(c->broker.bootstrap_username), "bootstrap");
	c->broker.keepalive_s = 30;
	c->broker.reconnect_min_s = 1;
	c->broker.reconnect_max_s = 60;
	c->spool.max_records = 100000;
	c->spool.batch = 100;
	c->spool.delivery = ET_DELIVERY_CLOUD_ACK;
	c->spool.ack_timeout_s = 30;
}

/* Resolves point -> device references and groups points by device. */
static int finish(struct parser *p)
{
	struct et_agent_config *c = p->cfg;
	struct et_cfg_point *sorted;
	size_t *order;

	if (!p->broker_seen.key_line[1])
		c->broker.port = c->broker.tls ? 8883 : 1883;
	/* Devices on one RS-485 line share the port: its settings must agree. */
	for (size_t i = 0; i < c->n_devices; i++) {
		const struct et_cfg_device *a = &c->devices[i];

		for (size_t j = 0; j < i && a->transport == ET_MB_RTU; j++) {
			const struct et_cfg_device *b = &c->devices[j];

			if (b->transport != ET_MB_RTU || strcmp(a->device, b->device))
				continue;
			if (a->baud != b->baud || a->parity != b->parity ||
			    a->data_bits != b->data_bits || a->stop_bits != b->stop_bits)
				return fail(p, p->dev_seen[i].header_line,
					    "[modbus.%s] shares serial port %s with [modbus.%s] (line "
					    "%u) but not its baud/parity/data_bits/stop_bits; devices "
					    "on one line must use the same settings",
					    a->name, a->device, b->name, p->dev_seen[j].header_line);
		}
	}
	for (size_t i = 0; i < c->n_points; i++) {
		size_t d;

		for (d = 0; d < c->n_devices; d++)
			if (!strcmp(c->devices[d].name, c->points[i].device))
				break;
		if (d == c->n_devices)
			return fail(p, p->point_seen[i].header_line,
				    "[point.%s.%s] refers to device '%s', which has no "
				    "[modbus.%s] section",
				    c->points[i].device, c->points[i].name, c->points[i].device,
				    c->points[i].device);
		c->points[i].device_index = d;
	}
	if (c->n_points == 0)
		return 0;
	/* Counting sort by device keeps file order within a device (qsort is not stable). */
	sorted = calloc(c->n_points, sizeof(*sorted));
	order = calloc(c->n_devices + 1, sizeof(*order));
	if (!sorted || !order) {
		free(sorted);
		free(order);
		if (p->errbuf && p->errlen)
			snprintf(p->errbuf, p->errlen, "%s: out of memory", p->name);
		return ET_E_NOMEM;
	}
	for (size_t i = 0; i < c->n_points; i++)
		order[c->points[i].device_index + 1]++;
	for (size_t d = 0; d < c->n_devices; d++) {
		c->devices[d].first_point = order[d];
		c->devices[d].n_points = order[d + 1];
		order[d + 1] += order[d];
	}
	for (size_t i = 0; i < c->n_points; i++)
		sorted[order[c->points[i].device_index]++] = c->points[i];
	memcpy(c->points, sorted, c->n_points * sizeof(*sorted));
	free(sorted);
	free(order);
	return 0;
}

int et_agent_config_parse(const char *text, size_t len, const char *name,
			  struct et_agent_config **ret, char *errbuf, size_t errlen)
{
	struct parser p = {0};
	struct et_agent_config *c = NULL;
	char line[ET_CFG_MAX_LINE + 2];
	size_t pos = 0;
	int r;

	p.name = name ? name : "edgetrustd.conf";
	p.errbuf = errbuf;
	p.errlen = errlen;
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if ((!text && len) || !ret)
		return fail(&p, 0, "internal error: no text or result pointer");
	if (len > ET_CFG_MAX_FILE)
		return fail(&p, 0, "file too large (%zu bytes); at most %d", len, ET_CFG_MAX_FILE);

	c = calloc(1, sizeof(*c));
	if (c) {
		c->devices = calloc(ET_CFG_MAX_DEVICES, sizeof(*c->devices));
		c->points = calloc(ET_CFG_MAX_POINTS, sizeof(*c->points));
	}
	p.dev_seen = calloc(ET_CFG_MAX_DEVICES, sizeof(*p.dev_seen));
	p.point_seen = calloc(ET_CFG_MAX_POINTS, sizeof(*p.point_seen));
	if (!c || !c->devices || !c->points || !p.dev_seen || !p.point_seen) {
		r = ET_E_NOMEM;
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s: out of memory", p.name);
		goto out;
	}
	p.cfg = c;
	set_defaults(c);

	while (pos < len) {
		size_t n = 0;

		p.line++;
		while (pos + n < len && text[pos + n] != '\n')
			n++;
		if (n > ET_CFG_MAX_LINE) {
			r = fail(&p, p.line, "line longer than %d bytes", ET_CFG_MAX_LINE);
			goto out;
		}
		if (memchr(text + pos, '\0', n)) {
			r = fail(&p, p.line, "NUL byte in line (not a text file?)");
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		for (size_t i = 0; line[i]; i++) {
			unsigned char ch = (unsigned char)line[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				r = fail(&p, p.line, "control character 0x%02x in line", ch);
				goto out;
			}
		}
		pos += n + 1;
		r = parse_line(&p, line);
		if (r < 0)
			goto out;
	}
	if (p.kind != S_NONE) {
		r = end_section(&p);
		if (r < 0)
			goto out;
	}
	r = finish(&p);
	if (r < 0)
		goto out;
	*ret = c;
	c = NULL;
	r = 0;
out:
	et_agent_config_free(c);
	free(p.dev_seen);
	free(p.point_seen);
	return r;
}

int et_agent_config_load(const char *path, struct et_agent_config **ret, char *errbuf,
			 size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if (!path || !ret) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "internal error: no configuration path");
		return ET_E_INVALID;
	}
	/* The one reader of files we are given (lib/file.c): a regular file only (a FIFO would
	 * block open() with SIGTERM still blocked), at most ET_CFG_MAX_FILE bytes. */
	r = et_file_read(path, 0, "configuration", ET_CFG_MAX_FILE, &buf, &len);
	if (r < 0) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s (see edgetrustd.conf(5))", et_errmsg());
		return r;
	}
	r = et_agent_config_parse((const char *)buf, len, path, ret, errbuf, errlen);
	free(buf);
	return r;
}

void et_agent_config_free(struct et_agent_config *c)
{
	if (!c)
		return;
	free(c->devices);
	free(c->points);
	free(c);
}

const struct et_cfg_device *et_agent_config_device(const struct et_agent_config *c,
						   const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->n_devices; i++)
		if (!strcmp(c->devices[i].name, name))
			return &c->devices[i];
	return NULL;
}
