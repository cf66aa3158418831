/* SPDX-License-Identifier: Apache-2.0 */
/* Broker-account rules (src/cloud/acct.c), shared by edgetrust-cloud serve and the edgetrust
 * mosquitto plugin: salted password hashes and the device ACL of docs/protocol.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "acct.h"

static void test_hash_roundtrip(void **state)
{
	char h1[ACCT_HASH_LEN], h2[ACCT_HASH_LEN];
	(void)state;

	assert_int_equal(acct_hash("correct-horse-0123456789abcdefgh", h1), 0);
	assert_int_equal(acct_hash("correct-horse-0123456789abcdefgh", h2), 0);
	assert_int_equal(strlen(h1), ACCT_HASH_LEN - 1);
	assert_memory_equal(h1, "s256$", 5);
	assert_string_not_equal(h1, h2); /* fresh salt each time */
	assert_true(acct_verify(h1, "correct-horse-0123456789abcdefgh"));
	assert_true(acct_verify(h2, "correct-horse-0123456789abcdefgh"));
	assert_false(acct_verify(h1, "correct-horse-0123456789abcdefgX"));
	assert_false(acct_verify(h1, ""));
	assert_null(strstr(h1, "correct-horse"));
}

static void test_verify_malformed(void **state)
{
	char h[ACCT_HASH_LEN], bad[ACCT_HASH_LEN];
	(void)state;

	assert_int_equal(acct_hash("pw", h), 0);
	assert_false(acct_verify(NULL, "pw"));
	assert_false(acct_verify(h, NULL));
	assert_false(acct_verify("", "pw"));
	assert_false(acct_verify("s256$", "pw"));
	memcpy(bad, h, sizeof(bad));
	bad[0] = 'x'; /* unknown scheme */
	assert_false(acct_verify(bad, "pw"));
	memcpy(bad, h, sizeof(bad));
	bad[10] = 'G'; /* not hex */
	assert_false(acct_verify(bad, "pw"));
	memcpy(bad, h, sizeof(bad));
	bad[37] = '.'; /* separator */
	assert_false(acct_verify(bad, "pw"));
	memcpy(bad, h, sizeof(bad));
	bad[ACCT_HASH_LEN - 2] = bad[ACCT_HASH_LEN - 2] == '0' ? '1' : '0'; /* other digest */
	assert_false(acct_verify(bad, "pw"));
	assert_false(acct_verify("s256$00$00", "pw"));
}

static void test_device_acl(void **state)
{
	(void)state;
	/* publish: exactly its three data topics */
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/telemetry", ACCT_PUBLISH));
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/status", ACCT_PUBLISH));
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/settings/reported", ACCT_PUBLISH));
	static const char *const denied_pub[] = {
		"et/v1/SN1/settings/desired", "et/v1/SN1/creds", "et/v1/SN1/register/reply",
		"et/v1/SN1/telemetry/ack", "et/v1/SN1/register", "et/v1/SN1", "et/v1/SN1/",
		"et/v1/SN2/telemetry", "et/v1/SN10/telemetry", "et/v1/SN/telemetry",
		"$CONTROL/edgetrust/v1", "et/v1/SN1/telemetry/", "xet/v1/SN1/telemetry",
	};
	for (size_t i = 0; i < sizeof(denied_pub) / sizeof(denied_pub[0]); i++)
		assert_false(acct_device_allowed("SN1", denied_pub[i], ACCT_PUBLISH));
	/* subscribe / receive: anything under its own prefix, nothing else */
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/#", ACCT_SUBSCRIBE));
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/+/desired", ACCT_SUBSCRIBE));
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/telemetry/ack", ACCT_RECEIVE));
	assert_true(acct_device_allowed("SN1", "et/v1/SN1/creds", ACCT_RECEIVE));
	static const char *const denied_sub[] = {
		"#", "et/v1/#", "et/v1/+/creds", "et/v1/SN1", "et/v1/SN1+/#", "et/v1/SN2/#",
		"et/v1/SN1x/#", "$share/g/et/v1/SN1/#", "et/v1/SN1/", "+/v1/SN1/#",
	};
	for (size_t i = 0; i < sizeof(denied_sub) / sizeof(denied_sub[0]); i++) {
		assert_false(acct_device_allowed("SN1", denied_sub[i], ACCT_SUBSCRIBE));
		assert_false(acct_device_allowed("SN1", denied_sub[i], ACCT_RECEIVE));
	}
	assert_true(acct_device_allowed("SN1", "anything/at/all", ACCT_UNSUBSCRIBE));
}

