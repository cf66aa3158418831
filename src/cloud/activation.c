/* SPDX-License-Identifier: Apache-2.0 */
/* Activation times over db.h (see activation.h). */
#include <stdlib.h>
#include <time.h>

#include "activation.h"

int64_t reg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int reg_activation_mark(reg *r, const char *serial)
{
	char b[24];
	const char *p[] = { serial, reg_i64(reg_now_ms(), b) };

	/* Same transaction as the device row, which activate holds locked: serve, which locks
	 * that row before reading this one, sees both or neither. */
	return cdb_exec(r->db, "INSERT INTO activations (serial, at_ms) VALUES (?, CAST(? AS BIGINT))"
			       " ON CONFLICT (serial) DO UPDATE SET at_ms = excluded.at_ms", 2, p);
}

int reg_activation_ms(reg *r, const char *serial, int64_t *ret)
{
	cdb_rows *rows = NULL;
	const char *p[] = { serial };
	int rc = cdb_query(r->db, "SELECT at_ms FROM activations WHERE serial = ?", 1, p, &rows);

	if (rc != CDB_OK)
		return rc;
	rc = rows->nrows ? CDB_OK : REG_NOTFOUND;
	*ret = rows->nrows && cdb_cell(rows, 0, 0) ? strtoll(cdb_cell(rows, 0, 0), NULL, 10) : 0;
	cdb_rows_free(rows);
	return rc;
}
