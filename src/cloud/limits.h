/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-device telemetry limits of `serve` (docs/edgetrust-cloud.md "Telemetry limits"): a token
 * bucket of records per device (rate per second, burst), in a fixed-size table so that the
 * limiter itself cannot be grown by input. Per serve instance: see the docs for several.
 */
#ifndef ET_CLOUD_LIMITS_H
#define ET_CLOUD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults, used by the option table (src/cloud/main.c) and documented with their reasons. */
#define LIM_DEFAULT_RATE 10000    /* records/s per device: --telemetry-rate */
#define LIM_DEFAULT_BURST 200000  /* records: --telemetry-burst */
#define LIM_DEFAULT_BYTES 65536   /* bytes per message: --telemetry-max-bytes */
#define LIM_DEFAULT_DEVICES 16384 /* devices tracked: --telemetry-devices */
#define LIM_PROBE 8               /* slots searched per serial; the oldest of them is evicted */

struct lim_table;
/* rate 0 = no rate limit. NULL when out of memory. */
struct lim_table *lim_new(size_t slots, double rate, double burst);
void lim_free(struct lim_table *t);
/* Takes n tokens from serial's bucket at time now_ms: true when allowed. A refused message
 * takes nothing (the device sends it again later, when the bucket has refilled). */
bool lim_take(struct lim_table *t, const char *serial, double n, int64_t now_ms);
/* Devices in the table now (at most slots), for tests. */
size_t lim_count(const struct lim_table *t);

#endif
