/* SPDX-License-Identifier: Apache-2.0 */
/* Error classes and the per-thread detailed message behind et_errmsg(). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];

static const char *const names[] = {
	[0] = "success",
	[-ET_E_INVALID] = "invalid argument or input",
	[-ET_E_NOMEM] = "out of memory",
	[-ET_E_IO] = "input/output error",
	[-ET_E_TPM_UNREACHABLE] = "TPM unreachable",
	[-ET_E_TPM] = "TPM error",
	[-ET_E_TPM_LOCKOUT] = "TPM in dictionary-attack lockout",
	[-ET_E_TPM_OBJECT_MEMORY] = "TPM out of object memory",
	[-ET_E_TPM_RETRY] = "TPM busy",
	[-ET_E_AUTH] = "authorisation failed",
	[-ET_E_NV_UNDEFINED] = "NV index not defined",
	[-ET_E_NV_UNWRITTEN] = "NV index never written",
	[-ET_E_NV_MISMATCH] = "NV index holds a different serial",
	[-ET_E_NV_ATTRIBUTES] = "NV index has unexpected attributes",
	[-ET_E_TOO_LARGE] = "value too large",
	[-ET_E_KEY_ABSENT] = "no key at handle",
	[-ET_E_KEY_TYPE] = "wrong key type at handle",
	[-ET_E_ENVELOPE_FORMAT] = "malformed envelope",
	[-ET_E_ENVELOPE_FOREIGN] = "envelope for another device",
	[-ET_E_ENVELOPE_AUTH] = "envelope altered",
	[-ET_E_CRYPTO] = "cryptographic failure",
	[-ET_E_PERMISSION] = "permission denied",
	[-ET_E_PEM] = "invalid public key",
	[-ET_E_TIMEOUT] = "TPM timeout",
	[-ET_E_INTERNAL] = "internal error",
};

const char *et_strerror(int err)
{
	if (err > 0 || (size_t)-err >= sizeof(names) / sizeof(names[0]) || !names[-err])
		return "unknown error";
	return names[-err];
}

const char *et_errmsg(void)
{
	return last_error[0] ? last_error : "no error recorded";
}

void et_clear_error(void)
{
	last_error[0] = '\0';
}

int et_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	et_log(ET_LOG_ERR, "%s", last_error);
	return err;
}

int et_fail_quiet(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *et_version(void)
{
	return "0.1.0";
}
