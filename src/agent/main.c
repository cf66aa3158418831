/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrustd, the device agent: reads its serial from TPM NV, registers once with the
 * bootstrap login, logs in with credentials that only its TPM can open, polls Modbus devices,
 * keeps every reading in a durable spool until the cloud acknowledged storing it (or, with
 * [spool] delivery = puback, until the broker's PUBACK), and applies settings from the cloud
 * and from the local operator.
 *
 * Threads: the main thread owns all state (TPM context, SQLite spool, settings, control
 * socket) and runs one event loop that never blocks on a peer; each Modbus bus has a worker
 * thread that owns its libmodbus contexts and queues readings for the main thread (see
 * modbus_bus.h); each MQTT connection has a network thread that only queues events for the
 * main thread (see mqtt.h). Documented in docs/edgetrustd.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>

#include "ack.h"
#include "agent_config.h"
#include "config.h"
#include "credstore.h"
#include "ctl.h"
#include "edgetrust/edgetrust.h"
#include "modbus_bus.h"
#include "mqtt.h"
#include "register.h"
#include "sdnotify.h"
#include "settings.h"
#include "spool.h"
#include "tpmjob.h"

/* Exit codes: docs/exit-codes.md, section "edgetrustd". */
enum {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_CONFIG = 3,
	EXIT_NOT_PROVISIONED = 4,
	EXIT_TPM = 5,
	EXIT_DATA_DIR = 6,
	EXIT_SPOOL = 7,
	EXIT_KEY = 8,
};

#define RECS_PER_MSG 100
/* Messages in flight (awaiting PUBACK or the cloud's ack) at most; spool.batch is capped here. */
#define INFL_MAX 1000
/* A message sent again for want of a cloud ack waits twice as long each time, up to 2^this
 * times [spool] ack_timeout_s (default 30 s: 240 s). */
#define ACK_BACKOFF_SHIFT_MAX 3
#define SESSION_EXPIRY_S (7u * 24 * 3600)
#define CTL_SOCKET "agent.sock"

static volatile sig_atomic_t g_stop;
static int g_log_level = ET_LOG_INFO;
static bool g_journal;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void vlog_msg(et_log_level lvl, const char *fmt, va_list ap)
{
	static const char *const names[] = { [3] = "error", [4] = "warning", [6] = "info",
					     [7] = "debug" };
	char buf[2048];

	if ((int)lvl > g_log_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (g_journal)
		fprintf(stderr, "<%d>%s\n", (int)lvl, buf);
	else
		fprintf(stderr, "edgetrustd: %s: %s\n", names[lvl & 7] ? names[lvl & 7] : "log", buf);
}

static void logm(et_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logm(et_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_msg(lvl, fmt, ap);
	va_end(ap);
}

static void log_cb(et_log_level lvl, const char *msg, void *ud)
{
	(void)ud;
	logm(lvl, "%s", msg);
}

/* cJSON parses decrypted credentials; wiping every block it frees leaves no copy behind. */
static void wiping_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A published telemetry message: awaiting the broker's PUBACK, then (delivery = cloud-ack)
 * the cloud's ack of its records; or due to be published again (no cloud ack in time, a new
 * connection, or the broker refused it).
 */
enum infl_state { IF_PUBACK, IF_CLOUD, IF_RESEND };

struct inflight {
	int mid;
	int64_t lo, hi;
	enum infl_state state;
	int64_t deadline_ms; /* IF_CLOUD: publish again when no cloud ack came by then */
	int tries;           /* times sent again for want of a cloud ack: the timer doubles */
};

struct agent {
	struct et_agent_config *cfg;
	char *cfg_text;    /* the configuration file as read at start, for register-map changes */
	size_t cfg_len;
	char *points_sig;  /* register-map overrides now applied (JSON), NULL: as configured */
	et_ctx *tpm;
	char *serial;
	char *pem;
	char fpr[65];
	struct et_spool *spool;
	struct et_settings *settings;
	struct et_buses *buses;
	struct et_reg *reg;
	struct et_mqtt *mqtt;
	char ca_path[512];
	char username[256];
	uint32_t cred_version;
	bool online;
	int refusals;
	int last_conn_err;

	/* Credential rotation in progress: new envelope kept until the broker accepts it. */
	uint8_t *rot_blob;
	size_t rot_len;
	uint32_t rot_version;

	/* Messages published and not yet acknowledged; cursor = highest seq handed out. */
	struct inflight *infl;
	size_t n_infl, window;
	int64_t cursor;
	int64_t hold_until_ms;
	bool cloud_ack;          /* [spool] delivery = cloud-ack */
	int64_t ack_timeout_ms;  /* [spool] ack_timeout_s */
	int64_t resend_warned_ms; /* last "no acknowledgement" warning (one a minute at most) */
	struct et_ack_range *ack_ranges;
	bool epoch_warned;        /* an ack for another spool epoch was logged at info once */

	/* Readings of one poll round, accepted into the spool in one transaction. */
	struct et_spool_rec *buf;
	size_t nbuf, capbuf;
	bool disk_full;

	int64_t status_interval_ms, next_status_ms;
	uint64_t wd_usec;
	int64_t next_wd_ms;
	struct et_ctl *ctl;
	char t_telemetry[128], t_status[128], t_desired[128], t_reported[128], t_creds[128];
	char t_ack[160];
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: edgetrustd [-c FILE] [--version]\n"
		   "  -c, --config FILE  configuration (default %s)\n"
		   "  -V, --version      print the version and exit\n"
		   "  -h, --help         this text\n"
		   "See edgetrustd(8) and edgetrustd.conf(5).\n",
		ET_CFG_DEFAULT_PATH);
}

/* ---- settings ------------------------------------------------------------------------------ */

static const char *level_name(int lvl)
{
	switch (lvl) {
	case ET_LOG_ERR:
		return "err";
	case ET_LOG_WARNING:
		return "warning";
	case ET_LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

static int level_parse(const char *s)
{
	if (strcmp(s, "err") == 0)
		return ET_LOG_ERR;
	if (strcmp(s, "warning") == 0)
		return ET_LOG_WARNING;
	if (strcmp(s, "debug") == 0)
		return ET_LOG_DEBUG;
	return ET_LOG_INFO;
}

static cJSON *settings_defaults(const struct et_agent_config *cfg)
{
	cJSON *d = cJSON_CreateObject();
	char key[128];
	size_t i;

	cJSON_AddStringToObject(d, "log_level", level_name((int)cfg->agent.log_level));
	cJSON_AddNumberToObject(d, "spool.max_records", cfg->spool.max_records);
	cJSON_AddNumberToObject(d, "spool.batch", cfg->spool.batch);
	cJSON_AddNumberToObject(d, "status_interval_s", 60);
	for (i = 0; i < cfg->n_devices; i++) {
		snprintf(key, sizeof(key), "modbus.%s.poll_ms", cfg->devices[i].name);
		cJSON_AddNumberToObject(d, key, cfg->devices[i].poll_ms);
		/* null: the register map of the configuration file. */
		snprintf(key, sizeof(key), "modbus.%s.points", cfg->devices[i].name);
		cJSON_AddNullToObject(d, key);
	}
	return d;
}

/* ---- register maps changed at run time (modbus.<device>.points) ---------------------------- */

struct textbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void tb_add(struct textbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *np = realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void tb_str(struct textbuf *b, const char *s)
{
	tb_add(b, s, strlen(s));
}

/* The points override for device i: only_key/only_val when given, else the live settings. */
static const cJSON *points_override(struct agent *a, size_t i, const char *only_key,
				    const cJSON *only_val)
{
	char key[128];
	const cJSON *v;

	snprintf(key, sizeof(key), "modbus.%s.points", a->cfg->devices[i].name);
	if (only_key)
		v = strcmp(only_key, key) == 0 ? only_val : NULL;
	else
		v = et_settings_get(a->settings, key);
	return cJSON_IsArray(v) ? v : NULL;
}

/* A JSON point as INI lines; values are checked so they cannot inject sections or keys. */
static int point_ini(struct textbuf *b, const char *dev, const cJSON *pt, char *err, size_t errlen)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(pt, "name"), *it;
	char line[512];

	if (!cJSON_IsObject(pt) || !cJSON_IsString(name)) {
		snprintf(err, errlen, "each point must be an object with a \"name\"");
		return -1;
	}
	snprintf(line, sizeof(line), "[point.%s.%s]\n", dev, name->valuestring);
	tb_str(b, line);
	cJSON_ArrayForEach(it, pt)
	{
		if (strcmp(it->string, "name") == 0)
			continue;
		if (cJSON_IsString(it)) {
			if (strpbrk(it->valuestring, "\n\r[]#;=") || strpbrk(it->string, "\n\r[]#;= ")) {
				snprintf(err, errlen, "point %s: %s has characters not allowed in a value",
					 name->valuestring, it->string);
				return -1;
			}
			snprintf(line, sizeof(line), "%s = %s\n", it->string, it->valuestring);
		} else if (cJSON_IsNumber(it)) {
			snprintf(line, sizeof(line), it->valuedouble == (double)(long long)it->valuedouble
						     ? "%s = %.0f\n" : "%s = %.17g\n",
				 it->string, it->valuedouble);
		} else {
			snprintf(err, errlen, "point %s: %s must be a string or a number", name->valuestring,
				 it->string);
			return -1;
		}
		if (strpbrk(it->string, "\n\r[]#;= ")) {
			snprintf(err, errlen, "point %s: invalid key", name->valuestring);
			return -1;
		}
		tb_str(b, line);
	}
	return 0;
}

/*
 * The configuration file with the [point.<device>.*] sections of overridden devices replaced
 * by the JSON register maps, parsed by the same parser as the file (so a map from the cloud is
 * validated exactly like one in edgetrustd.conf). 0 and *ret, or -1 with err.
 */
static int build_config(struct agent *a, const char *only_key, const cJSON *only_val,
			struct et_agent_config **ret, char *err, size_t errlen)
{
	struct textbuf b = { 0 };
	const char *p = a->cfg_text, *end = a->cfg_text + a->cfg_len;
	bool skip = false;
	size_t i;
	int rc = -1;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl + 1 : end, *s = p;

		while (s < le && (*s == ' ' || *s == '\t'))
			s++;
		if (s < le && *s == '[') {
			skip = false;
			for (i = 0; i < a->cfg->n_devices; i++) {
				char pre[64];
				int n = snprintf(pre, sizeof(pre), "[point.%s.", a->cfg->devices[i].name);

				if (points_override(a, i, only_key, only_val) && (size_t)(le - s) > (size_t)n &&
				    strncmp(s, pre, (size_t)n) == 0)
					skip = true;
			}
		}
		if (!skip)
			tb_add(&b, p, (size_t)(le - p));
		if (!nl || le == end) {
			if (!skip && (le == end && (le == p || le[-1] != '\n')))
				tb_str(&b, "\n");
			break;
		}
		p = le;
	}
	for (i = 0; i < a->cfg->n_devices; i++) {
		const cJSON *pts = points_override(a, i, only_key, only_val), *pt;

		cJSON_ArrayForEach(pt, pts)
			if (point_ini(&b, a->cfg->devices[i].name, pt, err, errlen) < 0)
				goto out;
	}
	if (b.oom) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (et_agent_config_parse(b.p, b.len, "register map", ret, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	free(b.p);
	return rc;
}

static const char *check_points(const char *key, const cJSON *v, void *ud)
{
	static char reason[512];
	struct agent *a = ud;
	struct et_agent_config *c = NULL;

	if (!a->cfg_text)
		return "register maps cannot be changed (configuration text unavailable)";
	if (build_config(a, key, v, &c, reason, sizeof(reason)) < 0)
		return reason;
	et_agent_config_free(c);
	return NULL;
}

/* Applies register-map overrides when they changed: new configuration, poller reconfigured. */
static void apply_points(struct agent *a)
{
	cJSON *sig = cJSON_CreateObject();
	struct et_agent_config *c = NULL;
	char *text = NULL, err[512];
	bool any = false;
	size_t i;

	for (i = 0; i < a->cfg->n_devices; i++) {
		const cJSON *v = points_override(a, i, NULL, NULL);

		if (v) {
			cJSON_AddItemToObject(sig, a->cfg->devices[i].name, cJSON_Duplicate(v, 1));
			any = true;
		}
	}
	text = any ? cJSON_PrintUnformatted(sig) : NULL;
	cJSON_Delete(sig);
	if ((!text && !a->points_sig) || (text && a->points_sig && strcmp(text, a->points_sig) == 0)) {
		free(text);
		return;
	}
	if (!a->cfg_text || build_config(a, NULL, NULL, &c, err, sizeof(err)) < 0 ||
	    et_buses_reconfigure(a->buses, c) < 0) {
		logm(ET_LOG_ERR, "register map change not applied: %s", a->cfg_text ? err : "no configuration text");
		et_agent_config_free(c);
		free(text);
		return;
	}
	logm(ET_LOG_INFO, "register maps %s", text ? "changed by settings" : "back to the configuration file");
	et_agent_config_free(a->cfg);
	a->cfg = c;
	free(a->points_sig);
	a->points_sig = text;
}

static void apply_settings(struct agent *a)
{
	char key[128];
	size_t i;

	g_log_level = level_parse(et_settings_str(a->settings, "log_level", "info"));
	et_spool_set_max(a->spool, (uint64_t)et_settings_int(a->settings, "spool.max_records", 100000));
	a->window = (size_t)et_settings_int(a->settings, "spool.batch", 100);
	if (a->window < 1 || a->window > INFL_MAX)
		a->window = a->window < 1 ? 1 : INFL_MAX;
	a->status_interval_ms = et_settings_int(a->settings, "status_interval_s", 60) * 1000;
	if (a->buses)
		apply_points(a);
	for (i = 0; a->buses && i < a->cfg->n_devices; i++) {
		const char *n = a->cfg->devices[i].name;

		snprintf(key, sizeof(key), "modbus.%s.poll_ms", n);
		if (et_buses_set_poll_ms(a->buses, n, (unsigned)et_settings_int(a->settings, key, 1000)) < 0)
			logm(ET_LOG_WARNING, "could not apply %s", key);
	}
}

static void publish_reported(struct agent *a)
{
	char *text = et_settings_report(a->settings);

	if (text && a->mqtt && a->online)
		et_mqtt_publish(a->mqtt, a->t_reported, text, strlen(text), true, NULL);
	free(text);
}

/* ---- status -------------------------------------------------------------------------------- */

/* Counters of the device-side inputs: what the Modbus buses refused or lost, and the control
 * socket's refusals, so that an attack on them is seen in `status` and not only survived. */
static void add_local_status(cJSON *d, struct et_buses *buses, const struct et_ctl *ctl)
{
	struct et_buses_stats bs;
	struct et_ctl_stats cs;
	cJSON *m, *c;

	et_buses_get_stats(buses, &bs);
	et_ctl_get_stats(ctl, &cs);
	if (!buses)
		bs = (struct et_buses_stats){0};
	if (!ctl)
		cs = (struct et_ctl_stats){0};
	m = cJSON_AddObjectToObject(d, "modbus");
	cJSON_AddNumberToObject(m, "buses", (double)bs.buses);
	cJSON_AddNumberToObject(m, "requests", (double)bs.poll.requests);
	cJSON_AddNumberToObject(m, "failures", (double)bs.poll.failures);
	cJSON_AddNumberToObject(m, "timeouts", (double)bs.poll.timeouts);
	cJSON_AddNumberToObject(m, "bad_answers", (double)bs.poll.bad_answers);
	cJSON_AddNumberToObject(m, "queue_dropped", (double)bs.queue_dropped);
	cJSON_AddNumberToObject(m, "queue_max", (double)bs.queue_max);
	c = cJSON_AddObjectToObject(d, "control");
	cJSON_AddNumberToObject(c, "answered", (double)cs.answered);
	cJSON_AddNumberToObject(c, "busy", (double)cs.busy);
	cJSON_AddNumberToObject(c, "timed_out", (double)cs.timed_out);
	cJSON_AddNumberToObject(c, "too_long", (double)cs.too_long);
}

static char *status_json(struct agent *a, bool online)
{
	cJSON *d = cJSON_CreateObject();
	char *text;

	cJSON_AddNumberToObject(d, "v", 1);
	cJSON_AddBoolToObject(d, "online", online);
	cJSON_AddStringToObject(d, "agent_version", ET_VERSION);
	cJSON_AddNumberToObject(d, "cred_version", a->cred_version);
	cJSON_AddNumberToObject(d, "spool_depth", (double)et_spool_depth(a->spool));
	cJSON_AddNumberToObject(d, "dropped", (double)et_spool_dropped(a->spool));
	cJSON_AddNumberToObject(d, "ts", (double)wall_ms());
	if (a->disk_full)
		cJSON_AddStringToObject(d, "spool_error", "disk full: new readings are being dropped");
	cJSON_AddStringToObject(d, "state", a->reg ? "registering" : a->online ? "online" : "connecting");
	add_local_status(d, a->buses, a->ctl);
	text = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	return text;
}

static void publish_status(struct agent *a, int64_t now)
{
	char *text;

	a->next_status_ms = now + a->status_interval_ms;
	if (!a->mqtt || !a->online)
		return;
	text = status_json(a, true);
	if (text)
		et_mqtt_publish(a->mqtt, a->t_status, text, strlen(text), true, NULL);
	free(text);
}

/* ---- readings -> spool --------------------------------------------------------------------- */

static void free_buf(struct agent *a)
{
	size_t i;

	for (i = 0; i < a->nbuf; i++) {
		free((char *)a->buf[i].device);
		free((char *)a->buf[i].point);
		free((char *)a->buf[i].unit);
	}
	a->nbuf = 0;
}

static void on_reading(const struct et_reading *r, void *ud)
{
	struct agent *a = ud;
	struct et_spool_rec *rec;

	if (a->nbuf == a->capbuf) {
		size_t cap = a->capbuf ? a->capbuf * 2 : 64;
		struct et_spool_rec *nb = realloc(a->buf, cap * sizeof(*nb));

		if (!nb) {
			et_spool_count_dropped(a->spool, 1);
			return;
		}
		a->buf = nb;
		a->capbuf = cap;
	}
	rec = &a->buf[a->nbuf];
	memset(rec, 0, sizeof(*rec));
	rec->ts_ms = r->ts_ms;
	rec->device = strdup(r->device);
	rec->point = strdup(r->point);
	rec->unit = strdup(r->unit ? r->unit : "");
	rec->value = r->value;
	rec->has_value = r->quality == ET_Q_OK;
	rec->q = et_quality_name(r->quality);
	a->nbuf++;
	if (!rec->device || !rec->point || !rec->unit) {
		free_buf(a);
		et_spool_count_dropped(a->spool, 1);
	}
}

static void flush_readings(struct agent *a)
{
	int rc;

	if (!a->nbuf)
		return;
	rc = et_spool_add(a->spool, a->buf, a->nbuf, NULL);
	if (rc == 0) {
		if (a->disk_full)
			logm(ET_LOG_INFO, "spool accepts readings again");
		a->disk_full = false;
	} else {
		if (!a->disk_full)
			logm(ET_LOG_ERR, "spool: %s; %zu readings dropped (counted in status 'dropped'); "
					 "readings already in the spool are kept and sent",
			     rc == ET_SPOOL_FULL ? "disk full" : et_spool_errmsg(a->spool), a->nbuf);
		a->disk_full = true;
		et_spool_count_dropped(a->spool, a->nbuf);
	}
	free_buf(a);
}

/* ---- spool -> broker -> cloud --------------------------------------------------------------- */

struct batch {
	cJSON *records;
	int64_t lo, hi;
	int64_t limit; /* records above this seq are not taken (a resend of one message) */
};

static int add_rec(const struct et_spool_rec *r, void *ud)
{
	struct batch *b = ud;
	cJSON *o;

	if (r->seq > b->limit)
		return -1;
	o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "seq", (double)r->seq);
	cJSON_AddNumberToObject(o, "ts", (double)r->ts_ms);
	cJSON_AddStringToObject(o, "device", r->device);
	cJSON_AddStringToObject(o, "point", r->point);
	if (r->has_value)
		cJSON_AddNumberToObject(o, "value", r->value);
	else
		cJSON_AddNullToObject(o, "value");
	if (r->unit && r->unit[0])
		cJSON_AddStringToObject(o, "unit", r->unit);
	cJSON_AddStringToObject(o, "q", r->q);
	cJSON_AddItemToArray(b->records, o);
	if (!b->lo)
		b->lo = r->seq;
	b->hi = r->seq;
	return 0;
}

/*
 * Publishes up to RECS_PER_MSG spool records with after < seq <= limit as one message.
 * 1: published (*b has the range, *ret_mid the message id); 0: no such records;
 * -1: not published now (hold_until_ms set when the client refused it).
 */
static int publish_records(struct agent *a, int64_t after, int64_t limit, int64_t now,
			   struct batch *b, int *ret_mid)
{
	cJSON *doc;
	char *text;
	int n, rc;

	*b = (struct batch){ .records = cJSON_CreateArray(), .limit = limit };
	n = et_spool_peek(a->spool, after, RECS_PER_MSG, add_rec, b);
	if (n <= 0 || !b->lo) {
		cJSON_Delete(b->records);
		if (n < 0)
			logm(ET_LOG_ERR, "spool read: %s", et_spool_errmsg(a->spool));
		return n < 0 ? -1 : 0;
	}
	doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "v", 1);
	/* (epoch, seq) names a reading: a wiped spool counts from 1 again under a new epoch. */
	cJSON_AddNumberToObject(doc, "epoch", (double)et_spool_epoch(a->spool));
	cJSON_AddItemToObject(doc, "records", b->records);
	text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (!text)
		return -1;
	rc = et_mqtt_publish(a->mqtt, a->t_telemetry, text, strlen(text), false, ret_mid);
	free(text);
	if (rc != 0) {
		logm(ET_LOG_DEBUG, "publish: %s; retrying later", et_mqtt_reason(rc));
		a->hold_until_ms = now + 1000;
		return -1;
	}
	logm(ET_LOG_DEBUG, "published seq %" PRId64 "..%" PRId64 " (mid %d)", b->lo, b->hi, *ret_mid);
	return 1;
}

static void infl_remove(struct agent *a, size_t i)
{
	a->infl[i] = a->infl[--a->n_infl];
}

static void pump(struct agent *a, int64_t now)
{
	while (a->mqtt && a->online && !a->rot_blob && now >= a->hold_until_ms) {
		struct batch b;
		size_t i;
		int mid = 0, rc;

		/* First what must go again (oldest first is not needed: the cloud de-duplicates). */
		for (i = 0; i < a->n_infl && a->infl[i].state != IF_RESEND; i++)
			;
		if (i < a->n_infl) {
			struct inflight *f = &a->infl[i];

			rc = publish_records(a, f->lo - 1, f->hi, now, &b, &mid);
			if (rc < 0)
				return;
			if (rc == 0) {
				/* Nothing of it is left in the spool (acknowledged meanwhile, or dropped
				 * by the spool bound). */
				infl_remove(a, i);
				continue;
			}
			*f = (struct inflight){ .mid = mid, .lo = b.lo, .hi = b.hi, .state = IF_PUBACK,
						.tries = f->tries };
			continue;
		}
		if (a->n_infl >= a->window)
			return;
		rc = publish_records(a, a->cursor, INT64_MAX, now, &b, &mid);
		if (rc <= 0)
			return;
		a->infl[a->n_infl++] = (struct inflight){ .mid = mid, .lo = b.lo, .hi = b.hi,
							  .state = IF_PUBACK };
		a->cursor = b.hi;
	}
}

static void on_puback(struct agent *a, int mid, int rc, int64_t now)
{
	size_t i;

	for (i = 0; i < a->n_infl; i++) {
		struct inflight *f = &a->infl[i];

		if (f->state != IF_PUBACK || f->mid != mid)
			continue;
		if (rc >= 0x80) {
			/* Refused (e.g. not authorised): keep the records and try again later. */
			logm(ET_LOG_WARNING, "broker refused telemetry seq %" PRId64 "..%" PRId64 ": %s; will retry",
			     f->lo, f->hi, et_mqtt_reason(rc));
			f->state = IF_RESEND;
			a->hold_until_ms = now + 5000;
			return;
		}
		if (a->cloud_ack) {
			/* With the broker now; deleted when the cloud says it stored them. */
			f->state = IF_CLOUD;
			f->deadline_ms = now + (a->ack_timeout_ms << (f->tries < ACK_BACKOFF_SHIFT_MAX
									  ? f->tries : ACK_BACKOFF_SHIFT_MAX));
			return;
		}
		if (et_spool_ack(a->spool, f->lo, f->hi) < 0)
			logm(ET_LOG_WARNING, "spool: could not delete acknowledged seq %" PRId64 "..%" PRId64
					     " (%s); they will be sent again after a restart",
			     f->lo, f->hi, et_spool_errmsg(a->spool));
		infl_remove(a, i);
		return;
	}
}

static bool overlaps(const struct inflight *f, const struct et_ack_range *r, int n)
{
	for (int k = 0; k < n; k++)
		if (r[k].lo <= f->hi && r[k].hi >= f->lo)
			return true;
	return false;
}

/* et/v1/<serial>/telemetry/ack: the cloud stored these; they leave the spool. */
static void on_cloud_ack(struct agent *a, const uint8_t *payload, size_t len, int64_t now)
{
	char err[256];
	bool progress = false;
	int64_t epoch;
	int n, k;
	size_t i;

	if (!a->cloud_ack)
		return;
	n = et_ack_parse(a->serial, payload, len, &epoch, a->ack_ranges, ET_ACK_MAX_RANGES, err,
			 sizeof(err));
	if (n < 0) {
		logm(ET_LOG_WARNING, "telemetry ack from the cloud ignored: %s", err);
		return;
	}
	if (epoch != et_spool_epoch(a->spool)) {
		/* Expected once after the spool was wiped or replaced: the retained ack names the
		 * old spool's readings, whose numbers the new spool hands out again. */
		logm(a->epoch_warned ? ET_LOG_DEBUG : ET_LOG_INFO,
		     "telemetry ack for spool epoch %" PRId64 " ignored: this spool's epoch is %" PRId64,
		     epoch, et_spool_epoch(a->spool));
		a->epoch_warned = true;
		return;
	}
	for (k = 0; k < n; k++) {
		if (et_spool_ack(a->spool, a->ack_ranges[k].lo, a->ack_ranges[k].hi) < 0) {
			logm(ET_LOG_WARNING, "spool: could not delete seq %" PRId64 "..%" PRId64
					     " acknowledged by the cloud (%s); they will be sent again",
			     a->ack_ranges[k].lo, a->ack_ranges[k].hi, et_spool_errmsg(a->spool));
			return;
		}
	}
	/* A message is done when none of its records is left (ranges need not match messages:
	 * the cloud merges a batch's numbers, and a retained ack may be an older one). */
	for (i = 0; i < a->n_infl;) {
		struct inflight *f = &a->infl[i];

		if (overlaps(f, a->ack_ranges, n) && et_spool_count(a->spool, f->lo, f->hi) == 0) {
			logm(ET_LOG_DEBUG, "cloud stored seq %" PRId64 "..%" PRId64, f->lo, f->hi);
			infl_remove(a, i);
			progress = true;
			continue;
		}
		i++;
	}
	if (!progress)
		return;
	/* The cloud is there: messages still waiting (sent while it was away, they are likely
	 * lost) go again after the configured timeout, not after their backed-off one. */
	for (i = 0; i < a->n_infl; i++) {
		a->infl[i].tries = 0;
		if (a->infl[i].state == IF_CLOUD && a->infl[i].deadline_ms > now + a->ack_timeout_ms)
			a->infl[i].deadline_ms = now + a->ack_timeout_ms;
	}
}

/* Messages the cloud did not acknowledge in time go again, each with a longer timer next time. */
static void check_ack_deadlines(struct agent *a, int64_t now)
{
	int64_t lo = INT64_MAX, hi = 0;
	size_t i, n = 0;

	for (i = 0; i < a->n_infl; i++) {
		struct inflight *f = &a->infl[i];

		if (f->state != IF_CLOUD || f->deadline_ms > now)
			continue;
		f->state = IF_RESEND;
		f->tries++;
		lo = f->lo < lo ? f->lo : lo;
		hi = f->hi > hi ? f->hi : hi;
		n++;
	}
	if (!n)
		return;
	logm(a->resend_warned_ms && now - a->resend_warned_ms < 60000 ? ET_LOG_DEBUG : ET_LOG_WARNING,
	     "no acknowledgement from the cloud for %zu messages (seq %" PRId64 "..%" PRId64
	     ") in time; sending them again", n, lo, hi);
	if (!a->resend_warned_ms || now - a->resend_warned_ms >= 60000)
		a->resend_warned_ms = now;
}

static int64_t next_ack_deadline(struct agent *a)
{
	int64_t t = INT64_MAX;

	for (size_t i = 0; i < a->n_infl; i++)
		if (a->infl[i].state == IF_CLOUD && a->infl[i].deadline_ms < t)
			t = a->infl[i].deadline_ms;
	return t;
}

/* After a (re)connect: what the broker took and the cloud did not acknowledge may be lost
 * (docs/protocol.md, "Delivery end to end"), so it goes again. */
static void resend_unacked(struct agent *a)
{
	size_t i, n = 0;

	for (i = 0; i < a->n_infl; i++)
		if (a->infl[i].state == IF_CLOUD) {
			a->infl[i].state = IF_RESEND;
			n++;
		}
	if (n)
		logm(ET_LOG_INFO, "sending again %zu messages the cloud has not acknowledged", n);
}

/* ---- credentials --------------------------------------------------------------------------- */

static int write_ca(struct agent *a, const char *pem)
{
	char err[512];

	if (et_atomic_write(a->cfg->agent.data_dir, "broker-ca.pem", pem, strlen(pem), err,
			    sizeof(err)) < 0) {
		logm(ET_LOG_ERR, "storing the broker CA from the credentials: %s", err);
		return -1;
	}
	snprintf(a->ca_path, sizeof(a->ca_path), "%s/broker-ca.pem", a->cfg->agent.data_dir);
	return 0;
}

/* Logs in with c (new client, or the running one with a new login). Wipes c. */
static int device_login(struct agent *a, struct et_creds *c)
{
	const struct et_cfg_broker *b = &a->cfg->broker;
	char err[512];
	int rc = 0;

	snprintf(a->username, sizeof(a->username), "%s", c->username);
	if (c->client_id && strcmp(c->client_id, a->serial) != 0)
		logm(ET_LOG_WARNING, "credentials name client id '%s'; using the serial '%s' as the protocol requires",
		     c->client_id, a->serial);
	if (c->host && strcmp(c->host, b->host) != 0)
		logm(ET_LOG_INFO, "credentials name broker %s:%d; connecting to the configured %s:%u",
		     c->host, c->port, b->host, (unsigned)b->port);
	if (!a->mqtt) {
		static const char will[] = "{\"v\":1,\"online\":false}";
		struct et_mqtt_opts o = {
			.host = b->host,
			.port = (int)b->port,
			.tls = b->tls,
			.ca_file = b->ca_file[0] ? b->ca_file : NULL,
			.client_id = a->serial,
			.username = c->username,
			.keepalive_s = (int)b->keepalive_s,
			.reconnect_min_s = (int)b->reconnect_min_s,
			.reconnect_max_s = (int)b->reconnect_max_s,
			.persistent = true,
			.session_expiry_s = SESSION_EXPIRY_S,
			.will_topic = a->t_status,
			.will_payload = will,
			.subs = { a->t_desired, a->t_creds, a->cloud_ack ? a->t_ack : NULL, NULL },
		};
		if (b->tls && !b->ca_file[0] && c->ca_pem && write_ca(a, c->ca_pem) == 0)
			o.ca_file = a->ca_path;
		if (et_mqtt_new(&o, &a->mqtt, err, sizeof(err)) < 0) {
			logm(ET_LOG_ERR, "MQTT client: %s", err);
			rc = -1;
			goto out;
		}
		rc = et_mqtt_start(a->mqtt, (const char *)et_secret_data(c->password));
	} else {
		rc = et_mqtt_restart(a->mqtt, c->username, (const char *)et_secret_data(c->password));
	}
	if (rc != 0)
		logm(ET_LOG_ERR, "MQTT start: %s", et_mqtt_reason(rc));
	logm(ET_LOG_INFO, "logging in to %s:%u as %s (credential version %u)", b->host,
	     (unsigned)b->port, c->username, c->cred_version);
out:
	et_creds_clear(c);
	return rc;
}

static int read_bootstrap_password(struct agent *a, et_secret **ret)
{
	const char *path = a->cfg->broker.bootstrap_password_file;
	et_secret *raw = NULL, *pw = NULL;
	char err[512];
	size_t n;
	int rc;

	if (!path[0]) {
		logm(ET_LOG_ERR, "this device is not registered yet and [broker] bootstrap_password_file is not set");
		return -1;
	}
	if (et_secret_file_check(path, err, sizeof(err)) < 0) {
		logm(ET_LOG_ERR, "bootstrap_password_file: %s", err);
		return -1;
	}
	rc = et_secret_read_file(path, 1024, &raw);
	if (rc < 0) {
		logm(ET_LOG_ERR, "bootstrap_password_file %s: %s", path, et_errmsg());
		return -1;
	}
	n = et_secret_len(raw);
	while (n && (et_secret_data(raw)[n - 1] == '\n' || et_secret_data(raw)[n - 1] == '\r'))
		n--;
	rc = et_secret_new(n + 1, &pw);
	if (rc == 0) {
		memcpy(et_secret_data(pw), et_secret_data(raw), n);
		et_secret_data(pw)[n] = 0;
		*ret = pw;
	}
	et_secret_free(raw);
	return rc < 0 ? -1 : 0;
}

static int start_registration(struct agent *a, const char *why)
{
	const struct et_cfg_broker *b = &a->cfg->broker;
	et_secret *pw = NULL;
	char err[512];
	int rc;

	logm(ET_LOG_INFO, "registering: %s", why);
	if (read_bootstrap_password(a, &pw) < 0)
		return -1;
	struct et_reg_params p = {
		.tcti = a->cfg->agent.tcti,
		.key_handle = a->cfg->agent.key_handle,
		.serial = a->serial,
		.pubkey_pem = a->pem,
		.fingerprint = a->fpr,
		.mqtt = {
			.host = b->host,
			.port = (int)b->port,
			.tls = b->tls,
			.ca_file = b->ca_file[0] ? b->ca_file : NULL,
			.username = b->bootstrap_username,
			.keepalive_s = (int)b->keepalive_s,
			.reconnect_min_s = (int)b->reconnect_min_s,
			.reconnect_max_s = (int)b->reconnect_max_s,
		},
		.bootstrap_password = (const char *)et_secret_data(pw),
		.min_cred_version = a->cred_version,
		.backoff_max_s = (int)a->cfg->agent.register_backoff_max_s,
		.log = log_cb,
	};
	rc = et_reg_new(&p, &a->reg, err, sizeof(err));
	et_secret_free(pw);
	if (rc < 0) {
		logm(ET_LOG_ERR, "registration: %s", err);
		return -1;
	}
	et_sd_notify("STATUS=registering: waiting for the operator to accept this device");
	return 0;
}

static void registration_done(struct agent *a, uint8_t *blob, size_t len, struct et_creds *c)
{
	char err[512];

	if (et_atomic_write(a->cfg->agent.data_dir, ET_CRED_FILE, blob, len, err, sizeof(err)) < 0)
		logm(ET_LOG_ERR, "could not store the credential envelope (%s); it is used for this run only "
				 "and the device registers again at the next start", err);
	a->cred_version = c->cred_version;
	free(blob);
	et_reg_free(a->reg);
	a->reg = NULL;
	a->refusals = 0;
	device_login(a, c);
}

/* A rotation on et/v1/<serial>/creds. */
static void on_creds(struct agent *a, const uint8_t *payload, size_t len)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)payload, len);
	const cJSON *cv = cJSON_GetObjectItemCaseSensitive(doc, "cred_version");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(doc, "envelope");
	uint8_t *blob = NULL;
	size_t blen;
	et_envelope_info info;
	struct et_creds c = { 0 };
	char err[512];

	/* Range first: converting an out-of-range double to uint32_t is undefined behaviour. */
	if (!cJSON_IsObject(doc) || !cJSON_IsNumber(cv) || !cJSON_IsString(env) ||
	    cv->valuedouble < 0 || cv->valuedouble > 4294967295.0) {
		logm(ET_LOG_WARNING, "credential rotation message malformed; ignored");
		goto out;
	}
	if ((uint32_t)cv->valuedouble == a->cred_version) {
		logm(ET_LOG_DEBUG, "credential version %u is the current one", a->cred_version);
		goto out;
	}
	if (et_b64_decode(env->valuestring, &blob, &blen) < 0 ||
	    et_envelope_inspect(blob, blen, &info) < 0) {
		logm(ET_LOG_WARNING, "credential rotation: envelope malformed; ignored");
		goto out;
	}
	if (info.cred_version <= a->cred_version || cv->valuedouble < a->cred_version) {
		logm(ET_LOG_WARNING, "credential rotation refused: version %u is not newer than the current %u (replay?)",
		     info.cred_version, a->cred_version);
		goto out;
	}
	if (et_creds_open(a->cfg->agent.tcti, a->cfg->agent.key_handle, a->serial, blob, blen, &c, err,
			  sizeof(err)) < 0) {
		logm(ET_LOG_WARNING, "credential rotation refused: the envelope does not open: %s", err);
		goto out;
	}
	logm(ET_LOG_INFO, "credential rotation to version %u: logging in with the new credentials",
	     info.cred_version);
	free(a->rot_blob);
	a->rot_blob = blob;
	a->rot_len = blen;
	a->rot_version = info.cred_version;
	blob = NULL;
	a->online = false;
	device_login(a, &c);
