/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrust-cloud payload parsing (src/cloud/proto.c, proto_data.c): topics, registration
 * requests of every bad shape, passwords and credentials, telemetry acknowledgements; device
 * data (telemetry, status, reported) with every value adversary issue 10 found stored wrongly;
 * output escaping (text.c) and the per-device rate limiter's bound (limits.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"
#include "limits.h"
#include "proto.h"
#include "text.h"

static char *pubkey_pem(unsigned bits)
{
	EVP_PKEY *k = EVP_RSA_gen(bits);
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(k);
	assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
	n = BIO_get_mem_data(b, &data);
	out = calloc(1, (size_t)n + 1);
	memcpy(out, data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(k);
	return out;
}

static char *pem2048;

static int setup(void **state)
{
	(void)state;
	pem2048 = pubkey_pem(2048);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(pem2048);
	return 0;
}

static char *request(const char *serial, const char *pem, const char *fpr, const char *nonce, int v)
{
	cJSON *o = cJSON_CreateObject();
	char *s;
	cJSON_AddNumberToObject(o, "v", v);
	if (serial)
		cJSON_AddStringToObject(o, "serial", serial);
	if (pem)
		cJSON_AddStringToObject(o, "pubkey_pem", pem);
	if (fpr)
		cJSON_AddStringToObject(o, "fingerprint", fpr);
	if (nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int parse(const char *topic_serial, const char *payload, size_t len, char *reason,
		 struct reg_req *req)
{
	return proto_parse_register(topic_serial, payload, len, req, reason, 256);
}

static void test_topics(void **state)
{
	char serial[65];
	const char *rest;
	(void)state;
	assert_true(proto_topic_split("et/v1/SN1/register", serial, &rest));
	assert_string_equal(serial, "SN1");
	assert_string_equal(rest, "register");
	assert_true(proto_topic_split("et/v1/a.b_c-D/settings/reported", serial, &rest));
	assert_string_equal(rest, "settings/reported");
	assert_false(proto_topic_split("et/v2/SN1/register", serial, &rest));
	assert_false(proto_topic_split("et/v1//register", serial, &rest));
	assert_false(proto_topic_split("et/v1/SN1", serial, &rest));
	assert_false(proto_topic_split("et/v1/S N/register", serial, &rest));
	assert_false(proto_topic_split("et/v1/+/register", serial, &rest));
	char long_topic[128];
	snprintf(long_topic, sizeof(long_topic), "et/v1/%065d/register", 1);
	assert_false(proto_topic_split(long_topic, serial, &rest));
}

static void test_register_ok(void **state)
{
	char fpr[65], reason[256] = "";
	struct reg_req req;
	(void)state;
	assert_int_equal(et_pem_fingerprint(pem2048, fpr), 0);
	char *p = request("SN1", pem2048, fpr, "00ff", 1);
	assert_int_equal(parse("SN1", p, strlen(p), reason, &req), 0);
	assert_string_equal(req.serial, "SN1");
	assert_string_equal(req.fpr, fpr);
	assert_string_equal(req.nonce, "00ff");
	assert_string_equal(req.pem, pem2048);
	reg_req_clear(&req);
	free(p);
	/* fingerprint is optional, and compared without regard to case */
	for (char *c = fpr; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	p = request("SN1", pem2048, fpr, NULL, 1);
	assert_int_equal(parse("SN1", p, strlen(p), reason, &req), 0);
	reg_req_clear(&req);
	free(p);
}

static void expect_refused(const char *payload, size_t len, const char *topic_serial,
			   const char *why)
{
	char reason[256] = "";
	struct reg_req req;
	memset(&req, 0x5a, sizeof(req));
	assert_int_equal(parse(topic_serial, payload, len, reason, &req), -1);
	if (!strstr(reason, why))
		fail_msg("reason '%s' does not contain '%s'", reason, why);
}

static void test_register_bad(void **state)
{
	char fpr[65], *p, *small = pubkey_pem(1024);
	(void)state;
	assert_int_equal(et_pem_fingerprint(pem2048, fpr), 0);

	expect_refused("", 0, "SN1", "not JSON");
	expect_refused("{\"v\":1}\0x", 9, "SN1", "not JSON");
	expect_refused("{\"v\":1,", 6, "SN1", "malformed JSON");
	expect_refused("[1,2]", 5, "SN1", "malformed JSON");
	expect_refused("\xff\xfe\x01", 3, "SN1", "malformed JSON");
	char *big = calloc(1, PROTO_MAX_REGISTER + 2);
	memset(big, ' ', PROTO_MAX_REGISTER + 1);
	expect_refused(big, PROTO_MAX_REGISTER + 1, "SN1", "too large");
	free(big);

	p = request("SN1", pem2048, fpr, NULL, 2);
	expect_refused(p, strlen(p), "SN1", "version");
	free(p);
	p = request(NULL, pem2048, fpr, NULL, 1);
	expect_refused(p, strlen(p), "SN1", "serial");
	free(p);
	p = request("SN2", pem2048, fpr, NULL, 1);
	expect_refused(p, strlen(p), "SN1", "differs from the topic");
	free(p);
	p = request("SN1", NULL, fpr, NULL, 1);
	expect_refused(p, strlen(p), "SN1", "pubkey_pem");
	free(p);
	p = request("SN1", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", NULL, NULL, 1);
	expect_refused(p, strlen(p), "SN1", "unacceptable public key");
	free(p);
	p = request("SN1", small, NULL, NULL, 1);
	expect_refused(p, strlen(p), "SN1", "unacceptable public key");
	free(p);
	p = request("SN1", pem2048, "00", NULL, 1);
	expect_refused(p, strlen(p), "SN1", "fingerprint");
	free(p);
	p = request("SN1", pem2048, fpr, "not-hex", 1);
	expect_refused(p, strlen(p), "SN1", "nonce");
	free(p);
	free(small);
}

static void test_password_and_credentials(void **state)
{
	char a[33], b[33];
	(void)state;
	assert_int_equal(proto_password(a), 0);
	assert_int_equal(proto_password(b), 0);
	assert_int_equal(strlen(a), 32);
	assert_string_not_equal(a, b);
	for (int i = 0; i < 32; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a[i]));
	char *c = proto_credentials("h", 8883, true, "SN1", a, "SN1", NULL, 3);
	cJSON *o = cJSON_Parse(c);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "password")->valuestring, a);
	assert_int_equal(cJSON_GetObjectItem(o, "cred_version")->valueint, 3);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "tls")));
	assert_null(cJSON_GetObjectItem(o, "ca_pem"));
	cJSON_Delete(o);
	free(c);
	char *r = proto_reply("SN1", "refused", "not activated", "ab", 0, NULL);
	assert_string_equal(r, "{\"v\":1,\"serial\":\"SN1\",\"status\":\"refused\",\"reason\":\"not activated\",\"nonce\":\"ab\"}");
	free(r);
}

