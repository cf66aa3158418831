/* SPDX-License-Identifier: Apache-2.0 */
/* TPM work in a short-lived `edgetrustd --tpm-helper` process (see tpmjob.h). */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tpmjob.h"

extern char **environ;

/* Largest field on the wire: envelopes are read with a 2 MiB limit, base64 ones up to 6 MiB. */
#define FIELD_MAX (16u << 20)

enum { OP_IDENTITY = 1, OP_ENVELOPE = 2 };

static et_log_fn g_log;
static void *g_log_ud;

void et_tpmjob_set_log(et_log_fn fn, void *ud)
{
	g_log = fn;
	g_log_ud = ud;
}

/* Deadlines handed to every helper (0: the library's defaults). */
static uint32_t job_cmd_ms, job_keygen_ms;
/* [agent] tcti_module, "" for the system's TCTI named by tcti (et_ctx_new_module). */
static char job_tcti_module[ET_TPMJOB_MODULE_MAX + 1];

void et_tpmjob_set_tcti_module(const char *path)
{
	snprintf(job_tcti_module, sizeof(job_tcti_module), "%s", path ? path : "");
}

void et_tpmjob_set_timeouts(uint32_t cmd_ms, uint32_t keygen_ms)
{
	job_cmd_ms = cmd_ms;
	job_keygen_ms = keygen_ms;
}

/*
 * How long the daemon waits for a helper's answer: its TPM commands at their deadlines (an
 * identity job sends at most 2 key generations and about 14 other commands, an envelope job
 * about 5, counted generously) plus 5 s to start. Only a backstop: the library's own deadlines
 * end a hung command inside the helper first, unless the TCTI ignores them.
 */
static uint32_t job_limit_s(int op)
{
	uint64_t cmd = job_cmd_ms ? job_cmd_ms : ET_TPM_TIMEOUT_DEFAULT_MS;
	uint64_t keygen = job_keygen_ms ? job_keygen_ms : ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS;
	uint64_t ms = op == OP_IDENTITY ? 2 * keygen + 16 * cmd : 8 * cmd;

	return (uint32_t)((ms + 5000 + 999) / 1000);
}

/* ---- wire: fields of <uint32 length><bytes>, host byte order (both ends are this binary) ---- */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = read(fd, b, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int put(int fd, const void *p, size_t n)
{
	uint32_t len = (uint32_t)n;

	if (n > FIELD_MAX || write_all(fd, &len, sizeof(len)) < 0)
		return -1;
	return n ? write_all(fd, p, n) : 0;
}

static int put_u32(int fd, uint32_t v)
{
	return put(fd, &v, sizeof(v));
}

static int put_str(int fd, const char *s)
{
	return put(fd, s, strlen(s));
}

static int get_len(int fd, size_t max, size_t *ret)
{
	uint32_t len;

	if (read_all(fd, &len, sizeof(len)) < 0 || len > max)
		return -1;
	*ret = len;
	return 0;
}

/* A field into malloc'd memory, NUL-terminated (not counted in *ret_len). */
static int get(int fd, size_t max, uint8_t **ret, size_t *ret_len)
{
	uint8_t *p;
	size_t n;

	if (get_len(fd, max, &n) < 0)
		return -1;
	p = malloc(n + 1);
	if (!p)
		return -1;
	if (read_all(fd, p, n) < 0) {
		free(p);
		return -1;
	}
	p[n] = 0;
	*ret = p;
	if (ret_len)
		*ret_len = n;
	return 0;
}

static int get_str(int fd, char **ret)
{
	uint8_t *p = NULL;
	size_t n;

	if (get(fd, FIELD_MAX, &p, &n) < 0)
		return -1;
	if (memchr(p, 0, n)) {
		free(p);
		return -1;
	}
	*ret = (char *)p;
	return 0;
}

static int get_fixed(int fd, void *out, size_t n)
{
	size_t len;

	if (get_len(fd, n, &len) < 0 || len != n)
		return -1;
	return read_all(fd, out, n);
}

static int get_u32(int fd, uint32_t *ret)
{
	return get_fixed(fd, ret, sizeof(*ret));
}

/* A secret field straight into an et_secret: no other copy in this process. */
static int get_secret(int fd, et_secret **ret)
{
	et_secret *sec = NULL;
	size_t n;

	if (get_len(fd, FIELD_MAX, &n) < 0 || et_secret_new(n, &sec) < 0)
		return -1;
	if (read_all(fd, et_secret_data(sec), n) < 0) {
		et_secret_free(sec);
		return -1;
	}
	*ret = sec;
	return 0;
}

/* ---- daemon side -------------------------------------------------------------------------- */

struct job {
	pid_t pid;
	int fd;
	uint32_t limit_s; /* receive timeout on fd: the helper is stopped after that */
	const char *what;
	struct timespec t0;
};

static int64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static int job_start(struct job *j, int op, char *errbuf, size_t errlen)
{
	struct timeval tv;
	char arg0[] = "edgetrustd", arg1[] = ET_TPMJOB_ARG;
	char *argv[] = { arg0, arg1, NULL };
	posix_spawn_file_actions_t fa;
	int sv[2], rc;

	j->what = op == OP_IDENTITY ? "serial and device key" : "credential envelope";
	clock_gettime(CLOCK_MONOTONIC, &j->t0);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(errbuf, errlen, "cannot start the TPM helper process: socketpair: %s",
			 strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], STDIN_FILENO);
	/* Nothing else of ours (broker socket, spool, control socket) in the helper. */
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	/* The signal mask is inherited: SIGTERM stays blocked while the helper finishes its
	 * few TPM commands; the daemon acts on the signal afterwards, as before. */
	rc = posix_spawn(&j->pid, "/proc/self/exe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		snprintf(errbuf, errlen, "cannot start the TPM helper process (/proc/self/exe %s): %s",
			 ET_TPMJOB_ARG, strerror(rc));
		return -1;
	}
	j->fd = sv[0];
	j->limit_s = job_limit_s(op);
	tv.tv_sec = j->limit_s;
	tv.tv_usec = 0;
	/* A helper stuck in its TPM: the answer's read fails with EAGAIN, job_end stops it. */
	(void)setsockopt(j->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
}