out:
	free(blob);
	cJSON_Delete(doc);
}

/* Opens the stored envelope; 0 and *c, 1 when absent, -1 with *why when it does not open. */
static int open_stored(struct agent *a, struct et_creds *c, char *why, size_t whylen)
{
	uint8_t *blob = NULL;
	size_t len;
	char err[512];
	int rc;

	rc = et_safe_read(a->cfg->agent.data_dir, ET_CRED_FILE, 2 << 20, &blob, &len, err, sizeof(err));
	if (rc == 1)
		return 1;
	if (rc < 0) {
		snprintf(why, whylen, "stored credentials unusable: %s", err);
		return -1;
	}
	rc = et_creds_open(a->cfg->agent.tcti, a->cfg->agent.key_handle, a->serial, blob, len, c, err, sizeof(err));
	free(blob);
	if (rc < 0) {
		snprintf(why, whylen, "the stored credential envelope no longer opens in this TPM (%s)%s", err,
			 rc == ET_E_ENVELOPE_FOREIGN || rc == ET_E_CRYPTO || rc == ET_E_KEY_ABSENT
				 ? "; the TPM was cleared or the device key replaced"
				 : "");
		return rc == ET_E_TPM_UNREACHABLE || rc == ET_E_TPM_RETRY || rc == ET_E_TIMEOUT ? -2 : -1;
	}
	return 0;
}

