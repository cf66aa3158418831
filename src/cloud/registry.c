/* SPDX-License-Identifier: Apache-2.0 */
/* Device registry over db.h: schema migrations and row access (see registry.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "registry.h"

/* Migrations, applied in order; each runs in one transaction with schema_version bumped.
 * "%ID%" becomes the backend's auto-increment key. Never edit a released step: add one. */
static const char *const migration_1[] = {
	"CREATE TABLE devices ("
	" serial TEXT PRIMARY KEY,"
	" state TEXT NOT NULL,"
	" activated_until BIGINT NOT NULL DEFAULT 0,"
	" pubkey_pem TEXT, fingerprint TEXT,"
	" rekey_pem TEXT, rekey_fingerprint TEXT,"
	" cred_version BIGINT NOT NULL DEFAULT 0,"
	" issued_version BIGINT NOT NULL DEFAULT 0,"
	" broker_state TEXT NOT NULL DEFAULT 'none',"
	" desired_version BIGINT NOT NULL DEFAULT 0,"
	" desired_published BIGINT NOT NULL DEFAULT 0,"
	" desired_json TEXT, reported_json TEXT, status_json TEXT,"
	" online INTEGER NOT NULL DEFAULT -1,"
	" last_seen BIGINT NOT NULL DEFAULT 0,"
	" created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
	" dirty INTEGER NOT NULL DEFAULT 0,"
	" replied INTEGER NOT NULL DEFAULT 0)",
	"CREATE INDEX devices_dirty ON devices (dirty)",
	/* One row per issued credential version: the primary key makes issuance exactly once. The
	 * envelope is sealed to the device key; the plaintext password is never stored. */
	"CREATE TABLE credentials ("
	" serial TEXT NOT NULL, version BIGINT NOT NULL, fingerprint TEXT NOT NULL,"
	" envelope TEXT NOT NULL, issued_at BIGINT NOT NULL, issued_by TEXT NOT NULL,"
	" PRIMARY KEY (serial, version))",
	"CREATE TABLE audit ("
	" id %ID%, ts BIGINT NOT NULL, serial TEXT, actor TEXT NOT NULL,"
	" action TEXT NOT NULL, detail TEXT)",
	"CREATE INDEX audit_serial ON audit (serial)",
	"CREATE TABLE telemetry ("
	" serial TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,"
	" device TEXT, point TEXT, value DOUBLE PRECISION, unit TEXT, q TEXT,"
	" received_at BIGINT NOT NULL,"
	" PRIMARY KEY (serial, seq))",
	NULL,
};
/* Device broker logins for `serve --accounts registry`, read by the edgetrust mosquitto plugin
 * (src/cloud/broker-plugin). Written in the same transaction as the credential it belongs to.
 * hash/cred_version: the current password; prev_hash/prev_version: the one before a rotation,
 * valid until the device reports the new version in its status (docs/protocol.md). */
static const char *const migration_2[] = {
	"CREATE TABLE broker_accounts ("
	" username TEXT PRIMARY KEY, client_id TEXT NOT NULL,"
	" enabled INTEGER NOT NULL,"
	" cred_version BIGINT NOT NULL, hash TEXT NOT NULL,"
	" prev_version BIGINT NOT NULL DEFAULT 0, prev_hash TEXT,"
	" updated_at BIGINT NOT NULL)",
	NULL,
};
/* Telemetry de-duplicated on (serial, epoch, seq): a device whose spool was wiped or replaced
 * counts from seq 1 again under a new spool epoch (docs/protocol.md, "Spool epoch"). Rows from
 * before, and messages without an epoch, are epoch 0. Neither backend can change a primary key
 * in place, so the table is copied (PostgreSQL's key is then named telemetry_e_pkey). */
