/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential envelope, format v1 (docs/envelope.md): sealing on the cloud side, parsing, and
 * opening with a software private key. The TPM opener (unwrap.c) shares the parser and the
 * payload decryption with this file.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "envelope.h"
#include "reader.h"

/* Fixed part of the header around the serial, wrapped key and ciphertext (see the table). */
#define ET_ENV_FIXED_LEN (8 + ET_FPR_LEN + 4 + 8 + 2 + ET_ENV_NONCE_LEN + 4 + ET_ENV_TAG_LEN)

/* The format's serial alphabet; the same as et_serial_validate's, kept here because it is part
 * of the wire format and the parser must not depend on the NV code. */
static bool serial_ok(const uint8_t *s, size_t len)
{
	if (len < 1 || len > ET_SERIAL_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int truncated(const et_reader *rd, const char *field)
{
	return et_fail(ET_E_ENVELOPE_FORMAT,
		       "envelope truncated: %zu bytes end inside the %s field; the file is "
		       "incomplete, fetch the credentials again",
		       rd->len, field);
}

int et_envelope_parse(const uint8_t *blob, size_t blob_len, et_envelope_view *ret)
{
	et_envelope_view v;
	et_reader rd;
	const uint8_t *p;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	if (!ret || (!blob && blob_len))
		return et_fail(ET_E_INVALID, "no envelope given");
	memset(&v, 0, sizeof(v));
	et_reader_init(&rd, blob, blob_len);

	if (!et_reader_bytes(&rd, 4, &p))
		return truncated(&rd, "magic");
	if (memcmp(p, ET_ENV_MAGIC, 4) != 0)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "not an edgetrust credential envelope (no \"ETE1\" magic); for a "
			       "bare `openssl pkeyutl` ciphertext use raw mode (--raw)");
	if (!et_reader_u8(&rd, &v.info.format_version))
		return truncated(&rd, "format version");
	if (v.info.format_version != ET_ENV_VERSION)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope format version %u is unknown (this edgetrust reads "
			       "version %u); update edgetrust on the device",
			       v.info.format_version, ET_ENV_VERSION);
	if (!et_reader_u8(&rd, &u8))
		return truncated(&rd, "wrap algorithm");
	if (u8 != ET_ENV_WRAP_RSA_OAEP_SHA256)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope wrap algorithm %u is unknown (1 = RSA-OAEP-SHA256)", u8);
	if (!et_reader_u8(&rd, &u8))
		return truncated(&rd, "payload algorithm");
	if (u8 != ET_ENV_PAYLOAD_AES256_GCM)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope payload algorithm %u is unknown (1 = AES-256-GCM)", u8);
	if (!et_reader_u8(&rd, &u8))
		return truncated(&rd, "serial length");
	if (u8 < 1 || u8 > ET_SERIAL_MAX)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope serial length %u is out of range 1..%d", u8,
			       ET_SERIAL_MAX);
	if (!et_reader_bytes(&rd, u8, &p))
		return truncated(&rd, "serial");
	if (!serial_ok(p, u8))
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope serial holds characters outside [A-Za-z0-9._-]");
	memcpy(v.info.serial, p, u8);
	v.info.serial[u8] = '\0';
	if (!et_reader_bytes(&rd, ET_FPR_LEN, &p))
		return truncated(&rd, "key fingerprint");
	memcpy(v.key_fpr, p, ET_FPR_LEN);
	et_fpr_hex(v.key_fpr, v.info.key_fpr);
	if (!et_reader_u32(&rd, &v.info.cred_version))
		return truncated(&rd, "credential version");
	if (!et_reader_u64(&rd, &v.info.issued_at))
		return truncated(&rd, "issued-at");
	if (!et_reader_u16(&rd, &u16))
		return truncated(&rd, "wrapped key length");
	if (u16 < ET_ENV_WRAPPED_MIN || u16 > ET_ENV_WRAPPED_MAX)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope wrapped key length %u is out of range %u..%u", u16,
			       ET_ENV_WRAPPED_MIN, ET_ENV_WRAPPED_MAX);
	v.wrapped_len = u16;
	if (!et_reader_bytes(&rd, v.wrapped_len, &v.wrapped))
		return truncated(&rd, "wrapped key");
	if (!et_reader_bytes(&rd, ET_ENV_NONCE_LEN, &v.nonce))
		return truncated(&rd, "nonce");
	if (!et_reader_u32(&rd, &u32))
		return truncated(&rd, "ciphertext length");
	if (u32 > ET_ENV_PAYLOAD_MAX)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope ciphertext length %u exceeds the %u-byte limit", u32,
			       ET_ENV_PAYLOAD_MAX);
	v.ciphertext_len = u32;
	v.aad = blob;
	v.aad_len = rd.off;
	if (!et_reader_bytes(&rd, v.ciphertext_len, &v.ciphertext))
		return truncated(&rd, "ciphertext");
	if (!et_reader_bytes(&rd, ET_ENV_TAG_LEN, &v.tag))
		return truncated(&rd, "tag");
	if (et_reader_left(&rd) != 0)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope has %zu unexpected bytes after the tag; the file was "
			       "altered or two envelopes were concatenated",
			       et_reader_left(&rd));
	*ret = v;
	return 0;
}

