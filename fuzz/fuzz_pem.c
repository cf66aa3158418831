/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: device public keys in PEM, which the cloud takes from registration messages
 * sent by devices it does not trust yet (et_pem_check_rsa, et_pem_fingerprint, et_pubkey_from_pem).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char fpr[65], msg1[512];
	char *pem = malloc(size + 1);
	et_pubkey *key = NULL;
	int r1, r2, r3;

	if (!pem)
		return 0;
	memcpy(pem, data, size);
	pem[size] = '\0';
	r1 = et_pem_check_rsa(pem, 0);
	snprintf(msg1, sizeof(msg1), "%s", r1 ? et_errmsg() : "");
	memset(fpr, 'x', sizeof(fpr));
	r2 = et_pem_fingerprint(pem, fpr);
	if (r2 == 0 && (strlen(fpr) != 64 || strspn(fpr, "0123456789abcdef") != 64))
		abort();
	/* A key good enough to use always has a fingerprint. */
	if (r1 == 0 && r2 != 0)
		abort();
	/* The parsed key accepts what the check accepts, with the same fingerprint, and refuses
	 * with the same error; only the check's SP 800-56B composite test may refuse more. */
	r3 = et_pubkey_from_pem(pem, &key);
	if ((r1 == 0 && r3 != 0) || (r3 < 0 && r3 != r1))
		abort();
	if (r3 == 0 && r1 != 0 && !strstr(msg1, "SP 800-56B"))
		abort();
	if (r3 == 0 && (strcmp(et_pubkey_fingerprint(key), fpr) != 0 || et_pubkey_bits(key) < 2048))
		abort();
	et_pubkey_free(key);
	free(pem);
	return 0;
}
