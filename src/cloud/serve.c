/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `edgetrust-cloud serve`. One thread: the MQTT loop fills a queue; the queue is handled in
 * batches, each batch in one database transaction with one dynamic-security round trip, so the
 * commit (fsync) and the broker round trip are paid once per batch rather than once per device.
 *
 * Exactly-once credentials: a device's row is locked (SELECT ... FOR UPDATE on PostgreSQL,
 * the database write lock on SQLite) while its login is created in the broker and the sealed
 * envelope is inserted under PRIMARY KEY (serial, version); only committed envelopes are ever
 * published. If anything fails before the commit, the broker holds a password nobody knows and
 * the next attempt replaces it.
 *
 * With --accounts registry (the default) a device's broker login is a row in broker_accounts,
 * written in the same transaction as its credential and checked by the edgetrust mosquitto
 * plugin, so issuing a login costs one SQL statement instead of a dynamic-security command
 * (which rewrites the plugin's whole JSON file in the broker's only thread).
 *
 * Operator commands (accept, reject, revoke, rotate, settings) only change the database and mark
 * the device dirty; serve polls for dirty devices and does the broker side. So the operator's
 * command line needs no broker login, and nothing is lost while serve is down.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "activation.h"
#include "candidates.h"
#include "dynsec.h"
#include "edgetrust/edgetrust.h"
#include "exitcodes.h"
#include "ingest.h"
#include "log.h"
#include "mq.h"
#include "proto.h"
#include "refusal.h"
#include "registry.h"
#include "serve.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct server {
	const struct serve_opts *o;
	reg *r;
	struct mq *mq;
	char *device_ca;
	const char *public_host;
	int public_port;
	bool public_tls;
	unsigned long registrations, issued, refused;
	struct ingest *ingest; /* device data: ingest.c */
	struct rf_tally bad; /* registrations refused before any database work, per batch */
};

enum item_kind { IT_REGISTER, IT_WORK };

struct item {
	enum item_kind kind;
	char serial[65];
	struct reg_req req;     /* IT_REGISTER */
	int64_t received_ms;    /* IT_REGISTER: when the broker received it (WIRE_RECEIVED_PROP) */
	struct device dev;
	bool have_dev;
	/* outcome */
	const char *status;     /* reply status, NULL = no reply */
	char reason[160];
	bool retain;
	bool issue;             /* create/refresh the broker login and seal a new envelope */
	bool disable;           /* revoke: disable the broker login */
	bool make_role;         /* activated: create the device's role ahead of registration */
	bool publish_desired;
	bool is_rotation;
	bool keep_prev;         /* registry accounts: the old password stays valid until confirmed */
	int64_t version;
	char password[33];
	char *envelope;         /* base64, malloc'd */
	int cmd_first, cmd_n;   /* this item's commands in the dynsec batch */
	bool failed;
	bool db_failed;         /* a write in decide_register failed: roll the round back */
	bool changed;           /* row must be written */
};

static void item_clear(struct item *it)
{
	reg_req_clear(&it->req);
	device_clear(&it->dev);
	OPENSSL_cleanse(it->password, sizeof(it->password));
	free(it->envelope);
	memset(it, 0, sizeof(*it));
}

/* The broker has an enabled login for the device. */
static bool has_login(const struct device *d)
{
	return !strcmp(d->broker_state, BR_ENABLED);
}

static int needs_work(const struct server *s, const struct device *d)
{
	if (!strcmp(d->state, ST_ACCEPTED) && d->pubkey_pem && d->issued_version < d->cred_version)
		return 1;
	if (!strcmp(d->state, ST_REVOKED) && has_login(d))
		return 1;
	if (s->o->accounts == ACCOUNTS_DYNSEC && !strcmp(d->state, ST_ACTIVATED) &&
	    !strcmp(d->broker_state, BR_NONE))
		return 1;
	if ((!strcmp(d->state, ST_REVOKED) || !strcmp(d->state, ST_REJECTED)) && !d->replied)
		return 1;
	if (d->desired_published < d->desired_version)
		return 1;
	return 0;
}

/* Pins the request's key and accepts the device at once (serve --auto-accept); the serial's
 * only candidate, if it had one, is that key. */
static void auto_accept(struct server *s, struct item *it, bool had_candidate)
{
	struct device *d = &it->dev;

	free(d->pubkey_pem);
	d->pubkey_pem = strdup(it->req.pem);
	snprintf(d->fpr, sizeof(d->fpr), "%s", it->req.fpr);
	snprintf(d->state, sizeof(d->state), ST_ACCEPTED);
	d->cred_version = d->issued_version + 1;
	it->changed = true;
	if ((had_candidate && cand_delete_all(s->r, d->serial) != CDB_OK) ||
	    reg_audit(s->r, d->serial, "accept", "serve --auto-accept") != CDB_OK)
		it->db_failed = true;
	it->issue = true;
}

