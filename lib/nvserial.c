/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device serial number in a TPM NV index, with the reference article's write-once policy:
 * PolicyCommandCode(NV_Write) then PolicyNvWritten(NO), attributes ownerread|authread|
 * policywrite (0x60008, what `tpm2_nvdefine -a "ownerread|authread|policywrite"` sets), so an
 * index made by the article's tpm2-tools commands and one made here are the same object.
 *
 * TPM commands per operation (counted on swtpm, see tests/tpm/test_serial_interop.py and test_serial_idempotence.py):
 *  provision, fresh TPM:   NV_DefineSpace, StartAuthSession, PolicyCommandCode,
 *                          PolicyNV_Written, NV_Write                                  = 5
 *  provision, rerun:       NV_DefineSpace (NV_DEFINED), NV_ReadPublic, NV_Read         = 3
 *  read:                   NV_ReadPublic, NV_Read                                      = 2
 *                          (owner has a password: + NV_Read refused, and the TPM answers
 *                          the first DA-protected use after startup with RETRY: up to 5)
 *  provision, unwritten:    NV_DefineSpace (NV_DEFINED), NV_ReadPublic, StartAuthSession,
 *                          PolicyCommandCode, PolicyNV_Written, NV_Write               = 6
 *  clear:                  NV_ReadPublic, NV_UndefineSpace                             = 2
 * With ET_SERIAL_NO_DA the index is defined with TPMA_NV_NO_DA too (same policy, other name):
 * its authread is DA-exempt, so reads with an owner password set never count toward lockout.
 * Everything goes through ESAPI. The one NV_ReadPublic is Esys_TR_FromTPMPublic's, which
 * builds the index's ESYS_TR; its public area is taken from that TR (tr_nv_public) rather than
 * read a second time. ESAPI resends RETRY/TESTING/YIELDED answers itself (up to 5 times).
 *
 * Why the read tries the owner first: authorising with the index's own auth is a use of a
 * dictionary-attack-protected entity (the article's index has no TPMA_NV_NO_DA), and after a
 * power cut the TPM then counts a DA failure at the next startup; devices that lose power
 * often would end in lockout and could no longer read their serial. The owner hierarchy is
 * DA-exempt, so the read uses ownerread while the owner password is empty (the usual case,
 * 2 commands) and falls back to authread when the owner has a password (3 commands).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_mu.h>

#include "tpm.h"

/* What `tpm2_nvdefine -a "ownerread|authread|policywrite"` sets (tpm2-tools 5.4 shows 0x60008;
 * the article prints 0x8000420, which does not match its own friendly string). */
#define SERIAL_ATTRS (TPMA_NV_POLICYWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD)
/* Bits that record state rather than definition, and one stricter variant we accept. */
#define SERIAL_ATTRS_STATE (TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED | TPMA_NV_READLOCKED)
#define SERIAL_ATTRS_TOLERATED TPMA_NV_NO_DA
/* The article's index is 20 bytes; a shorter serial leaves 0xFF in the rest. */
#define SERIAL_MIN_SIZE 20
/* Largest index we read as a serial; a bigger one is somebody else's data. */
#define SERIAL_MAX_INDEX_SIZE 512

/* PolicyCommandCode(TPM2_CC_NV_Write) then PolicyNvWritten(NO); tests/unit checks the value. */
static const uint8_t write_once_policy[32] = {
	0xB7, 0xAF, 0xEC, 0xEE, 0x9B, 0xF7, 0xBC, 0xBD, 0x50, 0x78, 0xF2, 0x64, 0xDE, 0x85, 0xF7, 0xE3,
	0x61, 0xDC, 0x84, 0xF7, 0x45, 0xDA, 0x7E, 0xFA, 0x34, 0xE9, 0x1F, 0xDA, 0xF2, 0x00, 0xEE, 0x9B,
};

/* Logins of the cloud itself: a device login of that name would shadow it (the edgetrust
 * broker plugin answers before dynamic security), so no device may carry it as its serial. */
static const char *const reserved_serials[] = {ET_LOGIN_BOOTSTRAP, ET_LOGIN_CLOUD};

static bool serial_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/*
 * The one serial-number rule of edgetrust: the CLI before it writes write-once NV, the agent
 * on what it reads from NV, the cloud on activate and on every topic and request all call
 * this. One message names the rule whatever broke it.
 */
int et_serial_validate(const char *serial)
{
	char shown[ET_SERIAL_MAX * 4 + 8], why[96];
	size_t len, o = 0;

	if (!serial)
		serial = "";
	len = strnlen(serial, ET_SERIAL_MAX + 1);
	why[0] = '\0';
	if (len == 0) {
		snprintf(why, sizeof(why), "it is empty");
	} else if (len > ET_SERIAL_MAX) {
		snprintf(why, sizeof(why), "it is longer than %d characters", ET_SERIAL_MAX);
	} else if (!((serial[0] >= 'A' && serial[0] <= 'Z') || (serial[0] >= 'a' && serial[0] <= 'z') ||
		     (serial[0] >= '0' && serial[0] <= '9'))) {
		/* "-x" reads as an option to every command line; ".", ".." as directories. */
		snprintf(why, sizeof(why), "it does not begin with a letter or digit");
	} else {
		for (size_t i = 0; i < len && !why[0]; i++)
			if (!serial_char_ok(serial[i]))
				snprintf(why, sizeof(why), "byte %zu (0x%02x) is not one of A-Z a-z "
					 "0-9 . _ -", i + 1, (unsigned char)serial[i]);
		for (size_t i = 0; !why[0] && i < sizeof(reserved_serials) / sizeof(reserved_serials[0]); i++)
			if (strcmp(serial, reserved_serials[i]) == 0)
				snprintf(why, sizeof(why), "it is the name of one of the cloud's broker "
					 "logins");
		if (!why[0] && (!strncasecmp(serial, ET_CLIENT_ID_PREFIX_BOOTSTRAP,
					     strlen(ET_CLIENT_ID_PREFIX_BOOTSTRAP)) ||
				!strncasecmp(serial, ET_CLIENT_ID_PREFIX_CLOUD,
					     strlen(ET_CLIENT_ID_PREFIX_CLOUD))))
			snprintf(why, sizeof(why), "it begins with a client-id prefix reserved for the "
				 "broker logins (" ET_CLIENT_ID_PREFIX_BOOTSTRAP ", "
				 ET_CLIENT_ID_PREFIX_CLOUD ")");
	}
	if (!why[0])
		return 0;
	/* The value as the operator can read it: printable ASCII, the rest as \xHH. */
	for (size_t i = 0; i < len && i < ET_SERIAL_MAX && o + 5 < sizeof(shown); i++) {
		unsigned char c = (unsigned char)serial[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
			shown[o++] = (char)c;
		else
			o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02x", c);
	}
	shown[o] = '\0';
	return et_fail(ET_E_INVALID,
		       "invalid serial number \"%s%s\": %s. A serial number is 1 to %d characters "
		       "of A-Z a-z 0-9 . _ -, begins with a letter or digit, and is not "
		       ET_LOGIN_BOOTSTRAP " or " ET_LOGIN_CLOUD " (it names MQTT topics, broker "
		       "logins and files)",
		       shown, len > ET_SERIAL_MAX ? "..." : "", why, ET_SERIAL_MAX);
}

static int check_index(uint32_t nv_index)
{
	if ((nv_index >> 24) != TPM2_HT_NV_INDEX)
		return et_fail(ET_E_INVALID,
			       "0x%08x is not an NV index handle; NV indices are 0x01000000-0x01ffffff "
			       "(the serial's default is 0x%08x)",
			       nv_index, ET_NV_SERIAL_INDEX_DEFAULT);
	return 0;
}

/* ESAPI's tag for an NV index in a serialised ESYS_TR (IESYSC_NV_RSRC in tpm2-tss' esys_types.h,
 * not in its public headers; the value is part of the on-disk TR format and cannot change). */
#define ESYS_TR_NV_RESOURCE 2

/*
 * The index's public area from an ESYS_TR made by Esys_TR_FromTPMPublic, without another TPM
 * command: ESAPI keeps the NV_ReadPublic answer (after checking it against the name) and
 * Esys_TR_Serialize hands it out in its on-disk TR format, the one tpm2-tools stores TRs in:
 * TPM2_HANDLE, TPM2B_NAME, resource type (UINT32), then TPM2B_NV_PUBLIC for an NV index.
 * (Esys_NV_ReadPublic on the TR would cost a second NV_ReadPublic; ESAPI 3.2 has no getter.)
 */
static TSS2_RC tr_nv_public(et_ctx *ctx, ESYS_TR nv, uint32_t nv_index, TPMS_NV_PUBLIC *ret)
{
	uint8_t *buf = NULL;
	size_t size = 0, off = 0;
	TPM2_HANDLE handle = 0;
	TPM2B_NAME name = {0};
	UINT32 type = 0;
	TPM2B_NV_PUBLIC pub = {0};
	TSS2_RC rc;

	rc = Esys_TR_Serialize(ctx->esys, nv, &buf, &size);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	rc = Tss2_MU_TPM2_HANDLE_Unmarshal(buf, size, &off, &handle);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_MU_TPM2B_NAME_Unmarshal(buf, size, &off, &name);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_MU_UINT32_Unmarshal(buf, size, &off, &type);
	if (rc == TSS2_RC_SUCCESS && (handle != nv_index || type != ESYS_TR_NV_RESOURCE))
		rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_MU_TPM2B_NV_PUBLIC_Unmarshal(buf, size, &off, &pub);
	if (rc == TSS2_RC_SUCCESS && pub.nvPublic.nvIndex != nv_index)
		rc = TSS2_ESYS_RC_MALFORMED_RESPONSE;
	free(buf);
	if (rc == TSS2_RC_SUCCESS)
		*ret = pub.nvPublic;
	return rc;
}

/*
 * One NV_ReadPublic: an ESYS_TR for the index (the caller closes it) and its public area.
 * rc is returned raw so callers can tell "absent" apart.
 */
static TSS2_RC nv_open(et_ctx *ctx, uint32_t nv_index, ESYS_TR *ret_nv, TPMS_NV_PUBLIC *ret_pub)
{
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = et_esys_tr_from_tpm_public(ctx, nv_index, &nv);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	rc = tr_nv_public(ctx, nv, nv_index, ret_pub);
	if (rc != TSS2_RC_SUCCESS) {
		et_tpm_close(ctx, &nv);
		return rc;
	}
	*ret_nv = nv;
	return rc;
}

static void describe_attrs(TPMA_NV a, char *buf, size_t len)
{
	static const struct {
		TPMA_NV bit;
		const char *name;
	} names[] = {
		{TPMA_NV_PPWRITE, "ppwrite"}, {TPMA_NV_OWNERWRITE, "ownerwrite"},
		{TPMA_NV_AUTHWRITE, "authwrite"}, {TPMA_NV_POLICYWRITE, "policywrite"},
		{TPMA_NV_POLICY_DELETE, "policydelete"}, {TPMA_NV_WRITELOCKED, "writelocked"},
		{TPMA_NV_WRITEALL, "writeall"}, {TPMA_NV_WRITEDEFINE, "writedefine"},
		{TPMA_NV_WRITE_STCLEAR, "write_stclear"}, {TPMA_NV_GLOBALLOCK, "globallock"},
		{TPMA_NV_PPREAD, "ppread"}, {TPMA_NV_OWNERREAD, "ownerread"},
		{TPMA_NV_AUTHREAD, "authread"}, {TPMA_NV_POLICYREAD, "policyread"},
		{TPMA_NV_NO_DA, "no_da"}, {TPMA_NV_ORDERLY, "orderly"},
		{TPMA_NV_CLEAR_STCLEAR, "clear_stclear"}, {TPMA_NV_READLOCKED, "readlocked"},
		{TPMA_NV_WRITTEN, "written"}, {TPMA_NV_PLATFORMCREATE, "platformcreate"},
		{TPMA_NV_READ_STCLEAR, "read_stclear"},
	};
	size_t used = 0;
	unsigned type = (a & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int n;

		if (!(a & names[i].bit))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "|" : "", names[i].name);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
	if (type)
		snprintf(buf + used, len - used, "%snt=%u", used ? "|" : "", type);
}

/* Is this index ours (or the article's)? ET_E_NV_ATTRIBUTES with both sides named if not. */
static int check_public(uint32_t nv_index, const TPMS_NV_PUBLIC *pub)
{
	TPMA_NV def = pub->attributes & ~(TPMA_NV)(SERIAL_ATTRS_STATE | SERIAL_ATTRS_TOLERATED);
	char found[256], want[128];

	if (def == SERIAL_ATTRS && pub->nameAlg == TPM2_ALG_SHA256 &&
	    pub->authPolicy.size == sizeof(write_once_policy) &&
	    memcmp(pub->authPolicy.buffer, write_once_policy, sizeof(write_once_policy)) == 0)
		return 0;
	describe_attrs(pub->attributes, found, sizeof(found));
	describe_attrs(SERIAL_ATTRS, want, sizeof(want));
	return et_fail(ET_E_NV_ATTRIBUTES,
		       "NV index 0x%08x exists but is not a write-once serial index: attributes %s "
		       "(0x%x), name algorithm 0x%x, policy of %u bytes; expected %s (0x%x), sha256 "
		       "and policy %s. It belongs to something else: choose another index with "
		       "--index, or remove it with `edgetrust serial clear --index 0x%08x` if you "
		       "are sure",
		       nv_index, found, pub->attributes, pub->nameAlg, pub->authPolicy.size, want,
		       SERIAL_ATTRS, ET_NV_WRITE_ONCE_POLICY_HEX, nv_index);
}

/* NV_Read of the whole index with a password session (ESAPI resends RETRY: the first use of a
 * DA-protected authorisation after startup is answered so while the TPM records it in NV). */
static TSS2_RC nv_read(et_ctx *ctx, ESYS_TR auth, ESYS_TR nv, UINT16 size,
		       TPM2B_MAX_NV_BUFFER *ret)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;

	rc = et_esys_nv_read(ctx, auth, nv, ESYS_TR_PASSWORD, size, 0, &data);
	if (rc == TSS2_RC_SUCCESS)
		*ret = *data;
	if (data)
		explicit_bzero(data, sizeof(*data));
	Esys_Free(data);
	return rc;
}

/*
 * NV_Read of the whole index with a password session: owner first (DA-exempt), the index's
 * own auth when the owner has a password or the index is NO_DA (then that is DA-exempt too).
 */
static int read_data(et_ctx *ctx, uint32_t nv_index, ESYS_TR nv, const TPMS_NV_PUBLIC *pub,
		     TPM2B_MAX_NV_BUFFER *ret)
{
	TPM2B_MAX_NV_BUFFER data = {0};
	bool owner = (pub->attributes & TPMA_NV_OWNERREAD) &&
		     !((pub->attributes & TPMA_NV_NO_DA) && (pub->attributes & TPMA_NV_AUTHREAD));
	char what[80];
	TSS2_RC rc;

	if (!(pub->attributes & (TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD)))
		return et_fail(ET_E_NV_ATTRIBUTES,
			       "NV index 0x%08x can be read neither by the owner nor with its own "
			       "authorisation (no ownerread, no authread); it is not a serial index",
			       nv_index);
	rc = nv_read(ctx, owner ? ESYS_TR_RH_OWNER : nv, nv, pub->dataSize, &data);
	if (owner && rc != TSS2_RC_SUCCESS && (pub->attributes & TPMA_NV_AUTHREAD) &&
	    et_tpm_rc_base(rc) == TPM2_RC_BAD_AUTH) {
		/* The owner has a password: the index's empty auth still reads it. */
		et_log(ET_LOG_DEBUG, "owner read of 0x%08x refused (owner password set); reading "
		       "with the index's own authorisation", nv_index);
		rc = nv_read(ctx, nv, nv, pub->dataSize, &data);
	}
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "reading NV index 0x%08x", nv_index);
		return et_tpm_fail_ctx(ctx, rc, nv_index, what);
	}
	*ret = data;
	return 0;
}