static void rotation_failed(struct agent *a, const char *reason)
{
	struct et_creds c = { 0 };
	char why[1024];

	logm(ET_LOG_ERR, "the broker refused the rotated credentials (version %u): %s; going back to version %u",
	     a->rot_version, reason, a->cred_version);
	free(a->rot_blob);
	a->rot_blob = NULL;
	if (open_stored(a, &c, why, sizeof(why)) == 0) {
		device_login(a, &c);
	} else {
		et_mqtt_free(a->mqtt);
		a->mqtt = NULL;
		start_registration(a, why);
	}
}

static void handle_mqtt(struct agent *a, int64_t now)
{
	struct et_mqtt_ev *ev;
	bool began = false;
	char err[512];

	while (a->mqtt && (ev = et_mqtt_next(a->mqtt))) {
		switch (ev->type) {
		case ET_MQTT_EV_CONNECTED:
			a->online = true;
			a->refusals = 0;
			a->last_conn_err = 0;
			logm(ET_LOG_INFO, "connected to the broker as %s (session %s)", a->username,
			     ev->session_present ? "resumed" : "new");
			if (a->rot_blob) {
				if (et_atomic_write(a->cfg->agent.data_dir, ET_CRED_FILE, a->rot_blob,
						    a->rot_len, err, sizeof(err)) < 0)
					logm(ET_LOG_ERR, "could not store the rotated envelope: %s", err);
				else
					logm(ET_LOG_INFO, "credentials rotated to version %u", a->rot_version);
				a->cred_version = a->rot_version;
				free(a->rot_blob);
				a->rot_blob = NULL;
			}
			et_sd_notify("STATUS=online");
			if (a->cloud_ack)
				resend_unacked(a);
			publish_status(a, now);
			publish_reported(a);
			break;
		case ET_MQTT_EV_REFUSED:
			a->online = false;
			if (a->rot_blob) {
				rotation_failed(a, et_mqtt_reason(ev->rc));
				break;
			}
			logm(ET_LOG_ERR, "the broker refused the device login: %s", et_mqtt_reason(ev->rc));
			/* Bad user name or password (0x86), not authorised (0x87), banned (0x8A):
			 * the credentials were rotated while we were away or revoked. Registration
			 * with the same key gets the current envelope (or says "revoked"). */
			if ((ev->rc == 0x86 || ev->rc == 0x87 || ev->rc == 0x8A) && ++a->refusals >= 2) {
				et_mqtt_ev_free(ev);
				et_mqtt_free(a->mqtt);
				a->mqtt = NULL;
				a->n_infl = 0;
				a->cursor = 0;
				start_registration(a, "the broker refuses our credentials");
				return;
			}
			break;
		case ET_MQTT_EV_DISCONNECTED:
			if (a->online)
				logm(ET_LOG_WARNING, "connection to the broker lost: %s; reconnecting",
				     et_mqtt_reason(ev->rc));
			else if (ev->rc != a->last_conn_err)
				/* Once per distinct reason, not at every retry. */
				logm(ET_LOG_WARNING, "cannot connect to the broker %s:%u: %s%s; retrying",
				     a->cfg->broker.host, (unsigned)a->cfg->broker.port, et_mqtt_reason(ev->rc),
				     ev->rc == MOSQ_ERR_TLS ? " (check ca_file and that the broker's certificate "
							      "names the configured host)" : "");
			a->last_conn_err = ev->rc;
			a->online = false;
			et_sd_notify("STATUS=offline: reconnecting");
			break;
		case ET_MQTT_EV_PUBACK:
			if (!began)
				began = et_spool_begin(a->spool) == 0;
			on_puback(a, ev->mid, ev->rc, now);
			break;
		case ET_MQTT_EV_MESSAGE:
			if (strcmp(ev->topic, a->t_desired) == 0) {
				int rc = et_settings_desired(a->settings, (const char *)ev->payload, ev->len,
							     err, sizeof(err));
				if (rc < 0) {
					logm(ET_LOG_WARNING, "settings from the cloud refused: %s", err);
				} else if (rc == 1) {
					logm(ET_LOG_INFO, "settings from the cloud applied");
					apply_settings(a);
					publish_reported(a);
				}
			} else if (strcmp(ev->topic, a->t_creds) == 0) {
				on_creds(a, ev->payload, ev->len);
			} else if (strcmp(ev->topic, a->t_ack) == 0) {
				if (!began)
					began = et_spool_begin(a->spool) == 0;
				on_cloud_ack(a, ev->payload, ev->len, now);
			}
			break;
		}
		et_mqtt_ev_free(ev);
	}
	if (began && et_spool_commit(a->spool) < 0)
		logm(ET_LOG_WARNING, "spool: %s", et_spool_errmsg(a->spool));
}