/* A key that is not the accepted one: kept as a candidate next to the others (never replacing
 * one), so the operator accepts exactly the key they saw in `pending` (candidates.h). */
static void offer_candidate(struct server *s, struct item *it, const char *first_action)
{
	struct device *d = &it->dev;
	const struct cand_limits lim = { s->o->max_key_candidates, s->o->key_candidate_interval };
	enum cand_outcome out;
	size_t n = 0;

	if (cand_offer(s->r, d->serial, it->req.fpr, it->req.pem, &lim, first_action, &out, &n) !=
	    CDB_OK) {
		it->db_failed = true;
		return;
	}
	if (out == CAND_LIMIT || out == CAND_RATE) {
		it->status = "refused";
		if (out == CAND_LIMIT)
			snprintf(it->reason, sizeof(it->reason),
				 "too many candidate keys for this serial (%zu, limit %d): the "
				 "operator must accept or reject the waiting ones first", n, lim.max);
		else
			snprintf(it->reason, sizeof(it->reason),
				 "a new key for this serial arrived less than %d s ago; try later",
				 lim.interval);
		return;
	}
	if (out == CAND_NEW && strcmp(d->state, ST_ACTIVATED))
		cl_log(CL_WARNING, "%s presented another key (%.16s...; %zu candidate keys): the "
				   "operator must choose one with `accept %s --key`", d->serial,
		       it->req.fpr, n, d->serial);
	if (!strcmp(d->state, ST_ACTIVATED)) {
		snprintf(d->state, sizeof(d->state), ST_PENDING);
		it->changed = true;
	}
	/* --auto-accept takes a serial's only key; two keys for one serial wait for the operator. */
	if (s->o->auto_accept && !strcmp(d->state, ST_PENDING) && n == 1) {
		auto_accept(s, it, true);
		return;
	}
	it->status = "pending";
	if (!strcmp(d->state, ST_ACCEPTED)) {
		snprintf(it->reason, sizeof(it->reason), "rekey");
		return; /* not retained: the device's retained answer stays as it was */
	}
	if (n == 1) {
		snprintf(it->reason, sizeof(it->reason), "waiting for the operator");
		it->retain = true;
	} else {
		snprintf(it->reason, sizeof(it->reason),
			 "waiting for the operator (%zu candidate keys for this serial)", n);
	}
}

/* Decides what a registration request does to the (locked) device row. */
static void decide_register(struct server *s, struct item *it, int64_t now)
{
	struct device *d = &it->dev;

	if (!it->have_dev) {
		it->status = "refused";
		snprintf(it->reason, sizeof(it->reason), "not activated");
		if (reg_refusal_add(s->r, it->serial, RF_REGISTER_STATE, 1) != CDB_OK)
			it->db_failed = true;
		return;
	}
	bool same_key = d->pubkey_pem && !strcasecmp(d->fpr, it->req.fpr);
	if (!strcmp(d->state, ST_ACTIVATED)) {
		if (d->activated_until && d->activated_until < now) {
			it->status = "refused";
			snprintf(it->reason, sizeof(it->reason), "activation expired");
			if (reg_refusal_add(s->r, d->serial, RF_REGISTER_STATE, 1) != CDB_OK)
				it->db_failed = true;
			return;
		}
		/* An activated serial has no candidates (activate forgets them), so --auto-accept
		 * pins this key at once: the statements of the bulk-registration path stay few. */
		if (s->o->auto_accept) {
			if (reg_audit(s->r, d->serial, "register", it->req.fpr) != CDB_OK)
				it->db_failed = true;
			auto_accept(s, it, false);
			return;
		}
		offer_candidate(s, it, "register");
		return;
	}
	if (!strcmp(d->state, ST_PENDING)) {
		offer_candidate(s, it, "register");
		return;
	}
	if (!strcmp(d->state, ST_ACCEPTED) && !same_key) {
		offer_candidate(s, it, "rekey-request");
		return;
	}
	if (!strcmp(d->state, ST_REJECTED)) {
		it->status = "rejected";
		it->retain = true;
	} else if (!strcmp(d->state, ST_REVOKED)) {
		it->status = "revoked";
		it->retain = true;
	} else if (!strcmp(d->state, ST_ACCEPTED)) {
		if (d->issued_version < d->cred_version || d->issued_version == 0) {
			it->issue = true;
		} else {
			char *env = NULL;
			if (reg_cred_get(s->r, d->serial, d->issued_version, &env) == CDB_OK) {
				it->envelope = env;
				it->version = d->issued_version;
				it->status = "accepted";
				it->retain = true;
			} else {
				it->issue = true; /* should not happen; issue a fresh version */
			}
		}
	}
}