int et_envelope_inspect(const uint8_t *blob, size_t blob_len, et_envelope_info *ret)
{
	et_envelope_view v;
	int r;

	if (!ret)
		return et_fail(ET_E_INVALID, "no place for the envelope information");
	r = et_envelope_parse(blob, blob_len, &v);
	if (r < 0)
		return r;
	*ret = v.info;
	return 0;
}

int et_envelope_check_serial(const et_envelope_view *v, const char *expected_serial)
{
	if (!expected_serial)
		return et_fail(ET_E_INVALID, "no expected serial number given");
	if (strcmp(v->info.serial, expected_serial) != 0)
		return et_fail(ET_E_ENVELOPE_FOREIGN,
			       "envelope is for serial \"%s\" but this device is \"%s\"; ask the "
			       "cloud for this device's credentials",
			       v->info.serial, expected_serial);
	return 0;
}

int et_envelope_check_recipient(const et_envelope_view *v, const char *expected_serial,
				const uint8_t key_fpr[ET_FPR_LEN], size_t modulus_len)
{
	char hex[65];
	int r;

	r = et_envelope_check_serial(v, expected_serial);
	if (r < 0)
		return r;
	if (memcmp(v->key_fpr, key_fpr, ET_FPR_LEN) != 0) {
		et_fpr_hex(key_fpr, hex);
		return et_fail(ET_E_ENVELOPE_FOREIGN,
			       "envelope is sealed to key %s but this device's key is %s; the "
			       "device key was replaced or the envelope belongs to another device: "
			       "register the current key (`edgetrust key public`) and reseal",
			       v->info.key_fpr, hex);
	}
	if (v->wrapped_len != modulus_len)
		return et_fail(ET_E_ENVELOPE_FORMAT,
			       "envelope wrapped key is %zu bytes but the device key's modulus is "
			       "%zu bytes; the envelope was altered",
			       v->wrapped_len, modulus_len);
	return 0;
}

int et_envelope_decrypt(const et_envelope_view *v, const uint8_t *aes_key, size_t aes_key_len,
			et_secret **ret_plaintext)
{
	EVP_CIPHER_CTX *c = NULL;
	et_secret *pt = NULL;
	int n = 0, r;

	if (aes_key_len != ET_ENV_AES_KEY_LEN) {
		r = et_fail(
		    ET_E_ENVELOPE_AUTH,
		    "the wrapped key unwrapped to %zu bytes, not %d: the envelope was altered",
		    aes_key_len, ET_ENV_AES_KEY_LEN);
		goto out;
	}
	r = et_secret_new(v->ciphertext_len, &pt);
	if (r < 0)
		goto out;
	c = EVP_CIPHER_CTX_new();
	if (!c || !EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), aes_key, v->nonce, NULL) ||
	    !EVP_DecryptUpdate(c, NULL, &n, v->aad, (int)v->aad_len) ||
	    (v->ciphertext_len && !EVP_DecryptUpdate(c, et_secret_data(pt), &n, v->ciphertext,
						     (int)v->ciphertext_len)) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, ET_ENV_TAG_LEN, (void *)v->tag)) {
		r = et_fail(ET_E_CRYPTO, "AES-256-GCM decryption could not start (OpenSSL)");
		goto out;
	}
	if (!EVP_DecryptFinal_ex(c, et_secret_data(pt) + v->ciphertext_len, &n)) {
		r = et_fail(ET_E_ENVELOPE_AUTH,
			    "envelope authentication failed: header or payload was altered; no "
			    "plaintext released, fetch the credentials again");
		goto out;
	}
	*ret_plaintext = pt;
	pt = NULL;
	r = 0;
