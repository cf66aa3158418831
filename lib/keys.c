/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Persistent keys: the ECC P-256 storage root key (TCG provisioning-guidance template) at
 * 0x81000001, the RSA-2048 decrypt-only device key under it at 0x81000002, and the device
 * key's public half as PEM (byte-identical to `tpm2_readpublic -f pem`) with its fingerprint.
 * Creation is idempotent: an existing fit key is kept, an unfit one is reported, never replaced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include "keys.h"
#include "pem.h"

#define ATTRS_COMMON                                                                               \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |        \
	 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA)

/*
 * TCG "TPM 2.0 Provisioning Guidance", ECC NIST P-256 SRK template: a restricted decryption
 * (storage) key, AES-128-CFB for its children, no scheme or KDF, and an all-zero unique field of
 * the curve's size, so that every tool that follows the guidance derives the same key. noDA,
 * because its auth is empty and a power cut must never count as a dictionary attack.
 */
/* clang-format off */
static const TPM2B_PUBLIC srk_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = ATTRS_COMMON | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
		.parameters.eccDetail = {
			.symmetric = {
				.algorithm = TPM2_ALG_AES,
				.keyBits.aes = 128,
				.mode.aes = TPM2_ALG_CFB,
			},
			.scheme.scheme = TPM2_ALG_NULL,
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
		.unique.ecc = {
			.x.size = 32,
			.y.size = 32,
		},
	},
};

/*
 * The device key: RSA-2048, decrypt only (a key that cannot sign cannot be abused as a signing
 * oracle), scheme NULL so the caller picks OAEP-SHA256 (envelopes) or PKCS#1 v1.5 (the
 * article's bare openssl ciphertext) per RSA_Decrypt, exponent 0 = 65537.
 */
static const TPM2B_PUBLIC device_key_template = {
	.publicArea = {
		.type = TPM2_ALG_RSA,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = ATTRS_COMMON | TPMA_OBJECT_DECRYPT,
		.parameters.rsaDetail = {
			.symmetric.algorithm = TPM2_ALG_NULL,
			.scheme.scheme = TPM2_ALG_NULL,
			.keyBits = 2048,
			.exponent = 0,
		},
	},
};
/* clang-format on */

int et_tpm_check_persistent(TPM2_HANDLE handle, const char *what)
{
	if (handle < 0x81000000u || handle > 0x817fffffu)
		return et_fail(ET_E_INVALID,
			       "%s handle 0x%08x is not a persistent owner handle "
			       "(0x81000000..0x817fffff)",
			       what, handle);
	return 0;
}

