/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mosquitto configuration lines `edgetrust-cloud init-broker` writes
 * (mosquitto-edgetrust.conf): the edgetrust plugin before dynamic security in both account
 * modes, and the broker's limits (docs/edgetrust-cloud.md, "init-broker").
 */
#ifndef ET_CLOUD_BROKERCONF_H
#define ET_CLOUD_BROKERCONF_H

#include <stdbool.h>

/*
 * Broker limits (mosquitto 2.0 option names), documented in docs/edgetrust-cloud.md:
 * - max_packet_size: no client's packet may be larger, checked before mosquitto stores it
 *   (the plugin's payload limits, wire.h, are checked after). Above the cloud's largest
 *   dynamic-security batch (--batch x about 1 KB; the default 500 is about 0.5 MB).
 * - max_queued_messages / max_queued_bytes: what the broker keeps per client beyond those in
 *   flight, mostly for serve's persistent session while it is away. A telemetry message
 *   dropped over the limit is sent again by its agent, whose spool keeps it until the cloud's
 *   acknowledgement (docs/protocol.md, "Delivery end to end").
 */
#define BROKER_MAX_PACKET_SIZE (1024 * 1024)
#define BROKER_MAX_QUEUED_MESSAGES 100000
#define BROKER_MAX_QUEUED_BYTES (256L * 1024 * 1024)

/* The configuration text (malloc'd); registry: device logins in the registry (plugin reads db),
 * else dynamic security (the plugin only guards). NULL when out of memory. */
char *brokerconf_render(bool registry, const char *plugin, const char *db, const char *dir);

#endif