out:
	ERR_clear_error();
	EVP_CIPHER_CTX_free(c);
	et_secret_free(pt);
	return r;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
}

static int rsa_oaep_ctx(EVP_PKEY *pkey, bool encrypt, EVP_PKEY_CTX **ret)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

	if (!pc || (encrypt ? EVP_PKEY_encrypt_init(pc) : EVP_PKEY_decrypt_init(pc)) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) <= 0) {
		EVP_PKEY_CTX_free(pc);
		ERR_clear_error();
		return et_fail(ET_E_CRYPTO, "cannot set up RSA-OAEP-SHA256 (OpenSSL)");
	}
	*ret = pc;
	return 0;
}

int et_envelope_seal(const char *pubkey_pem, const char *serial, uint32_t cred_version,
		     const uint8_t *plaintext, size_t plaintext_len, uint8_t **ret_blob,
		     size_t *ret_blob_len)
{
	et_pubkey *key = NULL;
	int r;

	if (!serial || !ret_blob || !ret_blob_len || (!plaintext && plaintext_len))
		return et_fail(ET_E_INVALID, "envelope seal: missing argument");
	r = et_pubkey_from_pem(pubkey_pem, &key);
	if (r < 0)
		return r;
	r = et_envelope_seal_pubkey(key, serial, cred_version, plaintext, plaintext_len, ret_blob,
				    ret_blob_len);
	et_pubkey_free(key);
	return r;
}

int et_envelope_seal_pubkey(const et_pubkey *key, const char *serial, uint32_t cred_version,
			    const uint8_t *plaintext, size_t plaintext_len, uint8_t **ret_blob,
			    size_t *ret_blob_len)
{
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *pc = NULL;
	EVP_CIPHER_CTX *c = NULL;
	uint8_t aes_key[ET_ENV_AES_KEY_LEN];
	uint8_t *blob = NULL, *p;
	size_t slen, wlen, total, outlen;
	int n, r;

	if (!key || !serial || !ret_blob || !ret_blob_len || (!plaintext && plaintext_len))
		return et_fail(ET_E_INVALID, "envelope seal: missing argument");
	pkey = key->pkey;
	slen = strlen(serial);
	if (!serial_ok((const uint8_t *)serial, slen))
		return et_fail(ET_E_INVALID,
			       "serial \"%.80s\" is not 1..%d characters of [A-Za-z0-9._-]", serial,
			       ET_SERIAL_MAX);
	if (plaintext_len > ET_ENV_PAYLOAD_MAX)
		return et_fail(ET_E_TOO_LARGE, "credentials of %zu bytes exceed the %u-byte limit",
			       plaintext_len, ET_ENV_PAYLOAD_MAX);
	wlen = (size_t)EVP_PKEY_get_size(pkey);
	total = ET_ENV_FIXED_LEN + slen + wlen + plaintext_len;
	blob = malloc(total);
	if (!blob) {
		r = et_fail(ET_E_NOMEM, "out of memory sealing an envelope");
		goto out;
	}
	/* The content key is the secret here; the nonce must only be unique. */
	if (RAND_priv_bytes(aes_key, sizeof(aes_key)) != 1) {
		r = et_fail(ET_E_CRYPTO, "no random bytes for the envelope key (OpenSSL RNG)");
		goto out;
	}
	p = blob;
	memcpy(p, ET_ENV_MAGIC, 4);
	p[4] = ET_ENV_VERSION;
	p[5] = ET_ENV_WRAP_RSA_OAEP_SHA256;
	p[6] = ET_ENV_PAYLOAD_AES256_GCM;
	p[7] = (uint8_t)slen;
	p += 8;
	memcpy(p, serial, slen);
	p += slen;
	memcpy(p, key->fpr, ET_FPR_LEN);
	p += ET_FPR_LEN;
	put_be(p, cred_version, 4);
	p += 4;
	put_be(p, (uint64_t)time(NULL), 8);
	p += 8;
	put_be(p, wlen, 2);
	p += 2;
	r = rsa_oaep_ctx(pkey, true, &pc);
	if (r < 0)
		goto out;
	outlen = wlen;
	if (EVP_PKEY_encrypt(pc, p, &outlen, aes_key, sizeof(aes_key)) <= 0 || outlen != wlen) {
		r = et_fail(ET_E_CRYPTO, "RSA-OAEP wrapping of the envelope key failed (OpenSSL)");
		goto out;
	}
	p += wlen;
	if (RAND_bytes(p, ET_ENV_NONCE_LEN) != 1) {
		r = et_fail(ET_E_CRYPTO, "no random bytes for the envelope nonce (OpenSSL RNG)");
		goto out;
	}
	p += ET_ENV_NONCE_LEN;
	put_be(p, plaintext_len, 4);
	p += 4;
	c = EVP_CIPHER_CTX_new();
	if (!c ||
	    !EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), aes_key, p - 4 - ET_ENV_NONCE_LEN, NULL) ||
	    !EVP_EncryptUpdate(c, NULL, &n, blob, (int)(p - blob)) ||
	    (plaintext_len && !EVP_EncryptUpdate(c, p, &n, plaintext, (int)plaintext_len)) ||
	    !EVP_EncryptFinal_ex(c, p + plaintext_len, &n) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, ET_ENV_TAG_LEN, p + plaintext_len)) {
		r = et_fail(ET_E_CRYPTO, "AES-256-GCM encryption failed (OpenSSL)");
		goto out;
	}
	*ret_blob = blob;
	*ret_blob_len = total;
	blob = NULL;
	r = 0;
