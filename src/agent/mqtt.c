/* SPDX-License-Identifier: Apache-2.0 */
/* MQTT v5 client thread around libmosquitto (see mqtt.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "mqtt.h"

struct et_mqtt {
	struct mosquitto *mosq;
	struct et_mqtt_opts o;
	char *host, *ca_file, *client_id, *username, *will_topic, *will_payload, *subs[4];
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	atomic_bool connected;
	atomic_bool disc_pushed; /* on_disconnect already reported this loop failure */
	bool with_will;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct et_mqtt_ev *head, *tail;
	int pipe[2];
};

static void push(struct et_mqtt *m, struct et_mqtt_ev *ev)
{
	char c = 1;

	pthread_mutex_lock(&m->lock);
	if (m->tail)
		m->tail->next = ev;
	else
		m->head = ev;
	m->tail = ev;
	pthread_mutex_unlock(&m->lock);
	/* The pipe is non-blocking: a full pipe already means "wake up". */
	if (write(m->pipe[1], &c, 1) < 0) {
	}
}

static void push_simple(struct et_mqtt *m, enum et_mqtt_ev_type t, int mid, int rc, bool sp)
{
	struct et_mqtt_ev *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return; /* out of memory: the event is lost; PUBACK loss means a resend later */
	ev->type = t;
	ev->mid = mid;
	ev->rc = rc;
	ev->session_present = sp;
	push(m, ev);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
		       const mosquitto_property *props)
{
	struct et_mqtt *m = obj;
	int i;

	if (rc != 0) {
		push_simple(m, ET_MQTT_EV_REFUSED, 0, rc, false);
		return;
	}
	for (i = 0; i < 4 && m->subs[i]; i++)
		mosquitto_subscribe_v5(mosq, NULL, m->subs[i], 1, 0, NULL);
	atomic_store(&m->disc_pushed, false);
	atomic_store(&m->connected, true);
	push_simple(m, ET_MQTT_EV_CONNECTED, 0, 0, flags & 1);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *p)
{
	struct et_mqtt *m = obj;

	if (atomic_exchange(&m->connected, false)) {
		atomic_store(&m->disc_pushed, true);
		push_simple(m, ET_MQTT_EV_DISCONNECTED, 0, rc, false);
	}
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int rc,
		       const mosquitto_property *p)
{
	push_simple(obj, ET_MQTT_EV_PUBACK, mid, rc, false);
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *p)
{
	struct et_mqtt_ev *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return;
	ev->type = ET_MQTT_EV_MESSAGE;
	ev->topic = strdup(msg->topic);
	ev->payload = malloc((size_t)msg->payloadlen + 1);
	if (!ev->topic || !ev->payload) {
		et_mqtt_ev_free(ev);
		return;
	}
	memcpy(ev->payload, msg->payload, (size_t)msg->payloadlen);
	ev->payload[msg->payloadlen] = 0;
	ev->len = (size_t)msg->payloadlen;
	push(obj, ev);
}

