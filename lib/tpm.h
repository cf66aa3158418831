/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private TPM plumbing shared by the library's TPM files (ctx.c, nvserial.c, keys.c, raw.c,
 * envelope.c, status.c): the et_ctx layout, the one place that turns a TSS2_RC into our error
 * and a message with cause and remedy, and flush helpers so that no session or transient object
 * outlives a call (a raw TPM has only 3 transient slots).
 */
#ifndef EDGETRUST_TPM_H
#define EDGETRUST_TPM_H

#include <stdbool.h>

#include <tss2/tss2_esys.h>

#include "internal.h"

struct et_ctx {
	ESYS_CONTEXT *esys;
	TSS2_TCTI_CONTEXT *tcti;
	char *tcti_conf; /* "name:conf" actually used, for messages */
	char *tcti_name; /* the TCTI's name and configuration apart, to open a second link */
	char *tcti_arg;  /* (NULL: no configuration) */
	char *tcti_path; /* the module's absolute path, as loaded (lib/tcti.c) */
	void *tcti_dl;   /* our dlopen() of it, held while the context lives */
	uint32_t cmd_ms;    /* deadline of one TPM command (ET_TPM_TIMEOUT_DEFAULT_MS) */
	uint32_t keygen_ms; /* deadline of CreatePrimary/Create (ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS) */
	/*
	 * Set when an exchange with the TPM did not complete (deadline passed, link broke): ESAPI
	 * is then mid-command (tpm2-tss 3.2.1 leaves the context in SENT or INTERNALERROR state),
	 * so no further command goes over this link. broken_err is the ET_E_* every later call
	 * returns, broken_why what happened.
	 */
	int broken_err;
	char broken_why[256];
	/*
	 * A second link opened only to flush what the failed call had loaded (a TPM without
	 * resource manager keeps sessions and transient objects when a connection closes).
	 * rescue_failed: it could not be opened or did not answer either; never tried again.
	 */
	ESYS_CONTEXT *rescue_esys;
	TSS2_TCTI_CONTEXT *rescue_tcti;
	bool rescue_failed;
	bool rescuing; /* et_esys_* run on the rescue link (only inside et_tpm_flush) */
};

/* The ESAPI context of an open et_ctx (metadata only: TPM commands go through et_esys_*). */
ET_HIDDEN ESYS_CONTEXT *et_ctx_esys(et_ctx *ctx);

/*
 * Private response codes of the deadline layer (lib/tpm_cmd.c), in a TSS2_RC layer tpm2-tss
 * does not use, so that they pass through the call sites like any TSS2_RC and et_tpm_fail*
 * turn them into ET_E_TIMEOUT (or the error that broke the link) with a full message.
 */
#define ET_TSS2_RC_LAYER (0xe0u << TSS2_RC_LAYER_SHIFT)
#define ET_TSS2_RC_DEADLINE (ET_TSS2_RC_LAYER | 1u) /* the TPM did not answer in time */
#define ET_TSS2_RC_UNUSABLE (ET_TSS2_RC_LAYER | 2u) /* an earlier exchange broke this link */

/*
 * TPM commands with a deadline. Each runs the ESAPI _Async/_Finish pair of the command of the
 * same name on ctx's link: ESAPI's own resends on RETRY/TESTING/YIELDED (5 submissions) stay,
 * and the whole command, resends included, must finish within ctx->cmd_ms (keygen_ms for
 * CreatePrimary and Create). Past the deadline they return ET_TSS2_RC_DEADLINE and mark ctx
 * broken; on a broken ctx they send nothing and return ET_TSS2_RC_UNUSABLE. Arguments and
 * outputs are those of the Esys_* function (the session handles the library never uses are
 * left out).
 */
ET_HIDDEN TSS2_RC et_esys_tr_from_tpm_public(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret);
ET_HIDDEN TSS2_RC et_esys_flush_context(et_ctx *ctx, ESYS_TR handle);
ET_HIDDEN TSS2_RC et_esys_get_capability(et_ctx *ctx, TPM2_CAP cap, UINT32 prop, UINT32 count,
					 TPMI_YES_NO *more, TPMS_CAPABILITY_DATA **data);