/* Finding 16: mosquitto 2.0 hands the plugin the password as a C string, so a password with a
 * NUL inside would be cut there. Every password the cloud issues (devices, init-broker's cloud
 * and bootstrap logins) comes from proto_password: 32 base64url characters, never a NUL. */
static void test_password_alphabet(void **state)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char pw[33];
	(void)state;
	for (int n = 0; n < 2000; n++) {
		memset(pw, 'X', sizeof(pw));
		assert_int_equal(proto_password(pw), 0);
		assert_int_equal(pw[32], '\0');
		for (int i = 0; i < 32; i++)
			assert_true(pw[i] != '\0' && memchr(alphabet, pw[i], sizeof(alphabet) - 1));
	}
}

struct acks_seen {
	char text[4][256];
	int n;
	size_t longest;
};

static void collect_ack(const char *serial, const char *json, size_t len, void *ud)
{
	struct acks_seen *a = ud;
	(void)serial;
	assert_int_equal(strlen(json), len);
	if (len > a->longest)
		a->longest = len;
	if (a->n < 4)
		snprintf(a->text[a->n], sizeof(a->text[0]), "%s", json);
	a->n++;
}

static void test_acks(void **state)
{
	struct acks_seen seen = { 0 };
	struct proto_acks *a = proto_acks_new();
	static const int64_t b[] = { 7, 5, 6, 6, 1, 2, 9, 3, 9000000000000000000 };
	(void)state;
	assert_non_null(a);
	/* nothing added: no message */
	proto_acks_emit(a, collect_ack, &seen);
	assert_int_equal(seen.n, 0);
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
		assert_int_equal(proto_acks_add(a, "SN1", 0, b[i]), 0);
		/* the same numbers of another spool epoch of SN1 interleaved: kept apart */
		if (i % 3 == 0)
			assert_int_equal(proto_acks_add(a, "SN1", 9007199254740991, b[i]), 0);
	}
	assert_int_equal(proto_acks_add(a, "SN2", 17, 42), 0);
	proto_acks_emit(a, collect_ack, &seen);
	assert_int_equal(seen.n, 3);
	/* sorted, duplicates merged, adjacent numbers joined, one message per (serial, epoch) */
	assert_string_equal(seen.text[0], "{\"v\":1,\"serial\":\"SN1\",\"epoch\":0,\"ranges\":[[1,3],"
					  "[5,7],[9,9],[9000000000000000000,9000000000000000000]]}");
	assert_string_equal(seen.text[1], "{\"v\":1,\"serial\":\"SN1\",\"epoch\":9007199254740991,"
					  "\"ranges\":[[6,7],[9,9]]}");
	assert_string_equal(seen.text[2],
			    "{\"v\":1,\"serial\":\"SN2\",\"epoch\":17,\"ranges\":[[42,42]]}");
	proto_acks_free(a);
	/* many gaps: split into messages of PROTO_ACK_MAX_RANGES ranges, each under the limit */
	memset(&seen, 0, sizeof(seen));
	a = proto_acks_new();
	for (int64_t s = 0; s < 2 * PROTO_ACK_MAX_RANGES + 1; s++)
		assert_int_equal(proto_acks_add(a, "SN1", PROTO_MAX_EPOCH, 9000000000000000000 - 2 * s), 0);
	proto_acks_emit(a, collect_ack, &seen);
	assert_int_equal(seen.n, 3);
	assert_true(seen.longest < PROTO_MAX_PAYLOAD);
	proto_acks_free(a);
	proto_acks_free(NULL);
}

