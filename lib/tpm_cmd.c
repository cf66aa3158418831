/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every TPM command the library sends, with a deadline. The synchronous Esys_* calls of
 * tpm2-tss 3.2.1 set the receive timeout to "forever" around their own loop, so a TPM that
 * never answers blocks them for good. Here each command runs as its ESAPI _Async/_Finish pair:
 * _Finish gets the time left (Esys_SetTimeout) and is called again while ESAPI answers
 * TSS2_ESYS_RC_TRY_AGAIN, which it does both when the TCTI's wait ran out and when it has just
 * resent the command after TPM_RC_RETRY/TESTING/YIELDED (ESAPI keeps its 5-submission limit;
 * the TPM sees exactly the commands the synchronous call would send). When the deadline has
 * passed, the et_ctx is marked broken: ESAPI is mid-command and the TPM may still answer, so
 * that link is never used again (lib/tpm.h).
 *
 * The wait relies on the TCTI honouring the timeout given to its receive: device (poll on the
 * TPM character device), mssim and tabrmd do; tpm2-tss 3.2.1's swtpm TCTI ignores it and has
 * no poll handle, so a simulator that stops answering still blocks a swtpm: link inside
 * tpm2-tss (docs/reliability.md).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tpm.h"

enum cmd_class {
	CMD_SHORT,  /* everything but key generation: ctx->cmd_ms */
	CMD_KEYGEN, /* CreatePrimary, Create: ctx->keygen_ms */
};

/* One command in flight. */
struct xfer {
	et_ctx *ctx;
	ESYS_CONTEXT *esys; /* the link it runs on: the main one, or the rescue link */
	const char *cmd;    /* TPM2_CC name, for messages */
	bool keygen;
	uint32_t limit_ms;
	int64_t deadline_ms; /* CLOCK_MONOTONIC */
	bool started;	     /* _Async was called */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool tpm_answered(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

	/* ESAPI's own test (iesys_tpm_error): these leave its context ready for the next command.
	 */
	return rc == TSS2_RC_SUCCESS || layer == TSS2_TPM_RC_LAYER ||
	       layer == TSS2_RESMGR_TPM_RC_LAYER;
}

/* The error every later call on a link broken by rc returns. */
static int broken_class(TSS2_RC rc)
{
	if (rc == ET_TSS2_RC_DEADLINE)
		return ET_E_TIMEOUT;
	if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER ||
	    (rc & TSS2_RC_LAYER_MASK) == TSS2_RESMGR_RC_LAYER)
		return ET_E_TPM_UNREACHABLE;
	if ((rc & 0xffff) == TSS2_BASE_RC_MEMORY)
		return ET_E_NOMEM;
	return ET_E_TPM;
}

/* Records that the link of x can no longer be used, because of rc. */
static void mark_broken(struct xfer *x, TSS2_RC rc)
{
	et_ctx *ctx = x->ctx;

	if (ctx->rescuing) {
		/* The rescue link failed too: no further attempt (et_tpm_flush). */
		ctx->rescue_failed = true;
		return;
	}
	if (ctx->broken_err)
		return;
	ctx->broken_err = broken_class(rc);
	if (rc == ET_TSS2_RC_DEADLINE)
		snprintf(ctx->broken_why, sizeof(ctx->broken_why), "%s got no answer within %u ms",
			 x->cmd, x->limit_ms);
	else
		snprintf(ctx->broken_why, sizeof(ctx->broken_why), "%s failed with 0x%x", x->cmd,
			 rc);
	et_log(ET_LOG_DEBUG, "TPM link '%s' no longer used: %s", ctx->tcti_conf, ctx->broken_why);
}

static TSS2_RC xfer_begin(et_ctx *ctx, struct xfer *x, const char *cmd, enum cmd_class cls)
{
	bool rescue = ctx->rescuing;

	memset(x, 0, sizeof(*x));
	x->ctx = ctx;
	x->cmd = cmd;
	x->esys = rescue ? ctx->rescue_esys : ctx->esys;
	x->keygen = cls == CMD_KEYGEN;
	x->limit_ms = x->keygen ? ctx->keygen_ms : ctx->cmd_ms;
	if (rescue && (ctx->rescue_failed || !ctx->rescue_esys))
		return ET_TSS2_RC_UNUSABLE;
	if (!rescue && ctx->broken_err) {
		et_tpm_note_deadline(
		    ctx->broken_err,
		    "this TPM connection (TCTI '%s') is no longer used: an earlier command (%s) "
		    "did not complete, and the TPM may still be working on it. Open a new one "
		    "(et_ctx_reopen, or run the program again); if this repeats, check the TPM",
		    ctx->tcti_conf, ctx->broken_why);
		return ET_TSS2_RC_UNUSABLE;
	}
	x->deadline_ms = now_ms() + x->limit_ms;
	return TSS2_RC_SUCCESS;
}

