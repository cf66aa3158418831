/* SPDX-License-Identifier: Apache-2.0 */
/* Device data into the registry (see ingest.h): size and rate limits, validation, storage in a
 * savepoint per message, refusal counters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "limits.h"
#include "log.h"
#include "refusal.h"

struct ingest {
	reg *r;
	const struct serve_opts *o;
	struct lim_table *lim;
	int64_t last_warn_ms;
	unsigned long quiet; /* warnings not logged since the last one */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ingest *ingest_new(reg *r, const struct serve_opts *o)
{
	struct ingest *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->r = r;
	g->o = o;
	g->lim = lim_new((size_t)o->tel_devices, o->tel_rate, o->tel_burst);
	if (!g->lim) {
		free(g);
		return NULL;
	}
	return g;
}

void ingest_free(struct ingest *g)
{
	if (g)
		lim_free(g->lim);
	free(g);
}

/* Refusals are counted always but logged at most once a second: a hostile device must not
 * fill the log at its sending rate (the counters say how many there were). */
static void refused(struct ingest *g, const char *serial, const char *reason, long n,
		    const char *kind, const char *why)
{
	int64_t t = now_ms();

	if (t - g->last_warn_ms >= 1000) {
		cl_log(CL_WARNING, "%s: %s refused (%s, %ld): %s%s", serial, kind, reason, n, why,
		       g->quiet
			   ? " (and earlier refusals not logged: see `edgetrust-cloud refusals`)"
			   : "");
		g->last_warn_ms = t;
		g->quiet = 0;
	} else {
		cl_log(CL_DEBUG, "%s: %s refused (%s, %ld): %s", serial, kind, reason, n, why);
		g->quiet++;
	}
	/* In its own savepoint: a failing counter must not fail the batch. */
	if (cdb_savepoint(g->r->db) != CDB_OK)
		return;
	if (reg_refusal_add(g->r, serial, reason, n) == CDB_OK)
		cdb_release(g->r->db);
	else {
		cl_log(CL_ERR, "%s: cannot count a refusal: %s", serial, cdb_errmsg(g->r->db));
		cdb_rollback_to(g->r->db);
	}
}

static int store_telemetry(struct ingest *g, const char *serial, const struct proto_tel *t,
			   long *ret_stored)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct proto_rec *rc = &t->rec[i];
		char vb[32];
		long ins = 0;
		if (rc->has_value)
			snprintf(vb, sizeof(vb), "%.17g",
				 rc->value); /* finite: digits, never "inf" */
		if (reg_telemetry_insert(g->r, serial, t->epoch, rc->seq, rc->ts, rc->device,
					 rc->point, rc->has_value ? vb : NULL, rc->unit, rc->q,
					 &ins) != CDB_OK)
			return -1;
		*ret_stored += ins;
	}
	return 0;
}

/* Registry accounts: a device reporting the current credential version in its status has
 * switched to it, so the password before the rotation stops working. */
static int confirm_cred_version(struct ingest *g, const char *serial, int64_t cv)
{
	long changed = 0;
	char detail[48];

	if (g->o->accounts != ACCOUNTS_REGISTRY || cv < 1)
		return 0;
	if (reg_account_confirm(g->r, serial, cv, &changed) != CDB_OK)
		return -1;
	if (changed) {
		snprintf(detail, sizeof(detail), "device uses version %" PRId64, cv);
		if (reg_audit(g->r, serial, "rotate-confirmed", detail) != CDB_OK)
			return -1;
		cl_log(CL_INFO,
		       "%s: credential version %" PRId64 " in use; the previous password no "
		       "longer works",
		       serial, cv);
	}
	return 0;
}

static int store_state(struct ingest *g, const char *serial, bool status, const char *json,
		       const struct proto_status *st)
{
	char tb[24], ob[24];
	if (status) {
		const char *p[] = {json, reg_i64(st->online, ob), reg_i64(reg_now(), tb), serial};
		if (cdb_exec(g->r->db,
			     "UPDATE devices SET status_json = ?, online = CAST(? AS INTEGER),"
			     " last_seen = CAST(? AS BIGINT) WHERE serial = ?",
			     4, p) != CDB_OK)
			return -1;
		return confirm_cred_version(g, serial, st->cred_version);
	}
	const char *p[] = {json, reg_i64(reg_now(), tb), serial};
	return cdb_exec(g->r->db,
			"UPDATE devices SET reported_json = ?, last_seen = CAST(? AS BIGINT)"
			" WHERE serial = ?",
			3, p);
}

