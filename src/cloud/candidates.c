/* SPDX-License-Identifier: Apache-2.0 */
/* Candidate keys of a serial over db.h (see candidates.h). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "candidates.h"
#include "edgetrust/edgetrust.h"
#include "exitcodes.h"
#include "log.h"
#include "refusal.h"

static int64_t i64(const char *s)
{
	return s ? strtoll(s, NULL, 10) : 0;
}

static int cmp_cand(const void *a, const void *b)
{
	const struct key_cand *x = a, *y = b;
	int c = strcmp(x->serial, y->serial);
	if (c)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

int cand_list(reg *r, const char *serial, struct key_cands *ret)
{
	cdb_rows *rows = NULL;
	const char *p[] = { serial };
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = cdb_query(r->db,
		       serial ? "SELECT serial, fingerprint, pubkey_pem, first_seen, last_seen,"
				" seen_count, id FROM key_candidates WHERE serial = ? ORDER BY id"
			      : "SELECT serial, fingerprint, pubkey_pem, first_seen, last_seen,"
				" seen_count, id FROM key_candidates ORDER BY id",
		       serial ? 1 : 0, p, &rows);
	if (rc != CDB_OK)
		return rc;
	ret->v = calloc(rows->nrows + 1, sizeof(*ret->v));
	if (!ret->v) {
		cdb_rows_free(rows);
		return CDB_ERR;
	}
	for (size_t i = 0; i < rows->nrows; i++) {
		struct key_cand *c = &ret->v[i];
		snprintf(c->serial, sizeof(c->serial), "%s", cdb_cell(rows, i, 0));
		snprintf(c->fpr, sizeof(c->fpr), "%s", cdb_cell(rows, i, 1));
		c->pem = rows->cell[i * rows->ncols + 2];
		rows->cell[i * rows->ncols + 2] = NULL;
		c->first_seen = i64(cdb_cell(rows, i, 3));
		c->last_seen = i64(cdb_cell(rows, i, 4));
		c->seen_count = i64(cdb_cell(rows, i, 5));
		c->id = i64(cdb_cell(rows, i, 6));
	}
	ret->n = rows->nrows;
	cdb_rows_free(rows);
	/* Byte order, whatever the database's collation, so cand_of can binary-search; arrival
	 * (id) order within a serial. */
	if (!serial)
		qsort(ret->v, ret->n, sizeof(*ret->v), cmp_cand);
	return CDB_OK;
}

void cand_free(struct key_cands *c)
{
	for (size_t i = 0; c->v && i < c->n; i++)
		free(c->v[i].pem);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

struct key_cands cand_of(const struct key_cands *all, const char *serial)
{
	size_t lo = 0, hi = all->n;
	struct key_cands out = { 0 };

	while (lo < hi) { /* first entry >= serial */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(all->v[mid].serial, serial) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	out.v = all->v + lo;
	while (lo + out.n < all->n && !strcmp(all->v[lo + out.n].serial, serial))
		out.n++;
	return out;
}

int cand_delete_all(reg *r, const char *serial)
{
	const char *p[] = { serial };
	return cdb_exec(r->db, "DELETE FROM key_candidates WHERE serial = ?", 1, p);
}

int cand_offer(reg *r, const char *serial, const char *fpr, const char *pem,
	       const struct cand_limits *lim, const char *first_action, enum cand_outcome *ret,
	       size_t *ret_n)
{
	char nb[24];
	const char *p[] = { reg_i64(reg_now(), nb), serial, fpr };
	cdb_rows *rows = NULL;
	long changed = 0;
	int rc;

	/* A key already waiting: the device (or the attacker) asking again. One row update, no
	 * audit row, so repeating a request cannot grow anything. */
	rc = cdb_exec_changes(r->db,
			      "UPDATE key_candidates SET last_seen = CAST(? AS BIGINT),"
			      " seen_count = seen_count + 1 WHERE serial = ? AND fingerprint = ?",
			      3, p, &changed);
	if (rc != CDB_OK)
		return rc;
	rc = cdb_query(r->db, "SELECT COUNT(*), MAX(first_seen) FROM key_candidates WHERE serial = ?",
		       1, p + 1, &rows);
	if (rc != CDB_OK)
		return rc;
	size_t n = (size_t)i64(cdb_cell(rows, 0, 0));
	int64_t newest = i64(cdb_cell(rows, 0, 1));
	cdb_rows_free(rows);
	*ret_n = n;
	if (changed > 0) {
		*ret = CAND_KNOWN;
		return CDB_OK;
	}
	if (n >= (size_t)lim->max || (n > 0 && lim->interval > 0 && reg_now() - newest < lim->interval)) {
		*ret = n >= (size_t)lim->max ? CAND_LIMIT : CAND_RATE;
		return reg_refusal_add(r, serial, RF_REKEY_LIMIT, 1);
	}
	const char *pi[] = { serial, fpr, pem, nb, nb };
	rc = cdb_exec(r->db,
		      "INSERT INTO key_candidates (serial, fingerprint, pubkey_pem, first_seen,"
		      " last_seen, seen_count) VALUES (?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT), 1)",
		      5, pi);
	if (rc != CDB_OK)
		return rc;
	*ret = CAND_NEW;
	*ret_n = n + 1;
	/* The audit row flags a second key for one serial: someone else may hold the serial. */
	char detail[160];
	snprintf(detail, sizeof(detail), "%s (candidate %zu, at most %d)%s", fpr, n + 1, lim->max,
		 n ? ": more than one key for this serial; accept needs --key" : "");
	return reg_audit(r, serial, n ? "key-conflict" : first_action, detail);
}

bool cand_prefix_ok(const char *prefix)
{
	size_t n = strlen(prefix);
	if (n < CAND_PREFIX_MIN || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)prefix[i]))
			return false;
	return true;
}

