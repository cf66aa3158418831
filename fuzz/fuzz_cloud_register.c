/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: what edgetrust-cloud accepts from devices it does not trust yet
 * (src/cloud/proto.c): MQTT topics (proto_topic_split) and registration requests
 * (proto_parse_register: JSON, serial, PEM key, fingerprint, nonce). The first input byte
 * chooses; a parsed request must hold a valid serial and a 64-digit fingerprint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reg_req req;
	char reason[256], serial[65];
	const char *rest = NULL;
	char *topic;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		topic = malloc(size);
		if (!topic)
			return 0;
		memcpy(topic, data + 1, size - 1);
		topic[size - 1] = '\0';
		if (proto_topic_split(topic, serial, &rest) &&
		    (!proto_serial_ok(serial) || !rest || rest < topic || rest > topic + size))
			abort();
		free(topic);
		return 0;
	}
	memset(&req, 0, sizeof(req));
	if (proto_parse_register("SN-FUZZ-1", data + 1, size - 1, &req, reason, sizeof(reason)) == 0) {
		if (!proto_serial_ok(req.serial) || !req.pem || strlen(req.fpr) != 64)
			abort();
		reg_req_clear(&req);
	}
	return 0;
}
