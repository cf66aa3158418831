/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libtss2-tcti-etfault: a test-only TCTI that sits between tpm2-tss and a real TCTI and injects
 * the faults a TPM or its bus produce in the field, so our retry, timeout and error paths run
 * against the real ESAPI and a real (software) TPM.
 *
 * Configuration string: the inner TCTI string, e.g. "swtpm:host=127.0.0.1,port=2321", so
 * `--tcti etfault:swtpm:host=...` loads it through tctildr (LD_LIBRARY_PATH must name the
 * directory of this .so).
 *
 * Environment:
 *   ET_FAULT_RULES    file of rules, re-read before every command so a test can change the
 *                     behaviour of a running program. Counters restart when its text changes.
 *   ET_FAULT_LOG      appends one line per command: "<pid> <cc hex> <cc name> <action>".
 *   ET_FAULT_CAPTURE  appends every command and response as records: one byte 'C' or 'R',
 *                     4-byte big-endian length, the bytes as they crossed this TCTI.
 *
 * Rules, one per line, '#' starts a comment; the first rule that applies wins:
 *   fault=<what> [cc=<command>] [count=N] [after=M] [ms=T]
 *   what:    RETRY TESTING YIELDED NV_RATE LOCKOUT OBJECT_MEMORY SESSION_MEMORY MEMORY
 *            NV_UNAVAILABLE CANCELED or a hex TPM_RC: answer with that code, the TPM never sees
 *            the command;
 *            hang: the TPM never answers (receive waits for its caller's timeout, or T ms
 *            when the caller blocks, then reports an I/O error);
 *            drop: the connection breaks before the command reaches the TPM (I/O error; the
 *            inner TCTI is closed and reopened for the next command);
 *            drop-response: the TPM executes the command, then the connection breaks before
 *            the answer arrives (the interesting case for idempotence);
 *            delay: the command passes but its answer comes T ms late.
 *   cc:      a command name as in TPM2_CC_<name> (NV_Read, RSA_Decrypt, ...) or a hex code;
 *            default: every command.
 *   count:   how many commands get the fault (default: all).
 *   after:   let the first M matching commands through first (default 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>

#define ETF_EXPORT __attribute__((visibility("default")))
#define ETF_MAGIC 0x45544641554c5431ULL /* "ETFAULT1" */
#define ETF_MAX_RULES 32
#define ETF_RULES_MAX_BYTES 8192
#define ETF_HANG_DEFAULT_MS 600000
#define ETF_HDR_SIZE 10

enum etf_kind { ETF_RC, ETF_HANG, ETF_DROP, ETF_DROP_RESPONSE, ETF_DELAY };

struct etf_rule {
	enum etf_kind kind;
	uint32_t rc;
	uint32_t cc;     /* 0: any command */
	long count;      /* <0: unlimited */
	long after;
	long ms;
	long matched;    /* matching commands seen */
	long injected;
};

enum etf_pending {
	ETF_IDLE,           /* ready for a command */
	ETF_INNER,          /* the inner TCTI owes the answer */
	ETF_SYNTH,          /* we answer with synth[] */
	ETF_HANGING,        /* nobody answers until hang_deadline */
	ETF_LOSE_RESPONSE,  /* read the inner answer, then report an I/O error */
	ETF_DELAYED,        /* inner answer, after delay_deadline */
};

struct etf_ctx {
	TSS2_TCTI_CONTEXT_COMMON_V2 common;
	uint64_t magic;
	TSS2_TCTI_CONTEXT *inner;
	char *inner_conf;
	char *rules_path;
	int log_fd;
	int capture_fd;
	enum etf_pending pending;
	uint32_t cc;
	uint8_t synth[ETF_HDR_SIZE];
	struct timespec deadline;
	uint64_t rules_hash;
	size_t nrules;
	struct etf_rule rules[ETF_MAX_RULES];
};

static const struct {
	const char *name;
	uint32_t rc;
} etf_rcs[] = {
	{ "RETRY", TPM2_RC_RETRY },
	{ "TESTING", TPM2_RC_TESTING },
	{ "YIELDED", TPM2_RC_YIELDED },
	{ "NV_RATE", TPM2_RC_NV_RATE },
	{ "LOCKOUT", TPM2_RC_LOCKOUT },
	{ "OBJECT_MEMORY", TPM2_RC_OBJECT_MEMORY },
	{ "SESSION_MEMORY", TPM2_RC_SESSION_MEMORY },
	{ "MEMORY", TPM2_RC_MEMORY },
	{ "NV_UNAVAILABLE", TPM2_RC_NV_UNAVAILABLE },
	{ "CANCELED", TPM2_RC_CANCELED },
};

static const struct {
	const char *name;
	uint32_t cc;
} etf_ccs[] = {
	{ "NV_UndefineSpaceSpecial", TPM2_CC_NV_UndefineSpaceSpecial },
	{ "EvictControl", TPM2_CC_EvictControl },
	{ "NV_UndefineSpace", TPM2_CC_NV_UndefineSpace },
	{ "Clear", TPM2_CC_Clear },
	{ "HierarchyChangeAuth", TPM2_CC_HierarchyChangeAuth },
	{ "NV_DefineSpace", TPM2_CC_NV_DefineSpace },
	{ "CreatePrimary", TPM2_CC_CreatePrimary },
	{ "NV_Write", TPM2_CC_NV_Write },
	{ "NV_WriteLock", TPM2_CC_NV_WriteLock },
	{ "DictionaryAttackLockReset", TPM2_CC_DictionaryAttackLockReset },
	{ "DictionaryAttackParameters", TPM2_CC_DictionaryAttackParameters },
	{ "SelfTest", TPM2_CC_SelfTest },
	{ "Startup", TPM2_CC_Startup },
	{ "Shutdown", TPM2_CC_Shutdown },
	{ "StirRandom", TPM2_CC_StirRandom },
	{ "NV_Read", TPM2_CC_NV_Read },
	{ "PolicySecret", TPM2_CC_PolicySecret },
	{ "Create", TPM2_CC_Create },
	{ "Load", TPM2_CC_Load },
	{ "RSA_Decrypt", TPM2_CC_RSA_Decrypt },
	{ "Unseal", TPM2_CC_Unseal },
	{ "ContextLoad", TPM2_CC_ContextLoad },
	{ "ContextSave", TPM2_CC_ContextSave },
	{ "FlushContext", TPM2_CC_FlushContext },
	{ "LoadExternal", TPM2_CC_LoadExternal },
	{ "NV_ReadPublic", TPM2_CC_NV_ReadPublic },
	{ "PolicyAuthValue", TPM2_CC_PolicyAuthValue },
	{ "PolicyCommandCode", TPM2_CC_PolicyCommandCode },
	{ "PolicyOR", TPM2_CC_PolicyOR },
	{ "ReadPublic", TPM2_CC_ReadPublic },
	{ "RSA_Encrypt", TPM2_CC_RSA_Encrypt },
	{ "StartAuthSession", TPM2_CC_StartAuthSession },
	{ "GetCapability", TPM2_CC_GetCapability },
	{ "GetRandom", TPM2_CC_GetRandom },
	{ "GetTestResult", TPM2_CC_GetTestResult },
	{ "Hash", TPM2_CC_Hash },
	{ "PCR_Read", TPM2_CC_PCR_Read },
	{ "PolicyRestart", TPM2_CC_PolicyRestart },
	{ "PolicyGetDigest", TPM2_CC_PolicyGetDigest },
	{ "TestParms", TPM2_CC_TestParms },
	{ "PolicyPassword", TPM2_CC_PolicyPassword },
	{ "PolicyNvWritten", TPM2_CC_PolicyNvWritten },
	{ "CreateLoaded", TPM2_CC_CreateLoaded },
};

static const char *etf_cc_name(uint32_t cc)
{
	for (size_t i = 0; i < sizeof(etf_ccs) / sizeof(etf_ccs[0]); i++)
		if (etf_ccs[i].cc == cc)
			return etf_ccs[i].name;
	return "?";
}

static const char *etf_kind_name(const struct etf_rule *r)
{
	switch (r->kind) {
	case ETF_RC:
		for (size_t i = 0; i < sizeof(etf_rcs) / sizeof(etf_rcs[0]); i++)
			if (etf_rcs[i].rc == r->rc)
				return etf_rcs[i].name;
		return "RC";
	case ETF_HANG:
		return "hang";
	case ETF_DROP:
		return "drop";
	case ETF_DROP_RESPONSE:
		return "drop-response";
	case ETF_DELAY:
		return "delay";
	}
	return "?";
}

static bool etf_parse_num(const char *s, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < 0)
		return false;
	*ret = v;
	return true;
}

