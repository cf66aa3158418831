/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one place where a TSS2_RC becomes an edgetrust error: the class (ET_E_*) and a message
 * that keeps tpm2-tss' decoded text and the hex code, and says why it happens and what to do.
 */
#include <stdarg.h>
#include <stdio.h>

#include <tss2/tss2_rc.h>

#include "tpm.h"

TPM2_RC et_tpm_rc_base(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

	/* TPM answers come straight (layer 0) or relayed by a resource manager (layer 12). */
	if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
		return 0;
	rc &= 0xffff;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

struct rc_text {
	int err;
	const char *cause; /* why, and what to do */
};

static struct rc_text classify(TSS2_RC rc, TPM2_HANDLE handle)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
	TPM2_RC base = et_tpm_rc_base(rc);
	bool nv = (handle >> 24) == TPM2_HT_NV_INDEX;
	bool persistent = (handle >> 24) == TPM2_HT_PERSISTENT;

	if (layer == TSS2_TCTI_RC_LAYER || rc == TSS2_ESYS_RC_IO_ERROR ||
	    rc == TSS2_SYS_RC_INSUFFICIENT_RESPONSE || rc == TSS2_ESYS_RC_INSUFFICIENT_RESPONSE) {
		if ((rc & 0xffff) == TSS2_BASE_RC_TRY_AGAIN)
			return (struct rc_text){ET_E_TIMEOUT,
				"the TPM did not answer in time; check the TPM (dmesg) and retry"};
		return (struct rc_text){ET_E_TPM_UNREACHABLE,
			"the connection to the TPM failed; check that the TPM device or simulator is "
			"up and the TCTI (--tcti, EDGETRUST_TCTI) names it, then retry"};
	}
	if (layer == TSS2_RESMGR_RC_LAYER)
		return (struct rc_text){ET_E_TPM_UNREACHABLE,
			"the TPM resource manager (tpm2-abrmd or the kernel's) refused the request; "
			"check that it runs, or use device:/dev/tpmrm0"};
	if (layer == TSS2_ESAPI_RC_LAYER || layer == TSS2_SYS_RC_LAYER || layer == TSS2_MU_RC_LAYER) {
		if ((rc & 0xffff) == TSS2_BASE_RC_MEMORY)
			return (struct rc_text){ET_E_NOMEM, "out of memory in tpm2-tss"};
		if (rc == TSS2_ESYS_RC_RSP_AUTH_FAILED)
			return (struct rc_text){ET_E_TPM,
				"the TPM's response failed its integrity check: the bus to the TPM may "
				"be faulty or tampered with; retry, and investigate if it repeats"};
		if (rc == TSS2_ESYS_RC_MALFORMED_RESPONSE || rc == TSS2_SYS_RC_MALFORMED_RESPONSE)
			return (struct rc_text){ET_E_TPM,
				"the TPM sent a malformed response; retry, and check the TPM firmware "
				"if it repeats"};
		return (struct rc_text){ET_E_INTERNAL,
			"tpm2-tss rejected the request; this is a bug in edgetrust, please report it "
			"with the output of `edgetrust -vvv`"};
	}
	if (base == 0)
		return (struct rc_text){ET_E_TPM, "unexpected error from tpm2-tss"};

	switch (base) {
	case TPM2_RC_OBJECT_MEMORY:
		return (struct rc_text){ET_E_TPM_OBJECT_MEMORY,
			"the TPM has no free slot for another object: transient objects were left "
			"loaded by an earlier program on a TPM used without resource manager. Use "
			"--tcti device:/dev/tpmrm0, or flush them with `tpm2_flushcontext -t`"};
	case TPM2_RC_SESSION_MEMORY:
	case TPM2_RC_SESSION_HANDLES:
		return (struct rc_text){ET_E_TPM_OBJECT_MEMORY,
			"the TPM has no free session slot: sessions were left open by an earlier "
			"program on a TPM used without resource manager. Use --tcti device:/dev/tpmrm0, "
			"or flush them with `tpm2_flushcontext -l` (loaded) and `-s` (saved)"};
	case TPM2_RC_MEMORY:
		return (struct rc_text){ET_E_TPM_OBJECT_MEMORY,
			"the TPM is out of memory for objects and sessions; flush leftovers with "
			"`tpm2_flushcontext -t -l -s` or use --tcti device:/dev/tpmrm0"};
	case TPM2_RC_LOCKOUT:
		return (struct rc_text){ET_E_TPM_LOCKOUT,
			"the TPM is in dictionary-attack lockout after too many wrong passwords: it "
			"refuses DA-protected authorisations until the failure counter decays (one "
			"failure forgiven every lockout interval; `edgetrust status` shows counter, "
			"maximum and interval). An administrator can reset it at once with "
			"`tpm2_dictionarylockout --clear-lockout -p <lockout password>`"};
	case TPM2_RC_RETRY:
	case TPM2_RC_TESTING:
	case TPM2_RC_YIELDED:
	case TPM2_RC_NV_RATE:
	case TPM2_RC_NV_UNAVAILABLE:
	case TPM2_RC_CANCELED:
		return (struct rc_text){ET_E_TPM_RETRY,
			"the TPM is busy (self-test, NV write rate limit or a yielded command); wait a "
			"few seconds and run the command again"};
	case TPM2_RC_NV_UNINITIALIZED:
		return (struct rc_text){ET_E_NV_UNWRITTEN,
			"the NV index is defined but was never written (TPM_RC_NV_UNINITIALIZED, "
			"0x14A), e.g. provisioning was interrupted; run `edgetrust serial provision "
			"SERIAL` to complete it"};
	case TPM2_RC_AUTH_FAIL:
		return (struct rc_text){ET_E_AUTH,
			"wrong authorisation value (the TPM counted a dictionary-attack failure: "
			"repeated failures lock the TPM out); check the password you gave"};
	case TPM2_RC_BAD_AUTH:
		return (struct rc_text){ET_E_AUTH,
			"wrong authorisation value (e.g. the owner hierarchy has a password); give the "
			"right one, e.g. with --owner-auth-file"};
	case TPM2_RC_AUTH_UNAVAILABLE:
	case TPM2_RC_AUTH_TYPE:
	case TPM2_RC_AUTH_MISSING:
	case TPM2_RC_NV_AUTHORIZATION:
		return (struct rc_text){ET_E_AUTH,
			"this kind of authorisation is not allowed for the object (its attributes "
			"forbid it); the object was probably created by another tool with other "
			"attributes"};
	case TPM2_RC_POLICY_FAIL:
	case TPM2_RC_POLICY_CC:
		return (struct rc_text){ET_E_AUTH,
			"the object's policy refused the command (for the serial index: it was already "
			"written once, and the write-once policy forbids a second write)"};
	case TPM2_RC_HANDLE:
	case TPM2_RC_REFERENCE_H0:
		if (nv)
			return (struct rc_text){ET_E_NV_UNDEFINED,
				"the NV index is not defined; provision it with `edgetrust serial "
				"provision SERIAL` (or give the right index with --index)"};
		if (persistent)
			return (struct rc_text){ET_E_KEY_ABSENT,
				"nothing is persisted at this handle; create the key with `edgetrust key "
				"create` (or give the right handle)"};
		return (struct rc_text){ET_E_TPM, "the TPM does not know the handle"};
	case TPM2_RC_NV_DEFINED:
		if (persistent)
			return (struct rc_text){ET_E_KEY_TYPE,
				"another object is already persisted at this handle; check it with "
				"`edgetrust status` and choose another handle or evict it"};
		return (struct rc_text){ET_E_NV_ATTRIBUTES,
			"the NV index is already defined"};
	case TPM2_RC_NV_SPACE:
		return (struct rc_text){ET_E_TOO_LARGE,
			"the TPM has no NV space left; remove unused NV indices (tpm2_getcap "
			"handles-nv-index, tpm2_nvundefine)"};
	case TPM2_RC_NV_RANGE:
	case TPM2_RC_NV_SIZE:
	case TPM2_RC_SIZE:
		return (struct rc_text){ET_E_TOO_LARGE,
			"the value does not fit the NV index or one TPM command"};
	case TPM2_RC_NV_LOCKED:
		return (struct rc_text){ET_E_TPM,
			"the NV index is locked against this access until the next TPM reset"};
	case TPM2_RC_HIERARCHY:
		return (struct rc_text){ET_E_TPM,
			"the hierarchy is disabled; enable the owner hierarchy (firmware/BIOS or "
			"tpm2_hierarchycontrol)"};
	case TPM2_RC_INITIALIZE:
	case TPM2_RC_REBOOT:
		return (struct rc_text){ET_E_TPM_UNREACHABLE,
			"the TPM was not started (TPM2_Startup missing); the kernel normally does this "
			"at boot. For a simulator run `tpm2_startup -c` or start swtpm with "
			"--flags startup-clear"};
	case TPM2_RC_FAILURE:
		return (struct rc_text){ET_E_TPM,
			"the TPM is in failure mode; power-cycle the device, and replace the TPM if it "
			"persists"};
	case TPM2_RC_COMMAND_CODE:
		return (struct rc_text){ET_E_TPM, "the TPM does not implement this command"};
	default:
		break;
	}
	return (struct rc_text){ET_E_TPM, "the TPM refused the command"};
}

