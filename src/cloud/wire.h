/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the cloud, the broker plugin and the agent must agree on about MQTT logins and payloads
 * (docs/protocol.md, "Client ids" and "Size limits"), in one place: the client-id namespaces
 * and the payload limits. No dependencies, so the mosquitto plugin and the agent include it too.
 *
 * Client ids: a device uses its serial; the bootstrap login WIRE_BOOTSTRAP_ID_PREFIX followed by
 * random characters; the cloud WIRE_CLOUD_ID_PREFIX<instance>. A serial that begins with a
 * reserved prefix (compared without case) is not a serial (et_serial_validate, the one rule),
 * so no device can hold an id of the other two namespaces. The prefixes themselves live in
 * the public header (macros only: the plugin does not link libedgetrust).
 */
#ifndef ET_CLOUD_WIRE_H
#define ET_CLOUD_WIRE_H

#include <stdbool.h>
#include <strings.h>

#include "edgetrust/edgetrust.h"

#define WIRE_BOOTSTRAP_ID_PREFIX ET_CLIENT_ID_PREFIX_BOOTSTRAP
#define WIRE_CLOUD_ID_PREFIX ET_CLIENT_ID_PREFIX_CLOUD

/* Largest payloads a device or the bootstrap login may publish; the broker plugin refuses
 * larger ones before they are queued, and serve checks again. */
#define PROTO_MAX_PAYLOAD (64 * 1024)  /* telemetry, status, settings/reported */
#define PROTO_MAX_REGISTER (16 * 1024) /* a registration request */

/* MQTT v5 user property the broker plugin puts on every registration request: the broker's
 * receive time, Unix milliseconds. Any client-supplied property is removed first. */
#define WIRE_RECEIVED_PROP "et-received-ms"

/* True when s begins with one of the reserved client-id prefixes (any case). */
static inline bool wire_reserved_id(const char *s)
{
	return !strncasecmp(s, WIRE_BOOTSTRAP_ID_PREFIX, sizeof(WIRE_BOOTSTRAP_ID_PREFIX) - 1) ||
	       !strncasecmp(s, WIRE_CLOUD_ID_PREFIX, sizeof(WIRE_CLOUD_ID_PREFIX) - 1);
}

#endif
