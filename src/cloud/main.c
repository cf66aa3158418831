/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrust-cloud: operator command line and the `serve` service. Subcommands are a table;
 * each has its own options and --help. Exit codes are in exitcodes.h (docs/exit-codes.md).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "activation.h"
#include "brokerconf.h"
#include "candidates.h"
#include "config.h"
#include "dynsec.h"
#include "edgetrust/edgetrust.h"
#include "exitcodes.h"
#include "limits.h"
#include "log.h"
#include "proto.h"
#include "refusal.h"
#include "registry.h"
#include "serve.h"
#include "text.h"

#define DEFAULT_DB "/var/lib/edgetrust-cloud/registry.db"
#define STR_(x) #x
#define STR(x) STR_(x)

struct cmd;
struct args {
	const struct cmd *cmd;
	const char *db;
	bool json;
	bool force;
	const char *dur;
	const char *since;
	const char *state;
	const char *dir;
	const char *plugin;
	const char *key; /* accept --key */
	long limit;
	int argc;       /* positional arguments */
	char **argv;
	struct serve_opts serve;
};

enum {
	O_DB = 1000, O_JSON, O_FOR, O_SINCE, O_STATE, O_DIR, O_FORCE, O_LIMIT, O_LOG,
	O_INSTANCE, O_BHOST, O_BPORT, O_BUSER, O_BPWF, O_BTLS, O_BCAFILE, O_BCAPATH, O_PHOST,
	O_PPORT, O_PTLS, O_PNOTLS, O_DEVCA, O_AUTO, O_BATCH, O_POLL, O_ACCOUNTS, O_PLUGIN, O_HELP,
	O_TRATE, O_TBURST, O_TBYTES, O_TDEVS,
	O_KEY, O_MAXCAND, O_CANDIV,
};

struct cmd {
	const char *name;
	int (*fn)(struct args *a);
	int min_args, max_args;
	const char *synopsis;
	const char *help;
	const int *opts; /* allowed option ids, 0-terminated */
};

static const struct option all_options[] = {
	{ "db", required_argument, NULL, O_DB },
	{ "json", no_argument, NULL, O_JSON },
	{ "for", required_argument, NULL, O_FOR },
	{ "since", required_argument, NULL, O_SINCE },
	{ "state", required_argument, NULL, O_STATE },
	{ "dir", required_argument, NULL, O_DIR },
	{ "force", no_argument, NULL, O_FORCE },
	{ "limit", required_argument, NULL, O_LIMIT },
	{ "log-level", required_argument, NULL, O_LOG },
	{ "instance", required_argument, NULL, O_INSTANCE },
	{ "broker-host", required_argument, NULL, O_BHOST },
	{ "broker-port", required_argument, NULL, O_BPORT },
	{ "broker-user", required_argument, NULL, O_BUSER },
	{ "broker-password-file", required_argument, NULL, O_BPWF },
	{ "broker-tls", no_argument, NULL, O_BTLS },
	{ "broker-cafile", required_argument, NULL, O_BCAFILE },
	{ "broker-capath", required_argument, NULL, O_BCAPATH },
	{ "public-host", required_argument, NULL, O_PHOST },
	{ "public-port", required_argument, NULL, O_PPORT },
	{ "public-tls", no_argument, NULL, O_PTLS },
	{ "public-no-tls", no_argument, NULL, O_PNOTLS },
	{ "device-ca", required_argument, NULL, O_DEVCA },
	{ "auto-accept", no_argument, NULL, O_AUTO },
	{ "batch", required_argument, NULL, O_BATCH },
	{ "poll-ms", required_argument, NULL, O_POLL },
	{ "accounts", required_argument, NULL, O_ACCOUNTS },
	{ "plugin", required_argument, NULL, O_PLUGIN },
	{ "telemetry-rate", required_argument, NULL, O_TRATE },
	{ "telemetry-burst", required_argument, NULL, O_TBURST },
	{ "telemetry-max-bytes", required_argument, NULL, O_TBYTES },
	{ "telemetry-devices", required_argument, NULL, O_TDEVS },
	{ "help", no_argument, NULL, O_HELP },
	{ "key", required_argument, NULL, O_KEY },
	{ "max-key-candidates", required_argument, NULL, O_MAXCAND },
	{ "key-candidate-interval", required_argument, NULL, O_CANDIV },
	{ NULL, 0, NULL, 0 },
};

static const char *option_help(int id)
{
	switch (id) {
	case O_DB: return "--db URL             registry: a SQLite file (default " DEFAULT_DB ") or postgresql://...";
	case O_JSON: return "--json               machine-readable output on stdout";
	case O_FOR: return "--for DURATION       how long the activation lasts: N[s|m|h|d] (default 1h)";
	case O_SINCE: return "--since T            only readings from T on: Unix ms, or a duration ago (10m, 2h)";
	case O_STATE: return "--state STATE        only devices in this state";
	case O_DIR: return "--dir DIR            output directory (created 0700)";
	case O_FORCE: return "--force              overwrite existing files";
	case O_LIMIT: return "--limit N            at most N rows (default 1000)";
	case O_LOG: return "--log-level LEVEL    err, warning, info (default), debug";
	case O_INSTANCE: return "--instance NAME      name in logs and in the MQTT client id (default: hostname)";
	case O_BHOST: return "--broker-host HOST   broker address (default 127.0.0.1)";
	case O_BPORT: return "--broker-port PORT   broker port (default 1883)";
	case O_BUSER: return "--broker-user NAME   the cloud's broker login (default " DYNSEC_CLOUD_USER ")";
	case O_BPWF: return "--broker-password-file FILE  the cloud's broker password (0600 file; never argv)";
	case O_BTLS: return "--broker-tls         connect with TLS (verifying the broker)";
	case O_BCAFILE: return "--broker-cafile FILE CA to verify the broker (implies --broker-tls)";
	case O_BCAPATH: return "--broker-capath DIR  CA directory (implies --broker-tls)";
	case O_PHOST: return "--public-host HOST   broker address sealed into device credentials";
	case O_PPORT: return "--public-port PORT   broker port sealed into device credentials";
	case O_PTLS: return "--public-tls         tell devices to use TLS";
	case O_PNOTLS: return "--public-no-tls      tell devices not to use TLS (tests, local demo)";
	case O_DEVCA: return "--device-ca FILE     CA certificate (PEM) sealed into device credentials";
	case O_AUTO: return "--auto-accept        accept activated devices without the operator";
	case O_BATCH: return "--batch N            messages handled per transaction (default 500)";
	case O_POLL: return "--poll-ms MS         how often to look for operator changes (default 1000)";
	case O_ACCOUNTS: return "--accounts MODE      device broker logins: registry (default; the edgetrust\n"
				 "                       mosquitto plugin reads the database) or dynsec";
	case O_PLUGIN: return "--plugin PATH        the edgetrust mosquitto plugin (default " ET_BROKER_PLUGIN ")";
	case O_TRATE: return "--telemetry-rate N   records/s per device, more are refused (default "
			      STR(LIM_DEFAULT_RATE) "; 0 = no limit)";
	case O_TBURST: return "--telemetry-burst N  records a device may send at once (default "
			       STR(LIM_DEFAULT_BURST) ")";
	case O_TBYTES: return "--telemetry-max-bytes N  largest device data message (default "
			       STR(LIM_DEFAULT_BYTES) ")";
	case O_TDEVS: return "--telemetry-devices N  devices the rate limiter tracks (default "
			      STR(LIM_DEFAULT_DEVICES) ")";
	case O_HELP: return "--help               this help";
	case O_KEY: return "--key FINGERPRINT    the candidate key to accept: its fingerprint from `pending`\n"
			    "                       (64 hex digits, or a unique prefix of at least 16)";
	case O_MAXCAND: return "--max-key-candidates N  keys kept per serial until the operator decides (default 4)";
	case O_CANDIV: return "--key-candidate-interval S  seconds between two new keys of one serial (default 2; 0 = off)";
	}
	return "";
}