/* ---- control socket (edgetrust config) ----------------------------------------------------- */

static cJSON *ctl_request(struct agent *a, const cJSON *req)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
	cJSON *res = cJSON_CreateObject();
	char err[512];

	if (!cJSON_IsString(op)) {
		cJSON_AddBoolToObject(res, "ok", false);
		cJSON_AddStringToObject(res, "error", "missing \"op\"");
		return res;
	}
	if (strcmp(op->valuestring, "list") == 0 || strcmp(op->valuestring, "get") == 0) {
		char *rep = et_settings_report(a->settings);
		cJSON *r = rep ? cJSON_Parse(rep) : NULL;
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "key");

		free(rep);
		if (strcmp(op->valuestring, "get") == 0) {
			const cJSON *v = cJSON_IsString(key) ? et_settings_get(a->settings, key->valuestring) : NULL;

			cJSON_Delete(r);
			cJSON_AddBoolToObject(res, "ok", v != NULL);
			if (v)
				cJSON_AddItemToObject(res, "value", cJSON_Duplicate(v, 1));
			else
				cJSON_AddStringToObject(res, "error", "unknown key");
			return res;
		}
		cJSON_AddBoolToObject(res, "ok", r != NULL);
		if (r)
			cJSON_AddItemToObject(res, "report", r);
		return res;
	}
	if (strcmp(op->valuestring, "set") == 0) {
		const cJSON *patch = cJSON_GetObjectItemCaseSensitive(req, "settings");
		char *rep;
		int rc;

		if (!cJSON_IsObject(patch)) {
			cJSON_AddBoolToObject(res, "ok", false);
			cJSON_AddStringToObject(res, "error", "missing \"settings\" object");
			return res;
		}
		rc = et_settings_local(a->settings, patch, err, sizeof(err));
		if (rc < 0) {
			cJSON_AddBoolToObject(res, "ok", false);
			cJSON_AddStringToObject(res, "error", err);
			return res;
		}
		logm(ET_LOG_INFO, "settings changed locally%s", rc ? "" : " (some keys rejected)");
		apply_settings(a);
		publish_reported(a);
		rep = et_settings_report(a->settings);
		cJSON_AddBoolToObject(res, "ok", rc == 1);
		if (rep)
			cJSON_AddItemToObject(res, "report", cJSON_Parse(rep));
		free(rep);
		return res;
	}
	if (strcmp(op->valuestring, "status") == 0) {
		char *st = status_json(a, a->online);

		cJSON_AddBoolToObject(res, "ok", st != NULL);
		if (st)
			cJSON_AddItemToObject(res, "status", cJSON_Parse(st));
		free(st);
		return res;
	}
	cJSON_AddBoolToObject(res, "ok", false);
	cJSON_AddStringToObject(res, "error", "unknown op (list, get, set, status)");
	return res;
}

