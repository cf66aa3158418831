/* SPDX-License-Identifier: Apache-2.0 */
/* libmosquitto wrapper for edgetrust-cloud (see mq.h). */
#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mq.h"
#include "wire.h"

#define DYNSEC_TOPIC "$CONTROL/dynamic-security/v1"
#define DYNSEC_RESPONSE DYNSEC_TOPIC "/response"

struct mq {
	struct mosquitto *m;
	struct mq_config cfg;
	bool connected;
	int last_connack; /* -1 none yet */
	struct mq_msg *head, *tail;
	size_t queued;
	/* dynsec request in flight */
	char corr_prefix[96];
	unsigned long batch;
	size_t expect, got;
	char **errors;
	bool *seen;
};

void mq_msg_free(struct mq_msg *m)
{
	while (m) {
		struct mq_msg *n = m->next;
		free(m->topic);
		free(m->payload);
		free(m);
		m = n;
	}
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags, const mosquitto_property *props)
{
	struct mq *q = obj;
	(void)flags;
	(void)props;
	q->last_connack = rc;
	if (rc != 0) {
		cl_log(CL_ERR, "broker %s:%d refused the login of '%s': %s", q->cfg.host, q->cfg.port,
		       q->cfg.username ? q->cfg.username : "", mosquitto_reason_string(rc));
		return;
	}
	q->connected = true;
	cl_log(CL_INFO, "connected to broker %s:%d as '%s' (client id %s)", q->cfg.host, q->cfg.port,
	       q->cfg.username ? q->cfg.username : "", q->cfg.client_id);
	for (const char *const *s = q->cfg.subscriptions; s && *s; s++) {
		int r = mosquitto_subscribe_v5(m, NULL, *s, 1, 0, NULL);
		if (r != MOSQ_ERR_SUCCESS)
			cl_log(CL_ERR, "subscribe %s: %s", *s, mosquitto_strerror(r));
	}
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	struct mq *q = obj;
	(void)m;
	(void)props;
	if (q->connected)
		cl_log(CL_WARNING, "disconnected from broker: %s",
		       rc ? mosquitto_reason_string(rc) : "on request");
	q->connected = false;
}

static void dynsec_answer(struct mq *q, const char *payload, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(payload, len), *resp, *it;
	size_t plen = strlen(q->corr_prefix);

	if (!root)
		return;
	resp = cJSON_GetObjectItemCaseSensitive(root, "responses");
	cJSON_ArrayForEach(it, resp)
	{
		cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "correlationData");
		cJSON *e = cJSON_GetObjectItemCaseSensitive(it, "error");
		char *end;
		if (!cJSON_IsString(c) || strncmp(c->valuestring, q->corr_prefix, plen))
			continue;
		unsigned long idx = strtoul(c->valuestring + plen, &end, 10);
		if (*end || idx >= q->expect || q->seen[idx])
			continue;
		q->seen[idx] = true;
		q->got++;
		if (cJSON_IsString(e))
			q->errors[idx] = strdup(e->valuestring);
	}
	cJSON_Delete(root);
}

/* The broker plugin's receive time of a registration request: the last WIRE_RECEIVED_PROP
 * (the plugin removes any the client sent), 0 when absent or malformed. */