/* ---- helpers ------------------------------------------------------------------------------ */

static int parse_duration(const char *s, int64_t *ret)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	int64_t mul = 1;
	if (errno || end == s || v <= 0)
		return -1;
	switch (*end) {
	case '\0': case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	default: return -1;
	}
	if (*end && end[1])
		return -1;
	if (v > INT64_MAX / mul / 1000)
		return -1;
	*ret = v * mul;
	return 0;
}

static int check_serial(const char *s)
{
	/* The one serial rule, shared with the device side (et_serial_validate). */
	if (!proto_serial_ok(s)) {
		cl_log(CL_ERR, "%s", et_errmsg());
		return EC_INPUT;
	}
	return EC_OK;
}

static int open_reg(struct args *a, reg **ret)
{
	char actor[96];
	struct passwd *pw = getpwuid(getuid());
	snprintf(actor, sizeof(actor), "cli:%s", pw ? pw->pw_name : "?");
	return reg_open(a->db, actor, ret) == CDB_OK ? EC_OK : EC_DB;
}

/* Loads a device with its row locked, inside a transaction. */
static int load_locked(reg *r, const char *serial, struct device *d)
{
	int rc;
	if (cdb_begin(r->db) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		return EC_DB;
	}
	rc = reg_device_get(r, serial, true, d);
	if (rc == REG_NOTFOUND) {
		cdb_rollback(r->db);
		cl_log(CL_ERR, "%s is not in the registry (activate it first)", serial);
		return EC_NOT_FOUND;
	}
	if (rc != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		cdb_rollback(r->db);
		return EC_DB;
	}
	return EC_OK;
}

static int save_commit(reg *r, struct device *d, const char *action, const char *detail)
{
	if (reg_device_update(r, d) != CDB_OK || reg_audit(r, d->serial, action, detail) != CDB_OK ||
	    cdb_commit(r->db) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		cdb_rollback(r->db);
		return EC_DB;
	}
	return EC_OK;
}

static void wrong_state(const struct device *d, const char *cmd, const char *allowed)
{
	cl_log(CL_ERR, "%s: cannot %s a device in state '%s' (allowed: %s)", d->serial, cmd,
	       d->state, allowed);
}

/* ---- commands ----------------------------------------------------------------------------- */

/* Activates one serial inside the caller's transaction. */
static int activate_one(reg *r, const char *serial, int64_t dur)
{
	struct device d = { 0 };
	int ec, rc;

	rc = reg_device_get(r, serial, true, &d);
	int64_t until = reg_now() + dur;
	char detail[64];
	snprintf(detail, sizeof(detail), "until %" PRId64, until);
	if (rc == REG_NOTFOUND) {
		snprintf(d.serial, sizeof(d.serial), "%s", serial);
		snprintf(d.state, sizeof(d.state), ST_ACTIVATED);
		snprintf(d.broker_state, sizeof(d.broker_state), BR_NONE);
		d.activated_until = until;
		d.online = -1;
		d.created_at = reg_now();
		d.dirty = 1; /* serve prepares the device's broker role */
		if (reg_device_insert(r, &d) != CDB_OK || reg_audit(r, serial, "activate", detail) != CDB_OK) {
			cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
			ec = EC_DB;
			goto out;
		}
	} else if (rc == CDB_OK) {
		if (!strcmp(d.state, ST_PENDING) || !strcmp(d.state, ST_ACCEPTED)) {
			wrong_state(&d, "activate", "a new serial, activated, rejected or revoked");
			ec = EC_STATE;
			goto out;
		}
		/* Re-activating a rejected or revoked serial forgets its key: the next device to
		 * register with it is pinned (and its old broker login stays disabled until then). */
		if (strcmp(d.state, ST_ACTIVATED)) {
			free(d.pubkey_pem);
			d.pubkey_pem = NULL;
			d.fpr[0] = '\0';
			if (cand_delete_all(r, serial) != CDB_OK) {
				cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
				ec = EC_DB;
				goto out;
			}
		}
		snprintf(d.state, sizeof(d.state), ST_ACTIVATED);
		d.activated_until = until;
		d.replied = 0;
		if (reg_device_update(r, &d) != CDB_OK || reg_audit(r, serial, "activate", detail) != CDB_OK) {
			cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
			ec = EC_DB;
			goto out;
		}
	} else {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		ec = EC_DB;
		goto out;
	}
	if (reg_activation_mark(r, serial) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		ec = EC_DB;
		goto out;
	}
	printf("%s activated for %" PRId64 " s (until %" PRId64 ")\n", serial, dur, until);
	ec = EC_OK;
out:
	device_clear(&d);
	return ec;
}