/*
 * Closes the socket and reaps the helper (after stopping it when its answer did not come:
 * answered false). 0; -2 with errbuf when it had to be stopped; -1 with errbuf when it did not
 * exit with 0.
 */
static int job_end(struct job *j, bool answered, char *errbuf, size_t errlen)
{
	struct rusage ru;
	int status = 0;
	pid_t w;

	close(j->fd);
	memset(&ru, 0, sizeof(ru));
	if (!answered && waitpid(j->pid, &status, WNOHANG) == 0) {
		(void)kill(j->pid, SIGKILL);
		do
			w = waitpid(j->pid, &status, 0);
		while (w < 0 && errno == EINTR);
		snprintf(errbuf, errlen,
			 "the TPM did not answer: the TPM helper process (edgetrustd %s) got no answer "
			 "within %u s and was stopped. Check the TPM (`dmesg | grep -i tpm`; for a "
			 "simulator that it runs); if it is only slow, raise tpm_timeout_ms and "
			 "tpm_keygen_timeout_ms",
			 ET_TPMJOB_ARG, j->limit_s);
		return -2;
	}
	do
		w = wait4(j->pid, &status, 0, &ru);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		snprintf(errbuf, errlen, "TPM helper process: waitpid: %s", strerror(errno));
		return -1;
	}
	if (g_log) {
		char msg[160];

		/* Its peak is the daemon's memory cost of TPM work: reported, not hidden (bench/). */
		snprintf(msg, sizeof(msg), "TPM helper (%s): %lld ms, peak RSS %ld KiB", j->what,
			 (long long)ms_since(&j->t0), ru.ru_maxrss);
		g_log(ET_LOG_DEBUG, msg, g_log_ud);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		snprintf(errbuf, errlen, "the TPM helper process (edgetrustd %s) was killed by signal %d",
			 ET_TPMJOB_ARG, WTERMSIG(status));
	else
		snprintf(errbuf, errlen, "the TPM helper process (edgetrustd %s) exited with status %d",
			 ET_TPMJOB_ARG, WEXITSTATUS(status));
	return -1;
}

/* Reads the answer's head: the helper's return code, failed step and message. */
static int get_head(int fd, int *ret_rc, enum et_tpmjob_step *ret_step, char *errbuf, size_t errlen)
{
	uint32_t rc, step;
	char *msg = NULL;

	if (get_u32(fd, &rc) < 0 || get_u32(fd, &step) < 0 || get_str(fd, &msg) < 0)
		return -1;
	*ret_rc = (int)(int32_t)rc;
	*ret_step = (enum et_tpmjob_step)step;
	if (*ret_rc < 0)
		snprintf(errbuf, errlen, "%s", msg);
	free(msg);
	return 0;
}

