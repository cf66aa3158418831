/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket's transport (ctl.h): listener, per-client buffers, limits and deadlines.
 * What a request means is the handler's (main.c); this file never parses JSON.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "edgetrust/edgetrust.h"
#include "ctl.h"

#define ACCEPTS_PER_ROUND 16

struct client {
	int fd;
	char *buf; /* the request so far */
	size_t len, cap;
	char *out; /* the answer, newline included, once the request is complete */
	size_t out_len, out_off;
	int64_t deadline_ms;
};

struct et_ctl {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned max_clients;
	int64_t timeout_ms;
	et_ctl_handler h;
	void *ud;
	size_t n;
	struct client *cl;
	struct et_ctl_stats st;
};

int et_ctl_open(const char *path, unsigned max_clients, unsigned timeout_ms, et_ctl_handler h,
		void *ud, struct et_ctl **ret, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct et_ctl *c;
	int fd;

	if (!path || !h || !ret || max_clients < 1 || timeout_ms < 1)
		return ET_E_INVALID;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path too long (%zu bytes, at most %zu)",
			 strlen(path), sizeof(sa.sun_path) - 1);
		return ET_E_INVALID;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c = calloc(1, sizeof(*c));
	if (c)
		c->cl = calloc(max_clients, sizeof(*c->cl));
	if (!c || !c->cl) {
		if (c)
			free(c);
		snprintf(err, errlen, "out of memory");
		return ET_E_NOMEM;
	}
	unlink(sa.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0600) < 0 || listen(fd, 16) < 0) {
		snprintf(err, errlen, "control socket %s: %s", sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(c->cl);
		free(c);
		return ET_E_IO;
	}
	c->lfd = fd;
	memcpy(c->path, sa.sun_path, sizeof(c->path));
	c->max_clients = max_clients;
	c->timeout_ms = timeout_ms;
	c->h = h;
	c->ud = ud;
	*ret = c;
	return 0;
}

size_t et_ctl_pollfds_max(const struct et_ctl *c)
{
	return c ? 1 + c->max_clients : 0;
}

size_t et_ctl_pollfds(const struct et_ctl *c, struct pollfd *fds)
{
	size_t n = 0;

	if (!c)
		return 0;
	fds[n++] = (struct pollfd){.fd = c->lfd, .events = POLLIN};
	for (size_t i = 0; i < c->n; i++)
		fds[n++] = (struct pollfd){.fd = c->cl[i].fd,
					   .events = c->cl[i].out ? POLLOUT : POLLIN};
	return n;
}

static void client_close(struct et_ctl *c, size_t i)
{
	struct client *k = &c->cl[i];

	close(k->fd);
	free(k->buf);
	free(k->out);
	c->cl[i] = c->cl[--c->n];
}

