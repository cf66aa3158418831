/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening the TPM: TCTI choice (argument, EDGETRUST_TCTI, TPM2TOOLS_TCTI, then
 * device:/dev/tpmrm0), the TCTI loader called with the module's absolute path (lib/tcti.c:
 * which module may be loaded) so that neither its silent fallback to a simulator nor its
 * library search ever happens, and the ESAPI context. Also the flush/close helpers of lib/tpm.h.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "tpm.h"

#define ET_TCTI_DEFAULT "device:/dev/tpmrm0"

static const char *tcti_choose(const char *arg, const char **ret_source)
{
	const char *env;

	if (arg) {
		*ret_source = "--tcti";
		return arg;
	}
	/* An empty variable counts as unset, as it does for tpm2-tools. */
	env = getenv("EDGETRUST_TCTI");
	if (env && *env) {
		*ret_source = "EDGETRUST_TCTI";
		return env;
	}
	env = getenv("TPM2TOOLS_TCTI");
	if (env && *env) {
		*ret_source = "TPM2TOOLS_TCTI";
		return env;
	}
	*ret_source = "the default";
	return ET_TCTI_DEFAULT;
}

/*
 * For the device TCTI the kernel tells us more than the TCTI's IO error: name the missing node
 * or the refused permission. Returns 0 when nothing specific is wrong with the node.
 */
static int device_diagnose(const char *conf, const char *tcti, const char *source)
{
	const char *path = conf && *conf ? conf : "/dev/tpm0";
	struct stat st;

	if (stat(path, &st) < 0 && errno == ENOENT)
		return et_fail(ET_E_TPM_UNREACHABLE,
			       "TPM unreachable: %s (TCTI '%s', from %s) does not exist. Check that the "
			       "kernel TPM driver is loaded (on the CM4 with SLB9670: "
			       "dtoverlay=slb9670-tpm in config.txt; `dmesg | grep -i tpm`), or give "
			       "another TCTI with --tcti or EDGETRUST_TCTI",
			       path, tcti, source);
	if (access(path, R_OK | W_OK) < 0 && errno == EACCES)
		return et_fail(ET_E_PERMISSION,
			       "TPM unreachable: no permission to open %s (TCTI '%s', from %s). Run as "
			       "root or as a member of the group owning %s (usually 'tss')",
			       path, tcti, source, path);
	return 0;
}

int et_ctx_new(const char *tcti, et_ctx **ret)
{
	return et_ctx_new_module(tcti, NULL, ret);
}

int et_ctx_new_module(const char *tcti, const char *module, et_ctx **ret)
{
	const char *source = NULL;
	const char *chosen;
	char *name = NULL, *conf = NULL, *colon;
	et_ctx *ctx = NULL;
	TSS2_RC rc;
	int r;

	et_clear_error();
	if (!ret)
		return et_fail(ET_E_INVALID, "et_ctx_new: ret is NULL");
	chosen = tcti_choose(tcti, &source);
	/* The loader would treat an empty name as "try every TCTI it knows"; refuse it. */
	if (!*chosen || *chosen == ':')
		return et_fail(ET_E_INVALID,
			       "TCTI '%s' (from %s) names no TCTI; use e.g. device:/dev/tpmrm0, "
			       "swtpm:host=127.0.0.1,port=2321 or tabrmd:",
			       chosen, source);
	ctx = calloc(1, sizeof(*ctx));
	name = strdup(chosen);
	if (!ctx || !name) {
		r = et_fail(ET_E_NOMEM, "out of memory opening the TPM");
		goto out;
	}
	colon = strchr(name, ':');
	if (colon) {
		*colon = '\0';
		conf = colon + 1;
	}
	ctx->cmd_ms = ET_TPM_TIMEOUT_DEFAULT_MS;
	ctx->keygen_ms = ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS;
	ctx->tcti_conf = strdup(chosen);
	ctx->tcti_name = strdup(name);
	ctx->tcti_arg = conf ? strdup(conf) : NULL;
	if (!ctx->tcti_conf || !ctx->tcti_name || (conf && !ctx->tcti_arg)) {
		r = et_fail(ET_E_NOMEM, "out of memory opening the TPM");
		goto out;
	}
	r = et_tcti_resolve(name, module && *module ? module : NULL, chosen, source,
			    &ctx->tcti_path, &ctx->tcti_dl);
	if (r < 0)
		goto out;
	rc = Tss2_TctiLdr_Initialize_Ex(ctx->tcti_path, conf, &ctx->tcti);
	if (rc != TSS2_RC_SUCCESS) {
		ctx->tcti = NULL;
		if (strcmp(name, "device") == 0) {
			r = device_diagnose(conf, chosen, source);
			if (r < 0)
				goto out;
		}
		if (rc == TSS2_TCTI_RC_NOT_SUPPORTED) {
			r = et_fail(ET_E_TPM_UNREACHABLE,
				    "TPM unreachable: %s is not a TCTI module (TCTI '%s' from %s) "
				    "[%s, 0x%x]",
				    ctx->tcti_path, chosen, source, Tss2_RC_Decode(rc), rc);
			goto out;
		}
		r = et_fail(ET_E_TPM_UNREACHABLE,
			    "TPM unreachable through TCTI '%s' (from %s): %s (0x%x). Check that the "
			    "TPM or simulator is running and that the TCTI string is right "
			    "(device:/dev/tpmrm0, swtpm:host=H,port=P, mssim:host=H,port=P, tabrmd:); "
			    "set it with --tcti or EDGETRUST_TCTI",
			    chosen, source, Tss2_RC_Decode(rc), rc);
		goto out;
	}
	rc = Esys_Initialize(&ctx->esys, ctx->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		ctx->esys = NULL;
		r = et_tpm_fail(rc, "initialising the TPM connection");
		goto out;
	}
	et_log(ET_LOG_DEBUG, "TPM opened through TCTI '%s' (from %s)", chosen, source);
	*ret = ctx;
	ctx = NULL;
	r = 0;
out:
	free(name);
	et_ctx_free(ctx);
	return r;
}