int et_tpmjob_identity(const char *tcti, uint32_t serial_index, uint32_t key_handle,
		       struct et_tpm_identity *ret, enum et_tpmjob_step *ret_step, char *errbuf,
		       size_t errlen)
{
	struct et_tpm_identity id = { 0 };
	enum et_tpmjob_step step = ET_TPMJOB_HELPER;
	struct job j;
	uint8_t created = 0;
	char *fpr = NULL;
	char why[512];
	int rc = ET_E_TPM_UNREACHABLE, io = -1, end;

	if (job_start(&j, OP_IDENTITY, errbuf, errlen) < 0)
		goto out;
	if (put_u32(j.fd, OP_IDENTITY) == 0 && put_str(j.fd, tcti) == 0 &&
	    put_str(j.fd, job_tcti_module) == 0 &&
	    put_u32(j.fd, job_cmd_ms) == 0 && put_u32(j.fd, job_keygen_ms) == 0 &&
	    put_u32(j.fd, serial_index) == 0 && put_u32(j.fd, key_handle) == 0 &&
	    get_head(j.fd, &rc, &step, errbuf, errlen) == 0) {
		io = 0;
		if (rc == 0 && (get_str(j.fd, &id.serial) < 0 || get_str(j.fd, &id.pem) < 0 ||
				get_str(j.fd, &fpr) < 0 || strlen(fpr) >= sizeof(id.fpr) ||
				get_fixed(j.fd, &created, 1) < 0))
			io = -1;
	}
	why[0] = 0;
	end = job_end(&j, io == 0, why, sizeof(why));
	if (end < 0 || io < 0) {
		snprintf(errbuf, errlen, "%s", why[0] ? why : "the TPM helper process did not answer");
		rc = end == -2 ? ET_E_TIMEOUT : ET_E_TPM_UNREACHABLE;
		step = ET_TPMJOB_HELPER;
		goto out;
	}
	if (rc < 0)
		goto out;
	memcpy(id.fpr, fpr, strlen(fpr) + 1);
	id.created = created != 0;
	*ret = id;
	memset(&id, 0, sizeof(id));
out:
	if (rc < 0)
		*ret_step = step;
	free(fpr);
	et_tpm_identity_clear(&id);
	return rc;
}

void et_tpm_identity_clear(struct et_tpm_identity *id)
{
	free(id->serial);
	free(id->pem);
	memset(id, 0, sizeof(*id));
}

int et_tpmjob_envelope_open(const char *tcti, uint32_t key_handle, const char *serial,
			    const uint8_t *blob, size_t len, et_secret **ret_plain,
			    et_envelope_info *ret_info, char *errbuf, size_t errlen)
{
	et_envelope_info info;
	et_secret *plain = NULL;
	struct job j;
	char why[512];
	enum et_tpmjob_step step;
	int rc = ET_E_TPM_UNREACHABLE, io = -1, end;

	if (job_start(&j, OP_ENVELOPE, errbuf, errlen) < 0)
		goto out;
	if (put_u32(j.fd, OP_ENVELOPE) == 0 && put_str(j.fd, tcti) == 0 &&
	    put_str(j.fd, job_tcti_module) == 0 &&
	    put_u32(j.fd, job_cmd_ms) == 0 && put_u32(j.fd, job_keygen_ms) == 0 &&
	    put_u32(j.fd, key_handle) == 0 && put_str(j.fd, serial) == 0 &&
	    put(j.fd, blob, len) == 0 && get_head(j.fd, &rc, &step, errbuf, errlen) == 0) {
		io = 0;
		if (rc == 0 && (get_fixed(j.fd, &info, sizeof(info)) < 0 || get_secret(j.fd, &plain) < 0))
			io = -1;
	}
	why[0] = 0;
	end = job_end(&j, io == 0, why, sizeof(why));
	if (end < 0 || io < 0) {
		snprintf(errbuf, errlen, "%s", why[0] ? why : "the TPM helper process did not answer");
		rc = end == -2 ? ET_E_TIMEOUT : ET_E_TPM_UNREACHABLE;
		goto out;
	}
	if (rc < 0)
		goto out;
	info.serial[sizeof(info.serial) - 1] = 0;
	info.key_fpr[sizeof(info.key_fpr) - 1] = 0;
	*ret_plain = plain;
	plain = NULL;
	if (ret_info)
		*ret_info = info;
out:
	et_secret_free(plain);
	return rc;
}