static int cmd_activate(struct args *a)
{
	int64_t dur = 3600;
	reg *r = NULL;
	int ec;

	for (int i = 0; i < a->argc; i++) {
		/* Also refuses the broker logins' names (a device login of that name would shadow
		 * them) and what reads as an option: the same rule the CLI applies before it
		 * writes write-once NV. */
		if ((ec = check_serial(a->argv[i])))
			return ec;
	}
	if (a->dur && parse_duration(a->dur, &dur) < 0) {
		cl_log(CL_ERR, "invalid --for '%s': use N, Ns, Nm, Nh or Nd", a->dur);
		return EC_INPUT;
	}
	if ((ec = open_reg(a, &r)))
		return ec;
	/* All serials in one transaction: all are activated, or none. */
	if (cdb_begin(r->db) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		reg_close(r);
		return EC_DB;
	}
	for (int i = 0; i < a->argc; i++)
		if ((ec = activate_one(r, a->argv[i], dur))) {
			cdb_rollback(r->db);
			reg_close(r);
			return ec;
		}
	if (cdb_commit(r->db) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		reg_close(r);
		return EC_DB;
	}
	reg_close(r);
	return EC_OK;
}

static int state_change(struct args *a, const char *cmd)
{
	const char *serial = a->argv[0];
	struct device d = { 0 };
	struct key_cands c = { 0 };
	reg *r = NULL;
	int ec;
	const char *action = cmd;
	char detail[512] = "";

	if ((ec = check_serial(serial)))
		return ec;
	if (a->key && (strcmp(cmd, "accept") || !cand_prefix_ok(a->key))) {
		cl_log(CL_ERR, strcmp(cmd, "accept") ? "--key is only for accept"
			       : "invalid --key: a fingerprint from `pending`, 64 hex digits or a "
				 "unique prefix of at least 16");
		return EC_INPUT;
	}
	if ((ec = open_reg(a, &r)))
		return ec;
	if ((ec = load_locked(r, serial, &d)))
		goto out;
	if (cand_list(r, serial, &c) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		cdb_rollback(r->db);
		ec = EC_DB;
		goto out;
	}
	bool pending = !strcmp(d.state, ST_PENDING), accepted = !strcmp(d.state, ST_ACCEPTED);
	if (!strcmp(cmd, "accept")) {
		if (!pending && !(accepted && c.n)) {
			cdb_rollback(r->db);
			wrong_state(&d, cmd, "pending, or accepted with a re-key request");
			ec = EC_STATE;
			goto out;
		}
		if ((ec = cand_accept(&d, &c, a->key, detail, sizeof(detail)))) {
			cdb_rollback(r->db);
			goto out;
		}
		if (accepted)
			action = "accept-rekey";
		snprintf(d.state, sizeof(d.state), ST_ACCEPTED);
		d.cred_version = (d.cred_version > d.issued_version ? d.cred_version : d.issued_version) + 1;
	} else if (!strcmp(cmd, "reject")) {
		if (pending) {
			snprintf(d.state, sizeof(d.state), ST_REJECTED);
			d.replied = 0;
		} else if (accepted && c.n) {
			action = "reject-rekey";
		} else {
			cdb_rollback(r->db);
			wrong_state(&d, cmd, "pending, or accepted with a re-key request");
			ec = EC_STATE;
			goto out;
		}
		cand_names(&c, SIZE_MAX, "rejected key ", detail, sizeof(detail));
	} else if (!strcmp(cmd, "revoke")) {
		if (!pending && !accepted) {
			cdb_rollback(r->db);
			wrong_state(&d, cmd, "pending or accepted");
			ec = EC_STATE;
			goto out;
		}
		snprintf(d.state, sizeof(d.state), ST_REVOKED);
		d.replied = 0;
	} else { /* rotate */
		if (!accepted) {
			cdb_rollback(r->db);
			wrong_state(&d, cmd, "accepted");
			ec = EC_STATE;
			goto out;
		}
		d.cred_version = (d.cred_version > d.issued_version ? d.cred_version : d.issued_version) + 1;
		snprintf(detail, sizeof(detail), "to version %" PRId64, d.cred_version);
	}
	/* Every decision but rotate settles the candidate keys: accepted, discarded or rejected. */
	if (strcmp(cmd, "rotate") && cand_delete_all(r, serial) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		cdb_rollback(r->db);
		ec = EC_DB;
		goto out;
	}
	d.dirty = 1; /* serve does the broker side and the reply */
	if ((ec = save_commit(r, &d, action, detail[0] ? detail : NULL)))
		goto out;
	printf("%s: %s (%s)%s%s\n", serial, action, d.state, !strcmp(cmd, "accept") ? " key " : "",
	       !strcmp(cmd, "accept") ? d.fpr : "");
out:
	cand_free(&c);
	device_clear(&d);
	reg_close(r);
	return ec;
}

static int cmd_accept(struct args *a) { return state_change(a, "accept"); }
static int cmd_reject(struct args *a) { return state_change(a, "reject"); }
static int cmd_revoke(struct args *a) { return state_change(a, "revoke"); }
static int cmd_rotate(struct args *a) { return state_change(a, "rotate"); }

/* "fingerprint" (and "pubkey_pem") is the accepted key, or for a pending device with exactly one
 * candidate that candidate: the key a plain `accept` binds to. "candidates" are all keys not
 * accepted yet; "key_conflict" says more than one of them arrived. */
static cJSON *device_json(const struct device *d, const struct key_cands *c, bool full)
{
	cJSON *o = cJSON_CreateObject();
	const char *fpr = d->fpr, *pem = d->pubkey_pem;
	if (!strcmp(d->state, ST_PENDING) && c->n == 1) {
		fpr = c->v[0].fpr;
		pem = c->v[0].pem;
	}
	cJSON_AddStringToObject(o, "serial", d->serial);
	cJSON_AddStringToObject(o, "state", d->state);
	if (fpr[0])
		cJSON_AddStringToObject(o, "fingerprint", fpr);
	cJSON_AddItemToObject(o, "candidates", cand_json(c, full));
	cJSON_AddBoolToObject(o, "key_conflict", c->n > 1);
	cJSON_AddNumberToObject(o, "activated_until", (double)d->activated_until);
	cJSON_AddNumberToObject(o, "cred_version", (double)d->issued_version);
	cJSON_AddStringToObject(o, "broker", d->broker_state);
	if (d->online >= 0)
		cJSON_AddBoolToObject(o, "online", d->online);
	cJSON_AddNumberToObject(o, "last_seen", (double)d->last_seen);
	cJSON_AddNumberToObject(o, "created_at", (double)d->created_at);
	cJSON_AddNumberToObject(o, "updated_at", (double)d->updated_at);
	cJSON_AddBoolToObject(o, "sync_pending", d->dirty);
	if (full) {
		if (pem)
			cJSON_AddStringToObject(o, "pubkey_pem", pem);
		cJSON *j;
		cJSON_AddNumberToObject(o, "desired_version", (double)d->desired_version);
		cJSON_AddNumberToObject(o, "desired_published", (double)d->desired_published);
		j = d->desired_json ? cJSON_Parse(d->desired_json) : NULL;
		cJSON_AddItemToObject(o, "desired", j ? j : cJSON_CreateObject());
		j = d->reported_json ? cJSON_Parse(d->reported_json) : NULL;
		cJSON_AddItemToObject(o, "reported", j ? j : cJSON_CreateNull());
		j = d->status_json ? cJSON_Parse(d->status_json) : NULL;
		cJSON_AddItemToObject(o, "status", j ? j : cJSON_CreateNull());
	}
	return o;
}

