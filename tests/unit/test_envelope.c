/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential envelope with software keys: roundtrip, and every alteration, truncation or
 * extension of a blob fails with a clear envelope error and releases no plaintext.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "edgetrust/edgetrust.h"

static const char serial[] = "CM4-0001_a.b";
static const uint8_t secret_text[] = "user=dev1\npassword=Sup3r-s3cret\nca=-----BEGIN...\n";

struct keys {
	char *priv; /* device key */
	char *pub;
	char *priv2; /* another device's key */
	char *pub2;
	char *pub1024; /* too small */
	char *pub_e3;  /* exponent 3: below SP 800-56B's 2^16 < e */
	char *pub3072;
};

static char *bio_string(BIO *bio)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *s = malloc((size_t)n + 1);

	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static void gen(unsigned bits, unsigned e, char **ret_priv, char **ret_pub)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = BN_new();
	BIO *bio;

	assert_non_null(pc);
	assert_true(EVP_PKEY_keygen_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_keygen_bits(pc, (int)bits) > 0);
	assert_true(BN_set_word(bn, e));
	assert_true(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(pc, bn) > 0);
	assert_true(EVP_PKEY_keygen(pc, &pkey) > 0);
	if (ret_priv) {
		bio = BIO_new(BIO_s_mem());
		assert_true(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL));
		*ret_priv = bio_string(bio);
		BIO_free(bio);
	}
	bio = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio_PUBKEY(bio, pkey));
	*ret_pub = bio_string(bio);
	BIO_free(bio);
	BN_free(bn);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pc);
}

static int setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	gen(2048, 65537, &k->priv, &k->pub);
	gen(2048, 65537, &k->priv2, &k->pub2);
	gen(1024, 65537, NULL, &k->pub1024);
	gen(2048, 3, NULL, &k->pub_e3);
	gen(3072, 65537, NULL, &k->pub3072);
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	struct keys *k = *state;

	free(k->priv);
	free(k->pub);
	free(k->priv2);
	free(k->pub2);
	free(k->pub1024);
	free(k->pub_e3);
	free(k->pub3072);
	free(k);
	return 0;
}

static void seal(struct keys *k, uint8_t **blob, size_t *len)
{
	assert_int_equal(
	    et_envelope_seal(k->pub, serial, 7, secret_text, sizeof(secret_text), blob, len), 0);
}

static void test_roundtrip(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL;
	size_t len = 0;
	et_secret *pt = NULL;
	et_envelope_info info, info2;
	char fpr[65];

	seal(k, &blob, &len);
	/* header of docs/envelope.md: 70 + S + W + C + 16 */
	assert_int_equal(len, 70 + strlen(serial) + 256 + sizeof(secret_text) + 16);
	assert_memory_equal(blob, "ETE1\x01\x01\x01", 7);
	assert_int_equal(et_envelope_inspect(blob, len, &info), 0);
	assert_int_equal(info.format_version, 1);
	assert_string_equal(info.serial, serial);
	assert_int_equal(info.cred_version, 7);
	assert_true(info.issued_at > 1700000000u);
	assert_int_equal(et_pem_fingerprint(k->pub, fpr), 0);
	assert_string_equal(info.key_fpr, fpr);

	assert_int_equal(et_envelope_open_soft(k->priv, serial, blob, len, &pt, &info2), 0);
	assert_int_equal(et_secret_len(pt), sizeof(secret_text));
	assert_memory_equal(et_secret_data(pt), secret_text, sizeof(secret_text));
	assert_memory_equal(&info, &info2, sizeof(info));
	et_secret_free(pt);
	free(blob);

	/* empty payload is legal */
	pt = NULL;
	assert_int_equal(et_envelope_seal(k->pub, serial, 1, NULL, 0, &blob, &len), 0);
	assert_int_equal(et_envelope_open_soft(k->priv, serial, blob, len, &pt, NULL), 0);
	assert_int_equal(et_secret_len(pt), 0);
	et_secret_free(pt);
	free(blob);
}

