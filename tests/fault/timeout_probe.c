/* SPDX-License-Identifier: Apache-2.0 */
/*
 * et-timeout-probe: reads the serial N times over ONE et_ctx with a given command deadline,
 * then, after a line on stdin (the test changes the fault rules meanwhile), once more after
 * et_ctx_reopen on the same et_ctx and once over a fresh et_ctx, printing one line per attempt:
 *   "<attempt> rc=<ET_E_*> <et_errmsg() or the serial>"
 * test_tpm_timeout.py uses it to show that after a deadline the library refuses to reuse the
 * half-finished link (no command sent) and that a new et_ctx works.
 * Usage: et-timeout-probe TCTI CMD_MS N
 */
#include <stdio.h>
#include <stdlib.h>

#include "edgetrust/edgetrust.h"

static int read_once(et_ctx *ctx, const char *label)
{
	char *serial = NULL;
	int r = et_serial_read(ctx, ET_NV_SERIAL_INDEX_DEFAULT, &serial);

	printf("%s rc=%d %s\n", label, r, r == 0 ? serial : et_errmsg());
	fflush(stdout);
	free(serial);
	return r;
}

int main(int argc, char **argv)
{
	et_ctx *ctx = NULL;
	char label[16];
	int n, r;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: et-timeout-probe TCTI CMD_MS N [MODULE]\n");
		return 2;
	}
	n = atoi(argv[3]);
	r = et_ctx_new_module(argv[1], argc == 5 ? argv[4] : NULL, &ctx);
	if (r == 0)
		r = et_ctx_set_timeouts(ctx, (uint32_t)strtoul(argv[2], NULL, 10), 0);
	if (r < 0) {
		fprintf(stderr, "et-timeout-probe: %s\n", et_errmsg());
		et_ctx_free(ctx);
		return 1;
	}
	for (int i = 1; i <= n; i++) {
		snprintf(label, sizeof(label), "same%d", i);
		read_once(ctx, label);
	}
	if (!fgets(label, sizeof(label), stdin)) {
		et_ctx_free(ctx);
		return 1;
	}
	r = et_ctx_reopen(ctx);
	if (r == 0)
		read_once(ctx, "reopened");
	else
		printf("reopened rc=%d %s\n", r, et_errmsg());
	et_ctx_free(ctx);
	ctx = NULL;
	r = et_ctx_new_module(argv[1], argc == 5 ? argv[4] : NULL, &ctx);
	if (r == 0)
		r = et_ctx_set_timeouts(ctx, (uint32_t)strtoul(argv[2], NULL, 10), 0);
	if (r == 0)
		read_once(ctx, "fresh");
	else
		printf("fresh rc=%d %s\n", r, et_errmsg());
	et_ctx_free(ctx);
	return 0;
}