/* Operator-driven work for a dirty device. */
static void decide_work(struct server *s, struct item *it)
{
	struct device *d = &it->dev;

	if (!strcmp(d->state, ST_ACCEPTED) && d->pubkey_pem && d->issued_version < d->cred_version) {
		it->issue = true;
		it->is_rotation = d->issued_version > 0;
	}
	if (!strcmp(d->state, ST_REVOKED)) {
		if (has_login(d))
			it->disable = true;
		it->status = "revoked";
		it->retain = true;
		d->replied = 1;
		it->changed = true;
	}
	if (!strcmp(d->state, ST_REJECTED) && !d->replied) {
		it->status = "rejected";
		it->retain = true;
		d->replied = 1;
		it->changed = true;
	}
	if (d->desired_published < d->desired_version)
		it->publish_desired = true;
	/* Prepare the device's role when the serial is activated, so that the registration itself
	 * costs the broker one command (each dynamic-security command rewrites its whole file). */
	if (s->o->accounts == ACCOUNTS_DYNSEC && !strcmp(d->state, ST_ACTIVATED) &&
	    !strcmp(d->broker_state, BR_NONE))
		it->make_role = true;
}

static int seal_item(struct server *s, struct item *it)
{
	struct device *d = &it->dev;
	char *creds = NULL;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	int r = -1, rc;

	it->version = d->cred_version > d->issued_version ? d->cred_version : d->issued_version + 1;
	if (proto_password(it->password) < 0) {
		cl_log(CL_ERR, "no randomness for a password");
		goto out;
	}
	creds = proto_credentials(s->public_host, s->public_port, s->public_tls, d->serial,
				  it->password, d->serial, s->device_ca, it->version);
	if (!creds)
		goto out;
	/* The pinned key is the request's key when the fingerprints match (the usual case): seal
	 * to the key parsed with the request instead of decoding the stored PEM again. */
	if (it->req.key && !strcasecmp(it->req.fpr, d->fpr))
		rc = et_envelope_seal_pubkey(it->req.key, d->serial, (uint32_t)it->version,
					     (const uint8_t *)creds, strlen(creds), &blob,
					     &blob_len);
	else
		rc = et_envelope_seal(d->pubkey_pem, d->serial, (uint32_t)it->version,
				      (const uint8_t *)creds, strlen(creds), &blob, &blob_len);
	if (rc < 0) {
		cl_log(CL_ERR, "%s: cannot seal credentials: %s", d->serial, et_errmsg());
		goto out;
	}
	it->envelope = proto_b64(blob, blob_len);
	if (!it->envelope)
		goto out;
	r = 0;
out:
	if (creds) {
		OPENSSL_cleanse(creds, strlen(creds));
		free(creds);
	}
	free(blob);
	return r;
}

/* The dynamic-security plugin runs in the broker's only thread and rewrites its whole file
 * after every command, so a long command list stalls the broker (and every client's
 * keepalive) for its whole duration. Send at most this many per message. */
#define DYNSEC_CHUNK 50

/* Runs a command array (consumed) in chunks; *ret_errs gets one entry per command. */
static int dynsec_run(struct server *s, cJSON *cmds, char ***ret_errs)
{
	size_t n = (size_t)cJSON_GetArraySize(cmds), done = 0;
	char **all = calloc(n + 1, sizeof(char *));
	int r = 0;

	if (!all) {
		cJSON_Delete(cmds);
		return -1;
	}
	while (done < n && r == 0) {
		cJSON *chunk = cJSON_CreateArray();
		char **errs = NULL;
		size_t k = 0;
		while (k < DYNSEC_CHUNK && cJSON_GetArraySize(cmds) > 0) {
			cJSON_AddItemToArray(chunk, cJSON_DetachItemFromArray(cmds, 0));
			k++;
		}
		if (mq_dynsec(s->mq, chunk, 60000, &stop_flag, &errs) < 0) {
			r = -1;
			break;
		}
		for (size_t i = 0; i < k; i++) {
			all[done + i] = errs[i];
			errs[i] = NULL;
		}
		mq_errors_free(errs, k);
		done += k;
	}
	/* cmds may still hold passwords when we stopped early: mq_dynsec wipes what it sent. */
	cJSON *it;
	cJSON_ArrayForEach(it, cmds)
	{
		cJSON *pw = cJSON_GetObjectItemCaseSensitive(it, "password");
		if (cJSON_IsString(pw) && pw->valuestring)
			explicit_bzero(pw->valuestring, strlen(pw->valuestring));
	}
	cJSON_Delete(cmds);
	if (r < 0) {
		mq_errors_free(all, n);
		return -1;
	}
	*ret_errs = all;
	return 0;
}

static bool ignorable(const char *command_err, const char *what)
{
	return command_err && strstr(command_err, what);
}

/* Creates or refreshes the broker logins of all items that need it, in one or two round trips.
 * Marks items failed when the broker refused. */