static void assert_envelope_error(int r)
{
	if (r != ET_E_ENVELOPE_AUTH && r != ET_E_ENVELOPE_FORMAT && r != ET_E_ENVELOPE_FOREIGN)
		fail_msg("unexpected result %d (%s): %s", r, et_strerror(r), et_errmsg());
}

static void test_every_byte_altered(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL;
	size_t len = 0;
	static const uint8_t flips[] = {0x01, 0x80, 0xff};

	seal(k, &blob, &len);
	for (size_t i = 0; i < len; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			et_secret *pt = NULL;
			int r;

			blob[i] ^= flips[f];
			r = et_envelope_open_soft(k->priv, serial, blob, len, &pt, NULL);
			blob[i] ^= flips[f];
			if (r == 0)
				fail_msg("altering byte %zu by 0x%02x was not detected", i,
					 flips[f]);
			assert_envelope_error(r);
			assert_null(pt);
		}
	}
	free(blob);
}

static void test_every_truncation(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL;
	size_t len = 0;
	et_envelope_info info;

	seal(k, &blob, &len);
	for (size_t n = 0; n < len; n++) {
		et_secret *pt = NULL;
		/* a fresh copy of exactly n bytes so ASan sees any read past the end */
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, blob, n);
		assert_int_equal(et_envelope_open_soft(k->priv, serial, cut, n, &pt, NULL),
				 ET_E_ENVELOPE_FORMAT);
		assert_null(pt);
		assert_int_equal(et_envelope_inspect(cut, n, &info), ET_E_ENVELOPE_FORMAT);
		free(cut);
	}
	free(blob);
}

static void test_trailing_bytes(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL, *longer;
	size_t len = 0;
	et_secret *pt = NULL;

	seal(k, &blob, &len);
	for (size_t extra = 1; extra <= 300; extra += 37) {
		longer = calloc(1, len + extra);
		memcpy(longer, blob, len);
		assert_int_equal(
		    et_envelope_open_soft(k->priv, serial, longer, len + extra, &pt, NULL),
		    ET_E_ENVELOPE_FORMAT);
		assert_null(pt);
		assert_non_null(strstr(et_errmsg(), "after the tag"));
		free(longer);
	}
	free(blob);
}

static void test_foreign(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL;
	size_t len = 0;
	et_secret *pt = NULL;

	seal(k, &blob, &len);
	assert_int_equal(et_envelope_open_soft(k->priv, "CM4-0002", blob, len, &pt, NULL),
			 ET_E_ENVELOPE_FOREIGN);
	assert_non_null(strstr(et_errmsg(), "CM4-0002"));
	assert_int_equal(et_envelope_open_soft(k->priv2, serial, blob, len, &pt, NULL),
			 ET_E_ENVELOPE_FOREIGN);
	assert_non_null(strstr(et_errmsg(), "key"));
	assert_null(pt);
	free(blob);
}

static void test_pem_checks(void **state)
{
	struct keys *k = *state;
	uint8_t *blob = NULL;
	size_t len = 0;
	char fpr[65], fpr2[65];

	assert_int_equal(et_pem_check_rsa(k->pub, 0), 0);
	assert_int_equal(et_pem_check_rsa(k->pub, 2048), 0);
	assert_int_equal(et_pem_check_rsa(k->pub, 3072), ET_E_PEM);
	assert_int_equal(et_pem_check_rsa(k->pub1024, 0), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "1024"));
	assert_int_equal(et_pem_check_rsa(k->pub1024, 1024), 0);
	assert_int_equal(et_pem_check_rsa(k->pub_e3, 0), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "exponent 3 "));
	assert_int_equal(et_pem_check_rsa(k->pub3072, 0), 0);
	assert_int_equal(et_pem_check_rsa("garbage", 0), ET_E_PEM);
	assert_int_equal(et_pem_check_rsa(k->priv, 0),
			 ET_E_PEM); /* a private key is no PEM pubkey */
	assert_int_equal(et_envelope_seal(k->pub1024, serial, 1, secret_text, 4, &blob, &len),
			 ET_E_PEM);
	assert_null(blob);
	assert_int_equal(et_envelope_seal(k->pub, "bad serial", 1, secret_text, 4, &blob, &len),
			 ET_E_INVALID);
	assert_int_equal(et_envelope_seal(k->pub, "", 1, secret_text, 4, &blob, &len),
			 ET_E_INVALID);

	assert_int_equal(et_pem_fingerprint(k->pub, fpr), 0);
	assert_int_equal(strlen(fpr), 64);
	for (size_t i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", fpr[i]));
	assert_int_equal(et_pem_fingerprint(k->pub2, fpr2), 0);
	assert_string_not_equal(fpr, fpr2);
}

