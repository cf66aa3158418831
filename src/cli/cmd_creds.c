/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `edgetrust creds seal|open|inspect`: credential envelopes (docs/envelope.md) and the
 * article's bare RSA ciphertexts (--raw). Plaintext credentials are read into and decrypted into
 * et_secret buffers only, and never taken from or put on the command line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PEM_MAX (64u * 1024u)
#define ENVELOPE_MAX (2u * 1024u * 1024u)
#define PLAINTEXT_MAX (1024u * 1024u)

enum {
	OPT_HANDLE = CLI_OPT_FIRST_OWN,
	OPT_IN,
	OPT_OUT,
	OPT_PUBKEY,
	OPT_SERIAL,
	OPT_CRED_VERSION,
	OPT_RAW,
	OPT_INDEX,
};

struct creds_opts {
	const char *cmd; /* for usage messages */
	uint32_t handle;
	uint32_t index;
	const char *in;
	const char *out;
	const char *pubkey;
	const char *serial;
	uint32_t cred_version;
	int raw; /* 0 = envelope, else et_raw_mode */
};

static int on_creds_opt(int val, const char *arg, void *userdata)
{
	struct creds_opts *o = userdata;

	switch (val) {
	case OPT_HANDLE:
		return cli_parse_persistent(arg, &o->handle);
	case OPT_INDEX:
		return cli_parse_nv_index(arg, &o->index);
	case OPT_IN:
		o->in = arg;
		return 0;
	case OPT_OUT:
		o->out = arg;
		return 0;
	case OPT_PUBKEY:
		o->pubkey = arg;
		return 0;
	case OPT_SERIAL:
		o->serial = arg;
		return cli_check_serial(arg);
	case OPT_CRED_VERSION:
		if (cli_parse_u32(arg, &o->cred_version) != 0)
			return cli_usage_error(o->cmd,
					       "--cred-version \"%s\" is not a number "
					       "0..4294967295",
					       arg);
		return 0;
	case OPT_RAW:
		if (strcmp(arg, "pkcs1") == 0)
			o->raw = ET_RAW_PKCS1;
		else if (strcmp(arg, "oaep") == 0)
			o->raw = ET_RAW_OAEP;
		else
			return cli_usage_error("creds open",
					       "--raw takes pkcs1 or oaep, not \"%s\"", arg);
		return 0;
	default:
		return CLI_EXIT_USAGE;
	}
}

int cmd_creds_seal(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, OPT_PUBKEY},
	    {"serial", required_argument, NULL, OPT_SERIAL},
	    {"cred-version", required_argument, NULL, OPT_CRED_VERSION},
	    {"in", required_argument, NULL, OPT_IN},
	    {"out", required_argument, NULL, OPT_OUT},
	    {NULL, 0, NULL, 0},
	};
	struct creds_opts o = {.cmd = "creds seal", .cred_version = 1};
	uint8_t *pem = NULL, *blob = NULL;
	size_t pem_len = 0, blob_len = 0;
	et_secret *pt = NULL;
	int optind_, ret;

	static const struct cli_args args = {"creds seal", opts, "", on_creds_opt, 0, 0};
	ret = cli_begin(cli, &args, &o, argc, argv, &optind_);
	if (ret)
		return ret;
	if (!o.pubkey || !o.serial)
		return cli_usage_error("creds seal",
				       "--pubkey FILE and --serial SERIAL are required");
	ret = cli_read_in(o.pubkey, PEM_MAX, &pem, &pem_len);
	if (ret)
		goto out;
	ret = et_secret_read_file(o.in ? o.in : "-", PLAINTEXT_MAX, &pt);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	ret = et_envelope_seal((const char *)pem, o.serial, o.cred_version, et_secret_data(pt),
			       et_secret_len(pt), &blob, &blob_len);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	ret = cli_write_out(o.out, blob, blob_len);
out:
	et_secret_free(pt);
	free(pem);
	free(blob);
	return ret;
}

int cmd_creds_open(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"handle", required_argument, NULL, OPT_HANDLE},
	    {"serial", required_argument, NULL, OPT_SERIAL},
	    {"index", required_argument, NULL, OPT_INDEX},
	    {"in", required_argument, NULL, OPT_IN},
	    {"out", required_argument, NULL, OPT_OUT},
	    {"raw", required_argument, NULL, OPT_RAW},
	    {NULL, 0, NULL, 0},
	};
	struct creds_opts o = {.cmd = "creds open",
			       .handle = ET_DEVICE_KEY_HANDLE_DEFAULT,
			       .index = ET_NV_SERIAL_INDEX_DEFAULT};
	et_ctx *ctx = NULL;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	char *nv_serial = NULL;
	et_secret *pt = NULL;
	int optind_, ret;

	static const struct cli_args args = {"creds open", opts, "", on_creds_opt, 0, 0};
	ret = cli_begin(cli, &args, &o, argc, argv, &optind_);
	if (ret)
		return ret;
	if (o.raw && o.serial)
		return cli_usage_error("creds open", "--serial has no meaning with --raw (a bare "
						     "RSA block names no device)");
	ret = cli_read_in(o.in, ENVELOPE_MAX, &blob, &blob_len);
	if (ret)
		goto out;
	ret = cli_open(cli, &ctx);
	if (ret)
		goto out;
	if (o.raw) {
		ret = et_raw_decrypt(ctx, o.handle, (et_raw_mode)o.raw, blob, blob_len, &pt);
	} else {
		et_envelope_info info;

		/* A malformed envelope is refused before the serial is read from the TPM. */
		ret = et_envelope_inspect(blob, blob_len, &info);
		if (ret < 0) {
			ret = cli_error(ret);
			goto out;
		}
		if (!o.serial) {
			ret = et_serial_read(ctx, o.index, &nv_serial);
			if (ret < 0) {
				ret = cli_error(ret);
				goto out;
			}
		}
		ret = et_envelope_open(ctx, o.handle, o.serial ? o.serial : nv_serial, blob,
				       blob_len, &pt, NULL);
	}
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	ret = cli_write_out(o.out, et_secret_data(pt), et_secret_len(pt));
out:
	et_secret_free(pt);
	et_ctx_free(ctx);
	free(nv_serial);
	free(blob);
	return ret;
}

int cmd_creds_inspect(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"in", required_argument, NULL, OPT_IN},
	    {NULL, 0, NULL, 0},
	};
	struct creds_opts o = {.cmd = "creds inspect"};
	et_envelope_info info;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	int optind_, ret;

	static const struct cli_args args = {"creds inspect", opts, "", on_creds_opt, 0, 0};
	ret = cli_begin(cli, &args, &o, argc, argv, &optind_);
	if (ret)
		return ret;
	ret = cli_read_in(o.in, ENVELOPE_MAX, &blob, &blob_len);
	if (ret)
		goto out;
	ret = et_envelope_inspect(blob, blob_len, &info);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	if (cli->json) {
		printf("{\"format_version\":%u,\"serial\":", info.format_version);
		cli_json_str(stdout, info.serial);
		printf(",\"key_fingerprint\":\"%s\",\"cred_version\":%" PRIu32
		       ",\"issued_at\":%" PRIu64 "}\n",
		       info.key_fpr, info.cred_version, info.issued_at);
	} else {
		printf("format version: %u\nserial: %s\nkey fingerprint: %s\n"
		       "credential version: %" PRIu32 "\nissued at: %" PRIu64 "\n",
		       info.format_version, info.serial, info.key_fpr, info.cred_version,
		       info.issued_at);
	}
	ret = CLI_EXIT_OK;
out:
	free(blob);
	return ret;
}