enum cand_pick cand_pick(const struct key_cands *c, const char *prefix, size_t *ret_i)
{
	size_t found = 0;

	if (c->n == 0)
		return CAND_NONE;
	if (!prefix) {
		if (c->n > 1)
			return CAND_AMBIGUOUS;
		*ret_i = 0;
		return CAND_PICKED;
	}
	for (size_t i = 0; i < c->n; i++)
		if (!strncasecmp(c->v[i].fpr, prefix, strlen(prefix))) {
			*ret_i = i;
			found++;
		}
	return found == 1 ? CAND_PICKED : found ? CAND_AMBIGUOUS : CAND_NOMATCH;
}

cJSON *cand_json(const struct key_cands *c, bool with_pem)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < c->n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "fingerprint", c->v[i].fpr);
		cJSON_AddNumberToObject(o, "first_seen", (double)c->v[i].first_seen);
		cJSON_AddNumberToObject(o, "last_seen", (double)c->v[i].last_seen);
		cJSON_AddNumberToObject(o, "seen_count", (double)c->v[i].seen_count);
		if (with_pem && c->v[i].pem)
			cJSON_AddStringToObject(o, "pubkey_pem", c->v[i].pem);
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

static void utc(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, 32, "%" PRId64, t);
}

void cand_print(const char *serial, const char *state, const struct key_cands *c)
{
	char f[32], l[32];

	if (c->n == 0)
		printf("%-24s %-9s (no candidate key yet: waiting for the device)\n",
		       serial, state);
	for (size_t i = 0; i < c->n; i++) {
		utc(c->v[i].first_seen, f);
		utc(c->v[i].last_seen, l);
		printf("%-24s %-9s %s %s %s %6" PRId64 "\n", serial, state, c->v[i].fpr, f, l,
		       c->v[i].seen_count);
	}
	if (c->n > 1)
		printf("%-24s %-9s WARNING: %zu different keys for one serial; compare with the "
		       "device's registration record and run accept %s --key FINGERPRINT\n",
		       serial, state, c->n, serial);
}

void cand_names(const struct key_cands *c, size_t skip, const char *prefix, char *buf,
		size_t len)
{
	size_t o = strlen(buf);

	for (size_t k = 0, nd = 0; k < c->n && o < len; k++)
		if (k != skip) {
			int w = snprintf(buf + o, len - o, "%s%.16s...", nd++ ? ", " : prefix,
					 c->v[k].fpr);
			if (w < 0)
				break;
			o += (size_t)w;
		}
}

int cand_accept(struct device *d, const struct key_cands *c, const char *key, char *detail,
		size_t detail_len)
{
	size_t i = 0;

	switch (cand_pick(c, key, &i)) {
	case CAND_PICKED:
		break;
	case CAND_NONE:
		cl_log(CL_ERR, "%s: no candidate key to accept (state '%s'; allowed: pending, or "
			       "accepted with a re-key request)", d->serial, d->state);
		return EC_STATE;
	case CAND_AMBIGUOUS:
		cl_log(CL_ERR, "%s: %s; run `edgetrust-cloud pending`, compare the fingerprints with "
			       "the device's registration record and accept one with --key FINGERPRINT",
		       d->serial,
		       key ? "--key matches more than one candidate key"
			   : "more than one candidate key arrived for this serial (another holder "
			     "of the serial may be trying to take it)");
		return EC_KEY_CHOICE;
	case CAND_NOMATCH:
		cl_log(CL_ERR, "%s: no candidate key has fingerprint %s; `edgetrust-cloud pending` "
			       "lists them", d->serial, key);
		return EC_KEY_CHOICE;
	}
	/* The full SP 800-56B check (too slow for every registration, see lib/pem.c) before the
	 * key is trusted with credentials. */
	if (et_pem_check_rsa(c->v[i].pem, 0) < 0) {
		cl_log(CL_ERR, "%s: candidate key %.16s... is not acceptable: %s; reject it",
		       d->serial, c->v[i].fpr, et_errmsg());
		return EC_INPUT;
	}
	free(d->pubkey_pem);
	d->pubkey_pem = strdup(c->v[i].pem);
	if (!d->pubkey_pem)
		return EC_FAILURE;
	snprintf(d->fpr, sizeof(d->fpr), "%s", c->v[i].fpr);
	/* the audit row names the accepted key in full and the discarded ones */
	snprintf(detail, detail_len, "key %s", d->fpr);
	cand_names(c, i, "; discarded ", detail, detail_len);
	return EC_OK;
}
