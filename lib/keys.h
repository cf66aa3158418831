/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private helpers around persistent TPM keys, shared by keys.c (SRK, device key, public
 * export), unwrap.c (RSA_Decrypt in a salted session) and status.c.
 */
#ifndef EDGETRUST_KEYS_H
#define EDGETRUST_KEYS_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <tss2/tss2_esys.h>

#include "tpm.h"

/* What a key at a handle must be good for. */
typedef enum et_key_use {
	ET_KEY_USE_DEVICE,  /* our device key: RSA, decrypt, neither sign nor restricted */
	ET_KEY_USE_DECRYPT, /* any RSA key RSA_Decrypt accepts (e.g. the article's sign|decrypt) */
	ET_KEY_USE_PARENT,  /* a storage parent / salt key: restricted decrypt, not sign */
} et_key_use;

/*
 * The public area ESAPI cached for tr when it was made with Esys_TR_FromTPMPublic, read from
 * the object's serialized metadata (no TPM command). Checked against the object's name; on any
 * mismatch it falls back to one TPM2_ReadPublic.
 */
ET_HIDDEN int et_tpm_tr_public(et_ctx *ctx, ESYS_TR tr, TPM2B_PUBLIC *ret);
/*
 * Like et_tpm_tr_from_handle, but an empty handle is an expected answer, not a failure: 0 and
 * *ret = ESYS_TR_NONE, nothing logged. Other failures are converted as usual.
 */
ET_HIDDEN int et_tpm_probe_handle(et_ctx *ctx, TPM2_HANDLE handle, ESYS_TR *ret);
/* ET_E_KEY_TYPE with a message naming handle unless pub is fit for use. */
ET_HIDDEN int et_tpm_key_check(const TPM2B_PUBLIC *pub, TPM2_HANDLE handle, et_key_use use);
/* An OpenSSL public key from an RSA TPM public area (exponent 0 means 65537). */
ET_HIDDEN int et_tpm_rsa_pkey(const TPM2B_PUBLIC *pub, EVP_PKEY **ret);
/* Persistent handle in the owner range 0x81000000..0x817FFFFF, else ET_E_INVALID. */
ET_HIDDEN int et_tpm_check_persistent(TPM2_HANDLE handle, const char *what);
/*
 * et_srk_ensure with an optional owner authorisation; ret_tr (may be NULL) receives an ESYS_TR
 * of the SRK for further use (the caller closes it with et_tpm_close).
 */
ET_HIDDEN int et_srk_ensure_tr(et_ctx *ctx, TPM2_HANDLE srk_handle, const uint8_t *owner_auth,
			       size_t owner_auth_len, bool *ret_created, ESYS_TR *ret_tr);
/* et_key_create with an optional owner authorisation (for EvictControl and the SRK). */
ET_HIDDEN int et_key_create_auth(et_ctx *ctx, TPM2_HANDLE key_handle, const uint8_t *owner_auth,
				 size_t owner_auth_len, bool *ret_created);

#endif
