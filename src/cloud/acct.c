/* SPDX-License-Identifier: Apache-2.0 */
/* Device broker accounts: password hashes and the device ACL (see acct.h). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "acct.h"

#define SALT_LEN 16
#define DIGEST_LEN 32

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(const char *s, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (x < 0)
				return -1;
			v = v * 16 + x;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int digest(const unsigned char salt[SALT_LEN], const char *password,
		  unsigned char out[DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int r = -1;

	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, salt, SALT_LEN) == 1 &&
	    EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == DIGEST_LEN)
		r = 0;
	EVP_MD_CTX_free(ctx);
	return r;
}

int acct_hash(const char *password, char out[ACCT_HASH_LEN])
{
	unsigned char salt[SALT_LEN], d[DIGEST_LEN];
	char sh[2 * SALT_LEN + 1], dh[2 * DIGEST_LEN + 1];

	if (RAND_bytes(salt, sizeof(salt)) != 1 || digest(salt, password, d) < 0)
		return -1;
	hex(salt, sizeof(salt), sh);
	hex(d, sizeof(d), dh);
	snprintf(out, ACCT_HASH_LEN, "s256$%s$%s", sh, dh);
	OPENSSL_cleanse(d, sizeof(d));
	return 0;
}

bool acct_verify(const char *stored, const char *password)
{
	unsigned char salt[SALT_LEN], want[DIGEST_LEN], got[DIGEST_LEN];
	bool ok = false;

	if (!stored || !password || strlen(stored) != ACCT_HASH_LEN - 1 ||
	    strncmp(stored, "s256$", 5) || stored[5 + 2 * SALT_LEN] != '$')
		return false;
	if (unhex(stored + 5, SALT_LEN, salt) < 0 ||
	    unhex(stored + 6 + 2 * SALT_LEN, DIGEST_LEN, want) < 0)
		return false;
	if (digest(salt, password, got) == 0)
		ok = CRYPTO_memcmp(want, got, DIGEST_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

bool acct_device_allowed(const char *serial, const char *topic, enum acct_access access)
{
	static const char *const publish[] = { "telemetry", "status", "settings/reported" };
	size_t sl = strlen(serial);
	const char *rest;

	if (access == ACCT_UNSUBSCRIBE)
		return true;
	if (strncmp(topic, "et/v1/", 6) || strncmp(topic + 6, serial, sl) || topic[6 + sl] != '/')
		return false;
	rest = topic + 7 + sl;
	if (!*rest)
		return false;
	if (access == ACCT_PUBLISH) {
		/* Everything else under its prefix (settings/desired, creds, register/reply,
		 * telemetry/ack) is the cloud's to write. */
		for (size_t i = 0; i < sizeof(publish) / sizeof(publish[0]); i++)
			if (!strcmp(rest, publish[i]))
				return true;
		return false;
	}
	/* Subscribe and receive: anything under et/v1/<serial>/. The serial has no wildcard
	 * characters (proto_serial_ok), so a filter with this literal prefix stays inside it. */
	return true;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

bool acct_client_id_ok(const char *username, const char *client_id, const char *cloud_user,
		       const char *bootstrap_user)
{
	if (!username || !client_id || !*client_id)
		return false;
	if (cloud_user && !strcmp(username, cloud_user))
		return has_prefix(client_id, WIRE_CLOUD_ID_PREFIX) &&
		       client_id[strlen(WIRE_CLOUD_ID_PREFIX)];
	if (bootstrap_user && !strcmp(username, bootstrap_user))
		return has_prefix(client_id, WIRE_BOOTSTRAP_ID_PREFIX) &&
		       client_id[strlen(WIRE_BOOTSTRAP_ID_PREFIX)];
	return !strcmp(username, client_id) && !wire_reserved_id(client_id);
}

size_t acct_payload_limit(const char *topic)
{
	const char *rest;
	size_t tl = strlen(topic);

	if (has_prefix(topic, "$CONTROL/"))
		return 0;
	/* et/v1/<serial>/register: a registration request */
	if (has_prefix(topic, "et/v1/") && tl > 15 && !strcmp(topic + tl - 9, "/register") &&
	    (rest = strchr(topic + 6, '/')) && rest == topic + tl - 9)
		return PROTO_MAX_REGISTER;
	return PROTO_MAX_PAYLOAD;
}

bool acct_retain_allowed(const char *serial, const char *topic)
{
	size_t sl;

	if (!serial)
		return false;
	sl = strlen(serial);
	if (strncmp(topic, "et/v1/", 6) || strncmp(topic + 6, serial, sl) || topic[6 + sl] != '/')
		return false;
	return !strcmp(topic + 7 + sl, "status") || !strcmp(topic + 7 + sl, "settings/reported");
}
