/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RSA public keys as the cloud sees them: PEM SubjectPublicKeyInfo, identified by the SHA-256
 * of their DER encoding (the fingerprint bound into every credential envelope).
 */
#include <stdbool.h>
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

/* Key sizes accepted from devices: TPM 2.0 RSA keys are 2048 (the device key), 3072 or 4096
 * bits; a larger key only makes every seal slower for the cloud. */
#define ET_RSA_MIN_BITS 2048u
#define ET_RSA_MAX_BITS 4096u

/* Whitespace as PEM allows it around and between lines. */
static bool pem_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Device keys come from devices the cloud does not trust yet, so the text is held to the one
 * form `edgetrust key public` and `tpm2_readpublic -f pem` write: nothing but whitespace
 * around exactly one "PUBLIC KEY" block (SubjectPublicKeyInfo), no PEM headers, and DER that
 * re-encodes to itself (so a key has exactly one encoding and one fingerprint).
 * PEM_read_bio_PUBKEY alone skips text before the block, ignores anything after it and reads
 * the first of several blocks.
 */
int et_pem_read_public(const char *pem, EVP_PKEY **ret)
{
	static const char begin_spki[] = "-----BEGIN PUBLIC KEY-----";
	static const char begin_pkcs1[] = "-----BEGIN RSA PUBLIC KEY-----";
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL, *der = NULL;
	long len = 0;
	int r, der_len;

	if (!pem || !ret)
		return et_fail(ET_E_INVALID, "no public key PEM given");
	while (pem_space(*pem))
		pem++;
	if (!strncmp(pem, begin_pkcs1, sizeof(begin_pkcs1) - 1))
		return et_fail(ET_E_PEM,
			       "a PKCS#1 \"RSA PUBLIC KEY\" block; give the SubjectPublicKeyInfo "
			       "(\"-----BEGIN PUBLIC KEY-----\", as written by `edgetrust key public`; "
			       "`openssl rsa -RSAPublicKey_in -pubout` converts)");
	if (strncmp(pem, begin_spki, sizeof(begin_spki) - 1))
		return et_fail(ET_E_PEM,
			       "not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\" and "
			       "nothing before it, as written by `edgetrust key public` or "
			       "`tpm2_readpublic -f pem`)");
	bio = BIO_new_mem_buf(pem, -1);
	if (!bio) {
		r = et_fail(ET_E_NOMEM, "out of memory reading a public key PEM");
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &data, &len) || strcmp(name, "PUBLIC KEY") ||
	    header[0]) {
		r = et_fail(ET_E_PEM,
			    "not a PEM public key (expected one \"-----BEGIN PUBLIC KEY-----\" block "
			    "with base64 content and no headers, as written by `edgetrust key public` "
			    "or `tpm2_readpublic -f pem`)");
		goto out;
	}
	/* Only whitespace may follow the block: no second key, no trailing text. */
	for (char c; BIO_read(bio, &c, 1) == 1;)
		if (!pem_space(c)) {
			r = et_fail(ET_E_PEM, "text after the \"-----END PUBLIC KEY-----\" line; give "
					      "exactly one public key and nothing else");
			goto out;
		}
	const unsigned char *p = data;
	pkey = d2i_PUBKEY(NULL, &p, len);
	if (!pkey || p != data + len) {
		r = et_fail(ET_E_PEM, "the PEM block is not one DER SubjectPublicKeyInfo%s",
			    pkey ? " (bytes after it)" : "");
		goto out;
	}
	der_len = i2d_PUBKEY(pkey, &der);
	if (der_len != len || memcmp(der, data, (size_t)len)) {
		r = et_fail(ET_E_PEM, "the public key is not in canonical DER (it does not "
				      "re-encode to the same bytes)");
		goto out;
	}
	*ret = pkey;
	pkey = NULL;
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	OPENSSL_free(der);
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
	BIGNUM *e = NULL, *n = NULL;
	int bits, r;

	if (min_bits == 0)
		min_bits = ET_RSA_MIN_BITS;
	/* EVP_PKEY_RSA only: an RSA-PSS key is signature-only and cannot receive an envelope. */
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		r = et_fail(ET_E_PEM,
			    "the public key is %s, not RSA; give the device's RSA key "
			    "(`edgetrust key public`)",
			    OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
		goto out;
	}
	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e)) {
		r = et_fail(ET_E_PEM, "cannot read the RSA modulus and public exponent");
		goto out;
	}
	/* The size is the modulus's own bit length, and one a TPM makes (a multiple of 1024):
	 * a "2048-bit" key whose top bits are zero is a smaller key. */
	bits = BN_num_bits(n);
	if ((unsigned)bits < min_bits) {
		r = et_fail(ET_E_PEM, "the RSA key has %d bits; at least %u are required", bits,
			    min_bits);
		goto out;
	}
	if ((unsigned)bits > ET_RSA_MAX_BITS || bits % 1024) {
		r = et_fail(ET_E_PEM,
			    "the RSA key has %d bits; accepted are 1024-bit multiples up to %u "
			    "(TPM keys are 2048, 3072 or 4096 bits)",
			    bits, ET_RSA_MAX_BITS);
		goto out;
	}
	if (!BN_is_odd(n)) {
		r = et_fail(ET_E_PEM, "the RSA modulus is even: not an RSA key");
		goto out;
	}
	/* SP 800-56B (and what a TPM makes): odd, 2^16 < e < 2^256. */
	if (!BN_is_odd(e) || BN_num_bits(e) <= 16 || BN_num_bits(e) > 256) {
		char *dec = BN_bn2dec(e);

		r = et_fail(ET_E_PEM,
			    "the RSA public exponent %s is not accepted (need an odd value with "
			    "65537 <= e < 2^256; TPMs use 65537)",
			    dec ? dec : "?");
		OPENSSL_free(dec);
		goto out;
	}
	/* SP 800-56B 6.4.2.2 (d): no prime factor below 752 (2^2048-1, for one, has 3). A few
	 * microseconds; the composite test of the full check is what costs (et_pem_check_rsa). */
	for (unsigned q = 3; q < 752; q += 2) {
		bool prime = true;
		for (unsigned d = 3; d * d <= q && prime; d += 2)
			prime = q % d != 0;
		if (prime && BN_mod_word(n, q) == 0) {
			r = et_fail(ET_E_PEM, "the RSA modulus has the small factor %u: not a device key",
				    q);
			goto out;
		}
	}
	r = 0;
out:
	ERR_clear_error();
	BN_free(n);
	BN_free(e);
	return r;
}

/* OpenSSL's SP 800-56B public-key check (EVP_PKEY_public_check): the checks above and a
 * Miller-Rabin test that n is composite and no prime power. That test is one full-size modular
 * exponentiation (about 5 ms for RSA-2048, ten times the rest of a registration), so it runs
 * where a key is about to be trusted (`accept`, et_pem_check_rsa), not for every request. */
static int pkey_check_sp800_56b(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int r = 0;

	if (!ctx)
		r = et_fail(ET_E_NOMEM, "out of memory checking a public key");
	else if (EVP_PKEY_public_check(ctx) != 1)
		r = et_fail(ET_E_PEM, "the RSA modulus fails the SP 800-56B public-key check (a "
				      "prime or prime power, not a product of two primes): not a "
				      "device key");
	ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
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
	if (r == 0)
		r = pkey_check_sp800_56b(pkey);
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
