/* SPDX-License-Identifier: Apache-2.0 */
/* Registration request parsing and reply / credential building (docs/protocol.md). */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"
#include "proto.h"

bool proto_serial_ok(const char *s)
{
	return s && et_serial_validate(s) == 0;
}

bool proto_topic_split(const char *topic, char serial[65], const char **ret_rest)
{
	const char *p, *slash;

	if (strncmp(topic, "et/v1/", 6))
		return false;
	p = topic + 6;
	slash = strchr(p, '/');
	if (!slash || slash == p || slash - p > 64)
		return false;
	memcpy(serial, p, (size_t)(slash - p));
	serial[slash - p] = '\0';
	if (!proto_serial_ok(serial))
		return false;
	*ret_rest = slash + 1;
	return true;
}

static bool hex_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return true;
}

void reg_req_clear(struct reg_req *r)
{
	free(r->pem);
	memset(r, 0, sizeof(*r));
}

int proto_parse_register(const char *topic_serial, const void *payload, size_t len,
			 struct reg_req *ret, char *reason, size_t reason_len)
{
	cJSON *root = NULL, *j;
	struct reg_req req = { 0 };
	int r = -1;

	if (len > PROTO_MAX_REGISTER) {
		snprintf(reason, reason_len, "payload too large (%zu bytes, limit %d)", len,
			 PROTO_MAX_REGISTER);
		goto out;
	}
	if (len == 0 || memchr(payload, '\0', len)) {
		snprintf(reason, reason_len, "payload is not JSON text");
		goto out;
	}
	root = cJSON_ParseWithLength(payload, len);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(reason, reason_len, "malformed JSON");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!cJSON_IsNumber(j) || j->valuedouble != 1) {
		snprintf(reason, reason_len, "unsupported protocol version (\"v\" must be 1)");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "serial");
	if (!cJSON_IsString(j) || !proto_serial_ok(j->valuestring)) {
		snprintf(reason, reason_len, "missing or invalid \"serial\"");
		goto out;
	}
	if (strcmp(j->valuestring, topic_serial)) {
		snprintf(reason, reason_len, "serial in payload differs from the topic");
		goto out;
	}
	snprintf(req.serial, sizeof(req.serial), "%s", j->valuestring);
	j = cJSON_GetObjectItemCaseSensitive(root, "nonce");
	if (j) {
		if (!cJSON_IsString(j) || !hex_ok(j->valuestring, 64)) {
			snprintf(reason, reason_len, "invalid \"nonce\" (up to 64 hex digits)");
			goto out;
		}
		snprintf(req.nonce, sizeof(req.nonce), "%s", j->valuestring);
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "pubkey_pem");
	if (!cJSON_IsString(j)) {
		snprintf(reason, reason_len, "missing \"pubkey_pem\"");
		goto out;
	}
	int e = et_pem_check_rsa(j->valuestring, 2048);
	if (e < 0) {
		snprintf(reason, reason_len, "unacceptable public key: %s", et_errmsg());
		goto out;
	}
	if (et_pem_fingerprint(j->valuestring, req.fpr) < 0) {
		snprintf(reason, reason_len, "unacceptable public key: %s", et_errmsg());
		goto out;
	}
	req.pem = strdup(j->valuestring);
	if (!req.pem) {
		snprintf(reason, reason_len, "out of memory");
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
	if (j && (!cJSON_IsString(j) || strcasecmp(j->valuestring, req.fpr))) {
		snprintf(reason, reason_len,
			 "\"fingerprint\" is not the SHA-256 of the key's SubjectPublicKeyInfo");
		goto out;
	}
	*ret = req;
	memset(&req, 0, sizeof(req));
	r = 0;
out:
	reg_req_clear(&req);
	cJSON_Delete(root);
	return r;
}

char *proto_reply(const char *serial, const char *status, const char *reason, const char *nonce,
		  int64_t cred_version, const char *envelope_b64)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "serial", serial);
	cJSON_AddStringToObject(o, "status", status);
	if (reason && *reason)
		cJSON_AddStringToObject(o, "reason", reason);
	if (nonce && *nonce)
		cJSON_AddStringToObject(o, "nonce", nonce);
	if (cred_version > 0)
		cJSON_AddNumberToObject(o, "cred_version", (double)cred_version);
	if (envelope_b64)
		cJSON_AddStringToObject(o, "envelope", envelope_b64);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

char *proto_credentials(const char *host, int port, bool tls, const char *username,
			const char *password, const char *client_id, const char *ca_pem,
			int64_t cred_version)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "host", host);
	cJSON_AddNumberToObject(o, "port", port);
	cJSON_AddBoolToObject(o, "tls", tls);
	cJSON_AddStringToObject(o, "username", username);
	cJSON_AddStringToObject(o, "password", password);
	cJSON_AddStringToObject(o, "client_id", client_id);
	if (ca_pem)
		cJSON_AddStringToObject(o, "ca_pem", ca_pem);
	cJSON_AddNumberToObject(o, "cred_version", (double)cred_version);
	s = cJSON_PrintUnformatted(o);
	/* cJSON keeps its own copy of the password: wipe it before the tree is freed. */
	cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "password");
	if (pw && pw->valuestring)
		OPENSSL_cleanse(pw->valuestring, strlen(pw->valuestring));
	cJSON_Delete(o);
	return s;
}

char *proto_b64(const uint8_t *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int proto_password(char out[33])
{
	uint8_t raw[24];
	char tmp[33];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)tmp, raw, sizeof(raw));
	for (int i = 0; i < 32; i++)
		out[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
	out[32] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}
