/* SPDX-License-Identifier: Apache-2.0 */
/* SQLite backend of the database interface (the default: one file, one writer at a time). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"

struct cdb_sqlite {
	cdb base;
	sqlite3 *h;
};

static int sq_err(struct cdb_sqlite *s, int rc)
{
	snprintf(s->base.errmsg, sizeof(s->base.errmsg), "%s", sqlite3_errmsg(s->h));
	return (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? CDB_RETRY : CDB_ERR;
}

static int sq_exec(cdb *db, const char *sql, int n, const char *const *params, cdb_rows **ret_rows,
		   long *ret_changes)
{
	struct cdb_sqlite *s = (struct cdb_sqlite *)db;
	sqlite3_stmt *st = NULL;
	cdb_rows *rows = NULL;
	size_t cap = 0;
	int rc, r = CDB_ERR;

	rc = sqlite3_prepare_v2(s->h, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = sq_err(s, rc);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		rc = params[i] ? sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC)
			       : sqlite3_bind_null(st, i + 1);
		if (rc != SQLITE_OK) {
			r = sq_err(s, rc);
			goto out;
		}
	}
	if (ret_rows) {
		rows = calloc(1, sizeof(*rows));
		if (!rows)
			goto nomem;
		rows->ncols = (size_t)sqlite3_column_count(st);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!rows)
			continue;
		if (rows->nrows == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nc = realloc(rows->cell, ncap * rows->ncols * sizeof(char *) + 1);
			if (!nc)
				goto nomem;
			rows->cell = nc;
			cap = ncap;
		}
		for (size_t c = 0; c < rows->ncols; c++) {
			const unsigned char *t = sqlite3_column_text(st, (int)c);
			char **cell = &rows->cell[rows->nrows * rows->ncols + c];
			*cell = NULL;
			if (t && !(*cell = strdup((const char *)t))) {
				rows->nrows++;
				goto nomem;
			}
		}
		rows->nrows++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_err(s, rc);
		goto out;
	}
	if (ret_changes)
		*ret_changes = sqlite3_changes(s->h);
	if (ret_rows) {
		*ret_rows = rows;
		rows = NULL;
	}
	r = CDB_OK;
	goto out;
nomem:
	snprintf(s->base.errmsg, sizeof(s->base.errmsg), "out of memory");
out:
	cdb_rows_free(rows);
	sqlite3_finalize(st);
	return r;
}

static void sq_close(cdb *db)
{
	struct cdb_sqlite *s = (struct cdb_sqlite *)db;
	sqlite3_close(s->h);
	free(s);
}

static const struct cdb_ops sqlite_ops = {
	.exec = sq_exec,
	.close = sq_close,
	.name = "sqlite",
	.for_update = false,
};

/* Makes path (created if absent when create) 0600, whatever the umask: the registry holds
 * password hashes, envelopes, telemetry and the audit log. */
static int private_file(const char *path, bool create, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);

	if (fd < 0) {
		/* Absent side files, or a file we may only read: SQLite decides (read-only). */
		if ((!create && errno == ENOENT) || errno == EACCES || errno == EROFS)
			return 0;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 0177) && fchmod(fd, st.st_mode & 0600) < 0) {
		snprintf(err, errlen, "cannot make %s private (chmod 0600): %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * The database file first, then the -wal and -shm files that exist already. SQLite's unix VFS
 * creates -wal and -shm with the mode of the database file, so those it makes later are 0600
 * too. Special names (":memory:", "file:" URIs) are left to SQLite.
 */
static int private_files(const char *path, char *err, size_t errlen)
{
	char side[4096];

	if (!*path || !strcmp(path, ":memory:") || !strncmp(path, "file:", 5))
		return 0;
	if (private_file(path, true, err, errlen) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		if ((size_t)snprintf(side, sizeof(side), "%s%s", path, i ? "-shm" : "-wal") >= sizeof(side))
			return 0;
		if (private_file(side, false, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int cdb_sqlite_open(const char *path, cdb **ret, char *err, size_t errlen)
{
	struct cdb_sqlite *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return CDB_ERR;
	}
	s->base.ops = &sqlite_ops;
	if (private_files(path, err, errlen) < 0) {
		free(s);
		return CDB_ERR;
	}
	rc = sqlite3_open_v2(path, &s->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open SQLite database: %s",
			 s->h ? sqlite3_errmsg(s->h) : "out of memory");
		sqlite3_close(s->h);
		free(s);
		return CDB_ERR;
	}
	/* Several processes (serve, the operator CLI) share the file: wait for the write lock
	 * instead of failing, and use WAL so readers never block the writer. synchronous=FULL
	 * keeps every commit durable; serve groups many registrations into one commit. */
	sqlite3_busy_timeout(s->h, 15000);
	if (sq_exec(&s->base, "PRAGMA journal_mode=WAL", 0, NULL, NULL, NULL) != CDB_OK ||
	    sq_exec(&s->base, "PRAGMA synchronous=FULL", 0, NULL, NULL, NULL) != CDB_OK) {
		snprintf(err, errlen, "cannot configure SQLite database: %s", s->base.errmsg);
		sq_close(&s->base);
		return CDB_ERR;
	}
	*ret = &s->base;
	return CDB_OK;
}
