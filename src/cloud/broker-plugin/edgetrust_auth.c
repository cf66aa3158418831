/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrust_auth: a mosquitto 2.0 plugin that guards the broker boundary of edgetrust
 * (docs/threat-model.md, "Broker logins and topics") and checks device logins against the
 * edgetrust registry (table broker_accounts, written by `edgetrust-cloud serve --accounts
 * registry` in the same transaction as the credential), so creating a device login costs the
 * broker nothing.
 *
 * Loaded before the dynamic-security plugin, in both account modes. mosquitto 2.0 asks the
 * plugins' BASIC_AUTH and ACL_CHECK callbacks in configuration order until one answers something
 * other than MOSQ_ERR_PLUGIN_DEFER. For every login and every publish, whichever mode:
 *   - a login may use only its own client id (acct_client_id_ok: the cloud etcloud-..., the
 *     bootstrap login etboot-... with a clean session, everyone else its username). Checked in
 *     BASIC_AUTH, which mosquitto 2.0.11 runs before connect__on_authorised() looks the id up
 *     and disconnects (takes over) the client holding it, so a refused login kicks nobody;
 *   - logins other than the cloud's may not retain (devices: only their status and
 *     settings/reported) nor publish more than the payload limits of wire.h;
 *   - every registration request (et/v1/<serial>/register) gets the broker's receive time as
 *     the user property WIRE_RECEIVED_PROP, replacing whatever properties the client sent, so
 *     serve can tell a request sent before its serial's activation (docs/protocol.md).
 * plugin_opt_accounts registry (default): the plugin also answers for usernames that have a row
 * in broker_accounts (devices) and defers every other login decision to dynamic security. The ACL
 * of such a device login is fixed: its own topics under et/v1/<serial>/ with the directions of
 * docs/protocol.md (acct.c). plugin_opt_accounts dynsec: only the guards above; every login and
 * ACL decision is dynamic security's.
 *
 * $CONTROL/edgetrust/v1 {"v":1,"kick":["SERIAL",...]} from the control login disconnects
 * those devices (revocation); their next login is refused by the database.
 *
 * Options (plugin_opt_*): accounts (registry or dynsec), registry (required in registry mode:
 * SQLite file opened read-only, or postgresql://...), control_user (the cloud's login, default
 * edgetrust-cloud), bootstrap_user (default bootstrap), defer_users (comma list of logins never
 * looked up in the registry; default edgetrust-cloud,bootstrap). Anything else is refused at
 * start.
 *
 * The broker has one thread: each device login costs one indexed SELECT (SQLite: a read in
 * WAL mode, never blocked by the writer; PostgreSQL: one round trip). ACL checks use memory only.
 *
 * Limit (mosquitto 2.0): the BASIC_AUTH event passes the password as a C string without its
 * length, so a password followed by a NUL byte and anything else is taken for the password
 * itself. The cloud's passwords never contain NUL (proto_password), and whoever uses this still
 * needs the real password.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#ifdef ET_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include "acct.h"

#define PFX "edgetrust_auth: "
#define CONTROL_TOPIC "$CONTROL/edgetrust/v1"
#define MAX_CONTROL_PAYLOAD (1024 * 1024)
#define ACCOUNT_SQL "SELECT enabled, client_id, hash, prev_hash FROM broker_accounts WHERE username = "

/* Usernames this plugin authenticated: their ACL checks are ours, everything else defers. */
struct nameset {
	char **slot;
	size_t cap, n;
};

struct plug {
	mosquitto_plugin_id_t *id;
	char *db;
	char *control_user;
	char *bootstrap_user;
	bool guard_only; /* plugin_opt_accounts dynsec: no registry, only the guards */
	char **defer; /* NULL-terminated */
	bool is_pg;
	sqlite3 *sq;
	sqlite3_stmt *st;
#ifdef ET_HAVE_LIBPQ
	PGconn *pg;
#endif
	time_t next_open; /* after a failure to open the database, wait before the next try */
	struct nameset users;
};

