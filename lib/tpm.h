/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private TPM plumbing shared by the library's TPM files (ctx.c, nvserial.c, keys.c, raw.c,
 * envelope.c, status.c): the et_ctx layout, the one place that turns a TSS2_RC into our error
 * and a message with cause and remedy, and flush helpers so that no session or transient object
 * outlives a call (a raw TPM has only 3 transient slots).
 */
#ifndef EDGETRUST_TPM_H
#define EDGETRUST_TPM_H

#include <tss2/tss2_esys.h>

#include "internal.h"

struct et_ctx {
	ESYS_CONTEXT *esys;
	TSS2_TCTI_CONTEXT *tcti;
	char *tcti_conf; /* "name:conf" actually used, for messages */
};

/* The ESAPI context of an open et_ctx. */
ET_HIDDEN ESYS_CONTEXT *et_ctx_esys(et_ctx *ctx);

/*
 * Converts a failed tpm2-tss call into our error code, records the message for et_errmsg()
 * and returns the code. what_failed names the operation ("reading NV index 0x01000000").
 * The message keeps Tss2_RC_Decode's text and the hex code and adds cause and remedy.
 * TPM_RC_HANDLE becomes ET_E_TPM here; use et_tpm_fail_handle() when the handle the command
 * referred to is known, so that a missing NV index or persistent key gets its own code.
 */
ET_HIDDEN int et_tpm_fail(TSS2_RC rc, const char *what_failed);
/*
 * Same, knowing the TPM handle involved: TPM_RC_HANDLE on an NV index (0x01xxxxxx) becomes
 * ET_E_NV_UNDEFINED, on a persistent handle (0x81xxxxxx) ET_E_KEY_ABSENT.
 */
ET_HIDDEN int et_tpm_fail_handle(TSS2_RC rc, TPM2_HANDLE handle, const char *what_failed);

/*
 * et_tpm_fail_handle, plus what only the TPM can tell: for a lockout (0x921) it reads the
 * dictionary-attack counter, limit and interval (one GetCapability) and says how long until
 * authorisations work again. Use it where a DA-protected authorisation was attempted.
 */
ET_HIDDEN int et_tpm_fail_ctx(et_ctx *ctx, TSS2_RC rc, TPM2_HANDLE handle, const char *what_failed);

/* The TPM-level response code inside rc (format-1 parameter/handle/session number removed),
 * or 0 when rc did not come from the TPM. E.g. 0x98E -> TPM2_RC_AUTH_FAIL (0x08E). */
ET_HIDDEN TPM2_RC et_tpm_rc_base(TSS2_RC rc);

/*
 * Flushes a session or transient object from the TPM and sets *handle to ESYS_TR_NONE.
 * Accepts ESYS_TR_NONE. Errors are only logged: it runs on cleanup paths.
 */
ET_HIDDEN void et_tpm_flush(et_ctx *ctx, ESYS_TR *handle);
/*
 * Forgets an ESYS_TR for a persistent object or NV index (no TPM command) and sets *handle to
 * ESYS_TR_NONE. Accepts ESYS_TR_NONE.
 */
ET_HIDDEN void et_tpm_close(et_ctx *ctx, ESYS_TR *handle);

/*
 * Makes an ESYS_TR for a persistent handle or NV index (one ReadPublic / NV_ReadPublic).
 * A missing handle gives ET_E_NV_UNDEFINED / ET_E_KEY_ABSENT with a message naming it.
 */
ET_HIDDEN int et_tpm_tr_from_handle(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret);

#endif