const char *et_mqtt_reason(int rc)
{
	if (rc >= 0x80)
		return mosquitto_reason_string(rc);
	return mosquitto_strerror(rc);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int et_mqtt_new(const struct et_mqtt_opts *o, struct et_mqtt **ret, char *errbuf, size_t errlen)
{
	struct et_mqtt *m = calloc(1, sizeof(*m));
	int rc, i;

	if (!m) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	m->pipe[0] = m->pipe[1] = -1;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->o = *o;
	m->host = dup_or_null(o->host);
	m->ca_file = dup_or_null(o->ca_file);
	m->client_id = dup_or_null(o->client_id);
	m->username = dup_or_null(o->username);
	m->will_topic = dup_or_null(o->will_topic);
	m->will_payload = dup_or_null(o->will_payload);
	for (i = 0; i < 4; i++)
		m->subs[i] = dup_or_null(o->subs[i]);
	if (pipe2(m->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	m->mosq = mosquitto_new(m->client_id, !o->persistent, m);
	if (!m->mosq) {
		snprintf(errbuf, errlen, "mosquitto_new: %s", strerror(errno));
		goto fail;
	}
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_threaded_set(m->mosq, true);
	mosquitto_connect_v5_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(m->mosq, on_publish);
	mosquitto_message_v5_callback_set(m->mosq, on_message);
	if (o->tls) {
		rc = mosquitto_tls_set(m->mosq, m->ca_file, m->ca_file ? NULL : "/etc/ssl/certs",
				       NULL, NULL, NULL);
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_tls_opts_set(m->mosq, 1 /* SSL_VERIFY_PEER */, "tlsv1.2", NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(errbuf, errlen, "TLS setup (ca_file %s): %s", m->ca_file ? m->ca_file : "system",
				 mosquitto_strerror(rc));
			goto fail;
		}
	}
	if (m->will_topic) {
		rc = mosquitto_will_set_v5(m->mosq, m->will_topic, (int)strlen(m->will_payload),
					   m->will_payload, 1, true, NULL);
		if (rc != MOSQ_ERR_SUCCESS) {
			snprintf(errbuf, errlen, "last will: %s", mosquitto_strerror(rc));
			goto fail;
		}
	}
	*ret = m;
	return 0;
fail:
	et_mqtt_free(m);
	return -1;
}

/* Sleeps up to ms, woken early by et_mqtt_stop. */
static void nap(struct et_mqtt *m, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	if (!atomic_load(&m->stop))
		pthread_cond_timedwait(&m->cond, &m->lock, &ts);
	pthread_mutex_unlock(&m->lock);
}

/* Waits out one failed attempt: backoff_ms plus up to a quarter of it at random, so devices that
 * lost the same broker do not come back in step; then doubles backoff_ms up to the cap. Used for
 * every failure, refused connections and sessions lost before or after CONNACK alike. */
static void backoff_nap(struct et_mqtt *m, long *backoff_ms, unsigned *seed)
{
	long max = (long)m->o.reconnect_max_s * 1000;
	long jitter = *backoff_ms / 4 > 0 ? (long)(rand_r(seed) % (unsigned)(*backoff_ms / 4 + 1)) : 0;

	nap(m, *backoff_ms + jitter);
	*backoff_ms = *backoff_ms * 2 > max ? max : *backoff_ms * 2;
}

static void *run(void *arg)
{
	struct et_mqtt *m = arg;
	mosquitto_property *props = NULL;
	long backoff_ms = (long)m->o.reconnect_min_s * 1000;
	bool socket_up = false;
	unsigned seed;

	/* A seed of its own per process: devices powered up together in the same second (and with
	 * the same heap layout, e.g. under ASan) must not draw the same jitter. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)m ^ (unsigned)getpid();
	if (backoff_ms <= 0)
		backoff_ms = 1000;
	if (m->o.persistent)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					     m->o.session_expiry_s);
	while (!atomic_load(&m->stop)) {
		int rc;

		if (!socket_up) {
			rc = mosquitto_connect_bind_v5(m->mosq, m->host, m->o.port, m->o.keepalive_s,
						       NULL, props);
			if (rc != MOSQ_ERR_SUCCESS) {
				push_simple(m, ET_MQTT_EV_DISCONNECTED, 0, rc, false);
				backoff_nap(m, &backoff_ms, &seed);
				continue;
			}
			socket_up = true;
		}
		rc = mosquitto_loop(m->mosq, 500, 1);
		if (atomic_load(&m->connected))
			backoff_ms = (long)m->o.reconnect_min_s * 1000 > 0 ? (long)m->o.reconnect_min_s * 1000 : 1000;
		if (rc != MOSQ_ERR_SUCCESS) {
			socket_up = false;
			/* Report every failure once: a lost session (unless on_disconnect already
			 * did), and also an attempt that failed after the socket was up but before
			 * CONNACK, e.g. a TLS handshake refused inside mosquitto_loop(). Whether the
			 * handshake fails in mosquitto_connect or here depends on timing. */
			atomic_store(&m->connected, false);
			if (!atomic_exchange(&m->disc_pushed, false))
				push_simple(m, ET_MQTT_EV_DISCONNECTED, 0, rc, false);
			backoff_nap(m, &backoff_ms, &seed);
		}
	}
	if (socket_up) {
		/* 0x04: "disconnect with will message" so the cloud sees online:false at once. */
		mosquitto_disconnect_v5(m->mosq, m->with_will ? 0x04 : 0, NULL);
		for (int i = 0; i < 10 && mosquitto_loop(m->mosq, 100, 1) == MOSQ_ERR_SUCCESS; i++) {
		}
	}
	mosquitto_property_free_all(&props);
	return NULL;
}

int et_mqtt_start(struct et_mqtt *m, const char *password)
{
	int rc = mosquitto_username_pw_set(m->mosq, m->username, password);

	if (rc != MOSQ_ERR_SUCCESS)
		return rc;
	atomic_store(&m->stop, false);
	if (pthread_create(&m->thread, NULL, run, m) != 0)
		return MOSQ_ERR_ERRNO;
	m->thread_started = true;
	return 0;
}

void et_mqtt_stop(struct et_mqtt *m, bool with_will)
{
	if (!m || !m->thread_started)
		return;
	pthread_mutex_lock(&m->lock);
	m->with_will = with_will;
	atomic_store(&m->stop, true);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	m->thread_started = false;
	atomic_store(&m->connected, false);
}

int et_mqtt_restart(struct et_mqtt *m, const char *username, const char *password)
{
	char *u = strdup(username);

	if (!u)
		return MOSQ_ERR_NOMEM;
	et_mqtt_stop(m, false);
	free(m->username);
	m->username = u;
	return et_mqtt_start(m, password);
}

void et_mqtt_free(struct et_mqtt *m)
{
	struct et_mqtt_ev *ev;
	int i;

	if (!m)
		return;
	et_mqtt_stop(m, false);
	if (m->mosq)
		mosquitto_destroy(m->mosq);
	while ((ev = m->head)) {
		m->head = ev->next;
		et_mqtt_ev_free(ev);
	}
	if (m->pipe[0] >= 0)
		close(m->pipe[0]);
	if (m->pipe[1] >= 0)
		close(m->pipe[1]);
	free(m->host);
	free(m->ca_file);
	free(m->client_id);
	free(m->username);
	free(m->will_topic);
	free(m->will_payload);
	for (i = 0; i < 4; i++)
		free(m->subs[i]);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

int et_mqtt_fd(struct et_mqtt *m)
{
	return m->pipe[0];
}

struct et_mqtt_ev *et_mqtt_next(struct et_mqtt *m)
{
	struct et_mqtt_ev *ev;
	char buf[256];

	while (read(m->pipe[0], buf, sizeof(buf)) > 0) {
	}
	pthread_mutex_lock(&m->lock);
	ev = m->head;
	if (ev) {
		m->head = ev->next;
		if (!m->head)
			m->tail = NULL;
		ev->next = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	return ev;
}

void et_mqtt_ev_free(struct et_mqtt_ev *ev)
{
	if (!ev)
		return;
	free(ev->topic);
	free(ev->payload);
	free(ev);
}

int et_mqtt_publish(struct et_mqtt *m, const char *topic, const void *payload, size_t len,
		    bool retain, int *ret_mid)
{
	return mosquitto_publish_v5(m->mosq, ret_mid, topic, (int)len, payload, 1, retain, NULL);
}

bool et_mqtt_connected(struct et_mqtt *m)
{
	return atomic_load(&m->connected);
}
