/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry's one small database interface: SQL text with '?' placeholders, all values
 * passed and returned as strings (NULL = SQL NULL), and two backends behind a table of
 * function pointers: SQLite (a file path) and PostgreSQL (a postgresql:// URL, libpq).
 * The registry logic above it is written once for both.
 */
#ifndef ET_CLOUD_DB_H
#define ET_CLOUD_DB_H

#include <stdbool.h>
#include <stddef.h>

enum {
	CDB_OK = 0,
	CDB_ERR = -1,   /* any failure; cdb_errmsg() says which */
	CDB_RETRY = -2, /* deadlock / serialization failure / busy: roll back and retry */
};

typedef struct cdb cdb;

typedef struct cdb_rows {
	size_t nrows, ncols;
	char **cell; /* nrows * ncols, row-major; NULL cells are SQL NULL */
} cdb_rows;

struct cdb_ops {
	int (*exec)(cdb *db, const char *sql, int nparams, const char *const *params,
		    cdb_rows **ret_rows, long *ret_changes);
	void (*close)(cdb *db);
	const char *name;
	bool for_update; /* backend supports SELECT ... FOR UPDATE row locks */
};

struct cdb {
	const struct cdb_ops *ops;
	char errmsg[512];
	int depth; /* transaction nesting (only the outermost one is real) */
	/* A statement failed inside the transaction (and was not undone by cdb_rollback_to):
	 * PostgreSQL has aborted the transaction, and on SQLite the caller's unit of work is
	 * incomplete, so cdb_commit refuses to report success. */
	bool failed;
	bool in_savepoint, failed_before_savepoint;
	char tag[32]; /* command tag of the last statement (PostgreSQL; "" on SQLite) */
};

/* Opens "postgresql://..." / "postgres://..." with libpq, anything else as a SQLite file. */
int cdb_open(const char *url, cdb **ret);
void cdb_close(cdb *db);
const char *cdb_errmsg(const cdb *db);
bool cdb_is_pg(const cdb *db);

int cdb_exec(cdb *db, const char *sql, int n, const char *const *params);
/* Like cdb_exec; *ret_changes = rows inserted/updated/deleted. */
int cdb_exec_changes(cdb *db, const char *sql, int n, const char *const *params, long *ret_changes);
int cdb_query(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret);
void cdb_rows_free(cdb_rows *r);
static inline const char *cdb_cell(const cdb_rows *r, size_t row, size_t col)
{
	return r->cell[row * r->ncols + col];
}

/* Write transaction: SQLite takes the write lock at once (BEGIN IMMEDIATE); PostgreSQL runs
 * READ COMMITTED and relies on SELECT ... FOR UPDATE row locks. */
int cdb_begin(cdb *db);
/* CDB_OK only when the database committed: a statement that failed inside the transaction
 * (cdb.failed), or a COMMIT that PostgreSQL answers with the tag ROLLBACK (it does so, without
 * an error, for an aborted transaction), rolls back and returns CDB_ERR. */
int cdb_commit(cdb *db);
void cdb_rollback(cdb *db);

/* One savepoint level inside a transaction, so that one unit of work (one device's message in
 * a batch) can fail without taking the batch with it: cdb_savepoint, then cdb_release on
 * success or cdb_rollback_to on failure (which also undoes the failure's cdb.failed). */
int cdb_savepoint(cdb *db);
int cdb_release(cdb *db);
int cdb_rollback_to(cdb *db);

int cdb_sqlite_open(const char *path, cdb **ret, char *err, size_t errlen);
int cdb_pg_open(const char *url, cdb **ret, char *err, size_t errlen);

#endif
