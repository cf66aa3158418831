/* SPDX-License-Identifier: Apache-2.0 */
/* Registration with the bootstrap login, and credential envelopes (see register.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <openssl/evp.h>

#include "config.h"
#include "register.h"
#include "../cloud/wire.h" /* client-id namespaces shared with the cloud and broker */
#include "tpmjob.h"

void et_creds_clear(struct et_creds *c)
{
	free(c->username);
	free(c->client_id);
	free(c->ca_pem);
	free(c->host);
	et_secret_free(c->password);
	memset(c, 0, sizeof(*c));
}

int et_b64_decode(const char *in, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(in), pad = 0;
	uint8_t *out;
	int len;

	if (n == 0 || n % 4 || n > (8u << 20))
		return -1;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return -1;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return -1;
	}
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	*ret = out;
	*ret_len = (size_t)len - pad;
	return 0;
}

static char *json_strdup(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

int et_creds_open(const char *tcti, uint32_t key_handle, const char *serial, const uint8_t *blob,
		  size_t len, struct et_creds *ret, char *errbuf, size_t errlen)
{
	char msg[384];
	et_secret *plain = NULL;
	et_envelope_info info;
	struct et_creds c = { 0 };
	cJSON *doc = NULL;
	const cJSON *pw, *cv, *port;
	int rc;

	/* In a short-lived helper process, so the TPM stack's memory is not ours (tpmjob.h). */
	rc = et_tpmjob_envelope_open(tcti, key_handle, serial, blob, len, &plain, &info, msg,
				     sizeof(msg));
	if (rc < 0) {
		snprintf(errbuf, errlen, "%s: %s", et_strerror(rc), msg);
		return rc;
	}
	/* cJSON's allocator wipes on free (installed in main.c), so the parse tree leaves nothing. */
	doc = cJSON_ParseWithLength((const char *)et_secret_data(plain), et_secret_len(plain));
	pw = cJSON_GetObjectItemCaseSensitive(doc, "password");
	cv = cJSON_GetObjectItemCaseSensitive(doc, "cred_version");
	port = cJSON_GetObjectItemCaseSensitive(doc, "port");
	c.username = json_strdup(doc, "username");
	if (!cJSON_IsObject(doc) || !cJSON_IsString(pw) || !c.username || !pw->valuestring[0]) {
		snprintf(errbuf, errlen, "the envelope's credentials are not the expected JSON (username, password)");
		rc = ET_E_ENVELOPE_FORMAT;
		goto out;
	}
	c.client_id = json_strdup(doc, "client_id");
	c.ca_pem = json_strdup(doc, "ca_pem");
	c.host = json_strdup(doc, "host");
	c.port = cJSON_IsNumber(port) ? port->valueint : 0;
	/* Out of uint32_t range cannot match the header: keep the conversion defined. */
	c.cred_version = !cJSON_IsNumber(cv) ? info.cred_version
			 : cv->valuedouble >= 0 && cv->valuedouble <= 4294967295.0
				 ? (uint32_t)cv->valuedouble
				 : info.cred_version + 1;
	if (c.cred_version != info.cred_version) {
		snprintf(errbuf, errlen, "the envelope header says cred_version %u but its content %u",
			 info.cred_version, c.cred_version);
		rc = ET_E_ENVELOPE_FORMAT;
		goto out;
	}
	rc = et_secret_new(strlen(pw->valuestring) + 1, &c.password);
	if (rc < 0) {
		snprintf(errbuf, errlen, "out of memory");
		goto out;
	}
	memcpy(et_secret_data(c.password), pw->valuestring, strlen(pw->valuestring) + 1);
	*ret = c;
	memset(&c, 0, sizeof(c));
	rc = 0;
out:
	cJSON_Delete(doc);
	et_secret_free(plain);
	et_creds_clear(&c);
	return rc;
}

struct et_reg {
	struct et_reg_params p;
	char *tcti; /* p.tcti points here */
	struct et_mqtt *mqtt;
	char topic_req[128], topic_reply[128];
	char nonce[33];
	int64_t next_send_ms; /* 0: not connected, nothing scheduled */
	int64_t backoff_ms;
	unsigned seed;
	char last_status[32];
	int last_err; /* last connection error logged, so each is logged once */
};

static void rlog(struct et_reg *r, et_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void rlog(struct et_reg *r, et_log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r->p.log)
		r->p.log(lvl, buf, r->p.ud);
}

int et_reg_new(const struct et_reg_params *p, struct et_reg **ret, char *errbuf, size_t errlen)
{
	struct et_reg *r = calloc(1, sizeof(*r));
	struct et_mqtt_opts o = p->mqtt;
	uint8_t rnd[16];
	int i;

	if (!r) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	r->p = *p;
	/* The daemon may replace its configuration (register map) while we wait. */
	r->tcti = strdup(p->tcti);
	r->p.tcti = r->tcti;
	if (!r->tcti) {
		snprintf(errbuf, errlen, "out of memory");
		free(r);
		return -1;
	}
	snprintf(r->topic_req, sizeof(r->topic_req), "et/v1/%s/register", p->serial);
	snprintf(r->topic_reply, sizeof(r->topic_reply), "et/v1/%s/register/reply", p->serial);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		snprintf(errbuf, errlen, "getrandom failed");
		et_reg_free(r);
		return -1;
	}
	for (i = 0; i < 16; i++)
		snprintf(r->nonce + 2 * i, 3, "%02x", rnd[i]);
	r->seed = (unsigned)rnd[0] << 8 | rnd[1];
	r->backoff_ms = 2000;
	/* The bootstrap login's own namespace (docs/protocol.md, "Client ids"): the broker refuses
	 * it any other id, so it can never take over the device's session (serial) or the cloud's.
	 * Random, so two devices registering at once do not kick each other. */
	char client_id[sizeof(WIRE_BOOTSTRAP_ID_PREFIX) + 32];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		snprintf(errbuf, errlen, "getrandom failed");
		et_reg_free(r);
		return -1;
	}
	memcpy(client_id, WIRE_BOOTSTRAP_ID_PREFIX, sizeof(WIRE_BOOTSTRAP_ID_PREFIX) - 1);
	for (i = 0; i < 16; i++)
		snprintf(client_id + sizeof(WIRE_BOOTSTRAP_ID_PREFIX) - 1 + 2 * i, 3, "%02x", rnd[i]);
	o.client_id = client_id;
	o.persistent = false; /* the broker refuses a bootstrap login that asks for a session */
	o.will_topic = NULL;
	o.subs[0] = r->topic_reply;
	o.subs[1] = NULL;
	if (et_mqtt_new(&o, &r->mqtt, errbuf, errlen) < 0) {
		et_reg_free(r);
		return -1;
	}
	if (et_mqtt_start(r->mqtt, p->bootstrap_password) != 0) {
		snprintf(errbuf, errlen, "could not start the MQTT thread");
		et_reg_free(r);
		return -1;
	}
	*ret = r;
	return 0;
}

