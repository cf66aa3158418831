/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry's database layer (src/cloud/db.c) never reports a commit that did not commit
 * (adversary issue 10, finding 2): a statement that failed inside the transaction fails the
 * commit; PostgreSQL's answer ROLLBACK to COMMIT of an aborted transaction fails it even when
 * the layer did not see the error; a savepoint rolled back undoes its failure and keeps the
 * rest. Usage: unit-cloud-db [URL] (default a fresh SQLite file; tests/adversary/test_ingest.py
 * runs it against PostgreSQL too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

static int failures;

#define CHECK(cond)                                                                     \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                     \
		}                                                                       \
	} while (0)

static long count(cdb *db)
{
	cdb_rows *r = NULL;
	long n = -1;
	if (cdb_query(db, "SELECT COUNT(*) FROM et_db_test", 0, NULL, &r) == CDB_OK)
		n = strtol(cdb_cell(r, 0, 0), NULL, 10);
	cdb_rows_free(r);
	return n;
}

int main(int argc, char **argv)
{
	char path[] = "/tmp/et-unit-db-XXXXXX";
	const char *url = argc > 1 ? argv[1] : NULL;
	cdb *db;

	if (!url) {
		int fd = mkstemp(path);
		if (fd < 0)
			return 2;
		close(fd);
		url = path;
	}
	if (cdb_open(url, &db) != CDB_OK)
		return 2;
	CHECK(cdb_exec(db, "DROP TABLE IF EXISTS et_db_test", 0, NULL) == CDB_OK);
	CHECK(cdb_exec(db, "CREATE TABLE et_db_test (a INTEGER PRIMARY KEY)", 0, NULL) == CDB_OK);

	/* a failed statement (duplicate key) fails the commit; nothing of it is kept */
	CHECK(cdb_begin(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (1)", 0, NULL) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (1)", 0, NULL) != CDB_OK);
	CHECK(cdb_commit(db) != CDB_OK);
	CHECK(strstr(cdb_errmsg(db), "rolled back") != NULL);
	CHECK(count(db) == 0);

	/* PostgreSQL: an error the layer did not see; COMMIT is answered ROLLBACK, no error */
	if (cdb_is_pg(db)) {
		CHECK(cdb_begin(db) == CDB_OK);
		CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (2)", 0, NULL) == CDB_OK);
		CHECK(db->ops->exec(db, "SELECT 1/0", 0, NULL, NULL, NULL) != CDB_OK);
		CHECK(cdb_commit(db) != CDB_OK);
		CHECK(strstr(cdb_errmsg(db), "ROLLBACK") != NULL);
		CHECK(count(db) == 0);
	}

	/* a savepoint rolled back undoes its failure: the rest commits */
	CHECK(cdb_begin(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (3)", 0, NULL) == CDB_OK);
	CHECK(cdb_savepoint(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (4)", 0, NULL) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (3)", 0, NULL) != CDB_OK);
	CHECK(cdb_rollback_to(db) == CDB_OK);
	CHECK(cdb_savepoint(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (5)", 0, NULL) == CDB_OK);
	CHECK(cdb_release(db) == CDB_OK);
	CHECK(cdb_commit(db) == CDB_OK);
	CHECK(count(db) == 2); /* 3 and 5; 4 went with its savepoint */

	/* release of a savepoint whose work failed is refused and undoes it */
	CHECK(cdb_begin(db) == CDB_OK);
	CHECK(cdb_savepoint(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (6)", 0, NULL) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (6)", 0, NULL) != CDB_OK);
	CHECK(cdb_release(db) != CDB_OK);
	CHECK(cdb_commit(db) == CDB_OK);
	CHECK(count(db) == 2);

	/* a failure before the savepoint is not undone by rolling the savepoint back */
	CHECK(cdb_begin(db) == CDB_OK);
	CHECK(cdb_exec(db, "INSERT INTO et_db_test VALUES (3)", 0, NULL) != CDB_OK);
	if (!cdb_is_pg(db)) { /* PostgreSQL refuses the SAVEPOINT itself in an aborted transaction */
		CHECK(cdb_savepoint(db) == CDB_OK);
		CHECK(cdb_rollback_to(db) == CDB_OK);
	}
	CHECK(cdb_commit(db) != CDB_OK);

	CHECK(cdb_exec(db, "DROP TABLE et_db_test", 0, NULL) == CDB_OK);
	cdb_close(db);
	if (url == path) {
		char side[64];
		unlink(path);
		snprintf(side, sizeof(side), "%s-wal", path);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", path);
		unlink(side);
	}
	printf("%s: %s\n", url == path ? "sqlite" : "url", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