static const char *const migration_3[] = {
	"CREATE TABLE telemetry_e ("
	" serial TEXT NOT NULL, epoch BIGINT NOT NULL DEFAULT 0, seq BIGINT NOT NULL,"
	" ts BIGINT NOT NULL, device TEXT, point TEXT, value DOUBLE PRECISION, unit TEXT, q TEXT,"
	" received_at BIGINT NOT NULL,"
	" PRIMARY KEY (serial, epoch, seq))",
	"INSERT INTO telemetry_e (serial, epoch, seq, ts, device, point, value, unit, q, received_at)"
	" SELECT serial, 0, seq, ts, device, point, value, unit, q, received_at FROM telemetry",
	"DROP TABLE telemetry",
	"ALTER TABLE telemetry_e RENAME TO telemetry",
	NULL,
};
/* Refusals and limit hits per device and reason (refusal.h). serial '' = not in the registry. */
static const char *const migration_4[] = {
	"CREATE TABLE refusals ("
	" serial TEXT NOT NULL, reason TEXT NOT NULL,"
	" count BIGINT NOT NULL, last_at BIGINT NOT NULL,"
	" PRIMARY KEY (serial, reason))",
	NULL,
};
/* When each serial was last activated, in ms (activation.h); serials activated before: none. */
static const char *const migration_5[] = {
	"CREATE TABLE activations (serial TEXT PRIMARY KEY, at_ms BIGINT NOT NULL)",
	NULL,
};
/* Candidate keys (candidates.h): every key presented for a serial and not accepted yet, side
 * by side, instead of one pending key and one re-key slot that each new key overwrote. A
 * pending device's key and any re-key request move here; devices.pubkey_pem is the accepted
 * key only. The rekey_* columns stay (unused, NULL) so older rows need no table copy. */
static const char *const migration_6[] = {
	"CREATE TABLE key_candidates ("
	" id %ID%, serial TEXT NOT NULL, fingerprint TEXT NOT NULL, pubkey_pem TEXT NOT NULL,"
	" first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, seen_count BIGINT NOT NULL,"
	" UNIQUE (serial, fingerprint))",
	"INSERT INTO key_candidates (serial, fingerprint, pubkey_pem, first_seen, last_seen,"
	" seen_count) SELECT serial, LOWER(fingerprint), pubkey_pem, created_at, updated_at, 1"
	" FROM devices WHERE state = 'pending' AND pubkey_pem IS NOT NULL"
	" AND fingerprint IS NOT NULL ORDER BY serial",
	"INSERT INTO key_candidates (serial, fingerprint, pubkey_pem, first_seen, last_seen,"
	" seen_count) SELECT serial, LOWER(rekey_fingerprint), rekey_pem, updated_at, updated_at, 1"
	" FROM devices WHERE state IN ('pending', 'accepted') AND rekey_pem IS NOT NULL"
	" AND rekey_fingerprint IS NOT NULL"
	" AND (fingerprint IS NULL OR LOWER(rekey_fingerprint) <> LOWER(fingerprint)) ORDER BY serial",
	"UPDATE devices SET pubkey_pem = NULL, fingerprint = NULL WHERE state = 'pending'",
	"UPDATE devices SET rekey_pem = NULL, rekey_fingerprint = NULL",
	NULL,
};
static const char *const *const migrations[] = { migration_1, migration_2, migration_3,
						 migration_4, migration_5, migration_6 };

int64_t reg_now(void)
{
	return (int64_t)time(NULL);
}

char *reg_i64(int64_t v, char buf[24])
{
	snprintf(buf, 24, "%" PRId64, v);
	return buf;
}

