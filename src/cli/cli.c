/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the edgetrust commands (see cli.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const struct option common_opts[] = {
	{"tcti", required_argument, NULL, CLI_OPT_TCTI},
	{"tcti-module", required_argument, NULL, CLI_OPT_TCTI_MODULE},
	{"json", no_argument, NULL, CLI_OPT_JSON},
	{"help", no_argument, NULL, CLI_OPT_HELP},
	{"verbose", no_argument, NULL, CLI_OPT_VERBOSE},
	{"tpm-timeout", required_argument, NULL, CLI_OPT_TPM_TIMEOUT},
	{"tpm-keygen-timeout", required_argument, NULL, CLI_OPT_TPM_KEYGEN_TIMEOUT},
};
#define N_COMMON (sizeof(common_opts) / sizeof(common_opts[0]))

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("edgetrust: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'edgetrust %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return CLI_EXIT_USAGE;
}

int cli_parse(struct cli *cli, int argc, char **argv, const struct option *own,
	      const char *own_short, int (*on_opt)(int val, const char *arg, void *userdata),
	      void *userdata, int *ret_optind)
{
	struct option opts[32];
	char shorts[32];
	size_t n = 0;
	int c, r;

	for (; own && own[n].name; n++)
		if (n + N_COMMON + 1 >= sizeof(opts) / sizeof(opts[0]))
			return CLI_EXIT_INTERNAL;
	if (n)
		memcpy(opts, own, n * sizeof(*own));
	memcpy(opts + n, common_opts, sizeof(common_opts));
	memset(&opts[n + N_COMMON], 0, sizeof(opts[0]));
	if (snprintf(shorts, sizeof(shorts), ":%sv", own_short ? own_short : "") >=
	    (int)sizeof(shorts))
		return CLI_EXIT_INTERNAL;

	optind = 0; /* GNU getopt: full reinitialisation for a new argv */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_TCTI:
			cli->tcti = optarg;
			break;
		case CLI_OPT_TCTI_MODULE:
			cli->tcti_module = optarg;
			break;
		case CLI_OPT_JSON:
			cli->json = true;
			break;
		case 'v':
		case CLI_OPT_VERBOSE:
			cli->verbose++;
			break;
		case CLI_OPT_TPM_TIMEOUT:
			cli->tpm_timeout = optarg;
			break;
		case CLI_OPT_TPM_KEYGEN_TIMEOUT:
			cli->tpm_keygen_timeout = optarg;
			break;
		case CLI_OPT_HELP:
			/* main answers --help before running a command; never reached. */
			return CLI_EXIT_USAGE;
		case ':':
			return cli_usage_error(argv[0], "%s: option '%s' needs a value", argv[0],
					       argv[optind - 1]);
		case '?':
			if (optopt)
				return cli_usage_error(argv[0], "%s: unknown option '-%c'", argv[0],
						       optopt);
			return cli_usage_error(argv[0], "%s: unknown option '%s'", argv[0],
					       argv[optind - 1]);
		default:
			if (!on_opt)
				return CLI_EXIT_INTERNAL;
			r = on_opt(c, optarg, userdata);
			if (r)
				return r;
		}
	}
	*ret_optind = optind;
	return 0;
}

int cli_positional(const char *cmd, int have, int min, int max)
{
	if (have < min)
		return cli_usage_error(cmd, "%s: missing argument", cmd);
	if (max >= 0 && have > max)
		return cli_usage_error(cmd, "%s: too many arguments", cmd);
	return 0;
}

int cli_begin(struct cli *cli, const struct cli_args *args, void *userdata, int argc, char **argv,
	      int *ret_optind)
{
	int first, r;

	r = cli_parse(cli, argc, argv, args->own, args->own_short, args->on_opt, userdata, &first);
	if (r)
		return r;
	r = cli_positional(args->cmd, argc - first, args->min, args->max);
	if (r)
		return r;
	*ret_optind = first;
	return 0;
}

int cli_error(int err)
{
	fprintf(stderr, "edgetrust: %s\n", et_errmsg());
	return cli_exit_code(err);
}

/*
 * A TPM command deadline from the option, else from the environment variable, else 0 (the
 * library's default). 0 or exit code (printed).
 */
