/* SPDX-License-Identifier: Apache-2.0 */
/* `edgetrust key create` and `edgetrust key public`: the device key at its persistent handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_HANDLE = CLI_OPT_FIRST_OWN,
	OPT_OUT,
};

struct key_opts {
	uint32_t handle;
	const char *out;
};

static int on_key_opt(int val, const char *arg, void *userdata)
{
	struct key_opts *o = userdata;

	switch (val) {
	case OPT_HANDLE:
		return cli_parse_persistent(arg, &o->handle);
	case OPT_OUT:
		o->out = arg;
		return 0;
	default:
		return CLI_EXIT_USAGE;
	}
}

int cmd_key_create(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"handle", required_argument, NULL, OPT_HANDLE},
	    {NULL, 0, NULL, 0},
	};
	struct key_opts o = {.handle = ET_DEVICE_KEY_HANDLE_DEFAULT};
	et_ctx *ctx = NULL;
	bool created = false;
	char *pem = NULL;
	char fpr[65];
	int optind_, ret;

	static const struct cli_args args = {"key create", opts, "", on_key_opt, 0, 0};
	ret = cli_begin(cli, &args, &o, argc, argv, &optind_);
	if (ret)
		return ret;
	ret = cli_open(cli, &ctx);
	if (ret)
		return ret;
	ret = et_key_create(ctx, o.handle, &created);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	/* One more ReadPublic, so the factory log shows which key the device will register. */
	ret = et_key_public_pem(ctx, o.handle, &pem, fpr);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	if (cli->json)
		printf("{\"handle\":\"0x%08x\",\"created\":%s,\"fingerprint\":\"%s\"}\n", o.handle,
		       created ? "true" : "false", fpr);
	else
		printf("%s 0x%08x %s\n", created ? "created" : "present", o.handle, fpr);
	ret = CLI_EXIT_OK;
out:
	free(pem);
	et_ctx_free(ctx);
	return ret;
}

int cmd_key_public(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"handle", required_argument, NULL, OPT_HANDLE},
	    {"out", required_argument, NULL, OPT_OUT},
	    {NULL, 0, NULL, 0},
	};
	struct key_opts o = {.handle = ET_DEVICE_KEY_HANDLE_DEFAULT};
	et_ctx *ctx = NULL;
	char *pem = NULL;
	char fpr[65];
	int optind_, ret;

	static const struct cli_args args = {"key public", opts, "", on_key_opt, 0, 0};
	ret = cli_begin(cli, &args, &o, argc, argv, &optind_);
	if (ret)
		return ret;
	ret = cli_open(cli, &ctx);
	if (ret)
		return ret;
	ret = et_key_public_pem(ctx, o.handle, &pem, fpr);
	if (ret < 0) {
		ret = cli_error(ret);
		goto out;
	}
	if (cli->json) {
		/* The PEM goes to --out if given; the JSON on stdout always carries it too. */
		if (o.out) {
			ret = cli_write_out(o.out, pem, strlen(pem));
			if (ret)
				goto out;
		}
		printf("{\"handle\":\"0x%08x\",\"fingerprint\":\"%s\",\"pem\":", o.handle, fpr);
		cli_json_str(stdout, pem);
		printf("}\n");
	} else {
		ret = cli_write_out(o.out, pem, strlen(pem));
		if (ret)
			goto out;
		fprintf(stderr, "fingerprint (SHA-256 of the DER public key): %s\n", fpr);
	}
	ret = CLI_EXIT_OK;
out:
	free(pem);
	et_ctx_free(ctx);
	return ret;
}
