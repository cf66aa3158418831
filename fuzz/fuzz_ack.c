/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the cloud's telemetry acknowledgement (src/agent/ack.c), which decides what the
 * agent deletes from its spool. Only the cloud may publish it, but a device must survive a broken
 * or hostile cloud. Checks: no crash or leak; an accepted ack has 1..max ranges, each
 * 1 <= lo <= hi <= 2^53, and an epoch in 0..2^53; and writing the epoch and ranges back out
 * parses to the same epoch and ranges.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct et_ack_range r1[ET_ACK_MAX_RANGES], r2[ET_ACK_MAX_RANGES];
static char text[64 + ET_ACK_MAX_RANGES * 42];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	size_t len;
	int64_t e1, e2;
	int n, m;

	n = et_ack_parse("SN1", data, size, &e1, r1, ET_ACK_MAX_RANGES, err, sizeof(err));
	if (n < 0) {
		if (!err[0] || !memchr(err, '\0', sizeof(err)))
			abort(); /* every refusal names its reason */
		return 0;
	}
	if (n < 1 || n > ET_ACK_MAX_RANGES || e1 < 0 || e1 > ET_ACK_MAX_EPOCH)
		abort();
	len = (size_t)snprintf(text, sizeof(text), "{\"v\":1,\"epoch\":%" PRId64 ",\"ranges\":[", e1);
	for (int i = 0; i < n; i++) {
		if (r1[i].lo < 1 || r1[i].lo > r1[i].hi || r1[i].hi > ET_ACK_MAX_SEQ)
			abort();
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s[%" PRId64 ",%" PRId64 "]",
					i ? "," : "", r1[i].lo, r1[i].hi);
	}
	len += (size_t)snprintf(text + len, sizeof(text) - len, "]}");
	m = et_ack_parse("SN1", text, len, &e2, r2, ET_ACK_MAX_RANGES, err, sizeof(err));
	if (m != n || e2 != e1 || memcmp(r1, r2, (size_t)n * sizeof(r1[0])))
		abort();
	return 0;
}