void et_ctx_free(et_ctx *ctx)
{
	if (!ctx)
		return;
	et_tpm_rescue_close(ctx);
	/* Neither sends a TPM command, whatever state an abandoned exchange left them in. */
	if (ctx->esys)
		Esys_Finalize(&ctx->esys);
	if (ctx->tcti)
		Tss2_TctiLdr_Finalize(&ctx->tcti);
	/* After tctildr's own dlclose(): the module's last reference goes here. */
	if (ctx->tcti_dl)
		dlclose(ctx->tcti_dl);
	free(ctx->tcti_path);
	free(ctx->tcti_conf);
	free(ctx->tcti_name);
	free(ctx->tcti_arg);
	free(ctx);
}

int et_ctx_reopen(et_ctx *ctx)
{
	TSS2_RC rc;

	et_clear_error();
	if (!ctx)
		return et_fail(ET_E_INVALID, "et_ctx_reopen: NULL context");
	et_tpm_rescue_close(ctx);
	ctx->rescue_failed = false;
	if (ctx->esys)
		Esys_Finalize(&ctx->esys);
	if (ctx->tcti)
		Tss2_TctiLdr_Finalize(&ctx->tcti);
	ctx->esys = NULL;
	ctx->tcti = NULL;
	rc = Tss2_TctiLdr_Initialize_Ex(ctx->tcti_path, ctx->tcti_arg, &ctx->tcti);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_Initialize(&ctx->esys, ctx->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		ctx->esys = NULL;
		if (ctx->tcti)
			Tss2_TctiLdr_Finalize(&ctx->tcti);
		ctx->tcti = NULL;
		/* Every call keeps refusing until a reopen works (lib/tpm_cmd.c). */
		ctx->broken_err = ET_E_TPM_UNREACHABLE;
		snprintf(ctx->broken_why, sizeof(ctx->broken_why),
			 "reopening the connection failed with 0x%x", rc);
		return et_fail(ET_E_TPM_UNREACHABLE,
			       "TPM unreachable: reopening the connection through TCTI '%s' failed: "
			       "%s (0x%x). Check that the TPM or simulator is up, then try again",
			       ctx->tcti_conf, Tss2_RC_Decode(rc), rc);
	}
	ctx->broken_err = 0;
	ctx->broken_why[0] = '\0';
	et_log(ET_LOG_INFO, "TPM connection through TCTI '%s' reopened", ctx->tcti_conf);
	return 0;
}

