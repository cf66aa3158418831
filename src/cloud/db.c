/* SPDX-License-Identifier: Apache-2.0 */
/* Backend-independent part of the database interface: dispatch, transactions, row sets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

int cdb_open(const char *url, cdb **ret)
{
	char err[512] = "";
	int r;

	if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11))
		r = cdb_pg_open(url, ret, err, sizeof(err));
	else
		r = cdb_sqlite_open(url, ret, err, sizeof(err));
	if (r < 0)
		cl_log(CL_ERR, "database %s: %s", url, err);
	return r;
}

void cdb_close(cdb *db)
{
	if (db)
		db->ops->close(db);
}

const char *cdb_errmsg(const cdb *db)
{
	return db->errmsg;
}

bool cdb_is_pg(const cdb *db)
{
	return db->ops->for_update;
}

int cdb_exec(cdb *db, const char *sql, int n, const char *const *params)
{
	return db->ops->exec(db, sql, n, params, NULL, NULL);
}

int cdb_exec_changes(cdb *db, const char *sql, int n, const char *const *params, long *ret_changes)
{
	return db->ops->exec(db, sql, n, params, NULL, ret_changes);
}

int cdb_query(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret)
{
	return db->ops->exec(db, sql, n, params, ret, NULL);
}

void cdb_rows_free(cdb_rows *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrows * r->ncols; i++)
		free(r->cell[i]);
	free(r->cell);
	free(r);
}

int cdb_begin(cdb *db)
{
	int r;

	if (db->depth > 0) {
		db->depth++;
		return CDB_OK;
	}
	r = cdb_exec(db, cdb_is_pg(db) ? "BEGIN" : "BEGIN IMMEDIATE", 0, NULL);
	if (r == CDB_OK)
		db->depth = 1;
	return r;
}

int cdb_commit(cdb *db)
{
	int r;

	if (db->depth > 1) {
		db->depth--;
		return CDB_OK;
	}
	r = cdb_exec(db, "COMMIT", 0, NULL);
	if (r != CDB_OK) {
		char saved[sizeof(db->errmsg)];
		memcpy(saved, db->errmsg, sizeof(saved));
		cdb_exec(db, "ROLLBACK", 0, NULL);
		memcpy(db->errmsg, saved, sizeof(saved));
	}
	db->depth = 0;
	return r;
}

void cdb_rollback(cdb *db)
{
	if (db->depth == 0)
		return;
	db->depth = 0;
	cdb_exec(db, "ROLLBACK", 0, NULL);
}