static int64_t to_i64(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

static int migrate(reg *r)
{
	cdb *db = r->db;
	cdb_rows *rows = NULL;
	int64_t have = 0;
	int rc;

	if (cdb_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)", 0,
		     NULL) != CDB_OK)
		goto fail;
	if (cdb_begin(db) != CDB_OK)
		goto fail;
	/* Instances starting together on one PostgreSQL: one migrates, the others wait. */
	if (cdb_is_pg(db) &&
	    cdb_exec(db, "LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE", 0, NULL) != CDB_OK)
		goto fail_tx;
	if (cdb_query(db, "SELECT MAX(version) FROM schema_version", 0, NULL, &rows) != CDB_OK)
		goto fail_tx;
	have = rows->nrows ? to_i64(cdb_cell(rows, 0, 0)) : 0;
	cdb_rows_free(rows);
	rows = NULL;
	if (have > REG_SCHEMA_VERSION) {
		cl_log(CL_ERR, "the database has schema version %" PRId64 ", newer than this "
			       "edgetrust-cloud (%d): upgrade edgetrust-cloud", have, REG_SCHEMA_VERSION);
		cdb_rollback(db);
		return CDB_ERR;
	}
	for (int64_t v = have; v < REG_SCHEMA_VERSION; v++) {
		for (const char *const *s = migrations[v]; *s; s++) {
			char sql[2048];
			const char *id = cdb_is_pg(db) ? "BIGSERIAL PRIMARY KEY"
						       : "INTEGER PRIMARY KEY AUTOINCREMENT";
			const char *p = strstr(*s, "%ID%");
			if (p)
				snprintf(sql, sizeof(sql), "%.*s%s%s", (int)(p - *s), *s, id, p + 4);
			else
				snprintf(sql, sizeof(sql), "%s", *s);
			if (cdb_exec(db, sql, 0, NULL) != CDB_OK)
				goto fail_tx;
		}
		char vb[24];
		const char *pv[] = { reg_i64(v + 1, vb) };
		if (cdb_exec(db, "DELETE FROM schema_version", 0, NULL) != CDB_OK ||
		    cdb_exec(db, "INSERT INTO schema_version (version) VALUES (CAST(? AS BIGINT))", 1,
			     pv) != CDB_OK)
			goto fail_tx;
		cl_log(CL_INFO, "database migrated to schema version %" PRId64, v + 1);
	}
	rc = cdb_commit(db);
	if (rc != CDB_OK)
		goto fail;
	return CDB_OK;
fail_tx:
	cl_log(CL_ERR, "database migration failed: %s", cdb_errmsg(db));
	cdb_rollback(db);
	return CDB_ERR;
fail:
	cl_log(CL_ERR, "database migration failed: %s", cdb_errmsg(db));
	return CDB_ERR;
}

int reg_open(const char *url, const char *actor, reg **ret)
{
	reg *r = calloc(1, sizeof(*r));

	if (!r)
		return CDB_ERR;
	snprintf(r->actor, sizeof(r->actor), "%s", actor);
	if (cdb_open(url, &r->db) != CDB_OK) {
		free(r);
		return CDB_ERR;
	}
	if (migrate(r) != CDB_OK) {
		reg_close(r);
		return CDB_ERR;
	}
	*ret = r;
	return CDB_OK;
}

void reg_close(reg *r)
{
	if (!r)
		return;
	cdb_close(r->db);
	free(r);
}

void device_clear(struct device *d)
{
	free(d->pubkey_pem);
	free(d->rekey_pem);
	free(d->desired_json);
	free(d->reported_json);
	free(d->status_json);
	memset(d, 0, sizeof(*d));
}

#define DEVICE_COLS                                                                              \
	"serial, state, activated_until, pubkey_pem, fingerprint, rekey_pem, rekey_fingerprint," \
	" cred_version, issued_version, broker_state, desired_version, desired_published,"      \
	" desired_json, reported_json, status_json, online, last_seen, created_at, updated_at,"  \
	" dirty, replied"

static char *dupn(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void cpy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
}

static void device_from_row(const cdb_rows *rows, size_t i, struct device *d)
{
	memset(d, 0, sizeof(*d));
	cpy(d->serial, sizeof(d->serial), cdb_cell(rows, i, 0));
	cpy(d->state, sizeof(d->state), cdb_cell(rows, i, 1));
	d->activated_until = to_i64(cdb_cell(rows, i, 2));
	d->pubkey_pem = dupn(cdb_cell(rows, i, 3));
	cpy(d->fpr, sizeof(d->fpr), cdb_cell(rows, i, 4));
	d->rekey_pem = dupn(cdb_cell(rows, i, 5));
	cpy(d->rekey_fpr, sizeof(d->rekey_fpr), cdb_cell(rows, i, 6));
	d->cred_version = to_i64(cdb_cell(rows, i, 7));
	d->issued_version = to_i64(cdb_cell(rows, i, 8));
	cpy(d->broker_state, sizeof(d->broker_state), cdb_cell(rows, i, 9));
	d->desired_version = to_i64(cdb_cell(rows, i, 10));
	d->desired_published = to_i64(cdb_cell(rows, i, 11));
	d->desired_json = dupn(cdb_cell(rows, i, 12));
	d->reported_json = dupn(cdb_cell(rows, i, 13));
	d->status_json = dupn(cdb_cell(rows, i, 14));
	d->online = (int)to_i64(cdb_cell(rows, i, 15));
	d->last_seen = to_i64(cdb_cell(rows, i, 16));
	d->created_at = to_i64(cdb_cell(rows, i, 17));
	d->updated_at = to_i64(cdb_cell(rows, i, 18));
	d->dirty = (int)to_i64(cdb_cell(rows, i, 19));
	d->replied = (int)to_i64(cdb_cell(rows, i, 20));
}