/*
 * Called with the result of _Async, then with that of every _Finish: true when _Finish must
 * be called (again), with the time left set as ESAPI's timeout. Otherwise *rc is final.
 */
static bool xfer_more(struct xfer *x, TSS2_RC *rc)
{
	int64_t left;

	if (!x->started) {
		if (*rc == ET_TSS2_RC_UNUSABLE)
			return false; /* xfer_begin refused: nothing was sent */
		x->started = true;
		if (*rc != TSS2_RC_SUCCESS) {
			/* A transmit error leaves ESAPI mid-command; argument errors do not. */
			if ((*rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
				mark_broken(x, *rc);
			return false;
		}
	} else if ((*rc & 0xffff) != TSS2_BASE_RC_TRY_AGAIN) {
		if (!tpm_answered(*rc))
			mark_broken(x, *rc);
		return false;
	}
	left = x->deadline_ms - now_ms();
	if (left <= 0) {
		et_tpm_note_deadline(
		    ET_E_TIMEOUT,
		    "the TPM (TCTI '%s') did not answer %s within %u ms (hung, or the "
		    "simulator stopped): check the TPM (`dmesg | grep -i tpm`) or the "
		    "simulator, then retry; if it is only slow, raise --tpm%s-timeout "
		    "(edgetrustd: tpm_%stimeout_ms)",
		    x->ctx->tcti_conf, x->cmd, x->limit_ms, x->keygen ? "-keygen" : "",
		    x->keygen ? "keygen_" : "");
		*rc = ET_TSS2_RC_DEADLINE;
		mark_broken(x, *rc);
		return false;
	}
	(void)Esys_SetTimeout(x->esys, left > INT32_MAX ? INT32_MAX : (int32_t)left);
	return true;
}

TSS2_RC et_esys_tr_from_tpm_public(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret)
{
	/* Esys_TR_FromTPMPublic sends NV_ReadPublic or ReadPublic (nothing for a session). */
	bool nv = (handle >> TPM2_HR_SHIFT) == TPM2_HT_NV_INDEX;
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, nv ? "NV_ReadPublic" : "ReadPublic", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_TR_FromTPMPublic_Async(x.esys, handle, ESYS_TR_NONE, ESYS_TR_NONE,
						 ESYS_TR_NONE);
	while (xfer_more(&x, &rc))
		rc = Esys_TR_FromTPMPublic_Finish(x.esys, ret);
	return rc;
}

TSS2_RC et_esys_flush_context(et_ctx *ctx, ESYS_TR handle)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "FlushContext", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_FlushContext_Async(x.esys, handle);
	while (xfer_more(&x, &rc))
		rc = Esys_FlushContext_Finish(x.esys);
	return rc;
}

TSS2_RC et_esys_get_capability(et_ctx *ctx, TPM2_CAP cap, UINT32 prop, UINT32 count,
			       TPMI_YES_NO *more, TPMS_CAPABILITY_DATA **data)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "GetCapability", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_GetCapability_Async(x.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, cap,
					      prop, count);
	while (xfer_more(&x, &rc))
		rc = Esys_GetCapability_Finish(x.esys, more, data);
	return rc;
}

TSS2_RC et_esys_read_public(et_ctx *ctx, ESYS_TR object, TPM2B_PUBLIC **out_public)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "ReadPublic", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc =
		    Esys_ReadPublic_Async(x.esys, object, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE);
	while (xfer_more(&x, &rc))
		rc = Esys_ReadPublic_Finish(x.esys, out_public, NULL, NULL);
	return rc;
}

TSS2_RC et_esys_nv_read(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv, ESYS_TR session, UINT16 size,
			UINT16 offset, TPM2B_MAX_NV_BUFFER **data)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "NV_Read", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_NV_Read_Async(x.esys, auth, nv, session, ESYS_TR_NONE, ESYS_TR_NONE, size,
					offset);
	while (xfer_more(&x, &rc))
		rc = Esys_NV_Read_Finish(x.esys, data);
	return rc;
}

TSS2_RC et_esys_nv_write(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv, ESYS_TR session,
			 const TPM2B_MAX_NV_BUFFER *data, UINT16 offset)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "NV_Write", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_NV_Write_Async(x.esys, auth, nv, session, ESYS_TR_NONE, ESYS_TR_NONE,
					 data, offset);
	while (xfer_more(&x, &rc))
		rc = Esys_NV_Write_Finish(x.esys);
	return rc;
}

TSS2_RC et_esys_nv_define_space(et_ctx *ctx, ESYS_TR auth, const TPM2B_AUTH *nv_auth,
				const TPM2B_NV_PUBLIC *pub, ESYS_TR *ret_nv)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "NV_DefineSpace", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_NV_DefineSpace_Async(x.esys, auth, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					       ESYS_TR_NONE, nv_auth, pub);
	while (xfer_more(&x, &rc))
		rc = Esys_NV_DefineSpace_Finish(x.esys, ret_nv);
	return rc;
}