int et_ctx_set_timeouts(et_ctx *ctx, uint32_t cmd_ms, uint32_t keygen_ms)
{
	et_clear_error();
	if (!ctx)
		return et_fail(ET_E_INVALID, "et_ctx_set_timeouts: NULL context");
	if (!cmd_ms)
		cmd_ms = ET_TPM_TIMEOUT_DEFAULT_MS;
	if (!keygen_ms)
		keygen_ms = ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS;
	if (cmd_ms < ET_TPM_TIMEOUT_MIN_MS || cmd_ms > ET_TPM_TIMEOUT_MAX_MS ||
	    keygen_ms < ET_TPM_TIMEOUT_MIN_MS || keygen_ms > ET_TPM_TIMEOUT_MAX_MS)
		return et_fail(ET_E_INVALID,
			       "TPM command deadlines of %u ms and %u ms (key generation): each must "
			       "be %u..%u ms",
			       cmd_ms, keygen_ms, ET_TPM_TIMEOUT_MIN_MS, ET_TPM_TIMEOUT_MAX_MS);
	ctx->cmd_ms = cmd_ms;
	ctx->keygen_ms = keygen_ms;
	return 0;
}

const char *et_ctx_tcti(const et_ctx *ctx)
{
	return ctx && ctx->tcti_conf ? ctx->tcti_conf : "";
}

ESYS_CONTEXT *et_ctx_esys(et_ctx *ctx)
{
	return ctx ? ctx->esys : NULL;
}

/*
 * Whether the TPM behind this TCTI flushes a connection's sessions and transient objects when
 * it closes: the kernel's resource manager (/dev/tpmrm*) and tpm2-abrmd do; a raw TPM or a
 * simulator socket keeps them until flushed (3 transient slots on a raw TPM).
 */
static bool tcti_has_resource_manager(const et_ctx *ctx)
{
	if (strcmp(ctx->tcti_name, "tabrmd") == 0)
		return true;
	return strcmp(ctx->tcti_name, "device") == 0 && ctx->tcti_arg &&
	       strstr(ctx->tcti_arg, "tpmrm");
}

void et_tpm_rescue_close(et_ctx *ctx)
{
	if (ctx->rescue_esys)
		Esys_Finalize(&ctx->rescue_esys);
	if (ctx->rescue_tcti)
		Tss2_TctiLdr_Finalize(&ctx->rescue_tcti);
	ctx->rescue_esys = NULL;
	ctx->rescue_tcti = NULL;
}

/*
 * Flushes tpm_handle over a second connection: the first one is mid-command after a deadline
 * or a broken link and never sends again. Opened on first use, given up for good when it
 * fails (a TPM that is really hung would cost one more deadline per handle otherwise).
 */
static void rescue_flush(et_ctx *ctx, TPM2_HANDLE tpm_handle)
{
	ESYS_TR tr = ESYS_TR_NONE;
	TSS2_RC rc;

	if (tcti_has_resource_manager(ctx)) {
		et_log(ET_LOG_DEBUG, "TPM handle 0x%08x is flushed by the resource manager when the "
		       "connection closes", tpm_handle);
		return;
	}
	if (!ctx->rescue_esys && !ctx->rescue_failed) {
		rc = Tss2_TctiLdr_Initialize_Ex(ctx->tcti_path, ctx->tcti_arg, &ctx->rescue_tcti);
		if (rc == TSS2_RC_SUCCESS)
			rc = Esys_Initialize(&ctx->rescue_esys, ctx->rescue_tcti, NULL);
		if (rc != TSS2_RC_SUCCESS) {
			ctx->rescue_esys = NULL;
			et_tpm_rescue_close(ctx);
			ctx->rescue_failed = true;
		}
	}
	if (ctx->rescue_failed) {
		et_log(ET_LOG_WARNING, "TPM handle 0x%08x may be left loaded in the TPM: the "
		       "connection that would flush it failed; on a TPM without resource manager "
		       "flush it with `tpm2_flushcontext 0x%08x`", tpm_handle, tpm_handle);
		return;
	}
	ctx->rescuing = true;
	rc = et_esys_tr_from_tpm_public(ctx, tpm_handle, &tr);
	if (rc == TSS2_RC_SUCCESS)
		rc = et_esys_flush_context(ctx, tr);
	ctx->rescuing = false;
	if (rc == TSS2_RC_SUCCESS) {
		et_log(ET_LOG_DEBUG, "flushed TPM handle 0x%08x over a second connection",
		       tpm_handle);
		return;
	}
	/* HANDLE: the TPM ended it itself (it ran the command whose answer we did not wait for). */
	if (tr != ESYS_TR_NONE)
		(void)Esys_TR_Close(ctx->rescue_esys, &tr);
	et_log(ctx->rescue_failed ? ET_LOG_WARNING : ET_LOG_DEBUG,
	       "could not flush TPM handle 0x%08x over a second connection: %s (0x%x)", tpm_handle,
	       (rc & TSS2_RC_LAYER_MASK) == ET_TSS2_RC_LAYER ? "no answer" : Tss2_RC_Decode(rc),
	       rc);
}