int reg_device_get(reg *r, const char *serial, bool lock, struct device *ret)
{
	cdb_rows *rows = NULL;
	const char *p[] = { serial };
	int rc;

	rc = cdb_query(r->db,
		       lock && cdb_is_pg(r->db)
			       ? "SELECT " DEVICE_COLS " FROM devices WHERE serial = ? FOR UPDATE"
			       : "SELECT " DEVICE_COLS " FROM devices WHERE serial = ?",
		       1, p, &rows);
	if (rc != CDB_OK)
		return rc;
	if (rows->nrows == 0) {
		cdb_rows_free(rows);
		return REG_NOTFOUND;
	}
	device_from_row(rows, 0, ret);
	cdb_rows_free(rows);
	return CDB_OK;
}

int reg_device_list(reg *r, const char *state, struct device **ret, size_t *ret_n)
{
	cdb_rows *rows = NULL;
	const char *p[] = { state };
	struct device *out;
	int rc;

	rc = cdb_query(r->db,
		       state ? "SELECT " DEVICE_COLS " FROM devices WHERE state = ? ORDER BY serial"
			     : "SELECT " DEVICE_COLS " FROM devices ORDER BY serial",
		       state ? 1 : 0, p, &rows);
	if (rc != CDB_OK)
		return rc;
	out = calloc(rows->nrows + 1, sizeof(*out));
	if (!out) {
		cdb_rows_free(rows);
		return CDB_ERR;
	}
	for (size_t i = 0; i < rows->nrows; i++)
		device_from_row(rows, i, &out[i]);
	*ret_n = rows->nrows;
	*ret = out;
	cdb_rows_free(rows);
	return CDB_OK;
}

int reg_dirty_list(reg *r, size_t max, char ***ret, size_t *ret_n)
{
	cdb_rows *rows = NULL;
	char mb[24];
	const char *p[] = { reg_i64((int64_t)max, mb) };
	char **out;
	int rc;

	rc = cdb_query(r->db,
		       "SELECT serial FROM devices WHERE dirty = 1 ORDER BY serial LIMIT CAST(? AS BIGINT)",
		       1, p, &rows);
	if (rc != CDB_OK)
		return rc;
	out = calloc(rows->nrows + 1, sizeof(char *));
	if (!out) {
		cdb_rows_free(rows);
		return CDB_ERR;
	}
	for (size_t i = 0; i < rows->nrows; i++) {
		out[i] = rows->cell[i];
		rows->cell[i] = NULL;
	}
	*ret_n = rows->nrows;
	*ret = out;
	cdb_rows_free(rows);
	return CDB_OK;
}