ET_HIDDEN TSS2_RC et_esys_read_public(et_ctx *ctx, ESYS_TR object, TPM2B_PUBLIC **out_public);
ET_HIDDEN TSS2_RC et_esys_nv_read(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv, ESYS_TR session,
				  UINT16 size, UINT16 offset, TPM2B_MAX_NV_BUFFER **data);
ET_HIDDEN TSS2_RC et_esys_nv_write(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv, ESYS_TR session,
				   const TPM2B_MAX_NV_BUFFER *data, UINT16 offset);
ET_HIDDEN TSS2_RC et_esys_nv_define_space(et_ctx *ctx, ESYS_TR auth, const TPM2B_AUTH *nv_auth,
					  const TPM2B_NV_PUBLIC *pub, ESYS_TR *ret_nv);
ET_HIDDEN TSS2_RC et_esys_nv_undefine_space(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv);
ET_HIDDEN TSS2_RC et_esys_start_auth_session(et_ctx *ctx, ESYS_TR tpm_key, TPM2_SE type,
					     const TPMT_SYM_DEF *sym, TPMI_ALG_HASH hash,
					     ESYS_TR *ret_session);
ET_HIDDEN TSS2_RC et_esys_policy_command_code(et_ctx *ctx, ESYS_TR session, TPM2_CC code);
ET_HIDDEN TSS2_RC et_esys_policy_nv_written(et_ctx *ctx, ESYS_TR session, TPMI_YES_NO written);
ET_HIDDEN TSS2_RC et_esys_create_primary(et_ctx *ctx, ESYS_TR hierarchy,
					 const TPM2B_SENSITIVE_CREATE *sensitive,
					 const TPM2B_PUBLIC *tmpl, const TPM2B_DATA *outside,
					 const TPML_PCR_SELECTION *pcr, ESYS_TR *ret_object);
ET_HIDDEN TSS2_RC et_esys_create(et_ctx *ctx, ESYS_TR parent,
				 const TPM2B_SENSITIVE_CREATE *sensitive, const TPM2B_PUBLIC *tmpl,
				 const TPM2B_DATA *outside, const TPML_PCR_SELECTION *pcr,
				 TPM2B_PRIVATE **ret_private, TPM2B_PUBLIC **ret_public);
ET_HIDDEN TSS2_RC et_esys_load(et_ctx *ctx, ESYS_TR parent, const TPM2B_PRIVATE *priv,
			       const TPM2B_PUBLIC *pub, ESYS_TR *ret_object);
ET_HIDDEN TSS2_RC et_esys_evict_control(et_ctx *ctx, ESYS_TR auth, ESYS_TR object,
					TPMI_DH_PERSISTENT persistent, ESYS_TR *ret_object);
ET_HIDDEN TSS2_RC et_esys_rsa_decrypt(et_ctx *ctx, ESYS_TR key, ESYS_TR session,
				      const TPM2B_PUBLIC_KEY_RSA *cipher,
				      const TPMT_RSA_DECRYPT *scheme, const TPM2B_DATA *label,
				      TPM2B_PUBLIC_KEY_RSA **ret_message);

/*
 * Records, for this thread, what a deadline or a refusal of the deadline layer means (which
 * command, which TCTI, how long, what to do) and its ET_E_* class; the next et_tpm_fail* of
 * an ET_TSS2_RC_* code reports it.
 */
ET_HIDDEN void et_tpm_note_deadline(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Releases the second link (ctx.c's et_ctx_free). */
ET_HIDDEN void et_tpm_rescue_close(et_ctx *ctx);

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

/*
 * et_serial_read that also gives the index's TPMA_NV attributes (for et_status_get), set
 * whenever the index exists, even if what it holds is not a serial.
 */
ET_HIDDEN int et_serial_read_attrs(et_ctx *ctx, uint32_t nv_index, char **ret,
				   uint32_t *ret_attrs);

/*
 * The TCTI module to load for TCTI name (from the string tcti, chosen by source) or, when
 * module is not NULL, that explicit path: the rules are in lib/tcti.c. *ret_path (malloc'd)
 * is the absolute path to give tctildr, *ret_dl our dlopen() handle of it. 0 or ET_E_*.
 */
ET_HIDDEN int et_tcti_resolve(const char *name, const char *module, const char *tcti,
			      const char *source, char **ret_path, void **ret_dl);

#endif
