/* SPDX-License-Identifier: Apache-2.0 */
/* Secret buffers and error reporting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "edgetrust/edgetrust.h"

static void test_secret_roundtrip(void **state)
{
	et_secret *s = NULL;

	(void)state;
	assert_int_equal(et_secret_new(40, &s), 0);
	assert_int_equal(et_secret_len(s), 40);
	memset(et_secret_data(s), 'x', 40);
	et_secret_truncate(s, 10);
	assert_int_equal(et_secret_len(s), 10);
	et_secret_truncate(s, 20); /* never grows */
	assert_int_equal(et_secret_len(s), 10);
	et_secret_free(s);
	et_secret_free(NULL);
}

static void test_secret_read_file_limit(void **state)
{
	char path[] = "/tmp/et-unit-XXXXXX";
	int fd = mkstemp(path);
	et_secret *s = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_int_equal(et_secret_read_file(path, 9, &s), ET_E_TOO_LARGE);
	assert_null(s);
	assert_int_equal(et_secret_read_file(path, 10, &s), 0);
	assert_int_equal(et_secret_len(s), 10);
	assert_memory_equal(et_secret_data(s), "0123456789", 10);
	et_secret_free(s);
	unlink(path);
	assert_int_equal(et_secret_read_file(path, 10, &s), ET_E_IO);
	assert_non_null(strstr(et_errmsg(), path));
}

static void test_strerror_total(void **state)
{
	(void)state;
	for (int e = 0; e >= ET_E_INTERNAL; e--)
		assert_string_not_equal(et_strerror(e), "unknown error");
	assert_string_equal(et_strerror(-1000), "unknown error");
	assert_string_equal(et_strerror(5), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_roundtrip),
		cmocka_unit_test(test_secret_read_file_limit),
		cmocka_unit_test(test_strerror_total),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