/* Reads and decodes: the value without trailing 0xFF/NUL padding and newline. */
static int read_serial(et_ctx *ctx, uint32_t nv_index, ESYS_TR nv, const TPMS_NV_PUBLIC *pub,
		       char ret[ET_SERIAL_MAX + 1])
{
	TPM2B_MAX_NV_BUFFER data = {0};
	size_t len;
	int r;

	if ((pub->attributes & TPMA_NV_TPM2_NT_MASK) != 0)
		return et_fail(ET_E_NV_ATTRIBUTES,
			       "NV index 0x%08x is a counter, bit field or extend index, not an "
			       "ordinary index holding a serial number", nv_index);
	if (pub->dataSize > SERIAL_MAX_INDEX_SIZE)
		return et_fail(ET_E_NV_ATTRIBUTES,
			       "NV index 0x%08x holds %u bytes: too large to be a serial index (at "
			       "most %d); give the right index with --index",
			       nv_index, pub->dataSize, SERIAL_MAX_INDEX_SIZE);
	if (!(pub->attributes & TPMA_NV_WRITTEN))
		return et_fail(ET_E_NV_UNWRITTEN,
			       "NV index 0x%08x is defined but was never written (reading it would "
			       "fail with TPM_RC_NV_UNINITIALIZED, 0x14A): provisioning was "
			       "interrupted. Run `edgetrust serial provision SERIAL` to complete it",
			       nv_index);
	r = read_data(ctx, nv_index, nv, pub, &data);
	if (r < 0)
		return r;
	len = data.size;
	while (len > 0 && (data.buffer[len - 1] == 0xff || data.buffer[len - 1] == 0x00 ||
			   data.buffer[len - 1] == '\n' || data.buffer[len - 1] == '\r'))
		len--;
	if (len == 0)
		return et_fail(ET_E_NV_UNWRITTEN,
			       "NV index 0x%08x was written but holds only padding, no serial number; "
			       "clear it with `edgetrust serial clear` and provision again",
			       nv_index);
	if (len > ET_SERIAL_MAX || memchr(data.buffer, 0, len)) {
		explicit_bzero(&data, sizeof(data));
		return et_fail(ET_E_INVALID,
			       "NV index 0x%08x holds %zu bytes that are not a serial number (at most "
			       "%d printable characters); it was written by something else",
			       nv_index, len, ET_SERIAL_MAX);
	}
	memcpy(ret, data.buffer, len);
	ret[len] = '\0';
	if (et_serial_validate(ret) < 0)
		return et_fail(ET_E_INVALID,
			       "NV index 0x%08x holds \"%.*s\", which is not a valid serial number "
			       "(only A-Z a-z 0-9 . _ -); it was written by something else",
			       nv_index, (int)len, ret);
	return 0;
}