static int timeout_from(const char *opt, const char *optval, const char *env, uint32_t *ret)
{
	const char *v = optval;
	const char *from = opt;
	uint32_t ms;

	if (!v) {
		v = getenv(env);
		from = env;
		if (!v || !*v) {
			*ret = 0;
			return 0;
		}
	}
	if (cli_parse_u32(v, &ms) < 0 || ms < ET_TPM_TIMEOUT_MIN_MS || ms > ET_TPM_TIMEOUT_MAX_MS) {
		fprintf(stderr,
			"edgetrust: %s '%s' is not a TPM command deadline: give milliseconds from %u "
			"to %u\n",
			from, v, ET_TPM_TIMEOUT_MIN_MS, ET_TPM_TIMEOUT_MAX_MS);
		return optval ? CLI_EXIT_USAGE : CLI_EXIT_INVALID;
	}
	*ret = ms;
	return 0;
}

/*
 * Backstop for a TCTI that ignores the library's per-command deadline (tpm2-tss 3.2.1's swtpm
 * TCTI blocks in its socket read whatever the timeout): the command ends with exit 11 once it
 * has run longer than its TPM commands may take at their deadlines. The message is made when
 * the TPM is opened, because the handler may only write and _exit.
 */
static char backstop_msg[640];
static size_t backstop_len;

static void backstop_fire(int sig)
{
	(void)sig;
	if (write(STDERR_FILENO, backstop_msg, backstop_len) < 0) {
		/* nothing more can be done in a signal handler */
	}
	_exit(CLI_EXIT_TPM_TIMEOUT);
}

/* The TCTI et_ctx_new will use (same order as the library), only for the message. */
static const char *tcti_for_message(const struct cli *cli)
{
	const char *v = cli->tcti;

	if (!v || !*v)
		v = getenv("EDGETRUST_TCTI");
	if (!v || !*v)
		v = getenv("TPM2TOOLS_TCTI");
	return v && *v ? v : "device:/dev/tpmrm0";
}

/* Armed before the TPM is opened: opening a swtpm: TCTI already talks to the simulator. */
static void backstop_arm(const char *tcti, uint32_t cmd_ms, uint32_t keygen_ms)
{
	/* Every command of the CLI sends at most 2 key generations and about 20 other commands
	 * (status is the longest); counted generously, plus 2 s. */
	uint64_t ms = 2 * (uint64_t)(keygen_ms ? keygen_ms : ET_TPM_KEYGEN_TIMEOUT_DEFAULT_MS) +
		      24 * (uint64_t)(cmd_ms ? cmd_ms : ET_TPM_TIMEOUT_DEFAULT_MS);
	unsigned limit_s = (unsigned)(ms / 1000) + 2;
	struct sigaction sa;
	int n;

	n = snprintf(backstop_msg, sizeof(backstop_msg),
		     "edgetrust: the TPM (TCTI '%s') did not answer: the command did not finish "
		     "within %u s, the most its TPM commands may take at their deadlines (the TCTI "
		     "ignores the per-command deadline, as tpm2-tss' swtpm TCTI does). Check the TPM "
		     "(`dmesg | grep -i tpm`) or the simulator, then retry; if it is only slow, raise "
		     "--tpm-timeout / --tpm-keygen-timeout\n",
		     tcti, limit_s);
	if (n <= 0)
		return;
	backstop_len = (size_t)n < sizeof(backstop_msg) ? (size_t)n : sizeof(backstop_msg) - 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = backstop_fire;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) == 0)
		alarm(limit_s);
}

int cli_open(struct cli *cli, et_ctx **ret)
{
	uint32_t cmd_ms = 0, keygen_ms = 0;
	et_ctx *ctx = NULL;
	int r;

	r = timeout_from("--tpm-timeout", cli->tpm_timeout, "EDGETRUST_TPM_TIMEOUT_MS", &cmd_ms);
	if (r)
		return r;
	r = timeout_from("--tpm-keygen-timeout", cli->tpm_keygen_timeout,
			 "EDGETRUST_TPM_KEYGEN_TIMEOUT_MS", &keygen_ms);
	if (r)
		return r;
	/* tpm2-tss prints its own ERROR lines to stderr; our message already says it all. */
	if (cli->verbose < 3 && !getenv("TSS2_LOG"))
		setenv("TSS2_LOG", "all+NONE", 1);
	backstop_arm(tcti_for_message(cli), cmd_ms, keygen_ms);
	r = et_ctx_new_module(cli->tcti, cli->tcti_module, &ctx);
	if (r == 0)
		r = et_ctx_set_timeouts(ctx, cmd_ms, keygen_ms);
	if (r < 0) {
		et_ctx_free(ctx);
		return cli_error(r);
	}
	*ret = ctx;
	return 0;
}

