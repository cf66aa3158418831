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

/* Every statement goes through here, so a failure inside a transaction is never missed. */
static int run(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret_rows,
	       long *ret_changes)
{
	int r = db->ops->exec(db, sql, n, params, ret_rows, ret_changes);
	if (r != CDB_OK && db->depth > 0)
		db->failed = true;
	return r;
}

int cdb_exec(cdb *db, const char *sql, int n, const char *const *params)
{
	return run(db, sql, n, params, NULL, NULL);
}

int cdb_exec_changes(cdb *db, const char *sql, int n, const char *const *params, long *ret_changes)
{
	return run(db, sql, n, params, NULL, ret_changes);
}

int cdb_query(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret)
{
	return run(db, sql, n, params, ret, NULL);
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
	r = db->ops->exec(db, cdb_is_pg(db) ? "BEGIN" : "BEGIN IMMEDIATE", 0, NULL, NULL, NULL);
	if (r == CDB_OK) {
		db->depth = 1;
		db->failed = db->in_savepoint = false;
	}
	return r;
}

int cdb_commit(cdb *db)
{
	int r;

	if (db->depth > 1) {
		db->depth--;
		return CDB_OK;
	}
	if (db->failed) {
		/* The error was reported when it happened; this names the consequence. */
		char saved[sizeof(db->errmsg)];
		memcpy(saved, db->errmsg, sizeof(saved));
		cdb_rollback(db);
		snprintf(db->errmsg, sizeof(db->errmsg),
			 "transaction rolled back: a statement in it failed (%.400s)", saved);
		return CDB_ERR;
	}
	db->tag[0] = '\0';
	r = db->ops->exec(db, "COMMIT", 0, NULL, NULL, NULL);
	/* PostgreSQL answers COMMIT of an aborted transaction with the tag ROLLBACK and no error. */
	if (r == CDB_OK && cdb_is_pg(db) && strcmp(db->tag, "COMMIT")) {
		snprintf(db->errmsg, sizeof(db->errmsg),
			 "the database rolled the transaction back (COMMIT answered '%.20s')", db->tag);
		r = CDB_ERR;
	}
	if (r != CDB_OK) {
		char saved[sizeof(db->errmsg)];
		memcpy(saved, db->errmsg, sizeof(saved));
		db->ops->exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
		memcpy(db->errmsg, saved, sizeof(saved));
	}
	db->depth = 0;
	db->failed = db->in_savepoint = false;
	return r;
}

void cdb_rollback(cdb *db)
{
	if (db->depth == 0)
		return;
	db->depth = 0;
	db->failed = db->in_savepoint = false;
	db->ops->exec(db, "ROLLBACK", 0, NULL, NULL, NULL);
}

int cdb_savepoint(cdb *db)
{
	if (db->depth == 0 || db->in_savepoint) {
		snprintf(db->errmsg, sizeof(db->errmsg), "savepoint outside a transaction or nested");
		return CDB_ERR;
	}
	int r = run(db, "SAVEPOINT et_unit", 0, NULL, NULL, NULL);
	if (r == CDB_OK) {
		db->in_savepoint = true;
		db->failed_before_savepoint = db->failed;
	}
	return r;
}

int cdb_release(cdb *db)
{
	if (!db->in_savepoint)
		return CDB_ERR;
	if (db->failed && !db->failed_before_savepoint) {
		cdb_rollback_to(db);
		return CDB_ERR;
	}
	db->in_savepoint = false;
	return run(db, "RELEASE SAVEPOINT et_unit", 0, NULL, NULL, NULL);
}

int cdb_rollback_to(cdb *db)
{
	if (!db->in_savepoint)
		return CDB_ERR;
	char saved[sizeof(db->errmsg)];
	memcpy(saved, db->errmsg, sizeof(saved));
	bool was = db->failed_before_savepoint;
	db->in_savepoint = false;
	int r = db->ops->exec(db, "ROLLBACK TO SAVEPOINT et_unit", 0, NULL, NULL, NULL);
	if (r == CDB_OK)
		r = db->ops->exec(db, "RELEASE SAVEPOINT et_unit", 0, NULL, NULL, NULL);
	if (r == CDB_OK)
		db->failed = was; /* the failure is undone with the work it spoiled */
	else
		db->failed = true;
	memcpy(db->errmsg, saved, sizeof(saved));
	return r;
}