static bool etf_parse_token(struct etf_rule *r, const char *tok)
{
	const char *eq = strchr(tok, '=');
	const char *v;
	size_t klen;
	long n;

	if (!eq)
		return false;
	klen = (size_t)(eq - tok);
	v = eq + 1;
	if (klen == 5 && !strncmp(tok, "fault", klen)) {
		if (!strcasecmp(v, "hang")) {
			r->kind = ETF_HANG;
			return true;
		}
		if (!strcasecmp(v, "drop")) {
			r->kind = ETF_DROP;
			return true;
		}
		if (!strcasecmp(v, "drop-response")) {
			r->kind = ETF_DROP_RESPONSE;
			return true;
		}
		if (!strcasecmp(v, "delay")) {
			r->kind = ETF_DELAY;
			return true;
		}
		r->kind = ETF_RC;
		for (size_t i = 0; i < sizeof(etf_rcs) / sizeof(etf_rcs[0]); i++) {
			if (!strcasecmp(v, etf_rcs[i].name)) {
				r->rc = etf_rcs[i].rc;
				return true;
			}
		}
		if (!etf_parse_num(v, &n) || n == 0 || n > 0xffffffffL)
			return false;
		r->rc = (uint32_t)n;
		return true;
	}
	if (klen == 2 && !strncmp(tok, "cc", klen)) {
		for (size_t i = 0; i < sizeof(etf_ccs) / sizeof(etf_ccs[0]); i++) {
			if (!strcasecmp(v, etf_ccs[i].name)) {
				r->cc = etf_ccs[i].cc;
				return true;
			}
		}
		if (!etf_parse_num(v, &n) || n == 0 || n > 0xffffffffL)
			return false;
		r->cc = (uint32_t)n;
		return true;
	}
	if (klen == 5 && !strncmp(tok, "count", klen))
		return etf_parse_num(v, &r->count);
	if (klen == 5 && !strncmp(tok, "after", klen))
		return etf_parse_num(v, &r->after);
	if (klen == 2 && !strncmp(tok, "ms", klen))
		return etf_parse_num(v, &r->ms);
	return false;
}

