/* SPDX-License-Identifier: Apache-2.0 */
/* edgetrust status: what the TPM is, what is provisioned on it, and what is missing. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_INDEX = CLI_OPT_FIRST_OWN,
	OPT_KEY_HANDLE,
};

struct status_opts {
	uint32_t index;
	uint32_t key_handle;
};

static int on_opt(int val, const char *arg, void *userdata)
{
	struct status_opts *o = userdata;

	switch (val) {
	case OPT_INDEX:
		return cli_parse_nv_index(arg, &o->index);
	case OPT_KEY_HANDLE:
		return cli_parse_persistent(arg, &o->key_handle);
	default:
		return CLI_EXIT_INTERNAL;
	}
}

struct missing {
	const char *what;
	const char *fix;
};

/* The problems to report, in the order to fix them. Returns how many. */
static size_t find_missing(const et_status *st, struct missing out[6])
{
	size_t n = 0;

	if (st->in_lockout)
		out[n++] = (struct missing){"lockout",
			"the TPM is in dictionary-attack lockout; wait for the lockout interval or "
			"reset it with `tpm2_dictionarylockout --clear-lockout`"};
	if (!st->serial_present)
		out[n++] = (struct missing){"serial",
			st->serial_defined
				? "the serial index is defined but not written (or not a serial "
				  "index); run `edgetrust serial read` for details, then "
				  "`edgetrust serial provision SERIAL`"
				: "no serial number; run `edgetrust provision --serial SERIAL`"};
	if (!st->srk_present)
		out[n++] = (struct missing){"srk",
			"no storage root key; `edgetrust provision` or `edgetrust key create` "
			"creates it"};
	if (!st->key_present)
		out[n++] = (struct missing){"key",
			"no device key; run `edgetrust provision` or `edgetrust key create`, then "
			"register the new public key with the cloud"};
	if (st->transient_handles || st->loaded_sessions)
		out[n++] = (struct missing){"handles",
			"transient objects or sessions are left loaded (TPM used without resource "
			"manager); use device:/dev/tpmrm0 or `tpm2_flushcontext -t -l`"};
	return n;
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"index", required_argument, NULL, OPT_INDEX},
		{"key-handle", required_argument, NULL, OPT_KEY_HANDLE},
		{0},
	};
	struct status_opts o = {.index = ET_NV_SERIAL_INDEX_DEFAULT,
				.key_handle = ET_DEVICE_KEY_HANDLE_DEFAULT};
	struct missing miss[6];
	et_ctx *ctx = NULL;
	et_status st;
	size_t n;
	int r, first;

	static const struct cli_args args = {"status", opts, NULL, on_opt, 0, 0};
	r = cli_begin(cli, &args, &o, argc, argv, &first);
	if (r)
		return r;
	r = cli_open(cli, &ctx);
	if (r)
		return r;
	r = et_status_get(ctx, o.index, ET_SRK_HANDLE_DEFAULT, o.key_handle, &st);
	if (r < 0) {
		r = cli_error(r);
		goto out;
	}
	n = find_missing(&st, miss);
	if (cli->json) {
		printf("{\"tcti\":");
		cli_json_str(stdout, et_ctx_tcti(ctx));
		printf(",\"tpm\":{\"manufacturer\":");
		cli_json_str(stdout, st.manufacturer);
		printf(",\"vendor\":");
		cli_json_str(stdout, st.vendor_string);
		printf(",\"firmware\":\"%u.%u\",\"spec_level\":%u,\"spec_revision\":%u}",
		       st.firmware_major, st.firmware_minor, st.spec_level, st.spec_revision);
		printf(",\"serial\":{\"index\":\"0x%08x\",\"defined\":%s,\"present\":%s,\"no_da\":%s,"
		       "\"value\":",
		       o.index, st.serial_defined ? "true" : "false",
		       st.serial_present ? "true" : "false",
		       !st.serial_defined ? "null" : st.serial_no_da ? "true" : "false");
		if (st.serial_present)
			cli_json_str(stdout, st.serial);
		else
			printf("null");
		printf("},\"srk\":{\"handle\":\"0x%08x\",\"present\":%s}", ET_SRK_HANDLE_DEFAULT,
		       st.srk_present ? "true" : "false");
		printf(",\"key\":{\"handle\":\"0x%08x\",\"present\":%s,\"ok\":%s,\"fingerprint\":",
		       o.key_handle, st.key_present ? "true" : "false", st.key_ok ? "true" : "false");
		if (st.key_ok)
			cli_json_str(stdout, st.key_fpr);
		else
			printf("null");
		printf("},\"lockout\":{\"counter\":%u,\"max_tries\":%u,\"interval_s\":%u,"
		       "\"in_lockout\":%s},\"owner_auth_set\":%s",
		       st.lockout_counter, st.max_auth_fail, st.lockout_interval,
		       st.in_lockout ? "true" : "false", st.owner_auth_set ? "true" : "false");
		printf(",\"handles\":{\"transient\":%u,\"loaded_sessions\":%u}", st.transient_handles,
		       st.loaded_sessions);
		printf(",\"ready\":%s,\"missing\":[", n == 0 ? "true" : "false");
		for (size_t i = 0; i < n; i++) {
			printf("%s{\"item\":\"%s\",\"fix\":", i ? "," : "", miss[i].what);
			cli_json_str(stdout, miss[i].fix);
			printf("}");
		}
		printf("]}\n");
	} else {
		printf("TPM:            %s %s, firmware %u.%u, TPM 2.0 spec level %u revision "
		       "%u.%02u\n",
		       st.manufacturer, st.vendor_string, st.firmware_major, st.firmware_minor,
		       st.spec_level, st.spec_revision / 100, st.spec_revision % 100);
		printf("TCTI:           %s\n", et_ctx_tcti(ctx));
		if (st.serial_present)
			printf("Serial:         %s (NV index 0x%08x)\n", st.serial, o.index);
		else
			printf("Serial:         %s (NV index 0x%08x)\n",
			       st.serial_defined ? "index defined, no valid serial" : "none", o.index);
		if (st.serial_defined && st.serial_no_da)
			printf("Serial index:   no_da: reads never count toward lockout\n");
		else if (st.serial_defined)
			printf("Serial index:   not no_da (the article's index)%s\n",
			       st.owner_auth_set ? "; with the owner password set, reads use the index's "
						   "authorisation and a power cut mid-read counts one "
						   "failure toward lockout (see `serial provision --no-da`)"
						 : "; reads use the owner hierarchy and never count toward "
						   "lockout while the owner has no password");
		printf("SRK:            %s at 0x%08x\n", st.srk_present ? "present" : "absent",
		       ET_SRK_HANDLE_DEFAULT);
		printf("Device key:     %s at 0x%08x%s%s\n",
		       st.key_present ? (st.key_ok ? "present" : "present, not checked") : "absent",
		       o.key_handle, st.key_ok ? ", SHA-256 fingerprint " : "",
		       st.key_ok ? st.key_fpr : "");
		printf("Lockout:        %s; %u of %u failures counted, one forgiven every %u s\n",
		       st.in_lockout ? "LOCKED OUT" : "not locked out", st.lockout_counter,
		       st.max_auth_fail, st.lockout_interval);
		printf("Owner password: %s\n", st.owner_auth_set ? "set" : "not set");
		printf("Loaded:         %u transient objects, %u sessions\n", st.transient_handles,
		       st.loaded_sessions);
		if (n == 0) {
			printf("Ready:          yes\n");
		} else {
			printf("Ready:          no\n");
			for (size_t i = 0; i < n; i++)
				printf("  - %s: %s\n", miss[i].what, miss[i].fix);
		}
	}
	r = CLI_EXIT_OK;
out:
	et_ctx_free(ctx);
	return r;
}
