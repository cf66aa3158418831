/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RSA public keys as the cloud sees them: PEM SubjectPublicKeyInfo, identified by the SHA-256
 * of their DER encoding (the fingerprint bound into every credential envelope).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "pem.h"

/* Largest modulus we accept: the envelope's wrapped-key field is bounded to 1024 bytes. */
#define ET_RSA_MAX_BITS 8192u

int et_pem_read_public(const char *pem, EVP_PKEY **ret)
{
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	int r;

	if (!pem || !ret)
		return et_fail(ET_E_INVALID, "no public key PEM given");
	bio = BIO_new_mem_buf(pem, -1);
	if (!bio) {
		r = et_fail(ET_E_NOMEM, "out of memory reading a public key PEM");
		goto out;
	}
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pkey) {
		r = et_fail(ET_E_PEM,
			    "not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\", as "
			    "written by `edgetrust key public` or `tpm2_readpublic -f pem`)");
		goto out;
	}
	*ret = pkey;
	pkey = NULL;
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return r;
}

int et_pem_write_public(EVP_PKEY *pkey, char **ret)
{
	BIO *bio = NULL;
	BUF_MEM *mem = NULL;
	char *pem = NULL;
	int r;

	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PUBKEY(bio, pkey)) {
		r = et_fail(ET_E_CRYPTO, "cannot encode the public key as PEM");
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	pem = malloc(mem->length + 1);
	if (!pem) {
		r = et_fail(ET_E_NOMEM, "out of memory encoding a public key");
		goto out;
	}
	memcpy(pem, mem->data, mem->length);
	pem[mem->length] = '\0';
	*ret = pem;
	r = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	return r;
}

int et_pkey_fingerprint(EVP_PKEY *pkey, uint8_t ret[ET_FPR_LEN])
{
	unsigned char *der = NULL;
	int len;

	/* i2d_PUBKEY writes only the public part, also for a private key. */
	len = i2d_PUBKEY(pkey, &der);
	if (len <= 0) {
		ERR_clear_error();
		return et_fail(ET_E_CRYPTO, "cannot DER-encode the public key to fingerprint it");
	}
	SHA256(der, (size_t)len, ret);
	OPENSSL_free(der);
	return 0;
}

void et_fpr_hex(const uint8_t fpr[ET_FPR_LEN], char ret[65])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < ET_FPR_LEN; i++) {
		ret[2 * i] = hex[fpr[i] >> 4];
		ret[2 * i + 1] = hex[fpr[i] & 0xf];
	}
	ret[64] = '\0';
}

int et_pem_fingerprint(const char *pem, char ret_fpr[65])
{
	EVP_PKEY *pkey = NULL;
	uint8_t fpr[ET_FPR_LEN];
	int r;

	if (!ret_fpr)
		return et_fail(ET_E_INVALID, "no buffer for the fingerprint");
	r = et_pem_read_public(pem, &pkey);
	if (r < 0)
		goto out;
	r = et_pkey_fingerprint(pkey, fpr);
	if (r < 0)
		goto out;
	et_fpr_hex(fpr, ret_fpr);
out:
	EVP_PKEY_free(pkey);
	return r;
}

int et_pkey_check_rsa(EVP_PKEY *pkey, unsigned min_bits)
{
	BIGNUM *e = NULL;
	int bits, r;

	if (min_bits == 0)
		min_bits = 2048;
	/* EVP_PKEY_RSA only: an RSA-PSS key is signature-only and cannot receive an envelope. */
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		r = et_fail(ET_E_PEM,
			    "the public key is %s, not RSA; give the device's RSA key "
			    "(`edgetrust key public`)",
			    OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
		goto out;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < 0 || (unsigned)bits < min_bits) {
		r = et_fail(ET_E_PEM, "the RSA key has %d bits; at least %u are required", bits,
			    min_bits);
		goto out;
	}
	if ((unsigned)bits > ET_RSA_MAX_BITS) {
		r = et_fail(ET_E_PEM, "the RSA key has %d bits; at most %u are supported", bits,
			    ET_RSA_MAX_BITS);
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
		r = et_fail(ET_E_PEM, "cannot read the RSA public exponent");
		goto out;
	}
	/* An even or tiny exponent is no RSA key at all; a huge one is not what a TPM or any
	 * sane generator makes (TPMs use 65537). */
	if (!BN_is_odd(e) || BN_cmp(e, BN_value_one()) <= 0 || BN_num_bits(e) > 256) {
		char *dec = BN_bn2dec(e);

		r = et_fail(ET_E_PEM,
			    "the RSA public exponent %s is not sane (need an odd value >= 3, "
			    "normally 65537)",
			    dec ? dec : "?");
		OPENSSL_free(dec);
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	BN_free(e);
	return r;
}

int et_pem_check_rsa(const char *pem, unsigned min_bits)
{
	EVP_PKEY *pkey = NULL;
	int r;

	r = et_pem_read_public(pem, &pkey);
	if (r < 0)
		return r;
	r = et_pkey_check_rsa(pkey, min_bits);
	EVP_PKEY_free(pkey);
	return r;
}

int et_pubkey_from_pem(const char *pem, et_pubkey **ret)
{
	et_pubkey *key = NULL;
	int r;

	if (!ret)
		return et_fail(ET_E_INVALID, "no place for the parsed public key");
	key = calloc(1, sizeof(*key));
	if (!key)
		return et_fail(ET_E_NOMEM, "out of memory parsing a public key");
	r = et_pem_read_public(pem, &key->pkey);
	if (r < 0)
		goto out;
	r = et_pkey_check_rsa(key->pkey, 0);
	if (r < 0)
		goto out;
	r = et_pkey_fingerprint(key->pkey, key->fpr);
	if (r < 0)
		goto out;
	et_fpr_hex(key->fpr, key->fpr_hex);
	key->bits = (unsigned)EVP_PKEY_get_bits(key->pkey);
	*ret = key;
	key = NULL;
out:
	et_pubkey_free(key);
	return r;
}

void et_pubkey_free(et_pubkey *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

const char *et_pubkey_fingerprint(const et_pubkey *key)
{
	return key ? key->fpr_hex : NULL;
}

unsigned et_pubkey_bits(const et_pubkey *key)
{
	return key ? key->bits : 0;
}