/* The parsed key: same fingerprint as the PEM helper, envelopes the soft opener opens, and the
 * same refusals as et_pem_check_rsa. */
static void test_pubkey(void **state)
{
	struct keys *k = *state;
	et_pubkey *key = NULL, *bad = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	et_secret *pt = NULL;
	et_envelope_info info;
	char fpr[65];

	assert_int_equal(et_pubkey_from_pem(k->pub, &key), 0);
	assert_non_null(key);
	assert_int_equal(et_pem_fingerprint(k->pub, fpr), 0);
	assert_string_equal(et_pubkey_fingerprint(key), fpr);
	assert_int_equal(et_pubkey_bits(key), 2048);
	assert_int_equal(et_envelope_seal_pubkey(key, serial, 9, secret_text, sizeof(secret_text),
						 &blob, &len),
			 0);
	assert_int_equal(len, 70 + strlen(serial) + 256 + sizeof(secret_text) + 16);
	assert_int_equal(et_envelope_open_soft(k->priv, serial, blob, len, &pt, &info), 0);
	assert_memory_equal(et_secret_data(pt), secret_text, sizeof(secret_text));
	assert_string_equal(info.key_fpr, fpr);
	assert_int_equal(info.cred_version, 9);
	et_secret_free(pt);
	pt = NULL;
	/* another device's key cannot open it */
	assert_int_equal(et_envelope_open_soft(k->priv2, serial, blob, len, &pt, NULL),
			 ET_E_ENVELOPE_FOREIGN);
	assert_null(pt);
	free(blob);
	blob = NULL;
	assert_int_equal(et_envelope_seal_pubkey(key, "bad serial", 1, secret_text, 4, &blob, &len),
			 ET_E_INVALID);
	assert_null(blob);
	assert_int_equal(et_envelope_seal_pubkey(NULL, serial, 1, secret_text, 4, &blob, &len),
			 ET_E_INVALID);
	et_pubkey_free(key);
	et_pubkey_free(NULL);

	assert_int_equal(et_pubkey_from_pem(k->pub3072, &key), 0);
	assert_int_equal(et_pubkey_bits(key), 3072);
	et_pubkey_free(key);
	assert_int_equal(et_pubkey_from_pem(k->pub_e3, &bad), ET_E_PEM);
	assert_int_equal(et_pubkey_from_pem(k->pub1024, &bad), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "1024"));
	assert_null(bad);
	assert_int_equal(et_pubkey_from_pem("garbage", &bad), ET_E_PEM);
	assert_int_equal(et_pubkey_from_pem(k->priv, &bad), ET_E_PEM);
	assert_int_equal(et_pubkey_from_pem(NULL, &bad), ET_E_INVALID);
	assert_int_equal(et_pubkey_from_pem(k->pub, NULL), ET_E_INVALID);
	assert_null(bad);
}

static void test_ec_key_refused(void **state)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	et_pubkey *key = NULL;

	(void)state;
	assert_true(PEM_write_bio_PUBKEY(bio, pkey));
	pem = bio_string(bio);
	assert_int_equal(et_pem_check_rsa(pem, 0), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "not RSA"));
	assert_int_equal(et_pubkey_from_pem(pem, &key), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "not RSA"));
	assert_null(key);
	free(pem);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
}

