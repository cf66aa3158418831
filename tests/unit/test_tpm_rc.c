/* SPDX-License-Identifier: Apache-2.0 */
/*
 * et_tpm_fail: every TSS2_RC class gets the right error code and a message with tpm2-tss'
 * decoded text, the hex code, and the remedy. Built from lib/tpm_rc.c, error.c and log.c
 * directly, because et_tpm_fail is not exported.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tpm.h"

static void expect(TSS2_RC rc, TPM2_HANDLE h, int err, const char *needle)
{
	int r = et_tpm_fail_handle(rc, h, "testing");

	if (r != err || !strstr(et_errmsg(), needle) || !strstr(et_errmsg(), "testing failed"))
		fail_msg("rc 0x%x: got %d (%s), want %d with '%s'", rc, r, et_errmsg(), err, needle);
}

static void test_classes(void **state)
{
	(void)state;
	expect(0x902, 0, ET_E_TPM_OBJECT_MEMORY, "tpm2_flushcontext -t");
	expect(0x902, 0, ET_E_TPM_OBJECT_MEMORY, "/dev/tpmrm0");
	expect(0x902, 0, ET_E_TPM_OBJECT_MEMORY, "0x902");
	expect(0x903, 0, ET_E_TPM_OBJECT_MEMORY, "tpm2_flushcontext -l");
	expect(0x921, 0, ET_E_TPM_LOCKOUT, "tpm2_dictionarylockout");
	expect(0x921, 0, ET_E_TPM_LOCKOUT, "lockout interval");
	expect(0x14A, TPM2_NV_INDEX_FIRST, ET_E_NV_UNWRITTEN, "edgetrust serial provision");
	expect(0x14A, 0, ET_E_NV_UNWRITTEN, "0x14A");
	expect(0x98E, 0, ET_E_AUTH, "dictionary-attack");
	expect(0x9A2, 0, ET_E_AUTH, "--owner-auth-file");
	expect(0x99D, 0, ET_E_AUTH, "write-once");
	expect(0x922, 0, ET_E_TPM_RETRY, "run the command again");
	expect(0x90A, 0, ET_E_TPM_RETRY, "busy");
	expect(0x908, 0, ET_E_TPM_RETRY, "busy");
	expect(0x920, 0, ET_E_TPM_RETRY, "busy");
	expect(0x18B, 0x01000000, ET_E_NV_UNDEFINED, "serial provision");
	expect(0x18B, 0x81000002, ET_E_KEY_ABSENT, "key create");
	expect(0x18B, 0, ET_E_TPM, "handle");
	expect(0x28B, 0x01000000, ET_E_NV_UNDEFINED, "not defined");
	expect(TSS2_TCTI_RC_IO_ERROR, 0, ET_E_TPM_UNREACHABLE, "--tcti");
	expect(TSS2_TCTI_RC_NO_CONNECTION, 0, ET_E_TPM_UNREACHABLE, "TPM");
	expect(TSS2_TCTI_RC_TRY_AGAIN, 0, ET_E_TIMEOUT, "in time");
	expect(TSS2_RESMGR_TPM_RC_LAYER | 0x902, 0, ET_E_TPM_OBJECT_MEMORY, "flushcontext");
	expect(TSS2_ESYS_RC_MEMORY, 0, ET_E_NOMEM, "memory");
	expect(TSS2_ESYS_RC_BAD_REFERENCE, 0, ET_E_INTERNAL, "report");
	expect(0x101, 0, ET_E_TPM, "failure mode");
	expect(0x100, 0, ET_E_TPM_UNREACHABLE, "startup");
	expect(0x14C, 0x81000001, ET_E_KEY_TYPE, "already persisted");
	expect(0x084, 0, ET_E_TPM, "0x84");
}

/* The deadline layer's codes (lib/tpm_cmd.c) report its recorded detail and class. */
static void test_deadline(void **state)
{
	(void)state;
	et_tpm_note_deadline(ET_E_TIMEOUT, "the TPM did not answer NV_Read within %u ms", 700u);
	expect(ET_TSS2_RC_DEADLINE, 0x01000000, ET_E_TIMEOUT, "NV_Read within 700 ms");
	et_tpm_note_deadline(ET_E_TPM_UNREACHABLE, "this TPM connection is no longer used");
	expect(ET_TSS2_RC_UNUSABLE, 0, ET_E_TPM_UNREACHABLE, "no longer used");
}

static void test_rc_base(void **state)
{
	(void)state;
	assert_int_equal(et_tpm_rc_base(0x98E), TPM2_RC_AUTH_FAIL);
	assert_int_equal(et_tpm_rc_base(0x9A2), TPM2_RC_BAD_AUTH);
	assert_int_equal(et_tpm_rc_base(0x18B), TPM2_RC_HANDLE);
	assert_int_equal(et_tpm_rc_base(0x2CB), TPM2_RC_HANDLE);
	assert_int_equal(et_tpm_rc_base(0x902), TPM2_RC_OBJECT_MEMORY);
	assert_int_equal(et_tpm_rc_base(0x14A), TPM2_RC_NV_UNINITIALIZED);
	assert_int_equal(et_tpm_rc_base(TSS2_RESMGR_TPM_RC_LAYER | 0x921), TPM2_RC_LOCKOUT);
	assert_int_equal(et_tpm_rc_base(TSS2_TCTI_RC_IO_ERROR), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_rc_base),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