TSS2_RC et_esys_nv_undefine_space(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "NV_UndefineSpace", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_NV_UndefineSpace_Async(x.esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
						 ESYS_TR_NONE);
	while (xfer_more(&x, &rc))
		rc = Esys_NV_UndefineSpace_Finish(x.esys);
	return rc;
}

TSS2_RC et_esys_start_auth_session(et_ctx *ctx, ESYS_TR tpm_key, TPM2_SE type,
				   const TPMT_SYM_DEF *sym, TPMI_ALG_HASH hash,
				   ESYS_TR *ret_session)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "StartAuthSession", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_StartAuthSession_Async(x.esys, tpm_key, ESYS_TR_NONE, ESYS_TR_NONE,
						 ESYS_TR_NONE, ESYS_TR_NONE, NULL, type, sym, hash);
	while (xfer_more(&x, &rc))
		rc = Esys_StartAuthSession_Finish(x.esys, ret_session);
	return rc;
}

TSS2_RC et_esys_policy_command_code(et_ctx *ctx, ESYS_TR session, TPM2_CC code)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "PolicyCommandCode", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_PolicyCommandCode_Async(x.esys, session, ESYS_TR_NONE, ESYS_TR_NONE,
						  ESYS_TR_NONE, code);
	while (xfer_more(&x, &rc))
		rc = Esys_PolicyCommandCode_Finish(x.esys);
	return rc;
}

TSS2_RC et_esys_policy_nv_written(et_ctx *ctx, ESYS_TR session, TPMI_YES_NO written)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "PolicyNvWritten", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_PolicyNvWritten_Async(x.esys, session, ESYS_TR_NONE, ESYS_TR_NONE,
						ESYS_TR_NONE, written);
	while (xfer_more(&x, &rc))
		rc = Esys_PolicyNvWritten_Finish(x.esys);
	return rc;
}

TSS2_RC et_esys_create_primary(et_ctx *ctx, ESYS_TR hierarchy,
			       const TPM2B_SENSITIVE_CREATE *sensitive, const TPM2B_PUBLIC *tmpl,
			       const TPM2B_DATA *outside, const TPML_PCR_SELECTION *pcr,
			       ESYS_TR *ret_object)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "CreatePrimary", CMD_KEYGEN);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_CreatePrimary_Async(x.esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					      ESYS_TR_NONE, sensitive, tmpl, outside, pcr);
	while (xfer_more(&x, &rc))
		rc = Esys_CreatePrimary_Finish(x.esys, ret_object, NULL, NULL, NULL, NULL);
	return rc;
}

TSS2_RC et_esys_create(et_ctx *ctx, ESYS_TR parent, const TPM2B_SENSITIVE_CREATE *sensitive,
		       const TPM2B_PUBLIC *tmpl, const TPM2B_DATA *outside,
		       const TPML_PCR_SELECTION *pcr, TPM2B_PRIVATE **ret_private,
		       TPM2B_PUBLIC **ret_public)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "Create", CMD_KEYGEN);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_Create_Async(x.esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				       sensitive, tmpl, outside, pcr);
	while (xfer_more(&x, &rc))
		rc = Esys_Create_Finish(x.esys, ret_private, ret_public, NULL, NULL, NULL);
	return rc;
}

TSS2_RC et_esys_load(et_ctx *ctx, ESYS_TR parent, const TPM2B_PRIVATE *priv,
		     const TPM2B_PUBLIC *pub, ESYS_TR *ret_object)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "Load", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_Load_Async(x.esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				     priv, pub);
	while (xfer_more(&x, &rc))
		rc = Esys_Load_Finish(x.esys, ret_object);
	return rc;
}

TSS2_RC et_esys_evict_control(et_ctx *ctx, ESYS_TR auth, ESYS_TR object,
			      TPMI_DH_PERSISTENT persistent, ESYS_TR *ret_object)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "EvictControl", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_EvictControl_Async(x.esys, auth, object, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					     ESYS_TR_NONE, persistent);
	while (xfer_more(&x, &rc))
		rc = Esys_EvictControl_Finish(x.esys, ret_object);
	return rc;
}

TSS2_RC et_esys_rsa_decrypt(et_ctx *ctx, ESYS_TR key, ESYS_TR session,
			    const TPM2B_PUBLIC_KEY_RSA *cipher, const TPMT_RSA_DECRYPT *scheme,
			    const TPM2B_DATA *label, TPM2B_PUBLIC_KEY_RSA **ret_message)
{
	struct xfer x;
	TSS2_RC rc = xfer_begin(ctx, &x, "RSA_Decrypt", CMD_SHORT);

	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_RSA_Decrypt_Async(x.esys, key, session, ESYS_TR_NONE, ESYS_TR_NONE,
					    cipher, scheme, label);
	while (xfer_more(&x, &rc))
		rc = Esys_RSA_Decrypt_Finish(x.esys, ret_message);
	return rc;
}
