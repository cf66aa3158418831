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
	const char *p[] = { reg_i64(reg_now_ms(), b), serial };
	return cdb_exec(r->db, "UPDATE devices SET activated_ms = CAST(? AS BIGINT) WHERE serial = ?",
			2, p);
}

int reg_activation_ms(reg *r, const char *serial, int64_t *ret)
{
	cdb_rows *rows = NULL;
	const char *p[] = { serial };
	int rc = cdb_query(r->db, "SELECT activated_ms FROM devices WHERE serial = ?", 1, p, &rows);

	if (rc != CDB_OK)
		return rc;
	rc = rows->nrows ? CDB_OK : REG_NOTFOUND;
	*ret = rows->nrows && cdb_cell(rows, 0, 0) ? strtoll(cdb_cell(rows, 0, 0), NULL, 10) : 0;
	cdb_rows_free(rows);
	return rc;
}