static void test_bad_exponent(void **state)
{
	/* RSA-2048 key with public exponent 1, built by hand: no generator makes one. */
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM params[3];
	EVP_PKEY *pkey = NULL;
	unsigned char n[256], e1[1] = {1}, e2[1] = {2};
	BIO *bio;
	char *pem;

	(void)state;
	memset(n, 0xc3, sizeof(n));
	for (int round = 0; round < 2; round++) {
		params[0] = OSSL_PARAM_construct_BN("n", n, sizeof(n));
		params[1] = OSSL_PARAM_construct_BN("e", round ? e2 : e1, 1);
		params[2] = OSSL_PARAM_construct_end();
		/* OSSL BN params are native-endian; a single byte is the same either way, and n's
		 * value does not matter for the check. */
		assert_true(EVP_PKEY_fromdata_init(pc) > 0);
		assert_true(EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) > 0);
		bio = BIO_new(BIO_s_mem());
		assert_true(PEM_write_bio_PUBKEY(bio, pkey));
		pem = bio_string(bio);
		assert_int_equal(et_pem_check_rsa(pem, 0), ET_E_PEM);
		assert_non_null(strstr(et_errmsg(), "exponent"));
		free(pem);
		BIO_free(bio);
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(pc);
}


/* A PEM SubjectPublicKeyInfo of an RSA "key" (n, e) built by hand: no generator makes these. */
static char *pem_of(const BIGNUM *n, unsigned long e)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *be = BN_new();
	OSSL_PARAM *params;
	EVP_PKEY *pkey = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;

	assert_true(BN_set_word(be, e));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, "n", n));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, "e", be));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_true(EVP_PKEY_fromdata_init(pc) > 0);
	assert_true(EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) > 0);
	assert_true(PEM_write_bio_PUBKEY(bio, pkey));
	pem = bio_string(bio);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(be);
	EVP_PKEY_CTX_free(pc);
	return pem;
}

/* Both entry points refuse pem with ET_E_PEM and a message containing what. */
static void refused(const char *pem, const char *what)
{
	et_pubkey *key = NULL;

	if (et_pem_check_rsa(pem, 0) != ET_E_PEM)
		fail_msg("accepted, expected a refusal with '%s'", what);
	if (!strstr(et_errmsg(), what))
		fail_msg("'%s' not in '%s'", what, et_errmsg());
	assert_int_equal(et_pubkey_from_pem(pem, &key), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), what));
	assert_null(key);
}

static char *cat(const char *a, const char *b)
{
	char *s = malloc(strlen(a) + strlen(b) + 1);

	assert_non_null(s);
	strcpy(s, a);
	strcat(s, b);
	return s;
}

/* Registration keys that are no device key (docs/threat-model.md, "Registration and accept"):
 * even modulus, 2^2048-1, small factors, a prime, odd sizes; and PEM that is not exactly one
 * SubjectPublicKeyInfo block: PKCS#1, text after or before it, two blocks, headers. */
