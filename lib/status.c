/* SPDX-License-Identifier: Apache-2.0 */
/*
 * et_status_get: what the TPM is and what edgetrust finds on it (serial, SRK, device key,
 * lockout state, leftover handles), for `edgetrust status` and the agent's health report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* tpm2-tss' TPM2_TRANSIENT_FIRST etc. shift a signed int into the sign bit (UBSan objects). */
#define HANDLES_TRANSIENT 0x80000000u
#define HANDLES_PERSISTENT 0x81000000u
#define HANDLES_LOADED_SESSION 0x02000000u

static int get_cap(et_ctx *ctx, TPM2_CAP cap, UINT32 prop, UINT32 count,
		   TPMS_CAPABILITY_DATA **ret)
{
	TPMI_YES_NO more = TPM2_NO;
	TSS2_RC rc;

	rc = et_esys_get_capability(ctx, cap, prop, count, &more, ret);
	if (rc != TSS2_RC_SUCCESS)
		return et_tpm_fail(rc, "reading the TPM's capabilities");
	return 0;
}

static void put_chars(char *dst, size_t *pos, size_t cap, uint32_t v)
{
	for (int shift = 24; shift >= 0; shift -= 8) {
		char c = (char)((v >> shift) & 0xff);

		/* Vendors pad with NUL or blanks; keep printable bytes only. */
		if (c >= 0x21 && c < 0x7f && *pos + 1 < cap)
			dst[(*pos)++] = c;
		else if (c == ' ' && *pos > 0 && *pos + 1 < cap)
			dst[(*pos)++] = c;
	}
	dst[*pos] = '\0';
}

static bool handle_listed(const TPMS_CAPABILITY_DATA *d, TPM2_HANDLE h)
{
	for (UINT32 i = 0; i < d->data.handles.count; i++)
		if (d->data.handles.handle[i] == h)
			return true;
	return false;
}

/* key_ok and key_fpr for a present key; a key of the wrong kind is a finding, not a failure. */
static int key_check(et_ctx *ctx, uint32_t key_handle, et_status *st)
{
	ESYS_TR tr = ESYS_TR_NONE;
	TPM2B_PUBLIC pub;
	char *pem = NULL;
	int r;

	r = et_tpm_tr_from_handle(ctx, key_handle, &tr);
	if (r < 0)
		goto out;
	r = et_tpm_tr_public(ctx, tr, &pub);
	if (r < 0)
		goto out;
	if (et_tpm_key_check(&pub, key_handle, ET_KEY_USE_DECRYPT) < 0) {
		r = 0;
		goto out;
	}
	r = et_key_public_pem(ctx, key_handle, &pem, st->key_fpr);
	if (r == ET_E_KEY_TYPE || r == ET_E_PEM) {
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	st->key_ok = true;
out:
	free(pem);
	et_tpm_close(ctx, &tr);
	return r;
}

int et_status_get(et_ctx *ctx, uint32_t nv_index, uint32_t srk_handle, uint32_t key_handle,
		  et_status *ret)
{
	TPMS_CAPABILITY_DATA *fixed = NULL, *var = NULL, *transient = NULL, *sessions = NULL,
			     *persistent = NULL;
	et_status st;
	size_t vpos = 0, mpos = 0;
	char *serial = NULL;
	uint32_t nv_attrs = 0;
	int r;

	et_clear_error();
	if (!ctx || !ret)
		return et_fail(ET_E_INVALID, "et_status_get: NULL argument");
	memset(&st, 0, sizeof(st));
	r = get_cap(ctx, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &fixed);
	if (r < 0)
		goto out;
	r = get_cap(ctx, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_VAR, TPM2_MAX_TPM_PROPERTIES, &var);
	if (r < 0)
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		const TPML_TAGGED_TPM_PROPERTY *props = pass ? &var->data.tpmProperties
							    : &fixed->data.tpmProperties;

		for (UINT32 i = 0; i < props->count; i++) {
			UINT32 v = props->tpmProperty[i].value;

			switch (props->tpmProperty[i].property) {
			case TPM2_PT_MANUFACTURER:
				put_chars(st.manufacturer, &mpos, sizeof(st.manufacturer), v);
				break;
			case TPM2_PT_VENDOR_STRING_1:
			case TPM2_PT_VENDOR_STRING_2:
			case TPM2_PT_VENDOR_STRING_3:
			case TPM2_PT_VENDOR_STRING_4:
				/* Properties come sorted, so the four parts arrive in order. */
				put_chars(st.vendor_string, &vpos, sizeof(st.vendor_string), v);
				break;
			case TPM2_PT_FIRMWARE_VERSION_1:
				st.firmware_major = v >> 16;
				st.firmware_minor = v & 0xffff;
				break;
			case TPM2_PT_LEVEL:
				st.spec_level = v;
				break;
			case TPM2_PT_REVISION:
				st.spec_revision = v;
				break;
			case TPM2_PT_PERMANENT:
				st.owner_auth_set = (v & TPMA_PERMANENT_OWNERAUTHSET) != 0;
				st.in_lockout = (v & TPMA_PERMANENT_INLOCKOUT) != 0;
				break;
			case TPM2_PT_LOCKOUT_COUNTER:
				st.lockout_counter = v;
				break;
			case TPM2_PT_MAX_AUTH_FAIL:
				st.max_auth_fail = v;
				break;
			case TPM2_PT_LOCKOUT_INTERVAL:
				st.lockout_interval = v;
				break;
			default:
				break;
			}
		}
	}
	r = get_cap(ctx, TPM2_CAP_HANDLES, HANDLES_TRANSIENT, TPM2_MAX_CAP_HANDLES, &transient);
	if (r < 0)
		goto out;
	st.transient_handles = transient->data.handles.count;
	r = get_cap(ctx, TPM2_CAP_HANDLES, HANDLES_LOADED_SESSION, TPM2_MAX_CAP_HANDLES,
		    &sessions);
	if (r < 0)
		goto out;
	st.loaded_sessions = sessions->data.handles.count;
	r = get_cap(ctx, TPM2_CAP_HANDLES, HANDLES_PERSISTENT, TPM2_MAX_CAP_HANDLES,
		    &persistent);
	if (r < 0)
		goto out;
	st.srk_present = handle_listed(persistent, srk_handle);
	st.key_present = handle_listed(persistent, key_handle);

	r = et_serial_read_attrs(ctx, nv_index, &serial, &nv_attrs);
	st.serial_no_da = (nv_attrs & TPMA_NV_NO_DA) != 0;
	if (r == 0) {
		st.serial_defined = st.serial_present = true;
		snprintf(st.serial, sizeof(st.serial), "%s", serial);
	} else if (r == ET_E_NV_UNWRITTEN || r == ET_E_NV_ATTRIBUTES || r == ET_E_INVALID) {
		st.serial_defined = true;
	} else if (r != ET_E_NV_UNDEFINED) {
		goto out;
	}
	if (st.key_present) {
		r = key_check(ctx, key_handle, &st);
		/* With every transient slot taken by leftovers the TPM cannot even load the key
		 * to read it; the handle counts above already tell why, so report, not fail. */
		if (r < 0 && !(r == ET_E_TPM_OBJECT_MEMORY && st.transient_handles))
			goto out;
	}
	*ret = st;
	r = 0;
out:
	free(serial);
	Esys_Free(fixed);
	Esys_Free(var);
	Esys_Free(transient);
	Esys_Free(sessions);
	Esys_Free(persistent);
	return r;
}
