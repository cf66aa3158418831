/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Modbus poller: one poll group per [modbus.<device>], read over libmodbus (TCP or RTU)
 * with the fewest requests, every point reported through a callback with a quality mark.
 * Single-threaded and blocking (each answer bounded by its device's timeout_ms); the caller
 * owns the clock and the loop (see et_poller_next_due_ms). edgetrustd runs one poller per bus
 * on a thread of its own (modbus_bus.h); et-mbprobe and the unit tests drive one directly.
 */
#ifndef EDGETRUST_AGENT_MODBUS_POLL_H
#define EDGETRUST_AGENT_MODBUS_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_config.h"
#include "mbvalue.h" /* enum et_quality */

struct et_reading {
	const char *device, *point, *unit; /* valid during the callback; unit "" if none */
	double value;                      /* scaled; 0 unless quality == ET_Q_OK */
	int64_t ts_ms;                     /* wall clock (CLOCK_REALTIME), ms */
	enum et_quality quality;
	int exception_code; /* Modbus exception code when quality == ET_Q_EXCEPTION, else 0 */
};
typedef void (*et_reading_cb)(const struct et_reading *r, void *userdata);

/* Optional: state changes (device reachable/unreachable, plan fallbacks), never per poll. */
typedef void (*et_poller_log_fn)(et_log_level level, const char *msg, void *userdata);

/* Optional: asked before each group is polled; true makes et_poller_run_due return at once
 * (the groups not polled stay due). Lets a bus worker stop within one request. */
typedef bool (*et_poller_cancel_fn)(void *userdata);

struct et_poller;

/* Copies everything it needs from cfg (cfg may be freed afterwards). Opens no connection yet. */
int et_poller_new(const struct et_agent_config *cfg, struct et_poller **ret);
void et_poller_set_log(struct et_poller *p, et_poller_log_fn fn, void *userdata);
void et_poller_set_cancel(struct et_poller *p, et_poller_cancel_fn fn, void *userdata);
/*
 * now_ms and every time below: a monotonic clock in ms (CLOCK_MONOTONIC). Returns when the
 * next group is due (<= now_ms if one is due now; now_ms + 86400000 if nothing is configured).
 */
int64_t et_poller_next_due_ms(struct et_poller *p, int64_t now_ms);
/*
 * Polls every group due at now_ms (blocking I/O, at most one timeout_ms per request and one
 * per group whose device does not answer; a device that is down is retried with backoff 0.25 s doubling to
 * 30 s and its points are reported with ET_Q_IO meanwhile). Calls cb once per point per
 * group polled. Returns the number of groups polled (>= 0) or ET_E_INVALID.
 */
int et_poller_run_due(struct et_poller *p, int64_t now_ms, et_reading_cb cb, void *userdata);
/* Live setting: poll interval of one device, 10..86400000 ms. ET_E_INVALID for an unknown
 * device or an out-of-range value. The next poll is due poll_ms after the last one. */
int et_poller_set_poll_ms(struct et_poller *p, const char *device, unsigned poll_ms);
/*
 * Replaces devices and register maps with cfg's. Connections whose settings did not change
 * are kept, as is the schedule of devices that keep their name; poll_ms comes from cfg (live
 * overrides made with et_poller_set_poll_ms must be applied again). On failure p is unchanged.
 */
int et_poller_reconfigure(struct et_poller *p, const struct et_agent_config *cfg);
/*
 * The same with a poller built elsewhere (et_poller_new opens nothing, so another thread may
 * build it): takes n's devices and maps into p as et_poller_reconfigure does, frees n.
 */
void et_poller_adopt(struct et_poller *p, struct et_poller *n);
/* Accepts NULL. Closes every connection. */
void et_poller_free(struct et_poller *p);

/* Counters for tests and benchmarks (since et_poller_new). */
struct et_poller_stats {
	uint64_t requests;    /* Modbus read requests sent */
	uint64_t failures;    /* requests that did not return data */
	uint64_t timeouts;    /* of those: no complete answer within timeout_ms */
	uint64_t bad_answers; /* of those: answers refused (CRC, ids, lengths, function) */
	uint64_t connects;    /* successful connects */
	uint64_t connect_failures;
};
void et_poller_get_stats(const struct et_poller *p, struct et_poller_stats *ret);

#endif
