/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Candidate keys: every key presented for a serial that the operator has not accepted yet,
 * kept side by side (table key_candidates), never one replacing another. A pending device's
 * keys and an accepted device's re-key requests are both candidates; `accept` binds to exactly
 * one of them (the only one, or the one named with --key), so the operator accepts the key they
 * saw in `pending` and not whichever arrived last (docs/threat-model.md, "Registration and
 * accept"). Per serial the table is bounded (serve --max-key-candidates) and new keys are
 * rate-limited (--key-candidate-interval); what is refused is counted (refusal.h).
 *
 * All writes happen with the device row locked by the caller (reg_device_get(lock = true) in a
 * transaction), so concurrent serve instances on one PostgreSQL see one consistent count.
 */
#ifndef ET_CLOUD_CANDIDATES_H
#define ET_CLOUD_CANDIDATES_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.h"

#define CAND_MAX_DEFAULT 4       /* candidates per serial */
#define CAND_MAX_LIMIT 64
#define CAND_INTERVAL_DEFAULT 2  /* s between two new candidate keys of one serial */
#define CAND_PREFIX_MIN 16       /* shortest fingerprint prefix `accept --key` takes */

struct key_cand {
	char serial[65];
	char fpr[65];
	char *pem;
	int64_t first_seen, last_seen, seen_count;
	int64_t id; /* arrival order */
};

struct key_cands {
	struct key_cand *v;
	size_t n;
};

/* Candidates of serial in arrival order, or of every serial (serial NULL; sorted by serial in
 * byte order, then arrival). */
int cand_list(reg *r, const char *serial, struct key_cands *ret);
void cand_free(struct key_cands *c);
/* The run of one serial inside a cand_list(NULL) result (a view: do not free). */
struct key_cands cand_of(const struct key_cands *all, const char *serial);
int cand_delete_all(reg *r, const char *serial);

struct cand_limits {
	int max;      /* candidates per serial */
	int interval; /* s; 0 = no rate limit */
};

enum cand_outcome {
	CAND_KNOWN,   /* already a candidate: last_seen and seen_count updated, no audit row */
	CAND_NEW,     /* stored as a new candidate, one audit row */
	CAND_LIMIT,   /* refused: the serial has lim->max candidates (counted RF_REKEY_LIMIT) */
	CAND_RATE,    /* refused: the last new key came less than lim->interval ago (same) */
};

/* A registration of serial with key (fpr, pem); first_action is the audit action when it is
 * the serial's only candidate ("register", "rekey-request"); a further one is "key-conflict".
 * *ret_n: the number of candidates afterwards. */
int cand_offer(reg *r, const char *serial, const char *fpr, const char *pem,
	       const struct cand_limits *lim, const char *first_action, enum cand_outcome *ret,
	       size_t *ret_n);

/* Which candidate `accept SERIAL [--key PREFIX]` binds to. */
enum cand_pick { CAND_PICKED, CAND_NONE, CAND_AMBIGUOUS, CAND_NOMATCH };
enum cand_pick cand_pick(const struct key_cands *c, const char *prefix, size_t *ret_i);
/* PREFIX is CAND_PREFIX_MIN..64 hex digits. */
bool cand_prefix_ok(const char *prefix);

/* accept: pins d to the candidate cand_pick chooses, after the full key check
 * (et_pem_check_rsa); detail gets the audit text. An exit code (exitcodes.h), logged:
 * EC_KEY_CHOICE when several candidates and no key, or key names none; EC_INPUT when the key
 * fails the check. */
int cand_accept(struct device *d, const struct key_cands *c, const char *key, char *detail,
		size_t detail_len);
/* Appends "<prefix>fpr16..., fpr16..." of the candidates but index skip (SIZE_MAX = none). */
void cand_names(const struct key_cands *c, size_t skip, const char *prefix, char *buf,
		size_t len);

/* [{"fingerprint","first_seen","last_seen","seen_count"[,"pubkey_pem"]}, ...] */
cJSON *cand_json(const struct key_cands *c, bool with_pem);
/* The operator's `pending` lines for one device. */
void cand_print(const char *serial, const char *state, const struct key_cands *c);

#endif
