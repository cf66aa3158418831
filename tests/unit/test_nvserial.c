/* SPDX-License-Identifier: Apache-2.0 */
/* The serial's write-once policy digest and the serial syntax, without a TPM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "edgetrust/edgetrust.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	assert_int_equal(EVP_Digest(in, len, out, &n, EVP_sha256(), NULL), 1);
}

/* TPM 2.0 Part 3: PolicyCommandCode extends with TPM_CC_PolicyCommandCode || code;
 * PolicyNvWritten with TPM_CC_PolicyNvWritten || writtenSet (one byte). */
static void test_policy_digest(void **state)
{
	uint8_t buf[32 + 4 + 4], digest[32] = {0};
	char hex[65];

	(void)state;
	memcpy(buf, digest, 32);
	put_be32(buf + 32, 0x0000016C); /* TPM_CC_PolicyCommandCode */
	put_be32(buf + 36, 0x00000137); /* TPM_CC_NV_Write */
	sha256(buf, 40, digest);
	memcpy(buf, digest, 32);
	put_be32(buf + 32, 0x0000018F); /* TPM_CC_PolicyNvWritten */
	buf[36] = 0;                    /* NO: the index must not have been written */
	sha256(buf, 37, digest);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02X", digest[i]);
	assert_string_equal(hex, ET_NV_WRITE_ONCE_POLICY_HEX);
}

static void test_serial_validate(void **state)
{
	char longest[ET_SERIAL_MAX + 2];

	(void)state;
	assert_int_equal(et_serial_validate("DEV-0001"), 0);
	assert_int_equal(et_serial_validate("a.b_c-9"), 0);
	assert_int_equal(et_serial_validate(""), ET_E_INVALID);
	assert_int_equal(et_serial_validate(NULL), ET_E_INVALID);
	assert_int_equal(et_serial_validate("a b"), ET_E_INVALID);
	assert_non_null(strstr(et_errmsg(), "byte 2 (0x20)"));
	assert_int_equal(et_serial_validate("a/b"), ET_E_INVALID);
	assert_int_equal(et_serial_validate("a+b"), ET_E_INVALID); /* MQTT wildcard */
	assert_int_equal(et_serial_validate("a#"), ET_E_INVALID);
	assert_int_equal(et_serial_validate("caf\xc3\xa9"), ET_E_INVALID);
	assert_int_equal(et_serial_validate("x\n"), ET_E_INVALID);
	/* Finding 12 of issue 10: what the cloud refuses, the device side refuses too. */
	assert_int_equal(et_serial_validate("-x"), ET_E_INVALID);
	assert_non_null(strstr(et_errmsg(), "letter or digit"));
	assert_int_equal(et_serial_validate("."), ET_E_INVALID);
	assert_int_equal(et_serial_validate("_a"), ET_E_INVALID);
	assert_int_equal(et_serial_validate(ET_LOGIN_BOOTSTRAP), ET_E_INVALID);
	assert_non_null(strstr(et_errmsg(), "broker logins"));
	assert_int_equal(et_serial_validate(ET_LOGIN_CLOUD), ET_E_INVALID);
	assert_int_equal(et_serial_validate("bootstrap2"), 0);
	assert_int_equal(et_serial_validate("9-a"), 0);
	memset(longest, 'S', sizeof(longest));
	longest[ET_SERIAL_MAX] = '\0';
	assert_int_equal(et_serial_validate(longest), 0);
	longest[ET_SERIAL_MAX] = 'S';
	longest[ET_SERIAL_MAX + 1] = '\0';
	assert_int_equal(et_serial_validate(longest), ET_E_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_digest),
		cmocka_unit_test(test_serial_validate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
