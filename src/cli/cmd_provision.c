/* SPDX-License-Identifier: Apache-2.0 */
/*
 * edgetrust provision: the whole factory step in one idempotent command: serial into its
 * write-once NV index, SRK, device key; prints the registration record the cloud needs.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_SERIAL = CLI_OPT_FIRST_OWN,
	OPT_INDEX,
	OPT_KEY_HANDLE,
	OPT_NO_DA,
};

struct provision_opts {
	const char *serial;
	uint32_t index;
	uint32_t key_handle;
	unsigned serial_flags;
};

static int on_opt(int val, const char *arg, void *userdata)
{
	struct provision_opts *o = userdata;

	switch (val) {
	case OPT_SERIAL:
		o->serial = arg;
		return 0;
	case OPT_INDEX:
		return cli_parse_nv_index(arg, &o->index);
	case OPT_KEY_HANDLE:
		return cli_parse_persistent(arg, &o->key_handle);
	case OPT_NO_DA:
		o->serial_flags |= ET_SERIAL_NO_DA;
		return 0;
	default:
		return CLI_EXIT_INTERNAL;
	}
}

int cmd_provision(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"serial", required_argument, NULL, OPT_SERIAL},
		{"index", required_argument, NULL, OPT_INDEX},
		{"key-handle", required_argument, NULL, OPT_KEY_HANDLE},
		{"no-da", no_argument, NULL, OPT_NO_DA},
		{0},
	};
	struct provision_opts o = {.index = ET_NV_SERIAL_INDEX_DEFAULT,
				   .key_handle = ET_DEVICE_KEY_HANDLE_DEFAULT};
	bool serial_changed = false, key_created = false;
	char fpr[65];
	char *pem = NULL;
	et_ctx *ctx = NULL;
	int r, first;

	static const struct cli_args args = {"provision", opts, NULL, on_opt, 0, 0};
	r = cli_begin(cli, &args, &o, argc, argv, &first);
	if (r)
		return r;
	if (!o.serial)
		return cli_usage_error("provision", "provision: --serial SERIAL is required");
	/* Before any TPM command: the serial's NV index is write-once. */
	r = cli_check_serial(o.serial);
	if (r)
		return r;
	r = cli_open(cli, &ctx);
	if (r)
		return r;
	/* Serial first: it is the cheap, write-once part and names the device in every later
	 * message; each step is idempotent, so a rerun after a failure continues where it
	 * stopped. */
	r = et_serial_provision_flags(ctx, o.index, o.serial, o.serial_flags,
				      &serial_changed);
	if (r < 0)
		goto fail;
	r = et_key_create(ctx, o.key_handle, &key_created);
	if (r < 0)
		goto fail;
	r = et_key_public_pem(ctx, o.key_handle, &pem, fpr);
	if (r < 0)
		goto fail;
	fprintf(stderr, "edgetrust: serial %s %s at 0x%08x; device key %s at 0x%08x\n", o.serial,
		serial_changed ? "written" : "already present", o.index,
		key_created ? "created" : "already present", o.key_handle);
	printf("{\"serial\":");
	cli_json_str(stdout, o.serial);
	printf(",\"pubkey_pem\":");
	cli_json_str(stdout, pem);
	printf(",\"fingerprint\":\"%s\"}\n", fpr);
	r = CLI_EXIT_OK;
	goto out;
fail:
	r = cli_error(r);
out:
	free(pem);
	et_ctx_free(ctx);
	return r;
}