/* The control socket's handler (ctl.h): one request line in, one JSON answer out. */
static char *ctl_answer(const char *line, size_t len, void *ud)
{
	cJSON *req = cJSON_ParseWithLength(line, len), *res;
	char *out;

	if (!cJSON_IsObject(req)) {
		res = cJSON_CreateObject();
		cJSON_AddBoolToObject(res, "ok", false);
		cJSON_AddStringToObject(res, "error", "request is not a JSON object");
	} else {
		res = ctl_request(ud, req);
	}
	out = cJSON_PrintUnformatted(res);
	cJSON_Delete(req);
	cJSON_Delete(res);
	return out;
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* Serial and device key, read (the key created when absent) in the TPM helper (tpmjob.h). */
static int setup_identity(struct agent *a)
{
	const struct et_cfg_agent *c = &a->cfg->agent;
	struct et_tpm_identity id = { 0 };
	enum et_tpmjob_step step = ET_TPMJOB_HELPER;
	char msg[512];
	int rc;

	et_tpmjob_set_timeouts(c->tpm_timeout_ms, c->tpm_keygen_timeout_ms);
	et_tpmjob_set_tcti_module(c->tcti_module);
	rc = et_tpmjob_identity(c->tcti, c->serial_index, c->key_handle, &id, &step, msg, sizeof(msg));
	if (rc < 0 && step == ET_TPMJOB_SERIAL && (rc == ET_E_NV_UNDEFINED || rc == ET_E_NV_UNWRITTEN)) {
		logm(ET_LOG_ERR, "this device has no serial number in TPM NV index 0x%08x; run "
				 "`edgetrust provision --serial SERIAL` first",
		     c->serial_index);
		return EXIT_NOT_PROVISIONED;
	}
	if (rc < 0) {
		if (step == ET_TPMJOB_SERIAL)
			logm(ET_LOG_ERR, "reading the serial number: %s", msg);
		else if (step == ET_TPMJOB_KEY)
			logm(ET_LOG_ERR, "device key at 0x%08x: %s", c->key_handle, msg);
		else if (step == ET_TPMJOB_PUBLIC)
			logm(ET_LOG_ERR, "reading the device public key: %s", msg);
		else
			logm(ET_LOG_ERR, "cannot open the TPM (%s): %s", c->tcti, msg);
		return step == ET_TPMJOB_KEY && rc == ET_E_KEY_TYPE ? EXIT_KEY : EXIT_TPM;
	}
	a->serial = id.serial;
	a->pem = id.pem;
	memcpy(a->fpr, id.fpr, sizeof(a->fpr));
	logm(ET_LOG_INFO, "serial %s, device key %.16s...", a->serial, a->fpr);
	return 0;
}

static int64_t min64(int64_t x, int64_t y)
{
	return x < y ? x : y;
}

static int run(struct agent *a, const sigset_t *origmask)
{
	struct et_creds c = { 0 };
	char why[1024], err[512];
	struct pollfd *fds;
	int rc;

	rc = et_buses_new(a->cfg, a->cfg->agent.modbus_queue_max, log_cb, NULL, &a->buses);
	if (rc < 0) {
		logm(ET_LOG_ERR, "Modbus buses: %s", et_strerror(rc));
		return EXIT_CONFIG;
	}
	apply_settings(a);
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", a->cfg->agent.data_dir, CTL_SOCKET);
		if (et_ctl_open(path, a->cfg->agent.control_clients_max,
				a->cfg->agent.control_timeout_ms, ctl_answer, a, &a->ctl, err,
				sizeof(err)) < 0)
			logm(ET_LOG_WARNING, "%s; `edgetrust config` disabled", err);
	}
	rc = open_stored(a, &c, why, sizeof(why));
	if (rc == -2) {
		logm(ET_LOG_ERR, "%s", why);
		return EXIT_TPM;
	}
	if (rc == 0) {
		a->cred_version = c.cred_version;
		device_login(a, &c);
	} else if (start_registration(a, rc == 1 ? "no stored credentials (first start)" : why) < 0) {
		return EXIT_CONFIG;
	}
	/* The MQTT or registration fd, the buses' eventfd, the control socket and its clients. */
	fds = calloc(2 + et_ctl_pollfds_max(a->ctl), sizeof(*fds));
	if (!fds) {
		logm(ET_LOG_ERR, "out of memory");
		return EXIT_INTERNAL;
	}
	a->wd_usec = et_sd_watchdog_usec();
	et_sd_notify("READY=1");
	logm(ET_LOG_INFO, "running");
	while (!g_stop) {
		int64_t now = mono_ms(), wake;
		nfds_t nfds = 0, ctl_first;
		struct timespec ts;
		uint64_t lost;

		/* What the bus workers polled (never a wait: they queue, we take). */
		if (et_buses_drain(a->buses, on_reading, a))
			flush_readings(a);
		lost = et_buses_take_dropped(a->buses);
		if (lost)
			et_spool_count_dropped(a->spool, lost);
		if (a->reg) {
			uint8_t *blob = NULL;
			size_t len = 0;

			if (et_reg_step(a->reg, now, &blob, &len, &c) == 1)
				registration_done(a, blob, len, &c);
		}
		handle_mqtt(a, now);
		check_ack_deadlines(a, now);
		pump(a, now);
		if (now >= a->next_status_ms)
			publish_status(a, now);
		if (a->wd_usec && now >= a->next_wd_ms) {
			et_sd_notify("WATCHDOG=1");
			a->next_wd_ms = now + (int64_t)(a->wd_usec / 2000);
		}

		wake = min64(et_ctl_next_deadline(a->ctl), a->next_status_ms);
		if (a->reg)
			wake = min64(wake, et_reg_next_ms(a->reg));
		if (a->wd_usec)
			wake = min64(wake, a->next_wd_ms);
		if (a->hold_until_ms > now)
			wake = min64(wake, a->hold_until_ms);
		wake = min64(wake, next_ack_deadline(a));
		if (a->reg)
			fds[nfds++] = (struct pollfd){ .fd = et_reg_fd(a->reg), .events = POLLIN };
		else if (a->mqtt)
			fds[nfds++] = (struct pollfd){ .fd = et_mqtt_fd(a->mqtt), .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = et_buses_fd(a->buses), .events = POLLIN };
		ctl_first = nfds;
		nfds += et_ctl_pollfds(a->ctl, fds + nfds);
		wake -= now;
		if (wake < 0)
			wake = 0;
		if (wake > 1000)
			wake = 1000;
		ts.tv_sec = wake / 1000;
		ts.tv_nsec = (wake % 1000) * 1000000L;
		rc = ppoll(fds, nfds, &ts, origmask);
		if (rc < 0)
			for (nfds_t i = 0; i < nfds; i++)
				fds[i].revents = 0;
		et_ctl_handle(a->ctl, fds + ctl_first, nfds - ctl_first, mono_ms());
	}
	free(fds);
	logm(ET_LOG_INFO, "stopping");
	et_sd_notify("STOPPING=1");
	(void)err;
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = ET_CFG_DEFAULT_PATH;
	struct agent a = { 0 };
	cJSON_Hooks hooks = { .malloc_fn = malloc, .free_fn = wiping_free };
	struct rlimit no_core = { 0, 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, origmask;
	char err[1024];
	int opt, rc, code = EXIT_INTERNAL;

	/* No core dumps, no ptrace by other users, private files: secrets pass through here. */
	prctl(PR_SET_DUMPABLE, 0);
	setrlimit(RLIMIT_CORE, &no_core);
	/* glibc overwrites every block it frees: libmosquitto frees its copies of the bootstrap
	 * and device passwords without wiping them (mosquitto_destroy, _username_pw_set), and
	 * they stayed readable in the heap for the life of the process. */
	mallopt(M_PERTURB, 0x5a);
	/* One malloc arena: the MQTT thread's allocations (TLS included) share the main heap
	 * instead of keeping a second, mostly empty one resident (docs/performance.md). */
	mallopt(M_ARENA_MAX, 1);
	umask(077);
	/* tpm2-tss prints its own errors to stderr; ours say the same with the remedy. */
	setenv("TSS2_LOG", "all+NONE", 0);
	g_journal = getenv("JOURNAL_STREAM") != NULL;
	cJSON_InitHooks(&hooks);
	if (argc == 2 && strcmp(argv[1], ET_TPMJOB_ARG) == 0)
		return et_tpmjob_serve(STDIN_FILENO);

	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'V':
			printf("edgetrustd %s\n", ET_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &origmask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigdelset(&origmask, SIGTERM);
	sigdelset(&origmask, SIGINT);
	sigdelset(&origmask, SIGHUP);
	et_log_set(log_cb, NULL);
	et_tpmjob_set_log(log_cb, NULL);

	rc = et_agent_config_load(config_path, &a.cfg, err, sizeof(err));
	if (rc < 0) {
		logm(ET_LOG_ERR, "%s", err);
		return EXIT_CONFIG;
	}
	g_log_level = (int)a.cfg->agent.log_level;
	{
		/* Kept for register-map changes from settings (validated by the same parser);
		 * read like the configuration itself (lib/file.c: regular file, bounded, sized to
		 * the file since M_PERTURB makes every allocated byte resident). */
		uint8_t *text = NULL;

		if (et_file_read(config_path, 0, "configuration", ET_CFG_MAX_FILE, &text,
				 &a.cfg_len) == 0)
			a.cfg_text = (char *)text;
	}
	if (!a.cfg->broker.host[0]) {
		logm(ET_LOG_ERR, "%s: [broker] host is not set", config_path);
		code = EXIT_CONFIG;
		goto out;
	}
	if (!a.cfg->broker.tls)
		logm(ET_LOG_WARNING, "TLS is off ([broker] tls = false): passwords and data cross the network "
				     "in clear; use this only on loopback for tests");
	if (et_datadir_check(a.cfg->agent.data_dir, err, sizeof(err)) < 0) {
		logm(ET_LOG_ERR, "%s", err);
		code = EXIT_DATA_DIR;
		goto out;
	}
	code = setup_identity(&a);
	if (code != 0)
		goto out;
	snprintf(a.t_telemetry, sizeof(a.t_telemetry), "et/v1/%s/telemetry", a.serial);
	snprintf(a.t_status, sizeof(a.t_status), "et/v1/%s/status", a.serial);
	snprintf(a.t_desired, sizeof(a.t_desired), "et/v1/%s/settings/desired", a.serial);
	snprintf(a.t_reported, sizeof(a.t_reported), "et/v1/%s/settings/reported", a.serial);
	snprintf(a.t_creds, sizeof(a.t_creds), "et/v1/%s/creds", a.serial);
	snprintf(a.t_ack, sizeof(a.t_ack), "et/v1/%s/telemetry/ack", a.serial);
	a.cloud_ack = a.cfg->spool.delivery == ET_DELIVERY_CLOUD_ACK;
	a.ack_timeout_ms = (int64_t)a.cfg->spool.ack_timeout_s * 1000;
	logm(ET_LOG_INFO, "readings leave the spool on %s",
	     a.cloud_ack ? "the cloud's acknowledgement (delivery = cloud-ack)"
			 : "the broker's PUBACK (delivery = puback)");

	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/spool.db", a.cfg->agent.data_dir);
		if (et_spool_open(path, a.cfg->spool.max_records, &a.spool, err, sizeof(err)) < 0) {
			logm(ET_LOG_ERR, "spool: %s", err);
			code = EXIT_SPOOL;
			goto out;
		}
		logm(ET_LOG_INFO, "spool epoch %" PRId64 ", %" PRIu64 " readings waiting",
		     et_spool_epoch(a.spool), et_spool_depth(a.spool));
	}
	rc = et_settings_open(a.cfg->agent.data_dir, settings_defaults(a.cfg), &a.settings, err,
			      sizeof(err));
	if (rc < 0) {
		logm(ET_LOG_ERR, "settings: %s", err);
		code = EXIT_DATA_DIR;
		goto out;
	}
	if (rc == 1)
		logm(ET_LOG_WARNING, "settings: %s", err);
	et_settings_set_checker(a.settings, check_points, &a);
	a.infl = calloc(INFL_MAX, sizeof(*a.infl));
	a.ack_ranges = calloc(ET_ACK_MAX_RANGES, sizeof(*a.ack_ranges));
	if (!a.infl || !a.ack_ranges) {
		code = EXIT_INTERNAL;
		goto out;
	}
	code = run(&a, &origmask);
out:
	if (a.mqtt) {
		/* Tell the cloud at once (the will), rather than after the keepalive runs out. */
		et_mqtt_stop(a.mqtt, true);
		et_mqtt_free(a.mqtt);
	}
	et_reg_free(a.reg);
	et_ctl_free(a.ctl);
	/* Before the spool and settings: the workers are joined here and queue nothing more. */
	et_buses_free(a.buses);
	free_buf(&a);
	free(a.buf);
	free(a.infl);
	free(a.ack_ranges);
	free(a.rot_blob);
	et_settings_free(a.settings);
	et_spool_free(a.spool);
	free(a.pem);
	free(a.serial);
	et_ctx_free(a.tpm);
	et_agent_config_free(a.cfg);
	free(a.cfg_text);
	free(a.points_sig);
	return code;
}
