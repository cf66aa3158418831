/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Modbus poller: links (connections opened by libmodbus 3.1), poll groups (one per device)
 * with their request plan, the schedule, and the turning of each transaction's verdict
 * (modbus_txn.c frames and checks it) into a quality mark and a link decision. libmodbus
 * debug output stays off: the library prints only when modbus_set_debug is on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus/modbus.h>

#include "modbus_poll.h"
#include "modbus_txn.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
/* Consecutive timeouts after which a TCP connection is dropped and reopened: a gateway that
 * lost its state answers a fresh connection. Serial lines are never "reconnected" for this. */
#define TCP_TIMEOUTS_BEFORE_RECONNECT 3

struct link {
	enum et_mb_transport transport;
	char host[ET_CFG_STR_MAX + 1];
	uint32_t port;
	char device[ET_CFG_STR_MAX + 1];
	uint32_t baud, data_bits, stop_bits;
	char parity;
	char owner[ET_CFG_NAME_MAX + 1]; /* TCP: one link per device */

	modbus_t *mb;
	bool connected;
	bool ever_connected;
	unsigned failures;      /* consecutive failed connects */
	unsigned timeouts;      /* consecutive timeouts */
	int64_t retry_at_ms;    /* next connect attempt */
	uint16_t tid;           /* last Modbus TCP transaction id sent */
	bool bad_logged;        /* a refused answer was logged (until a good answer) */
	bool down_logged;       /* a lost connection was logged (until a good answer) */
	bool dirty;             /* serial line: flush before the next request */
	char last_error[128];
};

struct point_rt {
	char name[ET_CFG_NAME_MAX + 1];
	char unit[ET_CFG_UNIT_MAX + 1];
	struct et_mb_item item;
	enum et_mb_type type;
	enum et_mb_word_order order;
	double scale, offset;
	size_t req;
};

struct req_rt {
	struct et_mb_request r;
	size_t data_off; /* into the group's regs[] or bits[] */
	size_t holes;    /* registers/bits read that no point uses */
	enum et_quality q;
	int exc;
};

struct group {
	char name[ET_CFG_NAME_MAX + 1];
	struct link *link;
	uint32_t unit_id, timeout_ms, poll_ms;
	bool scheduled;
	int64_t next_due_ms, last_start_ms;
	unsigned gap_regs, gap_bits;
	size_t n_points;
	struct point_rt *points;
	size_t n_reqs;
	struct req_rt *reqs;
	uint16_t *regs;
	uint8_t *bits;
};

struct et_poller {
	size_t n_links;
	struct link **links;
	size_t n_groups;
	struct group *groups;
	et_poller_log_fn log_fn;
	void *log_ud;
	et_poller_cancel_fn cancel_fn;
	void *cancel_ud;
	struct et_poller_stats stats;
};

