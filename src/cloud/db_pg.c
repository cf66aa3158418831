/* SPDX-License-Identifier: Apache-2.0 */
/* PostgreSQL backend of the database interface (libpq), for many instances on one database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#ifdef ET_HAVE_LIBPQ
#include <libpq-fe.h>

struct cdb_pg {
	cdb base;
	PGconn *conn;
};

/* The registry writes '?' placeholders; libpq wants $1, $2, ... Our SQL has no '?' in literals. */
static char *pg_placeholders(const char *sql)
{
	size_t n = 0, len = strlen(sql);
	for (const char *p = sql; *p; p++)
		n += *p == '?';
	char *out = malloc(len + n * 4 + 1), *o = out;
	int k = 0;
	if (!out)
		return NULL;
	for (const char *p = sql; *p; p++) {
		if (*p == '?')
			o += sprintf(o, "$%d", ++k);
		else
			*o++ = *p;
	}
	*o = '\0';
	return out;
}

static int pg_exec(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret_rows,
		   long *ret_changes)
{
	struct cdb_pg *g = (struct cdb_pg *)db;
	PGresult *res = NULL;
	cdb_rows *rows = NULL;
	char *q = pg_placeholders(sql);
	int r = CDB_ERR;

	if (!q) {
		snprintf(db->errmsg, sizeof(db->errmsg), "out of memory");
		return CDB_ERR;
	}
	res = PQexecParams(g->conn, q, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(db->errmsg, sizeof(db->errmsg), "%s", PQerrorMessage(g->conn));
		db->errmsg[strcspn(db->errmsg, "\n")] = '\0';
		/* 40001 serialization failure, 40P01 deadlock: the caller rolls back and retries. */
		if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
			r = CDB_RETRY;
		goto out;
	}
	snprintf(db->tag, sizeof(db->tag), "%s", PQcmdStatus(res) ? PQcmdStatus(res) : "");
	if (ret_changes) {
		const char *t = PQcmdTuples(res);
		*ret_changes = t && *t ? strtol(t, NULL, 10) : 0;
	}
	if (ret_rows) {
		rows = calloc(1, sizeof(*rows));
		if (!rows)
			goto nomem;
		rows->nrows = (size_t)PQntuples(res);
		rows->ncols = (size_t)PQnfields(res);
		rows->cell = calloc(rows->nrows * rows->ncols + 1, sizeof(char *));
		if (!rows->cell)
			goto nomem;
		for (size_t i = 0; i < rows->nrows; i++)
			for (size_t c = 0; c < rows->ncols; c++) {
				if (PQgetisnull(res, (int)i, (int)c))
					continue;
				rows->cell[i * rows->ncols + c] = strdup(PQgetvalue(res, (int)i, (int)c));
				if (!rows->cell[i * rows->ncols + c])
					goto nomem;
			}
		*ret_rows = rows;
		rows = NULL;
	}
	r = CDB_OK;
	goto out;
nomem:
	snprintf(db->errmsg, sizeof(db->errmsg), "out of memory");
out:
	cdb_rows_free(rows);
	PQclear(res);
	free(q);
	return r;
}

static void pg_close(cdb *db)
{
	struct cdb_pg *g = (struct cdb_pg *)db;
	PQfinish(g->conn);
	free(g);
}

static const struct cdb_ops pg_ops = {
	.exec = pg_exec,
	.close = pg_close,
	.name = "postgresql",
	.for_update = true,
};

static void pg_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg; /* "relation already exists, skipping" and the like: not worth a log line */
}

int cdb_pg_open(const char *url, cdb **ret, char *err, size_t errlen)
{
	struct cdb_pg *g = calloc(1, sizeof(*g));

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return CDB_ERR;
	}
	g->base.ops = &pg_ops;
	g->conn = PQconnectdb(url);
	if (PQstatus(g->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(g->conn));
		err[strcspn(err, "\n")] = '\0';
		pg_close(&g->base);
		return CDB_ERR;
	}
	PQsetNoticeProcessor(g->conn, pg_notice, NULL);
	*ret = &g->base;
	return CDB_OK;
}
#else
int cdb_pg_open(const char *url, cdb **ret, char *err, size_t errlen)
{
	(void)url;
	(void)ret;
	snprintf(err, errlen, "this edgetrust-cloud was built without PostgreSQL support "
			      "(meson -Dpostgresql=enabled, needs libpq-dev)");
	return CDB_ERR;
}
#endif
