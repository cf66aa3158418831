/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus model (modbus_bus.h): bus partitioning, the worker threads, and the bounded queue of
 * readings and log lines from the workers to the main thread.
 *
 * Ownership: a worker alone touches its et_poller and so its libmodbus contexts (never shared
 * between threads). Everything else in struct bus and struct et_buses is under et_buses.mu;
 * the main thread hands a worker a new poller (built here, with no connection open) or a new
 * poll interval through its mailbox, and the worker takes them between cycles.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "modbus_bus.h"

#define BUS_KEY_MAX (ET_CFG_STR_MAX + 16)
#define DRAIN_CHUNK 256

struct qitem {
	char device[ET_CFG_NAME_MAX + 1];
	char point[ET_CFG_NAME_MAX + 1];
	char unit[ET_CFG_UNIT_MAX + 1];
	double value;
	int64_t ts_ms;
	enum et_quality q;
	int exc;
};

struct qlog {
	et_log_level level;
	char msg[256];
};

struct bus {
	struct et_buses *owner;
	char key[BUS_KEY_MAX];
	pthread_t thread;
	pthread_cond_t cond; /* wakes the worker: mailbox, stop */
	struct et_poller *poller; /* the worker's alone */
	atomic_bool quit;         /* stop as set, read by the poller between groups without mu */
	/* under owner->mu */
	bool stop, exited;
	struct et_poller *pending;      /* to adopt before the next cycle */
	size_t n_names;                 /* devices on this bus */
	char (*names)[ET_CFG_NAME_MAX + 1];
	unsigned *pending_ms;           /* per device: a new poll interval, 0 = none */
	struct et_poller_stats stats;   /* copied after each cycle */
};

struct et_buses {
	pthread_mutex_t mu;
	int efd;
	et_poller_log_fn log;
	void *log_ud;
	/* under mu */
	struct qitem *q;
	size_t qmax, qhead, qlen;
	struct qlog logs[ET_BUS_LOG_MAX];
	size_t lhead, llen;
	uint64_t logs_dropped, dropped, dropped_total;
	size_t n;
	struct bus **buses;
	size_t n_retired;
	struct bus **retired;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake_main(struct et_buses *o)
{
	uint64_t one = 1;

	/* Only fails when the counter would overflow: the main thread is woken already. */
	if (write(o->efd, &one, sizeof(one)) < 0) {
	}
}

/* ---- worker side ---------------------------------------------------------------------------- */

static void bus_reading(const struct et_reading *r, void *ud)
{
	struct bus *b = ud;
	struct et_buses *o = b->owner;
	struct qitem *it;

	pthread_mutex_lock(&o->mu);
	if (o->qlen == o->qmax) {
		/* The main thread is behind: keep what is queued (older), count this one. */
		o->dropped++;
		o->dropped_total++;
		pthread_mutex_unlock(&o->mu);
		return;
	}
	it = &o->q[(o->qhead + o->qlen++) % o->qmax];
	snprintf(it->device, sizeof(it->device), "%s", r->device);
	snprintf(it->point, sizeof(it->point), "%s", r->point);
	snprintf(it->unit, sizeof(it->unit), "%s", r->unit ? r->unit : "");
	it->value = r->value;
	it->ts_ms = r->ts_ms;
	it->q = r->quality;
	it->exc = r->exception_code;
	pthread_mutex_unlock(&o->mu);
}

static void bus_log(et_log_level level, const char *msg, void *ud)
{
	struct bus *b = ud;
	struct et_buses *o = b->owner;

	pthread_mutex_lock(&o->mu);
	if (o->llen == ET_BUS_LOG_MAX) {
		o->logs_dropped++;
	} else {
		struct qlog *l = &o->logs[(o->lhead + o->llen++) % ET_BUS_LOG_MAX];

		l->level = level;
		snprintf(l->msg, sizeof(l->msg), "%s", msg);
	}
	pthread_mutex_unlock(&o->mu);
	wake_main(o);
}

static bool bus_cancelled(void *ud)
{
	struct bus *b = ud;

	return atomic_load(&b->quit);
}

/* Takes the mailbox (under mu). */
static void bus_take_mail(struct bus *b)
{
	if (b->pending) {
		et_poller_adopt(b->poller, b->pending);
		b->pending = NULL;
	}
	for (size_t i = 0; i < b->n_names; i++) {
		if (b->pending_ms[i]) {
			/* Cannot fail: the main thread checked the name and the range. */
			(void)et_poller_set_poll_ms(b->poller, b->names[i], b->pending_ms[i]);
			b->pending_ms[i] = 0;
		}
	}
}

static void *bus_main(void *arg)
{
	struct bus *b = arg;
	struct et_buses *o = b->owner;

	pthread_mutex_lock(&o->mu);
	while (!b->stop) {
		int64_t now, due;

		bus_take_mail(b);
		now = mono_ms();
		due = et_poller_next_due_ms(b->poller, now);
		if (due > now) {
			int64_t wait = due - now > 3600000 ? 3600000 : due - now;
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&b->cond, &o->mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&o->mu);
		/* The blocking part: Modbus I/O, each request bounded by its timeout_ms. */
		et_poller_run_due(b->poller, now, bus_reading, b);
		pthread_mutex_lock(&o->mu);
		et_poller_get_stats(b->poller, &b->stats);
		wake_main(o);
	}
	b->exited = true;
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* ---- partitioning --------------------------------------------------------------------------- */

static void bus_key(const struct et_cfg_device *d, char *key)
{
	if (d->transport == ET_MB_TCP)
		snprintf(key, BUS_KEY_MAX, "tcp:%s:%u", d->host, d->port);
	else
		snprintf(key, BUS_KEY_MAX, "rtu:%s", d->device);
}

/* A bus as planned from a configuration: its key, its devices' names and a new poller. */
struct plan {
	char key[BUS_KEY_MAX];
	size_t n_names;
	char (*names)[ET_CFG_NAME_MAX + 1];
	struct et_poller *poller;
};

static void plans_free(struct plan *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].names);
		et_poller_free(p[i].poller);
	}
	free(p);
}