/* All JSON output: valid UTF-8 and free of terminal controls whatever the registry holds. */
static int print_json(cJSON *o)
{
	char *t = text_json_print(o);
	cJSON_Delete(o);
	if (!t)
		return EC_FAILURE;
	puts(t);
	free(t);
	return EC_OK;
}

static int list_devices(struct args *a, const char *state, bool pending_view)
{
	struct device *ds = NULL;
	size_t n = 0;
	reg *r = NULL;
	int ec;

	struct key_cands all = { 0 };
	if ((ec = open_reg(a, &r)))
		return ec;
	if (reg_device_list(r, state, &ds, &n) != CDB_OK || cand_list(r, NULL, &all) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		for (size_t i = 0; i < n; i++)
			device_clear(&ds[i]);
		free(ds);
		reg_close(r);
		return EC_DB;
	}
	cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
	if (!a->json && pending_view)
		printf("%-24s %-9s %-64s %-20s %-20s %6s\n", "SERIAL", "STATE",
		       "CANDIDATE KEY (SHA-256 fingerprint)", "FIRST SEEN (UTC)", "LAST SEEN (UTC)",
		       "SEEN");
	else if (!a->json)
		printf("%-24s %-10s %-8s %-8s %-6s %s\n", "SERIAL", "STATE", "CREDS", "BROKER",
		       "ONLINE", "KEY");
	for (size_t i = 0; i < n; i++) {
		struct device *d = &ds[i];
		struct key_cands c = cand_of(&all, d->serial);
		if (pending_view && strcmp(d->state, ST_PENDING) && !c.n)
			continue;
		if (!arr && pending_view) {
			cand_print(d->serial, d->state, &c);
			continue;
		}
		if (arr) {
			cJSON *o = device_json(d, &c, false);
			cJSON *rf = reg_refusals_json(r, d->serial);
			cJSON_AddItemToObject(o, "refusals", rf ? rf : cJSON_CreateNull());
			cJSON_AddItemToArray(arr, o);
		}
		else
			printf("%-24s %-10s v%-7" PRId64 " %-8s %-6s %.16s%s\n", text_tty(d->serial), d->state,
			       d->issued_version, d->broker_state,
			       d->online < 0 ? "-" : d->online ? "yes" : "no",
			       d->fpr[0] ? d->fpr : c.n == 1 ? c.v[0].fpr : "-",
			       c.n && d->fpr[0] ? " (re-key requested: see pending)"
			       : c.n > 1 ? " (several candidate keys: see pending)" : "");
	}
	cand_free(&all);
	for (size_t i = 0; i < n; i++)
		device_clear(&ds[i]);
	free(ds);
	reg_close(r);
	return arr ? print_json(arr) : EC_OK;
}

static int cmd_list(struct args *a) { return list_devices(a, a->state, false); }
static int cmd_pending(struct args *a) { return list_devices(a, NULL, true); }

static int cmd_show(struct args *a)
{
	struct device d = { 0 };
	reg *r = NULL;
	int ec, rc;
	long ncred = 0;

	if ((ec = check_serial(a->argv[0])) || (ec = open_reg(a, &r)))
		return ec;
	rc = reg_device_get(r, a->argv[0], false, &d);
	if (rc == REG_NOTFOUND) {
		cl_log(CL_ERR, "%s is not in the registry", a->argv[0]);
		ec = EC_NOT_FOUND;
		goto out;
	}
	struct key_cands c = { 0 };
	if (rc != CDB_OK || reg_cred_count(r, d.serial, &ncred) != CDB_OK ||
	    cand_list(r, d.serial, &c) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		ec = EC_DB;
		goto out;
	}
	cJSON *o = device_json(&d, &c, true);
	cand_free(&c);
	cJSON_AddNumberToObject(o, "credentials_issued", (double)ncred);
	cJSON *rf = reg_refusals_json(r, d.serial);
	cJSON_AddItemToObject(o, "refusals", rf ? rf : cJSON_CreateNull());
	/* The last changes, from the audit log. */
	cdb_rows *rows = NULL;
	const char *p[] = { d.serial };
	if (cdb_query(r->db,
		      "SELECT ts, actor, action, detail FROM audit WHERE serial = ? ORDER BY id DESC LIMIT 20",
		      1, p, &rows) == CDB_OK) {
		cJSON *au = cJSON_AddArrayToObject(o, "audit");
		for (size_t i = 0; i < rows->nrows; i++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "ts", strtod(cdb_cell(rows, i, 0), NULL));
			cJSON_AddStringToObject(e, "actor", cdb_cell(rows, i, 1));
			cJSON_AddStringToObject(e, "action", cdb_cell(rows, i, 2));
			if (cdb_cell(rows, i, 3))
				cJSON_AddStringToObject(e, "detail", cdb_cell(rows, i, 3));
			cJSON_AddItemToArray(au, e);
		}
		cdb_rows_free(rows);
	}
	if (a->json) {
		ec = print_json(o);
	} else {
		cJSON *it;
		cJSON_ArrayForEach(it, o)
		{
			char *v = cJSON_IsString(it) ? NULL : cJSON_PrintUnformatted(it);
			/* device-supplied text (status, reported settings, audit details) */
			printf("%-20s %s\n", it->string, text_tty(v ? v : it->valuestring));
			free(v);
		}
		cJSON_Delete(o);
		ec = EC_OK;
	}
out:
	device_clear(&d);
	reg_close(r);
	return ec;
}

/* Every refusal counter of the fleet: what was refused, from whom, how often, when last. */
static int cmd_refusals(struct args *a)
{
	reg *r = NULL;
	int ec;

	if ((ec = open_reg(a, &r)))
		return ec;
	cJSON *all = reg_refusals_all_json(r);
	if (!all) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		reg_close(r);
		return EC_DB;
	}
	reg_close(r);
	if (a->json)
		return print_json(all);
	printf("%-24s %-20s %10s %s\n", "SERIAL", "REASON", "COUNT", "LAST");
	cJSON *e;
	cJSON_ArrayForEach(e, all)
	{
		const char *serial = cJSON_GetObjectItem(e, "serial")->valuestring;
		printf("%-24s %-20s %10.0f %.0f\n", *serial ? serial : "(unknown)",
		       cJSON_GetObjectItem(e, "reason")->valuestring,
		       cJSON_GetObjectItem(e, "count")->valuedouble,
		       cJSON_GetObjectItem(e, "last_at")->valuedouble);
	}
	cJSON_Delete(all);
	return EC_OK;
}

