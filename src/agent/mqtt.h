/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's MQTT v5 connection. libmosquitto runs in one network thread of ours (not
 * mosquitto_loop_start: libmosquitto 2.0.11 drops the session-expiry property when it
 * reconnects by itself, so we reconnect with mosquitto_connect_bind_v5 each time). Callbacks
 * never touch agent state: they queue events and wake the main thread through a pipe, so
 * SQLite, the TPM and all agent state stay on the main thread. Publishing from the main thread
 * is safe (mosquitto_threaded_set).
 */
#ifndef EDGETRUST_AGENT_MQTT_H
#define EDGETRUST_AGENT_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct et_mqtt;

struct et_mqtt_opts {
	const char *host;
	int port;
	bool tls;
	const char *ca_file;      /* NULL: system trust store */
	const char *client_id;
	const char *username;
	int keepalive_s;
	int reconnect_min_s, reconnect_max_s;
	bool persistent;          /* clean_start=false + session expiry */
	uint32_t session_expiry_s;
	const char *will_topic;   /* retained QoS 1 last will, may be NULL */
	const char *will_payload;
	const char *subs[4];      /* QoS 1 subscriptions made after every CONNACK */
};

enum et_mqtt_ev_type {
	ET_MQTT_EV_CONNECTED,     /* CONNACK success; session_present set */
	ET_MQTT_EV_REFUSED,       /* CONNACK refused; rc = MQTT v5 reason code */
	ET_MQTT_EV_DISCONNECTED,  /* connection lost (rc = libmosquitto/v5 reason) */
	ET_MQTT_EV_PUBACK,        /* mid acknowledged; rc = reason code (>= 0x80: refused) */
	ET_MQTT_EV_MESSAGE,       /* topic, payload, len */
};

struct et_mqtt_ev {
	enum et_mqtt_ev_type type;
	int mid;
	int rc;
	bool session_present;
	char *topic;
	uint8_t *payload;
	size_t len;
	struct et_mqtt_ev *next;
};

/* Creates the client (not connected). errbuf gets the reason on failure. */
int et_mqtt_new(const struct et_mqtt_opts *o, struct et_mqtt **ret, char *errbuf, size_t errlen);
/*
 * Sets the password (libmosquitto keeps its own copy for reconnects; see docs/edgetrustd.md)
 * and starts the network thread, which connects and reconnects with backoff until stopped.
 */
int et_mqtt_start(struct et_mqtt *m, const char *password);
/* Stops, changes the login (for credential rotation) and starts again. */
int et_mqtt_restart(struct et_mqtt *m, const char *username, const char *password);
/* Disconnects (with the will published when with_will) and joins the thread. */
void et_mqtt_stop(struct et_mqtt *m, bool with_will);
void et_mqtt_free(struct et_mqtt *m);
/* Read end of the wake-up pipe, for poll(). */
int et_mqtt_fd(struct et_mqtt *m);
/* Pops the next event (caller frees with et_mqtt_ev_free), NULL when none. Drains the pipe. */
struct et_mqtt_ev *et_mqtt_next(struct et_mqtt *m);
void et_mqtt_ev_free(struct et_mqtt_ev *ev);
/* QoS 1 publish; *ret_mid gets the message id. 0 or a MOSQ_ERR_* (> 0). */
int et_mqtt_publish(struct et_mqtt *m, const char *topic, const void *payload, size_t len,
		    bool retain, int *ret_mid);
bool et_mqtt_connected(struct et_mqtt *m);
/* Text for a MQTT v5 reason code or libmosquitto error. */
const char *et_mqtt_reason(int rc);

#endif
