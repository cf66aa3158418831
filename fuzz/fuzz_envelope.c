/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the credential envelope (docs/envelope.md), i.e. every byte a device accepts from
 * the cloud before the TPM is involved. Drives the internal parser, the public inspect call, and
 * the whole software open path with a fixed test key, and checks the parser's promises: views
 * point inside the blob, parse and inspect agree, the serial is printable, and no plaintext comes
 * back from an envelope that does not authenticate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrust/edgetrust.h"
#include "envelope.h"
#include "envelope_test_key.h"

#define SERIAL_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *data, size_t size, const uint8_t *p, size_t n)
{
	if (n && (p < data || p + n > data + size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	et_envelope_view v;
	et_envelope_info info, info2;
	et_secret *pt = NULL;
	int r1, r2, r3;

	r1 = et_envelope_parse(data, size, &v);
	r2 = et_envelope_inspect(data, size, &info);
	if ((r1 == 0) != (r2 == 0))
		abort();
	if (r1 < 0) {
		if (r1 != ET_E_ENVELOPE_FORMAT && !(size == 0 && r1 == ET_E_INVALID))
			abort();
		return 0;
	}
	inside(data, size, v.wrapped, v.wrapped_len);
	inside(data, size, v.nonce, ET_ENV_NONCE_LEN);
	inside(data, size, v.ciphertext, v.ciphertext_len);
	inside(data, size, v.tag, ET_ENV_TAG_LEN);
	if (v.aad != data || v.aad_len > size)
		abort();
	if (memcmp(&v.info, &info, sizeof(info)) != 0)
		abort();
	if (strlen(info.serial) == 0 || strlen(info.serial) > ET_SERIAL_MAX ||
	    strspn(info.serial, SERIAL_CHARS) != strlen(info.serial) || strlen(info.key_fpr) != 64)
		abort();

	r3 = et_envelope_open_soft(et_fuzz_test_key_pem, info.serial, data, size, &pt, &info2);
	if (r3 == 0) {
		if (!pt || et_secret_len(pt) != v.ciphertext_len ||
		    memcmp(&info2, &info, sizeof(info)) != 0)
			abort();
	} else {
		if (pt)
			abort();
		if (r3 != ET_E_ENVELOPE_FOREIGN && r3 != ET_E_ENVELOPE_AUTH &&
		    r3 != ET_E_ENVELOPE_FORMAT && r3 != ET_E_NOMEM)
			abort();
	}
	et_secret_free(pt);
	return 0;
}
