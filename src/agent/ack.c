/* SPDX-License-Identifier: Apache-2.0 */
/* Parser of the cloud's telemetry acknowledgement (see ack.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ack.h"

/* An integral JSON number in [min, max]; range first (the cast is undefined outside). */
static bool int_ok(const cJSON *j, int64_t min, int64_t max, int64_t *ret)
{
	double d;

	if (!cJSON_IsNumber(j))
		return false;
	d = j->valuedouble;
	if (!(d >= (double)min && d <= (double)max) || (double)(int64_t)d != d)
		return false;
	*ret = (int64_t)d;
	return true;
}

static bool seq_ok(const cJSON *j, int64_t *ret)
{
	return int_ok(j, 1, ET_ACK_MAX_SEQ, ret);
}

int et_ack_parse(const char *serial, const void *payload, size_t len, int64_t *ret_epoch,
		 struct et_ack_range *ranges, size_t max, char *err, size_t errlen)
{
	cJSON *root = NULL;
	const cJSON *j, *r;
	size_t n = 0;
	int rc = -1;

	if (len == 0 || len > ET_ACK_MAX_PAYLOAD) {
		snprintf(err, errlen, "%s payload (%zu bytes, limit %d)", len ? "oversized" : "empty",
			 len, ET_ACK_MAX_PAYLOAD);
		goto out;
	}
	if (memchr(payload, '\0', len)) {
		snprintf(err, errlen, "payload is not JSON text");
		goto out;
	}
	root = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "malformed JSON");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!cJSON_IsNumber(j) || j->valuedouble != 1) {
		snprintf(err, errlen, "unsupported protocol version (\"v\" must be 1)");
		goto out;
	}
	/* The topic is ours already; a payload naming another device is a cloud bug: ignore it. */
	j = cJSON_GetObjectItemCaseSensitive(root, "serial");
	if (j && (!cJSON_IsString(j) || strcmp(j->valuestring, serial))) {
		snprintf(err, errlen, "the ack names another device");
		goto out;
	}
	/* No epoch: a cloud from before epochs, whose numbers are those of epoch 0. */
	j = cJSON_GetObjectItemCaseSensitive(root, "epoch");
	*ret_epoch = 0;
	if (j && !int_ok(j, 0, ET_ACK_MAX_EPOCH, ret_epoch)) {
		snprintf(err, errlen, "\"epoch\" is not an integer in 0..2^53");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "ranges");
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 || (size_t)cJSON_GetArraySize(j) > max) {
		snprintf(err, errlen, "\"ranges\" must be an array of 1..%zu ranges", max);
		goto out;
	}
	cJSON_ArrayForEach(r, j)
	{
		struct et_ack_range x;

		if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != 2 ||
		    !seq_ok(cJSON_GetArrayItem(r, 0), &x.lo) || !seq_ok(cJSON_GetArrayItem(r, 1), &x.hi) ||
		    x.lo > x.hi) {
			snprintf(err, errlen, "range %zu is not [lo, hi] with 1 <= lo <= hi <= 2^53", n + 1);
			goto out;
		}
		ranges[n++] = x;
	}
	rc = (int)n;
out:
	cJSON_Delete(root);
	return rc;
}
