/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of the edgetrust command line: the command table entry, the global options,
 * option parsing with the common options, and helpers every command uses (opening the TPM,
 * parsing handles, reading input, writing output atomically, JSON strings, error reporting).
 * A command is a function `int cmd_x(struct cli *cli, int argc, char **argv)` returning an
 * exit code (src/cli/exitcodes.h); argv[0] is the command's last word.
 */
#ifndef EDGETRUST_CLI_H
#define EDGETRUST_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "edgetrust/edgetrust.h"
#include "exitcodes.h"

/* Global options; they may be given before the command or among its options. */
struct cli {
	const char *tcti; /* --tcti, NULL: EDGETRUST_TCTI, TPM2TOOLS_TCTI, device:/dev/tpmrm0 */
	/* --tcti-module: the one way to load a TCTI other than the system's by name; never
	 * from the environment (et_ctx_new_module) */
	const char *tcti_module;
	bool json;        /* --json: machine-readable output on stdout */
	int verbose;      /* -v count: 0 warnings, 1 info, 2 debug, 3 also tpm2-tss' own log */
	/* --tpm-timeout, --tpm-keygen-timeout (ms); NULL: $EDGETRUST_TPM_TIMEOUT_MS,
	 * $EDGETRUST_TPM_KEYGEN_TIMEOUT_MS, else the library's defaults */
	const char *tpm_timeout;
	const char *tpm_keygen_timeout;
};

struct cli_command {
	const char *name;    /* "serial provision": one or two words */
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *args;    /* synopsis after the name, e.g. "SERIAL [--index IDX]" */
	const char *summary; /* one line for the command list */
	const char *help;    /* the options, one per line, for --help */
};

/* Option values of the common options, for the `default:` of a command's option switch. */
enum {
	CLI_OPT_TCTI = 0x1000,
	CLI_OPT_JSON,
	CLI_OPT_HELP,
	CLI_OPT_VERBOSE,
	CLI_OPT_TPM_TIMEOUT,
	CLI_OPT_TPM_KEYGEN_TIMEOUT,
	CLI_OPT_TCTI_MODULE,
	CLI_OPT_FIRST_OWN = 0x1100, /* commands number their long-only options from here */
};

/*
 * Parses a command's options: `own` (terminated by a zero entry; may be NULL) plus the common
 * ones (--tcti, --json, -v/--verbose). For each own option calls on_opt(val, optarg, userdata),
 * which returns 0 or an exit code. On success *ret_optind is the index of the first positional
 * argument. Returns 0 or an exit code (usage errors already printed).
 */
int cli_parse(struct cli *cli, int argc, char **argv, const struct option *own,
	      const char *own_short, int (*on_opt)(int val, const char *arg, void *userdata),
	      void *userdata, int *ret_optind);
/* Checks the number of positional arguments left; prints a usage error. 0 or exit code. */
int cli_positional(const char *cmd, int have, int min, int max);

/* What a command accepts: its name for messages, its own options (as for cli_parse) and how
 * many positional arguments (max -1: no limit). */
struct cli_args {
	const char *cmd;
	const struct option *own;
	const char *own_short;
	int (*on_opt)(int val, const char *arg, void *userdata);
	int min, max;
};
/* cli_parse() then cli_positional(): every command's first step. 0 or exit code (printed). */
int cli_begin(struct cli *cli, const struct cli_args *args, void *userdata, int argc, char **argv,
	      int *ret_optind);

/* Prints "edgetrust: <et_errmsg()>" to stderr and returns the exit code of err. */
int cli_error(int err);
/* Prints "edgetrust: <message>" plus a hint to --help, returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Opens the TPM from --tcti / the environment with the TPM command deadlines of
 * --tpm-timeout / --tpm-keygen-timeout / the environment (and, below -vvv, silences tpm2-tss'
 * own stderr logging unless TSS2_LOG is set). 0, or the exit code (error printed). */
int cli_open(struct cli *cli, et_ctx **ret);

/* Parses "0x01000000" (hex, 0x optional) or a decimal number into 32 bits. */
int cli_parse_u32(const char *s, uint32_t *ret);
/* Parses an NV index (0x01000000-0x01ffffff). 0 or exit code (printed). */
int cli_parse_nv_index(const char *s, uint32_t *ret);
/* Parses a persistent handle (0x81000000-0x81ffffff). 0 or exit code (printed). */
int cli_parse_persistent(const char *s, uint32_t *ret);

/* Reads a whole file, or stdin for NULL/"-", refusing more than max bytes. *ret is malloc'd
 * (NUL-terminated one past the length). 0 or exit code (printed). */
int cli_read_in(const char *path, size_t max, uint8_t **ret, size_t *ret_len);
/* Writes data to stdout (path NULL or "-") or to --out path (src/cli/outfile.c): a regular
 * file or new path atomically (temp file 0600 in the same directory, fsync, rename, fsync of
 * the directory); a character device, FIFO or socket (also at the end of symlinks) written
 * into, never replaced; anything else refused with CLI_EXIT_OUT_REFUSED. 0 or exit code
 * (printed). */
int cli_write_out(const char *path, const void *data, size_t len);
/* Reads a password file (or stdin for "-") into a secret; one trailing newline is dropped.
 * 0 or exit code (printed). */
int cli_read_auth(const char *path, et_secret **ret);

/* Checks a serial number by the one rule of edgetrust (et_serial_validate), before any TPM
 * command. 0, or CLI_EXIT_INVALID with the rule's message printed. */
int cli_check_serial(const char *serial);

/* Writes s as a JSON string with quotes and escapes. */
void cli_json_str(FILE *f, const char *s);

/*
 * The commands, one per row of the table in main.c. To add one: write it in its own
 * src/cli/cmd_<group>.c, declare it here, add the file to src/cli/meson.build and a row to
 * the table, and document it in docs/edgetrust.md.
 */
int cmd_serial_provision(struct cli *cli, int argc, char **argv);
int cmd_serial_read(struct cli *cli, int argc, char **argv);
int cmd_serial_clear(struct cli *cli, int argc, char **argv);
int cmd_provision(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
/* tpm-keys: src/cli/cmd_key.c and src/cli/cmd_creds.c */
int cmd_key_create(struct cli *cli, int argc, char **argv);
int cmd_key_public(struct cli *cli, int argc, char **argv);
int cmd_creds_seal(struct cli *cli, int argc, char **argv);
int cmd_creds_open(struct cli *cli, int argc, char **argv);
int cmd_creds_inspect(struct cli *cli, int argc, char **argv);
/* agent-core: src/cli/cmd_config.c (talks to the running edgetrustd) */
int cmd_config_get(struct cli *cli, int argc, char **argv);
int cmd_config_set(struct cli *cli, int argc, char **argv);
int cmd_config_list(struct cli *cli, int argc, char **argv);

#endif