static int cmd_settings(struct args *a)
{
	const char *sub = a->argv[0];
	struct device d = { 0 };
	reg *r = NULL;
	cJSON *set = NULL;
	int ec;

	if (strcmp(sub, "set") && strcmp(sub, "get")) {
		cl_log(CL_ERR, "unknown settings action '%s': use 'settings set SERIAL KEY=VALUE...' or "
			       "'settings get SERIAL'", sub);
		return EC_USAGE;
	}
	if (a->argc < 2 || (!strcmp(sub, "set") && a->argc < 3)) {
		cl_log(CL_ERR, "usage: edgetrust-cloud settings set SERIAL KEY=VALUE... | get SERIAL");
		return EC_USAGE;
	}
	if ((ec = check_serial(a->argv[1])))
		return ec;
	if (!strcmp(sub, "get")) {
		if ((ec = open_reg(a, &r)))
			return ec;
		int rc = reg_device_get(r, a->argv[1], false, &d);
		if (rc != CDB_OK) {
			cl_log(CL_ERR, rc == REG_NOTFOUND ? "%s is not in the registry" : "database error for %s",
			       a->argv[1]);
			ec = rc == REG_NOTFOUND ? EC_NOT_FOUND : EC_DB;
			goto out;
		}
		cJSON *o = cJSON_CreateObject(), *j;
		cJSON_AddNumberToObject(o, "desired_version", (double)d.desired_version);
		j = d.desired_json ? cJSON_Parse(d.desired_json) : NULL;
		cJSON_AddItemToObject(o, "desired", j ? j : cJSON_CreateObject());
		j = d.reported_json ? cJSON_Parse(d.reported_json) : NULL;
		cJSON_AddItemToObject(o, "reported", j ? j : cJSON_CreateNull());
		ec = print_json(o);
		goto out;
	}
	/* Validate all pairs before touching the database. */
	cJSON *updates = cJSON_CreateObject();
	for (int i = 2; i < a->argc; i++) {
		char *eq = strchr(a->argv[i], '=');
		if (!eq || eq == a->argv[i] || eq - a->argv[i] > 64) {
			cl_log(CL_ERR, "invalid setting '%s': expected KEY=VALUE", a->argv[i]);
			cJSON_Delete(updates);
			return EC_INPUT;
		}
		*eq = '\0';
		/* VALUE is JSON when it parses as a scalar (42, 1.5, true, null, "text"), else text. */
		cJSON *v = cJSON_Parse(eq + 1);
		if (!v || cJSON_IsObject(v) || cJSON_IsArray(v)) {
			cJSON_Delete(v);
			v = cJSON_CreateString(eq + 1);
		}
		cJSON_DeleteItemFromObjectCaseSensitive(updates, a->argv[i]);
		cJSON_AddItemToObject(updates, a->argv[i], v);
	}
	if ((ec = open_reg(a, &r))) {
		cJSON_Delete(updates);
		return ec;
	}
	if ((ec = load_locked(r, a->argv[1], &d))) {
		cJSON_Delete(updates);
		goto out;
	}
	set = d.desired_json ? cJSON_Parse(d.desired_json) : NULL;
	if (!set)
		set = cJSON_CreateObject();
	cJSON *it;
	cJSON_ArrayForEach(it, updates)
	{
		cJSON_DeleteItemFromObjectCaseSensitive(set, it->string);
		cJSON_AddItemToObject(set, it->string, cJSON_Duplicate(it, 1));
	}
	cJSON_Delete(updates);
	free(d.desired_json);
	d.desired_json = cJSON_PrintUnformatted(set);
	d.desired_version++;
	d.dirty = 1;
	if ((ec = save_commit(r, &d, "settings", d.desired_json)))
		goto out;
	printf("%s: desired settings version %" PRId64 ": %s\n", d.serial, d.desired_version,
	       d.desired_json);
out:
	cJSON_Delete(set);
	device_clear(&d);
	reg_close(r);
	return ec;
}

static int cmd_telemetry(struct args *a)
{
	reg *r = NULL;
	int ec;
	int64_t since = 0;
	cdb_rows *rows = NULL;
	char sb[24], lb[24];

	if ((ec = check_serial(a->argv[0])))
		return ec;
	if (a->since) {
		char *end;
		int64_t dur;
		since = strtoll(a->since, &end, 10);
		if (*end) {
			if (parse_duration(a->since, &dur) < 0) {
				cl_log(CL_ERR, "invalid --since '%s': Unix milliseconds or a duration (10m)", a->since);
				return EC_INPUT;
			}
			since = (reg_now() - dur) * 1000;
		}
	}
	if ((ec = open_reg(a, &r)))
		return ec;
	const char *p[] = { a->argv[0], a->argv[0], reg_i64(since, sb), reg_i64(a->limit, lb) };
	/* In seq order within a spool epoch; epochs (random numbers) in the order they first
	 * arrived, so a device's readings before a wiped spool come before those after it. */
	if (cdb_query(r->db,
		      "SELECT t.seq, t.ts, t.device, t.point, t.value, t.unit, t.q, t.epoch"
		      " FROM telemetry t JOIN (SELECT epoch, MIN(received_at) AS first_at"
		      " FROM telemetry WHERE serial = ? GROUP BY epoch) e ON e.epoch = t.epoch"
		      " WHERE t.serial = ? AND t.ts >= CAST(? AS BIGINT)"
		      " ORDER BY e.first_at, t.epoch, t.seq LIMIT CAST(? AS BIGINT)",
		      4, p, &rows) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		reg_close(r);
		return EC_DB;
	}
	cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
	for (size_t i = 0; i < rows->nrows; i++) {
		const char *v = cdb_cell(rows, i, 4);
		if (arr) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "seq", strtod(cdb_cell(rows, i, 0), NULL));
			/* The database's digits as they are: cJSON prints doubles with 15 significant
			 * digits when that is within DBL_EPSILON, so a 16-digit epoch could be off. */
			cJSON_AddRawToObject(o, "epoch", cdb_cell(rows, i, 7));
			cJSON_AddNumberToObject(o, "ts", strtod(cdb_cell(rows, i, 1), NULL));
			for (int c = 2; c <= 6; c++) {
				static const char *names[] = { "", "", "device", "point", "value", "unit", "q" };
				const char *x = cdb_cell(rows, i, (size_t)c);
				if (c == 4)
					cJSON_AddItemToObject(o, "value", x ? cJSON_CreateNumber(strtod(x, NULL)) : cJSON_CreateNull());
				else if (x)
					cJSON_AddStringToObject(o, names[c], x);
				else
					cJSON_AddNullToObject(o, names[c]);
			}
			cJSON_AddItemToArray(arr, o);
		} else {
			/* device-supplied text: never raw onto the operator's terminal */
			printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cdb_cell(rows, i, 0), cdb_cell(rows, i, 1),
			       text_tty(cdb_cell(rows, i, 2)), text_tty(cdb_cell(rows, i, 3)),
			       v ? v : "null", text_tty(cdb_cell(rows, i, 5)),
			       text_tty(cdb_cell(rows, i, 6)));
		}
	}
	cdb_rows_free(rows);
	reg_close(r);
	return arr ? print_json(arr) : EC_OK;
}

