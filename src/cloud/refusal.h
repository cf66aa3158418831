/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Refusals and limit hits, counted per device and per reason, so that an attack is seen and not
 * only survived (docs/threat-model.md, "Visible refusals"). Every boundary that refuses input
 * counts it here; `edgetrust-cloud show`, `list --json` and `refusals` show the counters.
 *
 * The table cannot be grown by an attacker: reasons come from the fixed list below, and a serial
 * that is not in the registry is counted under the fleet-wide bucket "" (shown as "(unknown)").
 */
#ifndef ET_CLOUD_REFUSAL_H
#define ET_CLOUD_REFUSAL_H

#include <cjson/cJSON.h>

#include "registry.h"

/* Reasons: short fixed names, documented in docs/edgetrust-cloud.md ("Refusals"). Add here. */
#define RF_REGISTER_BAD "register-invalid"       /* a registration that fails validation */
#define RF_REGISTER_STATE "register-state"       /* registration for a serial not activated */
#define RF_REGISTER_RETAINED "register-retained" /* a retained (replayed) registration */
#define RF_REGISTER_STALE "register-stale"       /* received before the serial's activation */
#define RF_REGISTER_UNSTAMPED "register-unstamped" /* no broker receive time (plugin missing) */
#define RF_REKEY_LIMIT "rekey-limit"             /* more candidate keys than allowed */
#define RF_TELEMETRY_BAD "telemetry-invalid"     /* a message or record that fails validation */
#define RF_TELEMETRY_RATE "telemetry-rate"       /* over the per-device rate limit */
#define RF_TELEMETRY_SIZE "telemetry-size"       /* over the payload size limit */
#define RF_STATUS_BAD "status-invalid"           /* status or reported settings refused */
#define RF_TELEMETRY_DBERR "telemetry-db-error"  /* a message the database failed to store */

/* Adds n to (serial, reason); serial NULL or not in the registry counts under "". */
int reg_refusal_add(reg *r, const char *serial, const char *reason, long n);
/* {"reason": {"count": N, "last_at": unix_s}, ...} for one serial ("" = unknown), or NULL on a
 * database error. */
cJSON *reg_refusals_json(reg *r, const char *serial);
/* [{"serial": S, "reason": R, "count": N, "last_at": T}, ...] for the whole fleet. */
cJSON *reg_refusals_all_json(reg *r);

/*
 * Refusals made before any database work (a registration that fails to parse) are gathered
 * per batch and written in one transaction by rf_tally_flush, so a flood of bad messages costs
 * one commit per batch and not one per message. Beyond RF_TALLY_MAX serials in one batch, the
 * rest count under "" (the fleet-wide bucket).
 */
#define RF_TALLY_MAX 64
struct rf_tally {
	size_t n;
	struct {
		char serial[65];
		const char *reason;
		long count;
	} e[RF_TALLY_MAX + 4]; /* + the "" buckets of up to 4 reasons */
};
void rf_tally_add(struct rf_tally *t, const char *serial, const char *reason);
/* Writes and empties the tally (outside any transaction); logs a database error. */
void rf_tally_flush(reg *r, struct rf_tally *t);

#endif