/* ---- helper side -------------------------------------------------------------------------- */

static int answer_head(int fd, int rc, enum et_tpmjob_step step)
{
	return put_u32(fd, (uint32_t)rc) == 0 && put_u32(fd, (uint32_t)step) == 0 &&
			       put_str(fd, rc < 0 ? et_errmsg() : "") == 0
		       ? 0
		       : -1;
}

static int serve_identity(int fd, et_ctx *ctx, uint32_t serial_index, uint32_t key_handle)
{
	char *serial = NULL, *pem = NULL, fpr[65] = "";
	bool created = false;
	enum et_tpmjob_step step;
	uint8_t c;
	int rc, io;

	step = ET_TPMJOB_SERIAL;
	rc = et_serial_read(ctx, serial_index, &serial);
	if (rc == 0) {
		step = ET_TPMJOB_KEY;
		rc = et_key_create(ctx, key_handle, &created);
	}
	if (rc == 0) {
		step = ET_TPMJOB_PUBLIC;
		rc = et_key_public_pem(ctx, key_handle, &pem, fpr);
	}
	c = created ? 1 : 0;
	io = answer_head(fd, rc, step);
	if (io == 0 && rc == 0)
		io = put_str(fd, serial) == 0 && put_str(fd, pem) == 0 && put_str(fd, fpr) == 0 &&
				     put(fd, &c, 1) == 0
			     ? 0
			     : -1;
	free(serial);
	free(pem);
	return io;
}

static int serve_envelope(int fd, et_ctx *ctx, uint32_t key_handle, const char *serial,
			  const uint8_t *blob, size_t len)
{
	et_envelope_info info;
	et_secret *plain = NULL;
	int rc, io;

	memset(&info, 0, sizeof(info));
	rc = et_envelope_open(ctx, key_handle, serial, blob, len, &plain, &info);
	io = answer_head(fd, rc, ET_TPMJOB_ENVELOPE);
	if (io == 0 && rc == 0)
		io = put(fd, &info, sizeof(info)) == 0 &&
				     put(fd, et_secret_data(plain), et_secret_len(plain)) == 0
			     ? 0
			     : -1;
	et_secret_free(plain);
	return io;
}

int et_tpmjob_serve(int fd)
{
	uint32_t op = 0, a = 0, b = 0, cmd_ms = 0, keygen_ms = 0;
	char *tcti = NULL, *module = NULL, *serial = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	et_ctx *ctx = NULL;
	struct stat st;
	int rc, io = -1;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "edgetrustd: %s is used by edgetrustd itself (its TPM helper "
				"process), not from a shell\n", ET_TPMJOB_ARG);
		return 1;
	}
	if (get_u32(fd, &op) < 0 || get_str(fd, &tcti) < 0 || get_str(fd, &module) < 0 ||
	    get_u32(fd, &cmd_ms) < 0 ||
	    get_u32(fd, &keygen_ms) < 0)
		goto out;
	if (op == OP_IDENTITY) {
		if (get_u32(fd, &a) < 0 || get_u32(fd, &b) < 0)
			goto out;
	} else if (op == OP_ENVELOPE) {
		if (get_u32(fd, &a) < 0 || get_str(fd, &serial) < 0 || get(fd, FIELD_MAX, &blob, &len) < 0)
			goto out;
	} else {
		goto out;
	}
	rc = et_ctx_new_module(tcti, module, &ctx);
	if (rc == 0)
		rc = et_ctx_set_timeouts(ctx, cmd_ms, keygen_ms);
	if (rc < 0)
		io = answer_head(fd, rc, ET_TPMJOB_OPEN);
	else if (op == OP_IDENTITY)
		io = serve_identity(fd, ctx, a, b);
	else
		io = serve_envelope(fd, ctx, a, serial, blob, len);
out:
	et_ctx_free(ctx);
	free(tcti);
	free(module);
	free(serial);
	free(blob);
	return io == 0 ? 0 : 1;
}
