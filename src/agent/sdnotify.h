/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny sd_notify(3): one datagram to $NOTIFY_SOCKET. Built in rather than linking
 * libsystemd, so the device image needs no extra library for READY=1 / WATCHDOG=1 / STATUS=.
 */
#ifndef EDGETRUST_AGENT_SDNOTIFY_H
#define EDGETRUST_AGENT_SDNOTIFY_H

#include <stdint.h>

/* Sends msg; 0 when sent or when not running under systemd, -1 on error. */
int et_sd_notify(const char *msg);
/* Watchdog interval in microseconds from $WATCHDOG_USEC (0 when disabled). */
uint64_t et_sd_watchdog_usec(void);

#endif