static int apply_broker(struct server *s, struct item *items, size_t n)
{
	cJSON *cmds = cJSON_CreateArray();
	char **errs = NULL;
	size_t ncmd = 0;
	int r = -1;

	if (!cmds)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		it->cmd_first = (int)ncmd;
		if (it->issue && !it->failed) {
			if (!strcmp(it->dev.broker_state, BR_NONE)) {
				dynsec_add_create_device_role(cmds, it->serial);
				dynsec_add_create_device_client(cmds, it->serial, it->password);
				ncmd += 2;
			} else if (!strcmp(it->dev.broker_state, BR_ROLE)) {
				dynsec_add_create_device_client(cmds, it->serial, it->password);
				ncmd++;
			} else {
				dynsec_add_set_password(cmds, it->serial, it->password);
				ncmd++;
				if (strcmp(it->dev.broker_state, BR_ENABLED)) {
					dynsec_add_enable(cmds, it->serial, 1);
					ncmd++;
				}
			}
		} else if (it->disable) {
			dynsec_add_enable(cmds, it->serial, 0);
			ncmd++;
		} else if (it->make_role) {
			dynsec_add_create_device_role(cmds, it->serial);
			ncmd++;
		}
		it->cmd_n = (int)ncmd - it->cmd_first;
	}
	if (ncmd == 0) {
		cJSON_Delete(cmds);
		return 0;
	}
	if (dynsec_run(s, cmds, &errs) < 0) {
		for (size_t i = 0; i < n; i++)
			if (items[i].cmd_n)
				items[i].failed = true;
		return -1;
	}
	/* Second round for logins that already existed (a crash between broker and commit, or a
	 * device re-activated after revocation): set the password, attach the role, enable. */
	cJSON *again = cJSON_CreateArray();
	size_t nagain = 0;
	int *again_first = calloc(n + 1, sizeof(int));
	if (!again || !again_first)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		again_first[i] = -1;
		for (int k = 0; k < it->cmd_n; k++) {
			const char *e = errs[it->cmd_first + k];
			if (!e || ignorable(e, "Role already exists"))
				continue;
			if (ignorable(e, "Client already exists")) {
				again_first[i] = (int)nagain;
				dynsec_add_set_password(again, it->serial, it->password);
				dynsec_add_client_role(again, it->serial);
				dynsec_add_enable(again, it->serial, 1);
				nagain += 3;
				continue;
			}
			if (ignorable(e, "Role not found")) {
				/* Our record said the role was there; make both next time. */
				snprintf(it->dev.broker_state, sizeof(it->dev.broker_state), BR_NONE);
				it->changed = true;
			}
			cl_log(CL_ERR, "%s: dynamic-security refused: %s", it->serial, e);
			it->failed = true;
		}
	}
	if (nagain) {
		char **errs2 = NULL;
		if (dynsec_run(s, again, &errs2) < 0) {
			again = NULL;
			for (size_t i = 0; i < n; i++)
				if (again_first[i] >= 0)
					items[i].failed = true;
			goto out;
		}
		again = NULL;
		for (size_t i = 0; i < n; i++) {
			if (again_first[i] < 0)
				continue;
			/* [0] setClientPassword and [2] enableClient must work; addClientRole may
			 * report that the role is already there. */
			const char *e0 = errs2[again_first[i]], *e2 = errs2[again_first[i] + 2];
			if (e0 || e2) {
				cl_log(CL_ERR, "%s: dynamic-security refused: %s", items[i].serial,
				       e0 ? e0 : e2);
				items[i].failed = true;
			}
		}
		mq_errors_free(errs2, nagain);
	}
	r = 0;
out:
	cJSON_Delete(again);
	free(again_first);
	mq_errors_free(errs, ncmd);
	return r;
}

/* Registry accounts: the broker side is rows in broker_accounts, in the caller's transaction.
 * A rotation to a new version for the same key keeps the old password valid (dual login) until
 * the device reports the new version; a new key (re-key) or a revoked login does not. */
static int apply_accounts(struct server *s, struct item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->issue && !it->failed) {
			char hash[ACCT_HASH_LEN], fpr[65] = "";
			if (acct_hash(it->password, hash) < 0) {
				cl_log(CL_ERR, "%s: no randomness for a password hash", it->serial);
				it->failed = true;
				continue;
			}
			if (it->is_rotation && !strcmp(it->dev.broker_state, BR_ENABLED)) {
				int rc = reg_cred_fpr(s->r, it->serial, it->dev.issued_version, fpr);
				if (rc < 0)
					return -1;
				it->keep_prev = rc == CDB_OK && !strcasecmp(fpr, it->dev.fpr);
			}
			if (reg_account_issue(s->r, it->serial, hash, it->version, it->keep_prev) != CDB_OK)
				return -1;
		} else if (it->disable) {
			if (reg_account_disable(s->r, it->serial) != CDB_OK)
				return -1;
		}
	}
	return 0;
}

/* Registry accounts: disconnect revoked devices (the plugin calls
 * mosquitto_kick_client_by_username). Their next login is refused by the database. */
