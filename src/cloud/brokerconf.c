/* SPDX-License-Identifier: Apache-2.0 */
/* mosquitto-edgetrust.conf, as init-broker writes it (see brokerconf.h). */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>

#include "brokerconf.h"

char *brokerconf_render(bool registry, const char *plugin, const char *db, const char *dir)
{
	char *out = NULL, mode[8192];

	if (registry)
		snprintf(mode, sizeof(mode),
			 "# device logins: edgetrust plugin, reading the registry (serve --accounts registry);\n"
			 "# it also binds every login to its own client id and refuses retained and\n"
			 "# oversized publishes from devices and the bootstrap login\n"
			 "plugin %s\n"
			 "plugin_opt_registry %s\n"
			 "# the cloud, bootstrap and admin logins: dynamic security\n",
			 plugin, db);
	else
		snprintf(mode, sizeof(mode),
			 "# edgetrust plugin, guards only: every login's own client id, no retained or\n"
			 "# oversized publishes from devices and the bootstrap login; every login and\n"
			 "# topic decision stays with dynamic security (serve --accounts dynsec)\n"
			 "plugin %s\n"
			 "plugin_opt_accounts dynsec\n",
			 plugin);
	if (asprintf(&out,
		     "# mosquitto configuration lines for edgetrust (include from mosquitto.conf)\n"
		     "per_listener_settings false\n"
		     "allow_anonymous false\n"
		     "# every login names its client id (docs/protocol.md, \"Client ids\")\n"
		     "allow_zero_length_clientid false\n"
		     "%s"
		     "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
		     "plugin_opt_config_file %s/dynamic-security.json\n"
		     "# limits (docs/edgetrust-cloud.md, \"init-broker\"): the largest packet any client\n"
		     "# may send, and what the broker queues per client (serve's session while it is\n"
		     "# away; agents send unacknowledged telemetry again)\n"
		     "max_packet_size %d\n"
		     "max_queued_messages %d\n"
		     "max_queued_bytes %ld\n",
		     mode, dir, BROKER_MAX_PACKET_SIZE, BROKER_MAX_QUEUED_MESSAGES,
		     BROKER_MAX_QUEUED_BYTES) < 0)
		return NULL;
	return out;
}
