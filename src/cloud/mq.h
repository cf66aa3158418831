/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cloud's broker connection (libmosquitto, MQTT v5): connect and reconnect with backoff,
 * a queue of received messages, publishing, and synchronous dynamic-security commands
 * ($CONTROL/dynamic-security/v1, answers matched by correlationData, because every admin
 * client receives every answer).
 */
#ifndef ET_CLOUD_MQ_H
#define ET_CLOUD_MQ_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"

struct mq_msg {
	struct mq_msg *next;
	char *topic;
	char *payload; /* NUL-terminated copy (the NUL is not counted in len) */
	size_t len;
	bool retained;       /* delivered from the broker's retained store, not as it was sent */
	int64_t received_ms; /* the broker plugin's receive time (WIRE_RECEIVED_PROP), 0 if absent */
};
void mq_msg_free(struct mq_msg *m);

struct mq_config {
	const char *host;
	int port;
	const char *username;
	const et_secret *password; /* may be NULL */
	const char *client_id;
	bool tls;
	const char *cafile, *capath;
	int keepalive;
	/* > 0: persistent session (clean start off, this session expiry in seconds), so that the
	 * broker keeps QoS 1 messages for this consumer while it is away. Needs a fixed client_id. */
	unsigned session_expiry;
	const char *const *subscriptions; /* NULL-terminated, QoS 1, renewed on every connect */
};

struct mq;
int mq_new(const struct mq_config *cfg, struct mq **ret);
void mq_free(struct mq *q);
/* Connects, retrying with backoff until connected or *stop. fail_fast: a refused login on the
 * first attempt returns -2 at once (bad configuration, not an outage). */
int mq_connect_wait(struct mq *q, volatile sig_atomic_t *stop, bool fail_fast);
/* Runs the network loop for up to timeout_ms; reconnects (with backoff) when the link is lost. */
int mq_loop(struct mq *q, int timeout_ms, volatile sig_atomic_t *stop);
/* Takes up to max queued messages (oldest first) as a linked list. */
struct mq_msg *mq_take(struct mq *q, size_t max);
size_t mq_queued(const struct mq *q);
int mq_publish(struct mq *q, const char *topic, const void *payload, size_t len, int qos,
	       bool retain);
/* Sends a "commands" array (consumed) and waits for all answers. ret_errors[i] is NULL on
 * success or the plugin's error text (malloc'd; free with mq_errors_free). -1 on timeout. */
int mq_dynsec(struct mq *q, cJSON *commands, int timeout_ms, volatile sig_atomic_t *stop,
	      char ***ret_errors);
void mq_errors_free(char **errors, size_t n);
bool mq_connected(const struct mq *q);

#endif