static void publish_kicks(struct server *s, struct item *items, size_t n)
{
	cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "kick");
	size_t k = 0;
	char *t;

	for (size_t i = 0; i < n; i++)
		if (items[i].disable && !items[i].failed) {
			cJSON_AddItemToArray(arr, cJSON_CreateString(items[i].serial));
			k++;
		}
	cJSON_AddNumberToObject(o, "v", 1);
	t = k ? cJSON_PrintUnformatted(o) : NULL;
	if (t)
		mq_publish(s->mq, SERVE_CONTROL_TOPIC, t, strlen(t), 1, false);
	free(t);
	cJSON_Delete(o);
}

static void publish_results(struct server *s, struct item *items, size_t n)
{
	char topic[160];

	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->failed)
			continue;
		if (it->status) {
			char *reply = proto_reply(it->serial, it->status, it->reason, it->req.nonce,
						  it->envelope ? it->version : 0, it->envelope);
			snprintf(topic, sizeof(topic), "et/v1/%s/register/reply", it->serial);
			if (reply)
				mq_publish(s->mq, topic, reply, strlen(reply), 1, it->retain);
			free(reply);
		}
		if (it->is_rotation && it->envelope) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "v", 1);
			cJSON_AddNumberToObject(o, "cred_version", (double)it->version);
			cJSON_AddStringToObject(o, "envelope", it->envelope);
			char *t = cJSON_PrintUnformatted(o);
			snprintf(topic, sizeof(topic), "et/v1/%s/creds", it->serial);
			if (t)
				mq_publish(s->mq, topic, t, strlen(t), 1, true);
			free(t);
			cJSON_Delete(o);
		}
		if (it->publish_desired) {
			cJSON *o = cJSON_CreateObject();
			cJSON *set = it->dev.desired_json ? cJSON_Parse(it->dev.desired_json) : NULL;
			cJSON_AddNumberToObject(o, "v", 1);
			cJSON_AddNumberToObject(o, "version", (double)it->dev.desired_version);
			cJSON_AddItemToObject(o, "settings", set ? set : cJSON_CreateObject());
			char *t = cJSON_PrintUnformatted(o);
			snprintf(topic, sizeof(topic), "et/v1/%s/settings/desired", it->serial);
			if (t)
				mq_publish(s->mq, topic, t, strlen(t), 1, true);
			free(t);
			cJSON_Delete(o);
		}
	}
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->serial, ((const struct item *)b)->serial);
}

/* One transaction over items with distinct serials (sorted, so instances lock rows in the same
 * order and cannot deadlock each other). */
/* A request the broker received before the serial's (last) activation is never acted on, however
 * late serve sees it: planted before `activate`, or queued in serve's session while it was away
 * (docs/protocol.md, "Registration happens after activation"). Read under the row lock, so an
 * activation cannot slip in between this check and the decision. No reply: the device sends
 * its request again. */
static bool register_stale(struct server *s, struct item *it)
{
	int64_t act = 0;
	int rc = reg_activation_ms(s->r, it->serial, &act);

	if (rc == REG_NOTFOUND || (rc == CDB_OK && it->received_ms >= act))
		return false;
	if (rc == CDB_OK) {
		cl_log(CL_INFO, "%s: ignored a registration request received %" PRId64 " ms before the "
				"serial's activation", it->serial, act - it->received_ms);
		reg_refusal_add(s->r, it->serial, RF_REGISTER_STALE, 1);
	} else {
		cl_log(CL_ERR, "database: %s; registration request of %s ignored", cdb_errmsg(s->r->db),
		       it->serial);
	}
	return true;
}