static void etf_log(struct etf_ctx *c, const char *action)
{
	char line[160];
	int n;

	if (c->log_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%ld 0x%08x %s %s\n", (long)getpid(), c->cc,
		     etf_cc_name(c->cc), action);
	if (n > 0 && (size_t)n < sizeof(line)) {
		/* One write() per line on an O_APPEND file: lines from parallel processes never mix. */
		if (write(c->log_fd, line, (size_t)n) < 0)
			return;
	}
}

static void etf_capture(struct etf_ctx *c, char dir, const uint8_t *buf, size_t len)
{
	uint8_t *rec;
	size_t n = len + 5;

	if (c->capture_fd < 0 || len > 0xffffffffu)
		return;
	rec = malloc(n);
	if (!rec)
		return;
	rec[0] = (uint8_t)dir;
	rec[1] = (uint8_t)(len >> 24);
	rec[2] = (uint8_t)(len >> 16);
	rec[3] = (uint8_t)(len >> 8);
	rec[4] = (uint8_t)len;
	memcpy(rec + 5, buf, len);
	if (write(c->capture_fd, rec, n) < 0) {
		/* nothing to do: capture is best effort, the test notices a short file */
	}
	free(rec);
}

/* Re-reads the rules file; keeps counters while its text is unchanged. Unparsable rules are
 * ignored with a note in the log file (a test then sees that nothing was injected). */
