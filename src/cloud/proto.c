/* SPDX-License-Identifier: Apache-2.0 */
/* Registration request parsing, reply / credential building and telemetry acknowledgements
 * (docs/protocol.md). */
#include <cjson/cJSON.h>
#include <inttypes.h>
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
	et_pubkey_free(r->key);
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
	/* The only decoding of this PEM in the request: checks (RSA >= 2048 bits), fingerprint,
	 * and later the sealing all use the parsed key. */
	if (et_pubkey_from_pem(j->valuestring, &req.key) < 0) {
		snprintf(reason, reason_len, "unacceptable public key: %s", et_errmsg());
		goto out;
	}
	snprintf(req.fpr, sizeof(req.fpr), "%s", et_pubkey_fingerprint(req.key));
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

bool proto_epoch(const struct cJSON *j, int64_t *ret)
{
	double d;

	if (!j) {
		*ret = 0;
		return true;
	}
	if (!cJSON_IsNumber(j))
		return false;
	d = j->valuedouble;
	/* Range first: the cast is undefined outside. */
	if (!(d >= 0 && d <= (double)PROTO_MAX_EPOCH) || (double)(int64_t)d != d)
		return false;
	*ret = (int64_t)d;
	return true;
}

/* ---- telemetry acknowledgements ---------------------------------------------------------- */

/* One device and spool epoch (a batch may hold a device's messages of two epochs). */
struct ack_dev {
	char serial[65];
	int64_t epoch;
	int64_t *seq;
	size_t n, cap;
};

struct proto_acks {
	struct ack_dev *dev;
	size_t n, cap;
	size_t last; /* records of one message share a serial: look there first */
};

struct proto_acks *proto_acks_new(void)
{
	return calloc(1, sizeof(struct proto_acks));
}

void proto_acks_free(struct proto_acks *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->dev[i].seq);
	free(a->dev);
	free(a);
}

int proto_acks_add(struct proto_acks *a, const char *serial, int64_t epoch, int64_t seq)
{
	struct ack_dev *d = NULL;

	if (a->last < a->n && a->dev[a->last].epoch == epoch &&
	    !strcmp(a->dev[a->last].serial, serial)) {
		d = &a->dev[a->last];
	} else {
		for (size_t i = 0; i < a->n && !d; i++)
			if (a->dev[i].epoch == epoch && !strcmp(a->dev[i].serial, serial)) {
				d = &a->dev[i];
				a->last = i;
			}
	}
	if (!d) {
		if (a->n == a->cap) {
			size_t nc = a->cap ? a->cap * 2 : 16;
			struct ack_dev *nd = realloc(a->dev, nc * sizeof(*nd));
			if (!nd)
				return -1;
			a->dev = nd;
			a->cap = nc;
		}
		d = &a->dev[a->n];
		memset(d, 0, sizeof(*d));
		snprintf(d->serial, sizeof(d->serial), "%s", serial);
		d->epoch = epoch;
		a->last = a->n++;
	}
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 128;
		int64_t *ns = realloc(d->seq, nc * sizeof(*ns));
		if (!ns)
			return -1;
		d->seq = ns;
		d->cap = nc;
	}
	d->seq[d->n++] = seq;
	return 0;
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return a < b ? -1 : a > b;
}

/* "[lo,hi]" ranges as JSON text; the format is fixed and small, so no cJSON (whose numbers are
 * doubles) is needed. */
static void emit_dev(struct ack_dev *d, proto_ack_fn fn, void *ud)
{
	/* {"v":1,"serial":"<64>","epoch":<20>,"ranges":[ + ranges of up to 2 * 20 digits + "[,],"]
	 * + ]} */
	size_t cap = 64 + 110 + (size_t)PROTO_ACK_MAX_RANGES * 46;
	char *buf = malloc(cap);
	size_t i = 0;

	if (!buf)
		return;
	qsort(d->seq, d->n, sizeof(*d->seq), cmp_i64);
	while (i < d->n) {
		size_t len = (size_t)snprintf(buf, cap, "{\"v\":1,\"serial\":\"%s\",\"epoch\":%" PRId64
					      ",\"ranges\":[", d->serial, d->epoch);
		int nr = 0;
		while (i < d->n && nr < PROTO_ACK_MAX_RANGES) {
			int64_t lo = d->seq[i], hi = lo;
			while (i + 1 < d->n && d->seq[i + 1] <= hi + 1)
				hi = d->seq[++i];
			i++;
			len += (size_t)snprintf(buf + len, cap - len, "%s[%" PRId64 ",%" PRId64 "]",
						nr ? "," : "", lo, hi);
			nr++;
		}
		len += (size_t)snprintf(buf + len, cap - len, "]}");
		fn(d->serial, buf, len, ud);
	}
	free(buf);
}

void proto_acks_emit(struct proto_acks *a, proto_ack_fn fn, void *ud)
{
	for (size_t i = 0; a && i < a->n; i++)
		emit_dev(&a->dev[i], fn, ud);
}
