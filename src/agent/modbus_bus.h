/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus model: one worker thread per Modbus bus (a TCP endpoint host:port, or a serial line,
 * which is one request queue), each owning one et_poller and its libmodbus contexts, so that a
 * slow or hostile slave delays only the devices on its own bus and never the main loop.
 * Workers hand readings (and their log lines) to the main thread through one bounded queue and
 * an eventfd; the main thread never calls into libmodbus. Documented in docs/edgetrustd.md.
 */
#ifndef EDGETRUST_AGENT_MODBUS_BUS_H
#define EDGETRUST_AGENT_MODBUS_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "agent_config.h"
#include "modbus_poll.h"

struct et_buses;

/* Log lines from workers waiting for the main thread, at most (more are counted, not kept). */
#define ET_BUS_LOG_MAX 64

/*
 * Splits cfg's devices into buses and starts one worker per bus; queue_max (>= 1) bounds the
 * readings waiting for et_buses_drain ([agent] modbus_queue_max, default
 * ET_CFG_MODBUS_QUEUE_DEFAULT): a reading that finds the queue full is dropped and
 * counted (et_buses_take_dropped). log (may be NULL) is called only from et_buses_drain.
 */
int et_buses_new(const struct et_agent_config *cfg, size_t queue_max, et_poller_log_fn log,
		 void *log_ud, struct et_buses **ret);
/* Readable while readings or log lines are queued (an eventfd); poll it for POLLIN. */
int et_buses_fd(const struct et_buses *b);
/* On the main thread: delivers every queued log line and reading, oldest first; returns the
 * number of readings. Also reaps workers of buses that reconfiguration removed. */
size_t et_buses_drain(struct et_buses *b, et_reading_cb cb, void *ud);
/* Readings dropped because the queue was full since the last call. */
uint64_t et_buses_take_dropped(struct et_buses *b);
/* Live poll interval (10..86400000 ms) of one device; ET_E_INVALID for an unknown device or
 * range. The worker applies it before its next cycle. */
int et_buses_set_poll_ms(struct et_buses *b, const char *device, unsigned poll_ms);
/*
 * Replaces devices and maps with cfg's: buses that stay keep their worker and their open
 * connections; new buses get a worker; removed buses are stopped (their worker finishes its
 * current request, then exits and is joined by a later drain or by et_buses_free). On
 * failure nothing changed.
 */
int et_buses_reconfigure(struct et_buses *b, const struct et_agent_config *cfg);
/* Sums of the pollers' counters, and the queue's. */
struct et_buses_stats {
	struct et_poller_stats poll;
	uint64_t queue_dropped; /* since et_buses_new */
	size_t queue_max;
	size_t buses;
};
void et_buses_get_stats(struct et_buses *b, struct et_buses_stats *ret);
/* Accepts NULL. Stops and joins every worker: all in parallel, each within its current
 * request's timeout_ms (a worker polls no further group once told to stop). */
void et_buses_free(struct et_buses *b);

#endif
