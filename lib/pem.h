/* SPDX-License-Identifier: Apache-2.0 */
/* Private OpenSSL helpers around RSA public keys: PEM in and out, fingerprints, sanity checks. */
#ifndef EDGETRUST_PEM_H
#define EDGETRUST_PEM_H

#include <openssl/evp.h>

#include "internal.h"

#define ET_FPR_LEN 32 /* SHA-256 */

/* Parses exactly one PEM SubjectPublicKeyInfo block ("PUBLIC KEY", canonical DER) with
 * nothing but whitespace around it. ET_E_PEM with a message on failure. */
ET_HIDDEN int et_pem_read_public(const char *pem, EVP_PKEY **ret);
/* Writes the SubjectPublicKeyInfo of pkey as PEM; *ret malloc'd, NUL-terminated. */
ET_HIDDEN int et_pem_write_public(EVP_PKEY *pkey, char **ret);
/* SHA-256 of the DER SubjectPublicKeyInfo of pkey (public part of a private key too). */
ET_HIDDEN int et_pkey_fingerprint(EVP_PKEY *pkey, uint8_t ret[ET_FPR_LEN]);
/* Lowercase hex of a raw fingerprint, with NUL. */
ET_HIDDEN void et_fpr_hex(const uint8_t fpr[ET_FPR_LEN], char ret[65]);
/* RSA (not RSA-PSS), a modulus of exactly a multiple of 1024 bits in min_bits (0 = 2048)
 * .. 4096, odd, without a prime factor below 752, odd exponent 65537 <= e < 2^256. Cheap:
 * et_pem_check_rsa adds OpenSSL's full SP 800-56B check. */
ET_HIDDEN int et_pkey_check_rsa(EVP_PKEY *pkey, unsigned min_bits);

/* The parsed key behind the public et_pubkey handle; envelope.c seals with it. */
struct et_pubkey {
	EVP_PKEY *pkey;
	uint8_t fpr[ET_FPR_LEN];
	char fpr_hex[65];
	unsigned bits;
};

#endif