static int cmd_audit(struct args *a)
{
	reg *r = NULL;
	int ec;
	cdb_rows *rows = NULL;
	char lb[24];

	if (a->argc == 1 && (ec = check_serial(a->argv[0])))
		return ec;
	if ((ec = open_reg(a, &r)))
		return ec;
	const char *p[] = { a->argc ? a->argv[0] : NULL, reg_i64(a->limit, lb) };
	if (cdb_query(r->db,
		      a->argc ? "SELECT id, ts, serial, actor, action, detail FROM audit WHERE serial = ?"
				" ORDER BY id LIMIT CAST(? AS BIGINT)"
			      : "SELECT id, ts, serial, actor, action, detail FROM audit"
				" ORDER BY id LIMIT CAST(? AS BIGINT)",
		      a->argc ? 2 : 1, a->argc ? p : p + 1, &rows) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(r->db));
		reg_close(r);
		return EC_DB;
	}
	cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
	for (size_t i = 0; i < rows->nrows; i++) {
		if (arr) {
			cJSON *o = cJSON_CreateObject();
			static const char *names[] = { "id", "ts", "serial", "actor", "action", "detail" };
			for (size_t c = 0; c < 6; c++) {
				const char *x = cdb_cell(rows, i, c);
				if (c < 2)
					cJSON_AddNumberToObject(o, names[c], strtod(x, NULL));
				else if (x)
					cJSON_AddStringToObject(o, names[c], x);
			}
			cJSON_AddItemToArray(arr, o);
		} else {
			printf("%s\t%s\t%s\t%s\t%s\t%s\n", cdb_cell(rows, i, 0), cdb_cell(rows, i, 1),
			       text_tty(cdb_cell(rows, i, 2)), text_tty(cdb_cell(rows, i, 3)),
			       text_tty(cdb_cell(rows, i, 4)),
			       cdb_cell(rows, i, 5) ? text_tty(cdb_cell(rows, i, 5)) : "");
		}
	}
	cdb_rows_free(rows);
	reg_close(r);
	return arr ? print_json(arr) : EC_OK;
}

static int write_file_0600(const char *path, const char *data, bool force)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL), 0600);
	size_t len = strlen(data), off = 0;

	if (fd < 0) {
		cl_log(CL_ERR, "cannot create %s: %s%s", path, strerror(errno),
		       errno == EEXIST ? " (use --force to overwrite)" : "");
		return EC_FILE;
	}
	if (fchmod(fd, 0600) < 0)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto fail;
	close(fd);
	return EC_OK;
fail:
	cl_log(CL_ERR, "cannot write %s: %s", path, strerror(errno));
	close(fd);
	return EC_FILE;
}

static int cmd_init_broker(struct args *a)
{
	char cloud_pw[33], boot_pw[33], path[4096];
	char *json = NULL;
	cJSON *cfg = NULL;
	int ec = EC_FAILURE;
	struct stat st;

	if (!a->dir) {
		cl_log(CL_ERR, "init-broker needs --dir DIR (where the configuration and passwords go)");
		return EC_USAGE;
	}
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST) {
		cl_log(CL_ERR, "cannot create %s: %s", a->dir, strerror(errno));
		return EC_FILE;
	}
	if (stat(a->dir, &st) < 0 || !S_ISDIR(st.st_mode) || (st.st_mode & 077)) {
		cl_log(CL_ERR, "%s must be a directory accessible only by its owner (chmod 700)", a->dir);
		return EC_FILE;
	}
	if (proto_password(cloud_pw) < 0 || proto_password(boot_pw) < 0)
		return EC_FAILURE;
	cfg = dynsec_initial_config(cloud_pw, boot_pw);
	if (!cfg || !(json = cJSON_Print(cfg)))
		goto out;
	static const char *const names[] = { "dynamic-security.json", "cloud.password",
					     "bootstrap.password" };
	const char *data[] = { json, cloud_pw, boot_pw };
	/* Refuse to overwrite anything unless --force, before writing any file. */
	for (int i = 0; i < 3 && !a->force; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, names[i]);
		if (access(path, F_OK) == 0) {
			cl_log(CL_ERR, "%s exists (use --force to replace the broker configuration and "
				       "passwords)", path);
			ec = EC_FILE;
			goto out;
		}
	}
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", a->dir, names[i]);
		if ((ec = write_file_0600(path, data[i], a->force)))
			goto out;
	}
	char dbabs[4096], *conf = NULL;
	if (a->serve.accounts == ACCOUNTS_REGISTRY &&
	    strncmp(a->db, "postgresql://", 13) && strncmp(a->db, "postgres://", 11) &&
	    a->db[0] != '/') {
		/* mosquitto runs elsewhere: a relative SQLite path would name another file there */
		char cwd[2048];
		if (!getcwd(cwd, sizeof(cwd))) {
			cl_log(CL_ERR, "cannot resolve --db %s: %s", a->db, strerror(errno));
			ec = EC_FILE;
			goto out;
		}
		snprintf(dbabs, sizeof(dbabs), "%s/%s", cwd, a->db);
		a->db = dbabs;
	}
	if ((a->serve.accounts == ACCOUNTS_REGISTRY && strchr(a->db, '\n')) || strchr(a->plugin, '\n')) {
		cl_log(CL_ERR, "--db and --plugin must be one line each");
		ec = EC_INPUT;
		goto out;
	}
	/* The edgetrust plugin first in both modes (mosquitto asks plugins in configuration
	 * order): it guards client ids, retained messages and sizes for every login. */
	if (!(conf = brokerconf_render(a->serve.accounts == ACCOUNTS_REGISTRY, a->plugin, a->db,
				       a->dir))) {
		ec = EC_FAILURE;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/mosquitto-edgetrust.conf", a->dir);
	ec = write_file_0600(path, conf, a->force);
	free(conf);
	if (ec)
		goto out;
	printf("%s/dynamic-security.json\n%s/cloud.password\n%s/bootstrap.password\n%s\n", a->dir,
	       a->dir, a->dir, path);
	ec = EC_OK;
out:
	OPENSSL_cleanse(cloud_pw, sizeof(cloud_pw));
	OPENSSL_cleanse(boot_pw, sizeof(boot_pw));
	free(json);
	cJSON_Delete(cfg);
	return ec;
}

