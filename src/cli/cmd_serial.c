/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrust serial provision|read|clear: the serial number in its write-once NV index. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_INDEX = CLI_OPT_FIRST_OWN,
	OPT_OWNER_AUTH_FILE,
	OPT_NO_DA,
};

struct serial_opts {
	uint32_t index;
	const char *owner_auth_file;
	unsigned flags;
};

static int on_opt(int val, const char *arg, void *userdata)
{
	struct serial_opts *o = userdata;

	switch (val) {
	case OPT_INDEX:
		return cli_parse_nv_index(arg, &o->index);
	case OPT_OWNER_AUTH_FILE:
		o->owner_auth_file = arg;
		return 0;
	case OPT_NO_DA:
		o->flags |= ET_SERIAL_NO_DA;
		return 0;
	default:
		return CLI_EXIT_INTERNAL;
	}
}

static const struct option index_opts[] = {
	{"index", required_argument, NULL, OPT_INDEX},
	{0},
};

int cmd_serial_provision(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"index", required_argument, NULL, OPT_INDEX},
		{"no-da", no_argument, NULL, OPT_NO_DA},
		{0},
	};
	struct serial_opts o = {.index = ET_NV_SERIAL_INDEX_DEFAULT};
	et_ctx *ctx = NULL;
	bool changed = false;
	const char *serial;
	int r, first;

	static const struct cli_args args = {"serial provision", opts, NULL, on_opt, 1, 1};
	r = cli_begin(cli, &args, &o, argc, argv, &first);
	if (r)
		return r;
	serial = argv[first];
	/* Check the input before touching the TPM: the NV index is write-once. */
	r = cli_check_serial(serial);
	if (r)
		return r;
	r = cli_open(cli, &ctx);
	if (r)
		return r;
	r = et_serial_provision_flags(ctx, o.index, serial, o.flags, &changed);
	if (r < 0) {
		r = cli_error(r);
		goto out;
	}
	if (cli->json) {
		printf("{\"serial\":");
		cli_json_str(stdout, serial);
		printf(",\"index\":\"0x%08x\",\"changed\":%s}\n", o.index,
		       changed ? "true" : "false");
	} else {
		printf("%s serial %s in NV index 0x%08x\n", changed ? "wrote" : "already has",
		       serial, o.index);
	}
	r = CLI_EXIT_OK;
out:
	et_ctx_free(ctx);
	return r;
}

int cmd_serial_read(struct cli *cli, int argc, char **argv)
{
	struct serial_opts o = {.index = ET_NV_SERIAL_INDEX_DEFAULT};
	et_ctx *ctx = NULL;
	char *serial = NULL;
	int r, first;

	static const struct cli_args args = {"serial read", index_opts, NULL, on_opt, 0, 0};
	r = cli_begin(cli, &args, &o, argc, argv, &first);
	if (r)
		return r;
	r = cli_open(cli, &ctx);
	if (r)
		return r;
	r = et_serial_read(ctx, o.index, &serial);
	if (r < 0) {
		r = cli_error(r);
		goto out;
	}
	if (cli->json) {
		printf("{\"serial\":");
		cli_json_str(stdout, serial);
		printf(",\"index\":\"0x%08x\"}\n", o.index);
	} else {
		printf("%s\n", serial);
	}
	r = CLI_EXIT_OK;
out:
	free(serial);
	et_ctx_free(ctx);
	return r;
}

int cmd_serial_clear(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"index", required_argument, NULL, OPT_INDEX},
		{"owner-auth-file", required_argument, NULL, OPT_OWNER_AUTH_FILE},
		{0},
	};
	struct serial_opts o = {.index = ET_NV_SERIAL_INDEX_DEFAULT};
	et_secret *auth = NULL;
	et_ctx *ctx = NULL;
	int r, first;

	static const struct cli_args args = {"serial clear", opts, NULL, on_opt, 0, 0};
	r = cli_begin(cli, &args, &o, argc, argv, &first);
	if (r)
		return r;
	if (o.owner_auth_file) {
		r = cli_read_auth(o.owner_auth_file, &auth);
		if (r)
			return r;
	}
	r = cli_open(cli, &ctx);
	if (r)
		goto out;
	r = et_serial_clear(ctx, o.index, et_secret_data(auth), et_secret_len(auth));
	if (r < 0) {
		r = cli_error(r);
		goto out;
	}
	if (cli->json)
		printf("{\"index\":\"0x%08x\",\"cleared\":true}\n", o.index);
	else
		printf("removed NV index 0x%08x\n", o.index);
	r = CLI_EXIT_OK;
out:
	et_secret_free(auth);
	et_ctx_free(ctx);
	return r;
}