static int64_t received_ms(const mosquitto_property *props)
{
	const mosquitto_property *p = props;
	int64_t ms = 0;
	bool skip = false;

	for (;;) {
		char *name = NULL, *value = NULL;
		p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
		if (!p)
			break;
		skip = true;
		if (name && value && !strcmp(name, WIRE_RECEIVED_PROP)) {
			char *end;
			errno = 0;
			long long v = strtoll(value, &end, 10);
			ms = errno || *end || end == value || v <= 0 ? 0 : (int64_t)v;
		}
		free(name);
		free(value);
	}
	return ms;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct mq *q = obj;
	struct mq_msg *n;
	(void)m;

	if (!strcmp(msg->topic, DYNSEC_RESPONSE)) {
		if (q->expect)
			dynsec_answer(q, msg->payload, (size_t)msg->payloadlen);
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto nomem;
	n->topic = strdup(msg->topic);
	n->payload = malloc((size_t)msg->payloadlen + 1);
	if (!n->topic || !n->payload)
		goto nomem;
	memcpy(n->payload, msg->payload, (size_t)msg->payloadlen);
	n->payload[msg->payloadlen] = '\0';
	n->len = (size_t)msg->payloadlen;
	n->retained = msg->retain;
	n->received_ms = received_ms(props);
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	q->queued++;
	return;
nomem:
	cl_log(CL_ERR, "out of memory: dropped a message on %s", msg->topic);
	mq_msg_free(n);
}

int mq_new(const struct mq_config *cfg, struct mq **ret)
{
	struct mq *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -1;
	q->cfg = *cfg;
	q->last_connack = -1;
	mosquitto_lib_init();
	q->m = mosquitto_new(cfg->client_id, cfg->session_expiry == 0, q);
	if (!q->m) {
		cl_log(CL_ERR, "mosquitto_new failed (out of memory or bad client id)");
		free(q);
		return -1;
	}
	mosquitto_int_option(q->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_connect_v5_callback_set(q->m, on_connect);
	mosquitto_disconnect_v5_callback_set(q->m, on_disconnect);
	mosquitto_message_v5_callback_set(q->m, on_message);
	/* Many replies in flight at once: the broker's receive maximum still applies. */
	mosquitto_max_inflight_messages_set(q->m, 0);
	if (cfg->username) {
		char *pw = NULL;
		if (cfg->password) {
			size_t n = et_secret_len(cfg->password);
			pw = calloc(1, n + 1);
			if (!pw)
				goto fail;
			memcpy(pw, et_secret_data((et_secret *)cfg->password), n);
			pw[strcspn(pw, "\r\n")] = '\0';
		}
		r = mosquitto_username_pw_set(q->m, cfg->username, pw);
		if (pw) {
			explicit_bzero(pw, strlen(pw));
			free(pw);
		}
		if (r != MOSQ_ERR_SUCCESS)
			goto fail;
	}
	if (cfg->tls || cfg->cafile || cfg->capath) {
		r = mosquitto_tls_set(q->m, cfg->cafile, cfg->capath, NULL, NULL, NULL);
		if (r != MOSQ_ERR_SUCCESS) {
			cl_log(CL_ERR, "TLS setup failed (%s): give --broker-cafile or --broker-capath",
			       mosquitto_strerror(r));
			goto fail;
		}
	}
	*ret = q;
	return 0;
fail:
	mosquitto_destroy(q->m);
	free(q);
	return -1;
}

void mq_free(struct mq *q)
{
	if (!q)
		return;
	if (q->connected) {
		mosquitto_disconnect_v5(q->m, 0, NULL);
		mosquitto_loop(q->m, 100, 1);
	}
	mosquitto_destroy(q->m);
	mq_msg_free(q->head);
	free(q);
	mosquitto_lib_cleanup();
}

bool mq_connected(const struct mq *q)
{
	return q->connected;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for CONNACK after a (re)connect call. 0 connected, -2 refused, -1 other failure. */
static int await_connack(struct mq *q, volatile sig_atomic_t *stop)
{
	int64_t deadline = now_ms() + 10000;

	q->last_connack = -1;
	while (!*stop && now_ms() < deadline) {
		int r = mosquitto_loop(q->m, 100, 1);
		if (q->connected)
			return 0;
		if (q->last_connack > 0)
			return -2;
		if (r != MOSQ_ERR_SUCCESS)
			return -1;
	}
	return -1;
}

int mq_connect_wait(struct mq *q, volatile sig_atomic_t *stop, bool fail_fast)
{
	int backoff = 250, attempt = 0;

	while (!*stop) {
		int r;
		if (attempt == 0) {
			mosquitto_property *props = NULL;
			if (q->cfg.session_expiry)
				mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
							     q->cfg.session_expiry);
			/* libmosquitto keeps a copy of the properties for every reconnect. */
			r = mosquitto_connect_bind_v5(q->m, q->cfg.host, q->cfg.port, q->cfg.keepalive,
						      NULL, props);
			mosquitto_property_free_all(&props);
		} else {
			r = mosquitto_reconnect(q->m);
		}
		attempt++;
		if (r == MOSQ_ERR_SUCCESS) {
			r = await_connack(q, stop);
			if (r == 0)
				return 0;
			if (r == -2 && fail_fast && attempt == 1)
				return -2;
		} else {
			cl_log(CL_WARNING, "cannot reach broker %s:%d: %s (retrying in %d ms)",
			       q->cfg.host, q->cfg.port,
			       r == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(r), backoff);
		}
		for (int waited = 0; waited < backoff && !*stop; waited += 50)
			sleep_ms(50);
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
	return -1;
}

int mq_loop(struct mq *q, int timeout_ms, volatile sig_atomic_t *stop)
{
	int r = mosquitto_loop(q->m, timeout_ms, 1);

	if (r == MOSQ_ERR_SUCCESS && q->connected)
		return 0;
	if (*stop)
		return -1;
	q->connected = false;
	cl_log(CL_WARNING, "broker connection lost (%s); reconnecting", mosquitto_strerror(r));
	return mq_connect_wait(q, stop, false);
}

struct mq_msg *mq_take(struct mq *q, size_t max)
{
	struct mq_msg *first = q->head, *last = NULL, *it = q->head;
	size_t n = 0;

	while (it && n < max) {
		last = it;
		it = it->next;
		n++;
	}
	if (!last)
		return NULL;
	q->head = it;
	if (!it)
		q->tail = NULL;
	last->next = NULL;
	q->queued -= n;
	return first;
}

size_t mq_queued(const struct mq *q)
{
	return q->queued;
}

int mq_publish(struct mq *q, const char *topic, const void *payload, size_t len, int qos,
	       bool retain)
{
	int r = mosquitto_publish_v5(q->m, NULL, topic, (int)len, payload, qos, retain, NULL);
	if (r != MOSQ_ERR_SUCCESS) {
		cl_log(CL_ERR, "publish to %s failed: %s", topic, mosquitto_strerror(r));
		return -1;
	}
	return 0;
}

void mq_errors_free(char **errors, size_t n)
{
	if (!errors)
		return;
	for (size_t i = 0; i < n; i++)
		free(errors[i]);
	free(errors);
}

/* Wipes every "password" string in a command tree before it is freed. */
static void wipe_passwords(cJSON *node)
{
	cJSON *it;
	if (!node)
		return;
	cJSON_ArrayForEach(it, node)
	{
		if (cJSON_IsString(it) && it->string && !strcmp(it->string, "password") && it->valuestring)
			explicit_bzero(it->valuestring, strlen(it->valuestring));
		else if (cJSON_IsObject(it) || cJSON_IsArray(it))
			wipe_passwords(it);
	}
}

int mq_dynsec(struct mq *q, cJSON *commands, int timeout_ms, volatile sig_atomic_t *stop,
	      char ***ret_errors)
{
	size_t n = (size_t)cJSON_GetArraySize(commands), i = 0;
	cJSON *root = NULL, *it;
	char *text = NULL;
	int r = -1;
	int64_t deadline;

	q->batch++;
	snprintf(q->corr_prefix, sizeof(q->corr_prefix), "%s:%lu:", q->cfg.client_id, q->batch);
	q->errors = calloc(n + 1, sizeof(char *));
	q->seen = calloc(n + 1, sizeof(bool));
	if (!q->errors || !q->seen)
		goto out;
	cJSON_ArrayForEach(it, commands)
	{
		char corr[128];
		snprintf(corr, sizeof(corr), "%s%zu", q->corr_prefix, i++);
		cJSON_DeleteItemFromObjectCaseSensitive(it, "correlationData");
		cJSON_AddStringToObject(it, "correlationData", corr);
	}
	root = cJSON_CreateObject();
	if (!root)
		goto out;
	cJSON_AddItemToObject(root, "commands", commands);
	commands = NULL;
	text = cJSON_PrintUnformatted(root);
	if (!text)
		goto out;
	q->expect = n;
	q->got = 0;
	if (mq_publish(q, DYNSEC_TOPIC, text, strlen(text), 1, false) < 0)
		goto out;
	deadline = now_ms() + timeout_ms;
	while (q->got < n && !*stop && now_ms() < deadline) {
		int lr = mosquitto_loop(q->m, 50, 1);
		if (lr != MOSQ_ERR_SUCCESS || !q->connected) {
			cl_log(CL_ERR, "broker connection lost while waiting for dynamic-security answers");
			goto out;
		}
	}
	if (q->got < n) {
		cl_log(CL_ERR, "dynamic-security plugin answered %zu of %zu commands within %d ms "
			       "(is the plugin loaded and the cloud login allowed $CONTROL/dynamic-security/#?)",
		       q->got, n, timeout_ms);
		goto out;
	}
	*ret_errors = q->errors;
	q->errors = NULL;
	r = 0;
out:
	/* The command text holds device passwords in clear: wipe it. */
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	wipe_passwords(root);
	wipe_passwords(commands);
	cJSON_Delete(root);
	cJSON_Delete(commands);
	mq_errors_free(q->errors, n);
	q->errors = NULL;
	free(q->seen);
	q->seen = NULL;
	q->expect = 0;
	return r;
}
