/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private view of the credential envelope (docs/envelope.md), shared by the software opener
 * (envelope.c), the TPM opener (unwrap.c) and the fuzz target of the parser.
 */
#ifndef EDGETRUST_ENVELOPE_H
#define EDGETRUST_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "pem.h"

#define ET_ENV_MAGIC "ETE1"
#define ET_ENV_VERSION 1
#define ET_ENV_WRAP_RSA_OAEP_SHA256 1
#define ET_ENV_PAYLOAD_AES256_GCM 1
#define ET_ENV_AES_KEY_LEN 32
#define ET_ENV_NONCE_LEN 12
#define ET_ENV_TAG_LEN 16
#define ET_ENV_WRAPPED_MIN 256u	 /* RSA-2048 */
#define ET_ENV_WRAPPED_MAX 1024u /* RSA-8192 */
#define ET_ENV_PAYLOAD_MAX (1024u * 1024u)

/* Fields of a parsed envelope; the pointers point into the caller's blob. */
typedef struct et_envelope_view {
	et_envelope_info info;
	uint8_t key_fpr[ET_FPR_LEN];
	const uint8_t *wrapped;
	size_t wrapped_len;
	const uint8_t *nonce;
	const uint8_t *ciphertext;
	size_t ciphertext_len;
	const uint8_t *tag;
	const uint8_t *aad; /* = blob; everything up to and including the ciphertext length */
	size_t aad_len;
} et_envelope_view;

/*
 * Parses and bounds-checks the whole blob (header, lengths, no trailing bytes). No crypto.
 * ET_E_ENVELOPE_FORMAT with a message naming the field on any defect. The fuzz entry point.
 */
ET_HIDDEN int et_envelope_parse(const uint8_t *blob, size_t blob_len, et_envelope_view *ret);
/* The serial half of step 2, which needs no key (so no TPM command): ET_E_ENVELOPE_FOREIGN. */
ET_HIDDEN int et_envelope_check_serial(const et_envelope_view *v, const char *expected_serial);
/*
 * Step 2 of opening: the envelope must name expected_serial and the key whose fingerprint is
 * key_fpr, and carry a wrapped key of that key's size. ET_E_ENVELOPE_FOREIGN otherwise.
 */
ET_HIDDEN int et_envelope_check_recipient(const et_envelope_view *v, const char *expected_serial,
					  const uint8_t key_fpr[ET_FPR_LEN], size_t modulus_len);
/* Step 4: AES-256-GCM decryption with the unwrapped key; ET_E_ENVELOPE_AUTH on a bad tag. */
ET_HIDDEN int et_envelope_decrypt(const et_envelope_view *v, const uint8_t *aes_key,
				  size_t aes_key_len, et_secret **ret_plaintext);

#endif