void ingest_message(struct ingest *g, const char *serial, const char *kind, const void *payload,
		    size_t len, struct proto_acks *acks)
{
	bool tel = !strcmp(kind, "telemetry"), status = !strcmp(kind, "status");
	const char *bad = tel ? RF_TELEMETRY_BAD : RF_STATUS_BAD;
	struct proto_tel t = {0};
	struct proto_status st = {0};
	char reason[256], *json = NULL;
	size_t nrec = 0;
	long stored = 0;
	int rc;

	if (len > (size_t)g->o->tel_max_bytes) {
		snprintf(reason, sizeof(reason), "%zu bytes, limit %d (--telemetry-max-bytes)", len,
			 g->o->tel_max_bytes);
		refused(g, serial, tel ? RF_TELEMETRY_SIZE : RF_STATUS_BAD, 1, kind, reason);
		return;
	}
	if (tel)
		rc = proto_parse_telemetry(serial, payload, len, &t, &nrec, reason, sizeof(reason));
	else if (status)
		rc = proto_parse_status(serial, payload, len, &json, &st, reason, sizeof(reason));
	else
		rc = proto_parse_reported(serial, payload, len, &json, reason, sizeof(reason));
	if (rc < 0) {
		refused(g, serial, bad, nrec ? (long)nrec : 1, kind, reason);
		goto out;
	}
	/* A message over the rate is refused whole and takes no tokens: not acknowledged, the
	 * agent sends it again after its ack timeout (docs/edgetrust-cloud.md "Telemetry limits").
	 */
	if (!lim_take(g->lim, serial, tel ? (double)(t.n + t.nbad) : 1.0, now_ms())) {
		snprintf(reason, sizeof(reason),
			 "over %d records/s, burst %d (--telemetry-rate, "
			 "--telemetry-burst); not acknowledged",
			 g->o->tel_rate, g->o->tel_burst);
		refused(g, serial, RF_TELEMETRY_RATE, tel ? (long)(t.n + t.nbad) : 1, kind, reason);
		goto out;
	}
	if (t.nbad)
		refused(g, serial, bad, (long)t.nbad, kind, t.bad_reason);
	if (tel && t.n == 0)
		goto out;
	/* Only this message is undone when a statement fails (PostgreSQL aborts the whole
	 * transaction on any error otherwise): its records are not acknowledged and come again. */
	if (cdb_savepoint(g->r->db) != CDB_OK) {
		cl_log(CL_ERR, "%s: database: %s; %s not stored", serial, cdb_errmsg(g->r->db),
		       kind);
		goto out;
	}
	rc = tel ? store_telemetry(g, serial, &t, &stored)
		 : store_state(g, serial, status, json, &st);
	if (rc < 0 || cdb_release(g->r->db) != CDB_OK) {
		cl_log(CL_ERR, "%s: %s not stored (database: %s)%s", serial, kind,
		       cdb_errmsg(g->r->db),
		       tel ? "; not acknowledged, the device sends it again" : "");
		if (rc < 0)
			cdb_rollback_to(g->r->db);
		refused(g, serial, RF_TELEMETRY_DBERR, tel ? (long)t.n : 1, kind, "database error");
		goto out;
	}
	for (size_t i = 0; tel && acks && i < t.n; i++)
		if (proto_acks_add(acks, serial, t.epoch, t.rec[i].seq) < 0) {
			cl_log(CL_WARNING,
			       "%s: out of memory for acks; the device sends them again", serial);
			break;
		}
	if (tel)
		cl_log(CL_DEBUG, "%s: telemetry %ld stored, %zu duplicates, %zu refused", serial,
		       stored, t.n - (size_t)stored, t.nbad);
out:
	proto_tel_clear(&t);
	free(json);
}