/* Findings 3 and 4: client-id namespaces, retained and size rules (docs/protocol.md). */
static void test_client_ids(void **state)
{
	const char *cu = "edgetrust-cloud", *bu = "bootstrap";
	(void)state;
	assert_true(acct_client_id_ok(cu, "etcloud-i0", cu, bu));
	assert_false(acct_client_id_ok(cu, "etcloud-", cu, bu));
	assert_false(acct_client_id_ok(cu, "SN1", cu, bu));
	assert_false(acct_client_id_ok(cu, "etboot-1", cu, bu));
	assert_true(acct_client_id_ok(bu, "etboot-0123abcd", cu, bu));
	assert_false(acct_client_id_ok(bu, "etboot-", cu, bu));
	assert_false(acct_client_id_ok(bu, "etcloud-i0", cu, bu));
	assert_false(acct_client_id_ok(bu, "SN1", cu, bu));
	assert_false(acct_client_id_ok(bu, "", cu, bu));
	assert_true(acct_client_id_ok("SN1", "SN1", cu, bu));
	assert_false(acct_client_id_ok("SN1", "SN2", cu, bu));
	assert_false(acct_client_id_ok("SN1", "sn1", cu, bu));
	assert_false(acct_client_id_ok("SN1", "", cu, bu));
	assert_false(acct_client_id_ok("SN1", NULL, cu, bu));
	assert_false(acct_client_id_ok(NULL, "SN1", cu, bu));
	/* a login named like a reserved id still cannot use it */
	assert_false(acct_client_id_ok("etcloud-i0", "etcloud-i0", cu, bu));
	assert_false(acct_client_id_ok("ETBOOT-x", "ETBOOT-x", cu, bu));
	assert_true(wire_reserved_id("EtCloud-x"));
	assert_false(wire_reserved_id("etcloud"));
}

static void test_publish_limits(void **state)
{
	(void)state;
	assert_int_equal(acct_payload_limit("et/v1/SN1/register"), PROTO_MAX_REGISTER);
	assert_int_equal(acct_payload_limit("et/v1/SN1/telemetry"), PROTO_MAX_PAYLOAD);
	assert_int_equal(acct_payload_limit("et/v1/SN1/register/reply"), PROTO_MAX_PAYLOAD);
	assert_int_equal(acct_payload_limit("et/v1/a/b/register"), PROTO_MAX_PAYLOAD);
	assert_int_equal(acct_payload_limit("x"), PROTO_MAX_PAYLOAD);
	assert_int_equal(acct_payload_limit("$CONTROL/dynamic-security/v1"), 0);
	assert_true(acct_retain_allowed("SN1", "et/v1/SN1/status"));
	assert_true(acct_retain_allowed("SN1", "et/v1/SN1/settings/reported"));
	assert_false(acct_retain_allowed("SN1", "et/v1/SN1/telemetry"));
	assert_false(acct_retain_allowed("SN1", "et/v1/SN1/register"));
	assert_false(acct_retain_allowed("SN1", "et/v1/SN2/status"));
	assert_false(acct_retain_allowed("SN1", "et/v1/SN10/status"));
	assert_false(acct_retain_allowed(NULL, "et/v1/SN1/status"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_roundtrip),
		cmocka_unit_test(test_verify_malformed),
		cmocka_unit_test(test_device_acl),
		cmocka_unit_test(test_client_ids),
		cmocka_unit_test(test_publish_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
