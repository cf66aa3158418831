/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decryption inside the TPM: TPM2_RSA_Decrypt with the device key in a salted HMAC session with
 * response encryption, so the plaintext (an envelope's AES key, or the article's bare secret)
 * crosses the SPI bus AES-128-CFB encrypted. Used by et_envelope_open and et_raw_decrypt.
 *
 * Three TPM commands: ReadPublic of the device key (its public gives the envelope fingerprint,
 * its name the session HMAC, and it is the salt key), StartAuthSession, RSA_Decrypt. The session
 * ends with the command (continueSession clear), so nothing is left to flush.
 *
 * Why the salt is encrypted to the device key and not to the SRK: the SRK costs one more
 * ReadPublic per boot (its public is needed to encrypt the salt) and buys nothing here. Against
 * a passive listener on the bus both keep the salt secret. Against someone who can send TPM
 * commands neither helps: the device key has an empty authValue, so such an attacker can ask
 * the TPM to decrypt the wrapped key directly. And on the SLB9670 an RSA-2048 OAEP decryption
 * (~167 ms) is no slower than the P-256 ECDH (~232 ms) an SRK salt needs (wolfTPM's published
 * SLB9670 figures). docs/envelope.md carries the same reasoning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "keys.h"

/* The device key, checked, with its public area. */
static int open_key(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret_tr, TPM2B_PUBLIC *ret_pub)
{
	ESYS_TR tr = ESYS_TR_NONE;
	int r;

	r = et_tpm_check_persistent(handle, "key");
	if (r < 0)
		return r;
	r = et_tpm_tr_from_handle(ctx, handle, &tr);
	if (r < 0)
		return r;
	r = et_tpm_tr_public(ctx, tr, ret_pub);
	if (r == 0)
		r = et_tpm_key_check(ret_pub, handle, ET_KEY_USE_DECRYPT);
	if (r < 0) {
		et_tpm_close(ctx, &tr);
		return r;
	}
	*ret_tr = tr;
	return 0;
}

/* Whether an RSA_Decrypt failure means "this block does not decrypt under this key with this
 * padding" (libtpms answers VALUE, SIZE or, for an OAEP digest mismatch, FAILURE). */
static bool block_refused(TSS2_RC rc)
{
	TPM2_RC base = et_tpm_rc_base(rc); /* parameter number already stripped */

	return base == TPM2_RC_VALUE || base == TPM2_RC_SIZE || base == TPM2_RC_FAILURE ||
	       base == TPM2_RC_SCHEME;
}

/*
 * RSA_Decrypt of one block with key_tr in a fresh session salted with key_tr itself and with
 * response encryption. A block the TPM refuses (bad padding: altered, wrong key or wrong mode)
 * is reported as refused_err with refused_msg; other failures keep their TPM error class.
 */
static int tpm_decrypt(et_ctx *ctx, ESYS_TR key_tr, const TPMT_RSA_DECRYPT *scheme,
		       const uint8_t *ct, size_t ct_len, int refused_err, const char *refused_msg,
		       et_secret **ret)
{
	ESYS_CONTEXT *esys = et_ctx_esys(ctx);
	const TPMT_SYM_DEF sym = {
	    .algorithm = TPM2_ALG_AES,
	    .keyBits.aes = 128,
	    .mode.aes = TPM2_ALG_CFB,
	};
	const TPM2B_DATA label = {.size = 0};
	TPM2B_PUBLIC_KEY_RSA cipher;
	TPM2B_PUBLIC_KEY_RSA *msg = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	et_secret *pt = NULL;
	TSS2_RC rc;
	int r;

	if (ct_len > sizeof(cipher.buffer)) {
		r = et_fail(ET_E_TOO_LARGE, "ciphertext of %zu bytes is larger than any RSA block",
			    ct_len);
		goto out;
	}
	cipher.size = (UINT16)ct_len;
	memcpy(cipher.buffer, ct, ct_len);
	rc = et_esys_start_auth_session(ctx, key_tr, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &session);
	if (rc != TSS2_RC_SUCCESS) {
		session = ESYS_TR_NONE;
		r = et_tpm_fail(rc, "starting a session salted with the device key");
		goto out;
	}
	/* Response encryption only; continueSession clear: the TPM ends the session with the
	 * command, which saves a FlushContext on every boot. */
	rc = Esys_TRSess_SetAttributes(esys, session, TPMA_SESSION_ENCRYPT, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		r = et_tpm_fail(rc, "setting session attributes");
		goto out;
	}
	rc = et_esys_rsa_decrypt(ctx, key_tr, session, &cipher, scheme, &label, &msg);
	if (rc != TSS2_RC_SUCCESS) {
		/* The TPM keeps a session when the command fails: flush it (below). */
		if (block_refused(rc))
			/* Not Tss2_RC_Decode's text: for 0x101 it speaks of a TPM failure mode,
			 * while libtpms merely reports a bad padding with it. */
			r = et_fail(refused_err, "%s [TPM2_RSA_Decrypt answered 0x%x]", refused_msg,
				    rc);
		else
			r = et_tpm_fail(rc, "decrypting with the TPM key (TPM2_RSA_Decrypt)");
		goto out;
	}
	/* Success ended the session in the TPM; ESAPI still holds its object: forget it without
	 * a TPM command (a long-running agent would otherwise collect one per open). */
	et_tpm_close(ctx, &session);
	r = et_secret_new(msg->size, &pt);
	if (r < 0)
		goto out;
	memcpy(et_secret_data(pt), msg->buffer, msg->size);
	*ret = pt;
	r = 0;
out:
	if (msg) {
		explicit_bzero(msg, sizeof(*msg));
		Esys_Free(msg);
	}
	explicit_bzero(&cipher, sizeof(cipher));
	et_tpm_flush(ctx, &session);
	return r;
}