static _Thread_local char deadline_detail[512];
static _Thread_local int deadline_err = ET_E_TIMEOUT;

void et_tpm_note_deadline(int err, const char *fmt, ...)
{
	va_list ap;

	deadline_err = err;
	va_start(ap, fmt);
	vsnprintf(deadline_detail, sizeof(deadline_detail), fmt, ap);
	va_end(ap);
}

/*
 * The deadline layer's own codes (lib/tpm_cmd.c): the cause and remedy are in its detail,
 * which names the command, the TCTI and the deadline.
 */
static int fail_deadline(TSS2_RC rc, const char *what_failed)
{
	(void)rc;
	return et_fail(deadline_err, "%s failed: %s", what_failed ? what_failed : "TPM command",
		       *deadline_detail ? deadline_detail : "the TPM did not answer in time");
}

int et_tpm_fail_handle(TSS2_RC rc, TPM2_HANDLE handle, const char *what_failed)
{
	struct rc_text t;

	if ((rc & TSS2_RC_LAYER_MASK) == ET_TSS2_RC_LAYER)
		return fail_deadline(rc, what_failed);
	t = classify(rc, handle);

	return et_fail(t.err, "%s failed: %s [%s, 0x%x]", what_failed ? what_failed : "TPM command",
		       t.cause, Tss2_RC_Decode(rc), rc);
}

int et_tpm_fail(TSS2_RC rc, const char *what_failed)
{
	return et_tpm_fail_handle(rc, 0, what_failed);
}
