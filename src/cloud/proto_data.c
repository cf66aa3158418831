/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing of device data (telemetry, status, reported settings; rules in proto.h and
 * docs/protocol.md "Telemetry validation"). Pure functions over untrusted bytes, fuzzed by
 * fuzz/fuzz_cloud_data.c. What passes here is stored as it is: every text valid UTF-8 of
 * bounded length, every number an exact integer or a finite double.
 */
#define _GNU_SOURCE /* memmem */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "text.h"

/* The message rules shared by the three kinds. Returns the parsed object or NULL (reason). */
static cJSON *parse_message(const char *topic_serial, const void *payload, size_t len, char *reason,
			    size_t reason_len)
{
	cJSON *root, *j;

	if (len > PROTO_MAX_PAYLOAD) {
		snprintf(reason, reason_len, "payload too large (%zu bytes, limit %d)", len,
			 PROTO_MAX_PAYLOAD);
		return NULL;
	}
	if (len == 0 || !text_utf8_ok(payload, len)) {
		snprintf(reason, reason_len, "payload is not UTF-8 text without NUL");
		return NULL;
	}
	/* cJSON ends a string at an escaped NUL: "d\u0000x" would be stored as "d". */
	if (memmem(payload, len, "\\u0000", 6)) {
		snprintf(reason, reason_len, "payload has an escaped NUL (\\u0000)");
		return NULL;
	}
	root = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsObject(root)) {
		snprintf(reason, reason_len, "malformed JSON (not an object)");
		cJSON_Delete(root);
		return NULL;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!cJSON_IsNumber(j) || j->valuedouble != 1) {
		snprintf(reason, reason_len, "unsupported protocol version (\"v\" must be 1)");
		cJSON_Delete(root);
		return NULL;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "serial");
	if (j && (!cJSON_IsString(j) || strcmp(j->valuestring, topic_serial))) {
		snprintf(reason, reason_len, "\"serial\" in the payload differs from the topic");
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* An integral JSON number in [min, max] (both within +-2^53, where doubles are exact). */
static bool exact_int(const cJSON *j, int64_t min, int64_t max, int64_t *ret)
{
	if (!cJSON_IsNumber(j))
		return false;
	double d = j->valuedouble;
	/* Range first: the cast is undefined outside it (and for NaN). */
	if (!(d >= (double)min && d <= (double)max) || (double)(int64_t)d != d)
		return false;
	*ret = (int64_t)d;
	return true;
}

static bool name_ok(const cJSON *j, size_t min, size_t max)
{
	/* The payload is valid UTF-8, and cJSON decodes \u escapes to valid UTF-8 (refusing lone
	 * surrogates), but \u0000 would cut the text short: check what is stored. */
	if (!cJSON_IsString(j) || !j->valuestring)
		return false;
	size_t n = strlen(j->valuestring);
	return n >= min && n <= max && text_utf8_ok(j->valuestring, n);
}

static const char *const qualities[] = {"ok", "exception", "timeout", "crc", "io", "decode", NULL};

/* NULL when the record is valid, else why not. */
static const char *parse_record(const cJSON *r, struct proto_rec *out)
{
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq");
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(r, "ts");
	const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
	const cJSON *pt = cJSON_GetObjectItemCaseSensitive(r, "point");
	const cJSON *unit = cJSON_GetObjectItemCaseSensitive(r, "unit");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "q");
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(r, "value");
	bool q_known = false;

	if (!cJSON_IsObject(r))
		return "a record is not an object";
	if (!exact_int(seq, 1, PROTO_MAX_SEQ, &out->seq))
		return "\"seq\" is not an integer in 1..2^53-1";
	if (!exact_int(ts, -PROTO_MAX_SEQ, PROTO_MAX_SEQ, &out->ts))
		return "\"ts\" is not an integer of magnitude below 2^53 (Unix ms)";
	if (!name_ok(dev, 1, PROTO_MAX_NAME) || !name_ok(pt, 1, PROTO_MAX_NAME))
		return "\"device\" or \"point\" is not a string of 1..64 bytes";
	if (unit && !cJSON_IsNull(unit) && !name_ok(unit, 0, PROTO_MAX_UNIT))
		return "\"unit\" is not a string of at most 32 bytes";
	if (cJSON_IsString(q))
		for (int i = 0; qualities[i] && !q_known; i++)
			q_known = !strcmp(q->valuestring, qualities[i]);
	if (!q_known)
		return "\"q\" is not one of ok, exception, timeout, crc, io, decode";
	out->has_value = false;
	if (!strcmp(q->valuestring, "ok")) {
		/* cJSON reads 1e309 as infinity: a value no device can have measured. */
		if (!cJSON_IsNumber(val) || !isfinite(val->valuedouble))
			return "\"value\" of an \"ok\" reading is not a finite number";
		out->has_value = true;
		out->value = val->valuedouble;
	} else if (val && !cJSON_IsNull(val)) {
		return "\"value\" of a reading that is not \"ok\" is not null";
	}
	out->device = dev->valuestring;
	out->point = pt->valuestring;
	out->unit = cJSON_IsString(unit) ? unit->valuestring : NULL;
	out->q = q->valuestring;
	return NULL;
}

