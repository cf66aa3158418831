/* SPDX-License-Identifier: Apache-2.0 */
/* The bounds-checked reader every external format goes through (lib/reader.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "reader.h"

static void test_big_endian_fields(void **state)
{
	static const uint8_t buf[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				      0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
	et_reader r;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	(void)state;
	et_reader_init(&r, buf, sizeof(buf));
	assert_true(et_reader_u8(&r, &u8));
	assert_int_equal(u8, 0x01);
	assert_true(et_reader_u16(&r, &u16));
	assert_int_equal(u16, 0x0203);
	assert_true(et_reader_u32(&r, &u32));
	assert_int_equal(u32, 0x04050607);
	assert_true(et_reader_u64(&r, &u64));
	assert_true(u64 == 0x08090a0b0c0d0e0full);
	assert_int_equal(et_reader_left(&r), 0);
	assert_false(et_reader_u8(&r, &u8));
}

static void test_short_read_consumes_nothing(void **state)
{
	static const uint8_t buf[] = {0xaa, 0xbb, 0xcc};
	const uint8_t *p = NULL;
	et_reader r;
	uint32_t u32 = 7;
	uint64_t v = 9;

	(void)state;
	et_reader_init(&r, buf, sizeof(buf));
	assert_false(et_reader_u32(&r, &u32));
	assert_int_equal(u32, 7); /* untouched */
	assert_int_equal(et_reader_left(&r), 3);
	assert_false(et_reader_bytes(&r, 4, &p));
	assert_null(p);
	assert_false(et_reader_bytes(&r, SIZE_MAX, &p)); /* no overflow in the check */
	assert_false(et_reader_be(&r, 0, &v));
	assert_false(et_reader_be(&r, 9, &v));
	assert_true(v == 9);
	assert_true(et_reader_bytes(&r, 3, &p));
	assert_ptr_equal(p, buf);
	assert_true(et_reader_bytes(&r, 0, &p)); /* an empty field at the end is fine */
	assert_int_equal(et_reader_left(&r), 0);
}

static void test_null_buffer(void **state)
{
	et_reader r;
	uint8_t u8;

	(void)state;
	et_reader_init(&r, NULL, 100); /* a NULL buffer has no bytes, whatever the length says */
	assert_int_equal(et_reader_left(&r), 0);
	assert_false(et_reader_u8(&r, &u8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_big_endian_fields),
	    cmocka_unit_test(test_short_read_consumes_nothing),
	    cmocka_unit_test(test_null_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