void et_tpm_flush(et_ctx *ctx, ESYS_TR *handle)
{
	TPM2_HANDLE tpm_handle = 0;
	TSS2_RC rc;

	if (!ctx || !handle || *handle == ESYS_TR_NONE)
		return;
	if (!ctx->broken_err) {
		rc = et_esys_flush_context(ctx, *handle);
		if (rc == TSS2_RC_SUCCESS) {
			*handle = ESYS_TR_NONE;
			return;
		}
		if (!ctx->broken_err) {
			/* The handle is useless either way; forget it so a later free does not
			 * touch it. */
			et_log(ET_LOG_WARNING, "could not flush a TPM session or object: %s (0x%x)",
			       Tss2_RC_Decode(rc), rc);
			(void)Esys_TR_Close(ctx->esys, handle);
			*handle = ESYS_TR_NONE;
			return;
		}
	}
	/* This connection is mid-command: flush over a second one (ESAPI still knows the
	 * TPM handle behind the ESYS_TR; asking costs no command). */
	if (Esys_TR_GetTpmHandle(ctx->esys, *handle, &tpm_handle) == TSS2_RC_SUCCESS)
		rescue_flush(ctx, tpm_handle);
	(void)Esys_TR_Close(ctx->esys, handle);
	*handle = ESYS_TR_NONE;
}

void et_tpm_close(et_ctx *ctx, ESYS_TR *handle)
{
	if (!ctx || !handle || *handle == ESYS_TR_NONE)
		return;
	(void)Esys_TR_Close(ctx->esys, handle);
	*handle = ESYS_TR_NONE;
}

int et_tpm_fail_ctx(et_ctx *ctx, TSS2_RC rc, TPM2_HANDLE handle, const char *what_failed)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = TPM2_NO;
	uint32_t counter = 0, limit = 0, interval = 0;
	char msg[768];
	int err = et_tpm_fail_handle(rc, handle, what_failed);

	if (err != ET_E_TPM_LOCKOUT || !ctx)
		return err;
	snprintf(msg, sizeof(msg), "%s", et_errmsg());
	if (et_esys_get_capability(ctx, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_LOCKOUT_COUNTER, 3, &more,
				   &cap) != TSS2_RC_SUCCESS)
		return err;
	for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
		UINT32 v = cap->data.tpmProperties.tpmProperty[i].value;

		switch (cap->data.tpmProperties.tpmProperty[i].property) {
		case TPM2_PT_LOCKOUT_COUNTER:
			counter = v;
			break;
		case TPM2_PT_MAX_AUTH_FAIL:
			limit = v;
			break;
		case TPM2_PT_LOCKOUT_INTERVAL:
			interval = v;
			break;
		default:
			break;
		}
	}
	Esys_Free(cap);
	if (interval && counter >= limit)
		return et_fail(err,
			       "%s. Now: %u failures counted, limit %u, one forgiven every %u s of "
			       "powered-on time, so authorisations work again in about %u s",
			       msg, counter, limit, interval, (counter - limit + 1) * interval);
	return et_fail(err, "%s. Now: %u failures counted, limit %u, recovery interval %u s", msg,
		       counter, limit, interval);
}

int et_tpm_tr_from_handle(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret)
{
	char what[96];
	ESYS_TR tr = ESYS_TR_NONE;
	TSS2_RC rc;

	if (!ctx || !ret)
		return et_fail(ET_E_INVALID, "et_tpm_tr_from_handle: NULL argument");
	rc = et_esys_tr_from_tpm_public(ctx, handle, &tr);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "reading the public area of handle 0x%08x", handle);
		return et_tpm_fail_handle(rc, handle, what);
	}
	*ret = tr;
	return 0;
}
