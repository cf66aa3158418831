/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device registry: devices, issued credentials (sealed envelopes), the audit log, telemetry
 * and settings, with versioned migrations. Written once over db.h, so SQLite and PostgreSQL
 * behave the same. Refusal counters: refusal.h. Keys not accepted yet: candidates.h.
 */
#ifndef ET_CLOUD_REGISTRY_H
#define ET_CLOUD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

#define REG_SCHEMA_VERSION 6

enum { REG_NOTFOUND = 1 };

/* Device states. "activated" = the operator allowed the serial to register until a deadline. */
#define ST_ACTIVATED "activated"
#define ST_PENDING "pending"
#define ST_ACCEPTED "accepted"
#define ST_REJECTED "rejected"
#define ST_REVOKED "revoked"

/* What the broker currently knows about the device's login. */
#define BR_NONE "none"
#define BR_ROLE "role" /* the device's role exists (made at activation), no login yet */
#define BR_ENABLED "enabled"
#define BR_DISABLED "disabled"

struct device {
	char serial[65];
	char state[16];
	int64_t activated_until; /* Unix s; 0 = none */
	char *pubkey_pem;        /* the accepted key (NULL until accept); others: candidates.h */
	char fpr[65];
	char *rekey_pem;         /* unused since schema 5 (candidates.h); always NULL */
	char rekey_fpr[65];
	int64_t cred_version;    /* the version that should exist */
	int64_t issued_version;  /* the version whose envelope was issued and applied */
	char broker_state[16];
	int64_t desired_version;
	int64_t desired_published;
	char *desired_json;      /* {"key":value,...} */
	char *reported_json;
	char *status_json;
	int online;              /* -1 unknown */
	int64_t last_seen;
	int64_t created_at, updated_at;
	int dirty;               /* serve has broker work to do for this device */
	int replied;             /* the reply for the current state has been published */
};

void device_clear(struct device *d);

typedef struct reg {
	cdb *db;
	char actor[96]; /* who makes changes: "cli:user" or "serve:<instance>" (audit log) */
} reg;

int reg_open(const char *url, const char *actor, reg **ret);
void reg_close(reg *r);

/* Row fetch; lock = SELECT ... FOR UPDATE on PostgreSQL (inside a transaction). */
int reg_device_get(reg *r, const char *serial, bool lock, struct device *ret);
int reg_device_insert(reg *r, const struct device *d);
int reg_device_update(reg *r, const struct device *d);
/* All devices (state filter may be NULL), sorted by serial. *ret is an array of n devices. */
int reg_device_list(reg *r, const char *state, struct device **ret, size_t *ret_n);
/* Serials with broker work (dirty), at most max, skipping rows locked by other instances. */
int reg_dirty_list(reg *r, size_t max, char ***ret, size_t *ret_n);

int reg_audit(reg *r, const char *serial, const char *action, const char *detail);

int reg_cred_insert(reg *r, const char *serial, int64_t version, const char *fpr,
		    const char *envelope_b64, long *ret_inserted);
/* Envelope (base64) of a version; *ret malloc'd. REG_NOTFOUND if absent. */
int reg_cred_get(reg *r, const char *serial, int64_t version, char **ret);
int reg_cred_count(reg *r, const char *serial, long *ret);

/* Broker accounts (serve --accounts registry). issue: set the current password hash of a
 * version and enable the login; keep_prev keeps the replaced hash valid (rotation) until
 * reg_account_confirm() sees the device use a version >= the current one. */
int reg_account_issue(reg *r, const char *serial, const char *hash, int64_t version, bool keep_prev);
int reg_account_disable(reg *r, const char *serial);
int reg_account_confirm(reg *r, const char *serial, int64_t version, long *ret_changed);
/* Fingerprint of the key a credential version was sealed to. REG_NOTFOUND if absent. */
int reg_cred_fpr(reg *r, const char *serial, int64_t version, char ret[65]);

/* One reading, de-duplicated on (serial, epoch, seq): *ret_inserted 0 when it was stored before. */
int reg_telemetry_insert(reg *r, const char *serial, int64_t epoch, int64_t seq, int64_t ts,
			 const char *device,
			 const char *point, const char *value, const char *unit, const char *q,
			 long *ret_inserted);

int64_t reg_now(void);
char *reg_i64(int64_t v, char buf[24]);

#endif