/* The "epoch" of a telemetry message: absent is 0; integers 0..2^53 only. */
static void test_epoch(void **state)
{
	static const char *const ok[] = { "0", "1", "4503599627370497", "9007199254740992", "1e3" };
	static const int64_t want[] = { 0, 1, 4503599627370497, 9007199254740992, 1000 };
	static const char *const bad[] = { "-1", "0.5", "9007199254740994", "1e300", "\"5\"",
					   "null", "true", "[1]" };
	int64_t e = -5;
	(void)state;
	assert_true(proto_epoch(NULL, &e));
	assert_int_equal(e, 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cJSON *j = cJSON_Parse(ok[i]);
		assert_true(proto_epoch(j, &e));
		assert_int_equal(e, want[i]);
		cJSON_Delete(j);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *j = cJSON_Parse(bad[i]);
		e = -5;
		assert_non_null(j);
		assert_false(proto_epoch(j, &e));
		assert_int_equal(e, -5);
		cJSON_Delete(j);
	}
	/* Epochs as the agent sends them (cJSON numbers, below 10^15, src/agent/spool.h) arrive
	 * exactly: cJSON prints 15 significant digits when that is within DBL_EPSILON, which is
	 * exact only below 10^15. */
	static const int64_t sent[] = { 1, 999999999999999, 999999999999998, 562949953421311,
					 123456789012345, 100000000000001 };
	for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++) {
		cJSON *o = cJSON_CreateObject();
		char *text;
		cJSON_AddNumberToObject(o, "epoch", (double)sent[i]);
		text = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		o = cJSON_Parse(text);
		assert_true(proto_epoch(cJSON_GetObjectItemCaseSensitive(o, "epoch"), &e));
		assert_int_equal(e, sent[i]);
		cJSON_Delete(o);
		free(text);
	}
}

/* One record in a message; returns what the parser made of it (-1: message refused,
 * 0: record refused, 1: record accepted, *ret filled). */