static const EVP_MD *name_md(TPMI_ALG_HASH alg)
{
	switch (alg) {
	case TPM2_ALG_SHA1:
		return EVP_sha1();
	case TPM2_ALG_SHA256:
		return EVP_sha256();
	case TPM2_ALG_SHA384:
		return EVP_sha384();
	case TPM2_ALG_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* Name = nameAlg || H(TPMT_PUBLIC); true when pub is what the TPM named. */
static bool public_matches_name(const TPM2B_PUBLIC *pub, const TPM2B_NAME *name)
{
	uint8_t buf[sizeof(TPMT_PUBLIC)];
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	size_t off = 0;
	const EVP_MD *md = name_md(pub->publicArea.nameAlg);

	if (!md || Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &off) !=
		       TSS2_RC_SUCCESS)
		return false;
	if (!EVP_Digest(buf, off, digest, &dlen, md, NULL))
		return false;
	return name->size == 2 + dlen && name->name[0] == (pub->publicArea.nameAlg >> 8) &&
	       name->name[1] == (pub->publicArea.nameAlg & 0xff) &&
	       memcmp(name->name + 2, digest, dlen) == 0;
}

/*
 * Esys_TR_FromTPMPublic already ran TPM2_ReadPublic and keeps the public area in the object's
 * metadata; the serialized ESYS_TR (the stable format tpm2-tools stores in its .ctx files:
 * handle, TPM2B_NAME, resource type, TPM2B_PUBLIC) gives it back without a second command. A
 * boot on a slow SPI TPM pays for every command, so this saves one per key.
 */
static bool public_from_metadata(ESYS_CONTEXT *esys, ESYS_TR tr, TPM2B_PUBLIC *ret)
{
	uint8_t *buf = NULL;
	size_t len = 0, off = 0;
	TPM2_HANDLE handle;
	TPM2B_NAME name;
	TPM2B_NAME *tr_name = NULL;
	UINT32 type;
	TPM2B_PUBLIC pub;
	bool ok = false;

	memset(&pub, 0, sizeof(pub));
	if (Esys_TR_Serialize(esys, tr, &buf, &len) != TSS2_RC_SUCCESS)
		goto out;
	if (Tss2_MU_TPM2_HANDLE_Unmarshal(buf, len, &off, &handle) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_NAME_Unmarshal(buf, len, &off, &name) != TSS2_RC_SUCCESS ||
	    Tss2_MU_UINT32_Unmarshal(buf, len, &off, &type) != TSS2_RC_SUCCESS ||
	    type != 1 /* IESYSC_KEY_RSRC */ ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &pub) != TSS2_RC_SUCCESS)
		goto out;
	if (Esys_TR_GetName(esys, tr, &tr_name) != TSS2_RC_SUCCESS ||
	    !public_matches_name(&pub, tr_name))
		goto out;
	*ret = pub;
	ok = true;
out:
	Esys_Free(tr_name);
	Esys_Free(buf);
	return ok;
}

int et_tpm_tr_public(et_ctx *ctx, ESYS_TR tr, TPM2B_PUBLIC *ret)
{
	ESYS_CONTEXT *esys = et_ctx_esys(ctx);
	TPM2B_PUBLIC *pub = NULL;
	TSS2_RC rc;

	if (public_from_metadata(esys, tr, ret))
		return 0;
	et_log(ET_LOG_DEBUG, "ESAPI object metadata not usable; reading the public area again");
	rc = et_esys_read_public(ctx, tr, &pub);
	if (rc != TSS2_RC_SUCCESS)
		return et_tpm_fail(rc, "reading a key's public area");
	*ret = *pub;
	Esys_Free(pub);
	return 0;
}

int et_tpm_probe_handle(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret)
{
	ESYS_TR tr = ESYS_TR_NONE;
	char what[96];
	TSS2_RC rc;

	rc = et_esys_tr_from_tpm_public(ctx, handle, &tr);
	if (rc == TSS2_RC_SUCCESS) {
		*ret = tr;
		return 0;
	}
	if (et_tpm_rc_base(rc) == TPM2_RC_HANDLE) {
		*ret = ESYS_TR_NONE;
		return 0;
	}
	snprintf(what, sizeof(what), "reading the public area of handle 0x%08x", handle);
	return et_tpm_fail_handle(rc, handle, what);
}

static const char *describe(const TPMT_PUBLIC *p)
{
	TPMA_OBJECT a = p->objectAttributes;
	bool sign = a & TPMA_OBJECT_SIGN_ENCRYPT, dec = a & TPMA_OBJECT_DECRYPT;
	bool restricted = a & TPMA_OBJECT_RESTRICTED;

	switch (p->type) {
	case TPM2_ALG_RSA:
		if (restricted && dec)
			return "an RSA storage (restricted decryption) key";
		if (restricted && sign)
			return "an RSA restricted signing (attestation) key";
		if (sign && dec)
			return "an RSA sign-and-decrypt key";
		if (sign)
			return "an RSA signing key";
		if (dec)
			return "an RSA decryption key";
		return "an RSA key without usage";
	case TPM2_ALG_ECC:
		if (restricted && dec)
			return "an ECC storage (restricted decryption) key";
		return sign ? "an ECC signing key" : "an ECC key";
	case TPM2_ALG_KEYEDHASH:
		return "a keyed-hash (HMAC or sealed data) object";
	case TPM2_ALG_SYMCIPHER:
		return "a symmetric key";
	default:
		return "an object of unknown type";
	}
}