struct account {
	bool enabled;
	char client_id[65];
	char *hash, *prev_hash;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static bool serial_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n >= 1 && n <= 64;
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static bool set_has(const struct nameset *set, const char *name)
{
	if (!set->cap)
		return false;
	for (size_t i = fnv(name) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (!set->slot[i])
			return false;
		if (!strcmp(set->slot[i], name))
			return true;
	}
}

static int set_add(struct nameset *set, const char *name)
{
	if (set_has(set, name))
		return 0;
	if ((set->n + 1) * 2 > set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 1024;
		char **ns = calloc(ncap, sizeof(char *));
		if (!ns)
			return -1;
		for (size_t k = 0; k < set->cap; k++) {
			if (!set->slot[k])
				continue;
			size_t i = fnv(set->slot[k]) & (ncap - 1);
			while (ns[i])
				i = (i + 1) & (ncap - 1);
			ns[i] = set->slot[k];
		}
		free(set->slot);
		set->slot = ns;
		set->cap = ncap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -1;
	size_t i = fnv(name) & (set->cap - 1);
	while (set->slot[i])
		i = (i + 1) & (set->cap - 1);
	set->slot[i] = copy;
	set->n++;
	return 0;
}

static void set_free(struct nameset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
	memset(set, 0, sizeof(*set));
}

static void account_clear(struct account *a)
{
	if (a->hash)
		OPENSSL_cleanse(a->hash, strlen(a->hash));
	if (a->prev_hash)
		OPENSSL_cleanse(a->prev_hash, strlen(a->prev_hash));
	free(a->hash);
	free(a->prev_hash);
	memset(a, 0, sizeof(*a));
}

static bool deferred_user(const struct plug *p, const char *user)
{
	if (!strcmp(user, p->control_user))
		return true;
	for (char **d = p->defer; d && *d; d++)
		if (!strcmp(*d, user))
			return true;
	return false;
}

/* ---- the registry ------------------------------------------------------------------------- */

static void db_close(struct plug *p)
{
	sqlite3_finalize(p->st);
	p->st = NULL;
	sqlite3_close(p->sq);
	p->sq = NULL;
#ifdef ET_HAVE_LIBPQ
	if (p->pg)
		PQfinish(p->pg);
	p->pg = NULL;
#endif
}

/* Opens the registry if needed; -1 (logged) when it cannot be used now. */
static int db_ready(struct plug *p)
{
	time_t now = time(NULL);

	if (p->st)
		return 0;
#ifdef ET_HAVE_LIBPQ
	if (p->pg && PQstatus(p->pg) == CONNECTION_OK)
		return 0;
#endif
	if (now < p->next_open)
		return -1;
	db_close(p);
	p->next_open = now + 1; /* not more than one attempt per second from the broker's thread */
	if (p->is_pg) {
#ifdef ET_HAVE_LIBPQ
		p->pg = PQconnectdb(p->db);
		if (PQstatus(p->pg) != CONNECTION_OK) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", PQerrorMessage(p->pg));
			msg[strcspn(msg, "\n")] = '\0';
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "cannot connect to the registry: %s; "
							  "device logins are refused until it is back", msg);
			db_close(p);
			return -1;
		}
		return 0;
#else
		return -1;
#endif
	}
	int rc = sqlite3_open_v2(p->db, &p->sq, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(p->sq, 2000);
		rc = sqlite3_prepare_v2(p->sq, ACCOUNT_SQL "?", -1, &p->st, NULL);
	}
	if (rc != SQLITE_OK) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "cannot read the registry %s: %s (has "
						  "edgetrust-cloud serve created it?); device logins are "
						  "refused until it can", p->db,
				     p->sq ? sqlite3_errmsg(p->sq) : "out of memory");
		db_close(p);
		return -1;
	}
	return 0;
}

static char *dupn(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* 0 found (*a filled), 1 no such account, -1 registry unusable. */
static int account_get(struct plug *p, const char *user, struct account *a)
{
	int r = -1;

	memset(a, 0, sizeof(*a));
	if (db_ready(p) < 0)
		return -1;
#ifdef ET_HAVE_LIBPQ
	if (p->is_pg) {
		const char *params[] = { user };
		PGresult *res = PQexecParams(p->pg, ACCOUNT_SQL "$1", 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", PQerrorMessage(p->pg));
			msg[strcspn(msg, "\n")] = '\0';
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "registry query failed: %s", msg);
			if (PQstatus(p->pg) != CONNECTION_OK)
				db_close(p);
		} else if (PQntuples(res) == 0) {
			r = 1;
		} else {
			a->enabled = !strcmp(PQgetvalue(res, 0, 0), "1");
			snprintf(a->client_id, sizeof(a->client_id), "%s", PQgetvalue(res, 0, 1));
			a->hash = dupn(PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2));
			a->prev_hash = dupn(PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3));
			r = 0;
		}
		PQclear(res);
		return r;
	}