static int process_round(struct server *s, struct item *items, size_t n)
{
	int64_t now = reg_now();
	int rc;

	qsort(items, n, sizeof(*items), cmp_item);
	cl_log(CL_DEBUG, "batch of %zu", n);
	if (cdb_begin(s->r->db) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(s->r->db));
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		rc = reg_device_get(s->r, it->serial, true, &it->dev);
		if (rc < 0)
			goto dberr;
		it->have_dev = rc == CDB_OK;
		if (it->kind == IT_REGISTER) {
			if (!register_stale(s, it))
				decide_register(s, it, now);
		}
		else if (it->have_dev)
			decide_work(s, it);
		if (it->db_failed)
			goto dberr;
		if (it->issue && seal_item(s, it) < 0)
			it->failed = true;
	}
	cl_log(CL_DEBUG, "batch: rows locked and envelopes sealed");
	if (s->o->accounts == ACCOUNTS_DYNSEC)
		apply_broker(s, items, n);
	else if (apply_accounts(s, items, n) < 0)
		goto dberr;
	cl_log(CL_DEBUG, "batch: broker logins applied");
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		struct device *d = &it->dev;
		if (!it->have_dev)
			continue;
		if (it->issue && !it->failed) {
			long ins = 0;
			if (reg_cred_insert(s->r, d->serial, it->version, d->fpr, it->envelope, &ins) != CDB_OK)
				goto dberr;
			if (ins != 1) {
				/* Cannot happen while the row is locked; refuse to hand out a second one. */
				cl_log(CL_ERR, "%s: credential version %" PRId64 " already issued; not issuing again",
				       d->serial, it->version);
				it->failed = true;
				continue;
			}
			char vb[32];
			snprintf(vb, sizeof(vb), "version %" PRId64, it->version);
			reg_audit(s->r, d->serial, it->is_rotation ? "rotate-issued" : "issue", vb);
			d->issued_version = it->version;
			d->cred_version = it->version;
			snprintf(d->broker_state, sizeof(d->broker_state), BR_ENABLED);
			it->status = "accepted";
			it->retain = true;
			it->changed = true;
		}
		if (it->make_role && !it->failed) {
			snprintf(d->broker_state, sizeof(d->broker_state), BR_ROLE);
			it->changed = true;
		}
		if (it->disable && !it->failed) {
			snprintf(d->broker_state, sizeof(d->broker_state), BR_DISABLED);
			reg_audit(s->r, d->serial, "broker-disabled", NULL);
			it->changed = true;
		}
		if (it->publish_desired) {
			d->desired_published = d->desired_version;
			it->changed = true;
		}
		int dirty = needs_work(s, d);
		if (dirty != d->dirty) {
			d->dirty = dirty;
			it->changed = true;
		}
		if (it->changed && reg_device_update(s->r, d) != CDB_OK)
			goto dberr;
	}
	rc = cdb_commit(s->r->db);
	if (rc != CDB_OK) {
		cl_log(CL_ERR, "database commit failed: %s", cdb_errmsg(s->r->db));
		return rc;
	}
	cl_log(CL_DEBUG, "batch: committed");
	publish_results(s, items, n);
	if (s->o->accounts == ACCOUNTS_REGISTRY)
		publish_kicks(s, items, n);
	for (size_t i = 0; i < n; i++) {
		struct item *it = &items[i];
		if (it->issue && !it->failed) {
			s->issued++;
			cl_log(CL_INFO, "%s: credentials version %" PRId64 " issued", it->serial, it->version);
		} else if (it->kind == IT_REGISTER && it->status && !strcmp(it->status, "refused")) {
			s->refused++;
			cl_log(CL_WARNING, "%s: registration refused: %s", it->serial, it->reason);
		} else if (it->kind == IT_REGISTER && it->status) {
			cl_log(CL_INFO, "%s: registration answered %s%s%s", it->serial, it->status,
			       it->reason[0] ? ": " : "", it->reason);
		}
	}
	return 0;
dberr:
	rc = cdb_errmsg(s->r->db)[0] ? CDB_ERR : CDB_ERR;
	cl_log(CL_ERR, "database: %s", cdb_errmsg(s->r->db));
	cdb_rollback(s->r->db);
	return rc;
}

/* Splits items into rounds of distinct serials and runs each, retrying on deadlock. */
static void process_items(struct server *s, struct item *items, size_t n)
{
	size_t done = 0;

	while (done < n) {
		/* Take the longest prefix without a repeated serial. */
		size_t end = done + 1;
		for (; end < n; end++) {
			bool dup = false;
			for (size_t k = done; k < end && !dup; k++)
				dup = !strcmp(items[k].serial, items[end].serial);
			if (dup)
				break;
		}
		for (int attempt = 0; attempt < 3; attempt++) {
			int rc = process_round(s, items + done, end - done);
			if (rc == 0)
				break;
			/* Reset outcomes before retrying. */
			for (size_t i = done; i < end; i++) {
				struct item *it = &items[i];
				device_clear(&it->dev);
				free(it->envelope);
				it->envelope = NULL;
				it->status = NULL;
				it->reason[0] = '\0';
				it->issue = it->disable = it->publish_desired = it->failed = false;
				it->db_failed = false;
				it->make_role = it->keep_prev = false;
				it->changed = it->have_dev = it->is_rotation = it->retain = false;
			}
			if (rc != CDB_RETRY)
				break;
		}
		done = end;
	}
}

static void refuse_now(struct server *s, const char *serial, const char *reason, const char *topic)
{
	char t[160];
	cl_log(CL_WARNING, "registration on %s refused: %s", topic, reason);
	s->refused++;
	rf_tally_add(&s->bad, serial, RF_REGISTER_BAD);
	if (!serial)
		return;
	char *reply = proto_reply(serial, "refused", reason, NULL, 0, NULL);
	snprintf(t, sizeof(t), "et/v1/%s/register/reply", serial);
	if (reply)
		mq_publish(s->mq, t, reply, strlen(reply), 1, false);
	free(reply);
}

/* Telemetry acks go out only after the batch's commit (docs/protocol.md, "Delivery end to
 * end"): retained, so a device that reconnects gets the latest one at once. */
