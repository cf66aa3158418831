/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: device public keys in PEM, which the cloud takes from registration messages
 * sent by devices it does not trust yet (et_pem_check_rsa, et_pem_fingerprint).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char fpr[65];
	char *pem = malloc(size + 1);
	int r1, r2;

	if (!pem)
		return 0;
	memcpy(pem, data, size);
	pem[size] = '\0';
	r1 = et_pem_check_rsa(pem, 0);
	memset(fpr, 'x', sizeof(fpr));
	r2 = et_pem_fingerprint(pem, fpr);
	if (r2 == 0 && (strlen(fpr) != 64 || strspn(fpr, "0123456789abcdef") != 64))
		abort();
	/* A key good enough to use always has a fingerprint. */
	if (r1 == 0 && r2 != 0)
		abort();
	free(pem);
	return 0;
}