int et_envelope_open(et_ctx *ctx, uint32_t key_handle, const char *expected_serial,
		     const uint8_t *blob, size_t blob_len, et_secret **ret_plaintext,
		     et_envelope_info *ret_info)
{
	const TPMT_RSA_DECRYPT oaep = {
	    .scheme = TPM2_ALG_OAEP,
	    .details.oaep.hashAlg = TPM2_ALG_SHA256,
	};
	et_envelope_view v;
	ESYS_TR key = ESYS_TR_NONE;
	TPM2B_PUBLIC pub;
	EVP_PKEY *pkey = NULL;
	et_secret *aes_key = NULL, *pt = NULL;
	uint8_t fpr[ET_FPR_LEN];
	int r;

	et_clear_error();
	if (!ctx || !ret_plaintext || !expected_serial)
		return et_fail(ET_E_INVALID, "et_envelope_open: missing argument");
	/* 1. the whole blob parses, before the TPM is touched */
	r = et_envelope_parse(blob, blob_len, &v);
	if (r < 0)
		goto out;
	/* 2. it is for this serial (still no TPM command) and this key (one ReadPublic gives
	 * the fingerprint) */
	r = et_envelope_check_serial(&v, expected_serial);
	if (r < 0)
		goto out;
	r = open_key(ctx, key_handle, &key, &pub);
	if (r < 0)
		goto out;
	r = et_tpm_rsa_pkey(&pub, &pkey);
	if (r < 0)
		goto out;
	r = et_pkey_fingerprint(pkey, fpr);
	if (r < 0)
		goto out;
	r = et_envelope_check_recipient(&v, expected_serial, fpr, pub.publicArea.unique.rsa.size);
	if (r < 0)
		goto out;
	/* 3. unwrap inside the TPM */
	r = tpm_decrypt(ctx, key, &oaep, v.wrapped, v.wrapped_len, ET_E_ENVELOPE_AUTH,
			"the TPM refused to unwrap the envelope key (RSA-OAEP check failed): the "
			"envelope was altered; fetch the credentials again",
			&aes_key);
	if (r < 0)
		goto out;
	/* 4. decrypt and authenticate in software */
	r = et_envelope_decrypt(&v, et_secret_data(aes_key), et_secret_len(aes_key), &pt);
	if (r < 0)
		goto out;
	*ret_plaintext = pt;
	if (ret_info)
		*ret_info = v.info;
	r = 0;
out:
	et_secret_free(aes_key);
	EVP_PKEY_free(pkey);
	et_tpm_close(ctx, &key);
	return r;
}

int et_raw_decrypt(et_ctx *ctx, uint32_t key_handle, et_raw_mode mode, const uint8_t *ct,
		   size_t ct_len, et_secret **ret_plaintext)
{
	TPMT_RSA_DECRYPT scheme;
	ESYS_TR key = ESYS_TR_NONE;
	TPM2B_PUBLIC pub;
	et_secret *pt = NULL;
	char refused[256];
	int r;

	et_clear_error();
	if (!ctx || !ret_plaintext || (!ct && ct_len))
		return et_fail(ET_E_INVALID, "et_raw_decrypt: missing argument");
	memset(&scheme, 0, sizeof(scheme));
	if (mode == ET_RAW_PKCS1) {
		scheme.scheme = TPM2_ALG_RSAES;
	} else if (mode == ET_RAW_OAEP) {
		scheme.scheme = TPM2_ALG_OAEP;
		scheme.details.oaep.hashAlg = TPM2_ALG_SHA256;
	} else {
		return et_fail(ET_E_INVALID, "unknown raw decryption mode %d", (int)mode);
	}
	r = open_key(ctx, key_handle, &key, &pub);
	if (r < 0)
		goto out;
	if (ct_len != pub.publicArea.unique.rsa.size) {
		r = et_fail(ET_E_INVALID,
			    "the ciphertext is %zu bytes but one block of the key at 0x%08x is %u "
			    "bytes; give the whole output of `openssl pkeyutl -encrypt`",
			    ct_len, key_handle, pub.publicArea.unique.rsa.size);
		goto out;
	}
	snprintf(refused, sizeof(refused),
		 "the TPM could not decrypt the block: it was not encrypted to the key at 0x%08x, "
		 "was altered, or used the other padding (%s; try --raw %s)",
		 key_handle,
		 mode == ET_RAW_PKCS1 ? "PKCS#1 v1.5 was asked" : "OAEP-SHA256 was asked",
		 mode == ET_RAW_PKCS1 ? "oaep" : "pkcs1");
	r = tpm_decrypt(ctx, key, &scheme, ct, ct_len, ET_E_CRYPTO, refused, &pt);
	if (r < 0)
		goto out;
	*ret_plaintext = pt;
	r = 0;
out:
	et_tpm_close(ctx, &key);
	return r;
}
