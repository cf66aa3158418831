/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the agent's configuration file parser (src/agent/agent_config.c). The file is
 * written by people and by provisioning scripts; whatever it holds must end in a parsed config
 * or one error line, never a crash, a hang or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct et_agent_config *cfg = NULL;
	char err[512];
	int r;

	memset(err, 0x55, sizeof(err));
	r = et_agent_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err));
	if (r == 0) {
		if (!cfg)
			abort();
		et_agent_config_free(cfg);
	} else {
		/* Failure: one NUL-terminated line and no config. */
		if (cfg || !memchr(err, '\0', sizeof(err)) || strchr(err, '\n'))
			abort();
	}
	return 0;
}