int et_tpm_key_check(const TPM2B_PUBLIC *pub, TPM2_HANDLE handle, et_key_use use)
{
	const TPMT_PUBLIC *p = &pub->publicArea;
	TPMA_OBJECT a = p->objectAttributes;
	bool rsa = p->type == TPM2_ALG_RSA, dec = a & TPMA_OBJECT_DECRYPT;
	bool sign = a & TPMA_OBJECT_SIGN_ENCRYPT, restricted = a & TPMA_OBJECT_RESTRICTED;

	switch (use) {
	case ET_KEY_USE_DEVICE:
		if (rsa && dec && !sign && !restricted)
			return 0;
		return et_fail(ET_E_KEY_TYPE,
			       "handle 0x%08x holds %s, not an RSA decrypt-only device key; it was "
			       "made by another tool. Use another handle (--handle), or evict the "
			       "object if nothing needs it (tpm2_evictcontrol -C o -c 0x%08x)",
			       handle, describe(p), handle);
	case ET_KEY_USE_DECRYPT:
		if (rsa && dec && !restricted)
			return 0;
		return et_fail(ET_E_KEY_TYPE,
			       "handle 0x%08x holds %s, which cannot decrypt RSA ciphertexts; give "
			       "the handle of the device key (--handle, default 0x%08x)",
			       handle, describe(p), ET_DEVICE_KEY_HANDLE_DEFAULT);
	case ET_KEY_USE_PARENT:
		if (dec && restricted && !sign &&
		    (p->type == TPM2_ALG_RSA || p->type == TPM2_ALG_ECC))
			return 0;
		return et_fail(ET_E_KEY_TYPE,
			       "handle 0x%08x holds %s, not a storage root key; the SRK handle is "
			       "taken by another tool's object: evict it if nothing needs it "
			       "(tpm2_evictcontrol -C o -c 0x%08x)",
			       handle, describe(p), handle);
	}
	return et_fail(ET_E_INTERNAL, "unknown key use %d", (int)use);
}

int et_tpm_rsa_pkey(const TPM2B_PUBLIC *pub, EVP_PKEY **ret)
{
	const TPMT_PUBLIC *p = &pub->publicArea;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	int r;

	if (p->type != TPM2_ALG_RSA || p->unique.rsa.size == 0)
		return et_fail(ET_E_KEY_TYPE, "the key is %s, not RSA", describe(p));
	n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
	e = BN_new();
	bld = OSSL_PARAM_BLD_new();
	pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!n || !e || !bld || !pc ||
	    !BN_set_word(e, p->parameters.rsaDetail.exponent ? p->parameters.rsaDetail.exponent
							     : 65537) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) || EVP_PKEY_fromdata_init(pc) <= 0 ||
	    EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		r = et_fail(ET_E_CRYPTO,
			    "cannot turn the TPM's RSA public key into an OpenSSL key");
		goto out;
	}
	*ret = pkey;
	r = 0;
out:
	ERR_clear_error();
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pc);
	BN_free(n);
	BN_free(e);
	return r;
}

static void set_owner_auth(ESYS_CONTEXT *esys, const uint8_t *auth, size_t len)
{
	TPM2B_AUTH a = {.size = 0};

	if (auth && len && len <= sizeof(a.buffer)) {
		a.size = (UINT16)len;
		memcpy(a.buffer, auth, len);
	}
	(void)Esys_TR_SetAuth(esys, ESYS_TR_RH_OWNER, &a);
	explicit_bzero(&a, sizeof(a));
}

/* Makes a loaded object persistent at handle under the owner hierarchy (owner auth already
 * set); what names it in messages. On failure *ret_tr is ESYS_TR_NONE. */