static int cmd_serve(struct args *a)
{
	a->serve.db_url = a->db;
	return cloud_serve(&a->serve);
}

/* ---- table -------------------------------------------------------------------------------- */

static const int o_db[] = { O_DB, O_LOG, 0 };
static const int o_accept[] = { O_DB, O_LOG, O_KEY, 0 };
static const int o_list[] = { O_DB, O_LOG, O_JSON, O_STATE, 0 };
static const int o_json[] = { O_DB, O_LOG, O_JSON, 0 };
static const int o_act[] = { O_DB, O_LOG, O_FOR, 0 };
static const int o_tele[] = { O_DB, O_LOG, O_JSON, O_SINCE, O_LIMIT, 0 };
static const int o_audit[] = { O_DB, O_LOG, O_JSON, O_LIMIT, 0 };
static const int o_init[] = { O_DIR, O_FORCE, O_LOG, O_ACCOUNTS, O_DB, O_PLUGIN, 0 };
static const int o_serve[] = { O_DB, O_LOG, O_INSTANCE, O_BHOST, O_BPORT, O_BUSER, O_BPWF,
			       O_BTLS, O_BCAFILE, O_BCAPATH, O_PHOST, O_PPORT, O_PTLS, O_PNOTLS,
			       O_DEVCA, O_AUTO, O_BATCH, O_POLL, O_ACCOUNTS, O_TRATE, O_TBURST,
			       O_TBYTES, O_TDEVS, O_MAXCAND, O_CANDIV, 0 };

static const struct cmd commands[] = {
	{ "activate", cmd_activate, 1, 1000000, "activate SERIAL... [--for DURATION]",
	  "Allow each SERIAL to register during DURATION (default 1h); all in one transaction.\n"
	  "Re-activating a rejected or revoked serial forgets its pinned key.", o_act },
	{ "pending", cmd_pending, 0, 0, "pending [--json]",
	  "Devices waiting for the operator, new registrations and re-key requests: every\n"
	  "candidate key with its full fingerprint, first and last arrival and how often.", o_json },
	{ "accept", cmd_accept, 1, 1, "accept SERIAL [--key FINGERPRINT]",
	  "Accept a pending device (or a re-key request) with its only candidate key, or the one\n"
	  "named by --key (needed when several arrived: exit 9 without it); the other candidates\n"
	  "are discarded. A running `serve` creates the broker login and delivers the sealed\n"
	  "credentials within --poll-ms.", o_accept },
	{ "reject", cmd_reject, 1, 1, "reject SERIAL",
	  "Reject a pending device (or drop all re-key requests; the accepted key stays).", o_db },
	{ "revoke", cmd_revoke, 1, 1, "revoke SERIAL",
	  "Revoke a device: `serve` disables its broker login (disconnecting it) and publishes\n"
	  "`revoked` on its reply topic.", o_db },
	{ "rotate", cmd_rotate, 1, 1, "rotate SERIAL",
	  "Issue a new credential version: `serve` sets a new password and publishes the new\n"
	  "envelope on et/v1/SERIAL/creds.", o_db },
	{ "list", cmd_list, 0, 0, "list [--json] [--state STATE]", "All devices.", o_list },
	{ "show", cmd_show, 1, 1, "show SERIAL [--json]",
	  "One device: state, key, credentials, settings, status and its last audit entries.", o_json },
	{ "settings", cmd_settings, 2, 1000, "settings set SERIAL KEY=VALUE... | settings get SERIAL",
	  "Change a device's desired settings (published retained by `serve`), or show desired and\n"
	  "reported settings. VALUE is a JSON scalar (42, 1.5, true, null, \"x\") or else text.", o_json },
	{ "telemetry", cmd_telemetry, 1, 1, "telemetry SERIAL [--since T] [--limit N] [--json]",
	  "Stored readings of a device, in sequence order.", o_tele },
	{ "refusals", cmd_refusals, 0, 0, "refusals [--json]",
	  "Refused input and limit hits, counted per device and reason (serial \"\" = not in\n"
	  "the registry): the trace of an attack.", o_json },
	{ "audit", cmd_audit, 0, 1, "audit [SERIAL] [--json] [--limit N]",
	  "The audit log: every change to the registry, who made it and when.", o_audit },
	{ "init-broker", cmd_init_broker, 0, 0,
	  "init-broker --dir DIR [--accounts registry|dynsec] [--db URL] [--plugin PATH] [--force]",
	  "Write dynamic-security.json for a fresh mosquitto (login `edgetrust-cloud` for serve,\n"
	  "login `bootstrap` allowed only the registration topics, everything else denied), the\n"
	  "two passwords as 0600 files, and mosquitto-edgetrust.conf (with --accounts registry,\n"
	  "the default, it loads the edgetrust plugin reading device logins from --db first).\n"
	  "Prints the paths.", o_init },
	{ "serve", cmd_serve, 0, 0, "serve [options]",
	  "Run the service: registrations, credential delivery, operator changes, telemetry,\n"
	  "settings and status. Any number of instances may share one PostgreSQL database.", o_serve },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: edgetrust-cloud COMMAND [options]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fprintf(f, "\nedgetrust-cloud COMMAND --help shows a command's options. Exit codes: "
		   "docs/exit-codes.md; manual: man edgetrust-cloud.\n");
}

static void cmd_usage(const struct cmd *c, FILE *f)
{
	fprintf(f, "Usage: edgetrust-cloud %s\n\n%s\n\nOptions:\n", c->synopsis, c->help);
	for (const int *o = c->opts; *o; o++)
		fprintf(f, "  %s\n", option_help(*o));
	fprintf(f, "  %s\n", option_help(O_HELP));
}

static bool allowed(const struct cmd *c, int id)
{
	for (const int *o = c->opts; *o; o++)
		if (*o == id)
			return true;
	return false;
}

