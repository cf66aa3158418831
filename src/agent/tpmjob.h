/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM work in a short-lived helper process. Every TPM use of edgetrustd (serial, device key,
 * opening a credential envelope) runs in a fresh `edgetrustd --tpm-helper` spawned from
 * /proc/self/exe, talking over a socketpair on its stdin. Why: tpm2-tss ESAPI and OpenSSL's
 * provider set-up touch about 4 MiB of libcrypto/tss2 pages and heap once; done in the daemon,
 * that stays in its resident set (and its VmHWM) for its whole life. Done in the helper, it
 * goes away with the helper after a few milliseconds (docs/performance.md, "Agent").
 *
 * Secrets: the request carries only the sealed envelope; the answer carries its plaintext over
 * the socket (never argv, environment or disk) into an et_secret, and both sides wipe their
 * copies. The helper gets the daemon's hardening (not dumpable, no core files, wiping malloc).
 */
#ifndef EDGETRUST_AGENT_TPMJOB_H
#define EDGETRUST_AGENT_TPMJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgetrust/edgetrust.h"

/* argv[1] that makes edgetrustd serve one request on stdin and exit. */
#define ET_TPMJOB_ARG "--tpm-helper"

/* Which step failed, so the daemon can name it and pick its exit code. */
enum et_tpmjob_step {
	ET_TPMJOB_HELPER = 0, /* the helper could not be started or did not answer */
	ET_TPMJOB_OPEN,       /* et_ctx_new (TCTI) */
	ET_TPMJOB_SERIAL,     /* et_serial_read */
	ET_TPMJOB_KEY,        /* et_key_create */
	ET_TPMJOB_PUBLIC,     /* et_key_public_pem */
	ET_TPMJOB_ENVELOPE,   /* et_envelope_open */
};

struct et_tpm_identity {
	char *serial;  /* malloc'd */
	char *pem;     /* malloc'd device public key */
	char fpr[65];  /* hex SHA-256 of its DER SPKI */
	bool created;  /* the device key was created now */
};

/*
 * Serial from NV serial_index, device key at key_handle (created when absent) and its public
 * key. 0 and *ret; or a negative ET_E_* with *ret_step and the message in errbuf (the helper's
 * et_errmsg()). Helper failures are ET_E_TPM_UNREACHABLE with step ET_TPMJOB_HELPER.
 */
int et_tpmjob_identity(const char *tcti, uint32_t serial_index, uint32_t key_handle,
		       struct et_tpm_identity *ret, enum et_tpmjob_step *ret_step, char *errbuf,
		       size_t errlen);
void et_tpm_identity_clear(struct et_tpm_identity *id);

/* et_envelope_open() in the helper: 0 with *ret_plain (caller frees) and *ret_info, or a
 * negative ET_E_* and errbuf. */
int et_tpmjob_envelope_open(const char *tcti, uint32_t key_handle, const char *serial,
			    const uint8_t *blob, size_t len, et_secret **ret_plain,
			    et_envelope_info *ret_info, char *errbuf, size_t errlen);

/*
 * TPM command deadlines for the helpers started from now on (et_ctx_set_timeouts; 0 = the
 * library's default). The daemon also stops a helper that has not answered within the time
 * its commands may take at most (it could be stuck inside a TCTI that ignores tpm2-tss'
 * receive timeout, like tpm2-tss 3.2.1's swtpm TCTI), and reports it as ET_E_TIMEOUT.
 */
void et_tpmjob_set_timeouts(uint32_t cmd_ms, uint32_t keygen_ms);
/* The TCTI module file for the helpers started from now on ([agent] tcti_module; NULL or "":
 * the system's TCTI named by tcti). The library checks it (et_ctx_new_module). */
#define ET_TPMJOB_MODULE_MAX 255
void et_tpmjob_set_tcti_module(const char *path);

/* Where each helper run's duration and peak RSS go (debug level); NULL: nowhere. */
void et_tpmjob_set_log(et_log_fn fn, void *ud);

/* The helper's side: one request from fd, the answer to fd. Returns the process exit code. */
int et_tpmjob_serve(int fd);

#endif