void et_reg_free(struct et_reg *r)
{
	if (!r)
		return;
	et_mqtt_free(r->mqtt);
	free(r->tcti);
	free(r);
}

int et_reg_fd(struct et_reg *r)
{
	return et_mqtt_fd(r->mqtt);
}

int64_t et_reg_next_ms(struct et_reg *r)
{
	return r->next_send_ms ? r->next_send_ms : INT64_MAX;
}

static void send_request(struct et_reg *r, int64_t now_ms)
{
	cJSON *doc = cJSON_CreateObject();
	char *text;
	int64_t max = (int64_t)r->p.backoff_max_s * 1000, jitter;

	cJSON_AddNumberToObject(doc, "v", 1);
	cJSON_AddStringToObject(doc, "serial", r->p.serial);
	cJSON_AddStringToObject(doc, "pubkey_pem", r->p.pubkey_pem);
	cJSON_AddStringToObject(doc, "fingerprint", r->p.fingerprint);
	cJSON_AddStringToObject(doc, "agent_version", ET_VERSION);
	cJSON_AddStringToObject(doc, "nonce", r->nonce);
	text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (text && et_mqtt_publish(r->mqtt, r->topic_req, text, strlen(text), false, NULL) == 0)
		rlog(r, ET_LOG_INFO, "registration request sent for serial %s (key %.16s...)",
		     r->p.serial, r->p.fingerprint);
	free(text);
	if (max < 2000)
		max = 2000;
	jitter = (int64_t)(rand_r(&r->seed) % (unsigned)(r->backoff_ms / 2 + 1));
	r->next_send_ms = now_ms + r->backoff_ms + jitter;
	r->backoff_ms = r->backoff_ms * 2 > max ? max : r->backoff_ms * 2;
}

