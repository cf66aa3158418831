/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: device data as edgetrust-cloud serve takes it from a device login it does not
 * trust (src/cloud/proto_data.c): telemetry, status and reported settings, and the output
 * escaping of what was stored (src/cloud/text.c). The first input byte chooses. Whatever is
 * accepted must be storable: exact integers in range, finite values, valid UTF-8 texts.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t max)
{
	if (!s || strlen(s) > max || !text_utf8_ok(s, strlen(s)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[256], *json = NULL;
	struct proto_tel t;
	struct proto_status st;
	size_t nrec = 0;

	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		if (proto_parse_telemetry("SN-FUZZ-1", data + 1, size - 1, &t, &nrec, reason,
					  sizeof(reason)) == 0) {
			if (t.n + t.nbad != nrec || nrec < 1 || nrec > PROTO_MAX_RECORDS ||
			    t.epoch < 0 || t.epoch > PROTO_MAX_EPOCH)
				abort();
			for (size_t i = 0; i < t.n; i++) {
				const struct proto_rec *r = &t.rec[i];
				if (r->seq < 1 || r->seq > PROTO_MAX_SEQ ||
				    r->ts < -PROTO_MAX_SEQ || r->ts > PROTO_MAX_SEQ ||
				    (r->has_value && !isfinite(r->value)))
					abort();
				check_text(r->device, PROTO_MAX_NAME);
				check_text(r->point, PROTO_MAX_NAME);
				check_text(r->q, 16);
				if (r->unit)
					check_text(r->unit, PROTO_MAX_UNIT);
			}
			proto_tel_clear(&t);
		}
		break;
	case 1:
		if (proto_parse_status("SN-FUZZ-1", data + 1, size - 1, &json, &st, reason,
				       sizeof(reason)) == 0) {
			check_text(json, 4 * PROTO_MAX_PAYLOAD);
			free(json);
		}
		break;
	case 2:
		if (proto_parse_reported("SN-FUZZ-1", data + 1, size - 1, &json, reason,
					 sizeof(reason)) == 0) {
			check_text(json, 4 * PROTO_MAX_PAYLOAD);
			free(json);
		}
		break;
	default: {
		char *s = malloc(size);
		if (!s)
			return 0;
		memcpy(s, data + 1, size - 1);
		s[size - 1] = '\0';
		char *u = text_escape(s, TEXT_UTF8), *e = text_escape(s, TEXT_TERMINAL);
		if (u && !text_utf8_ok(u, strlen(u)))
			abort();
		/* terminal text: valid UTF-8 and no control byte */
		if (e) {
			if (!text_utf8_ok(e, strlen(e)))
				abort();
			for (const unsigned char *p = (const unsigned char *)e; *p; p++)
				if (*p < 0x20 || *p == 0x7f ||
				    (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
					abort();
		}
		free(u);
		free(e);
		free(s);
		break;
	}
	}
	return 0;
}
