/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite spool (see spool.h). Durability: WAL with synchronous=FULL, so a reading reported as
 * accepted survives a power cut; deletions are batched by the caller and may be lost on a power
 * cut, which only causes a duplicate on the wire (the cloud de-duplicates on (epoch, seq)).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sqlite3.h>

#include "spool.h"

struct et_spool {
	sqlite3 *db;
	sqlite3_stmt *ins, *peek, *del, *drop_oldest, *set_meta, *count;
	uint64_t max_records;
	int64_t next_seq;
	int64_t epoch;
	uint64_t depth;
	uint64_t dropped;
	uint64_t dropped_unsaved; /* drops counted while the disk was full */
	char err[256];
};

static int exec(struct et_spool *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		snprintf(s->err, sizeof(s->err), "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

static int64_t query_int(struct et_spool *s, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int set_meta(struct et_spool *s, const char *k, int64_t v)
{
	int rc;

	sqlite3_reset(s->set_meta);
	sqlite3_bind_text(s->set_meta, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->set_meta, 2, v);
	rc = sqlite3_step(s->set_meta);
	sqlite3_reset(s->set_meta);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A new spool's epoch: uniform in [1, ET_SPOOL_EPOCH_MAX] (50 random bits, out of range drawn
 * again: 89 % are taken). */
static int new_epoch(struct et_spool *s, int64_t *ret)
{
	uint64_t r = 0;

	do {
		ssize_t n;

		do
			n = getrandom(&r, sizeof(r), 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(r)) {
			snprintf(s->err, sizeof(s->err), "no random numbers for the spool epoch: %s",
				 n < 0 ? strerror(errno) : "short read");
			return -1;
		}
		r &= ((uint64_t)1 << 50) - 1;
	} while (r == 0 || r > (uint64_t)ET_SPOOL_EPOCH_MAX);
	*ret = (int64_t)r;
	return 0;
}

/*
 * The epoch from the meta table; a spool without one gets one now: 0 when it has handed out
 * sequence numbers already (created before epochs: the cloud stored them under epoch 0, and
 * readings still in the spool must keep their names), else a new random one.
 */
static int load_epoch(struct et_spool *s)
{
	int64_t e = query_int(s, "SELECT v FROM meta WHERE k='epoch'", -1);
	int rc;

	if (e >= 0 && e <= ET_SPOOL_EPOCH_MAX) {
		s->epoch = e;
		return 0;
	}
	if (query_int(s, "SELECT count(*) FROM meta WHERE k='next_seq'", 0) > 0 ||
	    query_int(s, "SELECT count(*) FROM readings", 0) > 0)
		e = 0;
	else if (new_epoch(s, &e) < 0)
		return -1;
	rc = set_meta(s, "epoch", e);
	if (rc != SQLITE_OK) {
		snprintf(s->err, sizeof(s->err), "storing the spool epoch: %s",
			 sqlite3_errmsg(s->db));
		return -1;
	}
	s->epoch = e;
	return 0;
}

int et_spool_open(const char *path, uint64_t max_records, struct et_spool **ret, char *errbuf,
		  size_t errlen)
{
	struct et_spool *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(errbuf, errlen, "out of memory");
		return ET_SPOOL_ERROR;
	}
	s->max_records = max_records ? max_records : 1;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(s->err, sizeof(s->err), "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 2000);
	sqlite3_extended_result_codes(s->db, 1);
	if (exec(s, "PRAGMA journal_mode=WAL") || exec(s, "PRAGMA synchronous=FULL") ||
	    exec(s, "PRAGMA journal_size_limit=4194304") ||
	    /* 256 KiB of page cache instead of 2 MiB: a drained backlog would otherwise keep the
	     * daemon 2 MiB bigger for good; reads are sequential (docs/performance.md). */
	    exec(s, "PRAGMA cache_size=-256") ||
	    exec(s, "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)") ||
	    exec(s, "CREATE TABLE IF NOT EXISTS readings(seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,"
		    " device TEXT NOT NULL, point TEXT NOT NULL, unit TEXT NOT NULL,"
		    " value REAL, q TEXT NOT NULL)"))
		goto fail;
	if (sqlite3_prepare_v3(s->db, "INSERT INTO readings(seq,ts,device,point,unit,value,q)"
				      " VALUES(?,?,?,?,?,?,?)", -1, SQLITE_PREPARE_PERSISTENT,
			       &s->ins, NULL) ||
	    sqlite3_prepare_v3(s->db, "SELECT seq,ts,device,point,unit,value,q FROM readings"
				      " WHERE seq > ? ORDER BY seq LIMIT ?", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->peek, NULL) ||
	    sqlite3_prepare_v3(s->db, "DELETE FROM readings WHERE seq BETWEEN ? AND ?", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->del, NULL) ||
	    sqlite3_prepare_v3(s->db, "DELETE FROM readings WHERE seq IN"
				      " (SELECT seq FROM readings ORDER BY seq LIMIT ?)", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->drop_oldest, NULL) ||
	    sqlite3_prepare_v3(s->db, "INSERT OR REPLACE INTO meta(k,v) VALUES(?,?)", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->set_meta, NULL) ||
	    sqlite3_prepare_v3(s->db, "SELECT count(*) FROM readings WHERE seq BETWEEN ? AND ?", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->count, NULL)) {
		snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
		goto fail;
	}
	/* next_seq is persisted on every insert; max(seq)+1 guards against a hand-edited meta. */
	s->next_seq = query_int(s, "SELECT v FROM meta WHERE k='next_seq'", 1);
	{
		int64_t m = query_int(s, "SELECT max(seq) FROM readings", 0);
		if (m + 1 > s->next_seq)
			s->next_seq = m + 1;
	}
	if (load_epoch(s) < 0)
		goto fail;
	s->dropped = (uint64_t)query_int(s, "SELECT v FROM meta WHERE k='dropped'", 0);
	s->depth = (uint64_t)query_int(s, "SELECT count(*) FROM readings", 0);
	*ret = s;
	return 0;
fail:
	snprintf(errbuf, errlen, "%s: %s", path, s->err);
	et_spool_free(s);
	return ET_SPOOL_ERROR;
}

void et_spool_free(struct et_spool *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->ins);
	sqlite3_finalize(s->peek);
	sqlite3_finalize(s->del);
	sqlite3_finalize(s->drop_oldest);
	sqlite3_finalize(s->set_meta);
	sqlite3_finalize(s->count);
	sqlite3_close(s->db);
	free(s);
}

void et_spool_set_max(struct et_spool *s, uint64_t max_records)
{
	s->max_records = max_records ? max_records : 1;
}

static int classify(int rc)
{
	return (rc & 0xff) == SQLITE_FULL ? ET_SPOOL_FULL : ET_SPOOL_ERROR;
}

int et_spool_add(struct et_spool *s, const struct et_spool_rec *recs, size_t n,
		 int64_t *ret_first_seq)
{
	int64_t seq = s->next_seq;
	uint64_t depth = s->depth, dropped = s->dropped + s->dropped_unsaved;
	int rc;
	size_t i;

	if (n == 0)
		return 0;
	rc = exec(s, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		return classify(rc);
	for (i = 0; i < n; i++) {
		const struct et_spool_rec *r = &recs[i];

		sqlite3_reset(s->ins);
		sqlite3_bind_int64(s->ins, 1, seq);
		sqlite3_bind_int64(s->ins, 2, r->ts_ms);
		sqlite3_bind_text(s->ins, 3, r->device, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 4, r->point, -1, SQLITE_STATIC);
		sqlite3_bind_text(s->ins, 5, r->unit ? r->unit : "", -1, SQLITE_STATIC);
		if (r->has_value)
			sqlite3_bind_double(s->ins, 6, r->value);
		else
			sqlite3_bind_null(s->ins, 6);
		sqlite3_bind_text(s->ins, 7, r->q, -1, SQLITE_STATIC);
		rc = sqlite3_step(s->ins);
		sqlite3_reset(s->ins);
		if (rc != SQLITE_DONE)
			goto rollback;
		seq++;
		depth++;
	}
	if (depth > s->max_records) {
		uint64_t k = depth - s->max_records;

		sqlite3_reset(s->drop_oldest);
		sqlite3_bind_int64(s->drop_oldest, 1, (int64_t)k);
		rc = sqlite3_step(s->drop_oldest);
		sqlite3_reset(s->drop_oldest);
		if (rc != SQLITE_DONE)
			goto rollback;
		k = (uint64_t)sqlite3_changes(s->db);
		depth -= k;
		dropped += k;
	}
	rc = set_meta(s, "next_seq", seq);
	if (rc == SQLITE_OK && dropped != s->dropped)
		rc = set_meta(s, "dropped", (int64_t)dropped);
	if (rc != SQLITE_OK)
		goto rollback;
	rc = exec(s, "COMMIT");
	if (rc != SQLITE_OK)
		goto rollback;
	if (ret_first_seq)
		*ret_first_seq = s->next_seq;
	s->next_seq = seq;
	s->depth = depth;
	s->dropped = dropped;
	s->dropped_unsaved = 0;
	return 0;
rollback:
	snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return classify(rc);
}

int et_spool_peek(struct et_spool *s, int64_t after_seq, size_t max, et_spool_visit_fn fn,
		  void *userdata)
{
	int rc, count = 0;

	sqlite3_reset(s->peek);
	sqlite3_bind_int64(s->peek, 1, after_seq);
	sqlite3_bind_int64(s->peek, 2, (int64_t)max);
	while ((rc = sqlite3_step(s->peek)) == SQLITE_ROW) {
		struct et_spool_rec r = {
			.seq = sqlite3_column_int64(s->peek, 0),
			.ts_ms = sqlite3_column_int64(s->peek, 1),
			.device = (const char *)sqlite3_column_text(s->peek, 2),
			.point = (const char *)sqlite3_column_text(s->peek, 3),
			.unit = (const char *)sqlite3_column_text(s->peek, 4),
			.has_value = sqlite3_column_type(s->peek, 5) != SQLITE_NULL,
			.value = sqlite3_column_double(s->peek, 5),
			.q = (const char *)sqlite3_column_text(s->peek, 6),
		};
		count++;
		if (fn(&r, userdata) < 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
		sqlite3_reset(s->peek);
		return classify(rc);
	}
	sqlite3_reset(s->peek);
	return count;
}

int et_spool_ack(struct et_spool *s, int64_t lo, int64_t hi)
{
	int rc;

	sqlite3_reset(s->del);
	sqlite3_bind_int64(s->del, 1, lo);
	sqlite3_bind_int64(s->del, 2, hi);
	rc = sqlite3_step(s->del);
	sqlite3_reset(s->del);
	if (rc != SQLITE_DONE) {
		snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
		return classify(rc);
	}
	s->depth -= (uint64_t)sqlite3_changes(s->db) > s->depth ? s->depth
								  : (uint64_t)sqlite3_changes(s->db);
	return 0;
}

int64_t et_spool_count(struct et_spool *s, int64_t lo, int64_t hi)
{
	int64_t n;
	int rc;

	sqlite3_reset(s->count);
	sqlite3_bind_int64(s->count, 1, lo);
	sqlite3_bind_int64(s->count, 2, hi);
	rc = sqlite3_step(s->count);
	n = rc == SQLITE_ROW ? sqlite3_column_int64(s->count, 0) : 0;
	if (rc != SQLITE_ROW)
		snprintf(s->err, sizeof(s->err), "%s", sqlite3_errmsg(s->db));
	sqlite3_reset(s->count);
	return rc == SQLITE_ROW ? n : classify(rc);
}

/* Several acks in one transaction: one fsync instead of one per acknowledgement. */
int et_spool_begin(struct et_spool *s)
{
	return exec(s, "BEGIN IMMEDIATE") == SQLITE_OK ? 0 : ET_SPOOL_ERROR;
}

int et_spool_commit(struct et_spool *s)
{
	int rc = exec(s, "COMMIT");

	if (rc != SQLITE_OK) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->depth = (uint64_t)query_int(s, "SELECT count(*) FROM readings", 0);
		return classify(rc);
	}
	return 0;
}

int64_t et_spool_epoch(struct et_spool *s)
{
	return s->epoch;
}

uint64_t et_spool_depth(struct et_spool *s)
{
	return s->depth;
}

uint64_t et_spool_dropped(struct et_spool *s)
{
	return s->dropped + s->dropped_unsaved;
}

void et_spool_count_dropped(struct et_spool *s, uint64_t n)
{
	s->dropped_unsaved += n;
	/* Best effort now; otherwise saved with the next accepted batch. */
	if (set_meta(s, "dropped", (int64_t)(s->dropped + s->dropped_unsaved)) == SQLITE_OK) {
		s->dropped += s->dropped_unsaved;
		s->dropped_unsaved = 0;
	}
}

const char *et_spool_errmsg(struct et_spool *s)
{
	return s->err;
}