static int parse_int(const char *s, long min, long max, long *ret)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	enum cl_level lvl = CL_INFO;
	char host[64] = "cloud";
	long v;
	int opt;

	if (argc < 2) {
		usage(stderr);
		return EC_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EC_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("edgetrust-cloud %s\n", ET_VERSION);
		return EC_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			a.cmd = &commands[i];
	if (!a.cmd) {
		fprintf(stderr, "edgetrust-cloud: unknown command '%s'\n\n", argv[1]);
		usage(stderr);
		return EC_USAGE;
	}
	gethostname(host, sizeof(host) - 1);
	a.db = DEFAULT_DB;
	a.plugin = ET_BROKER_PLUGIN;
	a.limit = 1000;
	a.serve = (struct serve_opts){ .instance = host, .broker_host = "127.0.0.1", .broker_port = 1883,
				       .broker_user = DYNSEC_CLOUD_USER, .public_tls = -1,
				       .batch_max = 500, .poll_ms = 1000,
				       .accounts = ACCOUNTS_REGISTRY, .tel_rate = LIM_DEFAULT_RATE,
				       .tel_burst = LIM_DEFAULT_BURST, .tel_max_bytes = LIM_DEFAULT_BYTES,
				       .tel_devices = LIM_DEFAULT_DEVICES,
				       .max_key_candidates = CAND_MAX_DEFAULT,
				       .key_candidate_interval = CAND_INTERVAL_DEFAULT };
	argc--;
	argv++;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", all_options, NULL)) != -1) {
		if (opt == 'h' || opt == O_HELP) {
			cmd_usage(a.cmd, stdout);
			return EC_OK;
		}
		if (opt == '?' || !allowed(a.cmd, opt)) {
			fprintf(stderr, "edgetrust-cloud %s: unknown or misplaced option '%s'\n\n",
				a.cmd->name, argv[optind - 1]);
			cmd_usage(a.cmd, stderr);
			return EC_USAGE;
		}
		switch (opt) {
		case O_DB: a.db = optarg; break;
		case O_JSON: a.json = true; break;
		case O_FOR: a.dur = optarg; break;
		case O_SINCE: a.since = optarg; break;
		case O_STATE: a.state = optarg; break;
		case O_DIR: a.dir = optarg; break;
		case O_FORCE: a.force = true; break;
		case O_LIMIT:
			if (parse_int(optarg, 1, 10000000, &a.limit) < 0)
				goto bad_value;
			break;
		case O_LOG:
			if (cl_log_parse_level(optarg, &lvl) < 0)
				goto bad_value;
			break;
		case O_INSTANCE:
			if (!proto_serial_ok(optarg))
				goto bad_value;
			a.serve.instance = optarg;
			break;
		case O_BHOST: a.serve.broker_host = optarg; break;
		case O_BPORT:
			if (parse_int(optarg, 1, 65535, &v) < 0)
				goto bad_value;
			a.serve.broker_port = (int)v;
			break;
		case O_BUSER: a.serve.broker_user = optarg; break;
		case O_BPWF: a.serve.broker_password_file = optarg; break;
		case O_BTLS: a.serve.broker_tls = true; break;
		case O_BCAFILE: a.serve.broker_cafile = optarg; a.serve.broker_tls = true; break;
		case O_BCAPATH: a.serve.broker_capath = optarg; a.serve.broker_tls = true; break;
		case O_PHOST: a.serve.public_host = optarg; break;
		case O_PPORT:
			if (parse_int(optarg, 1, 65535, &v) < 0)
				goto bad_value;
			a.serve.public_port = (int)v;
			break;
		case O_PTLS: a.serve.public_tls = 1; break;
		case O_PNOTLS: a.serve.public_tls = 0; break;
		case O_DEVCA: a.serve.device_ca_file = optarg; break;
		case O_AUTO: a.serve.auto_accept = true; break;
		case O_BATCH:
			if (parse_int(optarg, 1, 10000, &v) < 0)
				goto bad_value;
			a.serve.batch_max = (int)v;
			break;
		case O_POLL:
			if (parse_int(optarg, 10, 3600000, &v) < 0)
				goto bad_value;
			a.serve.poll_ms = (int)v;
			break;
		case O_ACCOUNTS:
			if (!strcmp(optarg, "registry"))
				a.serve.accounts = ACCOUNTS_REGISTRY;
			else if (!strcmp(optarg, "dynsec"))
				a.serve.accounts = ACCOUNTS_DYNSEC;
			else
				goto bad_value;
			break;
		case O_PLUGIN: a.plugin = optarg; break;
		case O_TRATE:
			if (parse_int(optarg, 0, 100000000, &v) < 0)
				goto bad_value;
			a.serve.tel_rate = (int)v;
			break;
		case O_TBURST:
			/* a message of PROTO_MAX_RECORDS must fit, or it would never be taken */
			if (parse_int(optarg, PROTO_MAX_RECORDS, 100000000, &v) < 0)
				goto bad_value;
			a.serve.tel_burst = (int)v;
			break;
		case O_TBYTES:
			if (parse_int(optarg, 256, PROTO_MAX_PAYLOAD, &v) < 0)
				goto bad_value;
			a.serve.tel_max_bytes = (int)v;
			break;
		case O_TDEVS:
			if (parse_int(optarg, LIM_PROBE, 10000000, &v) < 0)
				goto bad_value;
			a.serve.tel_devices = (int)v;
			break;
		case O_KEY: a.key = optarg; break;
		case O_MAXCAND:
			if (parse_int(optarg, 1, CAND_MAX_LIMIT, &v) < 0)
				goto bad_value;
			a.serve.max_key_candidates = (int)v;
			break;
		case O_CANDIV:
			if (parse_int(optarg, 0, 86400, &v) < 0)
				goto bad_value;
			a.serve.key_candidate_interval = (int)v;
			break;
		}
		continue;
bad_value:
		fprintf(stderr, "edgetrust-cloud %s: invalid value '%s' for %s\n", a.cmd->name, optarg,
			argv[optind - 1]);
		return EC_USAGE;
	}
	a.argc = argc - optind;
	a.argv = argv + optind;
	if (a.argc < a.cmd->min_args || a.argc > a.cmd->max_args) {
		fprintf(stderr, "edgetrust-cloud %s: wrong number of arguments\n\n", a.cmd->name);
		cmd_usage(a.cmd, stderr);
		return EC_USAGE;
	}
	cl_log_setup(!strcmp(a.cmd->name, "serve") ? a.serve.instance : NULL, lvl);
	return a.cmd->fn(&a);
}