int et_serial_read_attrs(et_ctx *ctx, uint32_t nv_index, char **ret, uint32_t *ret_attrs)
{
	TPMS_NV_PUBLIC pub = {0};
	ESYS_TR nv = ESYS_TR_NONE;
	char serial[ET_SERIAL_MAX + 1];
	char what[80];
	char *copy;
	TSS2_RC rc;
	int r;

	et_clear_error();
	if (!ctx || !ret)
		return et_fail(ET_E_INVALID, "et_serial_read: NULL argument");
	r = check_index(nv_index);
	if (r < 0)
		return r;
	rc = nv_open(ctx, nv_index, &nv, &pub);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "looking up NV index 0x%08x", nv_index);
		r = et_tpm_fail_handle(rc, nv_index, what);
		goto out;
	}
	if (ret_attrs)
		*ret_attrs = pub.attributes;
	r = read_serial(ctx, nv_index, nv, &pub, serial);
	if (r < 0)
		goto out;
	copy = strdup(serial);
	if (!copy) {
		r = et_fail(ET_E_NOMEM, "out of memory");
		goto out;
	}
	*ret = copy;
	r = 0;
out:
	et_tpm_close(ctx, &nv);
	return r;
}

int et_serial_read(et_ctx *ctx, uint32_t nv_index, char **ret)
{
	return et_serial_read_attrs(ctx, nv_index, ret, NULL);
}