int cli_parse_u32(const char *s, uint32_t *ret)
{
	unsigned long long v;
	char *end = NULL;
	int base = 10;

	if (!s || !*s)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	/* strtoull accepts leading blanks and signs; a handle has neither. */
	for (const char *p = s; *p; p++)
		if (!(base == 16 ? ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
				    (*p >= 'A' && *p <= 'F'))
				 : (*p >= '0' && *p <= '9')))
			return -1;
	if (!*s)
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*ret = (uint32_t)v;
	return 0;
}

int cli_parse_nv_index(const char *s, uint32_t *ret)
{
	uint32_t v;

	if (cli_parse_u32(s, &v) < 0 || (v >> 24) != 0x01) {
		fprintf(stderr,
			"edgetrust: '%s' is not an NV index; give a handle from 0x01000000 to "
			"0x01ffffff (default 0x%08x)\n",
			s, ET_NV_SERIAL_INDEX_DEFAULT);
		return CLI_EXIT_INVALID;
	}
	*ret = v;
	return 0;
}

int cli_parse_persistent(const char *s, uint32_t *ret)
{
	uint32_t v;

	if (cli_parse_u32(s, &v) < 0 || (v >> 24) != 0x81) {
		fprintf(stderr,
			"edgetrust: '%s' is not a persistent handle; give a handle from 0x81000000 "
			"to 0x81ffffff (device key default 0x%08x)\n",
			s, ET_DEVICE_KEY_HANDLE_DEFAULT);
		return CLI_EXIT_INVALID;
	}
	*ret = v;
	return 0;
}

/* The whole of standard input, refusing more than max bytes. 0 or exit code (printed). */
static int read_stdin(size_t max, uint8_t **ret, size_t *ret_len)
{
	uint8_t *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	int r;

	for (;;) {
		ssize_t n;

		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > max + 1)
				cap = max + 1;
			nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				r = CLI_EXIT_INTERNAL;
				fprintf(stderr, "edgetrust: out of memory reading standard input\n");
				goto out;
			}
			buf = nbuf;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "edgetrust: cannot read standard input: %s\n",
				strerror(errno));
			r = CLI_EXIT_IO;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			fprintf(stderr, "edgetrust: standard input holds more than %zu bytes\n", max);
			r = CLI_EXIT_TOO_LARGE;
			goto out;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

int cli_read_in(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
	int r;

	if (!path || strcmp(path, "-") == 0)
		return read_stdin(max, ret, ret_len);
	/* Files, pipes and character devices (/dev/stdin, <(...)), never a directory; open()
	 * never waits for a FIFO's writer (lib/file.c). Written files: src/cli/outfile.c. */
	r = et_file_read(path, ET_FILE_STREAM, "input", max, ret, ret_len);
	return r < 0 ? cli_error(r) : 0;
}

int cli_read_auth(const char *path, et_secret **ret)
{
	et_secret *s = NULL;
	size_t len;
	int r;

	/* 64 bytes is the largest authValue a TPM takes (sizeof(TPMU_HA)). */
	r = et_secret_read_file(path, 65, &s);
	if (r < 0)
		return cli_error(r);
	len = et_secret_len(s);
	if (len && et_secret_data(s)[len - 1] == '\n')
		len--;
	if (len && et_secret_data(s)[len - 1] == '\r')
		len--;
	et_secret_truncate(s, len);
	if (len > 64) {
		et_secret_free(s);
		fprintf(stderr, "edgetrust: the password in %s is longer than 64 bytes\n",
			strcmp(path, "-") == 0 ? "standard input" : path);
		return CLI_EXIT_INVALID;
	}
	*ret = s;
	return 0;
}

int cli_check_serial(const char *serial)
{
	if (et_serial_validate(serial) == 0)
		return 0;
	fprintf(stderr, "edgetrust: %s\n", et_errmsg());
	return CLI_EXIT_INVALID;
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}
