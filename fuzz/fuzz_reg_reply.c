/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: what the agent takes from a registration reply before the TPM is involved
 * (docs/protocol.md): the JSON document, the base64 envelope (et_b64_decode, src/agent) and the
 * envelope header (et_envelope_inspect). The reply topic is writable by the cloud side only,
 * but a device must survive a broken or hostile cloud.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "edgetrust/edgetrust.h"
#include "register.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void envelope(const char *b64)
{
	et_envelope_info info;
	uint8_t *blob = NULL;
	size_t len = 0;

	if (et_b64_decode(b64, &blob, &len) == 0) {
		if (!blob && len)
			abort();
		/* base64 never grows when decoded */
		if (len > strlen(b64))
			abort();
		(void)et_envelope_inspect(blob, len, &info);
	}
	free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "status");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(doc, "envelope");
	char *s;

	if (cJSON_IsObject(doc) && cJSON_IsString(st) && cJSON_IsString(env)) {
		envelope(env->valuestring);
	} else if (!doc) {
		/* Not JSON: feed the raw bytes to the base64 decoder too. */
		s = malloc(size + 1);
		if (s) {
			memcpy(s, data, size);
			s[size] = '\0';
			envelope(s);
			free(s);
		}
	}
	cJSON_Delete(doc);
	return 0;
}