static void test_odd_keys(void **state)
{
	struct keys *k = *state;
	BIGNUM *n = BN_new(), *good_n = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	char *pem, *s;

	/* the real key's modulus, changed */
	bio = BIO_new_mem_buf(k->pub, -1);
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_true(EVP_PKEY_get_bn_param(pkey, "n", &good_n));
	EVP_PKEY_free(pkey);
	pem = pem_of(good_n, 65537);
	assert_int_equal(et_pem_check_rsa(pem, 0), 0); /* the helper builds good keys */
	free(pem);

	assert_true(BN_copy(n, good_n));
	assert_true(BN_clear_bit(n, 0)); /* even */
	pem = pem_of(n, 65537);
	refused(pem, "even");
	free(pem);

	assert_true(BN_one(n));
	assert_true(BN_lshift(n, n, 2048));
	assert_true(BN_sub_word(n, 1)); /* 2^2048 - 1: odd, 2048 bits, divisible by 3 */
	pem = pem_of(n, 65537);
	refused(pem, "small factor 3");
	free(pem);

	assert_true(BN_set_word(n, 3));
	assert_true(BN_lshift(n, n, 2046)); /* 3 * (2^2046 + 1): odd, 2048 bits, factor 3 */
	assert_true(BN_add_word(n, 3));
	pem = pem_of(n, 65537);
	refused(pem, "small factor 3");
	free(pem);

	/* a prime modulus: only the full check (et_pem_check_rsa) finds it, at about 5 ms */
	assert_true(BN_generate_prime_ex(n, 2048, 0, NULL, NULL, NULL));
	pem = pem_of(n, 65537);
	assert_int_equal(et_pem_check_rsa(pem, 0), ET_E_PEM);
	assert_non_null(strstr(et_errmsg(), "SP 800-56B"));
	et_pubkey *key = NULL;
	assert_int_equal(et_pubkey_from_pem(pem, &key), 0);
	et_pubkey_free(key);
	free(pem);
	/* and a prime power */
	assert_true(BN_generate_prime_ex(n, 1024, 0, NULL, NULL, NULL));
	BN_CTX *bc = BN_CTX_new();
	assert_true(BN_sqr(n, n, bc));
	BN_CTX_free(bc);
	if (BN_num_bits(n) == 2048) {
		pem = pem_of(n, 65537);
		assert_int_equal(et_pem_check_rsa(pem, 0), ET_E_PEM);
		free(pem);
	}

	assert_true(BN_rshift1(n, good_n)); /* 2047 bits */
	assert_true(BN_set_bit(n, 0));
	pem = pem_of(n, 65537);
	refused(pem, "2047 bits");
	free(pem);

	assert_true(BN_one(n));
	assert_true(BN_lshift(n, n, 5119)); /* 5120 bits: above 4096 */
	assert_true(BN_add_word(n, 1));
	pem = pem_of(n, 65537);
	refused(pem, "5120 bits");
	free(pem);

	pem = pem_of(good_n, 65536 + 1 + 2); /* 65539: odd, > 2^16, accepted */
	assert_int_equal(et_pem_check_rsa(pem, 0), 0);
	free(pem);
	pem = pem_of(good_n, 65535);
	refused(pem, "exponent 65535 ");
	free(pem);

	/* PKCS#1 RSAPublicKey */
	bio = BIO_new_mem_buf(k->pub, -1);
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	unsigned char *der = NULL;
	int der_len = i2d_PublicKey(pkey, &der); /* RSA: the PKCS#1 RSAPublicKey */
	assert_true(der_len > 0);
	bio = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio(bio, "RSA PUBLIC KEY", "", der, der_len));
	pem = bio_string(bio);
	BIO_free(bio);
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	assert_non_null(strstr(pem, "BEGIN RSA PUBLIC KEY"));
	refused(pem, "PKCS#1");
	free(pem);

	/* framing: whitespace around the block is fine, anything else is not */
	s = cat(" \n\t", k->pub);
	pem = cat(s, "\n \r\n");
	assert_int_equal(et_pem_check_rsa(pem, 0), 0);
	free(s);
	free(pem);
	pem = cat(k->pub, "garbage\n");
	refused(pem, "after");
	free(pem);
	pem = cat(k->pub, k->pub2); /* two keys: which one would the cloud pin? */
	refused(pem, "after");
	free(pem);
	pem = cat("x\n", k->pub);
	refused(pem, "nothing before");
	free(pem);
	s = strdup(k->pub); /* a header line inside the block */
	pem = malloc(strlen(s) + 64);
	strcpy(pem, "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\n");
	strcat(pem, s + strlen("-----BEGIN PUBLIC KEY-----\n"));
	refused(pem, "no headers");
	free(s);
	free(pem);

	BN_free(n);
	BN_free(good_n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	     cmocka_unit_test(test_every_byte_altered),
	    cmocka_unit_test(test_every_truncation), cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_foreign),	     cmocka_unit_test(test_pem_checks),
	    cmocka_unit_test(test_ec_key_refused),   cmocka_unit_test(test_bad_exponent),
	    cmocka_unit_test(test_pubkey),	     cmocka_unit_test(test_odd_keys),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