static int one_record(const char *rec_json, struct proto_rec *ret)
{
	char buf[1024], reason[256];
	struct proto_tel t;
	snprintf(buf, sizeof(buf), "{\"v\":1,\"epoch\":7,\"records\":[%s]}", rec_json);
	if (proto_parse_telemetry("SN1", buf, strlen(buf), &t, NULL, reason, sizeof(reason)) < 0)
		return -1;
	int r = t.n == 1;
	if (r) {
		*ret = t.rec[0];
		ret->device = ret->point = ret->unit = ret->q = NULL; /* freed with the tree */
	}
	assert_int_equal(t.n + t.nbad, 1);
	proto_tel_clear(&t);
	return r;
}

#define REC(extra) "{\"seq\":5,\"ts\":1700000000000,\"device\":\"plc1\",\"point\":\"temp\"," extra "}"

static void test_telemetry_records(void **state)
{
	struct proto_rec r;
	(void)state;
	assert_int_equal(one_record(REC("\"value\":21.5,\"unit\":\"degC\",\"q\":\"ok\""), &r), 1);
	assert_int_equal(r.seq, 5);
	assert_int_equal(r.ts, 1700000000000LL);
	assert_true(r.has_value);
	assert_true(r.value == 21.5);
	assert_int_equal(one_record(REC("\"value\":null,\"q\":\"timeout\""), &r), 1);
	assert_false(r.has_value);
	assert_int_equal(one_record(REC("\"q\":\"io\""), &r), 1);
	/* issue 10: +-1e309 (infinity to cJSON) was stored as 0.0 with q=ok */
	assert_int_equal(one_record(REC("\"value\":1e309,\"q\":\"ok\""), &r), 0);
	assert_int_equal(one_record(REC("\"value\":-1e309,\"q\":\"ok\""), &r), 0);
	assert_int_equal(one_record(REC("\"q\":\"ok\""), &r), 0);
	assert_int_equal(one_record(REC("\"value\":\"1\",\"q\":\"ok\""), &r), 0);
	assert_int_equal(one_record(REC("\"value\":1,\"q\":\"io\""), &r), 0);
	assert_int_equal(one_record(REC("\"value\":1,\"q\":\"great\""), &r), 0);
	/* seq 1.5 was truncated to 1; 2^53+1 collided with 2^53 */
	static const char *bad_seq[] = { "1.5", "0", "-1", "9007199254740992", "9007199254740993",
					 "1e300", "\"7\"", "null", "true" };
	for (size_t i = 0; i < sizeof(bad_seq) / sizeof(bad_seq[0]); i++) {
		char rec[256];
		snprintf(rec, sizeof(rec), "{\"seq\":%s,\"ts\":1,\"device\":\"d\",\"point\":\"p\","
			 "\"value\":1,\"q\":\"ok\"}", bad_seq[i]);
		assert_int_equal(one_record(rec, &r), 0);
	}
	assert_int_equal(one_record("{\"seq\":9007199254740991,\"ts\":-1,\"device\":\"d\","
				    "\"point\":\"p\",\"q\":\"crc\"}", &r), 1);
	assert_int_equal(r.seq, 9007199254740991LL);
	/* ts 1e300 was stored as INT64_MIN */
	static const char *bad_ts[] = { "1e300", "-1e300", "1.5", "9007199254740992", "null", "\"1\"" };
	for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
		char rec[256];
		snprintf(rec, sizeof(rec), "{\"seq\":1,\"ts\":%s,\"device\":\"d\",\"point\":\"p\","
			 "\"value\":1,\"q\":\"ok\"}", bad_ts[i]);
		assert_int_equal(one_record(rec, &r), 0);
	}
	/* texts: present, bounded, no NUL (\u0000 would cut them) */
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"point\":\"p\",\"q\":\"io\"}", &r), 0);
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"device\":\"\",\"point\":\"p\",\"q\":\"io\"}", &r), 0);
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"device\":\"d\\u0000x\",\"point\":\"p\",\"q\":\"io\"}", &r), -1); /* the whole message */
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"device\":\"d\",\"point\":"
				    "\"01234567890123456789012345678901234567890123456789012345678901234\","
				    "\"q\":\"io\"}", &r), 0);
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"device\":\"d\",\"point\":\"p\",\"q\":\"io\","
				    "\"unit\":\"012345678901234567890123456789012\"}", &r), 0);
	assert_int_equal(one_record("{\"seq\":1,\"ts\":1,\"device\":\"d\",\"point\":\"caf\\u00e9\","
				    "\"q\":\"io\"}", &r), 1);
}