static int plan_buses(const struct et_agent_config *cfg, struct plan **ret, size_t *ret_n)
{
	struct plan *p = calloc(cfg->n_devices + 1, sizeof(*p));
	struct et_cfg_device *devs = calloc(cfg->n_devices + 1, sizeof(*devs));
	size_t n = 0;
	int r = ET_E_NOMEM;

	if (!p || !devs)
		goto fail;
	for (size_t d = 0; d < cfg->n_devices; d++) {
		char key[BUS_KEY_MAX];
		size_t i;

		bus_key(&cfg->devices[d], key);
		for (i = 0; i < n && strcmp(p[i].key, key); i++)
			;
		if (i == n)
			memcpy(p[n++].key, key, sizeof(key));
	}
	for (size_t i = 0; i < n; i++) {
		struct et_agent_config sub = *cfg; /* points stay cfg's: first_point indexes them */
		char key[BUS_KEY_MAX];

		sub.n_devices = 0;
		sub.devices = devs;
		for (size_t d = 0; d < cfg->n_devices; d++) {
			bus_key(&cfg->devices[d], key);
			if (!strcmp(key, p[i].key))
				devs[sub.n_devices++] = cfg->devices[d];
		}
		p[i].names = calloc(sub.n_devices, sizeof(*p[i].names));
		if (!p[i].names)
			goto fail;
		p[i].n_names = sub.n_devices;
		for (size_t k = 0; k < sub.n_devices; k++)
			memcpy(p[i].names[k], devs[k].name, sizeof(p[i].names[k]));
		r = et_poller_new(&sub, &p[i].poller);
		if (r < 0)
			goto fail;
	}
	free(devs);
	*ret = p;
	*ret_n = n;
	return 0;
fail:
	free(devs);
	plans_free(p, n);
	return r;
}

/* ---- buses ---------------------------------------------------------------------------------- */

static void bus_free(struct bus *b)
{
	if (!b)
		return;
	et_poller_free(b->poller);
	et_poller_free(b->pending);
	free(b->names);
	free(b->pending_ms);
	pthread_cond_destroy(&b->cond);
	free(b);
}

/* A bus from a plan (takes its poller and names); its worker is started. */
static struct bus *bus_start(struct et_buses *o, struct plan *pl)
{
	struct bus *b = calloc(1, sizeof(*b));
	pthread_condattr_t ca;

