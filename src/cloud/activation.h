/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When the operator last activated each serial (table activations, migration 5), so
 * that serve acts only on registration requests the broker received after it
 * (docs/protocol.md, "Registration happens after activation"). The broker plugin stamps every
 * request with its receive time (wire.h, WIRE_RECEIVED_PROP); a request queued for serve, or
 * planted, before the activation is ignored, however late it is delivered.
 */
#ifndef ET_CLOUD_ACTIVATION_H
#define ET_CLOUD_ACTIVATION_H

#include <stdint.h>

#include "registry.h"

/* Unix time in milliseconds (CLOCK_REALTIME): the clock the broker plugin stamps with. */
int64_t reg_now_ms(void);
/* Records that serial was activated now; in the caller's transaction. */
int reg_activation_mark(reg *r, const char *serial);
/* The last activation time; REG_NOTFOUND (and 0) for a serial last activated before migration 5. */
int reg_activation_ms(reg *r, const char *serial, int64_t *ret);

#endif
