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
	char *pub_e3;  /* small but acceptable exponent */
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
	assert_int_equal(et_pem_check_rsa(k->pub_e3, 0), 0);
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

	assert_int_equal(et_pubkey_from_pem(k->pub_e3, &key), 0);
	et_pubkey_free(key);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	     cmocka_unit_test(test_every_byte_altered),
	    cmocka_unit_test(test_every_truncation), cmocka_unit_test(test_trailing_bytes),
	    cmocka_unit_test(test_foreign),	     cmocka_unit_test(test_pem_checks),
	    cmocka_unit_test(test_ec_key_refused),   cmocka_unit_test(test_bad_exponent),
	    cmocka_unit_test(test_pubkey),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