static int persist(et_ctx *ctx, ESYS_TR transient, TPM2_HANDLE handle, const char *what,
		   ESYS_TR *ret_tr)
{
	char msg[96];
	TSS2_RC rc;

	rc = et_esys_evict_control(ctx, ESYS_TR_RH_OWNER, transient, handle, ret_tr);
	if (rc != TSS2_RC_SUCCESS) {
		*ret_tr = ESYS_TR_NONE;
		snprintf(msg, sizeof(msg), "persisting the %s at 0x%08x", what, handle);
		return et_tpm_fail_handle(rc, handle, msg);
	}
	et_log(ET_LOG_INFO, "%s created at 0x%08x", what, handle);
	return 0;
}

int et_srk_ensure_tr(et_ctx *ctx, TPM2_HANDLE srk_handle, const uint8_t *owner_auth,
		     size_t owner_auth_len, bool *ret_created, ESYS_TR *ret_tr)
{
	ESYS_CONTEXT *esys = et_ctx_esys(ctx);
	ESYS_TR tr = ESYS_TR_NONE, transient = ESYS_TR_NONE;
	const TPM2B_SENSITIVE_CREATE in_sensitive = {.size = 0};
	const TPM2B_DATA outside_info = {.size = 0};
	const TPML_PCR_SELECTION creation_pcr = {.count = 0};
	TPM2B_PUBLIC pub;
	bool created = false;
	TSS2_RC rc;
	int r;

	if (!esys)
		return et_fail(ET_E_INVALID, "no TPM context");
	if (owner_auth_len > sizeof(((TPM2B_AUTH *)0)->buffer))
		return et_fail(ET_E_INVALID, "owner authorisation longer than %zu bytes",
			       sizeof(((TPM2B_AUTH *)0)->buffer));
	r = et_tpm_check_persistent(srk_handle, "SRK");
	if (r < 0)
		return r;
	r = et_tpm_probe_handle(ctx, srk_handle, &tr);
	if (r < 0)
		goto out;
	if (tr != ESYS_TR_NONE) {
		r = et_tpm_tr_public(ctx, tr, &pub);
		if (r == 0)
			r = et_tpm_key_check(&pub, srk_handle, ET_KEY_USE_PARENT);
		goto out;
	}

	/* Not there: derive it from the owner seed (deterministic) and persist it. A power cut
	 * before EvictControl loses only the transient copy; the rerun derives the same key. */
	set_owner_auth(esys, owner_auth, owner_auth_len);
	rc = et_esys_create_primary(ctx, ESYS_TR_RH_OWNER, &in_sensitive, &srk_template,
				    &outside_info, &creation_pcr, &transient);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "creating the storage root key (ECC P-256) under the owner "
				    "hierarchy");
		goto out;
	}
	r = persist(ctx, transient, srk_handle, "storage root key", &tr);
	if (r < 0)
		goto out;
	created = true;
out:
	set_owner_auth(esys, NULL, 0);
	et_tpm_flush(ctx, &transient);
	if (r == 0) {
		if (ret_created)
			*ret_created = created;
		if (ret_tr) {
			*ret_tr = tr;
			tr = ESYS_TR_NONE;
		}
	}
	et_tpm_close(ctx, &tr);
	return r;
}

int et_srk_ensure(et_ctx *ctx, uint32_t srk_handle, bool *ret_created)
{
	et_clear_error();
	return et_srk_ensure_tr(ctx, srk_handle, NULL, 0, ret_created, NULL);
}