static int device_write(reg *r, const struct device *d, bool insert)
{
	char b[11][24];
	const char *p[] = {
		d->state, reg_i64(d->activated_until, b[0]), d->pubkey_pem, d->fpr[0] ? d->fpr : NULL,
		d->rekey_pem, d->rekey_fpr[0] ? d->rekey_fpr : NULL, reg_i64(d->cred_version, b[1]),
		reg_i64(d->issued_version, b[2]), d->broker_state[0] ? d->broker_state : BR_NONE,
		reg_i64(d->desired_version, b[3]), reg_i64(d->desired_published, b[4]),
		d->desired_json, d->reported_json, d->status_json, reg_i64(d->online, b[5]),
		reg_i64(d->last_seen, b[6]), reg_i64(d->created_at, b[7]), reg_i64(reg_now(), b[8]),
		reg_i64(d->dirty, b[9]), reg_i64(d->replied, b[10]), d->serial,
	};
	if (insert)
		return cdb_exec(r->db,
				"INSERT INTO devices (state, activated_until, pubkey_pem, fingerprint,"
				" rekey_pem, rekey_fingerprint, cred_version, issued_version,"
				" broker_state, desired_version, desired_published, desired_json,"
				" reported_json, status_json, online, last_seen, created_at, updated_at,"
				" dirty, replied, serial) VALUES (?, CAST(? AS BIGINT), ?, ?, ?, ?,"
				" CAST(? AS BIGINT), CAST(? AS BIGINT), ?, CAST(? AS BIGINT),"
				" CAST(? AS BIGINT), ?, ?, ?, CAST(? AS INTEGER), CAST(? AS BIGINT),"
				" CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS INTEGER),"
				" CAST(? AS INTEGER), ?)",
				21, p);
	return cdb_exec(r->db,
			"UPDATE devices SET state = ?, activated_until = CAST(? AS BIGINT),"
			" pubkey_pem = ?, fingerprint = ?, rekey_pem = ?, rekey_fingerprint = ?,"
			" cred_version = CAST(? AS BIGINT), issued_version = CAST(? AS BIGINT),"
			" broker_state = ?, desired_version = CAST(? AS BIGINT),"
			" desired_published = CAST(? AS BIGINT), desired_json = ?, reported_json = ?,"
			" status_json = ?, online = CAST(? AS INTEGER), last_seen = CAST(? AS BIGINT),"
			" created_at = CAST(? AS BIGINT), updated_at = CAST(? AS BIGINT),"
			" dirty = CAST(? AS INTEGER), replied = CAST(? AS INTEGER) WHERE serial = ?",
			21, p);
}

int reg_device_insert(reg *r, const struct device *d)
{
	return device_write(r, d, true);
}

int reg_device_update(reg *r, const struct device *d)
{
	return device_write(r, d, false);
}

int reg_audit(reg *r, const char *serial, const char *action, const char *detail)
{
	char tb[24];
	const char *p[] = { reg_i64(reg_now(), tb), serial, r->actor, action, detail };
	return cdb_exec(r->db,
			"INSERT INTO audit (ts, serial, actor, action, detail)"
			" VALUES (CAST(? AS BIGINT), ?, ?, ?, ?)",
			5, p);
}

int reg_cred_insert(reg *r, const char *serial, int64_t version, const char *fpr,
		    const char *envelope_b64, long *ret_inserted)
{
	char vb[24], tb[24];
	const char *p[] = { serial, reg_i64(version, vb), fpr, envelope_b64, reg_i64(reg_now(), tb),
			    r->actor };
	return cdb_exec_changes(r->db,
				"INSERT INTO credentials (serial, version, fingerprint, envelope,"
				" issued_at, issued_by) VALUES (?, CAST(? AS BIGINT), ?, ?,"
				" CAST(? AS BIGINT), ?) ON CONFLICT DO NOTHING",
				6, p, ret_inserted);
}

/* One column of the credential (serial, version): malloc'd text in *ret, REG_NOTFOUND without
 * a row or with a NULL value. sql selects that column with the two parameters. */
static int cred_cell(reg *r, const char *sql, const char *serial, int64_t version, char **ret)
{
	char vb[24];
	const char *p[] = { serial, reg_i64(version, vb) };
	cdb_rows *rows = NULL;
	int rc;

	rc = cdb_query(r->db, sql, 2, p, &rows);
	if (rc != CDB_OK)
		return rc;
	if (rows->nrows == 0 || !cdb_cell(rows, 0, 0)) {
		cdb_rows_free(rows);
		return REG_NOTFOUND;
	}
	*ret = rows->cell[0];
	rows->cell[0] = NULL;
	cdb_rows_free(rows);
	return CDB_OK;
}

int reg_cred_get(reg *r, const char *serial, int64_t version, char **ret)
{
	return cred_cell(r,
			 "SELECT envelope FROM credentials"
			 " WHERE serial = ? AND version = CAST(? AS BIGINT)",
			 serial, version, ret);
}