out:
	explicit_bzero(aes_key, sizeof(aes_key));
	ERR_clear_error();
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(pc);
	free(blob);
	return r;
}

static int read_private(const char *pem, EVP_PKEY **ret)
{
	BIO *bio;
	EVP_PKEY *pkey;

	if (!pem)
		return et_fail(ET_E_INVALID, "no private key PEM given");
	bio = BIO_new_mem_buf(pem, -1);
	if (!bio)
		return et_fail(ET_E_NOMEM, "out of memory reading a private key");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (!pkey)
		return et_fail(ET_E_PEM, "not a PEM private key (unencrypted PKCS#8 or PKCS#1)");
	*ret = pkey;
	return 0;
}

int et_envelope_open_soft(const char *privkey_pem, const char *expected_serial, const uint8_t *blob,
			  size_t blob_len, et_secret **ret_plaintext, et_envelope_info *ret_info)
{
	et_envelope_view v;
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *pc = NULL;
	et_secret *key = NULL, *pt = NULL;
	uint8_t fpr[ET_FPR_LEN];
	size_t keylen;
	int r;

	if (!ret_plaintext || !expected_serial)
		return et_fail(ET_E_INVALID, "envelope open: missing argument");
	r = et_envelope_parse(blob, blob_len, &v);
	if (r < 0)
		goto out;
	r = read_private(privkey_pem, &pkey);
	if (r < 0)
		goto out;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
		r = et_fail(ET_E_KEY_TYPE, "the private key is not RSA");
		goto out;
	}
	r = et_pkey_fingerprint(pkey, fpr);
	if (r < 0)
		goto out;
	r = et_envelope_check_recipient(&v, expected_serial, fpr, (size_t)EVP_PKEY_get_size(pkey));
	if (r < 0)
		goto out;
	r = et_secret_new(v.wrapped_len, &key);
	if (r < 0)
		goto out;
	r = rsa_oaep_ctx(pkey, false, &pc);
	if (r < 0)
		goto out;
	keylen = v.wrapped_len;
	if (EVP_PKEY_decrypt(pc, et_secret_data(key), &keylen, v.wrapped, v.wrapped_len) <= 0) {
		r = et_fail(ET_E_ENVELOPE_AUTH,
			    "the wrapped key does not decrypt under this key (RSA-OAEP check "
			    "failed): the envelope was altered; fetch the credentials again");
		goto out;
	}
	r = et_envelope_decrypt(&v, et_secret_data(key), keylen, &pt);
	if (r < 0)
		goto out;
	*ret_plaintext = pt;
	if (ret_info)
		*ret_info = v.info;
	r = 0;
out:
	ERR_clear_error();
	et_secret_free(key);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pkey);
	return r;
}