/* Sends what it can now; true when the client is finished with (all sent, or an error). */
static bool client_send(struct client *k)
{
	while (k->out_off < k->out_len) {
		ssize_t w = send(k->fd, k->out + k->out_off, k->out_len - k->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			k->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		return !(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	}
	return true;
}

/* Sets the client's answer (takes text, adds the newline) and starts sending it. */
static bool client_answer(struct et_ctl *c, struct client *k, char *text, int64_t now_ms)
{
	size_t len;

	if (!text)
		return true;
	len = strlen(text);
	k->out = malloc(len + 2);
	if (k->out) {
		memcpy(k->out, text, len);
		k->out[len] = '\n';
		k->out[len + 1] = 0;
	}
	free(text);
	if (!k->out)
		return true;
	k->out_len = len + 1;
	k->out_off = 0;
	k->deadline_ms = now_ms + c->timeout_ms;
	return client_send(k);
}

/* An error answer of ours; with_nl adds the newline (for a send outside client_answer). */
static char *fixed_answer(const char *error, bool with_nl)
{
	size_t n = strlen(error) + 32;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "{\"ok\":false,\"error\":\"%s\"}%s", error, with_nl ? "\n" : "");
	return s;
}

/* Reads what is there; true when the client is finished with. */
static bool client_read(struct et_ctl *c, struct client *k, int64_t now_ms)
{
	for (;;) {
		char *nl;
		ssize_t r;

		if (k->len == k->cap) {
			size_t cap = k->cap ? k->cap * 2 : 4096;
			char *nb;

			if (k->cap >= ET_CTL_LINE_MAX + 1) {
				c->st.too_long++;
				return client_answer(c, k, fixed_answer("request longer than 65536 bytes", false),
						     now_ms);
			}
			if (cap > ET_CTL_LINE_MAX + 1)
				cap = ET_CTL_LINE_MAX + 1;
			nb = realloc(k->buf, cap);
			if (!nb)
				return true;
			k->buf = nb;
			k->cap = cap;
		}
		r = recv(k->fd, k->buf + k->len, k->cap - k->len, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return !(errno == EAGAIN || errno == EWOULDBLOCK);
		if (r == 0) {
			/* The client shut its side down: what it sent is the request. */
			if (!k->len)
				return true;
			c->st.answered++;
			return client_answer(c, k, c->h(k->buf, k->len, c->ud), now_ms);
		}
		nl = memchr(k->buf + k->len, '\n', (size_t)r);
		k->len += (size_t)r;
		if (nl) {
			c->st.answered++;
			return client_answer(c, k, c->h(k->buf, (size_t)(nl - k->buf), c->ud), now_ms);
		}
	}
}

static void accept_new(struct et_ctl *c, int64_t now_ms)
{
	for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;
		if (c->n >= c->max_clients) {
			static const char busy[] =
				"{\"ok\":false,\"error\":\"control socket busy (control_clients_max "
				"clients open); try again\"}\n";

			c->st.busy++;
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			}
			close(fd);
			continue;
		}
		c->cl[c->n++] = (struct client){.fd = fd, .deadline_ms = now_ms + c->timeout_ms};
	}
}

void et_ctl_handle(struct et_ctl *c, const struct pollfd *fds, size_t n, int64_t now_ms)
{
	bool listen_ready = false;

	if (!c)
		return;
	for (size_t f = 0; f < n; f++) {
		if (!fds[f].revents)
			continue;
		if (fds[f].fd == c->lfd) {
			listen_ready = true;
			continue;
		}
		for (size_t i = 0; i < c->n; i++) {
			struct client *k = &c->cl[i];
			bool done;

			if (k->fd != fds[f].fd)
				continue;
			if (k->out)
				done = client_send(k);
			else
				done = client_read(c, k, now_ms);
			if (done)
				client_close(c, i);
			break;
		}
	}
	for (size_t i = 0; i < c->n;) {
		struct client *k = &c->cl[i];

		if (now_ms < k->deadline_ms) {
			i++;
			continue;
		}
		c->st.timed_out++;
		if (!k->out) {
			/* Tell a slow client why, if its socket takes it now; never wait for it. */
			char *msg = fixed_answer("request not complete within control_timeout_ms", true);

			if (msg && send(k->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			}
			free(msg);
		}
		client_close(c, i);
	}
	/* Last: a client closed above may have freed the fd number accept() hands out now. */
	if (listen_ready)
		accept_new(c, now_ms);
}

int64_t et_ctl_next_deadline(const struct et_ctl *c)
{
	int64_t d = INT64_MAX;

	for (size_t i = 0; c && i < c->n; i++)
		if (c->cl[i].deadline_ms < d)
			d = c->cl[i].deadline_ms;
	return d;
}

void et_ctl_get_stats(const struct et_ctl *c, struct et_ctl_stats *ret)
{
	if (c && ret)
		*ret = c->st;
}

void et_ctl_free(struct et_ctl *c)
{
	if (!c)
		return;
	while (c->n)
		client_close(c, c->n - 1);
	close(c->lfd);
	unlink(c->path);
	free(c->cl);
	free(c);
}