#endif
	sqlite3_bind_text(p->st, 1, user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(p->st);
	if (rc == SQLITE_ROW) {
		const unsigned char *cid = sqlite3_column_text(p->st, 1);
		a->enabled = sqlite3_column_int(p->st, 0) == 1;
		snprintf(a->client_id, sizeof(a->client_id), "%s", cid ? (const char *)cid : "");
		a->hash = dupn((const char *)sqlite3_column_text(p->st, 2));
		a->prev_hash = dupn((const char *)sqlite3_column_text(p->st, 3));
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = 1;
	} else {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "registry query failed: %s", sqlite3_errmsg(p->sq));
	}
	/* Reset at once: a statement left open would hold a read snapshot (and the WAL). */
	sqlite3_reset(p->st);
	sqlite3_clear_bindings(p->st);
	if (r < 0)
		db_close(p);
	return r;
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct plug *p = userdata;
	struct account a;
	const char *cid;
	int r;

	(void)event;
	cid = mosquitto_client_id(ed->client);
	if (!acct_client_id_ok(ed->username, cid, p->control_user, p->bootstrap_user)) {
		/* Refused here, before mosquitto disconnects a client already holding the id. */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PFX "login '%.64s' refused: client id '%.80s' is "
							"not its own (docs/protocol.md, \"Client ids\")",
				     ed->username ? ed->username : "(anonymous)", cid ? cid : "");
		return MOSQ_ERR_AUTH;
	}
	if (!strcmp(ed->username, p->bootstrap_user) && !mosquitto_client_clean_session(ed->client)) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PFX "bootstrap login refused: it must start a "
							"clean session");
		return MOSQ_ERR_AUTH;
	}
	if (p->guard_only || !ed->password || deferred_user(p, ed->username) ||
	    !serial_ok(ed->username))
		return MOSQ_ERR_PLUGIN_DEFER;
	r = account_get(p, ed->username, &a);
	if (r == 1)
		return MOSQ_ERR_PLUGIN_DEFER; /* not a device login: dynamic security decides */
	if (r < 0)
		return MOSQ_ERR_PLUGIN_DEFER; /* logged; dynamic security refuses unknown names */
	r = MOSQ_ERR_AUTH;
	if (!a.enabled || !cid || strcmp(cid, a.client_id))
		goto out;
	/* Both hashes are checked whenever there is a previous one, so the time does not tell
	 * which of the two matched. */
	bool cur = acct_verify(a.hash, ed->password);
	bool prev = a.prev_hash && acct_verify(a.prev_hash, ed->password);
	if (cur || prev) {
		if (set_add(&p->users, ed->username) < 0)
			goto out; /* out of memory: without the entry its ACL would defer (deny) */
		r = MOSQ_ERR_SUCCESS;
		if (prev && !cur)
			mosquitto_log_printf(MOSQ_LOG_INFO, PFX "%s logged in with its previous "
							   "password (rotation not yet confirmed)",
					     ed->username);
	}
out:
	account_clear(&a);
	return r;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct plug *p = userdata;
	const char *user = mosquitto_client_username(ed->client);
	enum acct_access acc;

	(void)event;
	if (ed->access == MOSQ_ACL_WRITE && (!user || strcmp(user, p->control_user))) {
		/* Whatever grants the topic: no login but the cloud's stores retained messages
		 * (beyond a device's own latest status) or publishes more than the limits. */
		size_t max = acct_payload_limit(ed->topic);
		const char *serial = user && strcmp(user, p->bootstrap_user) ? user : NULL;
		if ((ed->retain && !acct_retain_allowed(serial, ed->topic)) ||
		    (max && ed->payloadlen > max))
			return MOSQ_ERR_ACL_DENIED;
	}
	if (!user || !set_has(&p->users, user))
		return MOSQ_ERR_PLUGIN_DEFER;
	switch (ed->access) {
	case MOSQ_ACL_SUBSCRIBE: acc = ACCT_SUBSCRIBE; break;
	case MOSQ_ACL_UNSUBSCRIBE: acc = ACCT_UNSUBSCRIBE; break;
	case MOSQ_ACL_WRITE: acc = ACCT_PUBLISH; break;
	case MOSQ_ACL_READ: acc = ACCT_RECEIVE; break;
	default: return MOSQ_ERR_ACL_DENIED;
	}
	return acct_device_allowed(user, ed->topic, acc) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
}