static void publish_ack(const char *serial, const char *json, size_t len, void *ud)
{
	struct server *s = ud;
	char topic[160];

	snprintf(topic, sizeof(topic), "et/v1/%s/telemetry/ack", serial);
	mq_publish(s->mq, topic, json, len, 1, true);
}

/* Registration requests serve never acts on: retained ones (replayed by the broker at every
 * subscribe, whoever planted them) and ones without the broker plugin's receive time (a broker
 * without the plugin: the request's age is unknown). Counted, not answered. */
static bool register_ignored(struct server *s, const char *serial, const struct mq_msg *m)
{
	static bool warned;
	const char *why = m->retained ? RF_REGISTER_RETAINED : !m->received_ms ? RF_REGISTER_UNSTAMPED : NULL;

	if (!why)
		return false;
	if (m->retained) {
		cl_log(CL_INFO, "retained registration request on %.80s ignored", m->topic);
	} else if (!warned) {
		cl_log(CL_ERR, "registration request on %.80s ignored: it has no broker receive time "
			       "(%s): a last-will message, or a broker without the edgetrust plugin "
			       "(load it as init-broker writes); logged once, counted always",
		       m->topic, WIRE_RECEIVED_PROP);
		warned = true;
	}
	if (reg_refusal_add(s->r, serial, why, 1) != CDB_OK)
		cl_log(CL_ERR, "database: %s", cdb_errmsg(s->r->db));
	return true;
}

static void handle_messages(struct server *s, struct mq_msg *msgs)
{
	size_t n = 0, cap = 0;
	struct item *items = NULL;
	struct proto_acks *acks = NULL;
	bool data_tx = false;

	for (struct mq_msg *m = msgs; m; m = m->next) {
		char serial[65], reason[256];
		const char *rest;
		if (!proto_topic_split(m->topic, serial, &rest)) {
			cl_log(CL_WARNING, "message on unexpected topic '%.80s' ignored", m->topic);
			continue;
		}
		if (!strcmp(rest, "register")) {
			struct reg_req req;
			s->registrations++;
			if (register_ignored(s, serial, m))
				continue;
			if (proto_parse_register(serial, m->payload, m->len, &req, reason, sizeof(reason)) < 0) {
				refuse_now(s, serial, reason, m->topic);
				continue;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct item *ni = realloc(items, nc * sizeof(*ni));
				if (!ni) {
					reg_req_clear(&req);
					continue;
				}
				items = ni;
				cap = nc;
			}
			memset(&items[n], 0, sizeof(items[n]));
			items[n].kind = IT_REGISTER;
			snprintf(items[n].serial, sizeof(items[n].serial), "%s", serial);
			items[n].req = req;
			items[n].received_ms = m->received_ms;
			n++;
		} else if (!strcmp(rest, "telemetry") || !strcmp(rest, "status") ||
			   !strcmp(rest, "settings/reported")) {
			if (!data_tx) {
				if (cdb_begin(s->r->db) != CDB_OK) {
					cl_log(CL_ERR, "database: %s", cdb_errmsg(s->r->db));
					continue;
				}
				data_tx = true;
			}
			if (!acks)
				acks = proto_acks_new();
			ingest_message(s->ingest, serial, rest, m->payload, m->len, acks);
		}
	}
	/* cdb_commit fails unless the database really committed (PostgreSQL answers COMMIT of an
	 * aborted transaction with a rollback, not an error): then nothing is acknowledged. */
	if (data_tx && cdb_commit(s->r->db) != CDB_OK)
		cl_log(CL_ERR, "database commit of device data failed: %s; not acknowledged, the "
			       "devices send it again", cdb_errmsg(s->r->db));
	else if (data_tx)
		proto_acks_emit(acks, publish_ack, s);
	proto_acks_free(acks);
	if (n)
		process_items(s, items, n);
	rf_tally_flush(s->r, &s->bad);
	for (size_t i = 0; i < n; i++)
		item_clear(&items[i]);
	free(items);
}