void proto_tel_clear(struct proto_tel *t)
{
	free(t->rec);
	cJSON_Delete(t->root);
	memset(t, 0, sizeof(*t));
}

int proto_parse_telemetry(const char *topic_serial, const void *payload, size_t len,
			  struct proto_tel *ret, size_t *ret_nrecords, char *reason,
			  size_t reason_len)
{
	struct proto_tel t = {0};
	const cJSON *recs, *r;
	int n;

	if (ret_nrecords)
		*ret_nrecords = 0;
	t.root = parse_message(topic_serial, payload, len, reason, reason_len);
	if (!t.root)
		return -1;
	/* Readings are named by (epoch, seq): stored under a wrong epoch they could shadow others.
	 */
	if (!proto_epoch(cJSON_GetObjectItemCaseSensitive(t.root, "epoch"), &t.epoch)) {
		snprintf(reason, reason_len, "invalid \"epoch\" (not an integer in 0..2^53)");
		goto fail;
	}
	recs = cJSON_GetObjectItemCaseSensitive(t.root, "records");
	n = cJSON_IsArray(recs) ? cJSON_GetArraySize(recs) : 0;
	if (n < 1 || n > PROTO_MAX_RECORDS) {
		snprintf(reason, reason_len, "\"records\" is not an array of 1..%d records",
			 PROTO_MAX_RECORDS);
		goto fail;
	}
	if (ret_nrecords)
		*ret_nrecords = (size_t)n;
	t.rec = calloc((size_t)n, sizeof(*t.rec));
	if (!t.rec) {
		snprintf(reason, reason_len, "out of memory");
		goto fail;
	}
	cJSON_ArrayForEach(r, recs)
	{
		const char *why = parse_record(r, &t.rec[t.n]);
		if (!why) {
			t.n++;
		} else if (t.nbad++ == 0) {
			const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq");
			if (cJSON_IsNumber(seq))
				snprintf(t.bad_reason, sizeof(t.bad_reason), "seq %.17g: %s",
					 seq->valuedouble, why);
			else
				snprintf(t.bad_reason, sizeof(t.bad_reason), "%s", why);
		}
	}
	*ret = t;
	return 0;
fail:
	proto_tel_clear(&t);
	return -1;
}

static int print_back(cJSON *root, char **ret_json, char *reason, size_t reason_len)
{
	*ret_json = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!*ret_json) {
		snprintf(reason, reason_len, "out of memory");
		return -1;
	}
	return 0;
}

int proto_parse_status(const char *topic_serial, const void *payload, size_t len, char **ret_json,
		       struct proto_status *ret, char *reason, size_t reason_len)
{
	cJSON *root = parse_message(topic_serial, payload, len, reason, reason_len), *j;

	if (!root)
		return -1;
	j = cJSON_GetObjectItemCaseSensitive(root, "online");
	ret->online = cJSON_IsBool(j) ? cJSON_IsTrue(j) : -1;
	if (!exact_int(cJSON_GetObjectItemCaseSensitive(root, "cred_version"), 1, 4294967295LL,
		       &ret->cred_version))
		ret->cred_version = 0;
	return print_back(root, ret_json, reason, reason_len);
}

int proto_parse_reported(const char *topic_serial, const void *payload, size_t len, char **ret_json,
			 char *reason, size_t reason_len)
{
	cJSON *root = parse_message(topic_serial, payload, len, reason, reason_len);

	if (!root)
		return -1;
	return print_back(root, ret_json, reason, reason_len);
}