	if (!b)
		return NULL;
	b->pending_ms = calloc(pl->n_names + 1, sizeof(*b->pending_ms));
	if (!b->pending_ms) {
		free(b);
		return NULL;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	b->owner = o;
	memcpy(b->key, pl->key, sizeof(b->key));
	b->poller = pl->poller;
	b->names = pl->names;
	b->n_names = pl->n_names;
	et_poller_set_log(b->poller, bus_log, b);
	et_poller_set_cancel(b->poller, bus_cancelled, b);
	atomic_init(&b->quit, false);
	if (pthread_create(&b->thread, NULL, bus_main, b) != 0) {
		b->poller = NULL;
		b->names = NULL;
		bus_free(b);
		return NULL;
	}
	pl->poller = NULL;
	pl->names = NULL;
	return b;
}

/* Tells a worker to stop (under mu): it finishes its current request, polls no further group. */
static void bus_tell_stop(struct bus *b)
{
	b->stop = true;
	atomic_store(&b->quit, true);
	pthread_cond_signal(&b->cond);
}

static void bus_stop_join(struct et_buses *o, struct bus *b)
{
	pthread_mutex_lock(&o->mu);
	bus_tell_stop(b);
	pthread_mutex_unlock(&o->mu);
	pthread_join(b->thread, NULL);
	bus_free(b);
}

int et_buses_new(const struct et_agent_config *cfg, size_t queue_max, et_poller_log_fn log,
		 void *log_ud, struct et_buses **ret)
{
	struct et_buses *o;
	struct plan *pl = NULL;
	size_t npl = 0;
	int r;

	if (!cfg || !ret || queue_max < 1)
		return ET_E_INVALID;
	o = calloc(1, sizeof(*o));
	if (!o)
		return ET_E_NOMEM;
	pthread_mutex_init(&o->mu, NULL);
	o->log = log;
	o->log_ud = log_ud;
	o->qmax = queue_max;
	o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	o->q = calloc(queue_max, sizeof(*o->q));
	r = o->efd < 0 || !o->q ? ET_E_NOMEM : plan_buses(cfg, &pl, &npl);
	if (r == 0 && !(o->buses = calloc(npl + 1, sizeof(*o->buses))))
		r = ET_E_NOMEM;
	for (size_t i = 0; r == 0 && i < npl; i++) {
		o->buses[o->n] = bus_start(o, &pl[i]);
		if (!o->buses[o->n])
			r = ET_E_NOMEM;
		else
			o->n++;
	}
	plans_free(pl, npl);
	if (r < 0) {
		et_buses_free(o);
		return r;
	}
	*ret = o;
	return 0;
}

int et_buses_fd(const struct et_buses *b)
{
	return b ? b->efd : -1;
}

static void reap(struct et_buses *o)
{
	for (size_t i = 0; i < o->n_retired;) {
		struct bus *b = o->retired[i];
		bool done;

		pthread_mutex_lock(&o->mu);
		done = b->exited;
		pthread_mutex_unlock(&o->mu);
		if (!done) {
			i++;
			continue;
		}
		pthread_join(b->thread, NULL); /* it has returned: no wait */
		bus_free(b);
		o->retired[i] = o->retired[--o->n_retired];
	}
}

size_t et_buses_drain(struct et_buses *o, et_reading_cb cb, void *ud)
{
	struct qitem *chunk;
	uint64_t v;
	size_t total = 0;

	if (!o)
		return 0;
	if (read(o->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing signalled; the queue is looked at anyway. */
	}
	for (;;) {
		struct qlog l;
		uint64_t lost = 0;
		bool have = false;

		pthread_mutex_lock(&o->mu);
		if (o->llen) {
			l = o->logs[o->lhead];
			o->lhead = (o->lhead + 1) % ET_BUS_LOG_MAX;
			o->llen--;
			have = true;
		} else {
			lost = o->logs_dropped;
			o->logs_dropped = 0;
		}
		pthread_mutex_unlock(&o->mu);
		if (have && o->log)
			o->log(l.level, l.msg, o->log_ud);
		if (!have) {
			if (lost && o->log) {
				char msg[96];

				snprintf(msg, sizeof(msg), "%llu log lines of the Modbus buses dropped",
					 (unsigned long long)lost);
				o->log(ET_LOG_WARNING, msg, o->log_ud);
			}
			break;
		}
	}
	chunk = malloc(DRAIN_CHUNK * sizeof(*chunk));
	while (chunk) {
		size_t n = 0;

		pthread_mutex_lock(&o->mu);
		while (n < DRAIN_CHUNK && o->qlen) {
			chunk[n++] = o->q[o->qhead];
			o->qhead = (o->qhead + 1) % o->qmax;
			o->qlen--;
		}
		pthread_mutex_unlock(&o->mu);
		for (size_t i = 0; i < n; i++) {
			struct et_reading r = {
				.device = chunk[i].device,
				.point = chunk[i].point,
				.unit = chunk[i].unit,
				.value = chunk[i].value,
				.ts_ms = chunk[i].ts_ms,
				.quality = chunk[i].q,
				.exception_code = chunk[i].exc,
			};

			if (cb)
				cb(&r, ud);
		}
		total += n;
		if (n < DRAIN_CHUNK)
			break;
	}
	if (!chunk) {
		/* No memory for the copy: the readings wait in the queue for the next drain. */
	}
	free(chunk);
	reap(o);
	return total;
}

uint64_t et_buses_take_dropped(struct et_buses *o)
{
	uint64_t n;

	if (!o)
		return 0;
	pthread_mutex_lock(&o->mu);
	n = o->dropped;
	o->dropped = 0;
	pthread_mutex_unlock(&o->mu);
	return n;
}

int et_buses_set_poll_ms(struct et_buses *o, const char *device, unsigned poll_ms)
{
	int r = ET_E_INVALID;

	if (!o || !device || poll_ms < 10 || poll_ms > 86400000)
		return ET_E_INVALID;
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < o->n && r < 0; i++) {
		struct bus *b = o->buses[i];

		for (size_t k = 0; k < b->n_names; k++) {
			if (strcmp(b->names[k], device))
				continue;
			b->pending_ms[k] = poll_ms;
			pthread_cond_signal(&b->cond);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&o->mu);
	return r;
}

int et_buses_reconfigure(struct et_buses *o, const struct et_agent_config *cfg)
{
	struct plan *pl = NULL;
	size_t npl = 0, nn = 0;
	struct bus **nb = NULL, **started = NULL, **retired = NULL;
	unsigned **ms = NULL;
	int r;

	if (!o || !cfg)
		return ET_E_INVALID;
	r = plan_buses(cfg, &pl, &npl);
	if (r < 0)
		return r;
	r = ET_E_NOMEM;
	nb = calloc(npl + 1, sizeof(*nb));
	started = calloc(npl + 1, sizeof(*started));
	ms = calloc(npl + 1, sizeof(*ms));
	retired = realloc(o->retired, (o->n_retired + o->n + 1) * sizeof(*retired));
	if (retired)
		o->retired = retired;
	if (!nb || !started || !ms || !retired)
		goto out;
	for (size_t i = 0; i < npl; i++) {
		ms[i] = calloc(pl[i].n_names + 1, sizeof(**ms));
		if (!ms[i])
			goto out;
	}
	/* New buses first: if one cannot start, the running ones are untouched. */
	for (size_t i = 0; i < npl; i++) {
		bool known = false;

		for (size_t k = 0; k < o->n && !known; k++)
			known = !strcmp(o->buses[k]->key, pl[i].key);
		if (known)
			continue;
		started[i] = bus_start(o, &pl[i]);
		if (!started[i]) {
			for (size_t k = 0; k < i; k++)
				if (started[k])
					bus_stop_join(o, started[k]);
			goto out;
		}
	}
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < npl; i++) {
		if (started[i]) {
			nb[nn++] = started[i];
			continue;
		}
		for (size_t k = 0; k < o->n; k++) {
			struct bus *b = o->buses[k];

			if (!b || strcmp(b->key, pl[i].key))
				continue;
			et_poller_free(b->pending);
			b->pending = pl[i].poller;
			pl[i].poller = NULL;
			free(b->names);
			free(b->pending_ms);
			b->names = pl[i].names;
			b->n_names = pl[i].n_names;
			pl[i].names = NULL;
			b->pending_ms = ms[i];
			ms[i] = NULL;
			pthread_cond_signal(&b->cond);
			nb[nn++] = b;
			o->buses[k] = NULL;
			break;
		}
	}
	for (size_t k = 0; k < o->n; k++) {
		struct bus *b = o->buses[k];

		if (!b)
			continue;
		bus_tell_stop(b);
		o->retired[o->n_retired++] = b;
	}
	free(o->buses);
	o->buses = nb;
	o->n = nn;
	nb = NULL;
	pthread_mutex_unlock(&o->mu);
	r = 0;
out:
	for (size_t i = 0; ms && i < npl; i++)
		free(ms[i]);
	free(ms);
	free(nb);
	free(started);
	plans_free(pl, npl);
	return r;
}

void et_buses_get_stats(struct et_buses *o, struct et_buses_stats *ret)
{
	if (!o || !ret)
		return;
	*ret = (struct et_buses_stats){0};
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < o->n; i++) {
		const struct et_poller_stats *s = &o->buses[i]->stats;

		ret->poll.requests += s->requests;
		ret->poll.failures += s->failures;
		ret->poll.timeouts += s->timeouts;
		ret->poll.bad_answers += s->bad_answers;
		ret->poll.connects += s->connects;
		ret->poll.connect_failures += s->connect_failures;
	}
	ret->queue_dropped = o->dropped_total;
	ret->queue_max = o->qmax;
	ret->buses = o->n;
	pthread_mutex_unlock(&o->mu);
}

void et_buses_free(struct et_buses *o)
{
	if (!o)
		return;
	/* All at once, then join: the buses finish their current requests in parallel. */
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < o->n; i++)
		bus_tell_stop(o->buses[i]);
	for (size_t i = 0; i < o->n_retired; i++)
		bus_tell_stop(o->retired[i]);
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < o->n; i++)
		bus_stop_join(o, o->buses[i]);
	for (size_t i = 0; i < o->n_retired; i++)
		bus_stop_join(o, o->retired[i]);
	free(o->buses);
	free(o->retired);
	free(o->q);
	if (o->efd >= 0)
		close(o->efd);
	pthread_mutex_destroy(&o->mu);
	free(o);
}