static int message(const char *json)
{
	char reason[256];
	struct proto_tel t;
	int r = proto_parse_telemetry("SN1", json, strlen(json), &t, NULL, reason, sizeof(reason));
	if (r == 0)
		proto_tel_clear(&t);
	return r;
}

static void test_telemetry_messages(void **state)
{
	(void)state;
	assert_int_equal(message("{\"v\":1,\"records\":[" REC("\"q\":\"io\"") "]}"), 0);
	assert_int_equal(message("{\"v\":1,\"serial\":\"SN1\",\"records\":[" REC("\"q\":\"io\"") "]}"), 0);
	/* issue 10: "v":99 was accepted; a payload naming another serial was stored */
	assert_int_equal(message("{\"v\":99,\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"v\":1,\"serial\":\"SN2\",\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"v\":1,\"serial\":7,\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"v\":1,\"epoch\":1.5,\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"v\":1,\"records\":[]}"), -1);
	assert_int_equal(message("{\"v\":1,\"records\":{}}"), -1);
	assert_int_equal(message("[1]"), -1);
	/* issue 2: invalid UTF-8 anywhere refuses the message before any SQL sees it */
	assert_int_equal(message("{\"v\":1,\"records\":[{\"seq\":1,\"ts\":1,\"device\":\"d\","
				 "\"point\":\"\xff\xfe\",\"q\":\"io\"}]}"), -1);
	assert_int_equal(message("{\"v\":1,\"x\":\"\xc0\xaf\",\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	assert_int_equal(message("{\"v\":1,\"x\":\"\xed\xa0\x80\",\"records\":[" REC("\"q\":\"io\"") "]}"), -1);
	char nul[] = "{\"v\":1,\"records\":[" REC("\"q\":\"io\"") "]}";
	nul[3] = '\0';
	char reason[256];
	struct proto_tel t;
	assert_int_equal(proto_parse_telemetry("SN1", nul, sizeof(nul) - 1, &t, NULL, reason,
					       sizeof(reason)), -1);
	/* 501 records: refused whole; a bad record among good ones is refused alone */
	size_t cap = 600 * 120, len = 0;
	char *big = malloc(cap);
	len += (size_t)snprintf(big + len, cap - len, "{\"v\":1,\"records\":[");
	for (int i = 1; i <= 501; i++)
		len += (size_t)snprintf(big + len, cap - len, "%s{\"seq\":%d,\"ts\":1,\"device\":\"d\","
					"\"point\":\"p\",\"q\":\"io\"}", i > 1 ? "," : "", i);
	snprintf(big + len, cap - len, "]}");
	assert_int_equal(message(big), -1);
	free(big);
	size_t n = 0;
	const char *mixed = "{\"v\":1,\"records\":[" REC("\"q\":\"io\"") ",{\"seq\":1.5},"
			    REC("\"value\":2,\"q\":\"ok\"") "]}";
	assert_int_equal(proto_parse_telemetry("SN1", mixed, strlen(mixed), &t, &n, reason,
					       sizeof(reason)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(t.n, 2);
	assert_int_equal(t.nbad, 1);
	assert_non_null(strstr(t.bad_reason, "seq 1.5"));
	proto_tel_clear(&t);
}

static void test_status_reported(void **state)
{
	char reason[256], *json = NULL;
	struct proto_status st;
	const char *ok = "{\"v\":1,\"online\":true,\"cred_version\":3,\"spool_depth\":1e309}";
	(void)state;
	assert_int_equal(proto_parse_status("SN1", ok, strlen(ok), &json, &st, reason, sizeof(reason)), 0);
	assert_int_equal(st.online, 1);
	assert_int_equal(st.cred_version, 3);
	assert_null(strstr(json, "inf"));
	free(json);
	const char *bad[] = { "{\"v\":2,\"online\":true}", "{\"v\":1,\"serial\":\"SN2\"}",
			      "{\"v\":1,\"x\":\"\xff\"}", "nope", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(proto_parse_status("SN1", bad[i], strlen(bad[i]), &json, &st, reason,
						    sizeof(reason)), -1);
		assert_int_equal(proto_parse_reported("SN1", bad[i], strlen(bad[i]), &json, reason,
						      sizeof(reason)), -1);
	}
	const char *cv = "{\"v\":1,\"cred_version\":2.5}";
	assert_int_equal(proto_parse_status("SN1", cv, strlen(cv), &json, &st, reason, sizeof(reason)), 0);
	assert_int_equal(st.cred_version, 0);
	assert_int_equal(st.online, -1);
	free(json);
}

static void test_text(void **state)
{
	(void)state;
	assert_true(text_utf8_ok("caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
	assert_false(text_utf8_ok("\xff\xfe", 2));
	assert_false(text_utf8_ok("\xc0\xaf", 2));          /* overlong '/' */
	assert_false(text_utf8_ok("\xed\xa0\x80", 3));      /* surrogate */
	assert_false(text_utf8_ok("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
	assert_false(text_utf8_ok("a\0b", 3));
	assert_false(text_utf8_ok("\xe2\x82", 2));          /* cut short */
	/* issue 11: escape sequences and CR/LF from point names reached the terminal raw */
	assert_string_equal(text_tty("t\x1b[2J\r\n\xff\\x\xc2\x9b\x7f\xc3\xa9"),
			    "t\\x1b[2J\\x0d\\x0a\\xff\\\\x\\xc2\\x9b\\x7f\xc3\xa9");
	assert_string_equal(text_tty(NULL), "-");
	char *u = text_escape("a\xff\xc3\xa9", TEXT_UTF8);
	assert_string_equal(u, "a\xef\xbf\xbd\xc3\xa9");
	free(u);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "point", "p\xff\xfe\x1b\xc2\x9b");
	cJSON_AddStringToObject(o, "k\xff", "v");
	char *t = text_json_print(o);
	cJSON_Delete(o);
	assert_true(text_utf8_ok(t, strlen(t)));
	assert_null(strchr(t, 0x1b));
	assert_null(strstr(t, "\xc2\x9b"));
	assert_non_null(strstr(t, "\\u009b"));
	o = cJSON_Parse(t);
	assert_non_null(o);
	cJSON_Delete(o);
	free(t);
}

static void test_limits(void **state)
{
	(void)state;
	/* 100 records/s, burst 500: a full burst, then refusal until the bucket refills */
	struct lim_table *t = lim_new(64, 100, 500);
	assert_true(lim_take(t, "A", 500, 1000));
	assert_false(lim_take(t, "A", 1, 1000));
	assert_true(lim_take(t, "B", 500, 1000)); /* another device is not affected */
	assert_false(lim_take(t, "A", 100, 1500)); /* 50 tokens back after 0.5 s */
	assert_true(lim_take(t, "A", 100, 2000));  /* a refusal took nothing: 100 after 1 s */
	assert_true(lim_take(t, "A", 500, 100000)); /* refills up to the burst, no further */
	assert_false(lim_take(t, "A", 1, 100000));
	lim_free(t);
	/* the table never grows: 10000 serials into 64 slots */
	t = lim_new(64, 100, 500);
	for (int i = 0; i < 10000; i++) {
		char s[16];
		snprintf(s, sizeof(s), "SN%d", i);
		assert_true(lim_take(t, s, 1, i));
		assert_true(lim_count(t) <= 64);
	}
	assert_int_equal(lim_count(t), 64);
	lim_free(t);
	/* rate 0: no limit */
	t = lim_new(8, 0, 500);
	assert_true(lim_take(t, "A", 1e9, 0));
	lim_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topics),
		cmocka_unit_test(test_register_ok),
		cmocka_unit_test(test_register_bad),
		cmocka_unit_test(test_password_and_credentials),
		cmocka_unit_test(test_password_alphabet),
		cmocka_unit_test(test_acks),
		cmocka_unit_test(test_epoch),
		cmocka_unit_test(test_telemetry_records),
		cmocka_unit_test(test_telemetry_messages),
		cmocka_unit_test(test_status_reported),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
