/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrust: the factory and operator command line. This file holds the command table, the
 * global options and the dispatcher; each command lives in src/cli/cmd_<group>.c.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"

/*
 * The command table. One row per command; a two-word name ("serial read") makes a group.
 * Keep it in the order of docs/edgetrust.md.
 */
static const struct cli_command commands[] = {
	{"provision", cmd_provision, "--serial SERIAL [--index IDX] [--key-handle H] [--no-da]",
	 "factory provisioning: serial in NV, SRK, device key; prints the registration record",
	 "  --serial SERIAL    the device's serial number (A-Z a-z 0-9 . _ -, at most 64,\n"
	 "                     beginning with a letter or digit; not bootstrap/edgetrust-cloud)\n"
	 "  --index IDX        NV index of the serial (default 0x01000000)\n"
	 "  --key-handle H     persistent handle of the device key (default 0x81000002)\n"
	 "  --no-da            define the serial index with no_da (reads never count toward\n"
	 "                     DA lockout; not byte-identical to the article's index)\n"},
	{"serial provision", cmd_serial_provision, "SERIAL [--index IDX] [--no-da]",
	 "write the serial number once into a write-once NV index (idempotent)",
	 "  --index IDX        NV index (default 0x01000000)\n"
	 "  --no-da            define the index with no_da (reads never count toward DA\n"
	 "                     lockout; not byte-identical to the article's index)\n"},
	{"serial read", cmd_serial_read, "[--index IDX]",
	 "print the serial number stored in the TPM",
	 "  --index IDX        NV index (default 0x01000000)\n"},
	{"serial clear", cmd_serial_clear, "[--index IDX] [--owner-auth-file FILE]",
	 "remove the serial's NV index (refurbishing; needs owner authorisation)",
	 "  --index IDX              NV index (default 0x01000000)\n"
	 "  --owner-auth-file FILE   file holding the owner password, - for stdin\n"
	 "                           (one trailing newline is ignored)\n"},
	{"key create", cmd_key_create, "[--handle H]",
	 "create the device key (RSA-2048, decrypt-only) under the SRK unless present",
	 "  --handle H         persistent handle of the device key (default 0x81000002)\n"},
	{"key public", cmd_key_public, "[--handle H] [--out FILE]",
	 "print the device key's public half as PEM; its fingerprint on stderr",
	 "  --handle H         persistent handle of the key (default 0x81000002)\n"
	 "  --out FILE         write the PEM to FILE instead of stdout (a file atomically;\n"
	 "                     a device, FIFO or socket written into; see edgetrust(1))\n"
	 "                     (with --json: PEM, fingerprint and handle as JSON on stdout)\n"},
	{"creds seal", cmd_creds_seal,
	 "--pubkey PEM --serial SERIAL [--cred-version N] [--in FILE] [--out FILE]",
	 "seal credentials to a device's public key (an envelope; no TPM involved)",
	 "  --pubkey PEM       the device's public key (from 'edgetrust key public')\n"
	 "  --serial SERIAL    the device's serial number, bound into the envelope\n"
	 "  --cred-version N   credential version, increase it with every rotation (default 1)\n"
	 "  --in FILE          the credentials (default: stdin)\n"
	 "  --out FILE         the envelope (default: stdout): a file written atomically with\n"
	 "                     mode 0600; a device, FIFO or socket written into, never replaced\n"},
	{"creds open", cmd_creds_open,
	 "[--handle H] [--serial S] [--index IDX] [--in FILE] [--out FILE] [--raw pkcs1|oaep]",
	 "open an envelope (or the article's bare RSA ciphertext) with the TPM key",
	 "  --handle H         persistent handle of the device key (default 0x81000002)\n"
	 "  --serial S         the device's serial (default: read from the NV index)\n"
	 "  --index IDX        NV index of the serial (default 0x01000000)\n"
	 "  --in FILE          the envelope or ciphertext (default: stdin)\n"
	 "  --out FILE         the plaintext (default: stdout): a file written atomically with\n"
	 "                     mode 0600; a device, FIFO or socket written into, never replaced\n"
	 "  --raw pkcs1|oaep   a bare RSA block from 'openssl pkeyutl -encrypt', PKCS#1 v1.5\n"
	 "                     (openssl's default; a padding oracle) or OAEP with SHA-256\n"},
	{"creds inspect", cmd_creds_inspect, "[--in FILE]",
	 "print an envelope's header (serial, key fingerprint, version); no TPM, no decryption",
	 "  --in FILE          the envelope (default: stdin)\n"},
	{"config list", cmd_config_list, "[--data-dir DIR]",
	 "list edgetrustd's live settings (effective values, version, who changed them last)",
	 "  --data-dir DIR     the agent's data_dir (default /data/edgetrust)\n"},
	{"config get", cmd_config_get, "KEY [--data-dir DIR]",
	 "print one of edgetrustd's live settings",
	 "  --data-dir DIR     the agent's data_dir (default /data/edgetrust)\n"},
	{"config set", cmd_config_set, "KEY=VALUE... [--data-dir DIR]",
	 "change edgetrustd's live settings now (validated, persisted, reported to the cloud)",
	 "  --data-dir DIR     the agent's data_dir (default /data/edgetrust)\n"
	 "                     VALUE null (or default) returns a key to its configured value\n"},
	{"status", cmd_status, "",
	 "TPM vendor and firmware, serial, keys, handles, lockout state and what is missing",
	 "  --index IDX        NV index of the serial (default 0x01000000)\n"
	 "  --key-handle H     persistent handle of the device key (default 0x81000002)\n"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char common_help[] =
	"Common options:\n"
	"  --tcti TCTI        TPM to use, e.g. device:/dev/tpmrm0, swtpm:host=H,port=P\n"
	"                     (default: $EDGETRUST_TCTI, $TPM2TOOLS_TCTI, device:/dev/tpmrm0);\n"
	"                     by name only the system's device, swtpm, mssim, tabrmd\n"
	"  --tcti-module PATH load the TCTI from this module file instead (absolute path,\n"
	"                     owned by root or you, not writable by others); --tcti then\n"
	"                     gives its configuration\n"
	"  --tpm-timeout MS   deadline of one TPM command (default 10000; also\n"
	"                     $EDGETRUST_TPM_TIMEOUT_MS); a TPM that does not answer in\n"
	"                     time gives exit 11\n"
	"  --tpm-keygen-timeout MS\n"
	"                     the same for key generation (default 120000; also\n"
	"                     $EDGETRUST_TPM_KEYGEN_TIMEOUT_MS)\n"
	"  --json             machine-readable output\n"
	"  -v, --verbose      more messages on stderr (-vvv: also tpm2-tss' own log)\n"
	"  -h, --help         this help\n";

static void print_usage(FILE *f)
{
	fprintf(f, "Usage: edgetrust [--tcti TCTI] [--tcti-module PATH] [--tpm-timeout MS] [--json] [-v] COMMAND "
		   "[ARGS]\n\n"
		   "TPM 2.0 device identity for edge devices: serial number in NV, device key, "
		   "sealed credentials.\n\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n%s  -V, --version      print the version\n\n"
		   "Run 'edgetrust COMMAND --help' for a command's options. See edgetrust(1) and "
		   "docs/exit-codes.md for exit codes.\n",
		common_help);
}

static void print_command_help(const struct cli_command *c)
{
	printf("Usage: edgetrust %s%s%s\n\n%s.\n\n", c->name, *c->args ? " " : "", c->args,
	       c->summary);
	if (c->help && *c->help)
		printf("Options:\n%s\n", c->help);
	fputs(common_help, stdout);
}

static void log_to_stderr(et_log_level level, const char *msg, void *userdata)
{
	const struct cli *cli = userdata;
	const char *tag;

	switch (level) {
	case ET_LOG_ERR:
		/* The final error is printed once by cli_error(); repeat only when debugging. */
		if (cli->verbose < 2)
			return;
		tag = "error";
		break;
	case ET_LOG_WARNING:
		tag = "warning";
		break;
	case ET_LOG_INFO:
		if (cli->verbose < 1)
			return;
		tag = "info";
		break;
	default:
		if (cli->verbose < 2)
			return;
		tag = "debug";
		break;
	}
	fprintf(stderr, "edgetrust: %s: %s\n", tag, msg);
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

/* Finds the command named by argv[0] (and argv[1] for a group). *ret_words: 1 or 2. */
static const struct cli_command *find_command(int argc, char **argv, int *ret_words)
{
	size_t l0 = strlen(argv[0]);

	for (size_t i = 0; i < N_COMMANDS; i++) {
		const char *name = commands[i].name;
		const char *space = strchr(name, ' ');

		if (!space) {
			if (strcmp(name, argv[0]) == 0) {
				*ret_words = 1;
				return &commands[i];
			}
			continue;
		}
		if ((size_t)(space - name) != l0 || strncmp(name, argv[0], l0) != 0)
			continue;
		if (argc > 1 && strcmp(space + 1, argv[1]) == 0) {
			*ret_words = 2;
			return &commands[i];
		}
	}
	return NULL;
}

static bool is_group(const char *word)
{
	size_t l = strlen(word);

	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, word, l) == 0 && commands[i].name[l] == ' ')
			return true;
	return false;
}

static void print_group(FILE *f, const char *word)
{
	size_t l = strlen(word);

	fprintf(f, "Commands of 'edgetrust %s':\n", word);
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strncmp(commands[i].name, word, l) == 0 && commands[i].name[l] == ' ')
			fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	static const struct option global_opts[] = {
		{"tcti", required_argument, NULL, 't'},
		{"tcti-module", required_argument, NULL, 'M'},
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"tpm-timeout", required_argument, NULL, 'T'},
		{"tpm-keygen-timeout", required_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	struct cli cli = {0};
	const struct cli_command *cmd;
	int c, words = 0;

	et_log_set(log_to_stderr, &cli);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:vhV", global_opts, NULL)) != -1) {
		switch (c) {
		case 't':
			cli.tcti = optarg;
			break;
		case 'M':
			cli.tcti_module = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'T':
			cli.tpm_timeout = optarg;
			break;
		case 'K':
			cli.tpm_keygen_timeout = optarg;
			break;
		case 'v':
			cli.verbose++;
			break;
		case 'h':
			print_usage(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("edgetrust %s (libedgetrust %s)\n", ET_VERSION, et_version());
			return CLI_EXIT_OK;
		case ':':
			return cli_usage_error(NULL, "option '%s' needs a value", argv[optind - 1]);
		default:
			return cli_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		fputs("edgetrust: no command given\n", stderr);
		print_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = find_command(argc, argv, &words);
	if (!cmd) {
		bool help = argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));

		if (!is_group(argv[0]))
			return cli_usage_error(NULL, "unknown command '%s'", argv[0]);
		if (help) {
			print_group(stdout, argv[0]);
			return CLI_EXIT_OK;
		}
		if (argc > 1)
			fprintf(stderr, "edgetrust: unknown command '%s %s'\n", argv[0], argv[1]);
		else
			fprintf(stderr, "edgetrust: '%s' needs a subcommand\n", argv[0]);
		print_group(stderr, argv[0]);
		return CLI_EXIT_USAGE;
	}
	argc -= words - 1;
	argv += words - 1;
	argv[0] = (char *)cmd->name; /* messages then name the whole command */
	if (wants_help(argc, argv)) {
		print_command_help(cmd);
		return CLI_EXIT_OK;
	}
	return cmd->fn(&cli, argc, argv);
}