int reg_cred_count(reg *r, const char *serial, long *ret)
{
	const char *p[] = { serial };
	cdb_rows *rows = NULL;
	int rc = cdb_query(r->db, "SELECT COUNT(*) FROM credentials WHERE serial = ?", 1, p, &rows);
	if (rc != CDB_OK)
		return rc;
	*ret = (long)to_i64(cdb_cell(rows, 0, 0));
	cdb_rows_free(rows);
	return CDB_OK;
}

int reg_telemetry_insert(reg *r, const char *serial, int64_t epoch, int64_t seq, int64_t ts,
			 const char *device, const char *point, const char *value, const char *unit,
			 const char *q, long *ret_inserted)
{
	char eb[24], sb[24], tb[24], rb[24];
	const char *p[] = { serial, reg_i64(epoch, eb), reg_i64(seq, sb), reg_i64(ts, tb), device,
			    point, value, unit, q, reg_i64(reg_now(), rb) };
	return cdb_exec_changes(r->db,
				"INSERT INTO telemetry (serial, epoch, seq, ts, device, point, value,"
				" unit, q, received_at) VALUES (?, CAST(? AS BIGINT), CAST(? AS BIGINT),"
				" CAST(? AS BIGINT), ?, ?, CAST(? AS DOUBLE PRECISION), ?, ?,"
				" CAST(? AS BIGINT)) ON CONFLICT DO NOTHING",
				10, p, ret_inserted);
}

int reg_account_issue(reg *r, const char *serial, const char *hash, int64_t version, bool keep_prev)
{
	char vb[24], tb[24];
	const char *p[] = { serial, serial, reg_i64(version, vb), hash, reg_i64(reg_now(), tb),
			    keep_prev ? "1" : "0", keep_prev ? "1" : "0" };
	/* SET expressions see the row as it was, so the old current becomes the previous one. */
	return cdb_exec(r->db,
			"INSERT INTO broker_accounts (username, client_id, enabled, cred_version, hash,"
			" prev_version, prev_hash, updated_at) VALUES (?, ?, 1, CAST(? AS BIGINT), ?, 0,"
			" NULL, CAST(? AS BIGINT)) ON CONFLICT (username) DO UPDATE SET enabled = 1,"
			" client_id = excluded.client_id,"
			" prev_version = CASE WHEN CAST(? AS INTEGER) = 1 AND broker_accounts.enabled = 1"
			" THEN broker_accounts.cred_version ELSE 0 END,"
			" prev_hash = CASE WHEN CAST(? AS INTEGER) = 1 AND broker_accounts.enabled = 1"
			" THEN broker_accounts.hash ELSE NULL END,"
			" cred_version = excluded.cred_version, hash = excluded.hash,"
			" updated_at = excluded.updated_at",
			7, p);
}

int reg_account_disable(reg *r, const char *serial)
{
	char tb[24];
	const char *p[] = { reg_i64(reg_now(), tb), serial };
	return cdb_exec(r->db,
			"UPDATE broker_accounts SET enabled = 0, prev_hash = NULL, prev_version = 0,"
			" updated_at = CAST(? AS BIGINT) WHERE username = ?",
			2, p);
}

int reg_account_confirm(reg *r, const char *serial, int64_t version, long *ret_changed)
{
	char vb[24], tb[24];
	const char *p[] = { reg_i64(reg_now(), tb), serial, reg_i64(version, vb) };
	return cdb_exec_changes(r->db,
				"UPDATE broker_accounts SET prev_hash = NULL, prev_version = 0,"
				" updated_at = CAST(? AS BIGINT) WHERE username = ? AND prev_hash IS NOT NULL"
				" AND cred_version <= CAST(? AS BIGINT)",
				3, p, ret_changed);
}

int reg_cred_fpr(reg *r, const char *serial, int64_t version, char ret[65])
{
	char *fpr = NULL;
	int rc = cred_cell(r,
			   "SELECT fingerprint FROM credentials"
			   " WHERE serial = ? AND version = CAST(? AS BIGINT)",
			   serial, version, &fpr);

	if (rc != CDB_OK)
		return rc;
	snprintf(ret, 65, "%s", fpr);
	free(fpr);
	return CDB_OK;
}