static void etf_load_rules(struct etf_ctx *c)
{
	char buf[ETF_RULES_MAX_BYTES + 1];
	uint64_t h = 1469598103934665603ULL;
	ssize_t len = 0, n;
	int fd;
	char *line, *save = NULL;

	if (!c->rules_path) {
		c->nrules = 0;
		return;
	}
	fd = open(c->rules_path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while (len < ETF_RULES_MAX_BYTES &&
		       (n = read(fd, buf + len, (size_t)(ETF_RULES_MAX_BYTES - len))) > 0)
			len += n;
		close(fd);
	}
	buf[len] = '\0';
	for (ssize_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)buf[i]) * 1099511628211ULL;
	if (h == c->rules_hash)
		return;
	c->rules_hash = h;
	c->nrules = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct etf_rule r = { .kind = ETF_RC, .count = -1, .ms = -1 };
		bool ok = true, has_fault = false;
		char *tok, *tsave = NULL;
		char *hash = strchr(line, '#');

		if (hash)
			*hash = '\0';
		for (tok = strtok_r(line, " \t\r", &tsave); tok; tok = strtok_r(NULL, " \t\r", &tsave)) {
			if (!strncmp(tok, "fault=", 6))
				has_fault = true;
			if (!etf_parse_token(&r, tok))
				ok = false;
		}
		if (!has_fault) {
			if (ok)
				continue; /* empty line */
			ok = false;
		}
		if (!ok || c->nrules == ETF_MAX_RULES) {
			etf_log(c, "bad-rule-ignored");
			continue;
		}
		c->rules[c->nrules++] = r;
	}
}

static struct etf_rule *etf_match(struct etf_ctx *c, uint32_t cc)
{
	for (size_t i = 0; i < c->nrules; i++) {
		struct etf_rule *r = &c->rules[i];

		if (r->cc && r->cc != cc)
			continue;
		r->matched++;
		if (r->matched <= r->after)
			continue;
		if (r->count >= 0 && r->injected >= r->count)
			continue;
		r->injected++;
		return r;
	}
	return NULL;
}

static struct etf_ctx *etf_cast(TSS2_TCTI_CONTEXT *t)
{
	struct etf_ctx *c = (struct etf_ctx *)t;

	if (!c || c->common.v1.magic != ETF_MAGIC || c->magic != ETF_MAGIC)
		return NULL;
	return c;
}

static TSS2_RC etf_open_inner(struct etf_ctx *c)
{
	if (c->inner)
		return TSS2_RC_SUCCESS;
	return Tss2_TctiLdr_Initialize(c->inner_conf, &c->inner);
}

static void etf_close_inner(struct etf_ctx *c)
{
	if (c->inner)
		Tss2_TctiLdr_Finalize(&c->inner);
	c->inner = NULL;
}

static void etf_deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds until ts (0 if past). */
static long etf_ms_until(const struct timespec *ts)
{
	struct timespec now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(ts->tv_sec - now.tv_sec) * 1000 + (ts->tv_nsec - now.tv_nsec) / 1000000L;
	return ms > 0 ? ms : 0;
}

static void etf_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* Waits for the deadline within the caller's timeout: true when the deadline has passed. */
static bool etf_wait_deadline(const struct timespec *deadline, int32_t timeout)
{
	long left = etf_ms_until(deadline);

	if (timeout >= 0 && timeout < left) {
		etf_sleep_ms(timeout);
		return false;
	}
	etf_sleep_ms(left);
	return true;
}