/* The one NV_Write, through a policy session satisfying the write-once policy. */
static int write_serial(et_ctx *ctx, uint32_t nv_index, ESYS_TR nv, const char *serial,
			size_t len)
{
	const TPMT_SYM_DEF sym = {.algorithm = TPM2_ALG_NULL};
	TPM2B_MAX_NV_BUFFER data = {.size = (UINT16)len};
	ESYS_TR session = ESYS_TR_NONE;
	char what[96];
	TSS2_RC rc;
	int r;

	memcpy(data.buffer, serial, len);
	rc = et_esys_start_auth_session(ctx, ESYS_TR_NONE, TPM2_SE_POLICY, &sym, TPM2_ALG_SHA256,
					&session);
	if (rc != TSS2_RC_SUCCESS) {
		session = ESYS_TR_NONE;
		r = et_tpm_fail(rc, "starting the policy session for the serial write");
		goto out;
	}
	rc = et_esys_policy_command_code(ctx, session, TPM2_CC_NV_Write);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "PolicyCommandCode(NV_Write) for the serial write");
		goto out;
	}
	rc = et_esys_policy_nv_written(ctx, session, TPM2_NO);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "PolicyNvWritten(NO) for the serial write");
		goto out;
	}
	/* The TPM ends the session itself when the write succeeds: no FlushContext needed. */
	rc = Esys_TRSess_SetAttributes(ctx->esys, session, 0, TPMA_SESSION_CONTINUESESSION);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "setting the policy session's attributes");
		goto out;
	}
	rc = et_esys_nv_write(ctx, nv, nv, session, &data, 0);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "writing the serial to NV index 0x%08x", nv_index);
		r = et_tpm_fail_handle(rc, nv_index, what);
		goto out;
	}
	/* ESAPI has forgotten the session with the TPM (continueSession was clear). */
	session = ESYS_TR_NONE;
	r = 0;