static void plog(struct et_poller *p, et_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void plog(struct et_poller *p, et_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!p->log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->log_fn(level, msg, p->log_ud);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool link_matches(const struct link *l, const struct et_cfg_device *d)
{
	if (l->transport != d->transport)
		return false;
	if (d->transport == ET_MB_TCP)
		return !strcmp(l->owner, d->name) && !strcmp(l->host, d->host) &&
		       l->port == d->port;
	return !strcmp(l->device, d->device) && l->baud == d->baud && l->parity == d->parity &&
	       l->data_bits == d->data_bits && l->stop_bits == d->stop_bits;
}

static void link_free(struct link *l)
{
	if (!l)
		return;
	if (l->mb) {
		modbus_close(l->mb);
		modbus_free(l->mb);
	}
	free(l);
}

static struct link *link_new(const struct et_cfg_device *d)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->transport = d->transport;
	memcpy(l->host, d->host, sizeof(l->host));
	l->port = d->port;
	memcpy(l->device, d->device, sizeof(l->device));
	l->baud = d->baud;
	l->data_bits = d->data_bits;
	l->stop_bits = d->stop_bits;
	l->parity = d->parity;
	memcpy(l->owner, d->name, sizeof(l->owner));
	return l;
}

static void group_clear(struct group *g)
{
	free(g->points);
	free(g->reqs);
	free(g->regs);
	free(g->bits);
	g->points = NULL;
	g->reqs = NULL;
	g->regs = NULL;
	g->bits = NULL;
}

/* (Re)builds the request plan of a group with its current gap setting. */
static int group_plan(struct group *g)
{
	struct et_mb_item *items = NULL;
	size_t *item_req = NULL, nreqs = 0, nregs = 0, nbits = 0;
	struct et_mb_request *plan = NULL;
	struct req_rt *reqs = NULL;
	uint16_t *regs = NULL;
	uint8_t *bits = NULL;
	int r = ET_E_NOMEM;

	if (g->n_points == 0)
		return 0;
	items = calloc(g->n_points, sizeof(*items));
	item_req = calloc(g->n_points, sizeof(*item_req));
	if (!items || !item_req)
		goto out;
	for (size_t i = 0; i < g->n_points; i++)
		items[i] = g->points[i].item;
	r = et_mb_plan(items, g->n_points, g->gap_regs, g->gap_bits, &plan, &nreqs, item_req);
	if (r < 0)
		goto out;
	r = ET_E_NOMEM;
	reqs = calloc(nreqs, sizeof(*reqs));
	if (!reqs)
		goto out;
	for (size_t i = 0; i < nreqs; i++) {
		reqs[i].r = plan[i];
		if (et_mb_table_is_bits(plan[i].table)) {
			reqs[i].data_off = nbits;
			nbits += plan[i].count;
		} else {
			reqs[i].data_off = nregs;
			nregs += plan[i].count;
		}
		reqs[i].holes = plan[i].count;
	}
	/* Holes: positions no point covers (points may overlap, so mark then count). */
	{
		bool *used = calloc(nregs + nbits + 1, sizeof(*used));
		if (!used)
			goto out;
		for (size_t i = 0; i < g->n_points; i++) {
			struct req_rt *q = &reqs[item_req[i]];
			size_t base = (et_mb_table_is_bits(q->r.table) ? nregs : 0) + q->data_off;
			for (unsigned w = 0; w < items[i].width; w++)
				used[base + items[i].address - q->r.address + w] = true;
		}
		for (size_t i = 0; i < nreqs; i++) {
			size_t base = (et_mb_table_is_bits(reqs[i].r.table) ? nregs : 0) +
				      reqs[i].data_off;
			for (size_t k = 0; k < reqs[i].r.count; k++)
				if (used[base + k])
					reqs[i].holes--;
		}
		free(used);
	}
	regs = calloc(nregs + 1, sizeof(*regs));
	bits = calloc(nbits + 1, sizeof(*bits));
	if (!regs || !bits)
		goto out;
	for (size_t i = 0; i < g->n_points; i++)
		g->points[i].req = item_req[i];
	free(g->reqs);
	free(g->regs);
	free(g->bits);
	g->reqs = reqs;
	g->n_reqs = nreqs;
	g->regs = regs;
	g->bits = bits;
	reqs = NULL;
	regs = NULL;
	bits = NULL;
	r = 0;
out:
	free(items);
	free(item_req);
	free(plan);
	free(reqs);
	free(regs);
	free(bits);
	return r;
}

static void poller_clear(struct et_poller *p)
{
	for (size_t i = 0; i < p->n_groups; i++)
		group_clear(&p->groups[i]);
	free(p->groups);
	for (size_t i = 0; i < p->n_links; i++)
		link_free(p->links[i]);
	free(p->links);
	p->groups = NULL;
	p->links = NULL;
	p->n_groups = 0;
	p->n_links = 0;
}

/* Fills p (empty) from cfg. */
static int poller_build(struct et_poller *p, const struct et_agent_config *cfg)
{
	int r = ET_E_NOMEM;

	if (cfg->n_devices == 0)
		return 0;
	p->groups = calloc(cfg->n_devices, sizeof(*p->groups));
	p->links = calloc(cfg->n_devices, sizeof(*p->links));
	if (!p->groups || !p->links)
		goto out;
	for (size_t d = 0; d < cfg->n_devices; d++) {
		const struct et_cfg_device *dev = &cfg->devices[d];
		struct group *g = &p->groups[p->n_groups];
		struct link *l = NULL;

		if (dev->first_point + dev->n_points > cfg->n_points) {
			r = ET_E_INVALID;
			goto out;
		}
		for (size_t i = 0; i < p->n_links && !l; i++)
			if (link_matches(p->links[i], dev) && dev->transport == ET_MB_RTU)
				l = p->links[i];
		if (!l) {
			l = link_new(dev);
			if (!l)
				goto out;
			p->links[p->n_links++] = l;
		}
		p->n_groups++;
		memcpy(g->name, dev->name, sizeof(g->name));
		g->link = l;
		g->unit_id = dev->unit_id;
		g->timeout_ms = dev->timeout_ms;
		g->poll_ms = dev->poll_ms;
		g->gap_regs = ET_MB_GAP_REGS;
		g->gap_bits = ET_MB_GAP_BITS;
		g->n_points = dev->n_points;
		if (g->n_points) {
			g->points = calloc(g->n_points, sizeof(*g->points));
			if (!g->points)
				goto out;
		}
		for (size_t i = 0; i < dev->n_points; i++) {
			const struct et_cfg_point *cp = &cfg->points[dev->first_point + i];
			struct point_rt *pt = &g->points[i];

			memcpy(pt->name, cp->name, sizeof(pt->name));
			memcpy(pt->unit, cp->unit, sizeof(pt->unit));
			pt->item.table = cp->table;
			pt->item.address = cp->address;
			pt->item.width = (uint8_t)et_mb_type_width(cp->type);
			pt->type = cp->type;
			pt->order = cp->word_order;
			pt->scale = cp->scale;
			pt->offset = cp->offset;
		}
		r = group_plan(g);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (r < 0)
		poller_clear(p);
	return r;
}

int et_poller_new(const struct et_agent_config *cfg, struct et_poller **ret)
{
	struct et_poller *p;
	int r;

	if (!cfg || !ret)
		return ET_E_INVALID;
	p = calloc(1, sizeof(*p));
	if (!p)
		return ET_E_NOMEM;
	r = poller_build(p, cfg);
	if (r < 0) {
		free(p);
		return r;
	}
	*ret = p;
	return 0;
}

void et_poller_set_log(struct et_poller *p, et_poller_log_fn fn, void *userdata)
{
	if (!p)
		return;
	p->log_fn = fn;
	p->log_ud = userdata;
}

void et_poller_set_cancel(struct et_poller *p, et_poller_cancel_fn fn, void *userdata)
{
	if (!p)
		return;
	p->cancel_fn = fn;
	p->cancel_ud = userdata;
}

void et_poller_free(struct et_poller *p)
{
	if (!p)
		return;
	poller_clear(p);
	free(p);
}

void et_poller_get_stats(const struct et_poller *p, struct et_poller_stats *ret)
{
	if (p && ret)
		*ret = p->stats;
}

static void link_down(struct et_poller *p, struct link *l, const char *why, int64_t now_ms)
{
	if (l->mb)
		modbus_close(l->mb);
	/* Once until the device answers well again: a slave that trickles or forges every
	 * answer costs a reconnect per poll, not a log line per poll. */
	if (l->connected && !l->down_logged)
		plog(p, ET_LOG_WARNING, "modbus %s%s%s: connection lost (%s); reconnecting",
		     l->transport == ET_MB_TCP ? l->owner : l->device,
		     l->transport == ET_MB_TCP ? " at " : "",
		     l->transport == ET_MB_TCP ? l->host : "", why);
	l->down_logged = l->down_logged || l->connected;
	l->connected = false;
	l->timeouts = 0;
	l->retry_at_ms = now_ms; /* the first reconnect is immediate, then backoff */
}

static int link_up(struct et_poller *p, struct link *l, uint32_t timeout_ms, int64_t now_ms)
{
	char port[16];

	if (l->connected)
		return 0;
	if (now_ms < l->retry_at_ms)
		return -1;
	snprintf(port, sizeof(port), "%u", l->port);
	if (!l->mb) {
		if (l->transport == ET_MB_TCP) {
			l->mb = modbus_new_tcp_pi(l->host, port);
		} else {
			l->mb = modbus_new_rtu(l->device, (int)l->baud, l->parity, (int)l->data_bits,
					       (int)l->stop_bits);
		}
		if (!l->mb) {
			snprintf(l->last_error, sizeof(l->last_error), "%s", strerror(errno));
			goto failed;
		}
		modbus_set_debug(l->mb, FALSE);
		/* Flush after a protocol error so the next request does not read a stale tail;
		 * reconnecting stays ours (with backoff) rather than libmodbus' immediate retry. */
		modbus_set_error_recovery(l->mb, MODBUS_ERROR_RECOVERY_PROTOCOL);
	}
	/* libmodbus bounds the TCP connect by the response timeout (answers are ours). */
	modbus_set_response_timeout(l->mb, timeout_ms / 1000, (timeout_ms % 1000) * 1000);
	if (modbus_connect(l->mb) < 0) {
		snprintf(l->last_error, sizeof(l->last_error), "%s", modbus_strerror(errno));
		modbus_close(l->mb);
		goto failed;
	}
	if (l->transport == ET_MB_RTU)
		modbus_flush(l->mb);
	if (l->failures || !l->ever_connected)
		plog(p, ET_LOG_INFO, "modbus %s: connected to %s%s%s",
		     l->transport == ET_MB_TCP ? l->owner : l->device,
		     l->transport == ET_MB_TCP ? l->host : l->device,
		     l->transport == ET_MB_TCP ? ":" : "", l->transport == ET_MB_TCP ? port : "");
	l->connected = true;
	l->ever_connected = true;
	l->failures = 0;
	l->timeouts = 0;
	p->stats.connects++;
	return 0;
failed:
	p->stats.connect_failures++;
	{
		unsigned shift = l->failures < 8 ? l->failures : 8;
		int64_t backoff = (int64_t)BACKOFF_MIN_MS << shift;

		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		if (l->failures == 0)
			plog(p, ET_LOG_WARNING,
			     "modbus %s: cannot connect to %s%s%s: %s; retrying with backoff",
			     l->transport == ET_MB_TCP ? l->owner : l->device,
			     l->transport == ET_MB_TCP ? l->host : l->device,
			     l->transport == ET_MB_TCP ? ":" : "",
			     l->transport == ET_MB_TCP ? port : "", l->last_error);
		l->failures++;
		l->retry_at_ms = now_ms + backoff;
	}
	return -1;
}

/*
 * One request, framed and checked by modbus_txn.c under one deadline of timeout_ms for the
 * whole answer (libmodbus only opened the connection). Returns its quality and sets q->exc.
 * Drops the link on connection errors and on a TCP answer whose framing cannot be trusted.
 */
static enum et_quality do_request(struct et_poller *p, struct group *g, struct req_rt *q,
				  int64_t now_ms)
{
	struct link *l = g->link;
	struct et_mb_txn t = {
		.transport = l->transport,
		.unit = (uint8_t)g->unit_id,
		.tid = ++l->tid,
		.r = q->r,
	};
	enum et_mb_verdict v;
	int exc = 0;

	p->stats.requests++;
	if (l->dirty) {
		modbus_flush(l->mb);
		l->dirty = false;
	}
	v = et_mb_txn_run(modbus_get_socket(l->mb), &t, g->timeout_ms,
			  g->regs + q->data_off, g->bits + q->data_off, &exc);
	if (v == ET_MB_OK) {
		l->timeouts = 0;
		l->bad_logged = false;
		l->down_logged = false;
		return ET_Q_OK;
	}
	p->stats.failures++;
	switch (v) {
	case ET_MB_EXCEPTION:
		q->exc = exc;
		l->timeouts = 0;
		return ET_Q_EXCEPTION;
	case ET_MB_TIMEOUT:
		p->stats.timeouts++;
		/* The rest of a trickled answer must not be taken for the next request's: TCP
		 * drops a connection that is inside an answer (a flush cannot tell where the
		 * trickle ends); a late whole answer is recognised by its transaction id. A serial
		 * line is flushed before the next request. */
		if (l->transport == ET_MB_TCP) {
			if (t.got || ++l->timeouts >= TCP_TIMEOUTS_BEFORE_RECONNECT)
				link_down(p, l, t.got ? "answer incomplete in time" : "no answer",
					  now_ms);
		} else {
			l->dirty = true;
		}
		return ET_Q_TIMEOUT;
	case ET_MB_IO:
		link_down(p, l, "connection error", now_ms);
		return ET_Q_IO;
	case ET_MB_BAD_CRC:
		p->stats.bad_answers++;
		l->dirty = true;
		return ET_Q_CRC;
	default:
		p->stats.bad_answers++;
		if (!l->bad_logged)
			plog(p, ET_LOG_WARNING,
			     "modbus %s: answer refused (%s); its readings are marked io", g->name,
			     et_mb_verdict_name(v));
		l->bad_logged = true;
		if (l->transport == ET_MB_TCP)
			link_down(p, l, et_mb_verdict_name(v), now_ms);
		else
			l->dirty = true;
		return ET_Q_IO;
	}
}

static void report(struct group *g, int64_t ts, et_reading_cb cb, void *userdata)
{
	for (size_t i = 0; i < g->n_points; i++) {
		const struct point_rt *pt = &g->points[i];
		const struct req_rt *q = &g->reqs[pt->req];
		struct et_reading rd = {
			.device = g->name,
			.point = pt->name,
			.unit = pt->unit,
			.value = 0.0,
			.ts_ms = ts,
			.quality = q->q,
			.exception_code = q->q == ET_Q_EXCEPTION ? q->exc : 0,
		};

		if (q->q == ET_Q_OK) {
			size_t off = q->data_off + (size_t)(pt->item.address - q->r.address);
			double v = 0.0;

			if (pt->type == ET_MB_BOOL)
				rd.quality = et_mb_decode_bit(g->bits[off], pt->scale, pt->offset, &v);
			else
				rd.quality = et_mb_decode_regs(pt->type, pt->order, g->regs + off,
							       pt->item.width, pt->scale,
							       pt->offset, &v);
			if (rd.quality == ET_Q_OK)
				rd.value = v;
		}
		if (cb)
			cb(&rd, userdata);
	}
}

static void poll_group(struct et_poller *p, struct group *g, int64_t now_ms, et_reading_cb cb,
		       void *userdata)
{
	int64_t ts = wall_ms();
	bool retried = false;

again:
	for (size_t i = 0; i < g->n_reqs; i++) {
		g->reqs[i].q = ET_Q_IO;
		g->reqs[i].exc = 0;
	}
	if (link_up(p, g->link, g->timeout_ms, now_ms) == 0) {
		for (size_t i = 0; i < g->n_reqs; i++) {
			struct req_rt *q = &g->reqs[i];

			q->q = do_request(p, g, q, now_ms);
			if (q->q == ET_Q_EXCEPTION && q->exc == MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS &&
			    q->holes > 0 && !retried) {
				/* The device refuses to read across a hole in its map: stop
				 * bridging holes for this device and read again. */
				plog(p, ET_LOG_INFO,
				     "modbus %s: device refuses reads across unused addresses; "
				     "reading only configured ranges",
				     g->name);
				g->gap_regs = 0;
				g->gap_bits = 0;
				if (group_plan(g) == 0) {
					retried = true;
					goto again;
				}
			}
			if (q->q == ET_Q_TIMEOUT || !g->link->connected) {
				/* The device is not answering: do not spend a timeout per
				 * request; the rest of this cycle gets the same mark. */
				for (size_t k = i + 1; k < g->n_reqs; k++)
					g->reqs[k].q = q->q == ET_Q_TIMEOUT ? ET_Q_TIMEOUT : ET_Q_IO;
				break;
			}
		}
	}
	report(g, ts, cb, userdata);
}

int64_t et_poller_next_due_ms(struct et_poller *p, int64_t now_ms)
{
	int64_t due = now_ms + 86400000;

	if (!p)
		return due;
	for (size_t i = 0; i < p->n_groups; i++) {
		const struct group *g = &p->groups[i];

		if (g->n_points == 0)
			continue;
		if (!g->scheduled)
			return now_ms;
		if (g->next_due_ms < due)
			due = g->next_due_ms;
	}
	return due;
}

int et_poller_run_due(struct et_poller *p, int64_t now_ms, et_reading_cb cb, void *userdata)
{
	int n = 0;

	if (!p)
		return ET_E_INVALID;
	for (size_t i = 0; i < p->n_groups; i++) {
		struct group *g = &p->groups[i];

		if (g->n_points == 0 || (g->scheduled && g->next_due_ms > now_ms))
			continue;
		if (p->cancel_fn && p->cancel_fn(p->cancel_ud))
			break;
		poll_group(p, g, now_ms, cb, userdata);
		/* Keep the phase; after an overrun skip the missed cycles instead of bursting. */
		g->next_due_ms = (g->scheduled ? g->next_due_ms : now_ms) + g->poll_ms;
		if (g->next_due_ms <= now_ms)
			g->next_due_ms = now_ms + g->poll_ms;
		g->last_start_ms = now_ms;
		g->scheduled = true;
		n++;
	}
	return n;
}

int et_poller_set_poll_ms(struct et_poller *p, const char *device, unsigned poll_ms)
{
	if (!p || !device || poll_ms < 10 || poll_ms > 86400000)
		return ET_E_INVALID;
	for (size_t i = 0; i < p->n_groups; i++) {
		struct group *g = &p->groups[i];

		if (strcmp(g->name, device))
			continue;
		g->poll_ms = poll_ms;
		if (g->scheduled)
			g->next_due_ms = g->last_start_ms + poll_ms;
		return 0;
	}
	return ET_E_INVALID;
}

/* Moves n's devices and maps into p, keeping p's open connections whose settings are unchanged
 * and the schedule of devices that keep their name; empties n. */
static void poller_merge(struct et_poller *p, struct et_poller *nn)
{
	struct et_poller n = *nn;

	for (size_t i = 0; i < n.n_links; i++) {
		struct link *nl = n.links[i];

		for (size_t k = 0; k < p->n_links; k++) {
			struct link *ol = p->links[k];
			struct et_cfg_device probe = {0};

			if (!ol)
				continue;
			probe.transport = nl->transport;
			memcpy(probe.name, nl->owner, sizeof(probe.name));
			memcpy(probe.host, nl->host, sizeof(probe.host));
			probe.port = nl->port;
			memcpy(probe.device, nl->device, sizeof(probe.device));
			probe.baud = nl->baud;
			probe.parity = nl->parity;
			probe.data_bits = nl->data_bits;
			probe.stop_bits = nl->stop_bits;
			if (!link_matches(ol, &probe))
				continue;
			/* Move the old link's state into the new one. */
			nl->mb = ol->mb;
			nl->connected = ol->connected;
			nl->ever_connected = ol->ever_connected;
			nl->failures = ol->failures;
			nl->timeouts = ol->timeouts;
			nl->retry_at_ms = ol->retry_at_ms;
			nl->tid = ol->tid;
			nl->dirty = ol->dirty;
			nl->bad_logged = ol->bad_logged;
			nl->down_logged = ol->down_logged;
			ol->mb = NULL;
			link_free(ol);
			p->links[k] = NULL;
			break;
		}
	}
	/* Keep the schedule of devices that stay. */
	for (size_t i = 0; i < n.n_groups; i++) {
		for (size_t k = 0; k < p->n_groups; k++) {
			const struct group *og = &p->groups[k];

			if (strcmp(og->name, n.groups[i].name))
				continue;
			n.groups[i].scheduled = og->scheduled;
			n.groups[i].last_start_ms = og->last_start_ms;
			n.groups[i].next_due_ms = og->last_start_ms + n.groups[i].poll_ms;
			break;
		}
	}
	poller_clear(p);
	p->n_links = n.n_links;
	p->links = n.links;
	p->n_groups = n.n_groups;
	p->groups = n.groups;
	*nn = (struct et_poller){0};
}

int et_poller_reconfigure(struct et_poller *p, const struct et_agent_config *cfg)
{
	struct et_poller n = {0};
	int r;

	if (!p || !cfg)
		return ET_E_INVALID;
	r = poller_build(&n, cfg);
	if (r < 0)
		return r;
	poller_merge(p, &n);
	return 0;
}

void et_poller_adopt(struct et_poller *p, struct et_poller *n)
{
	if (!p || !n)
		return;
	poller_merge(p, n);
	et_poller_free(n);
}