int et_key_create_auth(et_ctx *ctx, TPM2_HANDLE key_handle, const uint8_t *owner_auth,
		       size_t owner_auth_len, bool *ret_created)
{
	ESYS_CONTEXT *esys = et_ctx_esys(ctx);
	ESYS_TR tr = ESYS_TR_NONE, srk = ESYS_TR_NONE, transient = ESYS_TR_NONE;
	const TPM2B_SENSITIVE_CREATE in_sensitive = {.size = 0};
	const TPM2B_DATA outside_info = {.size = 0};
	const TPML_PCR_SELECTION creation_pcr = {.count = 0};
	TPM2B_PRIVATE *out_private = NULL;
	TPM2B_PUBLIC *out_public = NULL;
	TPM2B_PUBLIC pub;
	bool created = false;
	TSS2_RC rc;
	int r;

	if (!esys)
		return et_fail(ET_E_INVALID, "no TPM context");
	r = et_tpm_check_persistent(key_handle, "device key");
	if (r < 0)
		return r;
	if (key_handle == ET_SRK_HANDLE_DEFAULT)
		return et_fail(ET_E_INVALID, "handle 0x%08x is reserved for the storage root key",
			       key_handle);
	r = et_tpm_probe_handle(ctx, key_handle, &tr);
	if (r < 0)
		goto out;
	if (tr != ESYS_TR_NONE) {
		/* Idempotent: keep a fit key (a device's registered identity), never replace. */
		r = et_tpm_tr_public(ctx, tr, &pub);
		if (r == 0)
			r = et_tpm_key_check(&pub, key_handle, ET_KEY_USE_DEVICE);
		goto out;
	}

	r = et_srk_ensure_tr(ctx, ET_SRK_HANDLE_DEFAULT, owner_auth, owner_auth_len, NULL, &srk);
	if (r < 0)
		goto out;
	/* A power cut between Create and EvictControl leaves nothing behind (the blob is only in
	 * our memory, the loaded copy is transient): the rerun simply creates a new key. */
	rc = et_esys_create(ctx, srk, &in_sensitive, &device_key_template, &outside_info,
			    &creation_pcr, &out_private, &out_public);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "creating the RSA-2048 device key under the storage root key");
		goto out;
	}
	rc = et_esys_load(ctx, srk, out_private, out_public, &transient);
	if (rc != TSS2_RC_SUCCESS) {
		transient = ESYS_TR_NONE;
		r = et_tpm_fail(rc, "loading the new device key");
		goto out;
	}
	set_owner_auth(esys, owner_auth, owner_auth_len);
	r = persist(ctx, transient, key_handle, "device key", &tr);
	if (r < 0)
		goto out;
	created = true;
out:
	set_owner_auth(esys, NULL, 0);
	et_tpm_flush(ctx, &transient);
	et_tpm_close(ctx, &tr);
	et_tpm_close(ctx, &srk);
	Esys_Free(out_private);
	Esys_Free(out_public);
	if (r == 0 && ret_created)
		*ret_created = created;
	return r;
}

int et_key_create(et_ctx *ctx, uint32_t key_handle, bool *ret_created)
{
	et_clear_error();
	return et_key_create_auth(ctx, key_handle, NULL, 0, ret_created);
}

int et_key_public_pem(et_ctx *ctx, uint32_t key_handle, char **ret_pem, char ret_fpr[65])
{
	ESYS_TR tr = ESYS_TR_NONE;
	TPM2B_PUBLIC pub;
	EVP_PKEY *pkey = NULL;
	uint8_t fpr[ET_FPR_LEN];
	char *pem = NULL;
	int r;

	et_clear_error();
	if (!ctx || !ret_pem)
		return et_fail(ET_E_INVALID, "et_key_public_pem: NULL argument");
	r = et_tpm_check_persistent(key_handle, "key");
	if (r < 0)
		return r;
	r = et_tpm_tr_from_handle(ctx, key_handle, &tr);
	if (r < 0)
		goto out;
	r = et_tpm_tr_public(ctx, tr, &pub);
	if (r < 0)
		goto out;
	if (pub.publicArea.type != TPM2_ALG_RSA) {
		r = et_fail(ET_E_KEY_TYPE, "handle 0x%08x holds %s, not an RSA key", key_handle,
			    describe(&pub.publicArea));
		goto out;
	}
	r = et_tpm_rsa_pkey(&pub, &pkey);
	if (r < 0)
		goto out;
	r = et_pkey_fingerprint(pkey, fpr);
	if (r < 0)
		goto out;
	r = et_pem_write_public(pkey, &pem);
	if (r < 0)
		goto out;
	*ret_pem = pem;
	if (ret_fpr)
		et_fpr_hex(fpr, ret_fpr);
	r = 0;
out:
	et_tpm_close(ctx, &tr);
	EVP_PKEY_free(pkey);
	return r;
}