out:
	et_tpm_flush(ctx, &session);
	return r;
}

int et_serial_provision(et_ctx *ctx, uint32_t nv_index, const char *serial, bool *ret_changed)
{
	return et_serial_provision_flags(ctx, nv_index, serial, 0, ret_changed);
}

int et_serial_provision_flags(et_ctx *ctx, uint32_t nv_index, const char *serial,
			      unsigned flags, bool *ret_changed)
{
	size_t len;
	TPM2B_AUTH empty = {0};
	TPM2B_NV_PUBLIC def = {0};
	TPMS_NV_PUBLIC pub = {0};
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc, define_rc;
	char existing[ET_SERIAL_MAX + 1];
	char what[96];
	int r;

	et_clear_error();
	if (!ctx)
		return et_fail(ET_E_INVALID, "et_serial_provision: NULL context");
	if (flags & ~ET_SERIAL_NO_DA)
		return et_fail(ET_E_INVALID, "et_serial_provision_flags: unknown flags 0x%x",
			       flags & ~ET_SERIAL_NO_DA);
	r = check_index(nv_index);
	if (r < 0)
		return r;
	len = serial ? strnlen(serial, ET_SERIAL_MAX + 1) : 0;
	if (len > ET_SERIAL_MAX)
		return et_fail(ET_E_TOO_LARGE,
			       "the serial number is longer than %d characters; it must fit one "
			       "NV_Write on every TPM and stay usable as an MQTT topic level",
			       ET_SERIAL_MAX);
	r = et_serial_validate(serial);
	if (r < 0)
		return r;

	/*
	 * Define first: on a fresh TPM that is the only lookup needed. NV_DEFINED (or an owner
	 * password we do not have) sends us to the existing index instead.
	 */
	def.nvPublic.nvIndex = nv_index;
	def.nvPublic.nameAlg = TPM2_ALG_SHA256;
	def.nvPublic.attributes = SERIAL_ATTRS | ((flags & ET_SERIAL_NO_DA) ? TPMA_NV_NO_DA : 0);
	def.nvPublic.authPolicy.size = sizeof(write_once_policy);
	memcpy(def.nvPublic.authPolicy.buffer, write_once_policy, sizeof(write_once_policy));
	def.nvPublic.dataSize = (UINT16)(len > SERIAL_MIN_SIZE ? len : SERIAL_MIN_SIZE);
	define_rc = et_esys_nv_define_space(ctx, ESYS_TR_RH_OWNER, &empty, &def, &nv);
	if (define_rc == TSS2_RC_SUCCESS) {
		et_log(ET_LOG_INFO, "defined NV index 0x%08x (%u bytes, write-once policy%s)",
		       nv_index, def.nvPublic.dataSize,
		       (flags & ET_SERIAL_NO_DA) ? ", no_da" : "");
		r = write_serial(ctx, nv_index, nv, serial, len);
		if (r == 0)
			et_log(ET_LOG_INFO, "wrote serial %s to NV index 0x%08x", serial, nv_index);
		goto out_changed;
	}
	nv = ESYS_TR_NONE;
	if (et_tpm_rc_base(define_rc) != TPM2_RC_NV_DEFINED &&
	    et_tpm_rc_base(define_rc) != TPM2_RC_BAD_AUTH &&
	    et_tpm_rc_base(define_rc) != TPM2_RC_AUTH_FAIL) {
		snprintf(what, sizeof(what), "defining NV index 0x%08x", nv_index);
		r = et_tpm_fail_handle(define_rc, nv_index, what);
		goto out;
	}

	rc = nv_open(ctx, nv_index, &nv, &pub);
	if (rc != TSS2_RC_SUCCESS) {
		if (et_tpm_rc_base(rc) == TPM2_RC_HANDLE &&
		    et_tpm_rc_base(define_rc) != TPM2_RC_NV_DEFINED) {
			/* Absent, and we may not define it: report the define's refusal. */
			r = et_fail(ET_E_AUTH,
				    "defining NV index 0x%08x needs the owner hierarchy's "
				    "authorisation, and the owner has a password: provision the serial "
				    "before the owner password is set, or clear it with "
				    "`tpm2_changeauth -c o -p <password>` [%s, 0x%x]",
				    nv_index, Tss2_RC_Decode(define_rc), define_rc);
			goto out;
		}
		snprintf(what, sizeof(what), "looking up NV index 0x%08x", nv_index);
		r = et_tpm_fail_handle(rc, nv_index, what);
		goto out;
	}
	r = check_public(nv_index, &pub);
	if (r < 0)
		goto out;
	/* Both variants are serial indices; never redefine one to change the bit (a written
	 * serial cannot be rewritten), only say which one the device has. */
	if (!(pub.attributes & TPMA_NV_NO_DA) != !(flags & ET_SERIAL_NO_DA))
		et_log(ET_LOG_WARNING,
		       "NV index 0x%08x already exists %s TPMA_NV_NO_DA; keeping it as it is (to "
		       "change that, clear it with `edgetrust serial clear` and provision again)",
		       nv_index, (pub.attributes & TPMA_NV_NO_DA) ? "with" : "without");
	if (pub.attributes & TPMA_NV_WRITTEN) {
		r = read_serial(ctx, nv_index, nv, &pub, existing);
		if (r < 0)
			goto out;
		if (strcmp(existing, serial) != 0) {
			r = et_fail(ET_E_NV_MISMATCH,
				    "NV index 0x%08x already holds serial \"%s\", not \"%s\"; the "
				    "write-once policy forbids changing it. If this device really is "
				    "being renumbered, clear it first with `edgetrust serial clear` "
				    "(owner authorisation) and provision again",
				    nv_index, existing, serial);
			goto out;
		}
		et_log(ET_LOG_INFO, "NV index 0x%08x already holds serial %s: nothing to do",
		       nv_index, serial);
		if (ret_changed)
			*ret_changed = false;
		r = 0;
		goto out;
	}
	/* Defined but never written: an earlier run stopped between define and write. */
	if (pub.dataSize < len) {
		r = et_fail(ET_E_TOO_LARGE,
			    "NV index 0x%08x is defined with %u bytes but the serial has %zu; clear it "
			    "with `edgetrust serial clear` and provision again (the index is then "
			    "defined with the serial's size)",
			    nv_index, pub.dataSize, len);
		goto out;
	}
	et_log(ET_LOG_INFO, "NV index 0x%08x is defined but unwritten: completing the write",
	       nv_index);
	r = write_serial(ctx, nv_index, nv, serial, len);
out_changed:
	if (r == 0 && ret_changed)
		*ret_changed = true;
out:
	et_tpm_close(ctx, &nv);
	return r;
}

