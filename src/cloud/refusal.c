/* SPDX-License-Identifier: Apache-2.0 */
/* Refusal counters over db.h (see refusal.h). One upsert per call, in the caller's transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#include "refusal.h"

int reg_refusal_add(reg *r, const char *serial, const char *reason, long n)
{
	char nb[24], tb[24];
	const char *p[] = { serial ? serial : "", reason, reg_i64(n, nb), reg_i64(reg_now(), tb) };

	/* "WHERE 1 = 1": SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT. */
	return cdb_exec(r->db,
			"INSERT INTO refusals (serial, reason, count, last_at)"
			" SELECT COALESCE((SELECT serial FROM devices WHERE serial = ?), ''), ?,"
			" CAST(? AS BIGINT), CAST(? AS BIGINT) WHERE 1 = 1"
			" ON CONFLICT (serial, reason) DO UPDATE SET"
			" count = refusals.count + excluded.count, last_at = excluded.last_at",
			4, p);
}

static cJSON *rows_json(cdb_rows *rows, bool with_serial)
{
	cJSON *o = with_serial ? cJSON_CreateArray() : cJSON_CreateObject();
	for (size_t i = 0; o && i < rows->nrows; i++) {
		cJSON *e = cJSON_CreateObject();
		if (with_serial) {
			cJSON_AddStringToObject(e, "serial", cdb_cell(rows, i, 0));
			cJSON_AddStringToObject(e, "reason", cdb_cell(rows, i, 1));
		}
		cJSON_AddNumberToObject(e, "count", strtod(cdb_cell(rows, i, 2), NULL));
		cJSON_AddNumberToObject(e, "last_at", strtod(cdb_cell(rows, i, 3), NULL));
		if (with_serial)
			cJSON_AddItemToArray(o, e);
		else
			cJSON_AddItemToObject(o, cdb_cell(rows, i, 1), e);
	}
	return o;
}

cJSON *reg_refusals_json(reg *r, const char *serial)
{
	cdb_rows *rows = NULL;
	const char *p[] = { serial ? serial : "" };
	if (cdb_query(r->db, "SELECT serial, reason, count, last_at FROM refusals WHERE serial = ?"
			     " ORDER BY reason", 1, p, &rows) != CDB_OK)
		return NULL;
	cJSON *o = rows_json(rows, false);
	cdb_rows_free(rows);
	return o;
}

cJSON *reg_refusals_all_json(reg *r)
{
	cdb_rows *rows = NULL;
	if (cdb_query(r->db, "SELECT serial, reason, count, last_at FROM refusals"
			     " ORDER BY serial, reason", 0, NULL, &rows) != CDB_OK)
		return NULL;
	cJSON *o = rows_json(rows, true);
	cdb_rows_free(rows);
	return o;
}

void rf_tally_add(struct rf_tally *t, const char *serial, const char *reason)
{
	size_t i;

	if (!serial)
		serial = "";
	for (i = 0; i < t->n; i++)
		if (t->e[i].reason == reason && !strcmp(t->e[i].serial, serial))
			break;
	if (i == t->n && t->n >= RF_TALLY_MAX) { /* full: count under the "" bucket */
		serial = "";
		for (i = 0; i < t->n; i++)
			if (t->e[i].reason == reason && !t->e[i].serial[0])
				break;
		if (i == t->n && t->n == sizeof(t->e) / sizeof(t->e[0]))
			return; /* more reasons than buckets: cannot happen with one caller */
	}
	if (i == t->n) {
		snprintf(t->e[i].serial, sizeof(t->e[i].serial), "%s", serial);
		t->e[i].reason = reason;
		t->e[i].count = 0;
		t->n++;
	}
	t->e[i].count++;
}

void rf_tally_flush(reg *r, struct rf_tally *t)
{
	if (t->n == 0)
		return;
	int rc = cdb_begin(r->db);
	for (size_t i = 0; rc == CDB_OK && i < t->n; i++)
		rc = reg_refusal_add(r, t->e[i].serial, t->e[i].reason, t->e[i].count);
	if (rc == CDB_OK)
		rc = cdb_commit(r->db);
	else
		cdb_rollback(r->db);
	if (rc != CDB_OK)
		cl_log(CL_ERR, "database: refusal counters not written: %s", cdb_errmsg(r->db));
	t->n = 0;
}