/* et/v1/<serial>/register: the broker's receive time replaces every property the client sent
 * (a request needs none), so the one serve reads cannot be forged. */
static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct timespec ts;
	char ms[24];

	(void)event;
	(void)userdata;
	if (acct_payload_limit(ed->topic) != PROTO_MAX_REGISTER)
		return MOSQ_ERR_SUCCESS;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(ms, sizeof(ms), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	mosquitto_property_free_all(&ed->properties);
	if (mosquitto_property_add_string_pair(&ed->properties, MQTT_PROP_USER_PROPERTY,
					       WIRE_RECEIVED_PROP, ms) != MOSQ_ERR_SUCCESS) {
		/* Without the stamp serve would ignore it anyway; refuse it here. */
		mosquitto_property_free_all(&ed->properties);
		return MOSQ_ERR_ACL_DENIED;
	}
	return MOSQ_ERR_SUCCESS;
}

/* Returns success even for a refused message: an error here makes mosquitto drop the
 * connection of the sender, which is the cloud. */
static int on_control(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_control *ed = event_data;
	struct plug *p = userdata;
	const char *user = mosquitto_client_username(ed->client);
	cJSON *doc = NULL, *kick, *it;
	int n = 0;

	(void)event;
	if (!user || strcmp(user, p->control_user)) {
		mosquitto_log_printf(MOSQ_LOG_WARNING, PFX "%s from '%s' ignored: only %s may use it",
				     CONTROL_TOPIC, user ? user : "(anonymous)", p->control_user);
		return MOSQ_ERR_SUCCESS;
	}
	if (ed->payloadlen > MAX_CONTROL_PAYLOAD ||
	    !(doc = cJSON_ParseWithLength(ed->payload, ed->payloadlen)) || !cJSON_IsObject(doc) ||
	    !cJSON_IsArray(kick = cJSON_GetObjectItemCaseSensitive(doc, "kick"))) {
		mosquitto_log_printf(MOSQ_LOG_WARNING, PFX "malformed %s message (%u bytes) ignored",
				     CONTROL_TOPIC, (unsigned)ed->payloadlen);
		goto out;
	}
	cJSON_ArrayForEach(it, kick)
	{
		/* Only device names: never NULL (that kicks every anonymous client) nor a
		 * deferred login. */
		if (!cJSON_IsString(it) || !serial_ok(it->valuestring) ||
		    deferred_user(p, it->valuestring)) {
			mosquitto_log_printf(MOSQ_LOG_WARNING, PFX "kick of an invalid name ignored");
			continue;
		}
		mosquitto_kick_client_by_username(it->valuestring, false);
		n++;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, PFX "disconnected the clients of %d revoked device login%s",
			     n, n == 1 ? "" : "s");
out:
	cJSON_Delete(doc);
	return MOSQ_ERR_SUCCESS;
}

/* ---- plugin entry points ------------------------------------------------------------------ */

static void plug_free(struct plug *p)
{
	if (!p)
		return;
	db_close(p);
	set_free(&p->users);
	free(p->db);
	free(p->control_user);
	free(p->bootstrap_user);
	for (char **d = p->defer; d && *d; d++)
		free(*d);
	free(p->defer);
	free(p);
}

static int split_users(const char *list, char ***ret)
{
	size_t n = 1;
	for (const char *c = list; *c; c++)
		n += *c == ',';
	char **out = calloc(n + 1, sizeof(char *)), *copy = strdup(list), *save = NULL;
	size_t k = 0;
	if (!out || !copy) {
		free(out);
		free(copy);
		return -1;
	}
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		if (!(out[k++] = strdup(t)))
			break;
	free(copy);
	*ret = out;
	return 0;
}

/* Checks the options enough that a mistake stops mosquitto at start, with a message. */
static int check_db(struct plug *p)
{
	if (!strncmp(p->db, "postgresql://", 13) || !strncmp(p->db, "postgres://", 11)) {
		p->is_pg = true;
#ifdef ET_HAVE_LIBPQ
		char *err = NULL;
		PQconninfoOption *o = PQconninfoParse(p->db, &err);
		if (!o) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry: invalid PostgreSQL URL: %s",
					     err ? err : "out of memory");
			PQfreemem(err);
			return -1;
		}
		PQconninfoFree(o);
		return 0;
