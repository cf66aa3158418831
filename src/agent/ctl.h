/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control socket (<data_dir>/agent.sock, `edgetrust config`): a non-blocking listener and
 * clients with a buffer each, driven by the main loop's poll. One request line per connection
 * (JSON, ended by a newline or by the client's shutdown), one answer line, then close. Bounded:
 * ET_CTL_LINE_MAX bytes per request, max_clients at once (more are told "busy" and closed),
 * and timeout_ms for the request to arrive complete and again for the answer to leave. So a
 * client that trickles bytes, or never reads, costs one slot and never the loop's time.
 */
#ifndef EDGETRUST_AGENT_CTL_H
#define EDGETRUST_AGENT_CTL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* Longest request line (bytes, newline excluded); longer ones are refused. */
#define ET_CTL_LINE_MAX 65536

struct et_ctl;

/* Answers one request line (len bytes, not NUL-terminated inside: a NUL is part of the line);
 * returns a malloc'd answer without the newline, or NULL (the client is closed unanswered). */
typedef char *(*et_ctl_handler)(const char *line, size_t len, void *ud);

/*
 * Binds path (an old socket there is replaced), mode 0600, and listens. On failure returns
 * ET_E_IO or ET_E_INVALID (path too long) and writes why into err.
 */
int et_ctl_open(const char *path, unsigned max_clients, unsigned timeout_ms, et_ctl_handler h,
		void *ud, struct et_ctl **ret, char *err, size_t errlen);
/* Most pollfds et_ctl_pollfds fills: the listener and every client slot. */
size_t et_ctl_pollfds_max(const struct et_ctl *c);
/* Fills fds (room for et_ctl_pollfds_max) with the listener and each client; returns the count. */
size_t et_ctl_pollfds(const struct et_ctl *c, struct pollfd *fds);
/* After poll: serves what fds (as filled by et_ctl_pollfds, revents set) report, and closes
 * clients whose deadline passed by now_ms (CLOCK_MONOTONIC). Never blocks. */
void et_ctl_handle(struct et_ctl *c, const struct pollfd *fds, size_t n, int64_t now_ms);
/* Earliest client deadline, or INT64_MAX. */
int64_t et_ctl_next_deadline(const struct et_ctl *c);

struct et_ctl_stats {
	uint64_t answered;  /* requests answered */
	uint64_t busy;      /* connections refused: max_clients were open */
	uint64_t timed_out; /* clients closed at their deadline */
	uint64_t too_long;  /* requests over ET_CTL_LINE_MAX */
};
void et_ctl_get_stats(const struct et_ctl *c, struct et_ctl_stats *ret);
/* Accepts NULL. Closes every client and the listener and removes the socket file. */
void et_ctl_free(struct et_ctl *c);

#endif