static void poll_dirty(struct server *s)
{
	char **serials = NULL;
	size_t n = 0;
	struct item *items;

	if (reg_dirty_list(s->r, (size_t)s->o->batch_max, &serials, &n) != CDB_OK) {
		cl_log(CL_ERR, "database: %s", cdb_errmsg(s->r->db));
		return;
	}
	if (n == 0) {
		free(serials);
		return;
	}
	items = calloc(n, sizeof(*items));
	if (items) {
		for (size_t i = 0; i < n; i++) {
			items[i].kind = IT_WORK;
			snprintf(items[i].serial, sizeof(items[i].serial), "%s", serials[i]);
		}
		process_items(s, items, n);
		for (size_t i = 0; i < n; i++)
			item_clear(&items[i]);
		free(items);
	}
	for (size_t i = 0; i < n; i++)
		free(serials[i]);
	free(serials);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int read_text_file(const char *path, size_t max, char **ret)
{
	et_secret *sec = NULL;
	if (et_secret_read_file(path, max, &sec) < 0)
		return -1;
	char *t = malloc(et_secret_len(sec) + 1);
	if (!t) {
		et_secret_free(sec);
		return -1;
	}
	memcpy(t, et_secret_data(sec), et_secret_len(sec));
	t[et_secret_len(sec)] = '\0';
	et_secret_free(sec);
	*ret = t;
	return 0;
}

int cloud_serve(const struct serve_opts *o)
{
	struct server s = { .o = o };
	et_secret *pw = NULL;
	char client_id[128], actor[128];
	int ec = EC_FAILURE;
	static const char *const subs[] = {
		"$share/etcloud/et/v1/+/register",
		"$share/etcloud/et/v1/+/telemetry",
		"$share/etcloud/et/v1/+/status",
		"$share/etcloud/et/v1/+/settings/reported",
		"$CONTROL/dynamic-security/v1/response",
		NULL,
	};

	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (o->broker_password_file && et_secret_read_file(o->broker_password_file, 1024, &pw) < 0) {
		cl_log(CL_ERR, "cannot read the broker password: %s", et_errmsg());
		return EC_FILE;
	}
	if (o->device_ca_file && read_text_file(o->device_ca_file, 64 * 1024, &s.device_ca) < 0) {
		cl_log(CL_ERR, "cannot read --device-ca %s: %s", o->device_ca_file, et_errmsg());
		ec = EC_FILE;
		goto out;
	}
	s.public_host = o->public_host ? o->public_host : o->broker_host;
	s.public_port = o->public_port ? o->public_port : o->broker_port;
	s.public_tls = o->public_tls >= 0 ? o->public_tls : o->broker_tls;

	snprintf(actor, sizeof(actor), "serve:%s", o->instance);
	if (reg_open(o->db_url, actor, &s.r) != CDB_OK) {
		ec = EC_DB;
		goto out;
	}
	if (!(s.ingest = ingest_new(s.r, o))) {
		cl_log(CL_ERR, "out of memory for the telemetry rate limiter (--telemetry-devices)");
		goto out;
	}
	/* A fixed client id per instance and a persistent session: the broker keeps what devices
	 * send (telemetry, requests) while this instance is away (docs/protocol.md, "Delivery end
	 * to end"). Instance names must therefore be unique. */
	snprintf(client_id, sizeof(client_id), "etcloud-%s", o->instance);
	struct mq_config mc = {
		.host = o->broker_host, .port = o->broker_port, .username = o->broker_user,
		.password = pw, .client_id = client_id, .tls = o->broker_tls,
		.cafile = o->broker_cafile, .capath = o->broker_capath, .keepalive = 30,
		.subscriptions = subs, .session_expiry = 7 * 86400,
	};
	if (mq_new(&mc, &s.mq) < 0) {
		ec = EC_BROKER;
		goto out;
	}
	int cr = mq_connect_wait(s.mq, &stop_flag, true);
	if (cr == -2) {
		cl_log(CL_ERR, "the broker refused the cloud's login: check --broker-user and "
			       "--broker-password-file (made by init-broker)");
		ec = EC_BROKER;
		goto out;
	}
	cl_log(CL_INFO, "serving (database %s, auto-accept %s, device logins in %s)",
	       s.r->db->ops->name, o->auto_accept ? "on" : "off",
	       o->accounts == ACCOUNTS_DYNSEC ? "dynamic security" : "the registry");

	int64_t next_poll = 0;
	while (!stop_flag) {
		if (mq_loop(s.mq, 50, &stop_flag) < 0)
			break;
		/* Drain what is already on the socket, up to a batch, before handling it. */
		int64_t until = mono_ms() + 20;
		int idle = 0;
		while (!stop_flag && mq_queued(s.mq) < (size_t)o->batch_max && mono_ms() < until &&
		       idle < 4) {
			size_t before = mq_queued(s.mq);
			if (mq_loop(s.mq, 0, &stop_flag) < 0)
				break;
			idle = mq_queued(s.mq) == before ? idle + 1 : 0;
		}
		struct mq_msg *msgs = mq_take(s.mq, (size_t)o->batch_max);
		if (msgs) {
			handle_messages(&s, msgs);
			mq_msg_free(msgs);
		}
		if (mono_ms() >= next_poll) {
			poll_dirty(&s);
			next_poll = mono_ms() + o->poll_ms;
		}
	}
	cl_log(CL_INFO, "stopping: %lu registration requests, %lu credentials issued, %lu refused",
	       s.registrations, s.issued, s.refused);
	ec = EC_OK;
out:
	mq_free(s.mq);
	ingest_free(s.ingest);
	reg_close(s.r);
	et_secret_free(pw);
	free(s.device_ca);
	return ec;
}