/* Returns 1 when the reply carried a usable envelope. */
static int on_reply(struct et_reg *r, const uint8_t *payload, size_t len, uint8_t **ret_blob,
		    size_t *ret_len, struct et_creds *ret_creds)
{
	cJSON *doc = cJSON_ParseWithLength((const char *)payload, len);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "status");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(doc, "reason");
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(doc, "nonce");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(doc, "envelope");
	const char *why = cJSON_IsString(reason) ? reason->valuestring : "";
	bool ours = cJSON_IsString(nonce) && strcmp(nonce->valuestring, r->nonce) == 0;
	uint8_t *blob = NULL;
	size_t blen = 0;
	et_envelope_info info;
	char err[512];
	int rc = 0;

	if (!cJSON_IsObject(doc) || !cJSON_IsString(st)) {
		rlog(r, ET_LOG_WARNING, "ignoring a malformed registration reply");
		goto out;
	}
	if (strcmp(st->valuestring, "accepted") == 0) {
		/* Any accepted reply is worth trying, even one answering an earlier request: the
		 * envelope authenticates itself by opening in our TPM. */
		if (!cJSON_IsString(env) || et_b64_decode(env->valuestring, &blob, &blen) < 0) {
			rlog(r, ET_LOG_WARNING, "registration reply 'accepted' without a valid envelope");
			goto out;
		}
		if (et_envelope_inspect(blob, blen, &info) < 0) {
			rlog(r, ET_LOG_WARNING, "registration reply: envelope malformed: %s", et_errmsg());
			goto out;
		}
		if (info.cred_version < r->p.min_cred_version) {
			rlog(r, ET_LOG_WARNING,
			     "registration reply: envelope cred_version %u is older than ours (%u); refused as a replay",
			     info.cred_version, r->p.min_cred_version);
			goto out;
		}
		if (et_creds_open(r->p.tcti, r->p.key_handle, r->p.serial, blob, blen, ret_creds, err,
				  sizeof(err)) < 0) {
			rlog(r, ours ? ET_LOG_WARNING : ET_LOG_INFO,
			     "registration reply 'accepted' but its envelope does not open here (%s)%s", err,
			     ours ? "" : "; probably an old answer for another key, still waiting");
			goto out;
		}
		rlog(r, ET_LOG_INFO, "registration accepted (credential version %u)", info.cred_version);
		*ret_blob = blob;
		*ret_len = blen;
		blob = NULL;
		rc = 1;
		goto out;
	}
	if (strcmp(st->valuestring, r->last_status) != 0 || ours) {
		if (strcmp(st->valuestring, "pending") == 0)
			rlog(r, ET_LOG_INFO,
			     "registration pending%s%s%s; the operator accepts it with `edgetrust-cloud accept %s`",
			     why[0] ? " (" : "", why, why[0] ? ")" : "", r->p.serial);
		else
			rlog(r, ET_LOG_WARNING, "registration %s%s%s%s", st->valuestring,
			     why[0] ? ": " : "", why, ours ? "" : " (answer to an earlier request)");
		snprintf(r->last_status, sizeof(r->last_status), "%s", st->valuestring);
	}
out:
	free(blob);
	cJSON_Delete(doc);
	return rc;
}

int et_reg_step(struct et_reg *r, int64_t now_ms, uint8_t **ret_blob, size_t *ret_len,
		struct et_creds *ret_creds)
{
	struct et_mqtt_ev *ev;
	int done = 0;

	while (!done && (ev = et_mqtt_next(r->mqtt))) {
		switch (ev->type) {
		case ET_MQTT_EV_CONNECTED:
			r->last_err = 0;
			rlog(r, ET_LOG_INFO, "connected to the broker with the bootstrap login");
			send_request(r, now_ms);
			break;
		case ET_MQTT_EV_REFUSED:
			rlog(r, ET_LOG_ERR,
			     "the broker refused the bootstrap login: %s (check bootstrap_username and bootstrap_password_file)",
			     et_mqtt_reason(ev->rc));
			break;
		case ET_MQTT_EV_DISCONNECTED:
			r->next_send_ms = 0;
			if (ev->rc != r->last_err)
				rlog(r, ET_LOG_WARNING, "bootstrap connection: %s%s; retrying",
				     et_mqtt_reason(ev->rc),
				     ev->rc == MOSQ_ERR_TLS ? " (check ca_file and that the broker's certificate "
							      "names the configured host)" : "");
			r->last_err = ev->rc;
			break;
		case ET_MQTT_EV_MESSAGE:
			if (strcmp(ev->topic, r->topic_reply) == 0)
				done = on_reply(r, ev->payload, ev->len, ret_blob, ret_len, ret_creds);
			break;
		case ET_MQTT_EV_PUBACK:
			break;
		}
		et_mqtt_ev_free(ev);
	}
	if (!done && r->next_send_ms && now_ms >= r->next_send_ms && et_mqtt_connected(r->mqtt))
		send_request(r, now_ms);
	return done;
}
