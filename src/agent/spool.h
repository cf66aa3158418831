/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store-and-forward spool: readings wait here, in SQLite (WAL, synchronous=FULL), from the
 * moment the poller produced them until the cloud acknowledged storing them (or, with
 * [spool] delivery = puback, until the broker's PUBACK). Each reading
 * gets a sequence number on insert that never repeats within the spool, even across restarts
 * with an empty spool (the next number lives in a meta table). A spool that is wiped or replaced
 * starts at 1 again, so each spool also has an epoch, drawn at random when it is created and
 * kept in the meta table: readings are named by (epoch, seq) on the wire and in the cloud store
 * (docs/protocol.md, "Spool epoch"). The spool is bounded: when full, the oldest readings are
 * dropped and counted in a persistent counter.
 *
 * One et_spool is used by one thread (the agent's main thread).
 */
#ifndef EDGETRUST_AGENT_SPOOL_H
#define EDGETRUST_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct et_spool;

/* One reading as stored; strings are owned by the spool's row buffers. */
struct et_spool_rec {
	int64_t seq;
	int64_t ts_ms;
	const char *device;
	const char *point;
	const char *unit; /* may be "" */
	double value;
	int has_value;    /* 0: value is null (quality not ok) */
	const char *q;    /* "ok", "exception", ... */
};

/*
 * Epochs travel as JSON numbers, which cJSON holds as doubles and prints with 15 significant
 * digits whenever that comes within DBL_EPSILON of the value (cJSON 1.7.15 print_number), so
 * 16-digit integers can come out a few units off. A new spool therefore draws its epoch from
 * [1, 10^15 - 1] (about 2^49.8 values: exact as a double and in 15 digits). 0 is the epoch of
 * a spool created before epochs existed (it already has sequence numbers, which the cloud stored
 * under epoch 0) and of messages that carry none.
 */
#define ET_SPOOL_EPOCH_MAX 999999999999999LL

/* Result of an insert batch. */
enum et_spool_rc {
	ET_SPOOL_OK = 0,
	ET_SPOOL_FULL = -100,   /* disk full (SQLITE_FULL): nothing of the batch was accepted */
	ET_SPOOL_ERROR = -101,  /* another SQLite error: nothing of the batch was accepted */
};

/* Opens or creates data_dir/spool.db (a new spool gets a new random epoch). errbuf receives
 * the reason on failure. */
int et_spool_open(const char *path, uint64_t max_records, struct et_spool **ret, char *errbuf,
		  size_t errlen);
void et_spool_free(struct et_spool *s);
void et_spool_set_max(struct et_spool *s, uint64_t max_records);

/*
 * Accepts n readings in one transaction (seq, device, point, unit, q are read from recs;
 * recs[i].seq is ignored and the assigned numbers are returned in ret_first_seq..+n-1).
 * Afterwards drops the oldest records beyond max_records (counted). ET_SPOOL_FULL when the
 * disk is full: the batch is rolled back and the caller counts it as lost-before-accepted.
 */
int et_spool_add(struct et_spool *s, const struct et_spool_rec *recs, size_t n,
		 int64_t *ret_first_seq);

/*
 * Calls fn for up to max records with seq > after_seq, in seq order. Returns the number of
 * records visited or a negative et_spool_rc.
 */
typedef int (*et_spool_visit_fn)(const struct et_spool_rec *r, void *userdata);
int et_spool_peek(struct et_spool *s, int64_t after_seq, size_t max, et_spool_visit_fn fn,
		  void *userdata);

/* Deletes the records in [lo, hi] (acknowledged by the cloud, or by the broker with
 * [spool] delivery = puback). */
int et_spool_ack(struct et_spool *s, int64_t lo, int64_t hi);

/* Number of records in [lo, hi], or a negative et_spool_rc. */
int64_t et_spool_count(struct et_spool *s, int64_t lo, int64_t hi);

/* Group several et_spool_ack calls in one transaction (one fsync). */
int et_spool_begin(struct et_spool *s);
int et_spool_commit(struct et_spool *s);

/* The spool's epoch, 0..ET_SPOOL_EPOCH_MAX (see above). */
int64_t et_spool_epoch(struct et_spool *s);

/* Counters for status reports. */
uint64_t et_spool_depth(struct et_spool *s);
uint64_t et_spool_dropped(struct et_spool *s);
/* Adds n to the persistent drop counter (readings refused because the disk was full). */
void et_spool_count_dropped(struct et_spool *s, uint64_t n);
/* Last SQLite error text (for logs). */
const char *et_spool_errmsg(struct et_spool *s);

#endif