static TSS2_RC etf_transmit(TSS2_TCTI_CONTEXT *t, size_t size, const uint8_t *cmd)
{
	struct etf_ctx *c = etf_cast(t);
	struct etf_rule *r;
	TSS2_RC rc;

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!cmd)
		return TSS2_TCTI_RC_BAD_REFERENCE;
	if (c->pending != ETF_IDLE)
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	if (size < ETF_HDR_SIZE)
		return TSS2_TCTI_RC_BAD_VALUE;
	c->cc = (uint32_t)cmd[6] << 24 | (uint32_t)cmd[7] << 16 | (uint32_t)cmd[8] << 8 | cmd[9];
	etf_capture(c, 'C', cmd, size);
	etf_load_rules(c);
	r = etf_match(c, c->cc);
	etf_log(c, r ? etf_kind_name(r) : "pass");
	if (r && r->kind == ETF_RC) {
		uint32_t code = r->rc;

		c->synth[0] = (uint8_t)(TPM2_ST_NO_SESSIONS >> 8);
		c->synth[1] = (uint8_t)TPM2_ST_NO_SESSIONS;
		c->synth[2] = 0;
		c->synth[3] = 0;
		c->synth[4] = 0;
		c->synth[5] = ETF_HDR_SIZE;
		c->synth[6] = (uint8_t)(code >> 24);
		c->synth[7] = (uint8_t)(code >> 16);
		c->synth[8] = (uint8_t)(code >> 8);
		c->synth[9] = (uint8_t)code;
		c->pending = ETF_SYNTH;
		return TSS2_RC_SUCCESS;
	}
	if (r && r->kind == ETF_HANG) {
		etf_deadline_in(&c->deadline, r->ms >= 0 ? r->ms : ETF_HANG_DEFAULT_MS);
		c->pending = ETF_HANGING;
		return TSS2_RC_SUCCESS;
	}
	if (r && r->kind == ETF_DROP) {
		etf_close_inner(c);
		return TSS2_TCTI_RC_IO_ERROR;
	}
	rc = etf_open_inner(c);
	if (rc != TSS2_RC_SUCCESS)
		return TSS2_TCTI_RC_IO_ERROR;
	rc = Tss2_Tcti_Transmit(c->inner, size, cmd);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	c->pending = ETF_INNER;
	if (r && r->kind == ETF_DROP_RESPONSE) {
		c->pending = ETF_LOSE_RESPONSE;
	} else if (r && r->kind == ETF_DELAY) {
		etf_deadline_in(&c->deadline, r->ms >= 0 ? r->ms : 1000);
		c->pending = ETF_DELAYED;
	}
	return TSS2_RC_SUCCESS;
}

static TSS2_RC etf_receive(TSS2_TCTI_CONTEXT *t, size_t *size, uint8_t *resp, int32_t timeout)
{
	struct etf_ctx *c = etf_cast(t);
	TSS2_RC rc;

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!size)
		return TSS2_TCTI_RC_BAD_REFERENCE;
	switch (c->pending) {
	case ETF_IDLE:
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	case ETF_SYNTH:
		if (!resp) {
			*size = ETF_HDR_SIZE;
			return TSS2_RC_SUCCESS;
		}
		if (*size < ETF_HDR_SIZE)
			return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
		memcpy(resp, c->synth, ETF_HDR_SIZE);
		*size = ETF_HDR_SIZE;
		c->pending = ETF_IDLE;
		etf_capture(c, 'R', resp, ETF_HDR_SIZE);
		return TSS2_RC_SUCCESS;
	case ETF_HANGING:
		if (!etf_wait_deadline(&c->deadline, timeout))
			return TSS2_TCTI_RC_TRY_AGAIN;
		/* Past the hang: the TPM is as good as gone. Reconnect for the next command. */
		c->pending = ETF_IDLE;
		etf_close_inner(c);
		return TSS2_TCTI_RC_IO_ERROR;
	case ETF_LOSE_RESPONSE: {
		uint8_t tmp[TPM2_MAX_COMMAND_SIZE];
		size_t n = sizeof(tmp);

		rc = Tss2_Tcti_Receive(c->inner, &n, tmp, TSS2_TCTI_TIMEOUT_BLOCK);
		c->pending = ETF_IDLE;
		etf_close_inner(c);
		(void)rc;
		return TSS2_TCTI_RC_IO_ERROR;
	}
	case ETF_DELAYED:
		if (!etf_wait_deadline(&c->deadline, timeout))
			return TSS2_TCTI_RC_TRY_AGAIN;
		c->pending = ETF_INNER;
		/* The delay used up the caller's budget; the real wait starts now. */
		break;
	case ETF_INNER:
		break;
	}
	rc = Tss2_Tcti_Receive(c->inner, size, resp, timeout);
	if (rc == TSS2_RC_SUCCESS && resp) {
		c->pending = ETF_IDLE;
		etf_capture(c, 'R', resp, *size);
	} else if (rc != TSS2_RC_SUCCESS && (rc & 0xffff) != TSS2_BASE_RC_TRY_AGAIN &&
		   (rc & 0xffff) != TSS2_BASE_RC_INSUFFICIENT_BUFFER) {
		c->pending = ETF_IDLE;
	}
	return rc;
}

static void etf_finalize(TSS2_TCTI_CONTEXT *t)
{
	struct etf_ctx *c = etf_cast(t);

	if (!c)
		return;
	etf_close_inner(c);
	if (c->log_fd >= 0)
		close(c->log_fd);
	if (c->capture_fd >= 0)
		close(c->capture_fd);
	free(c->inner_conf);
	free(c->rules_path);
	c->magic = 0;
	c->common.v1.magic = 0;
}