#else
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry: this plugin was built without "
						  "PostgreSQL support (libpq)");
		return -1;
#endif
	}
	if (p->db[0] != '/') {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry '%s': give the absolute path of "
						  "the registry's SQLite file, or a postgresql:// URL", p->db);
		return -1;
	}
	char dir[4096];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s", p->db);
	*strrchr(dir, '/') = '\0';
	if (stat(dir[0] ? dir : "/", &st) < 0 || !S_ISDIR(st.st_mode)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry %s: directory %s: %s", p->db,
				     dir, errno ? strerror(errno) : "not a directory");
		return -1;
	}
	if (stat(p->db, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry %s is not a file", p->db);
			return -1;
		}
		/* An existing file must be a SQLite database (the table may come later). */
		sqlite3 *h = NULL;
		int rc = sqlite3_open_v2(p->db, &h, SQLITE_OPEN_READONLY, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(h, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry %s: %s", p->db,
					     h ? sqlite3_errmsg(h) : "cannot open");
			sqlite3_close(h);
			return -1;
		}
		sqlite3_close(h);
	} else {
		mosquitto_log_printf(MOSQ_LOG_WARNING, PFX "%s does not exist yet; device logins are "
							 "refused until edgetrust-cloud creates it", p->db);
	}
	return 0;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++)
		if (supported_versions[i] == 5)
			return 5;
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *options, int option_count)
{
	struct plug *p = calloc(1, sizeof(*p));
	const char *defer = "edgetrust-cloud,bootstrap";

	if (!p)
		return MOSQ_ERR_NOMEM;
	p->id = identifier;
	for (int i = 0; i < option_count; i++) {
		const char *k = options[i].key, *v = options[i].value ? options[i].value : "";
		if (!strcmp(k, "registry")) {
			free(p->db);
			p->db = strdup(v);
		} else if (!strcmp(k, "control_user")) {
			free(p->control_user);
			p->control_user = strdup(v);
		} else if (!strcmp(k, "bootstrap_user")) {
			free(p->bootstrap_user);
			p->bootstrap_user = strdup(v);
		} else if (!strcmp(k, "defer_users")) {
			defer = v;
		} else if (!strcmp(k, "accounts") && (!strcmp(v, "registry") || !strcmp(v, "dynsec"))) {
			p->guard_only = !strcmp(v, "dynsec");
		} else {
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "unknown option plugin_opt_%s %s (known: "
							  "accounts registry|dynsec, registry, control_user, "
							  "bootstrap_user, defer_users)", k, v);
			goto fail;
		}
	}
	if (!p->control_user)
		p->control_user = strdup("edgetrust-cloud");
	if (!p->bootstrap_user)
		p->bootstrap_user = strdup("bootstrap");
	if (!p->control_user || !p->bootstrap_user)
		goto fail;
	if (p->guard_only) {
		if (p->db) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry is for plugin_opt_accounts "
							  "registry; with dynsec, device logins are dynamic "
							  "security's");
			goto fail;
		}
	} else if (!p->db || !p->db[0]) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "plugin_opt_registry is required: the edgetrust "
						  "registry (SQLite file or postgresql:// URL)");
		goto fail;
	}
	if (!p->control_user[0] || !p->bootstrap_user[0] || split_users(defer, &p->defer) < 0 ||
	    (!p->guard_only && check_db(p) < 0))
		goto fail;
	if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, p) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, p) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, p) ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC, p)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PFX "cannot register its callbacks with mosquitto");
		goto fail;
	}
	if (p->guard_only)
		mosquitto_log_printf(MOSQ_LOG_INFO, PFX "guarding client ids, retained messages and "
						   "sizes; logins are dynamic security's");
	else
		mosquitto_log_printf(MOSQ_LOG_INFO, PFX "device logins from %s registry %s",
				     p->is_pg ? "PostgreSQL" : "SQLite", p->is_pg ? "(URL given)" : p->db);
	*userdata = p;
	return MOSQ_ERR_SUCCESS;
fail:
	plug_free(p);
	return MOSQ_ERR_INVAL;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct plug *p = userdata;

	(void)options;
	(void)option_count;
	if (p) {
		mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
		mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
		mosquitto_callback_unregister(p->id, MOSQ_EVT_MESSAGE, on_message, NULL);
		mosquitto_callback_unregister(p->id, MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC);
	}
	plug_free(p);
	return MOSQ_ERR_SUCCESS;
}