int et_serial_clear(et_ctx *ctx, uint32_t nv_index, const uint8_t *owner_auth,
		    size_t owner_auth_len)
{
	TPM2B_AUTH auth = {0};
	TPMS_NV_PUBLIC pub = {0};
	ESYS_TR nv = ESYS_TR_NONE;
	char what[80];
	TSS2_RC rc;
	int r;

	et_clear_error();
	if (!ctx)
		return et_fail(ET_E_INVALID, "et_serial_clear: NULL context");
	r = check_index(nv_index);
	if (r < 0)
		return r;
	if (owner_auth_len > sizeof(auth.buffer))
		return et_fail(ET_E_INVALID, "the owner password is longer than %zu bytes",
			       sizeof(auth.buffer));
	if (owner_auth_len && !owner_auth)
		return et_fail(ET_E_INVALID, "et_serial_clear: owner_auth is NULL");
	/* Refuse to remove an index that is not a serial index: a typo in --index must not
	 * destroy someone else's data. */
	rc = nv_open(ctx, nv_index, &nv, &pub);
	if (rc != TSS2_RC_SUCCESS) {
		snprintf(what, sizeof(what), "looking up NV index 0x%08x", nv_index);
		r = et_tpm_fail_handle(rc, nv_index, what);
		goto out;
	}
	r = check_public(nv_index, &pub);
	if (r < 0)
		goto out;
	auth.size = (UINT16)owner_auth_len;
	if (owner_auth_len)
		memcpy(auth.buffer, owner_auth, owner_auth_len);
	rc = Esys_TR_SetAuth(ctx->esys, ESYS_TR_RH_OWNER, &auth);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "setting the owner password for the NV undefine");
		goto out;
	}
	rc = et_esys_nv_undefine_space(ctx, ESYS_TR_RH_OWNER, nv);
	if (rc == TSS2_RC_SUCCESS)
		nv = ESYS_TR_NONE; /* ESAPI dropped the TR with the index */
	if (rc != TSS2_RC_SUCCESS) {
		if (et_tpm_rc_base(rc) == TPM2_RC_BAD_AUTH || et_tpm_rc_base(rc) == TPM2_RC_AUTH_FAIL)
			r = et_fail(ET_E_AUTH,
				    "removing NV index 0x%08x needs the owner hierarchy's "
				    "authorisation, and the TPM refused the %s: give the owner password "
				    "with --owner-auth-file FILE (or - for stdin) [%s, 0x%x]",
				    nv_index, owner_auth_len ? "password given" : "empty password",
				    Tss2_RC_Decode(rc), rc);
		else {
			snprintf(what, sizeof(what), "removing NV index 0x%08x", nv_index);
			r = et_tpm_fail_handle(rc, nv_index, what);
		}
		goto out;
	}
	et_log(ET_LOG_INFO, "removed NV index 0x%08x", nv_index);
	r = 0;
out:
	/* ESAPI keeps its own copy of the owner password: overwrite it with the empty one. */
	explicit_bzero(&auth, sizeof(auth));
	(void)Esys_TR_SetAuth(ctx->esys, ESYS_TR_RH_OWNER, &auth);
	et_tpm_close(ctx, &nv);
	return r;
}