static TSS2_RC etf_cancel(TSS2_TCTI_CONTEXT *t)
{
	struct etf_ctx *c = etf_cast(t);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (c->pending == ETF_HANGING || c->pending == ETF_SYNTH) {
		c->pending = ETF_IDLE;
		return TSS2_RC_SUCCESS;
	}
	if (!c->inner)
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	return Tss2_Tcti_Cancel(c->inner);
}

static TSS2_RC etf_get_poll_handles(TSS2_TCTI_CONTEXT *t, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
	struct etf_ctx *c = etf_cast(t);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!c->inner)
		return TSS2_TCTI_RC_NOT_IMPLEMENTED;
	return Tss2_Tcti_GetPollHandles(c->inner, h, n);
}

static TSS2_RC etf_set_locality(TSS2_TCTI_CONTEXT *t, uint8_t locality)
{
	struct etf_ctx *c = etf_cast(t);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!c->inner)
		return TSS2_TCTI_RC_IO_ERROR;
	return Tss2_Tcti_SetLocality(c->inner, locality);
}

static TSS2_RC etf_make_sticky(TSS2_TCTI_CONTEXT *t, TPM2_HANDLE *handle, uint8_t sticky)
{
	struct etf_ctx *c = etf_cast(t);

	if (!c)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!c->inner)
		return TSS2_TCTI_RC_IO_ERROR;
	return Tss2_Tcti_MakeSticky(c->inner, handle, sticky);
}

static int etf_open_append(const char *env)
{
	const char *p = getenv(env);

	if (!p || !*p)
		return -1;
	return open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static TSS2_RC etf_init(TSS2_TCTI_CONTEXT *t, size_t *size, const char *conf)
{
	struct etf_ctx *c = (struct etf_ctx *)t;
	const char *rules;
	TSS2_RC rc;

	if (!size)
		return TSS2_TCTI_RC_BAD_VALUE;
	if (!t) {
		*size = sizeof(*c);
		return TSS2_RC_SUCCESS;
	}
	if (*size < sizeof(*c))
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	/* No default inner TCTI: a test must say which TPM it means, like the product does. */
	if (!conf || !*conf)
		return TSS2_TCTI_RC_BAD_VALUE;
	memset(c, 0, sizeof(*c));
	c->log_fd = -1;
	c->capture_fd = -1;
	c->inner_conf = strdup(conf);
	rules = getenv("ET_FAULT_RULES");
	if (rules && *rules)
		c->rules_path = strdup(rules);
	if (!c->inner_conf || (rules && *rules && !c->rules_path)) {
		rc = TSS2_TCTI_RC_MEMORY;
		goto fail;
	}
	rc = etf_open_inner(c);
	if (rc != TSS2_RC_SUCCESS)
		goto fail;
	c->log_fd = etf_open_append("ET_FAULT_LOG");
	c->capture_fd = etf_open_append("ET_FAULT_CAPTURE");
	c->common.v1.magic = ETF_MAGIC;
	c->common.v1.version = 2;
	c->common.v1.transmit = etf_transmit;
	c->common.v1.receive = etf_receive;
	c->common.v1.finalize = etf_finalize;
	c->common.v1.cancel = etf_cancel;
	c->common.v1.getPollHandles = etf_get_poll_handles;
	c->common.v1.setLocality = etf_set_locality;
	c->common.makeSticky = etf_make_sticky;
	c->magic = ETF_MAGIC;
	return TSS2_RC_SUCCESS;
fail:
	free(c->inner_conf);
	free(c->rules_path);
	memset(c, 0, sizeof(*c));
	return rc;
}

static const TSS2_TCTI_INFO etf_info = {
	.version = 2,
	.name = "etfault",
	.description = "edgetrust test TCTI: injects TPM faults in front of another TCTI",
	.config_help = "The inner TCTI string, e.g. swtpm:host=127.0.0.1,port=2321; rules from "
		       "$ET_FAULT_RULES",
	.init = etf_init,
};

ETF_EXPORT const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);
const TSS2_TCTI_INFO *Tss2_Tcti_Info(void)
{
	return &etf_info;
}
